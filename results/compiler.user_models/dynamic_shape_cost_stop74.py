"""Stop 74: what a new input length costs ``pc.compile(model, prompt, dynamic=True)`` for a
two-layer GPT-2 (stop 73's generation probe's model), with an empty build cache (cold: each
build runs gcc) and again with the same cache (warm), for the route that traces each length
through TorchDynamo (stop 73; forced here by ``program = False``) and for stop 74's builds
from one ``torch.export`` with dynamic dims. Per-length seconds of one run each (not a
benchmark); the load average is printed.

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/dynamic_shape_cost_stop74.py
"""

from __future__ import annotations

import tempfile
import time
import warnings

import torch
from _probe import load_average
from workflows_stop73 import _gpt2

import provenml.compiler as pc

LENGTHS = (5, 6, 7, 8)


def per_length(cache: str, traced: bool) -> list[float]:
    model = _gpt2()
    fast = pc.compile(
        model,
        (torch.randint(0, 500, (1, 4)),),
        dynamic=True,
        tuning=False,
        threads=1,
        cache_dir=cache,
    )
    if traced:
        fast.program = False  # (stop 73's route: a TorchDynamo trace per length)
    seconds = []
    with torch.no_grad():
        for n in LENGTHS:
            start = time.perf_counter()
            fast(torch.randint(0, 500, (1, n)))
            seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    warnings.filterwarnings("ignore")
    print("load average at the start", load_average(), flush=True)
    for traced in (True, False):
        route = "a trace per length (stop 73)" if traced else "builds from one export (stop 74)"
        with tempfile.TemporaryDirectory() as cache:
            for state in ("cold", "warm"):
                seconds = per_length(cache, traced)
                shown = ", ".join(f"{s:.2f}" for s in seconds)
                print(f"{route:34s} {state}: lengths {LENGTHS}: {shown} s", flush=True)
    print("load average at the end", load_average())


if __name__ == "__main__":
    main()
