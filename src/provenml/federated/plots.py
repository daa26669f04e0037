"""Figures for the S5 reproductions (matplotlib is imported by the functions that draw)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provenml.core import RunContext


def gain_heatmap(
    gains: Sequence[Sequence[float]],
    alphas: Sequence[float],
    imbalances: Sequence[float],
    ctx: RunContext,
    name: str = "gain_heatmap",
) -> Any:
    """The full method's balanced-accuracy gain over FedAvg (points) per (alpha, IF) cell."""
    import matplotlib.pyplot as plt
    import numpy as np

    values = np.asarray(gains, dtype=float)  # [len(alphas), len(imbalances)]
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    limit = max(1e-6, float(np.nanmax(np.abs(values))))
    image = ax.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit)
    ax.set_xticks(range(len(imbalances)), [f"{f:g}" for f in imbalances])
    ax.set_yticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set_xlabel("imbalance factor IF")
    ax.set_ylabel("Dirichlet alpha")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, f"{values[i, j]:+.1f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label="gain over FedAvg (points)")
    ax.set_title("MLLM-assisted minus FedAvg, balanced accuracy")
    fig.tight_layout()
    ctx.savefig(fig, name)
    plt.close(fig)
    return fig
