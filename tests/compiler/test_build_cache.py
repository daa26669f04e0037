"""Where the compiler caches its builds: the one provenml cache root (``$PROVENML_CACHE``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from provenml.compiler.build import cache_dir


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
