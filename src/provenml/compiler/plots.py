"""Figures of ``compiler.end_to_end``.

matplotlib is imported by the function that draws (the harness picks its backend), so importing
this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from provenml.core.context import RunContext


def latency_and_ablation_plots(
    results: Mapping[str, Mapping[str, Any]],
    arms: Sequence[str],
    ablations: Sequence[str],
    ctx: RunContext,
) -> None:
    """``latency.png``: median latency per case and arm (log scale); ``ablation.png``: each
    ablated build's latency over the all-passes build's, per case (> 1: the pass helps).
    ``results[case]`` holds ``latency[arm]`` (seconds) and ``ablation[build]``."""
    import matplotlib.pyplot as plt

    cases = list(results)
    arms = [a for a in arms if all(a in results[c]["latency"] for c in cases)]
    fig, ax = plt.subplots(figsize=(1.6 * len(cases) + 3, 4))
    width = 0.8 / max(1, len(arms))
    for k, arm in enumerate(arms):
        ax.bar(
            np.arange(len(cases)) + k * width,
            [results[c]["latency"][arm] * 1e6 for c in cases],
            width,
            label=arm,
        )
    ax.set_xticks(np.arange(len(cases)) + width * (len(arms) - 1) / 2, cases)
    ax.set_yscale("log")
    ax.set_ylabel("median latency (us, log)")
    ax.set_title("Latency per model and arm")
    ax.legend()
    ctx.savefig(fig, "latency")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(1.6 * len(cases) + 3, 4))
    keys = [f"no_{a}" for a in ablations]
    width = 0.8 / max(1, len(keys))
    for k, key in enumerate(keys):
        vals = [results[c]["ablation"][key] / results[c]["ablation"]["all_passes"] for c in cases]
        ax.bar(np.arange(len(cases)) + k * width, vals, width, label=key.replace("no_", "without "))
    ax.axhline(1.0, color="k", lw=1)
    ax.set_xticks(np.arange(len(cases)) + width * (len(keys) - 1) / 2, cases)
    ax.set_ylabel("latency / latency with all passes (same build options)")
    ax.set_title("provenml ablation (>1: the pass helps)")
    ax.legend()
    ctx.savefig(fig, "ablation")
    plt.close(fig)
