"""REPORT.md and the HTML page, from synthetic run directories (no experiment runs here)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from provenml.core.report import (
    claim_rows,
    format_duration,
    load_runs,
    overall_verdict,
    write_report,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"fake image bytes"


def _claim(key: str, ours: list[float], base: list[float], comparison: str = "<") -> dict:
    return {
        "key": key,
        "statement": f"statement {key}",
        "metric": "loss",
        "ours_label": "ours",
        "ours": ours,
        "baselines": {"base": base},
        "comparison": comparison,
        "seeds": list(range(len(ours))),
    }


def make_run(
    root: Path,
    name: str,
    *,
    system: str = "S3",
    scale: str = "small",
    stamp: str = "20261201-100000",
    seeds: tuple[int, ...] = (0, 1, 2),
    overrides: dict[str, str] | None = None,
    claims: list[dict] | None = None,
    status: str = "complete",
    plots: tuple[str, ...] = ("curve",),
    extra: dict[str, Any] | None = None,
    commit: str = "0123456789abcdef",
) -> Path:
    """A run directory as ``run_experiment`` writes it."""
    run_dir = root / f"{name}-{scale}-{stamp}"
    run_dir.mkdir(parents=True)
    header = {
        "experiment": name,
        "system": system,
        "claim": f"the claim of {name}",
        "scale": scale,
        "seeds": list(seeds),
        "overrides": dict(overrides or {}),
    }
    (run_dir / "config.json").write_text(json.dumps({**header, "config": {"steps": 10}}))
    env = {
        "date": "2026-12-01T10:00:00+00:00",
        "python": "3.11.7",
        "platform": "Linux-x86_64",
        "cpu_count": 2,
        "torch": "2.13.0",
        "numpy": "2.1",
        "scipy": "1.14",
        "provenml": "0.1.0",
        "git_commit": commit,
        "device": "cpu",
    }
    (run_dir / "env.json").write_text(json.dumps(env))
    if claims is None:
        claims = [_claim("a", [0.1, 0.2, 0.3][: len(seeds)], [1.0, 1.0, 1.0][: len(seeds)])]
    result = {
        **header,
        "status": status,
        "seeds_finished": list(seeds) if status == "complete" else list(seeds[:1]),
        "wall_time_s": 125.0,
        "claims": claims,
        "summary": {},
        "notes": [],
        **(extra or {}),
    }
    (run_dir / "result.json").write_text(json.dumps(result))
    for plot in plots:
        (run_dir / f"{plot}.png").write_bytes(PNG)
    return run_dir


def test_an_override_run_never_replaces_the_preset_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "wsd.river_valley", stamp="20261201-100000")
    make_run(
        runs,
        "wsd.river_valley",
        stamp="20261201-110000",  # newer, with overrides and different numbers
        overrides={"steps": "60"},
        claims=[_claim("a", [5.0, 6.0, 7.0], [1.0, 1.0, 1.0])],
    )
    records = load_runs(runs)
    assert [r.label for r in records] == [
        "wsd.river_valley [small]",
        "wsd.river_valley [small, --set steps=60]",
    ]
    out, rows = write_report(runs, tmp_path / "REPORT.md", headlines={"S3": "wsd.river_valley"})
    text = out.read_text()
    top = text.split("\n## ")[0]
    # the top table shows the preset run (holds), not the newer override run (fails)
    assert "(wsd.river_valley [small])" in top and "--set" not in top.split("|---|")[1]
    assert "**holds** (1/1 claims hold)" in top
    assert "### wsd.river_valley [small] (headline)" in text
    assert "### wsd.river_valley [small, --set steps=60]\n" in text
    assert "not the `small` preset" in text
    assert {r["overrides"] for r in rows} == {"", "steps=60"}
    assert {r["verdict"] for r in rows} == {"holds", "fails"}


def test_only_an_override_run_of_the_headline_is_reported_as_not_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "wsd.multibudget", overrides={"steps": "60"})
    make_run(runs, "wsd.river_valley")  # not the headline: must not stand in for it
    text = write_report(runs, tmp_path / "R.md", headlines={"S3": "wsd.multibudget"})[0]
    top = text.read_text().split("\n## ")[0]
    assert "| S3 | wsd.multibudget: not run at a preset scale | not run | - | - |" in top


def test_each_claim_row_shows_scale_seeds_and_overrides(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "kge.link_prediction", system="S11", scale="smoke", seeds=(3, 4))
    make_run(
        runs,
        "kge.link_prediction",
        system="S11",
        scale="smoke",
        seeds=(0,),
        overrides={"epochs": "2", "dim": "8"},
        stamp="20261201-120000",
    )
    text = write_report(runs, tmp_path / "R.md")[0].read_text()
    lines = [line for line in text.splitlines() if line.startswith("| statement a")]
    assert len(lines) == 2
    assert lines[0].endswith("| smoke | 2 (0, 1) | (preset) |")  # claim seeds: 0, 1
    assert lines[1].endswith("| smoke | 1 (0) | epochs=2 dim=8 |")
    assert "provenml reproduce kge.link_prediction --scale smoke --seeds 2 --seed 3" in text
    assert "provenml reproduce kge.link_prediction --scale smoke --set epochs=2 --set dim=8" in text


def test_sections_per_system_with_plot_command_and_environment(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "compiler.end_to_end", system="S10", plots=("latency", "ablation"))
    make_run(runs, "metarl.reacher", system="S2")
    make_run(runs, "metarl.gridworld", system="S2", plots=())
    out = tmp_path / "out" / "REPORT.md"
    write_report(
        runs,
        out,
        headlines={"S2": "metarl.reacher", "S10": "compiler.end_to_end"},
        about={"S2": "Package `provenml.metarl`."},
    )
    text = out.read_text()
    # systems in numeric order (S2 before S10); the headline run first in its section
    assert text.index("## S2") < text.index("## S10")
    s2 = text[text.index("## S2") : text.index("## S10")]
    assert s2.index("metarl.reacher [small] (headline)") < s2.index("metarl.gridworld [small]")
    assert "Package `provenml.metarl`." in s2
    # the key plot inline, relative to the report; the other plots linked
    assert "![ablation](../runs/compiler.end_to_end-small-20261201-100000/ablation.png)" in text
    assert "More plots: [latency](../runs/" in text
    assert "```bash\nprovenml reproduce metarl.reacher --scale small --seeds 3\n```" in text
    assert "Environment: commit `0123456789`; provenml 0.1.0; Python 3.11.7; torch 2.13.0" in text
    assert "machine Linux-x86_64, 2 CPUs; device cpu" in text
    assert "| S2 | the claim of metarl.reacher (metarl.reacher [small]) |" in text
    assert "| 3 (0, 1, 2) | 2 min 05 s |" in text


def test_the_newest_complete_run_wins_over_a_newer_partial_one(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "wsd.river_valley", stamp="20261201-100000")
    make_run(runs, "wsd.river_valley", stamp="20261201-110000", status="interrupted")
    (record,) = load_runs(runs)
    assert record.status == "complete" and record.path.name.endswith("100000")
    make_run(runs, "wsd.lr_sweep", stamp="20261201-100000", status="interrupted")
    partial = next(r for r in load_runs(runs) if r.experiment == "wsd.lr_sweep")
    text = write_report(runs, tmp_path / "R.md")[0].read_text()
    assert partial.seeds == [0] and "**holds** (interrupted run)" in text


def test_result_tables_are_rendered(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    tables = {
        "MRR per model": {
            "columns": ["model", "mrr"],
            "rows": [["TransE", 0.41234], ["ComplEx", 0.5]],
        }
    }
    make_run(runs, "kge.link_prediction", system="S11", extra={"tables": tables})
    text = write_report(runs, tmp_path / "R.md")[0].read_text()
    assert "**MRR per model**\n\n| model | mrr |\n|---|---|\n| TransE | 0.4123 |" in text


def test_html_is_one_self_contained_page(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "wsd.river_valley", plots=("a", "b"))
    html_out = tmp_path / "REPORT.html"
    write_report(runs, tmp_path / "REPORT.md", html_out=html_out)
    page = html_out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    encoded = base64.b64encode(PNG).decode()
    assert page.count(f"data:image/png;base64,{encoded}") == 2  # key plot + folded extra
    assert ".png" not in page  # nothing points at a file next to the page
    assert "<td><strong>holds</strong></td>" in page
    assert "<code>provenml reproduce wsd.river_valley --scale small --seeds 3</code>" in page


def test_verdict_summary_and_durations() -> None:
    from provenml.core.experiment import Claim

    def claim(ours: float) -> Claim:
        return Claim("k", "s", "m", "o", [ours], {"b": [1.0]}, "<")

    assert overall_verdict([claim(0.5), claim(0.5)]) == "holds"
    assert overall_verdict([claim(0.5), claim(2.0)]) == "fails"
    assert overall_verdict([claim(float("nan"))]) == "inconclusive"
    assert format_duration(42.4) == "42 s"
    assert format_duration(3725) == "1 h 02 min"
    assert format_duration(None) == "?"


def test_claim_rows_keep_the_seed_count(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "x.y", seeds=(0, 1))
    (row,) = claim_rows(load_runs(runs))
    assert row["seeds"] == "2" and row["seed_list"] == "0, 1" and row["scale"] == "small"


@pytest.mark.parametrize("bad", ["{not json", "[1, 2]"])
def test_unreadable_result_files_are_skipped(tmp_path: Path, bad: str) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "x.y")
    broken = runs / "broken"
    broken.mkdir()
    (broken / "result.json").write_text(bad)
    assert [r.experiment for r in load_runs(runs)] == ["x.y"]


def test_for_each_threshold_and_inconclusive_claims_say_why(tmp_path: Path) -> None:
    from provenml.core.claims import Claim, Member, Precondition, Published

    for_each = Claim(
        key="every_beats_random",
        statement="every explainer beats Random",
        metric="AUROC",
        ours_label="explainer",
        comparison=">",
        members={
            "gnnexplainer/ba_shapes": Member([0.91, 0.93], {"random": [0.5, 0.5]}),
            "pgexplainer/tree_grid": Member([0.31, 0.30], {"random": [0.5, 0.5]}),
        },
        seeds=[0, 1],
    )
    published = Claim(
        key="published",
        statement="GNNExplainer reaches its published AUROC",
        metric="AUROC",
        ours_label="GNNExplainer",
        ours=[0.93, 0.94],
        comparison=">=",
        threshold=Published(0.925, source="paper Table 1"),
        seeds=[0, 1],
    )
    regime = Claim(
        key="near_oracle",
        statement="WSD-S within 0.01 of the oracle",
        metric="loss",
        ours_label="WSD-S",
        ours=[1.50, 1.51],
        baselines={"oracle": [1.60, 1.59]},
        comparison="within",
        margin=0.01,
        precondition=Precondition.compare("the oracle is far behind", [1.6], "<=", [1.5]),
        seeds=[0, 1],
    )
    runs = tmp_path / "runs"
    make_run(
        runs,
        "explain.benchmark",
        system="S8",
        seeds=(0, 1),
        claims=[c.to_dict() for c in (for_each, published, regime)],
    )
    text = write_report(runs, tmp_path / "R.md")[0].read_text()
    assert "| explainer: 1 of 2 hold | for each of 2: > |" in text
    assert "**fails** (failing: pgexplainer/tree_grid)" in text
    assert "| >= 0.925 (paper Table 1) |" in text
    assert "**inconclusive** (the oracle is far behind)" in text
    assert "**every explainer beats Random**: each member" in text
    assert "| pgexplainer/tree_grid | 0.305 ± 0.064 | random 0.500 ± 0.000" in text


def test_reproduce_prints_labels_with_brackets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console
    from typer.testing import CliRunner

    from provenml import cli
    from provenml.cli import app

    # a console as wide as the label needs: one made at import keeps the width $COLUMNS had
    # then (pytest-xdist's workers set it to 80), which would wrap the label
    monkeypatch.setattr(cli, "console", Console(width=250))

    result = CliRunner().invoke(
        app,
        [
            "reproduce",
            "toy.harness",
            "--scale",
            "smoke",
            "--set",
            "steps=2",
            "--out",
            str(tmp_path),
            "--no-progress",
        ],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0, result.output
    assert "toy.harness [smoke, --set steps=2]" in result.output  # not eaten as rich markup
