"""Scheduler overhead: provenml's closed-form schedules against PyTorch's own schedulers.

Prints the time of ``scheduler.step()`` per call for each schedule as a ratio to
``torch.optim.lr_scheduler.LambdaLR`` (the anchor), measured in the same run. The goal is that a
WSD-family scheduler costs no more than a few times a LambdaLR step, i.e. nothing next to a
training step. ``WarmupCosine`` is also set beside PyTorch's own warmup-cosine composition
(``SequentialLR(LinearLR, CosineAnnealingLR)``, the same rates; the largest difference is
printed). Run: ``.venv/bin/python benchmarks/bench_schedules.py``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    SequentialLR,
)

from provenml.schedules import WSD, WSDS, CyclicCosine, WarmupCosine

STEPS = 20_000
WARMUP = 100


def _sequential(optimizer: torch.optim.Optimizer, total: int) -> SequentialLR:
    """PyTorch's warmup-cosine with WarmupCosine's conventions (peak at WARMUP - 1, floor 0.1)."""
    ramp = LinearLR(optimizer, 1 / WARMUP, 1.0, total_iters=WARMUP - 1)
    cosine = CosineAnnealingLR(optimizer, T_max=total - WARMUP, eta_min=0.1)
    return SequentialLR(optimizer, [ramp, cosine], milestones=[WARMUP - 1])


def _rates(make: Callable[[torch.optim.Optimizer], LRScheduler], steps: int) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make(optimizer)
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def _time_steps(make: Callable[[torch.optim.Optimizer], LRScheduler]) -> float:
    params = [torch.nn.Parameter(torch.zeros(4)) for _ in range(8)]
    optimizer = torch.optim.SGD(params, lr=1.0)
    optimizer.step()
    scheduler = make(optimizer)
    start = time.perf_counter()
    for _ in range(STEPS):
        scheduler.step()
    return (time.perf_counter() - start) / STEPS


def main() -> None:
    total = STEPS + 1
    cases: dict[str, Callable[[torch.optim.Optimizer], LRScheduler]] = {
        "LambdaLR (anchor)": lambda o: LambdaLR(
            o, lambda t: min(1.0, (t + 1) / 100) * (0.5 + 0.5 * math.cos(math.pi * t / total))
        ),
        "CosineAnnealingLR": lambda o: CosineAnnealingLR(o, T_max=total),
        "WSD": lambda o: WSD(o, total, 100, 0.2),
        "WSDS (3 budgets)": lambda o: WSDS(o, [total // 4, total // 2, total], 100, 0.2),
        "CyclicCosine": lambda o: CyclicCosine(o, [total // 4, total // 2, total], 100, 100),
        "WarmupCosine": lambda o: WarmupCosine(o, total, WARMUP),
        "SequentialLR (cosine)": lambda o: _sequential(o, total),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR's deprecation notices
        timings = {name: min(_time_steps(make) for _ in range(3)) for name, make in cases.items()}
        ours = _rates(lambda o: WarmupCosine(o, total, WARMUP), total)
        theirs = _rates(lambda o: _sequential(o, total), total)
    anchor = timings["LambdaLR (anchor)"]
    print(f"scheduler.step() over {STEPS} calls, best of 3 runs")
    print(f"{'schedule':<22}{'us/step':>10}{'ratio to LambdaLR':>20}")
    for name, seconds in timings.items():
        print(f"{name:<22}{seconds * 1e6:>10.2f}{seconds / anchor:>20.2f}")
    gap = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
    print(f"WarmupCosine vs SequentialLR(LinearLR, CosineAnnealingLR): max |rate gap| {gap:.1e}")


if __name__ == "__main__":
    main()
