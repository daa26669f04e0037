"""Small native kernels: C source compiled with the system's C compiler and loaded with
``ctypes`` (shared layer).

Two systems use it: the compiler (S10) builds the C it generates for a graph, and the
meta-RL package (S2) builds a hand-written kernel for its belief recurrence. A library is
cached on disk under a hash of its source, the flags and the compiler, so a second process
(or a second run) loads it without compiling; concurrent builders of the same source each
write a file of their own and rename it into place.

    from provenml.nn.native import build_library

    lib = build_library(SOURCE, cache_dir("native"))   # ctypes.CDLL; ProvenmlError if no gcc
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import subprocess
from pathlib import Path

from provenml.errors import ProvenmlError

CC = os.environ.get("PROVENML_CC", "gcc")
# Compile with -ffast-math (glibc's vector exp/erf/tanh, libmvec, are only declared under
# __FAST_MATH__) but link WITHOUT it: linking a shared library with -ffast-math (gcc < 13) adds
# crtfastmath.o, whose constructor sets flush-to-zero / denormals-are-zero for the whole Python
# process (it broke hypothesis and any float code run after a compile). tests/compiler checks
# that loading a build leaves denormals alone.
FLAGS = ("-O3", "-march=native", "-fopenmp", "-ffast-math", "-fPIC")
LINK_FLAGS = ("-shared", "-fopenmp")
LIBS = ("-lmvec", "-lm")


def build_key(source: str, flags: tuple[str, ...] = FLAGS) -> str:
    """The cache key of a build: a hash of the source, the flags and the compiler."""
    text = source + "\0" + " ".join(flags) + "\0" + " ".join(LINK_FLAGS) + "\0" + CC
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def compile_library(
    source: str, directory: Path, flags: tuple[str, ...] = FLAGS, what: str = "provenml"
) -> tuple[Path, bool]:
    """Compile ``source`` to a shared library in ``directory`` (or reuse the cached one).
    Returns (path, hit). Compiling and linking are separate steps (see ``FLAGS``); a failing
    step raises :class:`ProvenmlError` with the compiler's message, ``what`` naming the user."""
    key = build_key(source, flags)
    lib = directory / f"pm_{key}.so"
    if lib.exists():
        return lib, True
    c_file = directory / f"pm_{key}.c"
    c_file.write_text(source)
    obj = directory / f"pm_{key}.{os.getpid()}.o"
    tmp = directory / f"pm_{key}.{os.getpid()}.tmp.so"
    for cmd in (
        [CC, *flags, "-c", str(c_file), "-o", str(obj)],
        [CC, *LINK_FLAGS, str(obj), "-o", str(tmp), *LIBS],
    ):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        except OSError as err:  # no compiler on this machine
            raise ProvenmlError(f"{what}: cannot run the C compiler {CC!r}: {err}") from err
        if proc.returncode != 0:
            raise ProvenmlError(f"{what}: gcc failed on {c_file}:\n{proc.stderr[-4000:]}")
    obj.unlink(missing_ok=True)
    os.replace(tmp, lib)
    return lib, False


@functools.cache
def build_library(source: str, directory: Path) -> ctypes.CDLL:
    """Compile (or find in ``directory``) and load ``source``; one load per process."""
    path, _ = compile_library(source, directory)
    return ctypes.CDLL(str(path))
