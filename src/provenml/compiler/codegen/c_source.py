"""The C text of the backend: the translation unit's header, the kernel signature, C
expressions of the elementwise ops, and the register-tile micro-kernel helper (survey Sec. 4.4,
"code generation")."""

from __future__ import annotations

from provenml.compiler import loopir as L
from provenml.compiler.ir import Node
from provenml.errors import ProvenmlError

SIGNATURE = (
    "const void** in, void** out, float* arena, const float* cst, const int tid, const int nth"
)
ARGS = "in, out, arena, cst, tid, nth"

C_HEADER = (
    """#include <math.h>
#include <string.h>
#include <float.h>
#include <omp.h>
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
static int pm_threads = 1;
void pm_set_threads(int n) { pm_threads = n; }
"""
    + L.PARTITION_C
    + "\n"
)

VLEN = 8  # floats per vector of the micro-kernel (256-bit)


def microkernel(mr: int, nr: int, ku: int) -> tuple[str, str]:
    """C source of the ``mr x nr`` register-tile micro-kernel (name, code).

    ``acc[mr][nr] += A[mr, K] @ B[K, nr]`` with ``A`` rows ``lda`` apart and ``B`` rows ``ldb``
    apart: ``mr * nr / 8`` accumulators are named vector locals (never an array, which gcc may
    keep on the stack), each k step loads ``nr / 8`` vectors of ``B``, broadcasts one ``A``
    element per row and issues ``mr * nr / 8`` fused multiply-adds. It accumulates into ``acc``
    so a caller can split K (the convolution's kh/kw loops). Guarded by a macro so several
    kernels (or tuning candidates) in one translation unit share it."""
    nv = nr // VLEN
    name = f"pm_ukr_{mr}x{nr}_u{ku}"
    guard = name.upper()
    cs = [[f"c{i}_{j}" for j in range(nv)] for i in range(mr)]
    lines = [
        "#ifndef PM_V8_DEFINED",
        "#define PM_V8_DEFINED",
        f"typedef float pm_v8 __attribute__((vector_size({4 * VLEN}), aligned(4)));",
        "#endif",
        f"#ifndef {guard}",
        f"#define {guard}",
        f"static inline __attribute__((always_inline)) void {name}(long K, const float* restrict a,"
        " long lda, const float* restrict b, long ldb, float* restrict acc) {",
    ]
    for i in range(mr):
        for j in range(nv):
            lines.append(f"  pm_v8 {cs[i][j]} = *(const pm_v8*)(acc + {i * nr + j * VLEN});")
    lines += [f"  #pragma GCC unroll {max(1, ku)}", "  for (long k = 0; k < K; ++k) {"]
    for j in range(nv):
        lines.append(f"    const pm_v8 b{j} = *(const pm_v8*)(b + k*ldb + {j * VLEN});")
    for i in range(mr):
        bcast = ", ".join(["s"] * VLEN)
        upd = " ".join(f"{cs[i][j]} += av * b{j};" for j in range(nv))
        lines.append(
            f"    {{ const float s = a[{i}*lda + k]; const pm_v8 av = {{{bcast}}}; {upd} }}"
        )
    lines.append("  }")
    for i in range(mr):
        for j in range(nv):
            lines.append(f"  *(pm_v8*)(acc + {i * nr + j * VLEN}) = {cs[i][j]};")
    lines += ["}", "#endif"]
    return name, "\n".join(lines)


UNARY_C: dict[str, str] = {
    "relu": "({x} > 0.f ? {x} : 0.f)",
    "gelu": "(0.5f * {x} * (1.f + erff({x} * 0.70710678118654752f)))",
    "gelu_tanh": (
        "(0.5f * {x} * (1.f + tanhf(0.7978845608028654f * ({x} + 0.044715f * {x} * {x} * {x}))))"
    ),
    "silu": "({x} / (1.f + expf(-{x})))",
    "tanh": "tanhf({x})",
    "sigmoid": "(1.f / (1.f + expf(-{x})))",
    "neg": "(-{x})",
    "exp": "expf({x})",
    "identity": "{x}",
    "erf": "erff({x})",
    "sqrt": "sqrtf({x})",
}
BINARY_C: dict[str, str] = {
    "add": "({a} + {b})",
    "sub": "({a} - {b})",
    "mul": "({a} * {b})",
    "div": "({a} / {b})",
}


def c_unary(op: str, x: str) -> str:
    """C expression of an elementwise unary op."""
    return UNARY_C[op].format(x=x)


def c_binary(op: str, a: str, b: str) -> str:
    """C expression of an elementwise binary op."""
    return BINARY_C[op].format(a=a, b=b)


def cname(name: str) -> str:
    """A C identifier for an IR value name."""
    return "v_" + "".join(ch if ch.isalnum() else "_" for ch in name)


def chain(body: list[Node], load: dict[str, str], seed: dict[str, str]) -> tuple[list[str], str]:
    """C statements computing ``body`` elementwise; ``load`` maps external values to C
    expressions at the current element, ``seed`` maps already-computed values to C vars."""
    env = dict(seed)
    stmts = []
    for m in body:
        args = [env.get(i, load.get(i, "")) for i in m.inputs]
        if any(a == "" for a in args):
            raise ProvenmlError(f"codegen: operand of {m.name} not available")
        expr = c_unary(m.op, args[0]) if len(args) == 1 else c_binary(m.op, args[0], args[1])
        var = "t_" + cname(m.name)
        stmts.append(f"const float {var} = {expr};")
        env[m.name] = var
    return stmts, env[body[-1].name] if body else ""
