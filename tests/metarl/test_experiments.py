"""Each reproduction's smoke preset runs end to end and produces its claims and plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenml.core import get_experiment, run_experiment


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("metarl.gridworld", {"beats_varibad", "approaches_oracle", "refinds_goal_faster"}),
        ("metarl.ablations", {"ablations_worse"}),
        ("metarl.session_rate", {"gap_peaks_inside"}),
        ("metarl.reacher", {"beats_varibad"}),
    ],
)
def test_smoke(name: str, keys: set[str], tmp_path: Path) -> None:
    run_dir = run_experiment(
        get_experiment(name), scale="smoke", seeds=[0], out_root=tmp_path, device="cpu"
    )
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "complete"
    assert {c["key"] for c in result["claims"]} == keys
    assert list(run_dir.glob("*.png"))
    for claim in result["claims"]:
        assert claim["verdict"] in ("holds", "fails", "inconclusive")


def test_gridworld_agent_subset_keeps_matching_claims(tmp_path: Path) -> None:
    run_dir = run_experiment(
        get_experiment("metarl.gridworld"),
        scale="smoke",
        seeds=[0],
        out_root=tmp_path,
        device="cpu",
        overrides={"agents": "varibad,dynamite"},
    )
    result = json.loads((run_dir / "result.json").read_text())
    assert {c["key"] for c in result["claims"]} == {"beats_varibad"}
