"""Figures for the S9 reproductions, drawn from ``Result.data`` (so they can be redrawn).

matplotlib is imported by the functions that draw (the harness picks its backend).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from provenml.core import RunContext

ARM_COLOURS = {"clean": "0.4", "raw": "tab:red", "cleaned": "tab:blue"}
FILTER_COLOURS = {"ldn": "tab:blue", "gcn_ldn": "tab:orange", "prototype": "tab:green"}


def _shots(runs: dict[str, Any]) -> list[int]:
    first = next(iter(runs.values()))
    return sorted(int(k) for k in first["mean"])


def _rhos(runs: dict[str, Any], arm: str) -> list[float]:
    return sorted(float(k.split("@")[1]) for k in runs if k.startswith(f"{arm}@"))


def _accuracy_vs_rho(ax: Any, runs_per_seed: Sequence[dict[str, Any]], shot: int) -> None:
    """Accuracy of the raw and cleaned arms against rho, clean-only as a band; mean over
    seeds, error bars: the mean of the seeds' 95% episode intervals."""
    s = str(shot)
    runs0 = runs_per_seed[0]
    if "clean" in runs0:
        mean = np.mean([r["clean"]["mean"][s] for r in runs_per_seed]) * 100
        ci = np.mean([r["clean"]["ci95"][s] for r in runs_per_seed]) * 100
        ax.axhspan(mean - ci, mean + ci, color=ARM_COLOURS["clean"], alpha=0.2)
        ax.axhline(mean, color=ARM_COLOURS["clean"], label="clean only")
    for arm, label in (("raw", "+ raw web"), ("cleaned", "+ cleaned web")):
        rhos = _rhos(runs0, arm)
        if not rhos:
            continue
        means = [np.mean([r[f"{arm}@{x}"]["mean"][s] for r in runs_per_seed]) * 100 for x in rhos]
        cis = [np.mean([r[f"{arm}@{x}"]["ci95"][s] for r in runs_per_seed]) * 100 for x in rhos]
        ax.errorbar(
            rhos, means, yerr=cis, marker="o", capsize=3, color=ARM_COLOURS[arm], label=label
        )
    ax.set_xlabel("irrelevant fraction of the web pool (rho)")
    ax.set_ylabel(f"5-way {shot}-shot accuracy (%)")
    ax.set_title(f"{shot}-shot")
    ax.legend(fontsize=8)


def _scarce_figure(runs_per_seed: Sequence[dict[str, Any]], title: str) -> Any:
    import matplotlib.pyplot as plt

    shots = _shots(runs_per_seed[0])
    fig, axes = plt.subplots(1, len(shots), figsize=(4.5 * len(shots), 3.6), squeeze=False)
    for ax, shot in zip(axes[0], shots, strict=True):
        _accuracy_vs_rho(ax, runs_per_seed, shot)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def scarce_seed(data: dict[str, Any], shots: Sequence[int], ctx: RunContext) -> None:
    """One seed's (or one part's) accuracies against rho."""
    if not data.get("runs"):
        return
    ctx.savefig(
        _scarce_figure([data["runs"]], "scarce-source few-shot (one seed)"), "accuracy_vs_rho"
    )


def scarce_summary(datas: Sequence[dict[str, Any]], ctx: RunContext) -> None:
    runs = [d["runs"] for d in datas if d.get("runs")]
    if runs:
        title = f"scarce-source few-shot, mean over {len(runs)} seed(s)"
        ctx.savefig(_scarce_figure(runs, title), "accuracy_vs_rho")


def _heads_figure(
    runs_per_seed: Sequence[dict[str, Any]], labels: dict[str, str], title: str
) -> Any:
    import matplotlib.pyplot as plt

    heads = list(runs_per_seed[0])
    shots = _shots(runs_per_seed[0])
    fig, ax = plt.subplots(figsize=(1.3 * len(heads) * len(shots) + 2, 3.6))
    width = 0.8 / len(shots)
    x = np.arange(len(heads))
    for i, shot in enumerate(shots):
        s = str(shot)
        means = [np.mean([r[h]["mean"][s] for r in runs_per_seed]) * 100 for h in heads]
        cis = [np.mean([r[h]["ci95"][s] for r in runs_per_seed]) * 100 for h in heads]
        ax.bar(x + i * width, means, width, yerr=cis, capsize=3, label=f"{shot}-shot")
    ax.set_xticks(x + width * (len(shots) - 1) / 2)
    ax.set_xticklabels([labels.get(h, h) for h in heads], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("5-way accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def heads_seed(
    data: dict[str, Any], shots: Sequence[int], labels: dict[str, str], ctx: RunContext, name: str
) -> None:
    if data.get("runs"):
        ctx.savefig(_heads_figure([data["runs"]], labels, f"{name}: heads (one seed)"), "heads")


def heads_summary(
    datas: Sequence[dict[str, Any]], labels: dict[str, str], ctx: RunContext, name: str
) -> None:
    runs = [d["runs"] for d in datas if d.get("runs")]
    if runs:
        title = f"{name}: heads, mean over {len(runs)} seed(s)"
        ctx.savefig(_heads_figure(runs, labels, title), "heads")


def _denoising_figure(datas: Sequence[dict[str, Any]], title: str) -> Any:
    import matplotlib.pyplot as plt

    filters = datas[0]["filters"]
    names = sorted({k.split("@")[0] for k in filters})
    rhos = sorted({float(k.split("@")[1]) for k in filters})
    metrics = ("precision", "recall", "auroc")
    fig, axes = plt.subplots(1, len(metrics), figsize=(12, 3.4))
    for ax, metric in zip(axes, metrics, strict=True):
        for name in names:
            values = [
                np.nanmean([d["filters"][f"{name}@{r}"][metric] for d in datas]) for r in rhos
            ]
            ax.plot(rhos, values, marker="o", label=name, color=FILTER_COLOURS.get(name))
        ax.set_xlabel("rho")
        ax.set_title(metric)
        ax.set_ylim(0, 1.02)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def denoising_seed(data: dict[str, Any], ctx: RunContext) -> None:
    if data.get("filters"):
        ctx.savefig(_denoising_figure([data], "web filters (one seed)"), "filters")


def denoising_summary(datas: Sequence[dict[str, Any]], ctx: RunContext) -> None:
    datas = [d for d in datas if d.get("filters")]
    if datas:
        title = f"web filters, mean over {len(datas)} seed(s)"
        ctx.savefig(_denoising_figure(datas, title), "filters")
