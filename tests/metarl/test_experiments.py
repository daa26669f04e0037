"""The reproductions' plots, agent subsets, parts in workers and agent errors (the smoke runs
themselves are checked by tests/test_contract.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from provenml.core import ProvenmlError, get_experiment, run_experiment
from provenml.core.testing import smoke_run


@pytest.mark.parametrize(
    "name", ["metarl.gridworld", "metarl.ablations", "metarl.session_rate", "metarl.reacher"]
)
def test_smoke_runs_draw_their_plots(name: str) -> None:
    """Runs, claims and verdicts are checked by tests/test_contract.py on the same run."""
    assert list(smoke_run(name).run_dir.glob("*.png"))


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
    """The parts are listed while the run is planned: a bad agent is refused before any
    directory is made."""
    with pytest.raises(ProvenmlError, match="agents must be among"):
        run_experiment(
            get_experiment(name),
            scale="smoke",
            seeds=[0],
            out_root=tmp_path,
            device="cpu",
            overrides={"agents": agents},
        )
    assert list(tmp_path.iterdir()) == []
