"""A per-user cache for generated data and build products (never downloaded content), and the
one atomic writer that the cache and the run directories use.

``$PROVENML_CACHE`` sets the cache root; otherwise ``$XDG_CACHE_HOME/provenml`` or
``~/.cache/provenml``. (``$PROVENML_CACHE_DIR``, the old name, is still read, with a
deprecation warning.) Writers use :func:`atomic_write_path` so that parallel seed workers that
generate the same file never read a half-written one.
"""

from __future__ import annotations

import json
import os
import secrets
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_path", "cache_dir", "cache_root", "write_atomic", "write_json"]

CACHE_ENV = "PROVENML_CACHE"
_OLD_CACHE_ENV = "PROVENML_CACHE_DIR"


def cache_root() -> Path:
    """The cache root (not created): ``$PROVENML_CACHE``, else the XDG default."""
    root = os.environ.get(CACHE_ENV)
    if not root and os.environ.get(_OLD_CACHE_ENV):
        warnings.warn(
            f"${_OLD_CACHE_ENV} is deprecated; set ${CACHE_ENV} instead",
            DeprecationWarning,
            stacklevel=3,
        )
        root = os.environ[_OLD_CACHE_ENV]
    if not root:
        root = os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "provenml"
        )
    return Path(root)


def cache_dir(*parts: str) -> Path:
    """The cache folder ``<root>/<parts...>``, created if missing."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def atomic_write_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    The temporary name is unique per call, so concurrent writers of the same target never
    share it; on an exception nothing is left behind and ``target`` is untouched.
    """
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(target: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``target`` atomically (through :func:`atomic_write_path`)."""
    with atomic_write_path(target) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)
    return Path(target)


def write_json(target: Path, payload: Any) -> Path:
    """``payload`` as indented JSON, written atomically (numpy / torch scalars and paths
    converted; NaN kept as ``NaN``)."""
    text = json.dumps(payload, indent=2, default=json_default, allow_nan=True) + "\n"
    return write_atomic(target, text)


def json_default(obj: Any) -> Any:
    """JSON for the objects experiments put in results: numpy / torch values and paths."""
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays and scalars, tensors
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__}")
