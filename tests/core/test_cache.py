"""The per-user cache: location override and atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from provenml.core import atomic_write_path, cache_dir


def test_cache_dir_honours_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVENML_CACHE", str(tmp_path / "c"))
    path = cache_dir("mnist1d", "v1")
    assert path == tmp_path / "c" / "mnist1d" / "v1" and path.is_dir()


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    with pytest.raises(RuntimeError), atomic_write_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash while writing")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_write_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [target]
