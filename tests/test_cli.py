"""The command line, through typer's test runner: listing, reproducing, reporting, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from provenml.cli import app
from provenml.core.testing import smoke_run

runner = CliRunner()


def test_list_shows_experiments() -> None:
    result = runner.invoke(app, ["list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "wsd.multibudget" in result.output and "S3" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reproduce", "wsd.multibudgt"], "did you mean wsd.multibudget"),
        (["reproduce", "wsd.river_valley", "--set", "lrr=1"], "unknown --set key 'lrr'"),
        (["reproduce", "wsd.river_valley", "--set", "steps=many"], "must be an integer"),
        (["reproduce", "wsd.river_valley", "--set", "steps"], "--set expects key=value"),
        (["reproduce", "wsd.river_valley", "--scale", "huge"], "unknown scale"),
        (["reproduce"], "name at least one experiment"),
        (["report", "--runs", "/nonexistent/runs"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_unwritable_output_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = runner.invoke(
        app,
        ["reproduce", "wsd.river_valley", "--scale", "smoke", "--out", str(blocker / "runs")],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 2 and "cannot write to output directory" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_a_clear_error() -> None:
    result = runner.invoke(
        app, ["reproduce", "wsd.river_valley", "--device", "cuda"], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 2 and "no CUDA GPU is available" in result.output


def test_crashing_experiment_exits_1_with_the_run_directory(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "reproduce",
            "toy.harness",
            "--scale",
            "smoke",
            "--set",
            "mode=crash",
            "--out",
            str(tmp_path),
            "--no-progress",
        ],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 1 and "boom" in result.output and "Traceback" not in result.output


def test_reproduce_two_seeds_then_report(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = runner.invoke(
        app,
        [
            "reproduce",
            "wsd.river_valley",
            "--scale",
            "smoke",
            "--seeds",
            "2",
            "--device",
            "cpu",
            "--out",
            str(runs),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = runs.iterdir()
    assert run_dir.name.startswith("wsd.river_valley-smoke-")
    river = json.loads((run_dir / "result.json").read_text())
    assert river["status"] == "complete" and river["seeds_finished"] == [0, 1]
    assert river["claims"] and all(len(c["ours"]) == 2 for c in river["claims"])
    assert (run_dir / "seed-1" / "river_valley.png").is_file()

    report = runner.invoke(
        app,
        ["report", "--runs", str(runs), "--out", str(tmp_path / "REPORT.md")],
        env={"COLUMNS": "200"},
    )
    assert report.exit_code == 0, report.output
    text = (tmp_path / "REPORT.md").read_text()
    assert "wsd.river_valley [smoke]" in text and "river_valley.png" in text


def test_multibudget_smoke_spends_equal_compute_and_plots() -> None:
    """On the smoke run that tests/test_contract.py checks (its claims and verdicts)."""
    run = smoke_run("wsd.multibudget")
    steps = run.result["summary"]
    assert steps["steps/wsd"] == steps["steps/wsds"] == steps["steps/cyclic"]  # equal compute
    assert (run.run_dir / "checkpoints_vs_compute.png").is_file()
    assert (run.seed_dir / "loss_vs_steps.png").is_file()


def test_list_json_is_one_object_per_experiment() -> None:
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    by_name = {r["name"]: r for r in records}
    assert {"kge.link_prediction", "wsd.multibudget", "toy.harness"} <= set(by_name)
    record = by_name["wsd.multibudget"]
    assert {"name", "system", "package", "claim", "headline", "time"} <= set(record)
    assert record["system"] == "S3" and record["package"] == "provenml.schedules"
    assert isinstance(record["headline"], bool) and record["time"]["small"]


def test_piped_list_keeps_names_whole_in_a_narrow_terminal() -> None:
    result = runner.invoke(app, ["list"], env={"COLUMNS": "40"})  # not a TTY
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["system", "name", "headline"]
    (row,) = [line for line in lines if "kge.link_prediction" in line]  # `| grep NAME`
    assert row.split()[:2] == ["S11", "kge.link_prediction"]
    assert not any(line.startswith(("│", "┃")) for line in lines)  # no rich box drawing


@pytest.mark.parametrize("system", ["S11", "s11", "kge"])
def test_list_filters_by_system(system: str) -> None:
    records = json.loads(runner.invoke(app, ["list", "--json", "--system", system]).stdout)
    assert records and {r["system"] for r in records} == {"S11"}


def test_list_unknown_system_is_one_line() -> None:
    result = runner.invoke(app, ["list", "--system", "S99"], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "unknown --system 'S99'; known systems: S0" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reproduce", "wsd.multibudget", "--all"], "one of them"),
        (["reproduce", "--all", "--headline"], "one of them"),
        (["reproduce", "wsd.multibudget", "--skip", "wsd.lr_sweep"], "go with --all"),
        (["reproduce", "--all", "--skip", "wsd.multibudgt"], "did you mean wsd.multibudget"),
        (["reproduce", "--all", "--system", "S99"], "unknown --system 'S99'"),
    ],
)
def test_selection_errors_are_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_headline_selection_is_one_experiment_per_built_system() -> None:
    from provenml.cli import _select_experiments, experiment_listing

    listing = [r for r in experiment_listing() if r["system"] != "S0"]
    systems = {r["system"] for r in listing}
    chosen = _select_experiments([], False, True, [], [])
    assert sorted(s.system for s in chosen) == sorted(systems)  # exactly one each
    assert all(s.headline for s in chosen)
    names = [s.name for s in _select_experiments([], False, True, [], ["compiler.end_to_end"])]
    assert "compiler.end_to_end" not in names and len(names) == len(chosen) - 1
    (only,) = _select_experiments([], False, True, ["S8"], [])
    assert only.name == "explain.benchmark"
    every = _select_experiments([], True, False, ["kge"], [])
    assert len(every) > 1 and {s.system for s in every} == {"S11"}
