"""The reproductions' plots, agent subsets, parts in workers and agent errors (the smoke runs
themselves are checked by tests/test_contract.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from provenml.core import ProvenmlError, get_experiment, run_experiment
from provenml.core.claims import Claim
from provenml.core.testing import smoke_run


@pytest.mark.parametrize(
    "name", ["metarl.gridworld", "metarl.ablations", "metarl.session_rate", "metarl.reacher"]
)
def test_smoke_runs_draw_their_plots(name: str) -> None:
    """Runs, claims and verdicts are checked by tests/test_contract.py on the same run."""
    assert list(smoke_run(name).run_dir.glob("*.png"))


def _smoke_result(name: str, out_root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """The result file of a one-seed smoke run of ``name`` with ``--set`` overrides."""
    run_dir = run_experiment(
        get_experiment(name),
        scale="smoke",
        seeds=[0],
        out_root=out_root,
        device="cpu",
        overrides=overrides,
    )
    return json.loads((run_dir / "result.json").read_text())


def test_gridworld_agent_subset_keeps_matching_claims(tmp_path: Path) -> None:
    result = _smoke_result("metarl.gridworld", tmp_path, {"agents": "varibad,dynamite"})
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


def test_clopper_pearson_hand_computed() -> None:
    from provenml.metarl.experiments import clopper_pearson

    # 0 of n: the upper bound solves (1 - u)^n = alpha / 2; n of n: mirrored
    low, high = clopper_pearson(0, 5)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** (1 / 5))
    low, high = clopper_pearson(5, 5)
    assert low == pytest.approx(0.025 ** (1 / 5)) and high == 1.0
    # 1 of 5: the lower bound solves 1 - (1 - l)^5 = 0.025
    assert clopper_pearson(1, 5)[0] == pytest.approx(1 - 0.975 ** (1 / 5))


def test_acting_on_belief_counts_seeds_above_the_midpoint() -> None:
    from provenml.metarl.experiments import acting_on_belief_table

    scripted = {"sit_nearest": 28.0, "infer_and_switch": 44.0, "walk_to_latent": 47.0}
    runs = [
        {"varibad": {"return": r1}, "dynamite": {"return": r2}}
        for r1, r2 in [(30.0, 43.0), (36.5, 29.0), (35.9, 36.1)]
    ]
    table = acting_on_belief_table(runs, scripted)
    rows = {row[0]: row for row in table.rows}
    assert "36.00" in table.title
    assert rows["varibad"][1:4] == [1, 3, pytest.approx(1 / 3)]
    assert rows["dynamite"][1:4] == [2, 3, pytest.approx(2 / 3)]


@pytest.mark.parametrize("name", ["metarl.gridworld", "metarl.ablations"])
def test_result_files_count_the_seeds_that_act_on_the_belief(name: str) -> None:
    """Issue 22 item 4, for every agent of the grid-world experiments: the result file's
    table counts, per agent, the seeds whose return is above the scripted midpoint."""
    run_dir = smoke_run(name).run_dir
    result = json.loads((run_dir / "result.json").read_text())
    (table,) = [t for t in result["tables"] if t["title"].startswith("seeds that act")]
    seeds = [json.loads(p.read_text()) for p in sorted(run_dir.glob("seed-*/result.json"))]
    scripted = seeds[0]["data"]["scripted"]
    midpoint = (scripted["sit_nearest"] + scripted["infer_and_switch"]) / 2
    rows = {row[0]: row for row in table["rows"]}
    assert set(rows) == set(seeds[0]["data"]["runs"])
    for agent, row in rows.items():
        returns = [s["data"]["runs"][agent]["return"] for s in seeds]
        assert row[1:3] == [sum(r > midpoint for r in returns), len(returns)]


def test_ablations_on_the_reacher_run_without_the_grid_worlds_table(tmp_path: Path) -> None:
    """The acting table needs the grid world's scripted policies; elsewhere it is left out."""
    result = _smoke_result("metarl.ablations", tmp_path, {"env": "reacher", "latent_dim": 4})
    assert result["status"] == "complete" and result["tables"] == []
    assert [c["key"] for c in result["claims"]] == ["ablations_worse"]


def _rate_claims(
    tmp_path: Path, gaps_at_zero: list[float], gaps_inside: list[float]
) -> dict[str, Claim]:
    """``metarl.session_rate``'s claims over one seed per gap, combined as the harness does."""
    from provenml.core.run import RunContext
    from provenml.metarl.experiments import SessionRateConfig, _rate_result

    cfg = SessionRateConfig(rates=(0.0, 0.07, 1.0))
    per_seed: dict[str, list[tuple[int, Claim]]] = {}
    for seed, (zero, inside) in enumerate(zip(gaps_at_zero, gaps_inside, strict=True)):
        noise = 0.1 * seed  # the seeds' returns differ a little, as trained agents' do
        runs = {
            "0.0": {"varibad": {"return": 50.0 + noise}, "dynamite": {"return": 50.0 + zero}},
            "0.07": {"varibad": {"return": 30.0}, "dynamite": {"return": 30.0 + inside}},
            "1.0": {"varibad": {"return": 20.0}, "dynamite": {"return": 20.0 + noise}},
        }
        run_dir = tmp_path / f"seed-{seed}"
        run_dir.mkdir(parents=True)
        ctx = RunContext(run_dir, seed=seed, device=torch.device("cpu"), scale="smoke")
        for claim in _rate_result(cfg, runs, ctx).claims:
            per_seed.setdefault(claim.key, []).append((seed, claim))
        ctx.close()
    return {key: Claim.combine(claims) for key, claims in per_seed.items()}


@pytest.mark.parametrize(
    ("gap_at_zero", "verdict"), [(-12.5, "fails"), (1.2, "holds"), (2.5, "fails")]
)
def test_gap_vanishes_at_zero_is_two_sided(
    gap_at_zero: float, verdict: str, tmp_path: Path
) -> None:
    """Issue 27 item 4: a DynaMITE-RL far below VariBAD at p = 0 no longer passes."""
    claims = _rate_claims(tmp_path, [gap_at_zero + d for d in (0.0, 0.2, -0.2)], [10, 11, 9])
    assert claims["gap_vanishes_at_zero"].verdict == verdict
    # the other half of the old claim is judged separately: the gap at 0.07 (10) is the largest
    assert claims["gap_peaks_inside"].verdict == "holds"


def test_session_rate_claims_need_more_than_a_lead_on_the_means(tmp_path: Path) -> None:
    """Issue 22 (stop 48): the rate claims are Welch tests over seeds. A mean gap at 0.07 above
    the gaps at 0 and 1, carried by one seed of five (the stop-47 pattern), fails; and one
    seed alone decides nothing."""
    spread = _rate_claims(tmp_path / "a", [0.0] * 5, [3.2, 0.0, 0.8, -1.4, 0.3])
    assert spread["gap_peaks_inside"].verdict == "fails"
    assert spread["gap_peaks_inside"].p_values["gap at p=0.0"] > 0.05
    one_seed = _rate_claims(tmp_path / "b", [0.0], [10.0])
    assert one_seed["gap_peaks_inside"].verdict == "inconclusive"
    assert one_seed["gap_vanishes_at_zero"].verdict == "inconclusive"


def test_run_policy_is_declared_on_the_experiments() -> None:
    """Threads come from @experiment(threads=1), not from a config field."""
    from provenml.metarl.experiments import MetaRLConfig

    assert "threads" not in {f.name for f in dataclasses.fields(MetaRLConfig)}
    for name in ("metarl.gridworld", "metarl.ablations", "metarl.session_rate", "metarl.reacher"):
        assert get_experiment(name).threads == 1
