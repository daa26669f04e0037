"""Wall time of one learnability step (scoring included) against one uniform step.

One step = draw a super-batch, score it, select B = 64, train the actor (learnability only),
then one learner step (MLP 40-512-512-10, Adam). The anchor is the same loop with the
``Uniform`` policy, measured in the same run. Goal from the issue: ratio <= 1.3, checked on the
configuration the reproductions use (frozen reference, its losses precomputed once per dataset
index and charged to the compute ledger); the reference-forward and unshared-actor-forward
variants are printed beside it.

    .venv/bin/python benchmarks/bench_selection_step.py [--steps 300] [--threads 1]
        [--scorer-width 115]   # the headline's scorers (1/50 of the learner's FLOPs)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.data import TensorDataset

from provenml.selection import (
    Learnability,
    OnlineBatchSelector,
    RhoLoss,
    ScoringPolicy,
    Uniform,
    classification_loss,
    mlp,
    precompute_losses,
    train_step,
)

GOAL = 1.3


def make_loop(
    policy_fn: Callable[[], ScoringPolicy], data: TensorDataset, hidden: list[int]
) -> Callable[[int], None]:
    """A training loop over ``data`` with the given policy; returns ``run(steps)``."""
    torch.manual_seed(0)
    learner = mlp(40, hidden, 10)
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-3, fused=True)
    selector = OnlineBatchSelector(learner, classification_loss, policy_fn(), 64, rho=0.5)
    stream = selector.batches(data, epochs=None, max_steps=10**9)

    def run(steps: int) -> None:
        for _ in range(steps):
            train_step(learner, optimizer, classification_loss, next(stream))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", default="512,512", help="learner widths (issue: 512,512)")
    parser.add_argument("--scorer-width", type=int, default=115, help="actor/reference width")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hidden = [int(h) for h in args.hidden.split(",")]
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.randn(20000, 40, generator=g), torch.randint(0, 10, (20000,), generator=g)
    )
    width = args.scorer_width
    reference = mlp(40, [width], 10).eval()
    table = precompute_losses(reference, data, classification_loss)
    loops = {
        "uniform (anchor)": make_loop(Uniform, data, hidden),
        "learnability, cached reference": make_loop(
            lambda: Learnability(mlp(40, [width], 10), table), data, hidden
        ),
        "learnability, reference forward": make_loop(
            lambda: Learnability(mlp(40, [width], 10), reference), data, hidden
        ),
        "learnability, no shared actor fwd": make_loop(
            lambda: Learnability(mlp(40, [width], 10), table, share_forward=False), data, hidden
        ),
        "rho_loss, cached reference": make_loop(lambda: RhoLoss(table), data, hidden),
    }
    times: dict[str, list[float]] = {name: [] for name in loops}
    for run in loops.values():
        run(30)  # warm-up
    for _ in range(args.repeats):  # interleaved, so that load changes hit every loop alike
        for name, run in loops.items():
            start = time.perf_counter()
            run(args.steps)
            times[name].append((time.perf_counter() - start) / args.steps)
    anchor = statistics.median(times["uniform (anchor)"])
    print(
        f"learner 40-{args.hidden.replace(',', '-')}-10, scorers 40-{width}-10, "
        f"threads={args.threads}, "
        f"steps={args.steps}, repeats={args.repeats} (median per step)"
    )
    print(f"{'loop':34s} {'ms/step':>8s} {'ratio':>6s}")
    for name, values in times.items():
        ms = statistics.median(values)
        print(f"{name:34s} {ms * 1e3:8.3f} {ms / anchor:6.2f}")
    ratio = statistics.median(times["learnability, cached reference"]) / anchor
    verdict = "met" if ratio <= GOAL else "not met"
    print(
        f"learnability (cached reference, as in the reproductions) / uniform = {ratio:.2f} "
        f"(goal <= {GOAL}): {verdict}"
    )


if __name__ == "__main__":
    main()
