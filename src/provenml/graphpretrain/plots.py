"""Plots of the reproductions (matplotlib; the harness selects the Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from provenml.graphpretrain.stats import TaskComparison

__all__ = ["label_sweep", "reduction_per_task"]


def reduction_per_task(
    comparisons: Sequence[TaskComparison], groups: Mapping[str, str], title: str
) -> Figure:
    """Mean relative error reduction per task with its 95% interval; filled markers are the
    tasks significant after Holm's correction, colours the task groups."""
    import matplotlib.pyplot as plt

    colours = {"seen": "tab:blue", "unseen": "tab:orange", "molecules": "tab:green"}
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(comparisons) + 1.4))
    for i, c in enumerate(comparisons):
        colour = colours.get(groups.get(c.task, ""), "tab:gray")
        ax.errorbar(
            100 * c.reduction,
            i,
            xerr=[
                [100 * (c.reduction - c.reduction_low)],
                [100 * (c.reduction_high - c.reduction)],
            ],
            fmt="o",
            color=colour,
            mfc=colour if c.significant else "white",
            capsize=2,
        )
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(range(len(comparisons)), [c.task for c in comparisons], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("error reduction vs. from scratch (%), mean and 95% CI over seeds")
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=col, label=name)
        for name, col in colours.items()
        if name in groups.values()
    ]
    handles.append(
        plt.Line2D(
            [], [], marker="o", ls="", color="gray", mfc="white", label="not significant (Holm)"
        )
    )
    ax.legend(handles=handles, fontsize=7, loc="best")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def label_sweep(sweep: Mapping[str, Mapping[int, Mapping[str, float]]]) -> Figure:
    """Test error against the number of training labels, pre-trained vs. from scratch."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sweep), figsize=(3.6 * len(sweep), 3), squeeze=False)
    for ax, (task, by_labels) in zip(axes[0], sweep.items(), strict=True):
        labels = sorted(by_labels)
        for arm, style in (("pretrained", "o-"), ("scratch", "s--")):
            ax.plot(labels, [by_labels[n][arm] for n in labels], style, label=arm)
        ax.set_xscale("log")
        ax.set_xlabel("training labels")
        ax.set_ylabel("test error")
        ax.set_title(task, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
