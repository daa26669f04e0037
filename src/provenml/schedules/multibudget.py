"""Checkpoints at several compute budgets from one run: WSD, WSD-S, Cyclic-Cosine, oracle cosine.

The arms of Wen et al. (2024, Sec. 5), with budgets ``T_1 < T_2 < ... < T_K``:

* ``constant``: warmup, then the peak rate forever; this is also WSD's main branch;
* ``wsd``: at ``T_i - D_i`` (``D_i = round(decay_fraction * T_i)``) a decay branch forks from the
  main branch (weights and optimizer state) and decays for ``D_i`` steps to the checkpoint at
  ``T_i``; producing checkpoints 1..i costs ``C_i = T_i + sum_{j<i} D_j`` steps in all;
* ``wsds``: one branch with :class:`~provenml.schedules.WSDS` checkpoints at ``C_i``, so that it
  spends exactly what WSD spends for the same checkpoints (equal compute);
* ``cyclic``: :class:`~provenml.schedules.CyclicCosine` with cycles ending at the same ``C_i``;
* ``cosine``: one :class:`~provenml.schedules.WarmupCosine` run per checkpoint, each as long as
  the WSD-S checkpoint it is compared with (``C_i`` steps): the oracle that knows its budget in
  advance and pays for a fresh run per budget; its peak rate is its own per budget
  (``ArmSetup.oracle_lr``), since a cosine to ``T_1`` wants another peak than one to ``T_K``.

Every arm starts from the same initial weights, and the step-``k`` batch is the same for every
arm (:class:`~provenml.schedules.lm.BatchStream`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from provenml.errors import ProvenmlError
from provenml.schedules.lm import BatchStream, Evaluator, build_model, lm_loss, window_length
from provenml.schedules.schedulers import WSD, WSDS, CyclicCosine, WarmupCosine, decay_steps

if TYPE_CHECKING:
    from provenml.core.run import RunContext

ARMS: tuple[str, ...] = ("constant", "wsd", "wsds", "cyclic", "cosine")
ARM_LABELS = {
    "constant": "Constant",
    "wsd": "WSD",
    "wsds": "WSD-S",
    "cyclic": "Cyclic-Cosine",
    "cosine": "Oracle cosine",
}


@dataclass
class ArmSetup:
    """What the arms share: model factory, data, schedule shape and peak rates per arm."""

    make_model: Callable[[], nn.Module]
    stream: BatchStream
    checkpoint_eval: Evaluator
    curve_eval: Evaluator
    budgets: list[int]
    warmup_steps: int
    rewarmup_steps: int
    decay_fraction: float
    decay_shape: str
    min_lr_ratio: float
    weight_decay: float
    peak_lr: dict[str, float]
    oracle_lr: list[float]
    curve_every: int

    def __post_init__(self) -> None:
        if len(self.oracle_lr) != len(self.budgets):
            raise ProvenmlError(
                f"oracle_lr has {len(self.oracle_lr)} rates for {len(self.budgets)} budgets"
            )

    @property
    def decays(self) -> list[int]:
        return [decay_steps(t, self.decay_fraction) for t in self.budgets]

    @property
    def equal_compute_budgets(self) -> list[int]:
        """C_i = T_i + sum_{j<i} D_j: what WSD has spent when it delivers checkpoint i."""
        decays = self.decays
        return [t + sum(decays[:i]) for i, t in enumerate(self.budgets)]

    def steps_for(self, arms: Sequence[str] = ARMS) -> int:
        """Optimizer steps that training ``arms`` takes (for the progress bar and the parts)."""
        c, t = self.equal_compute_budgets, self.budgets
        steps = {"main": t[-1] + sum(self.decays), "wsds": c[-1], "cyclic": c[-1], "cosine": sum(c)}
        main = "wsd" in arms or "constant" in arms
        return main * steps["main"] + sum(
            steps[a] for a in ("wsds", "cyclic", "cosine") if a in arms
        )


CurvePoint = tuple[int, float, float]
"""(steps taken, validation loss, learning rate of the last step)."""


@dataclass
class ArmOutcome:
    """Checkpoint losses (one per budget), the loss curve, and the steps the arm spent."""

    checkpoints: list[float] = field(default_factory=list)
    checkpoint_steps: list[int] = field(default_factory=list)
    curve: list[CurvePoint] = field(default_factory=list)
    branch_curves: list[list[CurvePoint]] = field(default_factory=list)
    lr_traces: list[list[tuple[int, float]]] = field(default_factory=list)
    steps_spent: int = 0


class _Trainer:
    """One trajectory: model, AdamW, scheduler; trains over a step range of the shared stream."""

    def __init__(
        self,
        setup: ArmSetup,
        ctx: RunContext,
        arm: str,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: LRScheduler,
    ) -> None:
        self.setup, self.ctx, self.arm = setup, ctx, arm
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.diverged = False
        self.lr_trace: list[tuple[int, float]] = []  # (step, rate) every few steps, for plots
        self._lr_every = max(1, setup.curve_every // 10)

    def _step(self, step: int) -> float:
        x, y = self.setup.stream.batch(step)
        x, y = x.to(self.ctx.device), y.to(self.ctx.device)
        loss = lm_loss(self.model, x, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach())

    def run(self, start: int, end: int, outcome: ArmOutcome, bar, curve: list[CurvePoint]) -> None:
        """Take steps ``start .. end-1``; record the curve every ``curve_every`` steps."""
        for step in range(start, end):
            if self.diverged:
                outcome.steps_spent += 1
                bar.advance()
                continue
            lr = self.optimizer.param_groups[0]["lr"]
            if step % self._lr_every == 0 or step == end - 1:
                self.lr_trace.append((step, lr))
            train_loss = self.ctx.compute.charge(f"train/{self.arm}", self._step, step, key="step")
            outcome.steps_spent += 1
            bar.advance()
            if not math.isfinite(train_loss):
                self.diverged = True
                continue
            if (step + 1) % self.setup.curve_every == 0:
                val = self.setup.curve_eval(self.model, self.ctx.device)
                curve.append((step + 1, val, lr))
                self.ctx.log(
                    arm=self.arm, step=step + 1, lr=lr, train_loss=train_loss, val_loss=val
                )

    def checkpoint(self) -> float:
        if self.diverged:
            return float("nan")
        return self.setup.checkpoint_eval(self.model, self.ctx.device)

    def fork(
        self, arm: str, scheduler_factory: Callable[[torch.optim.Optimizer], LRScheduler]
    ) -> _Trainer:
        """A branch with copies of the weights and the optimizer state (Adam moments)."""
        model = copy.deepcopy(self.model)
        optimizer = _adamw(model, self.optimizer.param_groups[0]["lr"], self.setup.weight_decay)
        optimizer.load_state_dict(copy.deepcopy(self.optimizer.state_dict()))
        branch = _Trainer(self.setup, self.ctx, arm, model, optimizer, scheduler_factory(optimizer))
        branch.diverged = self.diverged
        return branch


def _adamw(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay, fused=True
    )


def _new_trainer(
    setup: ArmSetup,
    ctx: RunContext,
    arm: str,
    initial: nn.Module,
    scheduler_factory: Callable[[torch.optim.Optimizer], LRScheduler],
    peak_lr: float | None = None,
) -> _Trainer:
    model = copy.deepcopy(initial).to(ctx.device)
    lr = setup.peak_lr[arm] if peak_lr is None else peak_lr
    optimizer = _adamw(model, lr, setup.weight_decay)
    return _Trainer(setup, ctx, arm, model, optimizer, scheduler_factory(optimizer))


def run_arms(setup: ArmSetup, ctx: RunContext, arms: Sequence[str] = ARMS) -> dict[str, ArmOutcome]:
    """Train every arm in ``arms`` (``constant`` and ``wsd`` share the main branch)."""
    initial = setup.make_model()
    budgets, decays, equal = setup.budgets, setup.decays, setup.equal_compute_budgets
    out: dict[str, ArmOutcome] = {}
    shape = setup.decay_shape
    with ctx.progress_bar(setup.steps_for(arms), f"{ctx.scale} arms (seed {ctx.seed})") as bar:
        if "wsd" in arms or "constant" in arms:
            warmup = setup.warmup_steps

            def warmup_then_constant(opt: torch.optim.Optimizer) -> LRScheduler:
                return LambdaLR(opt, lambda t: min(1.0, (t + 1) / warmup) if warmup else 1.0)

            lr_key = "wsd" if "wsd" in arms else "constant"
            main = _new_trainer(setup, ctx, lr_key, initial, warmup_then_constant)
            main.arm = "constant"
            const, wsd = ArmOutcome(), ArmOutcome()
            events = sorted(
                [(b - d, "fork", b) for b, d in zip(budgets, decays, strict=True)]
                + [(b, "checkpoint", b) for b in budgets]
            )
            position = 0
            for at, kind, budget in events:
                main.run(position, at, const, bar, const.curve)
                position = at
                if kind == "checkpoint":
                    const.checkpoints.append(main.checkpoint())
                    const.checkpoint_steps.append(budget)
                    continue
                branch = main.fork(
                    "wsd",
                    lambda opt, b=budget, k=at: WSD(
                        opt,
                        total_steps=b,
                        warmup_steps=warmup,
                        decay_fraction=setup.decay_fraction,
                        decay_shape=shape,  # type: ignore[arg-type]
                        min_lr_ratio=setup.min_lr_ratio,
                        last_epoch=k - 1,
                    ),
                )
                branch_curve: list[CurvePoint] = []
                branch.run(at, budget, wsd, bar, branch_curve)
                wsd.branch_curves.append(branch_curve)
                wsd.lr_traces.append(branch.lr_trace)
                wsd.checkpoints.append(branch.checkpoint())
                wsd.checkpoint_steps.append(budget)
            wsd.steps_spent += budgets[-1] - decays[-1]  # the main branch up to the last fork
            wsd.curve = [p for p in const.curve if p[0] <= budgets[-1] - decays[-1]]
            const.lr_traces.append(main.lr_trace)
            out["constant"], out["wsd"] = const, wsd

        if "wsds" in arms:
            out["wsds"] = _single_branch(
                setup,
                ctx,
                "wsds",
                initial,
                bar,
                lambda opt: WSDS(
                    opt,
                    budgets=equal,
                    warmup_steps=setup.warmup_steps,
                    decay_fraction=setup.decay_fraction,
                    decay_shape=shape,  # type: ignore[arg-type]
                    min_lr_ratio=setup.min_lr_ratio,
                ),
                equal,
            )
        if "cyclic" in arms:
            out["cyclic"] = _single_branch(
                setup,
                ctx,
                "cyclic",
                initial,
                bar,
                lambda opt: CyclicCosine(
                    opt,
                    budgets=equal,
                    warmup_steps=setup.warmup_steps,
                    rewarmup_steps=setup.rewarmup_steps,
                    min_lr_ratio=setup.min_lr_ratio,
                ),
                equal,
            )
        if "cosine" in arms:
            oracle = ArmOutcome()
            for budget, oracle_lr in zip(equal, setup.oracle_lr, strict=True):
                trainer = _new_trainer(
                    setup,
                    ctx,
                    "cosine",
                    initial,
                    lambda opt, b=budget: WarmupCosine(
                        opt,
                        total_steps=b,
                        warmup_steps=setup.warmup_steps,
                        min_lr_ratio=setup.min_lr_ratio,
                    ),
                    peak_lr=oracle_lr,
                )
                curve: list[CurvePoint] = []
                trainer.run(0, budget, oracle, bar, curve)
                oracle.branch_curves.append(curve)
                oracle.lr_traces.append(trainer.lr_trace)
                oracle.checkpoints.append(trainer.checkpoint())
                oracle.checkpoint_steps.append(budget)
            oracle.curve = oracle.branch_curves[-1]
            out["cosine"] = oracle
    return out


def _single_branch(
    setup: ArmSetup,
    ctx: RunContext,
    arm: str,
    initial: nn.Module,
    bar,
    factory: Callable[[torch.optim.Optimizer], LRScheduler],
    checkpoints: list[int],
) -> ArmOutcome:
    trainer = _new_trainer(setup, ctx, arm, initial, factory)
    outcome = ArmOutcome()
    position = 0
    for budget in checkpoints:
        trainer.run(position, budget, outcome, bar, outcome.curve)
        outcome.checkpoints.append(trainer.checkpoint())
        outcome.checkpoint_steps.append(budget)
        position = budget
    outcome.lr_traces.append(trainer.lr_trace)
    return outcome


def build_setup(
    cfg, ctx: RunContext, corpus, peak_lr: dict[str, float], oracle_lr: Sequence[float]
) -> ArmSetup:
    """The shared pieces of an experiment config (see ``schedules.experiments``);
    ``oracle_lr``: the oracle cosine's peak rate for each budget."""
    model_kwargs = (
        {"context": cfg.context, "embed": cfg.embed, "hidden": cfg.hidden}
        if cfg.model == "mlp"
        else {"dim": cfg.dim, "layers": cfg.layers, "heads": cfg.heads, "context": cfg.context}
    )
    probe = build_model(cfg.model, **model_kwargs)
    window = window_length(probe, cfg.predictions_per_window)
    budgets = [cfg.budget * m for m in cfg.budget_multipliers]
    decays = [decay_steps(t, cfg.decay_fraction) for t in budgets]
    max_step = budgets[-1] + sum(decays)
    init_seed = ctx.seed

    def make_model() -> nn.Module:
        torch.manual_seed(init_seed)
        return build_model(cfg.model, **model_kwargs)

    return ArmSetup(
        make_model=make_model,
        stream=BatchStream(corpus.train, window, cfg.batch_size, max_step, seed=10_000 + ctx.seed),
        checkpoint_eval=Evaluator(corpus.valid, window, cfg.eval_windows),
        curve_eval=Evaluator(corpus.valid, window, cfg.curve_windows),  # a prefix of the above
        budgets=budgets,
        warmup_steps=cfg.warmup_steps,
        rewarmup_steps=cfg.rewarmup_steps,
        decay_fraction=cfg.decay_fraction,
        decay_shape=cfg.decay_shape,
        min_lr_ratio=cfg.min_lr_ratio,
        weight_decay=cfg.weight_decay,
        peak_lr=peak_lr,
        oracle_lr=list(oracle_lr),
        curve_every=max(1, cfg.budget // cfg.curve_points),
    )
