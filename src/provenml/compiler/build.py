"""Building generated C with gcc and loading it with ctypes; builds are cached on disk by a
hash of the source and the compiler flags (survey Sec. 4.4: the backend emits code for a
native compiler)."""

from __future__ import annotations

import ctypes
import functools
import os
import subprocess
import tempfile
from pathlib import Path

from provenml.nn.native import CC, FLAGS, LIBS, LINK_FLAGS, build_key, compile_library

__all__ = ["CC", "FLAGS", "LIBS", "LINK_FLAGS", "build", "build_key", "cache_dir", "load"]


@functools.cache
def native_vector_floats() -> int:
    """Floats per vector register of the build machine as ``FLAGS`` compile for it: 16 when
    gcc's ``-march=native`` defines ``__AVX512F__`` (512-bit zmm registers, 32 of them), else
    8. Asked once per process (gcc ``-dM -E`` on an empty file); 8 if gcc cannot be run.
    ``PROVENML_VECTOR_FLOATS=8`` forces the 256-bit path (the tuner then offers no 512-bit
    tiles)."""
    forced = os.environ.get("PROVENML_VECTOR_FLOATS")
    if forced in ("8", "16"):
        return int(forced)
    cmd = [CC, *(f for f in FLAGS if f.startswith("-m")), "-dM", "-E", "-x", "c", os.devnull]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return 8
    macros = {line.split()[1] for line in proc.stdout.splitlines() if line.count(" ") >= 1}
    return 16 if proc.returncode == 0 and "__AVX512F__" in macros else 8


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Where built libraries (and tuning results) are cached: ``override``, else the provenml
    cache's ``compiler`` folder (:func:`provenml.core.cache_dir`, under ``$PROVENML_CACHE``);
    a temp dir if that is not writable."""
    from provenml.core.cache import cache_dir as provenml_cache_dir  # stdlib-only module

    try:
        if override:
            path = Path(override)
            path.mkdir(parents=True, exist_ok=True)
        else:
            path = provenml_cache_dir("compiler")
        probe = path / ".probe"
        probe.touch()
        probe.unlink()
    except OSError:
        path = Path(tempfile.gettempdir()) / "provenml-compiler-cache"
        path.mkdir(parents=True, exist_ok=True)
    return path


def build(
    source: str, flags: tuple[str, ...] = FLAGS, cache: str | os.PathLike[str] | None = None
) -> tuple[Path, bool]:
    """Compile ``source`` to a shared library (or reuse the cached one). Returns (path, hit);
    the build itself is :func:`provenml.nn.native.compile_library`."""
    return compile_library(source, cache_dir(cache), flags, what="provenml.compiler")


def load(path: Path, entry: str = "pm_entry") -> tuple[ctypes.CDLL, ctypes._CFuncPtr]:
    """Load a built library and return it with its entry function."""
    lib = ctypes.CDLL(str(path))
    fn = getattr(lib, entry)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    fn.restype = None
    lib.pm_set_threads.argtypes = [ctypes.c_int]
    return lib, fn
