"""Stop 61: does sizing each function's sample once (``interleaved_samples`` now) measure what
re-sizing every sample by doubling (until stop 61) measured, in less time? Both samplers, in
alternation, on the same builds: provenml (2 threads) and eager on ``mlp:1`` and
``transformer:1``; per sampler and pass the medians, the provenml/eager ratio and the wall
seconds the sampling took. Run:
``.venv/bin/python results/compiler.bench_latency/sampler_stop61.py``
(output beside it)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import provenml.compiler as pc
from provenml.compiler.experiments import interleaved_samples
from provenml.compiler.models import build_model


def doubling_samples(
    fns: dict[str, Callable[[], Any]], repeat: int, min_time: float, gap: float = 0.01
) -> dict[str, list[float]]:
    """The sampler until stop 61: each sample doubles its call count from one until the calls
    fill ``min_time`` (the same warm-up, shuffles and gaps as ``interleaved_samples``)."""

    def sample(fn: Callable[[], Any]) -> float:
        n = 1
        while True:
            t = time.perf_counter()
            for _ in range(n):
                fn()
            dt = time.perf_counter() - t
            if dt >= min_time or n >= 1 << 16:
                return dt / n
            n *= 2

    for fn in fns.values():
        for _ in range(3):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    order = list(fns)
    rng = np.random.default_rng(0)
    for _ in range(repeat):
        rng.shuffle(order)
        for k in order:
            time.sleep(gap)
            samples[k].append(sample(fns[k]))
    return samples


def main() -> None:
    print(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "load", os.getloadavg())
    torch.set_num_threads(2)
    for case, batch in (("mlp", 1), ("transformer", 1)):
        model, x = build_model(case, batch=batch, seed=0)
        compiled = pc.compile(model, (x,), threads=2)
        with torch.no_grad():
            fns = {"provenml": lambda c=compiled, x=x: c(x), "eager": lambda m=model, x=x: m(x)}
            for rep in range(3):
                for name, sampler in (("doubling", doubling_samples), ("sized", None)):
                    t0 = time.perf_counter()
                    if sampler is None:
                        s = interleaved_samples(fns, 15, 0.02)
                    else:
                        s = sampler(fns, 15, 0.02)
                    wall = time.perf_counter() - t0
                    med = {k: float(np.median(v)) * 1e6 for k, v in s.items()}
                    print(
                        f"{case}:{batch} pass {rep} {name:8s} provenml {med['provenml']:8.1f} us"
                        f"  eager {med['eager']:8.1f} us"
                        f"  ratio {med['provenml'] / med['eager']:.3f}  sampling {wall:5.2f} s"
                    )
    print("load after", os.getloadavg())


if __name__ == "__main__":
    main()
