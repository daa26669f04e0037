"""A per-user cache for generated data and build products (never downloaded content).

``$PROVENML_CACHE`` overrides the location; otherwise ``$XDG_CACHE_HOME/provenml`` or
``~/.cache/provenml``. Writers use :func:`atomic_write_path` so that parallel seed workers that
generate the same file never read a half-written one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """The cache folder ``<root>/<parts...>``, created if missing."""
    root = os.environ.get("PROVENML_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "provenml"
    )
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def atomic_write_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success."""
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
