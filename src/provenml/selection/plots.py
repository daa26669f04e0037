"""Figures for the S1 reproductions, drawn from ``Result.data`` over seeds (so they can be
redrawn from a run's ``result.json`` files).

matplotlib is imported by the functions that draw (the harness picks its backend), so importing
this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from provenml.core.context import RunContext
    from provenml.core.results import Result


def _mean_curves(results: Sequence[Result], label: str, key: str) -> tuple[np.ndarray, ...]:
    runs = [r.data["runs"][label] for r in results if label in r.data.get("runs", {})]
    length = min(len(run[key]) for run in runs)
    x = np.mean([run[key][:length] for run in runs], axis=0)
    metric = np.mean([run["metric"][:length] for run in runs], axis=0)
    return x, metric


def curves(results: Sequence[Result], ctx: RunContext, name: str, metric: str) -> None:
    """The metric against learner updates and against total FLOPs, one line per run (mean of
    the seeds), with uniform's final value (the target) dotted."""
    import matplotlib.pyplot as plt

    labels = list(results[0].data["runs"])
    target = float(np.mean([r.summary["target_metric"] for r in results]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label in labels:
        steps, values = _mean_curves(results, label, "steps")
        flops, _ = _mean_curves(results, label, "flops")
        axes[0].plot(steps, values, label=label)
        axes[1].plot(flops / 1e12, values, label=label)
    for ax, xlabel in zip(
        axes, ["learner updates", "total TFLOPs (everything counted)"], strict=True
    ):
        ax.axhline(target, color="grey", ls=":", lw=1, label="uniform final")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{name}: {metric}, mean of {len(results)} seed(s)")
    ctx.savefig(fig, f"{name.split('.')[-1]}_curves")


def noisy_fraction(results: Sequence[Result], ctx: RunContext) -> None:
    """Bar chart: the fraction of selected examples that were corrupted, per run."""
    import matplotlib.pyplot as plt

    labels = list(results[0].data["runs"])
    fractions = [np.mean([r.summary[f"noisy_fraction/{lb}"] for r in results]) for lb in labels]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(labels, fractions, color="tab:red", alpha=0.7)
    ax.set_ylabel("fraction of selected examples\nthat were corrupted")
    ax.tick_params(axis="x", rotation=30)
    ax.grid(alpha=0.3, axis="y")
    ctx.savefig(fig, "noisy_fraction")


def scorer_size(results: Sequence[Result], ctx: RunContext) -> None:
    """Update saving against compute saving, one point per scorer width (mean of the seeds)."""
    import matplotlib.pyplot as plt

    widths = results[0].data["widths"]
    upd = [np.mean([r.summary[f"update_saving/width_{w}"] for r in results]) for w in widths]
    comp = [np.mean([r.summary[f"compute_saving/width_{w}"] for r in results]) for w in widths]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.plot(upd, comp, "o-")
    for w, u, c in zip(widths, upd, comp, strict=True):
        ax.annotate(f"width {w}", (u, c), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.axhline(0, color="grey", lw=1)
    ax.axvline(0, color="grey", lw=1)
    top = max(max(upd), max(comp), 0.05)
    ax.plot([0, top], [0, top], ls="--", color="grey", lw=1, label="no scoring overhead")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_xlabel("learner-update saving vs uniform")
    ax.set_ylabel("total-compute saving vs uniform")
    ax.set_title(f"scorer size (actor = reference width), {len(results)} seed(s)")
    ax.grid(alpha=0.3)
    ctx.savefig(fig, "scorer_size")
