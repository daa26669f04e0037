"""Building generated C with gcc and loading it with ctypes; builds are cached on disk by a
hash of the source and the compiler flags (survey Sec. 4.4: the backend emits code for a
native compiler)."""

from __future__ import annotations

import ctypes
import functools
import os
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from provenml.nn.native import CC, LIBS, LINK_FLAGS, build_key, compile_library
from provenml.nn.native import FLAGS as SHARED_FLAGS

__all__ = [
    "BUILD_JOBS_ENV",
    "CC",
    "FLAGS",
    "LIBS",
    "LINK_FLAGS",
    "SHARED_FLAGS",
    "build",
    "build_jobs",
    "build_key",
    "build_many",
    "cache_dir",
    "load",
]

BUILD_JOBS_ENV = "PROVENML_BUILD_JOBS"  # gcc processes build_many may run at once

#: The shared layer's flags (``-O3 -march=native -ffast-math ...``) without reciprocal
#: approximations. Under ``-ffast-math`` gcc computes ``a / b``, ``1 / sqrt(x)`` and
#: ``sqrt(x)`` from the approximate reciprocal instructions (``vrcp14ps`` / ``vrsqrt14ps`` in
#: vector loops, ``vrsqrtss`` in scalar ones) and one Newton step, which give NaN where IEEE
#: gives an infinity or a zero: ``1 / 0``, ``x / 0``, ``rsqrt(0)`` (a GCN's ``deg ** -0.5``
#: on an isolated node, which PyG then masks to 0), ``1 / inf`` (``sigmoid(-inf)``),
#: ``sqrt(inf)`` (found at stop 66). ``-mno-recip`` keeps the vector loops exact and
#: ``-fno-reciprocal-math`` the scalar ones (each alone leaves the other approximate); the
#: kernels then divide and take square roots as PyTorch does. S2's hand-written kernels keep
#: the shared flags: their inputs are finite, and their results stay as committed.
#:
#: ``-fno-finite-math-only`` (stop 68): under finite-math gcc may assume no operand is an
#: infinity or NaN, and folded ``x - x`` and ``exp(x) - exp(x)`` to 0 and ``x / x`` to 1
#: where PyTorch gives NaN for an infinite ``x`` (and ``0 / 0``), and no NaN test survived
#: (hence the bit-level ``pm_isnan``). Without it, ``__FAST_MATH__`` is no longer defined,
#: which would also drop glibc's vector-math declarations (``expf`` -> ``_ZGVeN16v_expf``):
#: the kernels' header declares them back (``codegen.c_source.C_HEADER``). The other fast-math
#: licences stay: reassociation (vectorised sums), no signed zeros, no errno.
FLAGS = (*SHARED_FLAGS, "-mno-recip", "-fno-reciprocal-math", "-fno-finite-math-only")


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
        # a probe of this process and thread's own: with one shared name, two builds probing
        # at once (two threads of build_many, two --jobs workers) could unlink each other's
        # probe, and the loser fell back to the temp folder (found at stop 54)
        probe = path / f".probe.{os.getpid()}.{threading.get_ident()}"
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


def build_jobs() -> int:
    """How many gcc processes :func:`build_many` runs at once: ``PROVENML_BUILD_JOBS`` when it
    is a positive integer, else the CPUs this process may run on, at most 8."""
    setting = os.environ.get(BUILD_JOBS_ENV, "").strip()
    if setting.isdigit() and int(setting) >= 1:
        return int(setting)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def build_many(
    sources: Sequence[str],
    flags: tuple[str, ...] = FLAGS,
    cache: str | os.PathLike[str] | None = None,
    jobs: int | None = None,
) -> list[tuple[Path, bool]]:
    """:func:`build` every source, up to ``jobs`` (:func:`build_jobs`) gcc processes at once;
    returns (path, hit) per source, in order. A source given twice is built once. Each build
    is a separate process writing files named by its own key, so builds of different sources
    do not meet; the first failure is raised (:class:`~provenml.errors.ProvenmlError` with
    gcc's message) once the builds under way have ended."""
    unique = list(dict.fromkeys(sources))
    cache = cache_dir(cache)  # resolved once, for every build
    workers = min(jobs or build_jobs(), len(unique))
    if workers <= 1:
        built = {source: build(source, flags, cache) for source in unique}
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="provenml-gcc") as pool:
            futures = {source: pool.submit(build, source, flags, cache) for source in unique}
            built = {source: future.result() for source, future in futures.items()}
    return [built[source] for source in sources]


def load(path: Path, entry: str = "pm_entry") -> tuple[ctypes.CDLL, ctypes._CFuncPtr]:
    """Load a built library and return it with its entry function."""
    lib = ctypes.CDLL(str(path))
    fn = getattr(lib, entry)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    fn.restype = None
    lib.pm_set_threads.argtypes = [ctypes.c_int]
    return lib, fn
