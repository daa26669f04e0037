"""``--executor ray``: the same run directory and the same numbers as ``--jobs``; Ray is shut
down afterwards; a task's files travel back when its node is not the driver's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provenml.cli import app
from provenml.core import get_experiment
from provenml.core.executor import RayExecutor, _ray_unit, _write_files, make_executor
from provenml.core.run import plan_run, run_experiment, run_unit
from provenml.errors import ProvenmlError

RIVER = {"steps": "60", "warmup_steps": "5", "eval_every": "10"}  # a few seconds a seed


def _files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


def _numbers(run_dir: Path) -> tuple[list, dict, list]:
    result = json.loads((run_dir / "result.json").read_text())
    claims = [(c["key"], c["ours"], c["baselines"], c["verdict"]) for c in result["claims"]]
    return claims, result["summary"], result["seeds_finished"]


def test_ray_tasks_match_the_jobs_run_and_ray_is_shut_down(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    spec = get_experiment("wsd.river_valley")
    common = {"scale": "smoke", "seeds": [0, 1], "device": "cpu", "overrides": RIVER}
    by_jobs = run_experiment(spec, **common, out_root=tmp_path / "jobs", jobs=2, threads=1)
    by_ray = run_experiment(
        spec,
        **common,
        out_root=tmp_path / "ray",
        jobs=2,
        threads=1,
        executor=RayExecutor(jobs=2, num_cpus=2),
    )
    assert not ray.is_initialized()  # the executor started Ray, so it shut it down
    assert _numbers(by_ray) == _numbers(by_jobs)  # identical, not approximately equal
    assert _files(by_ray) == _files(by_jobs)
    env = json.loads((by_ray / "seed-1" / "env.json").read_text())
    assert env["seed"] == 1 and env["torch_threads"] == 1


def test_a_unit_from_another_node_ships_its_files_back(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    spec = get_experiment("toy.parts")
    plan = plan_run(spec, scale="smoke", seeds=[0], device="cpu", out_root=tmp_path / "a")
    payload = _ray_unit(plan, 0, 1, 1, "driver-node", True)  # as if on another node
    assert payload["error"] is None and not plan.unit_dir(0, 1).exists()  # nothing in place
    assert {"config.json", "env.json", "metrics.jsonl", "result.json"} <= set(payload["files"])
    _write_files(plan.unit_dir(0, 1), payload["files"])
    local = plan_run(spec, scale="smoke", seeds=[0], device="cpu", out_root=tmp_path / "b")
    expected = run_unit(local, 0, 1, threads=1).to_dict()
    assert payload["result"] == expected
    written = json.loads((plan.unit_dir(0, 1) / "result.json").read_text())
    assert written["status"] == "complete"
    assert written["data"] == json.loads(json.dumps(expected["data"]))


def test_a_failing_unit_ships_its_traceback_and_raises(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    spec = get_experiment("toy.harness")
    plan = plan_run(
        spec,
        scale="smoke",
        seeds=[0],
        device="cpu",
        overrides={"mode": "crash"},
        out_root=tmp_path,
    )
    payload = _ray_unit(plan, 0, None, 1, "driver-node", True)
    assert payload["result"] is None and "traceback.txt" in payload["files"]
    import pickle

    error = pickle.loads(payload["error"])
    assert isinstance(error, RuntimeError) and "boom" in str(error)


def test_executor_choice_errors() -> None:
    with pytest.raises(ProvenmlError, match="unknown --executor 'dask'"):
        make_executor("dask")
    with pytest.raises(ProvenmlError, match="--address goes with --executor ray"):
        make_executor("local", address="auto")
    result = CliRunner().invoke(
        app, ["reproduce", "toy.harness", "--address", "auto"], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 2 and "--address goes with --executor ray" in result.output
