"""The training loop shared by the reproductions: one learner per arm, same data, same seed.

Every arm trains the same learner architecture from the same initialisation on the same pool,
drawing super-batches through :class:`OnlineBatchSelector`; only the scoring policy differs.
All FLOPs (learner steps, actor training, scoring forwards, reference training and the
reference-loss table) are measured by one :class:`~provenml.core.ComputeLedger` per arm.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from provenml.core import ComputeLedger
from provenml.errors import ProvenmlError
from provenml.nn import mlp
from provenml.selection.data import Splits
from provenml.selection.losses import classification_loss
from provenml.selection.policies import (
    EasyReference,
    HardLearner,
    Learnability,
    RhoLoss,
    ScoringPolicy,
    Uniform,
    adam,
    train_step,
)
from provenml.selection.reference import precompute_losses, train_reference
from provenml.selection.selector import OnlineBatchSelector

ARMS: tuple[str, ...] = (
    "uniform",
    "learnability",
    "learnability_topk",
    "rho_loss",
    "hard_learner",
    "easy_reference",
)
USES_REFERENCE = {"learnability", "learnability_topk", "rho_loss", "easy_reference"}


@dataclass
class ArmRun:
    """What one arm measured: the test-accuracy curve against updates and cumulative FLOPs."""

    name: str
    steps: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    flops: list[int] = field(default_factory=list)
    noisy_fraction: float = math.nan
    compute: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    def smoothed(self, window: int) -> np.ndarray:
        """Trailing mean of the accuracy over ``window`` evaluations."""
        acc = np.asarray(self.accuracy, dtype=float)
        out = np.convolve(acc, np.ones(window) / window, mode="full")[: len(acc)]
        out[: window - 1] = [acc[: i + 1].mean() for i in range(min(window - 1, len(acc)))]
        return out

    def first_reach(self, target: float, window: int) -> tuple[float, float, bool]:
        """(updates, total FLOPs) at the first evaluation whose smoothed accuracy reaches
        ``target``, and whether it was reached; unreached arms report their full budget."""
        hit = np.nonzero(self.smoothed(window) >= target - 1e-12)[0]
        if hit.size == 0:
            return float(self.steps[-1]), float(self.flops[-1]), False
        i = int(hit[0])
        return float(self.steps[i]), float(self.flops[i]), True

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "accuracy": self.accuracy,
            "flops": self.flops,
            "noisy_fraction": self.noisy_fraction,
            "compute": self.compute,
            "wall_s": self.wall_s,
        }


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)`` in one batched forward."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    model.train(was_training)
    return float(acc)


@dataclass
class Reference:
    """A trained reference, its loss table over the pool, and the ledger of what it cost."""

    model: nn.Module
    table: Tensor
    ledger: ComputeLedger
    holdout_accuracy: float


def build_reference(
    splits: Splits,
    width: int,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: torch.device,
) -> Reference:
    """Train the reference on the clean holdout and precompute its losses over the pool."""
    torch.manual_seed(seed + 1)
    model = mlp(splits.x_pool.shape[1], [width], 10).to(device)
    ledger = ComputeLedger()
    holdout = TensorDataset(splits.x_holdout.to(device), splits.y_holdout.to(device))
    train_reference(
        model,
        holdout,
        classification_loss,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        ledger=ledger,
        seed=seed,
    )
    pool = TensorDataset(splits.x_pool.to(device), splits.y_pool.to(device))
    table = precompute_losses(model, pool, classification_loss, batch_size=8192, ledger=ledger)
    acc = accuracy(model, splits.x_test.to(device), splits.y_test.to(device))
    return Reference(model, table, ledger, acc)


def make_policy(
    arm: str,
    reference: Reference | None,
    scorer_width: int,
    *,
    lr: float,
    temperature: float,
    in_features: int,
    device: torch.device,
) -> ScoringPolicy:
    """The scoring policy of one arm (the actor is a fresh small MLP)."""
    if arm in USES_REFERENCE and reference is None:
        raise ProvenmlError(f"arm {arm!r} needs a reference model")
    if arm == "uniform":
        return Uniform()
    if arm in ("learnability", "learnability_topk"):
        assert reference is not None
        actor = mlp(in_features, [scorer_width], 10).to(device)
        return Learnability(
            actor,
            reference.table,
            lr=lr,
            temperature=temperature,
            topk=arm == "learnability_topk",
        )
    if arm == "rho_loss":
        assert reference is not None
        return RhoLoss(reference.table)
    if arm == "hard_learner":
        return HardLearner(temperature=temperature)
    if arm == "easy_reference":
        assert reference is not None
        return EasyReference(reference.table, temperature=temperature)
    raise ProvenmlError(f"unknown arm {arm!r}; choose from {', '.join(ARMS)}")


def _copy_ledger(source: ComputeLedger) -> ComputeLedger:
    ledger = ComputeLedger()
    for name in ("flops", "calls", "seconds"):
        getattr(ledger, name).update(getattr(source, name))
    return ledger


def run_arm(
    arm: str,
    splits: Splits,
    learner_init: nn.Module,
    reference: Reference | None,
    *,
    steps: int,
    batch_size: int,
    rho: float,
    lr: float,
    scorer_lr: float,
    scorer_width: int,
    temperature: float,
    eval_every: int,
    seed: int,
    device: torch.device,
    ctx_log: Any = None,
    bar: Any = None,
) -> ArmRun:
    """Train a copy of ``learner_init`` for ``steps`` selected batches; evaluate every
    ``eval_every`` updates. Reference costs are charged to every arm that uses the reference."""
    started = time.perf_counter()
    learner = copy.deepcopy(learner_init).to(device)
    optimizer = adam(learner, lr)
    uses_ref = arm in USES_REFERENCE
    ledger = _copy_ledger(reference.ledger) if (uses_ref and reference) else ComputeLedger()
    torch.manual_seed(seed + 2)  # the actor's initialisation
    policy = make_policy(
        arm,
        reference if uses_ref else None,
        scorer_width,
        lr=scorer_lr,
        temperature=temperature,
        in_features=splits.x_pool.shape[1],
        device=device,
    )
    selector = OnlineBatchSelector(
        learner, classification_loss, policy, batch_size, rho, ledger=ledger, seed=seed
    )
    pool = TensorDataset(splits.x_pool.to(device), splits.y_pool.to(device))
    is_noisy = splits.is_noisy.to(device)
    x_test, y_test = splits.x_test.to(device), splits.y_test.to(device)
    run = ArmRun(arm)
    noisy_picked = torch.zeros((), device=device)
    epochs = math.ceil(steps * selector.super_batch_size / len(pool)) + 1
    for step, selection in enumerate(selector.selections(pool, epochs=epochs), start=1):
        train_step(
            learner,
            optimizer,
            classification_loss,
            selection.batch,
            ledger=ledger,
            category="training:learner",
        )
        assert selection.indices is not None
        noisy_picked += is_noisy[selection.indices].sum()
        step += 1
        if step % eval_every == 0 or step == steps:
            run.steps.append(step)
            run.accuracy.append(accuracy(learner, x_test, y_test))
            run.flops.append(ledger.total_flops)
            if ctx_log is not None:
                ctx_log(step=step, arm=arm, test_acc=run.accuracy[-1], flops=run.flops[-1])
        if bar is not None:
            bar.advance()
        if step >= steps:
            break
    run.noisy_fraction = float(noisy_picked) / (steps * batch_size)
    run.compute = ledger.to_dict()
    run.wall_s = time.perf_counter() - started
    return run


def savings(ours: float, baseline: float) -> float:
    """Fractional saving of ``ours`` relative to ``baseline`` (``1 - ours / baseline``)."""
    return 1.0 - ours / baseline if baseline > 0 else math.nan


def learner_for(splits: Splits, hidden: Sequence[int], seed: int) -> nn.Module:
    """The learner's shared initialisation for one seed."""
    torch.manual_seed(seed)
    return mlp(splits.x_pool.shape[1], list(hidden), 10)
