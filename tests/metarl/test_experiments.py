"""Each reproduction's smoke preset runs end to end and produces its claims and plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from provenml.core import get_experiment, run_experiment
from provenml.core.run import ExperimentFailed


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


def test_parts_in_workers_match_one_unsplit_run(tmp_path: Path) -> None:
    """Each (agent, rate) part trains on its own; splitting and --jobs change no number."""
    from provenml.core.run import RunContext

    spec = get_experiment("metarl.session_rate")
    overrides = {"rates": "0.0,1.0"}
    parallel = run_experiment(
        spec,
        scale="smoke",
        seeds=[0],
        device="cpu",
        overrides=overrides,
        out_root=tmp_path / "jobs",
        jobs=2,
    )
    assert len(list((parallel / "seed-0").glob("part-*/result.json"))) == 4
    merged = json.loads((parallel / "seed-0" / "result.json").read_text())
    cfg = spec.config.from_preset("smoke", overrides)
    (tmp_path / "whole").mkdir()
    ctx = RunContext(tmp_path / "whole", seed=0, device=torch.device("cpu"), scale="smoke")
    whole = spec.run(cfg, ctx)
    ctx.close()
    assert merged["data"]["gap"] == pytest.approx(whole.data["gap"])
    assert merged["data"]["runs"] == whole.data["runs"]


@pytest.mark.parametrize(
    ("name", "agents"),
    [("metarl.gridworld", "varibad,dreamer"), ("metarl.ablations", "dynamite,varibad")],
)
def test_an_unknown_agent_is_a_clear_error(name: str, agents: str, tmp_path: Path) -> None:
    with pytest.raises(ExperimentFailed, match="agents must be among"):
        run_experiment(
            get_experiment(name),
            scale="smoke",
            seeds=[0],
            out_root=tmp_path,
            device="cpu",
            overrides={"agents": agents},
        )
