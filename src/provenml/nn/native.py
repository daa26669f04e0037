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
from typing import Any

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


#: What ``PROVENML_NATIVE`` may say about the hand-written kernels of S2 and ``provenml.rl``.
NATIVE_SWITCH = "PROVENML_NATIVE"


def tracing() -> bool:
    """Whether a tracer is running the caller: ``torch.fx.symbolic_trace``, TorchDynamo
    (``torch.compile``, ``torch.export``), ``torch.jit.trace`` (and the ``torch.onnx.export``
    built on it) or ``provenml.compiler``'s own tracing. A hand kernel is an opaque ``ctypes``
    call no tracer can see into, so under one the PyTorch code runs (the same maths), and a
    model that dispatches between the two can be traced (stop 71: before, S9's edge network
    and S2's belief encoder could not be compiled, and ``torch.onnx.export`` recorded their
    kernels' outputs on the example as constants)."""
    import torch
    from torch.fx._symbolic_trace import is_fx_symbolic_tracing

    return is_fx_symbolic_tracing() or torch.compiler.is_compiling() or torch.jit.is_tracing()


def hand_kernels_enabled() -> bool:
    """Whether the hand-written C kernels (the belief recurrence of S2, the PPO minibatch and
    acting steps of ``provenml.rl``) should run instead of their PyTorch code.

    ``PROVENML_NATIVE=0`` turns them off and ``=1`` on. Unset (or ``auto``), they run where
    PyTorch's CPU dispatch reports AVX-512 or AVX2 (``torch.backends.cpu.get_cpu_capability()``),
    the two vector widths their register tiles (``MATMUL_C``) are written for and measured on
    (``benchmarks/bench_metarl_steps.py``: 2.2-2.8x a training iteration on a 2-core AVX-512
    Xeon; on a 2-core AVX2 AMD EPYC, faster than PyTorch since stop 49's 8-float tiles, 2x
    slower before them). Elsewhere (no AVX2; ARM) gcc would split their vectors and PyTorch
    runs. Both paths compute the same maths; the switch only picks the faster one.
    """
    if tracing():
        return False
    setting = os.environ.get(NATIVE_SWITCH, "auto").strip().lower()
    if setting in ("0", "off", "false"):
        return False
    if setting in ("1", "on", "true"):
        return True
    import torch

    capability = torch.backends.cpu.get_cpu_capability().upper()
    return capability.startswith("AVX512") or capability == "AVX2"


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


def data_pointer(tensor: Any) -> int | None:
    """The address of a tensor's data for a ``ctypes`` call (None passes NULL). Hold the
    tensor in a name until the call returns: a temporary's memory can be freed before the
    C code reads it."""
    return None if tensor is None else int(tensor.data_ptr())


@functools.cache
def build_library(source: str, directory: Path) -> ctypes.CDLL:
    """Compile (or find in ``directory``) and load ``source``; one load per process."""
    path, _ = compile_library(source, directory)
    return ctypes.CDLL(str(path))


def kernel_library(source: str, what: str) -> ctypes.CDLL | None:
    """A hand-written kernel library built in ``provenml.core.cache_dir("native")``, or None
    with one ``RuntimeWarning`` naming ``what`` (e.g. ``"provenml.rl: the native PPO loss"``)
    where it cannot be built: the caller then runs its PyTorch code."""
    import warnings

    from provenml.core.cache import cache_dir

    try:
        return build_library(source, cache_dir("native"))
    except ProvenmlError as err:
        warnings.warn(
            f"{what} is not available ({err}); using the PyTorch one (same results, slower)",
            RuntimeWarning,
            stacklevel=4,
        )
        return None


#: C helpers shared by the hand-written kernels (S2's belief recurrence, the PPO minibatch of
#: ``provenml.rl.native``): register-blocked matrix products over vectors of the machine's
#: width (gcc's vector extension: 16 floats with AVX-512, 8 elsewhere). ``mm`` is
#: ``C (+)= A @ B``, ``mm_at`` is ``C (+)= A^T @ B``; the column count is a multiple of 16.
MATMUL_C = r"""
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The products' vector is the machine's own width: 16 floats (a zmm register) with AVX-512,
   8 (a ymm register) elsewhere. gcc lowers a 64-byte vector on an AVX2 machine through the
   stack in 128-bit pieces: at stop 49 the products ran at 7 GFLOP/s on a Zen 3 core, their time
   spent in vmovq / vpinsrq moves. Tiles hold PM_TILE_R rows x PM_TILE_Q vectors of
   accumulators: 4 x 4 on AVX-512 (16 of its 32 registers); 6 x 2 on AVX2 (12 of its 16, with
   the 2 vectors of B and the broadcast row element 15), which measured 75-88 GFLOP/s there
   against 55-65 for 4 x 3, 43-45 for 4 x 2 and 41-47 for 6 x 3 (MKL: 62-78). */
#ifdef __AVX512F__
typedef float pm_vec __attribute__((vector_size(64), aligned(4)));
#define PM_W 16
#define PM_TILE_R 4
#define PM_TILE_Q 4
#else
typedef float pm_vec __attribute__((vector_size(32), aligned(4)));
#define PM_W 8
#define PM_TILE_R 6
#define PM_TILE_Q 2
#endif

/* C[R x W Q] (+)= A @ B[K x W Q] (rows ldb apart; W = PM_W), element (r, k) of A at
   A[r * sar + k * sak]: R x Q vector accumulators held in registers across the k loop. */
static inline __attribute__((always_inline)) void tile(int R, int Q, int K, const float* A,
                                                       int sar, int sak, const float* B, int ldb,
                                                       float* C, int ldc, int acc_in) {
  pm_vec acc[PM_TILE_R][4];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < Q; ++q)
      acc[r][q] = acc_in ? *(const pm_vec*)(C + r * ldc + PM_W * q) : (pm_vec){0};
  for (int k = 0; k < K; ++k) {
    pm_vec b[4];
    for (int q = 0; q < Q; ++q) b[q] = *(const pm_vec*)(B + k * ldb + PM_W * q);
    for (int r = 0; r < R; ++r) {
      const float a = A[r * sar + k * sak];
      for (int q = 0; q < Q; ++q) acc[r][q] += a * b[q];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < Q; ++q) *(pm_vec*)(C + r * ldc + PM_W * q) = acc[r][q];
}

/* One row block of R rows (PM_TILE_R, 4, 2 or 1) against Q vectors of columns, inlined; the
   3- and 4-vector cases are reached only where PM_TILE_Q is 4 (AVX-512). */
static inline __attribute__((always_inline)) void tiles(int R, int Q, int K, const float* a,
                                                        int sar, int sak, const float* b,
                                                        int ldb, float* c, int ldc,
                                                        int acc_in) {
  switch (Q) {
    case 4: tile(R, 4, K, a, sar, sak, b, ldb, c, ldc, acc_in); break;
    case 3: tile(R, 3, K, a, sar, sak, b, ldb, c, ldc, acc_in); break;
    case 2: tile(R, 2, K, a, sar, sak, b, ldb, c, ldc, acc_in); break;
    default: tile(R, 1, K, a, sar, sak, b, ldb, c, ldc, acc_in); break;
  }
}

/* C[M x N] (+)= op(A) @ B[K x N], N a multiple of 16; element (m, k) of op(A) at
   A[m * sar + k * sak]. Every element sums its k terms in order onto its starting value,
   whatever the tile it falls in. */
static inline __attribute__((always_inline)) void mm_strided(int M, int N, int K,
                                                             const float* A, int sar, int sak,
                                                             const float* B, int ldb, float* C,
                                                             int ldc, int acc_in) {
  for (int j = 0; j < N;) {
    const int left = (N - j) / PM_W;
    const int Q = left >= PM_TILE_Q ? PM_TILE_Q : left;
    int i = 0;
    for (; i + PM_TILE_R <= M; i += PM_TILE_R)
      tiles(PM_TILE_R, Q, K, A + i * sar, sar, sak, B + j, ldb, C + i * ldc + j, ldc, acc_in);
    for (; i + 4 <= M; i += 4)  /* AVX2: 4 of the last rows at once */
      tiles(4, Q, K, A + i * sar, sar, sak, B + j, ldb, C + i * ldc + j, ldc, acc_in);
    for (; i + 2 <= M; i += 2)  /* then 2 (M = 128 on AVX2 leaves 2 after 21 tiles of 6) */
      tiles(2, Q, K, A + i * sar, sar, sak, B + j, ldb, C + i * ldc + j, ldc, acc_in);
    for (; i < M; ++i)
      tiles(1, Q, K, A + i * sar, sar, sak, B + j, ldb, C + i * ldc + j, ldc, acc_in);
    j += PM_W * Q;
  }
}

/* C[M x N] (+)= A[M x K] (rows lda apart) @ B[K x N]. */
static void mm(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C,
               int ldc, int acc_in) {
  mm_strided(M, N, K, A, lda, 1, B, ldb, C, ldc, acc_in);
}

/* C[M x N] (+)= A^T @ B[K x N], A stored K x M (rows lda apart): a weight gradient
   sum_k A[k, m] B[k, n] over the K rows of a batch. */
static void mm_at(int M, int N, int K, const float* A, int lda, const float* B, int ldb,
                  float* C, int ldc, int acc_in) {
  mm_strided(M, N, K, A, 1, lda, B, ldb, C, ldc, acc_in);
}
"""
