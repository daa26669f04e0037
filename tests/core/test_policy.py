"""Run policy applied by the runner: devices (with a fake device check), threads, the plotting
backend, the cache root; and the per-process memo and recorded tables."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from provenml.core import (
    Claim,
    Config,
    Memo,
    ProvenmlError,
    Result,
    RunContext,
    Table,
    cache_dir,
    experiment,
    get_experiment,
    run_experiment,
)
from provenml.core.policy import unit_threads
from provenml.core.run import plan_run

COMPUTED: list[int] = []


@dataclass
class PolicyConfig(Config):
    value: float = 0.25


@experiment(
    "toy.cpu_only",
    system="S0",
    claim="toy claim on the CPU only",
    config=PolicyConfig,
    devices=("cpu",),
    threads=1,
)
def cpu_only(cfg: PolicyConfig, ctx: RunContext) -> Result:
    def expensive() -> float:
        COMPUTED.append(ctx.seed)
        return cfg.value

    value = ctx.memo.cached(("toy.cpu_only", cfg.value), expensive)
    ctx.log(threads=torch.get_num_threads(), device=str(ctx.device))
    return Result(
        claims=[
            Claim(
                key="toy",
                statement="value < 1",
                metric="m",
                ours_label="value",
                ours=value,
                comparison="<",
                threshold=1.0,
            )
        ],
        tables=[Table("values", ["seed", "value"], [[ctx.seed, value]])],
    )


@pytest.fixture
def gpu_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.usefixtures("no_gpu")
def test_cuda_without_a_gpu_is_refused_before_any_directory(tmp_path: Path) -> None:
    with pytest.raises(ProvenmlError, match="no CUDA GPU is available"):
        run_experiment(
            get_experiment("toy.harness"), scale="smoke", device="cuda", out_root=tmp_path
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("gpu_present")
def test_an_unsupported_device_is_refused_before_any_directory(tmp_path: Path) -> None:
    with pytest.raises(ProvenmlError, match=r"^toy\.cpu_only runs on cpu only; --device cuda"):
        run_experiment(get_experiment("toy.cpu_only"), device="cuda", out_root=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("gpu_present")
def test_a_supported_device_is_accepted_and_auto_respects_the_declaration(tmp_path: Path) -> None:
    plan = plan_run(get_experiment("toy.harness"), scale="smoke", device="cuda", out_root=tmp_path)
    assert plan.device == "cuda" and plan.run_dir.is_dir()
    auto = plan_run(get_experiment("toy.harness"), scale="smoke", device="auto", out_root=tmp_path)
    assert auto.device == "cuda"
    cpu = plan_run(get_experiment("toy.cpu_only"), device="auto", out_root=tmp_path)
    assert cpu.device == "cpu"  # a GPU is there, but the experiment does not run on it


@pytest.mark.usefixtures("gpu_present")
def test_the_command_line_refuses_in_one_line(tmp_path: Path) -> None:
    from provenml.cli import app

    result = CliRunner().invoke(
        app,
        ["reproduce", "toy.cpu_only", "--device", "cuda", "--out", str(tmp_path / "runs")],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 2, result.output
    assert "runs on cpu only" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_the_declared_threads_apply_to_each_unit_and_are_restored(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_dir = run_experiment(
            get_experiment("toy.cpu_only"), device="cpu", out_root=tmp_path, memo=Memo()
        )
        line = json.loads((run_dir / "seed-0" / "metrics.jsonl").read_text().splitlines()[0])
        assert line["threads"] == 1 and line["device"] == "cpu"
        assert json.loads((run_dir / "seed-0" / "env.json").read_text())["torch_threads"] == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_threads_are_split_between_workers() -> None:
    cores = os.cpu_count() or 1
    assert unit_threads(None, 1) is None and unit_threads(3, 1) == 3
    assert unit_threads(None, 2) == max(1, cores // 2)
    assert unit_threads(64, 2) == max(1, cores // 2) and unit_threads(1, 2) == 1


def test_the_runner_sets_the_agg_backend(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("pdf")
    run_experiment(get_experiment("toy.harness"), scale="smoke", device="cpu", out_root=tmp_path)
    assert matplotlib.get_backend().lower() == "agg" and os.environ["MPLBACKEND"] == "Agg"


def test_one_cache_root_with_the_old_variable_deprecated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROVENML_CACHE", raising=False)
    monkeypatch.setenv("PROVENML_CACHE_DIR", str(tmp_path / "old"))
    with pytest.warns(DeprecationWarning, match="PROVENML_CACHE"):
        assert cache_dir("x") == tmp_path / "old" / "x"
    monkeypatch.setenv("PROVENML_CACHE", str(tmp_path / "new"))
    assert cache_dir("x") == tmp_path / "new" / "x"


def test_the_memo_is_shared_by_the_units_of_a_process_unless_scoped(tmp_path: Path) -> None:
    COMPUTED.clear()
    shared = Memo()
    spec = get_experiment("toy.cpu_only")
    run_experiment(spec, seeds=[0, 1], device="cpu", out_root=tmp_path / "a", memo=shared)
    run_experiment(spec, seeds=[2], device="cpu", out_root=tmp_path / "b", memo=shared)
    assert COMPUTED == [0]  # computed once, by the first unit
    run_experiment(spec, seeds=[3], device="cpu", out_root=tmp_path / "c", memo=Memo())
    assert COMPUTED == [0, 3]
    assert shared.cached(("toy.cpu_only", 0.25), lambda: 9.0) == 0.25


def test_tables_reach_the_runs_result(tmp_path: Path) -> None:
    spec = get_experiment("toy.cpu_only")
    one = run_experiment(spec, seeds=[4], device="cpu", out_root=tmp_path / "one", memo=Memo())
    assert json.loads((one / "result.json").read_text())["tables"] == [
        {"title": "values", "columns": ["seed", "value"], "rows": [[4, 0.25]]}
    ]
    two = run_experiment(spec, seeds=[0, 1], device="cpu", out_root=tmp_path / "two")
    tables = json.loads((two / "result.json").read_text())["tables"]
    assert [t["title"] for t in tables] == ["values (seed 0)", "values (seed 1)"]
    claim = json.loads((two / "result.json").read_text())["claims"][0]
    assert claim["threshold"] == {"value": 1.0, "source": None} and claim["verdict"] == "holds"
