"""Figures of the S6 experiments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["win_rate_curve"]


def win_rate_curve(ctx: Any, curve: Sequence[dict[str, float]], opponents: Sequence[str]) -> None:
    """The learnt team's win rate against each scripted opponent over training wall time."""
    if not curve:
        return
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    seconds = [p["seconds"] for p in curve]
    for o in opponents:
        ax.plot(seconds, [p[o] for p in curve], marker="o", label=o)
    ax.axhline(0.8, color="grey", linestyle="--", linewidth=1, label="80% bar")
    ax.set_xlabel("training wall time (s)")
    ax.set_ylabel("win rate (both sides)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ctx.savefig(fig, "win_rate_over_time")
