"""Aggregation over seeds: means, 95% confidence intervals and paired / Welch tests (scipy).

scipy is imported inside the functions, so that reading claims does not load it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Alternative = Literal["less", "greater", "two-sided"]


@dataclass(frozen=True)
class Summary:
    """Mean and Student-t confidence interval of a sample (the interval is NaN for n < 2)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def format(self, digits: int = 3) -> str:
        if self.n < 2 or math.isnan(self.half_width):
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean and two-sided ``confidence`` interval from the t distribution with n-1 d.o.f."""
    x = np.asarray(values, dtype=float)
    n = int(x.size)
    if n == 0:
        return Summary(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return Summary(mean, math.nan, math.nan, n)
    from scipy import stats as sps

    sem = float(sps.sem(x))
    if sem == 0.0:
        return Summary(mean, mean, mean, n)
    low, high = sps.t.interval(confidence, df=n - 1, loc=mean, scale=sem)
    return Summary(mean, float(low), float(high), n)


def paired_test(
    ours: Sequence[float], baseline: Sequence[float], alternative: Alternative = "less"
) -> float:
    """One-sided paired t-test p-value of ``ours - baseline`` (seed-matched runs)."""
    a, b = np.asarray(ours, float), np.asarray(baseline, float)
    if a.shape != b.shape:
        raise ValueError(f"paired test needs equal lengths, got {a.size} and {b.size}")
    diff = a - b
    if np.allclose(diff, diff[0]):  # zero variance: the sign decides
        sign_ok = diff[0] < 0 if alternative == "less" else diff[0] > 0
        return 0.0 if sign_ok and diff[0] != 0 else 1.0
    from scipy import stats as sps

    return float(sps.ttest_rel(a, b, alternative=alternative).pvalue)


def welch_test(
    ours: Sequence[float], baseline: Sequence[float], alternative: Alternative = "less"
) -> float:
    """One-sided Welch (unequal variance) t-test p-value of mean(ours) vs mean(baseline)."""
    a, b = np.asarray(ours, float), np.asarray(baseline, float)
    if a.std() == 0 and b.std() == 0:
        gap = a.mean() - b.mean()
        sign_ok = gap < 0 if alternative == "less" else gap > 0
        return 0.0 if sign_ok else 1.0
    from scipy import stats as sps

    return float(sps.ttest_ind(a, b, equal_var=False, alternative=alternative).pvalue)
