"""Warmup-Stable-Decay learning-rate schedules (Wen et al. 2024, arXiv 2410.05192).

Every schedule here is a closed-form function ``factor(t)`` of the optimizer step ``t`` (the
index of the update about to be taken, 0-based), multiplied by each parameter group's peak rate
(the ``lr`` the optimizer was built with). Closed forms make resuming exact: a scheduler restored
with :meth:`load_state_dict` sets the optimizer's rate to ``factor(t)`` at once, so a restart can
neither fall back to the initial rate nor skip the end of a decay.

Conventions, shared by all schedules (``W`` warmup steps, ``r`` = ``min_lr_ratio``):

* warmup: ``factor(t) = (t + 1) / W`` for ``t < W`` (the peak is reached at step ``W - 1``);
* a decay of ``D`` steps ending at budget ``T`` runs over ``t = T - D, ..., T - 1`` with progress
  ``p = (t - (T - D) + 1) / D``, so the last update before the checkpoint at ``T`` uses exactly
  ``r`` times the peak.
"""

from __future__ import annotations

import bisect
import itertools
import math
import numbers
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from provenml.core.registry import Registry
from provenml.errors import ProvenmlError

DecayShape = Literal["linear", "cosine", "1-sqrt", "inverse"]

#: Decay shapes by name: ``f(p, r)``, the rate multiplier at decay progress ``p`` in [0, 1)
#: with minimum ratio ``r`` (formulas in :func:`decay_factor`).
DECAYS: Registry[Callable[[float, float], float]] = Registry("decay shape", normalize=str)
DECAYS.register("linear", lambda p, r: 1.0 - (1.0 - r) * p)
DECAYS.register("cosine", lambda p, r: r + (1.0 - r) * 0.5 * (1.0 + math.cos(math.pi * p)))
DECAYS.register("1-sqrt", lambda p, r: 1.0 - (1.0 - r) * math.sqrt(p))
DECAYS.register("inverse", lambda p, r: 1.0 / (p * (1.0 / r - 1.0) + 1.0))
DECAY_SHAPES: tuple[str, ...] = tuple(DECAYS.names())


def decay_factor(progress: float, shape: str, min_ratio: float) -> float:
    """Rate multiplier at decay ``progress`` p in [0, 1], from 1 at p = 0 to ``min_ratio`` at 1.

    Shapes (Wen et al. 2024, Sec. 2 and App. on decay functions; r = ``min_ratio``):

    * ``linear``:  1 - (1 - r) p
    * ``cosine``:  r + (1 - r) (1 + cos(pi p)) / 2
    * ``1-sqrt``:  1 - (1 - r) sqrt(p)
    * ``inverse``: 1 / (p (1/r - 1) + 1), the inverse-proportional decay eta / (t (1/r - 1) + 1)

    ``progress`` outside [0, 1] is clipped to it.
    """
    _check_shape(shape, min_ratio, "min_ratio")
    p = min(max(_real("progress", progress), 0.0), 1.0)
    if p == 1.0:  # exactly the minimum at the end of every decay, free of rounding
        return min_ratio
    return DECAYS.get(shape)(p, min_ratio)


def decay_steps(stretch: int, decay_fraction: float) -> int:
    """Length of a decay that takes ``decay_fraction`` of a ``stretch`` of steps (at least 1)."""
    stretch = _integer("stretch", stretch, minimum=1)
    return max(1, round(_fraction("decay_fraction", decay_fraction) * stretch))


# --------------------------------------------------------------------------------------------
# Argument checks: every bad value is one ProvenmlError that names the argument
# --------------------------------------------------------------------------------------------


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ProvenmlError(message)


def _integer(name: str, value: Any, minimum: int | None = None) -> int:
    """``value`` as an int (a Python or numpy integer; not a bool, not a float such as 100.7)."""
    if isinstance(value, bool):
        raise ProvenmlError(f"{name} must be an integer, got the bool {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ProvenmlError(
            f"{name} must be an integer, got {value!r} ({type(value).__name__})"
        ) from None
    if minimum is not None and number < minimum:
        raise ProvenmlError(f"{name} must be at least {minimum}, got {number}")
    return number


def _real(name: str, value: Any) -> float:
    """``value`` as a finite float (any real number but a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ProvenmlError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not math.isfinite(number):
        raise ProvenmlError(f"{name} must be finite, got {number}")
    return number


def _fraction(name: str, value: Any) -> float:
    """A number in (0, 1]."""
    number = _real(name, value)
    _check(0 < number <= 1, f"{name} must be in (0, 1], got {number}")
    return number


def _ratio(name: str, value: Any) -> float:
    """A number in [0, 1]."""
    number = _real(name, value)
    _check(0 <= number <= 1, f"{name} must be in [0, 1], got {number}")
    return number


def _check_shape(shape: Any, min_ratio: Any, ratio_name: str) -> float:
    if not isinstance(shape, str) or shape not in DECAY_SHAPES:
        raise DECAYS.unknown(str(shape))
    ratio = _ratio(ratio_name, min_ratio)
    _check(
        shape != "inverse" or ratio > 0,
        f"the inverse decay needs {ratio_name} > 0 (it is 1 / (p (1/r - 1) + 1))",
    )
    return ratio


def _check_optimizer(optimizer: Any) -> None:
    if not isinstance(optimizer, Optimizer):
        raise ProvenmlError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )


def _check_last_epoch(optimizer: Optimizer, last_epoch: Any) -> int:
    """``last_epoch`` >= -1. Resuming (``last_epoch >= 0``) needs each group's peak rate in
    ``initial_lr``, which PyTorch's schedulers write when they are built; an optimizer that never
    had a scheduler runs at its peak, so its current ``lr`` is taken (PyTorch would raise
    ``KeyError: 'initial_lr'``)."""
    last_epoch = _integer("last_epoch", last_epoch, minimum=-1)
    if last_epoch >= 0:
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
    return last_epoch


def _validated_budgets(budgets: Any) -> list[int]:
    if isinstance(budgets, str | bytes) or not isinstance(budgets, Iterable):
        raise ProvenmlError(f"budgets must be a sequence of step counts, got {budgets!r}")
    out = [_integer(f"budgets[{i}]", b) for i, b in enumerate(budgets)]
    _check(len(out) > 0, "budgets must not be empty")
    _check(
        out[0] > 0 and all(a < b for a, b in itertools.pairwise(out)),
        f"budgets must be positive and strictly increasing, got {out}",
    )
    return out


def _check_decay(decay_fraction: Any, decay_shape: Any, min_lr_ratio: Any) -> tuple[float, float]:
    fraction = _fraction("decay_fraction", decay_fraction)
    return fraction, _check_shape(decay_shape, min_lr_ratio, "min_lr_ratio")


class _ClosedFormScheduler(LRScheduler):
    """Base class: ``lr = peak * factor(t)``; subclasses implement :meth:`factor`."""

    def factor(self, step: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_lr(self) -> list[float]:  # type: ignore[override]
        f = self.factor(self.last_epoch)
        return [base * f for base in self.base_lrs]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()

    @property
    def peak_lrs(self) -> list[float]:
        return list(self.base_lrs)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the schedule and set the optimizer's rate for the step it resumes at."""
        super().load_state_dict(state_dict)
        f = self.factor(self.last_epoch)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * f
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


class WSD(_ClosedFormScheduler):
    """Warmup-Stable-Decay (Wen et al. 2024, Eq. 1): warm up, hold the peak, decay at the end.

    ``factor(t)`` is the warmup ramp for ``t < W``, 1 until ``total_steps - D`` with
    ``D = round(decay_fraction * total_steps)``, then :func:`decay_factor` down to
    ``min_lr_ratio`` at ``t = total_steps - 1``; it stays at ``min_lr_ratio`` afterwards.

    To branch a decay off a running main branch at step ``k`` (the WSD recipe for several
    budgets), copy the model and optimizer and build ``WSD(branch_opt, total_steps=T, ...,
    last_epoch=k - 1)`` on the copy, as for any PyTorch scheduler resumed at step ``k``. If the
    main branch ran without a scheduler, its optimizer's ``lr`` is taken as the peak (see
    docs/schedules.md for the recipe, tested in ``tests/schedules``).

    Every argument is checked before anything is built: a bad one raises
    :class:`~provenml.errors.ProvenmlError` naming it.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int,
        warmup_steps: int = 0,
        decay_fraction: float = 0.1,
        decay_shape: DecayShape = "linear",
        min_lr_ratio: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        total_steps = _integer("total_steps", total_steps, minimum=1)
        warmup_steps = _integer("warmup_steps", warmup_steps, minimum=0)
        decay_fraction, min_lr_ratio = _check_decay(decay_fraction, decay_shape, min_lr_ratio)
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.decay_fraction = decay_fraction
        self.decay_shape = decay_shape
        self.min_lr_ratio = min_lr_ratio
        self.decay_start = total_steps - decay_steps(total_steps, decay_fraction)
        _check(
            warmup_steps <= self.decay_start,
            f"warmup_steps ({warmup_steps}) must end before the decay starts "
            f"(step {self.decay_start})",
        )
        super().__init__(optimizer, _check_last_epoch(optimizer, last_epoch))

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if step < self.decay_start:
            return 1.0
        progress = (step - self.decay_start + 1) / (self.total_steps - self.decay_start)
        return decay_factor(progress, self.decay_shape, self.min_lr_ratio)


class WSDS(_ClosedFormScheduler):
    """WSD-S (Wen et al. 2024, Sec. 5): one branch, a decay before every budget, no re-warmup.

    The budgets ``T_1 < T_2 < ...`` split training into stretches ``[T_{i-1}, T_i)``; each ends
    with a decay over its last ``round(decay_fraction * (T_i - T_{i-1}))`` steps that reaches
    exactly ``min_lr_ratio`` at step ``T_i - 1``. Training then continues from the decayed
    weights and optimizer state straight at the peak rate. The checkpoint for budget ``T_i`` is
    the model after ``T_i`` updates (:attr:`checkpoint_steps`).

    Only the update that produces a checkpoint (update ``T_i - 1``) runs at the minimum: after
    its ``scheduler.step()`` the rate is already back at the peak for the next stretch (except
    after the last budget, where it stays at the minimum). Bad arguments raise
    :class:`~provenml.errors.ProvenmlError` naming them.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        budgets: Sequence[int],
        warmup_steps: int = 0,
        decay_fraction: float = 0.1,
        decay_shape: DecayShape = "linear",
        min_lr_ratio: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        budgets = _validated_budgets(budgets)
        warmup_steps = _integer("warmup_steps", warmup_steps, minimum=0)
        decay_fraction, min_lr_ratio = _check_decay(decay_fraction, decay_shape, min_lr_ratio)
        self.budgets = budgets
        self.warmup_steps = warmup_steps
        self.decay_fraction = decay_fraction
        self.decay_shape = decay_shape
        self.min_lr_ratio = min_lr_ratio
        starts = [0, *budgets[:-1]]
        self.decay_starts = [
            end - decay_steps(end - start, decay_fraction)
            for start, end in zip(starts, budgets, strict=True)
        ]
        _check(
            warmup_steps <= self.decay_starts[0],
            f"warmup_steps ({warmup_steps}) must end before the first decay "
            f"(step {self.decay_starts[0]})",
        )
        super().__init__(optimizer, _check_last_epoch(optimizer, last_epoch))

    @property
    def checkpoint_steps(self) -> list[int]:
        """Steps after which the model is a checkpoint (the budgets)."""
        return list(self.budgets)

    def factor(self, step: int) -> float:
        if step >= self.budgets[-1]:
            return self.min_lr_ratio
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        i = bisect.bisect_right(self.budgets, step)  # stretch index: budgets[i-1] <= step < T_i
        start, end = self.decay_starts[i], self.budgets[i]
        if step < start:
            return 1.0
        return decay_factor((step - start + 1) / (end - start), self.decay_shape, self.min_lr_ratio)


class CyclicCosine(_ClosedFormScheduler):
    """Cyclic cosine (the baseline of Wen et al. 2024, Sec. 5): one cosine cycle per budget.

    Stretch ``[T_{i-1}, T_i)`` starts with a linear ramp (from 0 over ``warmup_steps`` in the
    first stretch, from the minimum over ``rewarmup_steps`` in later ones) to the peak, then a
    cosine decay that reaches ``min_lr_ratio`` at step ``T_i - 1``. Bad arguments raise
    :class:`~provenml.errors.ProvenmlError` naming them.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        budgets: Sequence[int],
        warmup_steps: int = 0,
        rewarmup_steps: int = 0,
        min_lr_ratio: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        budgets = _validated_budgets(budgets)
        warmup_steps = _integer("warmup_steps", warmup_steps, minimum=0)
        rewarmup_steps = _integer("rewarmup_steps", rewarmup_steps, minimum=0)
        min_lr_ratio = _ratio("min_lr_ratio", min_lr_ratio)
        starts = [0, *budgets[:-1]]
        ramps = [warmup_steps] + [rewarmup_steps] * (len(budgets) - 1)
        for i, (start, end, ramp) in enumerate(zip(starts, budgets, ramps, strict=True)):
            name = "warmup_steps" if i == 0 else "rewarmup_steps"
            _check(
                ramp < end - start,
                f"{name} ({ramp}) does not fit in the stretch [{start}, {end}): it must be "
                "shorter than the stretch",
            )
        self.budgets = budgets
        self.warmup_steps = warmup_steps
        self.rewarmup_steps = rewarmup_steps
        self.min_lr_ratio = min_lr_ratio
        self._starts, self._ramps = starts, ramps
        super().__init__(optimizer, _check_last_epoch(optimizer, last_epoch))

    def factor(self, step: int) -> float:
        if step >= self.budgets[-1]:
            return self.min_lr_ratio
        i = bisect.bisect_right(self.budgets, step)
        start, end, ramp = self._starts[i], self.budgets[i], self._ramps[i]
        offset = step - start
        if offset < ramp:
            floor = 0.0 if i == 0 else self.min_lr_ratio
            return floor + (1.0 - floor) * (offset + 1) / ramp
        progress = (offset - ramp + 1) / (end - start - ramp)
        return decay_factor(progress, "cosine", self.min_lr_ratio)


class WarmupCosine(CyclicCosine):
    """Linear warmup then one cosine decay to ``min_lr_ratio`` at ``total_steps - 1``: the
    per-budget oracle when the budget is known in advance.

    With ``W = warmup_steps > 0`` its rates equal PyTorch's own composition
    ``SequentialLR([LinearLR(opt, 1 / W, 1.0, total_iters=W - 1),
    CosineAnnealingLR(opt, T_max=total_steps - W, eta_min=min_lr_ratio * peak)],
    milestones=[W - 1])`` (pinned by a test).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int,
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        self.total_steps = _integer("total_steps", total_steps, minimum=1)
        super().__init__(optimizer, [total_steps], warmup_steps, 0, min_lr_ratio, last_epoch)
