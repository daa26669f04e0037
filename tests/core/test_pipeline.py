"""Several experiments through one pool of workers (``execute_plans``): each run directory
holds the same numbers as a run of that experiment alone, and an error in a later
experiment's unit names that experiment and still writes what every run measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenml.core import get_experiment
from provenml.core.run import (
    ExperimentFailed,
    LocalExecutor,
    execute_plan,
    execute_plans,
    plan_run,
)

RIVER = {"steps": "60", "warmup_steps": "5", "eval_every": "10"}


def _numbers(run_dir: Path) -> tuple[list, dict, list, str]:
    result = json.loads((run_dir / "result.json").read_text())
    claims = [(c["key"], c["ours"], c["baselines"], c["verdict"]) for c in result["claims"]]
    return claims, result["summary"], result["seeds_finished"], result["status"]


def _plans(out: Path) -> list:
    river = plan_run(
        get_experiment("wsd.river_valley"),
        scale="smoke",
        seeds=[0, 1],
        device="cpu",
        overrides=RIVER,
        out_root=out,
        jobs=2,
        threads=1,
    )
    patterns = plan_run(
        get_experiment("kge.relation_patterns"),
        scale="smoke",
        seeds=[0],
        device="cpu",
        out_root=out,
        jobs=2,
        threads=1,
    )
    return [river, patterns]


def test_experiments_sharing_a_pool_match_their_runs_alone(tmp_path: Path) -> None:
    shared = _plans(tmp_path / "shared")
    finished: list[str] = []
    run_dirs = execute_plans(
        shared, LocalExecutor(jobs=2), on_done=lambda plan: finished.append(plan.experiment)
    )
    assert run_dirs == [plan.run_dir for plan in shared]
    assert sorted(finished) == ["kge.relation_patterns", "wsd.river_valley"]
    alone = [execute_plan(plan, LocalExecutor(jobs=1)) for plan in _plans(tmp_path / "alone")]
    for together, by_itself in zip(run_dirs, alone, strict=True):
        assert _numbers(together) == _numbers(by_itself)  # identical, not approximately
        assert _numbers(together)[3] == "complete"
        assert json.loads((together / "result.json").read_text())["wall_time_s"] > 0


def test_a_failing_later_experiment_is_named_and_every_run_is_written(tmp_path: Path) -> None:
    ok = plan_run(get_experiment("toy.harness"), scale="smoke", seeds=[0], out_root=tmp_path)
    crash = plan_run(
        get_experiment("toy.harness"),
        scale="smoke",
        seeds=[0],
        overrides={"mode": "crash"},
        out_root=tmp_path,
    )
    with pytest.raises(ExperimentFailed) as failed:
        execute_plans([ok, crash], LocalExecutor(jobs=1))
    assert failed.value.run_dir == crash.run_dir and "boom" in str(failed.value)
    assert _numbers(ok.run_dir)[2:] == ([0], "complete")
    written = json.loads((crash.run_dir / "result.json").read_text())
    assert written["status"] == "interrupted" and "boom" in written["error"]
