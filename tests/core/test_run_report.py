"""Run directories, interrupted runs, multi-seed aggregation and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenml.core import Config, ProvenmlError, get_experiment, run_experiment
from provenml.core.report import load_runs, write_report
from provenml.core.run import ExperimentFailed, resolve_device


def test_run_directory_holds_config_env_metrics_result_and_plots(tmp_path: Path) -> None:
    run_dir = run_experiment(
        get_experiment("toy.harness"),
        scale="smoke",
        seeds=[0, 1, 2],
        device="cpu",
        out_root=tmp_path,
    )
    for name in ("config.json", "env.json", "result.json"):
        assert (run_dir / name).is_file()
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "complete" and result["seeds_finished"] == [0, 1, 2]
    (claim,) = result["claims"]
    assert claim["ours"] == pytest.approx([0.1, 0.2, 0.3]) and claim["verdict"] == "holds"
    assert result["summary"]["value"] == pytest.approx(0.2)
    seed_dir = run_dir / "seed-1"
    lines = (seed_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 1, 2]
    assert (seed_dir / "curve.png").stat().st_size > 0
    env = json.loads((seed_dir / "env.json").read_text())
    assert env["seed"] == 1 and env["torch"] and env["device"] == "cpu"
    seed_result = json.loads((seed_dir / "result.json").read_text())
    assert seed_result["status"] == "complete" and "compute" in seed_result


def test_a_crash_keeps_what_was_measured(tmp_path: Path) -> None:
    with pytest.raises(ExperimentFailed) as info:
        run_experiment(
            get_experiment("toy.harness"),
            scale="smoke",
            seeds=[0],
            overrides={"mode": "crash"},
            device="cpu",
            out_root=tmp_path,
        )
    run_dir = info.value.run_dir
    seed_dir = run_dir / "seed-0"
    assert json.loads((seed_dir / "result.json").read_text())["status"] == "interrupted"
    assert "boom" in (seed_dir / "traceback.txt").read_text()
    assert len((seed_dir / "metrics.jsonl").read_text().splitlines()) == 2
    top = json.loads((run_dir / "result.json").read_text())
    assert top["status"] == "interrupted" and "boom" in top["error"]


def test_ctrl_c_marks_the_run_interrupted(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        run_experiment(
            get_experiment("toy.harness"),
            scale="smoke",
            seeds=[0, 1],
            overrides={"mode": "interrupt"},
            device="cpu",
            out_root=tmp_path,
        )
    (run_dir,) = tmp_path.iterdir()
    assert json.loads((run_dir / "result.json").read_text())["status"] == "interrupted"


def test_report_lists_every_claim_and_plot(tmp_path: Path) -> None:
    run_experiment(
        get_experiment("toy.harness"),
        scale="smoke",
        seeds=[0, 1],
        device="cpu",
        out_root=tmp_path / "runs",
    )
    out, rows = write_report(tmp_path / "runs", tmp_path / "REPORT.md")
    text = out.read_text()
    assert "### toy.harness [smoke]" in text and "| x < 1 | m |" in text
    assert "**holds**" in text and "![curve](runs/" in text
    assert rows[0]["seeds"] == "2"
    assert len(load_runs(tmp_path / "runs")) == 1


def test_report_and_device_errors(tmp_path: Path) -> None:
    with pytest.raises(ProvenmlError, match="does not exist"):
        write_report(tmp_path / "nothing", tmp_path / "R.md")
    with pytest.raises(ProvenmlError, match="unknown device"):
        resolve_device("tpu")


def test_seeds_in_worker_processes_match_the_serial_run(tmp_path: Path) -> None:
    spec = get_experiment("wsd.river_valley")
    overrides = {"steps": "60", "warmup_steps": "5", "eval_every": "10"}
    serial = run_experiment(
        spec,
        scale="smoke",
        seeds=[0, 1],
        device="cpu",
        overrides=overrides,
        out_root=tmp_path / "a",
    )
    parallel = run_experiment(
        spec,
        scale="smoke",
        seeds=[0, 1],
        device="cpu",
        overrides=overrides,
        out_root=tmp_path / "b",
        jobs=2,
    )
    a = json.loads((serial / "result.json").read_text())
    b = json.loads((parallel / "result.json").read_text())
    assert b["seeds_finished"] == [0, 1]
    for claim_a, claim_b in zip(a["claims"], b["claims"], strict=True):
        assert claim_a["ours"] == pytest.approx(claim_b["ours"])


def test_an_experiment_in_parts_runs_each_part_then_merges_the_seed(tmp_path: Path) -> None:
    run_dir = run_experiment(
        get_experiment("toy.parts"),
        scale="smoke",
        seeds=[0, 1],
        device="cpu",
        overrides={"widths": "3,1,2"},
        out_root=tmp_path,
    )
    seed_dir = run_dir / "seed-1"
    for k, width in enumerate((3, 1, 2)):
        part = json.loads((seed_dir / f"part-{k}" / "config.json").read_text())
        assert part["part"] == {"widths": [width]} and part["config"]["widths"] == [width]
        lines = (seed_dir / f"part-{k}" / "metrics.jsonl").read_text().splitlines()
        assert json.loads(lines[0])["widths"] == [width]
    merged = json.loads((seed_dir / "result.json").read_text())
    assert merged["status"] == "complete"
    assert merged["data"]["order"] == [3, 1, 2]  # merge gets the parts in their listed order
    assert merged["summary"]["total"] == pytest.approx(2 * (3 + 1 + 2))
    result = json.loads((run_dir / "result.json").read_text())
    (claim,) = result["claims"]
    assert claim["key"] == "toy_total" and claim["ours"] == pytest.approx([6.0, 12.0])


def test_parts_need_a_merge() -> None:
    from provenml.core.experiment import experiment

    with pytest.raises(ValueError, match="both parts and merge"):
        experiment("toy.bad_parts", system="S0", claim="c", config=Config, parts=lambda c: [])
