"""The training loop shared by the reproductions: one learner per arm, same data, same seed.

Every arm trains the same learner architecture from the same initialisation on the same pool
of a :class:`~provenml.selection.tasks.SelectionTask`, drawing super-batches through
:class:`OnlineBatchSelector`; only the scoring policy differs. All FLOPs (learner steps, actor
training, scoring forwards, reference training and the reference-loss table) are measured by
one :class:`~provenml.core.ComputeLedger` per arm.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from provenml.core import ComputeLedger
from provenml.core.registry import Registry
from provenml.errors import ProvenmlError
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
from provenml.selection.tasks import SelectionTask

PolicyFactory = Callable[["Reference | None", "nn.Module | None", float, float], ScoringPolicy]


@dataclass(frozen=True)
class ArmPolicy:
    """How an arm scores: ``build(reference, actor, lr, temperature)`` makes its policy;
    ``uses_reference`` / ``uses_actor`` say which of the two it needs."""

    build: PolicyFactory
    uses_reference: bool = False
    uses_actor: bool = False


def _learnability(topk: bool) -> PolicyFactory:
    def build(
        reference: Reference | None, actor: nn.Module | None, lr: float, temperature: float
    ) -> ScoringPolicy:
        assert reference is not None and actor is not None
        return Learnability(actor, reference.table, lr=lr, temperature=temperature, topk=topk)

    return build


#: The arms by name (``ARM_POLICIES.get("rho_loss")``; an unknown name suggests close ones).
ARM_POLICIES: Registry[ArmPolicy] = Registry("arm")
ARM_POLICIES.register("uniform", ArmPolicy(lambda ref, actor, lr, t: Uniform()))
ARM_POLICIES.register(
    "learnability", ArmPolicy(_learnability(False), uses_reference=True, uses_actor=True)
)
ARM_POLICIES.register(
    "learnability_topk", ArmPolicy(_learnability(True), uses_reference=True, uses_actor=True)
)
ARM_POLICIES.register(
    "rho_loss",
    ArmPolicy(lambda ref, actor, lr, t: RhoLoss(ref.table), uses_reference=True),  # type: ignore[union-attr]
)
ARM_POLICIES.register(
    "hard_learner", ArmPolicy(lambda ref, actor, lr, t: HardLearner(temperature=t))
)
ARM_POLICIES.register(
    "easy_reference",
    ArmPolicy(
        lambda ref, actor, lr, t: EasyReference(ref.table, temperature=t),  # type: ignore[union-attr]
        uses_reference=True,
    ),
)
ARMS: tuple[str, ...] = tuple(ARM_POLICIES.names())
USES_REFERENCE = {name for name, arm in ARM_POLICIES.items() if arm.uses_reference}


@dataclass
class ArmRun:
    """What one arm measured: the metric's curve against updates and cumulative FLOPs.

    ``steps[i]`` is the number of learner updates made before evaluation ``i``; ``flops[i]``
    everything the arm had spent by then. ``higher_is_better`` orients the metric (accuracy:
    True; a loss: False).
    """

    name: str
    steps: list[int] = field(default_factory=list)
    metric: list[float] = field(default_factory=list)
    flops: list[int] = field(default_factory=list)
    higher_is_better: bool = True
    updates: int = 0
    noisy_fraction: float = math.nan
    compute: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    def smoothed(self, window: int) -> np.ndarray:
        """Trailing mean of the metric over ``window`` evaluations (fewer at the start)."""
        values = np.asarray(self.metric, dtype=float)
        cumulative = np.concatenate([[0.0], np.cumsum(values)])
        ends = np.arange(1, len(values) + 1)
        starts = np.maximum(0, ends - window)
        return (cumulative[ends] - cumulative[starts]) / (ends - starts)

    def first_reach(self, target: float, window: int) -> tuple[float, float, bool]:
        """(updates, total FLOPs) at the first evaluation whose smoothed metric reaches
        ``target`` (at least it, or at most it for a loss), and whether it was reached;
        unreached arms report their full budget."""
        smooth = self.smoothed(window)
        reached = smooth >= target - 1e-12 if self.higher_is_better else smooth <= target + 1e-12
        hit = np.nonzero(reached)[0]
        if hit.size == 0:
            return float(self.steps[-1]), float(self.flops[-1]), False
        i = int(hit[0])
        return float(self.steps[i]), float(self.flops[i]), True

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "metric": self.metric,
            "flops": self.flops,
            "higher_is_better": self.higher_is_better,
            "updates": self.updates,
            "noisy_fraction": self.noisy_fraction,
            "compute": self.compute,
            "wall_s": self.wall_s,
        }

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> ArmRun:
        return cls(
            name,
            steps=list(data["steps"]),
            metric=list(data["metric"]),
            flops=list(data["flops"]),
            higher_is_better=bool(data.get("higher_is_better", True)),
            updates=int(data.get("updates", 0)),
            noisy_fraction=float(data["noisy_fraction"]),
            compute=dict(data.get("compute", {})),
            wall_s=float(data.get("wall_s", 0.0)),
        )


@dataclass
class Reference:
    """A trained reference, its loss table over the pool, and the ledger of what it cost."""

    model: nn.Module
    table: torch.Tensor
    ledger: ComputeLedger
    metric: float


def build_reference(
    task: SelectionTask,
    width: int,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: torch.device,
) -> Reference:
    """Train the reference (a scorer of ``width``) on the task's clean holdout and precompute
    its losses over the pool (both charged to the reference's ledger)."""
    torch.manual_seed(seed + 1)
    model = task.scorer(width).to(device)
    ledger = ComputeLedger()
    train_reference(
        model,
        task.holdout,
        task.loss_fn,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        ledger=ledger,
        seed=seed,
    )
    table = precompute_losses(model, task.pool, task.loss_fn, batch_size=4096, ledger=ledger)
    return Reference(model, table, ledger, task.evaluate(model))


def make_policy(
    arm: str,
    reference: Reference | None,
    actor: nn.Module | None,
    *,
    lr: float,
    temperature: float,
) -> ScoringPolicy:
    """The scoring policy of one arm (``actor``: a fresh scorer, for the learnability arms)."""
    if arm not in ARMS:  # exact names only (the registry would also take other cases)
        raise ARM_POLICIES.unknown(arm)
    policy = ARM_POLICIES.get(arm)
    if policy.uses_reference and reference is None:
        raise ProvenmlError(f"arm {arm!r} needs a reference model")
    if policy.uses_actor and actor is None:
        raise ProvenmlError(f"arm {arm!r} needs an actor model")
    return policy.build(reference, actor, lr, temperature)


def run_arm(
    arm: str,
    task: SelectionTask,
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
    """Train a copy of ``learner_init`` for exactly ``steps`` selected batches, evaluating
    after every ``eval_every``-th update and after the last. Reference costs are charged to
    every arm that uses the reference. ``task`` must already be on ``device``."""
    started = time.perf_counter()
    learner = copy.deepcopy(learner_init).to(device)
    optimizer = adam(learner, lr)
    uses_ref = arm in USES_REFERENCE
    ledger = reference.ledger.copy() if (uses_ref and reference) else ComputeLedger()
    actor = None
    if arm in ("learnability", "learnability_topk"):
        torch.manual_seed(seed + 2)  # the actor's initialisation
        actor = task.scorer(scorer_width).to(device)
    policy = make_policy(
        arm, reference if uses_ref else None, actor, lr=scorer_lr, temperature=temperature
    )
    selector = OnlineBatchSelector(
        learner, task.loss_fn, policy, batch_size, rho, ledger=ledger, seed=seed
    )
    run = ArmRun(arm, higher_is_better=task.higher_is_better)
    noisy_picked = torch.zeros((), device=device)
    for step, selection in enumerate(
        selector.selections(task.pool, epochs=None, max_steps=steps), start=1
    ):
        train_step(
            learner,
            optimizer,
            task.loss_fn,
            selection.batch,
            ledger=ledger,
            category="training:learner",
        )
        run.updates = step
        assert selection.indices is not None
        noisy_picked += task.is_noisy[selection.indices.to(device)].sum()
        if step % eval_every == 0 or step == steps:
            run.steps.append(step)
            run.metric.append(task.evaluate(learner))
            run.flops.append(ledger.total_flops)
            if ctx_log is not None:
                ctx_log(step=step, arm=arm, metric=run.metric[-1], flops=run.flops[-1])
        if bar is not None:
            bar.advance()
    if run.updates != steps:  # the selector stops only at max_steps (epochs=None)
        raise RuntimeError(f"arm {arm} made {run.updates} updates, not {steps}")
    run.noisy_fraction = float(noisy_picked) / (run.updates * batch_size)
    run.compute = ledger.to_dict()
    run.wall_s = time.perf_counter() - started
    return run


def savings(ours: float, baseline: float) -> float:
    """Fractional saving of ``ours`` relative to ``baseline`` (``1 - ours / baseline``)."""
    return 1.0 - ours / baseline if baseline > 0 else math.nan


def learner_for(task: SelectionTask, seed: int) -> nn.Module:
    """The learner's shared initialisation for one seed (on the CPU)."""
    torch.manual_seed(seed)
    return task.learner()
