"""Statistics of the reproductions: Holm's correction, paired one-sided tests per task, and the
relative error reduction with its confidence interval.

The paired t-test and the Student-t interval are scipy's (``scipy.stats.ttest_rel``,
``scipy.stats.t``); Holm's step-down correction is written out here (scipy has none).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from provenml.errors import ProvenmlError

__all__ = ["TaskComparison", "compare_tasks", "holm", "paired_p", "relative_reduction"]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (Holm 1979), in the input order.

    With ``p_(1) <= ... <= p_(m)`` sorted, ``adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``;
    rejecting every hypothesis with ``adj <= alpha`` controls the family-wise error at
    ``alpha``. NaN p-values (an untestable task) stay NaN and do not count towards ``m``.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = finite.size
    if m == 0:
        return out.tolist()
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out.tolist()


def paired_p(ours: Sequence[float], baseline: Sequence[float]) -> float:
    """One-sided paired t-test p-value for ``mean(ours - baseline) < 0`` (scipy)."""
    a, b = np.asarray(ours, float), np.asarray(baseline, float)
    if a.shape != b.shape or a.size < 2:
        raise ProvenmlError(
            f"a paired test needs two equal-length samples of >= 2, got {a.size}, {b.size}"
        )
    diff = a - b
    if np.allclose(diff, diff[0]):  # no variance: the sign decides
        return 0.0 if diff[0] < 0 else 1.0
    from scipy.stats import ttest_rel

    return float(ttest_rel(a, b, alternative="less").pvalue)


def relative_reduction(ours: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """Per seed, the fraction of the baseline's error that ``ours`` removes:
    ``(baseline - ours) / baseline`` (positive: ours is better)."""
    return [(b - o) / b if b > 0 else math.nan for o, b in zip(ours, baseline, strict=True)]


@dataclass(frozen=True)
class TaskComparison:
    """One task's paired comparison: mean errors, raw and Holm-adjusted one-sided p-values,
    the mean relative error reduction and its 95% Student-t interval."""

    task: str
    ours_mean: float
    baseline_mean: float
    p_value: float
    p_holm: float
    reduction: float
    reduction_low: float
    reduction_high: float
    significant: bool
    n: int


def _interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    x = np.asarray([v for v in values if not math.isnan(v)], float)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2 or float(x.std()) == 0.0:
        return mean, mean, mean
    from scipy import stats

    low, high = stats.t.interval(confidence, df=x.size - 1, loc=mean, scale=stats.sem(x))
    return mean, float(low), float(high)


def compare_tasks(
    ours: Mapping[str, Sequence[float]],
    baseline: Mapping[str, Sequence[float]],
    alpha: float = 0.01,
) -> list[TaskComparison]:
    """Paired one-sided tests of ``ours < baseline`` (errors) on every task, Holm-corrected
    over the tasks; a task is significant when its adjusted p-value is at most ``alpha``."""
    names = list(ours)
    raw = [paired_p(ours[n], baseline[n]) for n in names]
    adjusted = holm(raw)
    out = []
    for name, p, p_adj in zip(names, raw, adjusted, strict=True):
        mean, low, high = _interval(relative_reduction(ours[name], baseline[name]))
        out.append(
            TaskComparison(
                task=name,
                ours_mean=float(np.mean(ours[name])),
                baseline_mean=float(np.mean(baseline[name])),
                p_value=p,
                p_holm=p_adj,
                reduction=mean,
                reduction_low=low,
                reduction_high=high,
                significant=bool(p_adj <= alpha),
                n=len(ours[name]),
            )
        )
    return out
