"""Plots of the S2 reproductions: learning curves over seeds, the gap against the session rate.

Called by :mod:`provenml.metarl.experiments`; the runner sets matplotlib's backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["plot_learning_curves", "plot_rate_gaps", "smooth"]


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Moving average over ``window`` points (the values unchanged if fewer or ``window <= 1``)."""
    values = np.asarray(values, dtype=float)
    if len(values) < window or window <= 1:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot_learning_curves(
    runs: list[dict[str, dict[str, Any]]], title: str, labels: Mapping[str, str]
) -> Any:
    """Training return per episode against env steps, mean and range over ``runs`` (seeds)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name in runs[0]:
        curves = [np.asarray(r[name]["curve_returns"]) for r in runs]
        steps = np.asarray(runs[0][name]["curve_steps"])
        window = max(1, len(steps) // 20)
        smoothed = np.stack([smooth(c, window) for c in curves])
        x = steps[window - 1 :] if window > 1 and len(steps) >= window else steps
        mean = smoothed.mean(0)
        (line,) = ax.plot(x, mean, label=labels.get(name, name))
        if len(curves) > 1:
            ax.fill_between(x, smoothed.min(0), smoothed.max(0), alpha=0.15, color=line.get_color())
    ax.set_xlabel("environment steps")
    ax.set_ylabel("training return per episode")
    ax.set_title(f"{title} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
    ax.legend(fontsize=8)
    return fig


def plot_rate_gaps(rates: Sequence[float], gaps: np.ndarray) -> Any:
    """The DynaMITE-RL - VariBAD return gap per session rate; ``gaps`` is (seeds, rates)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    positions = np.arange(len(rates))
    ax.errorbar(
        positions,
        gaps.mean(0),
        yerr=gaps.std(0) if len(gaps) > 1 else None,
        marker="o",
        capsize=3,
    )
    for row in gaps:
        ax.plot(positions, row, ".", color="grey", alpha=0.6)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(positions, [str(p) for p in rates])
    ax.set_xlabel("session-end probability p")
    ax.set_ylabel("return gap: DynaMITE-RL - VariBAD")
    ax.set_title(f"gap against the session rate ({len(gaps)} seeds)")
    return fig
