"""``--resume``: a run killed after one seed continues to the aggregate of an uninterrupted run;
a changed config or commit is refused unless forced."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from provenml.cli import app
from provenml.core import Claim, Config, Result, RunContext, experiment, get_experiment
from provenml.core.resume import plan_resume, read_recorded_run
from provenml.core.run import run_experiment
from provenml.errors import ProvenmlError

EXIT_AT_SEED = "PROVENML_TEST_EXIT_AT_SEED"
runner = CliRunner()


@dataclass
class ResumableConfig(Config):
    steps: int = 4
    widths: tuple[int, ...] = (2, 1)
    presets: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {"steps": 3}}


def _measure(cfg: ResumableConfig, ctx: RunContext) -> float:
    """A seeded random walk (so a re-run seed gives the same number); the process dies at the
    seed named by the environment variable, as a killed run would."""
    if ctx.seed == int(os.environ.get(EXIT_AT_SEED, "-1")):
        os._exit(3)  # no cleanup, no result.json: a kill
    value = 0.0
    for step in range(cfg.steps):
        value += random.random()
        ctx.log(step=step, value=value)
    return value / cfg.steps


@experiment("toy.resumable", system="S0", claim="toy resumable", config=ResumableConfig, time={})
def resumable(cfg: ResumableConfig, ctx: RunContext) -> Result:
    value = _measure(cfg, ctx)
    claim = Claim(
        key="walk",
        statement="mean step < 1",
        metric="m",
        ours_label="walk",
        ours=value,
        baselines={"one": 1.0},
        comparison="<",
    )
    return Result(claims=[claim], summary={"value": value})


def _merge(cfg: ResumableConfig, parts: list[Result], ctx: RunContext) -> Result:
    total = sum(p.summary["value"] for p in parts)
    claim = Claim(
        key="total",
        statement="total > 0",
        metric="m",
        ours_label="total",
        ours=total,
        baselines={"zero": 0.0},
        comparison=">",
    )
    return Result(claims=[claim], summary={"total": total})


@experiment(
    "toy.resumable_parts",
    system="S0",
    claim="toy resumable in parts",
    config=ResumableConfig,
    time={},
    parts=lambda cfg: [{"widths": (w,)} for w in cfg.widths],
    merge=_merge,
)
def resumable_parts(cfg: ResumableConfig, ctx: RunContext) -> Result:
    return Result(summary={"value": _measure(cfg, ctx) * cfg.widths[0]})


def _killed_run(name: str, out: Path, seeds: int, exit_at: int) -> Path:
    """Run ``name`` in a subprocess that dies when it reaches seed ``exit_at``."""
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('resume_toys', {str(__file__)!r})\n"
        "module = importlib.util.module_from_spec(spec); sys.modules['resume_toys'] = module\n"
        "spec.loader.exec_module(module)\n"
        "from provenml.core import get_experiment\n"
        "from provenml.core.run import run_experiment\n"
        f"run_experiment(get_experiment({name!r}), scale='smoke', seeds=range({seeds}),\n"
        f"               device='cpu', out_root=__import__('pathlib').Path({str(out)!r}))\n"
    )
    env = {**os.environ, EXIT_AT_SEED: str(exit_at)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 3, done.stderr  # killed, not finished
    (run_dir,) = out.iterdir()
    return run_dir


def _claims(run_dir: Path) -> list[dict[str, Any]]:
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "complete"
    return [
        {k: c[k] for k in ("key", "ours", "baselines", "seeds", "verdict")}
        for c in result["claims"]
    ]


@pytest.mark.parametrize("name", ["toy.resumable", "toy.resumable_parts"])
def test_a_killed_run_resumes_to_the_uninterrupted_aggregate(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    killed = _killed_run(name, tmp_path / "killed", seeds=3, exit_at=1)
    # the code is the one the run started with, even if a commit lands in this checkout while
    # the test runs (a changed commit is refused: tested on its own below)
    recorded = json.loads((killed / "env.json").read_text())["git_commit"]
    monkeypatch.setattr("provenml.core.environment.git_commit", lambda: recorded)
    assert json.loads((killed / "seed-0" / "result.json").read_text())["status"] == "complete"
    assert not (killed / "result.json").exists()  # the kill left no aggregate
    unit = killed / "seed-0" / ("part-0" if name.endswith("parts") else "")
    unit_mtime = (unit / "result.json").stat().st_mtime_ns

    resumed = runner.invoke(
        app, ["reproduce", "--resume", str(killed), "--no-progress"], env={"COLUMNS": "300"}
    )
    assert resumed.exit_code == 0, resumed.output
    assert (unit / "result.json").stat().st_mtime_ns == unit_mtime  # kept, not run again
    fresh = run_experiment(
        get_experiment(name), scale="smoke", seeds=[0, 1, 2], device="cpu", out_root=tmp_path / "f"
    )
    assert _claims(killed) == _claims(fresh)
    assert json.loads((killed / "result.json").read_text())["seeds_finished"] == [0, 1, 2]


def test_a_changed_config_or_commit_is_refused_unless_forced(tmp_path: Path) -> None:
    spec = get_experiment("toy.resumable")
    run_dir = run_experiment(spec, scale="smoke", seeds=[0, 1], device="cpu", out_root=tmp_path)
    (run_dir / "seed-1" / "result.json").write_text(json.dumps({"status": "interrupted"}))

    recorded = read_recorded_run(run_dir)
    plan = plan_resume(spec, recorded, current_commit=recorded.commit or "")
    assert list(plan.done) == [(0, None)] and plan.todo == [(1, None)]

    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["config"]["steps"] = 7  # the code's smoke preset says 3
    config_path.write_text(json.dumps(config))
    with pytest.raises(ProvenmlError, match=r"config changed.*steps: 7 -> 3.*--force"):
        plan_resume(spec, read_recorded_run(run_dir), current_commit=recorded.commit or "")
    forced = plan_resume(
        spec, read_recorded_run(run_dir), force=True, current_commit=recorded.commit or ""
    )
    assert forced.plan.config.steps == 7 and forced.plan.config.widths == (2, 1)  # recorded
    assert forced.forced and "steps: 7 -> 3" in forced.forced[0]

    config["config"]["steps"] = 3
    config_path.write_text(json.dumps(config))
    with pytest.raises(ProvenmlError, match="commit 0000000000, the run started at"):
        plan_resume(spec, read_recorded_run(run_dir), current_commit="0" * 40)
    result = runner.invoke(
        app,
        ["reproduce", "--resume", str(run_dir), "--scale", "small", "--no-progress"],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 2 and "--scale small (recorded: smoke)" in result.output


def test_resume_of_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    result = runner.invoke(app, ["reproduce", "--resume", str(tmp_path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "not a run directory (no config.json)" in result.output
