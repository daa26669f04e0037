"""Claims tables rendered from committed result files (``provenml.core.published``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provenml.cli import app
from provenml.core.claims import Claim, Member
from provenml.core.published import find_blocks, render_block, update_file, update_text
from provenml.errors import ProvenmlError


def write_result(root: Path, name: str, claims: list[Claim], **header: object) -> Path:
    """``root/name/{result,env}.json`` as copied from a run directory."""
    folder = root / name
    folder.mkdir(parents=True)
    result = {
        "experiment": name,
        "system": "S3",
        "scale": "small",
        "seeds": [0, 1],
        "overrides": {},
        "status": "complete",
        "claims": [c.to_dict() for c in claims],
        **header,
    }
    (folder / "result.json").write_text(json.dumps(result))
    env = {"git_commit": "abcdef0123456789", "date": "2026-12-01T10:00:00+00:00"}
    (folder / "env.json").write_text(json.dumps(env))
    return folder


LOWER = Claim(
    key="lower",
    statement="ours is lower",
    metric="loss",
    ours_label="ours",
    ours=[1.0, 2.0],
    baselines={"base": [3.0, 4.0]},
    comparison="<",
)
EVERY = Claim(
    key="every",
    statement="every model beats random",
    metric="AUROC",
    ours_label="model",
    comparison=">",
    members={
        "a": Member([0.9, 0.8], {"random": [0.5, 0.5]}),
        "b": Member([0.3, 0.4], {"random": [0.5, 0.5]}),
    },
)


def test_rows_are_rendered_from_the_values(tmp_path: Path) -> None:
    write_result(tmp_path, "sys.one", [LOWER, EVERY])
    body = render_block(["sys.one"], tmp_path)
    lines = body.splitlines()
    # hand-written: mean 1.5, t(0.975, 1) * sd 0.7071 / sqrt 2 = 12.706 * 0.5 = 6.353; the
    # paired differences are constant (-2, -2): one-sided p = 0. Members: paired differences
    # (0.4, 0.3) and (-0.2, -0.1), t = 7 and -3 on 1 df: p = 1/2 - atan(7)/pi = 0.0452 and
    # 1/2 + atan(3)/pi = 0.898
    assert lines[2] == (
        "| ours is lower (sys.one) | ours 1.500 ± 6.353 | < | base 3.500 ± 6.353 (p 0) "
        "| **holds** |"
    )
    assert lines[3] == (
        "| every model beats random (sys.one) | model: 1 of 2 hold | for each of 2: > | "
        "a: 0.850 ± 0.635 vs random 0.500 ± 0.000 (p 0.0452); "
        "b: 0.350 ± 0.635 vs random 0.500 ± 0.000 (p 0.898) | **fails** (failing: b) |"
    )
    target = f"{tmp_path.as_posix()}/sys.one/result.json"
    source = f"- [`{target}`]({target}): small, seeds 2 (0, 1), commit abcdef0, 2026-12-01"
    assert source in lines
    relative = render_block(["sys.one"], tmp_path, base=tmp_path / "docs")
    assert "- [`../sys.one/result.json`](../sys.one/result.json): small" in relative


def test_overrides_and_partial_runs_are_named_in_the_sources(tmp_path: Path) -> None:
    write_result(
        tmp_path,
        "sys.one",
        [LOWER],
        overrides={"steps": "60"},
        status="partial",
        seeds_finished=[0],
        seeds=[0, 1],
    )
    body = render_block(["sys.one"], tmp_path)
    assert "small, seeds 1 (0), --set steps=60, status partial, 1 of 2 seeds" in body


def test_rows_without_a_file_are_kept_and_marked(tmp_path: Path) -> None:
    write_result(tmp_path, "sys.one", [LOWER])
    old = (
        "| claim | ours | | baseline | verdict |\n|---|---|---|---|---|\n"
        "| stale row of one (sys.one) | 9 | < | 10 | **holds** |\n"
        "| a row of two (expected) (sys.two) | 1 | \\|gap\\| <= 1 | 2 | **fails** |\n"
    )
    body = render_block(["sys.one", "sys.two", "sys.three"], tmp_path, old)
    assert "stale row of one" not in body  # sys.one has a file: its rows are rendered
    assert "| a row of two (expected) (sys.two) † | 1 | \\|gap\\| <= 1 | 2 | **fails** |" in body
    assert "† Rows of `sys.two`: no committed result file" in body
    assert "No result file and no rows yet for `sys.three`." in body
    # rendering again leaves it as it is (the mark is not doubled)
    assert render_block(["sys.one", "sys.two", "sys.three"], tmp_path, body) == body


def test_update_text_replaces_only_the_blocks(tmp_path: Path) -> None:
    write_result(tmp_path, "sys.one", [LOWER])
    text = "intro\n<!-- claims:begin sys.one -->\nold table\n<!-- claims:end -->\noutro\n"
    new = update_text(text, tmp_path)
    assert new.startswith("intro\n<!-- claims:begin sys.one -->\n| claim |")
    assert new.endswith("<!-- claims:end -->\noutro\n")
    assert "old table" not in new
    assert update_text(new, tmp_path) == new
    # a changed measurement makes the committed table stale
    write_result(
        tmp_path / "v2", "sys.one", [Claim.from_dict({**LOWER.to_dict(), "ours": [5.0, 6.0]})]
    )
    assert update_text(new, tmp_path / "v2") != new


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- claims:begin sys.one -->\nno end\n", "without a <!-- claims:end -->"),
        ("x\n<!-- claims:end -->\n", "without a <!-- claims:begin before it"),
        ("<!-- claims:begin -->\n<!-- claims:end -->\n", "names no experiment"),
        ("<!-- claims:begin README -->\n<!-- claims:end -->\n", "names 'README'"),
        (
            "<!-- claims:begin a.b -->\n<!-- claims:begin c.d -->\n<!-- claims:end -->\n",
            "without a <!-- claims:end -->",
        ),
    ],
)
def test_malformed_markers_are_errors_with_the_line(text: str, message: str) -> None:
    with pytest.raises(ProvenmlError, match=r"doc\.md:") as info:
        find_blocks(text, "doc.md")
    assert message in str(info.value)


def test_a_result_file_of_another_experiment_is_refused(tmp_path: Path) -> None:
    folder = write_result(tmp_path, "sys.one", [LOWER])
    (tmp_path / "sys.two").mkdir()
    (tmp_path / "sys.two" / "result.json").write_text((folder / "result.json").read_text())
    with pytest.raises(ProvenmlError, match=r"is a result of sys\.one, not sys\.two"):
        render_block(["sys.two"], tmp_path)


def test_cli_update_and_check(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_result(results, "sys.one", [LOWER])
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- claims:begin sys.one -->\n<!-- claims:end -->\n")
    runner = CliRunner()
    args = ["report", "--update", str(doc), "--results", str(results)]
    stale = runner.invoke(app, [*args, "--check"])
    assert stale.exit_code == 1 and "stale" in stale.output
    assert doc.read_text() == "<!-- claims:begin sys.one -->\n<!-- claims:end -->\n"
    assert runner.invoke(app, args).exit_code == 0
    assert "ours is lower (sys.one)" in doc.read_text()
    assert runner.invoke(app, [*args, "--check"]).exit_code == 0
    assert not update_file(doc, results, check=True)
    no_blocks = tmp_path / "plain.md"
    no_blocks.write_text("nothing marked\n")
    result = runner.invoke(app, ["report", "--update", str(no_blocks), "--results", str(results)])
    assert result.exit_code == 2 and "has no claims block" in result.output


def test_a_claim_over_many_members_lists_those_that_do_not_hold(tmp_path: Path) -> None:
    members = {f"m{i}": Member([0.9, 0.8], {"random": [0.5, 0.5]}) for i in range(5)}
    members["m5"] = Member([0.3, 0.4], {"random": [0.5, 0.5]})
    many = Claim(
        key="many",
        statement="all beat random",
        metric="AUROC",
        ours_label="model",
        comparison=">",
        members=members,
    )
    write_result(tmp_path, "sys.one", [many])
    row = render_block(["sys.one"], tmp_path).splitlines()[2]
    assert "| m5: 0.350 ± 0.635 vs random 0.500 ± 0.000 (p 0.898); 5 more hold |" in row
    assert "m0:" not in row
