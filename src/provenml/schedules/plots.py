"""Figures for the S3 reproductions (drawn from ``Result.data``, so they can be redrawn).

matplotlib is imported by the functions that draw (the harness picks its backend), so importing
this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from provenml.schedules.multibudget import ARM_LABELS

if TYPE_CHECKING:
    from provenml.core.experiment import Result
    from provenml.core.run import RunContext

COLOURS = {
    "constant": "0.6",
    "wsd": "tab:blue",
    "wsds": "tab:red",
    "cyclic": "tab:green",
    "cosine": "tab:purple",
}


def _loss_axes(ax, data: dict) -> None:
    for budget in data["budgets"]:
        ax.axvline(budget, color="0.85", lw=0.8, zorder=0)
    ax.set_xlabel("optimizer steps along the arm's own trajectory")
    ax.set_ylabel("validation loss (nats/byte)")


def multibudget_seed(result: Result, ctx: RunContext, name: str = "wsd.multibudget") -> None:
    """Loss against steps for every arm (branches included), budgets marked; lr below."""
    import matplotlib.pyplot as plt

    data = result.data
    fig, (ax, ax_lr) = plt.subplots(
        2, 1, figsize=(9, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for arm, arm_data in data["arms"].items():
        colour, label = COLOURS[arm], ARM_LABELS[arm]
        curves = [arm_data["curve"]] if arm in ("constant", "wsds", "cyclic") else []
        curves += arm_data["branch_curves"]
        for i, curve in enumerate(curves):
            if curve:
                steps, losses, _ = zip(*curve, strict=True)
                ax.plot(
                    steps, losses, color=colour, lw=1.2, alpha=0.9, label=label if i == 0 else None
                )
        for trace in arm_data["lr_traces"]:
            if trace:
                trace_steps, rates = zip(*trace, strict=True)
                ax_lr.plot(trace_steps, rates, color=colour, lw=1)
        ax.scatter(
            arm_data["checkpoint_steps"],
            arm_data["checkpoints"],
            color=colour,
            marker="o",
            s=28,
            zorder=3,
        )
    _loss_axes(ax, data)
    finite = [v for a in data["arms"].values() for v in a["checkpoints"] if np.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) - 0.05, max(finite) + 0.6)
    ax.legend(loc="upper right")
    ax.set_title(
        f"{name}, seed {ctx.seed}: lines on a {data.get('curve_windows', '?')}-window "
        f"subset, dots (checkpoints) on {data.get('eval_windows', '?')} windows; grey: budgets"
    )
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("optimizer steps")
    ctx.savefig(fig, "loss_vs_steps")


def multibudget_summary(
    results: list[Result], ctx: RunContext, name: str = "wsd.multibudget"
) -> None:
    """Checkpoint loss against the compute spent to produce it, mean and 95% CI over seeds."""
    data = results[0].data
    multipliers = data["multipliers"]
    budgets, equal = data["budgets"], data["equal_compute_budgets"]
    spent = {
        "constant": budgets,
        "wsd": equal,
        "wsds": equal,
        "cyclic": equal,
        "cosine": list(np.cumsum(equal)),
    }
    import matplotlib.pyplot as plt

    from provenml.core.stats import summarize

    fig, ax = plt.subplots(figsize=(8, 5))
    for arm in data["arms"]:
        values = np.array([r.data["arms"][arm]["checkpoints"] for r in results])
        stats = [summarize(values[:, i]) for i in range(values.shape[1])]
        means = [s.mean for s in stats]
        errors = [0 if np.isnan(s.half_width) else s.half_width for s in stats]
        ax.errorbar(
            spent[arm],
            means,
            yerr=errors,
            color=COLOURS[arm],
            marker="o",
            capsize=3,
            label=ARM_LABELS[arm],
        )
        for x, y, m in zip(spent[arm], means, multipliers, strict=True):
            ax.annotate(
                f"{m}T",
                (x, y),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
                color=COLOURS[arm],
            )
    ax.set_xlabel("optimizer steps spent to produce checkpoints 1..i (all branches counted)")
    ax.set_ylabel("validation loss at checkpoint i (nats/byte)")
    ax.set_title(f"{name}: mean ± 95% CI over {len(results)} seed(s)")
    ax.legend()
    ctx.savefig(fig, "checkpoints_vs_compute")


def lr_sweep(result: Result, ctx: RunContext) -> None:
    """Mean checkpoint loss per peak rate for each schedule; the oracle per budget (dashed)."""
    import matplotlib.pyplot as plt

    data = result.data
    grid, losses = data["lr_grid"], data["losses"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for arm, scores in data["scores"].items():
        if arm != "cosine":
            ax.plot(grid, scores, marker="o", color=COLOURS[arm], label=ARM_LABELS[arm] + " (mean)")
    styles = ("--", "-.", ":")
    for i, m in enumerate(data["multipliers"]):
        values = [losses[key]["cosine"][i] for key in losses]
        ax.plot(
            grid,
            values,
            marker="s",
            ls=styles[i % len(styles)],
            color=COLOURS["cosine"],
            label=f"{ARM_LABELS['cosine']} at {m}T",
        )
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("validation loss (nats/byte)")
    ax.set_title("learning-rate sweep")
    ax.legend(fontsize=7)
    ctx.savefig(fig, "lr_sweep")


def river_valley(result: Result, ctx: RunContext) -> None:
    import matplotlib.pyplot as plt

    data = result.data
    curve = data["curve"]
    steps = [p["step"] for p in curve]
    fig, ax = plt.subplots(figsize=(9, 5))
    for part, colour in (("total", "black"), ("river", "tab:blue"), ("hill", "tab:brown")):
        excess = [p[part] - data["floor"][part] for p in curve]
        ax.plot(steps, excess, color=colour, label=f"{part} (loss − entropy floor)")
    control = data.get("control_curve") or []
    for part, colour in (("total", "black"), ("hill", "tab:brown")):
        ax.plot(
            [p["step"] for p in control],
            [p[part] - data["floor"][part] for p in control],
            color=colour,
            ls=":",
            label=f"{part}, constant-rate control" if control else None,
        )
    ax.set_yscale("log")
    ax.axvspan(data["decay_start"], data["steps"], color="0.92", label="decay phase")
    ax.axvline(data["warmup_steps"], color="0.7", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("excess loss (nats)")
    twin = ax.twinx()
    twin.plot(steps, [p["lr"] for p in curve], color="tab:red", lw=0.8, ls="--")
    twin.set_ylabel("learning rate (dashed)", color="tab:red")
    ax.legend(loc="upper right")
    ax.set_title("wsd.river_valley: the loss split into river and hill parts under WSD")
    ctx.savefig(fig, "river_valley")
