"""Figures and tables for the S7 reproductions (drawn from ``Result.data``)."""

from __future__ import annotations

import statistics
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from provenml.core import RunContext
from provenml.core.results import Table

COLOURS = {
    "random": "0.6",
    "mocov2": "tab:blue",
    "densecl": "tab:red",
    "densecl_w1": "tab:orange",
}
LABELS = {
    "random": "random init",
    "mocov2": "MoCo-v2",
    "densecl": "DenseCL",
    "densecl_w1": "DenseCL (w = 1)",
}
METRICS = (
    ("probe", "probe mIoU"),
    ("fcn_few", "FCN mIoU, few labels"),
    ("fcn_all", "FCN mIoU, all labels"),
    ("knn", "kNN accuracy"),
)


def _bars(ax: Any, values: dict[str, list[float]], ylabel: str) -> None:
    arms = list(values)
    means = [float(np.mean(values[a])) for a in arms]
    errors = [float(np.std(values[a])) if len(values[a]) > 1 else 0.0 for a in arms]
    ax.bar(
        range(len(arms)),
        means,
        yerr=errors,
        color=[COLOURS.get(a, "0.3") for a in arms],
        capsize=3,
    )
    for i, arm in enumerate(arms):
        ax.scatter([i] * len(values[arm]), values[arm], color="k", s=8, zorder=3)
    ax.set_xticks(range(len(arms)), [LABELS.get(a, a) for a in arms], rotation=20, ha="right")
    ax.set_ylabel(ylabel)


def _scores(seeds: list[dict[str, dict[str, Any]]], key: str) -> dict[str, list[float]]:
    arms = list(seeds[0])
    return {arm: [runs[arm][key] for runs in seeds if arm in runs] for arm in arms}


def transfer_seed(runs: dict[str, dict[str, Any]], ctx: RunContext) -> None:
    """Scores per arm, and the pre-training losses of the pre-trained arms."""
    transfer_summary([runs], ctx, name="transfer")


def transfer_summary(
    seeds: list[dict[str, dict[str, Any]]], ctx: RunContext, name: str = "transfer_summary"
) -> None:
    """Bars (mean, sd, and each seed as a dot) for every evaluation; loss curves below."""
    fig, axes = plt.subplots(2, 4, figsize=(15, 7))
    for ax, (key, label) in zip(axes[0], METRICS, strict=True):
        _bars(ax, _scores(seeds, key), label + " (%)")
    for ax, (loss, label) in zip(
        axes[1][:2],
        (("loss_global", "global loss L_q"), ("loss_dense", "dense loss L_r")),
        strict=True,
    ):
        for runs in seeds:
            for arm, run in runs.items():
                curve = run.get("curve")
                if not curve:
                    continue
                values = np.asarray(curve[loss], dtype=float)
                if np.all(np.isnan(values)):
                    continue
                ax.plot(curve["step"], values, color=COLOURS.get(arm, "0.3"), lw=0.8, alpha=0.8)
        ax.set_xlabel("pre-training step")
        ax.set_ylabel(label)
    ax = axes[1][2]
    _bars(ax, _scores(seeds, "overlap_matched"), "correspondence overlap")
    chance = [runs[a]["overlap_chance"] for runs in seeds for a in runs]
    ax.axhline(float(np.mean(chance)), color="k", ls="--", lw=0.8, label="chance")
    ax.legend()
    axes[1][3].axis("off")
    handles = [plt.Line2D([], [], color=COLOURS[a], label=LABELS[a]) for a in COLOURS]
    axes[1][3].legend(handles=handles, loc="center")
    fig.tight_layout()
    ctx.savefig(fig, name)


def mean_table(seeds: list[dict[str, dict[str, Any]]], labels: dict[str, str]) -> Table:
    """Mean (and sd) over seeds of every score, per arm."""
    rows = []
    for arm in seeds[0]:
        row: list[Any] = [labels.get(arm, arm), len([s for s in seeds if arm in s])]
        for key, _ in METRICS:
            values = [runs[arm][key] for runs in seeds if arm in runs]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            row.append(f"{statistics.mean(values):.2f} ± {sd:.2f}")
        rows.append(row)
    return Table(
        "mean ± sd over seeds",
        ["arm", "seeds", *(label for _, label in METRICS)],
        rows,
    )


def single_object_seed(by_kind: dict[str, dict[str, dict[str, Any]]], ctx: RunContext) -> None:
    """Scores per arm, side by side for the two pre-training sets."""
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
    kinds = list(by_kind)
    width = 0.38
    for ax, (key, label) in zip(axes, METRICS, strict=True):
        for j, kind in enumerate(kinds):
            arms = list(by_kind[kind])
            xs = np.arange(len(arms)) + (j - 0.5) * width
            ax.bar(
                xs,
                [by_kind[kind][a][key] for a in arms],
                width,
                color=[COLOURS[a] for a in arms],
                alpha=1.0 if kind == "multi" else 0.5,
                hatch=None if kind == "multi" else "//",
                label=f"{kind}-object pre-training",
            )
            ax.set_xticks(np.arange(len(arms)), [LABELS[a] for a in arms])
        ax.set_ylabel(label + " (%)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    ctx.savefig(fig, "single_object")


def single_object_summary(summaries: list[dict[str, float]], ctx: RunContext) -> None:
    """DenseCL - MoCo-v2 gap per evaluation, multi vs single pre-training, every seed."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for j, kind in enumerate(("multi", "single")):
        for i, (key, _) in enumerate(METRICS):
            gaps = [s[f"{kind}/gap/{key}"] for s in summaries if f"{kind}/gap/{key}" in s]
            if not gaps:
                continue
            x = i + (j - 0.5) * 0.38
            ax.bar(
                x,
                float(np.mean(gaps)),
                0.38,
                color="tab:red" if kind == "multi" else "0.6",
                label=f"{kind}-object pre-training" if i == 0 else None,
            )
            ax.scatter([x] * len(gaps), gaps, color="k", s=8, zorder=3)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(METRICS)), [label for _, label in METRICS], rotation=15)
    ax.set_ylabel("DenseCL - MoCo-v2 (points)")
    ax.legend()
    fig.tight_layout()
    ctx.savefig(fig, "single_object_gaps")


def overhead(runs: dict[str, dict[str, Any]], ctx: RunContext) -> None:
    """Per-iteration times of both methods on every pipeline (box plots)."""
    fig, axes = plt.subplots(1, len(runs), figsize=(4.5 * len(runs), 3.8), squeeze=False)
    for ax, (name, run) in zip(axes[0], runs.items(), strict=True):
        data = [run["seconds"]["mocov2"], run["seconds"]["densecl"]]
        ax.boxplot(data)
        ax.set_xticks([1, 2], ["MoCo-v2", "DenseCL"])
        ax.set_title(f"{name}: ratio {run['time_ratio']:.3f} (FLOPs {run['flops_ratio']:.3f})")
        ax.set_ylabel("seconds per iteration")
    fig.tight_layout()
    ctx.savefig(fig, "overhead")
