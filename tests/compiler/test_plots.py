"""``compiler.end_to_end``'s figures, drawn from a hand-made results table (no compile)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provenml.compiler.plots import latency_and_ablation_plots


class _Context:
    """What the plots use of a RunContext: ``savefig`` into a folder."""

    def __init__(self, out: Path) -> None:
        self.out, self.saved = out, {}  # type: ignore[var-annotated]

    def savefig(self, fig: Any, name: str) -> Path:
        path = self.out / f"{name}.png"
        fig.savefig(path)
        self.saved[name] = fig
        return path


def test_latency_and_ablation_plots(tmp_path: Path) -> None:
    results = {
        "mlp:1": {
            "latency": {"eager": 2e-4, "provenml": 1e-4},
            "ablation": {"all_passes": 1e-4, "no_fusion": 1.5e-4, "no_layout": 3e-4},
        },
        "cnn:1": {
            "latency": {"eager": 4e-3, "provenml": 2e-3, "inductor": 3e-3},
            "ablation": {"all_passes": 2e-3, "no_fusion": 1e-3, "no_layout": 2e-3},
        },
    }
    ctx = _Context(tmp_path)
    latency_and_ablation_plots(
        results, ["eager", "inductor", "provenml"], ["fusion", "layout"], ctx
    )  # type: ignore[arg-type]
    assert (tmp_path / "latency.png").stat().st_size > 0
    assert (tmp_path / "ablation.png").stat().st_size > 0
    latency_ax = ctx.saved["latency"].axes[0]
    # inductor is missing for mlp:1: only the arms timed on every case are drawn
    assert [t.get_text() for t in latency_ax.get_legend().get_texts()] == ["eager", "provenml"]
    heights = [p.get_height() for p in latency_ax.patches]
    assert heights == pytest.approx([200.0, 4000.0, 100.0, 2000.0])  # microseconds, per arm
    ablation_ax = ctx.saved["ablation"].axes[0]
    ratios = [p.get_height() for p in ablation_ax.patches]
    assert ratios == pytest.approx([1.5, 0.5, 3.0, 1.0])  # without / with all passes, per build
