"""Where the compiler caches its builds: the one provenml cache root (``$PROVENML_CACHE``)."""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

import provenml.compiler as pc
import provenml.compiler.build as pc_build
import provenml.compiler.tune as pc_tune
from provenml.compiler.build import BUILD_JOBS_ENV, build_jobs, build_many, cache_dir
from provenml.errors import ProvenmlError


def test_builds_go_under_the_provenml_cache_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVENML_CACHE", str(tmp_path / "root"))
    monkeypatch.delenv("PROVENML_CACHE_DIR", raising=False)
    assert cache_dir() == tmp_path / "root" / "compiler"
    assert (tmp_path / "root" / "compiler").is_dir()


def test_an_explicit_folder_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVENML_CACHE", str(tmp_path / "root"))
    assert cache_dir(tmp_path / "mine") == tmp_path / "mine"
    assert not (tmp_path / "root").exists()


def test_the_old_variable_is_read_through_the_harness_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROVENML_CACHE", raising=False)
    monkeypatch.setenv("PROVENML_CACHE_DIR", str(tmp_path / "old"))
    with pytest.warns(DeprecationWarning, match="PROVENML_CACHE"):
        assert cache_dir() == tmp_path / "old" / "compiler"


def test_an_unwritable_cache_falls_back_to_a_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PROVENML_CACHE", str(blocker))
    path = cache_dir()
    assert path.name == "provenml-compiler-cache" and path.is_dir()


def _source(value: int) -> str:
    return f"int pm_answer(void) {{ return {value}; }}\n"


def test_build_many_builds_each_source_once_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    threads: set[str] = set()
    original = pc_build.build

    def recording(source: str, *args: Any, **kwargs: Any) -> Any:
        built.append(source)
        threads.add(threading.current_thread().name)
        return original(source, *args, **kwargs)

    monkeypatch.setattr(pc_build, "build", recording)
    sources = [_source(1), _source(2), _source(1), _source(3)]
    results = build_many(sources, cache=tmp_path, jobs=2)
    assert sorted(built) == sorted({*sources})  # the repeated source once
    assert all(t.startswith("provenml-gcc") for t in threads)  # on the build threads
    assert [hit for _, hit in results] == [False, False, False, False]
    answers = [ctypes.CDLL(str(path)).pm_answer() for path, _ in results]
    assert answers == [1, 2, 1, 3]
    assert results[0][0] == results[2][0]
    # built now: every source is a cache hit
    assert [hit for _, hit in build_many(sources, cache=tmp_path, jobs=2)] == [True] * 4


def test_build_many_raises_the_compilers_message(tmp_path: Path) -> None:
    with pytest.raises(ProvenmlError, match="gcc failed"):
        build_many([_source(4), "int broken( {"], cache=tmp_path, jobs=2)
    # the good source was built all the same
    assert build_many([_source(4)], cache=tmp_path)[0][1]


def test_build_jobs_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BUILD_JOBS_ENV, "3")
    assert build_jobs() == 3
    for bad in ("0", "two", ""):
        monkeypatch.setenv(BUILD_JOBS_ENV, bad)
        assert 1 <= build_jobs() <= 8


class _ThreeLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(32, 48), nn.Linear(48, 64), nn.Linear(64, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


def test_the_tuner_builds_every_kernels_candidates_before_timing_any(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three dense kernels of different shapes: their three candidate libraries are built in
    one :func:`build_many` call, and each kernel's timing then finds its library built."""
    events: list[tuple[str, int]] = []
    original_many, original_build = pc_tune.build_many, pc_tune.build

    def many(sources: list[str], *args: Any, **kwargs: Any) -> Any:
        events.append(("build_many", len(sources)))
        return original_many(sources, *args, **kwargs)

    def single(source: str, *args: Any, **kwargs: Any) -> Any:
        path, hit = original_build(source, *args, **kwargs)
        events.append(("tune_node build hit", int(hit)))
        return path, hit

    monkeypatch.setattr(pc_tune, "build_many", many)
    monkeypatch.setattr(pc_tune, "build", single)
    model, x = _ThreeLayers().eval(), torch.randn(4, 32)
    compiled = pc.compile(model, (x,), threads=1, tune_threads=False, cache_dir=str(tmp_path))
    assert events == [("build_many", 3)] + [("tune_node build hit", 1)] * 3
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


def test_concurrent_callers_all_get_the_cache_folder(tmp_path: Path) -> None:
    """Many threads asking at once all get the folder asked for (with one shared probe file,
    one thread's unlink could remove another's probe and send it to the temp folder)."""
    target = tmp_path / "shared"
    found: list[Path] = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        found.extend(cache_dir(target) for _ in range(200))

    workers = [threading.Thread(target=ask) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert found == [target] * 1600


class _RecordedProgress:
    """Stands in for :class:`provenml.compiler.progress.BuildProgress`: records the phases."""

    phases: ClassVar[list[list[Any]]] = []  # [description, total, steps advanced]

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = enabled

    def __enter__(self) -> _RecordedProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def phase(self, description: str, total: int | None = None) -> None:
        self.phases.append([description, total, 0])

    def advance(self, steps: int = 1) -> None:
        self.phases[-1][2] += steps


def test_a_build_reports_its_phases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tuning, gcc and the thread choice each show as a phase; the tuning phase counts
    every kernel it times."""
    import provenml.compiler.api as pc_api

    monkeypatch.setattr(pc_api, "BuildProgress", _RecordedProgress)
    _RecordedProgress.phases = []
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8)).eval()
    x = torch.randn(4, 16)
    compiled = pc.compile(model, (x,), threads=2, cache_dir=str(tmp_path), progress=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
    names = [p[0] for p in _RecordedProgress.phases]
    assert names[0] == "optimizing the graph"
    assert "building the tile candidates of 2 kernels (gcc)" in names
    timing = next(p for p in _RecordedProgress.phases if p[0] == "timing the tile candidates")
    assert timing[1:] == [2, 2]  # two dense kernels, both timed
    assert names[-2:] == ["building the model (gcc)", "choosing the thread count"]
    # a second build finds every kernel in the tuning cache: nothing to time
    _RecordedProgress.phases = []
    pc.compile(model, (x,), threads=2, cache_dir=str(tmp_path))
    assert "timing the tile candidates" not in [p[0] for p in _RecordedProgress.phases]


def test_the_progress_line_goes_to_standard_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = nn.Linear(8, 4).eval()
    x = torch.randn(2, 8)
    compiled = pc.compile(model, (x,), threads=1, cache_dir=str(tmp_path), progress=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
    assert capsys.readouterr().out == ""  # nothing on standard output
    with pytest.raises(ProvenmlError, match="progress= must be True, False or None"):
        pc.compile(model, (x,), progress="yes")


def test_a_build_inside_another_progress_display_stays_quiet(tmp_path: Path) -> None:
    """Inside a harness's progress bars a build shows its line beside them (rich 14 nests
    live displays; rich 13 refuses a second one, and the build then leaves its line out)."""
    from rich.progress import Progress

    model = nn.Linear(8, 4).eval()
    x = torch.randn(2, 8)
    with Progress() as outer:
        outer.add_task("an experiment", total=1)
        compiled = pc.compile(model, (x,), threads=1, cache_dir=str(tmp_path), progress=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
