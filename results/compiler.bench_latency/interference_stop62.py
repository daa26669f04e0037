"""Stop 62: the transformer block's latency at one and two threads, and eager's at two, in
samples of 20 calls under different preludes, 15 rounds each: nothing before a sample
(``alone``), a 10 ms sleep or a 10 ms busy wait, and each of those after a 20-call sample of
eager at two threads (whose OpenMP workers spin for a while after their last call).

    PYTHONPATH=src .venv/bin/python results/compiler.bench_latency/interference_stop62.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

import provenml.compiler as pc
from provenml.compiler.models import build_model


def main() -> None:
    model, x = build_model("transformer", 1)
    compiled = pc.compile(model, (x,), threads=2, tune_threads=False)

    def sample(fn: Callable[[], object], calls: int = 20) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) / calls * 1e6

    def provenml_at(threads: int) -> Callable[[], object]:
        def call() -> object:
            compiled.graph.set_threads(threads)
            return compiled(x)

        return call

    def eager_at(threads: int) -> Callable[[], object]:
        def call() -> object:
            torch.set_num_threads(threads)
            with torch.no_grad():
                return model(x)

        return call

    def busy(seconds: float) -> None:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            pass

    arms = {"pm1": provenml_at(1), "pm2": provenml_at(2), "e2": eager_at(2)}
    for fn in arms.values():
        sample(fn, 50)
    for mode in ("alone", "sleep10", "spin10", "sleep10+eager", "spin10+eager", "alone"):
        medians: dict[str, list[float]] = {k: [] for k in arms}
        for _ in range(15):
            for key, fn in arms.items():
                if "eager" in mode:
                    sample(arms["e2"], 20)
                if mode.startswith("sleep"):
                    time.sleep(0.01)
                if mode.startswith("spin"):
                    busy(0.01)
                medians[key].append(sample(fn, 20))
        print(mode, {k: round(float(np.median(v)), 1) for k, v in medians.items()}, flush=True)


if __name__ == "__main__":
    main()
