"""Lowering of the planned graph IR to the loop IR and then to one C translation unit (survey
Sec. 4.3/4.4, "backend"): one kernel (loop nest) per fused group, all run inside a single
persistent OpenMP parallel region by one entry function, so one ctypes call runs the whole graph
and the threads are forked once per call. Heavy kernels are split over the threads (balanced
static partitions of their output tiles/rows), light ones run on thread 0, and an
``omp barrier`` separates two kernels only where one reads or overwrites memory that the other
touches on another thread (:func:`place_barriers`).

Matmul-like kernels use a register-blocked micro-kernel: an ``mr x nr`` accumulator tile held
in registers over a pre-packed weight panel, with the fused elementwise epilogue applied to the
tile before it is stored. When ``nr`` is a multiple of 8 the k-loop is a generated helper
(:func:`microkernel`) whose accumulators are named 8-lane vector variables (gcc vector
extensions: AVX/AVX2 ``ymm`` registers under ``-march=native``, two SSE halves elsewhere), so the
tile cannot fall back to a stack array; otherwise it is a plain loop nest (``ii`` unrolled,
``ji`` vectorized).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from provenml.compiler import loopir as L
from provenml.compiler.ir import ELEMENTWISE, Graph, Node, Value
from provenml.compiler.passes import (
    _strides_over,
    collapse_strides,
    storage_root,
    strided_view,
)
from provenml.core import ProvenmlError

SIGNATURE = (
    "const void** in, void** out, float* arena, const float* cst, const int tid, const int nth"
)
ARGS = "in, out, arena, cst, tid, nth"

DEFAULT_SCHEDULE = {"mr": 4, "nr": 16, "ku": 2}

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


def c_unary(op: str, x: str) -> str:
    """C expression of an elementwise unary op."""
    return {
        "relu": f"({x} > 0.f ? {x} : 0.f)",
        "gelu": f"(0.5f * {x} * (1.f + erff({x} * 0.70710678118654752f)))",
        "gelu_tanh": (
            f"(0.5f * {x} * (1.f + tanhf(0.7978845608028654f * "
            f"({x} + 0.044715f * {x} * {x} * {x}))))"
        ),
        "silu": f"({x} / (1.f + expf(-{x})))",
        "tanh": f"tanhf({x})",
        "sigmoid": f"(1.f / (1.f + expf(-{x})))",
        "neg": f"(-{x})",
        "exp": f"expf({x})",
        "identity": x,
    }[op]


def c_binary(op: str, a: str, b: str) -> str:
    return {
        "add": f"({a} + {b})",
        "sub": f"({a} - {b})",
        "mul": f"({a} * {b})",
        "div": f"({a} / {b})",
    }[op]


def _cname(name: str) -> str:
    return "v_" + "".join(ch if ch.isalnum() else "_" for ch in name)


Region = tuple[str, int, int]  # (memory space, first float, end float)


@dataclass
class Access:
    """The memory one kernel reads and writes, and whether it runs on thread 0 alone."""

    reads: list[Region]
    writes: list[Region]
    single: bool


def _overlap(a: Region, b: Region) -> bool:
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def place_barriers(accesses: list[Access]) -> list[bool]:
    """Where the entry needs an ``omp barrier`` (before kernel k when ``result[k]``).

    Since the last barrier, threads may be anywhere in the kernels issued so far. Kernel k must
    wait if it reads memory one of them writes (read after write), or writes memory one of them
    reads or writes (write after read/write: the memory planner reuses arena blocks). Two
    kernels that both run on thread 0 alone never need one between them (one thread runs them
    in program order)."""
    out = []
    pending: list[tuple[Region, bool, bool]] = []  # (region, written?, single?)
    for acc in accesses:
        hazard = False
        for region, written, single in pending:
            if single and acc.single:
                continue
            if any(_overlap(region, w) for w in acc.writes) or (
                written and any(_overlap(region, r) for r in acc.reads)
            ):
                hazard = True
                break
        out.append(hazard)
        if hazard:
            pending = []
        pending += [(r, False, acc.single) for r in acc.reads]
        pending += [(w, True, acc.single) for w in acc.writes]
    return out


@dataclass
class Program:
    """The generated C source plus what the runtime needs to call it."""

    source: str
    consts: np.ndarray  # the constant blob (float32 view)
    arena_floats: int
    loop_nests: dict[str, str] = field(default_factory=dict)  # group -> printed loop IR


class Lowering:
    """Turns a planned graph into C source."""

    def __init__(self, g: Graph, prefix: str = "pm", parallel_work: int | None = None) -> None:
        self.g = g
        self.prefix = prefix
        self.parallel_work = PARALLEL_WORK if parallel_work is None else parallel_work
        self.producers = g.producers()
        self.input_index = {n: i for i, n in enumerate(g.inputs)}
        self.direct_out: dict[str, int] = {}
        for k, o in enumerate(g.outputs):
            p = self.producers.get(o)
            if p is not None and p.op != "reshape" and o not in self.direct_out:
                self.direct_out[o] = k
        self.const_offset: dict[str, int] = {}
        chunks = []
        pos = 0
        for name, arr in g.consts.items():
            raw = (
                np.ascontiguousarray(
                    arr.astype(np.int64) if arr.dtype.kind in "iu" else arr.astype(np.float32)
                )
                .view(np.float32)
                .ravel()
            )
            pad = (-raw.size) % 16
            self.const_offset[name] = pos
            chunks.append(raw)
            chunks.append(np.zeros(pad, np.float32))
            pos += raw.size + pad
        self.blob = np.concatenate(chunks) if chunks else np.zeros(16, np.float32)
        self.kernels: list[str] = []
        self.nests: dict[str, str] = {}
        self.helpers: dict[str, str] = {}  # micro-kernel helpers by name, emitted once

    # -- pointers --------------------------------------------------------------------------------
    def ptr(self, name: str) -> str:
        """C pointer expression (float* or long long*) for a value."""
        v = self.g.values[name]
        ctype = "long long" if v.dtype == "int64" else "float"
        if name in self.const_offset:
            return f"((const {ctype}*)(cst + {self.const_offset[name]}))"
        if name in self.input_index:
            return f"((const {ctype}*)in[{self.input_index[name]}])"
        if name in self.direct_out:
            return f"(({ctype}*)out[{self.direct_out[name]}])"
        root = storage_root(self.g, name)
        if root != name:
            return (
                self.ptr(root)
                if v.dtype == self.g.values[root].dtype
                else f"(({ctype}*){self.ptr(root)})"
            )
        if name not in self.g.memory:
            raise ProvenmlError(f"codegen: value {name} has no storage (run plan_memory first)")
        return f"(({ctype}*)(arena + {self.g.memory[name]}))"

    def decls(
        self, node: Node, outputs: list[str], inputs: list[str]
    ) -> tuple[list[str], dict[str, str]]:
        """Local restrict pointers for a kernel (restrict dropped where buffers coincide)."""
        roots = {}
        for n in inputs + outputs:
            roots[n] = self.ptr(n)
        counts: dict[str, int] = {}
        for p in roots.values():
            counts[p] = counts.get(p, 0) + 1
        lines = []
        names = {}
        for n, p in roots.items():
            v = self.g.values[n]
            ctype = "long long" if v.dtype == "int64" else "float"
            const = "const " if n in inputs and n not in outputs else ""
            restrict = " restrict" if counts[p] == 1 else ""
            cn = _cname(n)
            names[n] = cn
            lines.append(f"{const}{ctype}*{restrict} {cn} = ({const}{ctype}*){p};")
        return lines, names

    def scratch(self, n: Node) -> int:
        key = n.name + "#scratch"
        if key not in self.g.memory:
            raise ProvenmlError(
                f"codegen: node {n.name} needs scratch space (run annotate_scratch before "
                "plan_memory)"
            )
        return self.g.memory[key]

    # -- entry -----------------------------------------------------------------------------------
    def region(self, name: str) -> Region | None:
        """The memory a value occupies as ``(space, first float, end float)``; ``None`` for the
        read-only inputs and constants (they never create a hazard)."""
        v = self.g.values[name]
        if name in self.const_offset or name in self.input_index:
            return None
        floats = v.size * (2 if v.dtype == "int64" else 1)
        if name in self.direct_out:
            return (f"out{self.direct_out[name]}", 0, floats)
        root = storage_root(self.g, name)
        if root != name:
            return self.region(root)
        if name not in self.g.memory:
            raise ProvenmlError(f"codegen: value {name} has no storage (run plan_memory first)")
        return ("arena", self.g.memory[name], self.g.memory[name] + floats)

    def access(self, n: Node, single: bool) -> Access:
        """What a kernel reads and writes (its scratch space counts as written)."""
        reads = [r for r in (self.region(i) for i in dict.fromkeys(n.inputs)) if r is not None]
        writes = [r for r in [self.region(n.name)] if r is not None]
        key = n.name + "#scratch"
        if key in self.g.memory:
            off = self.g.memory[key]
            writes.append(("arena", off, off + int(n.attrs.get("scratch", 1))))
        return Access(reads, writes, single)

    def lower(self) -> Program:
        """One persistent parallel region per call: every thread runs ``<prefix>_body``, which
        calls the kernels in order. Kernels heavy enough to share (``work >= parallel_work``)
        are split (each thread takes its slice of the partition); light ones run on thread 0
        (``if (tid == 0)``), so a chain of them needs no synchronization at all. An
        ``omp barrier`` goes only before a kernel that reads or overwrites memory another
        thread may still be using (:func:`place_barriers`). With one thread the body is called
        directly, without a parallel region."""
        calls: list[tuple[str, Access]] = []
        for idx, n in enumerate(self.g.nodes):
            if n.op == "reshape":
                continue
            kname = f"{self.prefix}_k{idx}_{n.op if n.op != 'fused' else n.attrs['kind']}"
            kernel = self.kernel_for(n, kname)
            split = work_estimate(n, self.g.values) >= self.parallel_work and L.is_split(kernel)
            self.kernels.append(L.to_c(kernel, SIGNATURE, split=split))
            self.nests[n.name] = L.describe(kernel.body)
            call = f"{kname}({ARGS});" if split else f"if (tid == 0) {kname}({ARGS});"
            calls.append((call, self.access(n, single=not split)))
        body = []
        for (call, _), barrier in zip(calls, place_barriers([a for _, a in calls]), strict=True):
            if barrier:
                body.append("  #pragma omp barrier")
            body.append(f"  {call}")
        copies = []
        for k, o in enumerate(self.g.outputs):
            if self.direct_out.get(o) == k:
                continue
            v = self.g.values[o]
            nbytes = v.size * (8 if v.dtype == "int64" else 4)
            copies.append(f"  memcpy(out[{k}], (const void*){self.ptr(o)}, {nbytes});")
        p = self.prefix
        sig = "const void** in, void** out, float* arena, const float* cst"
        entry = [
            f"static void {p}_body({SIGNATURE}) {{",
            *body,
            "}",
            "",
            f"void {p}_entry({sig}) {{",
            "  if (pm_threads <= 1) {",
            f"    {p}_body(in, out, arena, cst, 0, 1);",
            "  } else {",
            "    #pragma omp parallel num_threads(pm_threads)",
            f"    {p}_body(in, out, arena, cst, omp_get_thread_num(), omp_get_num_threads());",
            "  }",
            *copies,
            "}",
        ]
        source = "\n\n".join([*self.helpers.values(), *self.kernels])
        source += "\n\n" + "\n".join(entry) + "\n"
        return Program(source, self.blob, int(self.g.arena_size), self.nests)

    def kernel_for(self, n: Node, kname: str) -> L.Kernel:
        if n.op == "fused":
            kind = n.attrs["kind"]
            body = n.attrs["body"]
            if kind == "elementwise":
                return self.elementwise(n, kname, body)
            if kind in ("dense", "matmul", "conv2d"):
                return self.anchored(n, kname, body[0], body[1:])
            if kind == "attention":
                return self.attention(n, kname, body)
            if kind == "reduction":
                anchor = next(m for m in body if m.op in ("softmax", "layer_norm"))
                k = body.index(anchor)
                return self.row_reduction(n, kname, anchor, body[:k], body[k + 1 :])
        if n.op in ELEMENTWISE:
            return self.elementwise(n, kname, [n])
        if n.op in ("dense", "matmul", "conv2d"):
            return self.anchored(n, kname, n, [])
        if n.op in ("softmax", "layer_norm"):
            last = len(self.g.values[n.name].shape) - 1
            if n.op == "layer_norm" or n.attrs["dim"] == last:
                return self.row_reduction(n, kname, n, [], [])
            return self.axis_softmax(n, kname)
        if n.op in ("mean", "sum"):
            return self.reduce(n, kname)
        if n.op in ("permute", "layout_transform"):
            return self.permute(n, kname)
        if n.op == "slice":
            return self.slice(n, kname)
        if n.op == "cat":
            return self.cat(n, kname)
        if n.op == "embedding":
            return self.embedding(n, kname)
        if n.op in ("max_pool2d", "avg_pool2d"):
            return self.pool(n, kname)
        raise ProvenmlError(
            f"codegen: no kernel for op '{n.op}' at node {n.name} (from {n.source})"
        )

    # -- expression chains -----------------------------------------------------------------------
    def chain(
        self, body: list[Node], load: dict[str, str], seed: dict[str, str]
    ) -> tuple[list[str], str]:
        """C statements computing ``body`` elementwise; ``load`` maps external values to C
        expressions at the current element, ``seed`` maps already-computed values to C vars."""
        env = dict(seed)
        stmts = []
        for m in body:
            args = [env.get(i, load.get(i, "")) for i in m.inputs]
            if any(a == "" for a in args):
                raise ProvenmlError(f"codegen: operand of {m.name} not available")
            expr = c_unary(m.op, args[0]) if len(args) == 1 else c_binary(m.op, args[0], args[1])
            var = "t_" + _cname(m.name)
            stmts.append(f"const float {var} = {expr};")
            env[m.name] = var
        return stmts, env[body[-1].name] if body else ""

    # -- elementwise -------------------------------------------------------------------------------
    def elementwise(self, n: Node, kname: str, body: list[Node]) -> L.Kernel:
        out_v = self.g.values[n.name]
        dom = out_v.physical_shape or (1,)
        inside = {m.name for m in body}
        ext = [i for i in dict.fromkeys(i for m in body for i in m.inputs) if i not in inside]
        strides = {}
        for i in ext:
            st = _strides_over(tuple(dom), self.g.values[i], out_v.layout)
            if st is None:
                raise ProvenmlError(
                    f"codegen: operand {i} of {n.name} cannot be broadcast in layout {out_v.layout}"
                )
            strides[i] = st
        # collapse adjacent dims that every operand walks contiguously
        dims = list(dom)
        sts = {i: list(s) for i, s in strides.items()}
        out_st = list(np.cumprod((list(dom)[::-1])[:-1] or [1]))[::-1] if len(dom) > 1 else []
        own = [int(x) for x in out_st] + [1] if len(dom) > 1 else [1]
        d = len(dims) - 2
        while d >= 0:
            if all(s[d] == s[d + 1] * dims[d + 1] for s in [*list(sts.values()), own]):
                dims[d] *= dims[d + 1]
                for s in [*list(sts.values()), own]:
                    s[d] = s[d + 1]
                    del s[d + 1]
                del dims[d + 1]
            d -= 1
        decl, names = self.decls(n, [n.name], ext)
        idx = [f"i{d}" for d in range(len(dims))]

        def off(st: list[int]) -> str:
            terms = [f"{v}*{s}" if s != 1 else v for v, s in zip(idx, st, strict=True) if s != 0]
            return " + ".join(terms) or "0"

        load = {i: f"{names[i]}[{off(sts[i])}]" for i in ext}
        stmts, result = self.chain(body, load, {})
        inner = L.Stmt("\n".join([*stmts, f"{names[n.name]}[{off(own)}] = {result};"]))
        return L.Kernel(kname, decl, _flat_nest(idx, dims, inner, 2048))

    # -- matmul / dense / conv with epilogue -----------------------------------------------------
    def _epilogue(
        self, n: Node, anchor: Node, epi: list[Node], rows: int, names: dict[str, str]
    ) -> tuple[dict[str, str], list[str]]:
        """Per-element loads of epilogue operands at (row r, col c) of the anchor's 2-D view."""
        av = self.g.values[anchor.name]
        dom = av.physical_shape
        inside = {m.name for m in epi} | {anchor.name}
        load = {}
        for i in dict.fromkeys(i for m in epi for i in m.inputs):
            if i in inside:
                continue
            st = _strides_over(dom, self.g.values[i], av.layout)
            rc = collapse_strides(dom, st, rows) if st is not None else None
            if rc is None:
                raise ProvenmlError(
                    f"codegen: epilogue operand {i} of {n.name} is not row/col indexable"
                )
            terms = [t for t, s in (("r", rc[0]), ("c", rc[1])) if s != 0]
            expr = (
                " + ".join(
                    f"{t}*{s}" if s != 1 else t
                    for t, s in zip(terms, [s for s in rc if s != 0], strict=True)
                )
                or "0"
            )
            load[i] = f"{names[i]}[{expr}]"
        return load, []

    def _tile(
        self,
        mr: int,
        nrc: int,
        nrs: int,
        ku: int,
        a_expr: str,
        b_expr: str,
        store: str,
        bias: str | None,
        epi_stmts_fn: Any,
        k_extent: int,
        ukr: tuple[str, str, str, str] | None = None,
    ) -> L.Body:
        """The register-blocked micro-kernel for one ``mr x nrc`` tile (``nrs`` columns stored).

        ``ukr = (a_base, lda, b_base, ldb)`` describes the operands as strided pointers; with it
        (and ``nrc`` a multiple of 8) the k-loop is a call of the :func:`microkernel` helper,
        else the loop nest over ``a_expr`` / ``b_expr``. Element 2 of the returned body is the
        k-loop (a Loop or the helper call), which the convolution wraps in its kh/kw loops."""
        init = L.Loop("ii", mr, [L.Loop("ji", nrc, [L.Stmt("acc[ii][ji] = 0.f;")])])
        L.unroll([init], "ii")
        L.vectorize([init], "ji")
        if ukr is not None and nrc % VLEN == 0:
            name, code = microkernel(mr, nrc, ku)
            self.helpers[name] = code
            a_base, lda, b_base, ldb = ukr
            call = L.Stmt(f"{name}({k_extent}, {a_base}, {lda}, {b_base}, {ldb}, &acc[0][0]);")
            stmts, result = epi_stmts_fn("acc[ii][ji]" + (f" + {bias}" if bias else ""))
            st = L.Loop(
                "ii",
                mr,
                [L.Loop("ji", nrs, [L.Stmt("\n".join([*stmts, f"{store} = {result};"]))])],
            )
            L.unroll([st], "ii")
            L.vectorize([st], "ji")
            return [L.Stmt(f"float acc[{mr}][{nrc}] __attribute__((aligned(32)));"), init, call, st]
        k_loop = L.Loop(
            "k",
            "K_",
            [
                L.Loop(
                    "ii",
                    mr,
                    [
                        L.Stmt(f"const float av = {a_expr};"),
                        L.Loop("ji", nrc, [L.Stmt(f"acc[ii][ji] += av * {b_expr};")]),
                    ],
                )
            ],
        )
        k_loop.extent = k_extent
        L.unroll([k_loop], "ii")
        L.vectorize([k_loop], "ji")
        if ku > 1:
            L.unroll([k_loop], "k", ku)
        stmts, result = epi_stmts_fn("acc[ii][ji]" + (f" + {bias}" if bias else ""))
        st = L.Loop(
            "ii", mr, [L.Loop("ji", nrs, [L.Stmt("\n".join([*stmts, f"{store} = {result};"]))])]
        )
        L.unroll([st], "ii")
        L.vectorize([st], "ji")
        return [L.Stmt(f"float acc[{mr}][{nrc}];"), init, k_loop, st]

    def anchored(self, n: Node, kname: str, anchor: Node, epi: list[Node]) -> L.Kernel:
        sched = {**DEFAULT_SCHEDULE, **anchor.attrs.get("schedule", {})}
        inside = {m.name for m in epi}
        ext = [
            i
            for i in dict.fromkeys(anchor.inputs + [i for m in epi for i in m.inputs])
            if i not in inside and i != anchor.name
        ]
        decl, names = self.decls(n, [n.name], ext)
        if anchor.op == "dense":
            return self.dense(n, kname, anchor, epi, sched, decl, names)
        if anchor.op == "matmul":
            return self.matmul(n, kname, anchor, epi, sched, decl, names)
        if anchor.attrs.get("depthwise"):
            return self.conv_depthwise(n, kname, anchor, epi, decl, names)
        if self.g.values[anchor.name].layout == "NHWC":
            return self.conv_nhwc(n, kname, anchor, epi, sched, decl, names)
        return self.conv_nchw(n, kname, anchor, epi, decl, names)

    def _epi_fn(
        self, n: Node, anchor: Node, epi: list[Node], rows: int, names: dict[str, str]
    ) -> Any:
        load, _ = self._epilogue(n, anchor, epi, rows, names)

        def fn(acc: str) -> tuple[list[str], str]:
            stmts = [f"const float t_anchor = {acc};"]
            more, result = self.chain(epi, load, {anchor.name: "t_anchor"})
            return stmts + more, result or "t_anchor"

        return fn

    def dense(
        self,
        n: Node,
        kname: str,
        anchor: Node,
        epi: list[Node],
        sched: dict[str, int],
        decl: list[str],
        names: dict[str, str],
    ) -> L.Kernel:
        x, w = anchor.inputs[0], anchor.inputs[1]
        bias = f"{names[anchor.inputs[2]]}[c]" if len(anchor.inputs) > 2 else None
        nn_, kk = int(anchor.attrs["n"]), int(anchor.attrs["k"])
        m = self.g.values[x].size // kk
        packed = int(anchor.attrs.get("packed", 0))
        mr = max(1, min(int(sched["mr"]), m))
        nr = packed or int(sched["nr"])
        ku = int(sched["ku"])
        nb = -(-nn_ // nr)
        mb = -(-m // mr)
        epi_fn = self._epi_fn(n, anchor, epi, len(self.g.values[anchor.name].shape) - 1, names)
        X, W, Y = names[x], names[w], names[n.name]
        ldb = nr if packed else nn_
        variants = []
        for full_m in (True, False):
            if not full_m and m % mr == 0:
                continue
            mr_v = mr if full_m else m % mr
            for full_n in (True, False):
                if not full_n and nn_ % nr == 0:
                    continue
                nrs = nr if full_n else nn_ % nr
                nrc = nr if packed else nrs
                b_expr = f"bp[k*{ldb} + ji]"
                tile = self._tile(
                    mr_v,
                    nrc,
                    nrs,
                    ku,
                    f"{X}[(i0 + ii)*{kk} + k]",
                    b_expr,
                    f"{Y}[r*{nn_} + c]",
                    bias,
                    epi_fn,
                    kk,
                    (f"{X} + i0*{kk}", str(kk), "bp", str(ldb)),
                )
                # the store loop needs r, c
                tile[-1] = _with_lets(tile[-1], ["r = i0 + ii", "c = j0 + ji"])
                cond_m = "io < MB_FULL" if full_m else "io == MB_FULL"
                cond_n = "jo < NB_FULL" if full_n else "jo == NB_FULL"
                variants.append((f"{cond_m} && {cond_n}", tile))
        branches: L.Body = []
        for cond, tile in variants:
            branches.append(L.If(cond, tile))
        pre = [
            f"const long jo = t / {mb}, io = t % {mb};",
            f"const long i0 = io * {mr}, j0 = jo * {nr};",
            f"const float* restrict bp = {W} + " + (f"jo * {kk * nr};" if packed else "j0;"),
            f"enum {{ MB_FULL = {m // mr}, NB_FULL = {nn_ // nr} }};",
        ]
        if packed and nb > 1 and mb > 1:
            # The weights of a whole graph rarely fit in L2, so each panel comes from L3 when its
            # first row tile runs. Every row tile of panel jo prefetches its 1/mb share of panel
            # jo+1, spreading that stream over the panel's compute instead of stalling on it.
            panel = kk * nr * 4
            pre.append(
                f"if (jo + 1 < {nb}) {{ const char* nx = (const char*)(bp + {kk * nr}); "
                f"const long lo = (io * {panel} / {mb}) & ~63L, hi = (io + 1) * {panel} / {mb}; "
                "for (long q = lo; q < hi; q += 64) __builtin_prefetch(nx + q, 0, 3); }"
            )
        body = L.Loop("t", nb * mb, [L.Stmt("\n".join(pre)), *branches])
        kern = L.Kernel(kname, decl, [body])
        if nb * mb > 1:
            L.parallel(kern, "t")
        return kern

    def matmul(
        self,
        n: Node,
        kname: str,
        anchor: Node,
        epi: list[Node],
        sched: dict[str, int],
        decl: list[str],
        names: dict[str, str],
    ) -> L.Kernel:
        a, b = anchor.inputs
        av, bv, ov = self.g.values[a], self.g.values[b], self.g.values[anchor.name]
        trans = bool(anchor.attrs.get("trans_b"))
        m, kk = av.shape[-2], av.shape[-1]
        nn_ = ov.shape[-1]
        batch = ov.shape[:-2]
        nbatch = int(np.prod(batch)) if batch else 1
        mr = max(1, min(int(sched["mr"]), m))
        nr = int(sched["nr"])
        ku = int(sched["ku"])
        nb, mb = -(-nn_ // nr), -(-m // mr)

        def batch_offset(v: Value, var: str) -> str:
            shape = (1,) * (len(batch) - (len(v.shape) - 2)) + tuple(v.shape[:-2])
            mat = v.shape[-1] * v.shape[-2]
            terms = []
            rem = var
            stride_out = 1
            acc = mat
            strides = []
            for size in reversed(shape):
                strides.append(acc if size != 1 else 0)
                acc *= size
            strides = list(reversed(strides))
            for d, st in enumerate(strides):
                inner = int(np.prod(batch[d + 1 :])) if d + 1 < len(batch) else 1
                if st:
                    terms.append(f"(({rem}) / {inner} % {batch[d]}) * {st}")
            del stride_out
            return " + ".join(terms) or "0"

        A, B, Y = names[a], names[b], names[n.name]
        scratch = f"(arena + {self.scratch(n)})"
        bsrc = f"{B}[{batch_offset(bv, 'pb')} + " + (
            f"(jo*{nr} + ji)*{kk} + k]" if trans else f"k*{nn_} + jo*{nr} + ji]"
        )
        # One parallel iteration per packed panel p = (batch pb, column block jo): the thread
        # that packs a panel of B also computes every row tile that reads it, so packing needs
        # no barrier (each thread only reads the panels it packed itself).
        pack = _pack_panel(kk, nr, nn_, bsrc)
        epi_fn = self._epi_fn(n, anchor, epi, len(ov.shape) - 1, names)
        variants = self._mm_variants(
            m, nn_, kk, kk, mr, nr, ku, "ap", f"{Y}[r*{nn_} + c]", f"bt*{m} + i0 + ii", epi_fn
        )
        head = [
            f"const long pb = p / {nb}, jo = p % {nb}, bt = pb, j0 = jo * {nr};",
            f"float* dst = pk + p*{kk * nr};",
            f"const float* restrict ap = {A} + {batch_offset(av, 'bt')};",
            f"enum {{ MB_FULL = {m // mr}, NB_FULL = {nn_ // nr} }};",
        ]
        rows = L.Loop(
            "io",
            mb,
            [
                L.Stmt(f"const long i0 = io * {mr};\nconst float* restrict bp = pk + p*{kk * nr};"),
                *variants,
            ],
        )
        compute = L.Loop("p", nbatch * nb, [L.Stmt("\n".join(head)), pack, rows])
        L.parallel([compute], "p")
        decl = [*decl, f"float* restrict pk = {scratch};"]
        return L.Kernel(kname, decl, [compute])

    def attention(self, n: Node, kname: str, body: list[Node]) -> L.Kernel:
        """A fused attention group (``passes.fuse_attention``), one parallel iteration per batch
        (head): ``S = epi(q @ kᵀ)`` through the micro-kernel into the head's scratch, a softmax
        over each row of S in place, then ``epi(S @ v)`` into the output. q, k, v are read and
        the output written through strides (absorbed reshape/permute/slice views). Every step
        of a head runs on the thread that owns the head: no barrier inside the kernel."""
        views, qk, qk_epi, _, pv, pv_epi, post = attention_parts(body)
        decl, names = self.decls(n, [n.name], list(n.inputs))
        members = {m.name: m for m in views}
        qv, kv = self.g.values[qk.inputs[0]], self.g.values[qk.inputs[1]]
        vv = self.g.values[pv.inputs[1]]
        m, d, n1, n2 = qv.shape[-2], qv.shape[-1], kv.shape[-2], vv.shape[-1]
        batch = qv.shape[:-2]
        nbatch = int(np.prod(batch))

        def base(name: str) -> tuple[str, tuple[int, ...]]:
            view = strided_view(self.g, name, members)
            if view is None:
                raise ProvenmlError(f"codegen: operand {name} of {n.name} is not a strided view")
            src, off, st = view
            return f"{names[src]} + {off} + {_batch_terms(batch, st)}", st[-2:]

        q_at, q_st = base(qk.inputs[0])
        k_at, k_st = base(qk.inputs[1])
        v_at, v_st = base(pv.inputs[1])
        out_shape = self.g.values[pv.name].shape
        y_st = tuple(int(np.prod(out_shape[dd + 1 :])) for dd in range(len(out_shape)))
        if post is not None:  # the output permute: write each element where it lands
            pshape = self.g.values[post.name].shape
            cs = [int(np.prod(pshape[dd + 1 :])) for dd in range(len(pshape))]
            y_list = [0] * len(cs)
            for dd, src_dim in enumerate(post.attrs["perm"]):
                y_list[src_dim] = cs[dd]
            y_st = tuple(y_list)
        y_at = f"{names[n.name]} + {_batch_terms(batch, y_st)}"
        s1 = {**DEFAULT_SCHEDULE, **qk.attrs.get("schedule", {})}
        s2 = {**DEFAULT_SCHEDULE, **pv.attrs.get("schedule", {})}
        mr1, nr1, mr2, nr2 = (
            min(int(s1["mr"]), m),
            int(s1["nr"]),
            min(int(s2["mr"]), m),
            int(s2["nr"]),
        )
        nb1, nb2 = -(-n1 // nr1), -(-n2 // nr2)
        pk1, sz, pk2 = attention_scratch(qk, pv, self.g.values)
        epi1 = self._epi_fn(n, qk, qk_epi, len(self.g.values[qk.name].shape) - 1, names)
        epi2 = self._epi_fn(n, pv, pv_epi, len(out_shape) - 1, names)
        head = L.Stmt(
            f"float* pk1 = arena + {self.scratch(n)} + bt*{pk1 + sz + pk2};\n"
            f"float* S = pk1 + {pk1};\nfloat* pk2 = S + {sz};\n"
            f"const float* restrict qb = {q_at};\n"
            f"const float* restrict kb = {k_at};\n"
            f"const float* restrict vb = {v_at};\n"
            f"float* yb = {y_at};"
        )

        def gemm(
            nb: int,
            nr: int,
            mr: int,
            kk: int,
            lda: int,
            ncols: int,
            src: str,
            a: str,
            store: str,
            sched: dict[str, int],
            epi: Any,
            pk: str,
        ) -> L.Loop:
            pack = _pack_panel(kk, nr, ncols, src)
            variants = self._mm_variants(
                m, ncols, kk, lda, mr, nr, int(sched["ku"]), a, store, f"bt*{m} + i0 + ii", epi
            )
            rows = L.Loop(
                "io",
                -(-m // mr),
                [
                    L.Stmt(
                        f"const long i0 = io * {mr}, j0 = jo * {nr};\n"
                        f"const float* restrict bp = {pk} + jo*{kk * nr};\n"
                        f"enum {{ MB_FULL = {m // mr}, NB_FULL = {ncols // nr} }};"
                    ),
                    *variants,
                ],
            )
            return L.Loop("jo", nb, [L.Stmt(f"float* dst = {pk} + jo*{kk * nr};"), pack, rows])

        scores = gemm(
            nb1,
            nr1,
            mr1,
            d,
            q_st[0],
            n1,
            f"kb[(jo*{nr1} + ji)*{k_st[0]} + k*{k_st[1]}]",
            "qb",
            f"S[(i0 + ii)*{n1} + c]",
            s1,
            epi1,
            "pk1",
        )
        softmax = L.Loop(
            "q",
            m,
            [
                L.Stmt(f"float* row = S + q*{n1};\nfloat mx = -FLT_MAX;"),
                L.Loop("j", n1, [L.Stmt("mx = MAX(mx, row[j]);")]),
                L.Stmt("float sum = 0.f;"),
                L.Loop("j", n1, [L.Stmt("row[j] = expf(row[j] - mx);")], "vectorize"),
                L.Loop("j", n1, [L.Stmt("sum += row[j];")]),
                L.Stmt("const float inv = 1.f / sum;"),
                L.Loop("j", n1, [L.Stmt("row[j] *= inv;")], "vectorize"),
            ],
        )
        out = gemm(
            nb2,
            nr2,
            mr2,
            n1,
            n1,
            n2,
            f"vb[k*{v_st[0]} + (jo*{nr2} + ji)*{v_st[1]}]",
            "S",
            f"yb[(i0 + ii)*{y_st[-2]} + c*{y_st[-1]}]",
            s2,
            epi2,
            "pk2",
        )
        loop = L.Loop("bt", nbatch, [head, scores, softmax, out], "parallel")
        return L.Kernel(kname, decl, [loop])

    def _mm_variants(
        self,
        m: int,
        nn_: int,
        kk: int,
        lda: int,
        mr: int,
        nr: int,
        ku: int,
        a: str,
        store: str,
        row: str,
        epi_fn: Any,
    ) -> list[L.If]:
        """The full/edge tile variants of a packed-B matmul row tile: ``a`` points at the A
        rows (``lda`` apart, ``kk`` long), ``bp`` at the packed panel, ``store`` writes element
        (r, c) where ``r = row`` and ``c = j0 + ji``."""
        variants = []
        for full_m in (True, False):
            if not full_m and m % mr == 0:
                continue
            mr_v = mr if full_m else m % mr
            for full_n in (True, False):
                if not full_n and nn_ % nr == 0:
                    continue
                nrs = nr if full_n else nn_ % nr
                tile = self._tile(
                    mr_v,
                    nr,
                    nrs,
                    ku,
                    f"{a}[(i0 + ii)*{lda} + k]",
                    f"bp[k*{nr} + ji]",
                    store,
                    None,
                    epi_fn,
                    kk,
                    (f"{a} + i0*{lda}", str(lda), "bp", str(nr)),
                )
                tile[-1] = _with_lets(tile[-1], [f"r = {row}", "c = j0 + ji"])
                cond = (
                    ("io < MB_FULL" if full_m else "io == MB_FULL")
                    + " && "
                    + ("jo < NB_FULL" if full_n else "jo == NB_FULL")
                )
                variants.append(L.If(cond, tile))
        return variants

    def _pad_input(
        self, n: Node, anchor: Node, names: dict[str, str], nhwc: bool
    ) -> tuple[list[L.Loop | L.Let | L.Stmt], str, int, int]:
        """Zero-padded copy of the conv input into the node's scratch space (if padding > 0)."""
        x = anchor.inputs[0]
        xv = self.g.values[x]
        nb_, c, h, w = xv.shape
        ph, pw = anchor.attrs["padding"]
        hp, wp = h + 2 * ph, w + 2 * pw
        if ph == 0 and pw == 0:
            return [], names[x], hp, wp
        scratch = self.scratch(n)
        if nhwc:
            src = f"{names[x]}[((b*{h} + (y - {ph}))*{w} + (xx - {pw}))*{c} + ch]"
            inner = L.Loop(
                "ch", c, [L.Stmt(f"xp[((b*{hp} + y)*{wp} + xx)*{c} + ch] = inside ? {src} : 0.f;")]
            )
            L.vectorize([inner], "ch")
            loop = L.Loop(
                "by",
                nb_ * hp,
                [
                    L.Stmt(f"const long b = by / {hp}, y = by % {hp};"),
                    L.Loop(
                        "xx",
                        wp,
                        [
                            L.Stmt(
                                f"const int inside = y >= {ph} && y < {h + ph} && xx >= {pw} && "
                                f"xx < {w + pw};"
                            ),
                            inner,
                        ],
                    ),
                ],
            )
        else:
            src = f"{names[x]}[((bc)*{h} + (y - {ph}))*{w} + (xx - {pw})]"
            inner = L.Loop(
                "xx",
                wp,
                [
                    L.Stmt(
                        f"xp[(bc*{hp} + y)*{wp} + xx] = (inside && xx >= {pw} && xx < {w + pw}) ? "
                        f"{src} : 0.f;"
                    )
                ],
            )
            L.vectorize([inner], "xx")
            loop = L.Loop(
                "bc",
                nb_ * c,
                [
                    L.Loop(
                        "y", hp, [L.Stmt(f"const int inside = y >= {ph} && y < {h + ph};"), inner]
                    )
                ],
            )
        L.parallel([loop], "by" if nhwc else "bc")
        return [L.Decl(f"float* restrict xp = arena + {scratch};"), loop], "xp", hp, wp

    def conv_nhwc(
        self,
        n: Node,
        kname: str,
        anchor: Node,
        epi: list[Node],
        sched: dict[str, int],
        decl: list[str],
        names: dict[str, str],
    ) -> L.Kernel:
        xv, ov = self.g.values[anchor.inputs[0]], self.g.values[anchor.name]
        nb_, cin, _, _ = xv.shape
        _, cout, oh, ow = ov.shape
        kh, kw = anchor.attrs["kernel"]
        sh, sw = anchor.attrs["stride"]
        nr = int(anchor.attrs["packed"])
        mr = max(1, min(int(sched["mr"]), ow))
        ku = int(sched["ku"])
        pad, src, hp, wp = self._pad_input(n, anchor, names, True)
        bias = f"{names[anchor.inputs[2]]}[c]" if len(anchor.inputs) > 2 else None
        epi_fn = self._epi_fn(n, anchor, epi, 3, names)
        W, Y = names[anchor.inputs[1]], names[n.name]
        ncb = -(-cout // nr)
        branches: L.Body = []
        for full_m in (True, False):
            if not full_m and ow % mr == 0:
                continue
            mr_v = mr if full_m else ow % mr
            for full_n in (True, False):
                if not full_n and cout % nr == 0:
                    continue
                nrs = nr if full_n else cout % nr
                tile = self._tile(
                    mr_v,
                    nr,
                    nrs,
                    ku,
                    f"arow[(ii*{sw})*{cin} + k]",
                    f"wrow[k*{nr} + ji]",
                    f"{Y}[r*{cout} + c]",
                    bias,
                    epi_fn,
                    cin,
                    ("arow", str(sw * cin), "wrow", str(nr)),
                )
                # K loop runs over (kh, kw, cin): wrap it
                kl = tile[2]
                assert isinstance(kl, (L.Loop, L.Stmt))
                tile[2] = L.Loop(
                    "kh",
                    kh,
                    [
                        L.Loop(
                            "kw",
                            kw,
                            [
                                L.Stmt(
                                    f"const float* arow = {src} + ((b*{hp} + oy*{sh} + kh)*{wp} + "
                                    f"ox0*{sw} + kw)*{cin};\nconst float* restrict wrow = {W} + "
                                    f"((jo*{kh} + kh)*{kw} + kw)*{cin * nr};"
                                ),
                                kl,
                            ],
                        )
                    ],
                )
                tile[-1] = _with_lets(
                    tile[-1], [f"r = (b*{oh} + oy)*{ow} + ox0 + ii", f"c = jo*{nr} + ji"]
                )
                cond = (
                    ("xo < MB_FULL" if full_m else "xo == MB_FULL")
                    + " && "
                    + ("jo < NB_FULL" if full_n else "jo == NB_FULL")
                )
                branches.append(L.If(cond, tile))
        mb = -(-ow // mr)
        pre = [
            f"const long jo = t / {nb_ * oh}, rest = t % {nb_ * oh};",
            f"const long b = rest / {oh}, oy = rest % {oh};",
            f"enum {{ MB_FULL = {ow // mr}, NB_FULL = {cout // nr} }};",
        ]
        xo = L.Loop("xo", mb, [L.Let("ox0", f"xo * {mr}"), *branches])
        compute = L.Loop("t", ncb * nb_ * oh, [L.Stmt("\n".join(pre)), xo])
        L.parallel([compute], "t")
        return L.Kernel(kname, decl, [*pad, compute])

    def conv_depthwise(
        self,
        n: Node,
        kname: str,
        anchor: Node,
        epi: list[Node],
        decl: list[str],
        names: dict[str, str],
    ) -> L.Kernel:
        xv, ov = self.g.values[anchor.inputs[0]], self.g.values[anchor.name]
        nb_, c, _, _ = xv.shape
        _, _, oh, ow = ov.shape
        kh, kw = anchor.attrs.get("kernel") or self.g.values[anchor.inputs[1]].shape[2:4]
        sh, sw = anchor.attrs["stride"]
        nhwc = ov.layout == "NHWC"
        pad, src, hp, wp = self._pad_input(n, anchor, names, nhwc)
        W, Y = names[anchor.inputs[1]], names[n.name]
        bias = f" + {names[anchor.inputs[2]]}[c]" if len(anchor.inputs) > 2 else ""
        if nhwc:
            epi_fn = self._epi_fn(n, anchor, epi, 3, names)
            stmts, result = epi_fn(f"acc[c]{bias}")
            init = L.Loop("c", c, [L.Stmt("acc[c] = 0.f;")], "vectorize")
            mac = L.Loop(
                "kh",
                kh,
                [
                    L.Loop(
                        "kw",
                        kw,
                        [
                            L.Stmt(
                                f"const float* xrow = {src} + ((b*{hp} + oy*{sh} + kh)*{wp} + "
                                f"ox*{sw} + kw)*{c};\nconst float* wrow = {W} + (kh*{kw} + "
                                f"kw)*{c};"
                            ),
                            L.Loop("c", c, [L.Stmt("acc[c] += xrow[c] * wrow[c];")], "vectorize"),
                        ],
                    )
                ],
            )
            store = L.Loop(
                "c",
                c,
                [
                    L.Let("r", f"(b*{oh} + oy)*{ow} + ox"),
                    L.Stmt("\n".join([*stmts, f"{Y}[r*{c} + c] = {result};"])),
                ],
                "vectorize",
            )
            body = L.Loop(
                "t",
                nb_ * oh,
                [
                    L.Stmt(f"const long b = t / {oh}, oy = t % {oh};\nfloat acc[{c}];"),
                    L.Loop("ox", ow, [init, mac, store]),
                ],
                "parallel",
            )
            return L.Kernel(kname, decl, [*pad, body])
        epi_fn = self._epi_fn(n, anchor, epi, 2, names)
        stmts, result = epi_fn(f"acc[c2]{bias.replace('[c]', '[ch]')}")
        mac = L.Loop(
            "kh",
            kh,
            [
                L.Loop(
                    "kw",
                    kw,
                    [
                        L.Stmt(f"const float wv = {W}[(ch*{kh} + kh)*{kw} + kw];"),
                        L.Loop(
                            "oy",
                            oh,
                            [
                                L.Loop(
                                    "ox",
                                    ow,
                                    [
                                        L.Stmt(
                                            f"acc[oy*{ow} + ox] += wv * {src}[((bc*{hp}) + "
                                            f"oy*{sh} + kh)*{wp} + ox*{sw} + kw];"
                                        )
                                    ],
                                    "vectorize",
                                )
                            ],
                        ),
                    ],
                )
            ],
        )
        prelude = f"const long ch = bc % {c};"
        body = self._plane_body(nb_ * c, oh * ow, prelude, mac, stmts, result, Y)
        return L.Kernel(kname, decl, [*pad, body])

    def conv_nchw(
        self,
        n: Node,
        kname: str,
        anchor: Node,
        epi: list[Node],
        decl: list[str],
        names: dict[str, str],
    ) -> L.Kernel:
        xv, ov = self.g.values[anchor.inputs[0]], self.g.values[anchor.name]
        nb_, cin, _, _ = xv.shape
        _, cout, oh, ow = ov.shape
        kh, kw = self.g.values[anchor.inputs[1]].shape[2:4]
        sh, sw = anchor.attrs["stride"]
        pad, src, hp, wp = self._pad_input(n, anchor, names, False)
        W, Y = names[anchor.inputs[1]], names[n.name]
        bias = f" + {names[anchor.inputs[2]]}[co]" if len(anchor.inputs) > 2 else ""
        epi_fn = self._epi_fn(n, anchor, epi, 2, names)
        stmts, result = epi_fn(f"acc[c2]{bias}")
        mac = L.Loop(
            "ci",
            cin,
            [
                L.Loop(
                    "kh",
                    kh,
                    [
                        L.Loop(
                            "kw",
                            kw,
                            [
                                L.Stmt(
                                    f"const float wv = {W}[((co*{cin} + ci)*{kh} + kh)*{kw} + kw];"
                                ),
                                L.Loop(
                                    "oy",
                                    oh,
                                    [
                                        L.Loop(
                                            "ox",
                                            ow,
                                            [
                                                L.Stmt(
                                                    f"acc[oy*{ow} + ox] += wv * {src}[(((b*{cin} "
                                                    f"+ ci)*{hp}) + oy*{sh} + kh)*{wp} + ox*{sw} "
                                                    "+ kw];"
                                                )
                                            ],
                                            "vectorize",
                                        )
                                    ],
                                ),
                            ],
                        )
                    ],
                )
            ],
        )
        prelude = f"const long b = bc / {cout}, co = bc % {cout};"
        body = self._plane_body(nb_ * cout, oh * ow, prelude, mac, stmts, result, Y)
        return L.Kernel(kname, decl, [*pad, body])

    @staticmethod
    def _plane_body(
        planes: int, plane: int, prelude: str, mac: L.Loop, stmts: list[str], result: str, Y: str
    ) -> L.Loop:
        """The NCHW conv scaffolding shared by the full and depthwise kernels: one parallel
        iteration per output plane ``bc`` (batch x channel), whose ``acc[plane]`` is zeroed,
        accumulated by ``mac`` and stored through the fused epilogue."""
        init = L.Loop("p", plane, [L.Stmt("acc[p] = 0.f;")], "vectorize")
        store = L.Loop(
            "c2",
            plane,
            [
                L.Let("r", "bc"),
                L.Let("c", "c2"),
                L.Stmt("\n".join([*stmts, f"{Y}[bc*{plane} + c2] = {result};"])),
            ],
            "vectorize",
        )
        head = L.Stmt(f"{prelude}\nfloat acc[{plane}];")
        return L.Loop("bc", planes, [head, init, mac, store], "parallel")

    # -- reductions --------------------------------------------------------------------------------
    def row_reduction(
        self, n: Node, kname: str, anchor: Node, pro: list[Node], epi: list[Node]
    ) -> L.Kernel:
        """softmax / layer norm over the last dim, with an elementwise prologue computed once
        into a row buffer and an elementwise epilogue applied on the way out."""
        v = self.g.values[anchor.name]
        length = v.shape[-1]
        rows = v.size // length
        inside = {m.name for m in pro + epi + [anchor]}
        ext = [
            i
            for i in dict.fromkeys(i for m in [*pro, anchor, *epi] for i in m.inputs)
            if i not in inside
        ]
        decl, names = self.decls(n, [n.name], ext)
        dom = v.physical_shape

        def loads(members: list[Node]) -> dict[str, str]:
            out = {}
            for i in dict.fromkeys(i for m in members for i in m.inputs):
                if i in inside:
                    continue
                st = _strides_over(dom, self.g.values[i], v.layout)
                rc = collapse_strides(dom, st, len(dom) - 1) if st is not None else None
                if rc is None:
                    raise ProvenmlError(f"codegen: operand {i} of {n.name} not row-indexable")
                expr = (
                    " + ".join(f"{t}*{s}" for t, s in (("r", rc[0]), ("j", rc[1])) if s != 0) or "0"
                )
                out[i] = f"{names[i]}[{expr}]"
            return out

        x = anchor.inputs[0]
        if pro:
            stmts, res = self.chain(pro, loads(pro), {})
            fill = L.Loop(
                "j", length, [L.Stmt("\n".join([*stmts, f"row[j] = {res};"]))], "vectorize"
            )
        else:
            fill = L.Loop(
                "j", length, [L.Stmt(f"row[j] = {names[x]}[r*{length} + j];")], "vectorize"
            )
        Y = names[n.name]
        epi_loads = loads(epi)
        if anchor.op == "softmax":
            stats = [
                L.Stmt("float mx = -FLT_MAX;"),
                L.Loop("j", length, [L.Stmt("mx = MAX(mx, row[j]);")]),
                L.Stmt("float sum = 0.f;"),
                L.Loop("j", length, [L.Stmt("row[j] = expf(row[j] - mx);")], "vectorize"),
                L.Loop("j", length, [L.Stmt("sum += row[j];")]),
                L.Stmt("const float inv = 1.f / sum;"),
            ]
            value = "row[j] * inv"
        else:
            w, b = names[anchor.inputs[1]], names[anchor.inputs[2]]
            stats = [
                L.Stmt("float s1 = 0.f;"),
                L.Loop("j", length, [L.Stmt("s1 += row[j];")]),
                L.Stmt(f"const float mu = s1 / {length}.f;\nfloat s2 = 0.f;"),
                L.Loop("j", length, [L.Stmt("const float d = row[j] - mu; s2 += d * d;")]),
                L.Stmt(
                    f"const float rstd = 1.f / sqrtf(s2 / {length}.f + {anchor.attrs['eps']!r}f);"
                ),
            ]
            value = f"(row[j] - mu) * rstd * {w}[j] + {b}[j]"
        stmts, res = self.chain(epi, epi_loads, {anchor.name: "t_val"})
        store = L.Loop(
            "j",
            length,
            [
                L.Stmt(
                    "\n".join(
                        [
                            f"const float t_val = {value};",
                            *stmts,
                            f"{Y}[r*{length} + j] = {res or 't_val'};",
                        ]
                    )
                )
            ],
            "vectorize",
        )
        body = L.Loop(
            "r",
            rows,
            [L.Stmt(f"float row[{length}];"), fill, *stats, store],
            "parallel" if rows > 1 else "serial",
        )
        return L.Kernel(kname, decl, [body])

    def axis_softmax(self, n: Node, kname: str) -> L.Kernel:
        v = self.g.values[n.name]
        d = n.attrs["dim"]
        outer = int(np.prod(v.shape[:d])) if d else 1
        red = v.shape[d]
        inner = int(np.prod(v.shape[d + 1 :]))
        decl, names = self.decls(n, [n.name], n.inputs)
        X, Y = names[n.inputs[0]], names[n.name]
        at = f"(o*{red} + q)*{inner} + i"
        code = (
            f"float mx = -FLT_MAX;\nfor (long q = 0; q < {red}; ++q) mx = MAX(mx, {X}[{at}]);\n"
            f"float s = 0.f;\nfor (long q = 0; q < {red}; ++q) "
            f"{{ const float e = expf({X}[{at}] - mx); {Y}[{at}] = e; s += e; }}\n"
            f"const float inv = 1.f / s;\nfor (long q = 0; q < {red}; ++q) {Y}[{at}] *= inv;"
        )
        body = L.Loop("o", outer, [L.Loop("i", inner, [L.Stmt(code)])], "parallel")
        return L.Kernel(kname, decl, [body])

    def reduce(self, n: Node, kname: str) -> L.Kernel:
        """mean / sum over dims that are contiguous in the input's physical order."""
        xv = self.g.values[n.inputs[0]]
        dims = tuple(n.attrs["dims"])
        if xv.layout == "NHWC":
            perm = (0, 2, 3, 1)
            dims = tuple(sorted(perm.index(d) for d in dims))
        shape = xv.physical_shape
        if list(dims) != list(range(dims[0], dims[-1] + 1)):
            raise ProvenmlError(
                f"codegen: {n.op} over non-adjacent dims {n.attrs['dims']} at node {n.name}"
            )
        outer = int(np.prod(shape[: dims[0]])) if dims[0] else 1
        red = int(np.prod([shape[d] for d in dims]))
        inner = int(np.prod(shape[dims[-1] + 1 :]))
        decl, names = self.decls(n, [n.name], n.inputs)
        X, Y = names[n.inputs[0]], names[n.name]
        scale = f" * {1.0 / red!r}f" if n.op == "mean" else ""
        body = L.Loop(
            "o",
            outer,
            [
                L.Stmt(f"float acc[{inner}];"),
                L.Loop("i", inner, [L.Stmt("acc[i] = 0.f;")], "vectorize"),
                L.Loop(
                    "q",
                    red,
                    [
                        L.Loop(
                            "i",
                            inner,
                            [L.Stmt(f"acc[i] += {X}[(o*{red} + q)*{inner} + i];")],
                            "vectorize",
                        )
                    ],
                ),
                L.Loop("i", inner, [L.Stmt(f"{Y}[o*{inner} + i] = acc[i]{scale};")], "vectorize"),
            ],
            "parallel" if outer > 1 else "serial",
        )
        return L.Kernel(kname, decl, [body])

    # -- data movement ----------------------------------------------------------------------
    def _copy_nest(
        self, kname: str, decl: list[str], dst: str, dst_shape: tuple[int, ...], src_expr_of: Any
    ) -> L.Kernel:
        idx = [f"i{d}" for d in range(len(dst_shape))]
        st = [int(np.prod(dst_shape[d + 1 :])) for d in range(len(dst_shape))]
        dst_off = " + ".join(f"{v}*{s}" for v, s in zip(idx, st, strict=True)) or "0"
        stmt = L.Stmt(f"{dst}[{dst_off}] = {src_expr_of(idx)};")
        return L.Kernel(kname, decl, _flat_nest(idx, list(dst_shape), stmt, 4096))

    def permute(self, n: Node, kname: str) -> L.Kernel:
        x = n.inputs[0]
        xv, ov = self.g.values[x], self.g.values[n.name]
        decl, names = self.decls(n, [n.name], [x])
        if n.op == "layout_transform":  # physical permutation between NCHW and NHWC
            perm = (0, 2, 3, 1) if ov.layout == "NHWC" else (0, 3, 1, 2)
        else:
            perm = tuple(n.attrs["perm"])
        src_shape = xv.physical_shape
        src_st = [int(np.prod(src_shape[d + 1 :])) for d in range(len(src_shape))]
        out_shape = ov.physical_shape

        def src(idx: list[str]) -> str:
            return " + ".join(f"{v}*{src_st[p]}" for v, p in zip(idx, perm, strict=True)) or "0"

        return self._copy_nest(
            kname, decl, names[n.name], out_shape, lambda idx: f"{names[x]}[{src(idx)}]"
        )

    def slice(self, n: Node, kname: str) -> L.Kernel:
        x = n.inputs[0]
        xv, ov = self.g.values[x], self.g.values[n.name]
        decl, names = self.decls(n, [n.name], [x])
        st = [int(np.prod(xv.shape[d + 1 :])) for d in range(len(xv.shape))]
        a = n.attrs

        def src(idx: list[str]) -> str:
            terms = []
            for d, v in enumerate(idx):
                e = f"({a['start']} + {v}*{a['step']})" if d == a["dim"] else v
                terms.append(f"{e}*{st[d]}")
            return " + ".join(terms) or "0"

        return self._copy_nest(
            kname, decl, names[n.name], ov.shape, lambda idx: f"{names[x]}[{src(idx)}]"
        )

    def cat(self, n: Node, kname: str) -> L.Kernel:
        ov = self.g.values[n.name]
        d = n.attrs["dim"]
        decl, names = self.decls(n, [n.name], list(dict.fromkeys(n.inputs)))
        outer = int(np.prod(ov.shape[:d])) if d else 1
        out_row = int(np.prod(ov.shape[d:]))
        stmts = []
        off = 0
        for i in n.inputs:
            chunk = int(np.prod(self.g.values[i].shape[d:]))
            stmts.append(
                f"memcpy({names[n.name]} + o*{out_row} + {off}, {names[i]} + o*{chunk}, "
                f"{chunk * 4});"
            )
            off += chunk
        return L.Kernel(kname, decl, [L.Loop("o", outer, [L.Stmt("\n".join(stmts))])])

    def embedding(self, n: Node, kname: str) -> L.Kernel:
        w, idx = n.inputs
        dim = self.g.values[w].shape[1]
        rows = self.g.values[w].shape[0]
        count = self.g.values[idx].size
        decl, names = self.decls(n, [n.name], [w, idx])
        code = (
            f"long row = (long){names[idx]}[q];\nif (row < 0) row += {rows};\n"
            f"memcpy({names[n.name]} + q*{dim}, {names[w]} + row*{dim}, {dim * 4});"
        )
        return L.Kernel(kname, decl, [L.Loop("q", count, [L.Stmt(code)])])

    def pool(self, n: Node, kname: str) -> L.Kernel:
        xv, ov = self.g.values[n.inputs[0]], self.g.values[n.name]
        nb_, c, h, w = xv.shape
        _, _, oh, ow = ov.shape
        (kh, kw), (sh, sw), (ph, pw) = n.attrs["kernel"], n.attrs["stride"], n.attrs["padding"]
        decl, names = self.decls(n, [n.name], n.inputs)
        X, Y = names[n.inputs[0]], names[n.name]
        is_max = n.op == "max_pool2d"
        init = "-FLT_MAX" if is_max else "0.f"
        combine = "acc[ch] = MAX(acc[ch], {v});" if is_max else "acc[ch] += {v};"
        fin = "acc[ch]" if is_max else f"acc[ch] * {1.0 / (kh * kw)!r}f"
        if ov.layout == "NHWC":
            v = f"{X}[((b*{h} + y)*{w} + xx)*{c} + ch]"
            win = L.Loop(
                "ky",
                kh,
                [
                    L.Loop(
                        "kx",
                        kw,
                        [
                            L.Stmt(
                                f"const long y = oy*{sh} + ky - {ph}, xx = ox*{sw} + kx - "
                                f"{pw};\nif (y < 0 || y >= {h} || xx < 0 || xx >= {w}) continue;"
                            ),
                            L.Loop("ch", c, [L.Stmt(combine.format(v=v))], "vectorize"),
                        ],
                    )
                ],
            )
            body = L.Loop(
                "t",
                nb_ * oh,
                [
                    L.Stmt(f"const long b = t / {oh}, oy = t % {oh};\nfloat acc[{c}];"),
                    L.Loop(
                        "ox",
                        ow,
                        [
                            L.Loop("ch", c, [L.Stmt(f"acc[ch] = {init};")], "vectorize"),
                            win,
                            L.Loop(
                                "ch",
                                c,
                                [L.Stmt(f"{Y}[((b*{oh} + oy)*{ow} + ox)*{c} + ch] = {fin};")],
                                "vectorize",
                            ),
                        ],
                    ),
                ],
                "parallel",
            )
            return L.Kernel(kname, decl, [body])
        v = f"{X}[(bc*{h} + y)*{w} + xx]"
        code = (
            f"float a = {init};\nfor (long ky = 0; ky < {kh}; ++ky) for (long kx = 0; kx < {kw}; "
            f"++kx) {{\n"
            f"  const long y = oy*{sh} + ky - {ph}, xx = ox*{sw} + kx - {pw};\n  if (y < 0 || y "
            f">= {h} || xx < 0 || xx >= {w}) continue;\n"
            + (f"  a = MAX(a, {v});\n}}\n" if is_max else f"  a += {v};\n}}\n")
            + f"{Y}[(bc*{oh} + oy)*{ow} + ox] = "
            + ("a;" if is_max else f"a * {1.0 / (kh * kw)!r}f;")
        )
        body = L.Loop(
            "bc", nb_ * c, [L.Loop("oy", oh, [L.Loop("ox", ow, [L.Stmt(code)])])], "parallel"
        )
        return L.Kernel(kname, decl, [body])


PARALLEL_WORK = 1 << 16  # operations below which a kernel runs on thread 0 alone


def work_estimate(n: Node, values: dict[str, Value]) -> int:
    """Rough operation count of a node (2*M*N*K for matmul-like anchors, else elements)."""
    anchor = n.attrs["body"][0] if n.op == "fused" else n
    out = values[n.name].size
    if anchor.op == "dense":
        return 2 * values[anchor.name].size * int(anchor.attrs["k"])
    if anchor.op == "conv2d":
        cin = values[anchor.inputs[0]].shape[1]
        kh, kw = anchor.attrs.get("kernel") or values[anchor.inputs[1]].shape[2:4]
        per = kh * kw * (1 if anchor.attrs.get("depthwise") else cin)
        return 2 * values[anchor.name].size * per
    if n.op == "fused" and n.attrs["kind"] == "attention":
        mms = [m for m in n.attrs["body"] if m.op == "matmul"]
        return sum(2 * values[m.name].size * values[m.inputs[0]].shape[-1] for m in mms)
    if anchor.op == "matmul":
        return 2 * values[anchor.name].size * values[anchor.inputs[0]].shape[-1]
    body = n.attrs.get("body", [n])
    return out * 4 * len(body)


def _flat_nest(idx: list[str], dims: list[int], stmt: L.Stmt, min_parallel: int) -> L.Body:
    """The loop nest of ``stmt`` over ``dims`` (loop variables ``idx``), vectorized over the
    last dim. Nests of at least ``min_parallel`` elements are parallel over all the other dims
    flattened into one loop (so a leading dim of 1 or 3 still splits evenly over the threads),
    or, for a single dim, over blocks of 1024 elements."""
    total = int(np.prod(dims)) if dims else 1
    if not dims:
        return [stmt]
    if len(dims) == 1:
        nest: L.Body = [L.Loop(idx[0], dims[0], [stmt])]
        if total >= min_parallel:
            outer, inner = L.split(nest, idx[0], 1024)
            L.vectorize(nest, inner)
            L.parallel(nest, outer)
        else:
            L.vectorize(nest, idx[0])
        return nest
    lets = []
    for d in range(len(dims) - 1):
        below = int(np.prod(dims[d + 1 : -1]))
        expr = "o" if below == 1 else f"o / {below}"
        lets.append(L.Let(idx[d], expr if d == 0 else f"({expr}) % {dims[d]}"))
    row = L.Loop(idx[-1], dims[-1], [stmt], "vectorize")
    kind = "parallel" if total >= min_parallel else "serial"
    return [L.Loop("o", int(np.prod(dims[:-1])), [*lets, row], kind)]


def _align16(n: int) -> int:
    return -(-n // 16) * 16


def _with_lets(item: L.Loop | L.Let | L.Stmt, lets: list[str]) -> L.Loop | L.Let | L.Stmt:
    """Insert ``name = expr`` lets at the top of the innermost loop of a nest."""
    assert isinstance(item, L.Loop)
    lp = item
    while any(isinstance(x, L.Loop) for x in lp.body):
        lp = next(x for x in lp.body if isinstance(x, L.Loop))
    lp.body = [L.Let(*[s.strip() for s in let.split("=", 1)]) for let in lets] + lp.body
    return item


def scratch_floats(n: Node, values: dict[str, Value]) -> int:
    """Extra arena space a node needs next to its output (padded conv input, packed B)."""
    anchor = n.attrs["body"][0] if n.op == "fused" else n
    if anchor.op == "conv2d":
        ph, pw = anchor.attrs["padding"]
        if ph or pw:
            nb_, c, h, w = values[anchor.inputs[0]].shape
            return nb_ * c * (h + 2 * ph) * (w + 2 * pw)
    if n.op == "fused" and n.attrs["kind"] == "attention":
        _, qk, _, _, pv, _, _ = attention_parts(n.attrs["body"])
        nbatch = int(np.prod(values[qk.inputs[0]].shape[:-2]))
        return nbatch * sum(attention_scratch(qk, pv, values))
    if anchor.op == "matmul":
        sched = {**DEFAULT_SCHEDULE, **anchor.attrs.get("schedule", {})}
        ov = values[anchor.name]
        kk = values[anchor.inputs[0]].shape[-1]
        nn_ = ov.shape[-1]
        nr = int(sched["nr"])
        nbatch = int(np.prod(ov.shape[:-2])) if len(ov.shape) > 2 else 1
        return nbatch * (-(-nn_ // nr)) * nr * kk
    return 0


def attention_parts(
    body: list[Node],
) -> tuple[list[Node], Node, list[Node], Node, Node, list[Node], Node | None]:
    """Split a fused attention body into (operand views, q@kᵀ, its epilogue, softmax, @v, its
    epilogue, output permute or None)."""
    i_qk = next(i for i, m in enumerate(body) if m.op == "matmul")
    i_sm = next(i for i, m in enumerate(body) if m.op == "softmax")
    rest = body[i_sm + 2 :]
    post = rest[-1] if rest and rest[-1].op == "permute" else None
    epi = rest[:-1] if post is not None else rest
    return body[:i_qk], body[i_qk], body[i_qk + 1 : i_sm], body[i_sm], body[i_sm + 1], epi, post


def _batch_terms(batch: tuple[int, ...], strides: tuple[int, ...]) -> str:
    """C offset of flat batch index ``bt`` for a view with ``strides`` over ``batch`` dims."""
    terms = []
    for d, size in enumerate(batch):
        inner = int(np.prod(batch[d + 1 :]))
        if size > 1 and strides[d]:
            terms.append(f"((bt / {inner}) % {size})*{strides[d]}")
    return " + ".join(terms) or "0"


def attention_scratch(qk: Node, pv: Node, values: dict[str, Value]) -> tuple[int, int, int]:
    """Floats per head of a fused attention kernel: packed kᵀ panels, the score matrix, packed
    v panels (each a multiple of 16 floats, so every block stays 64-byte aligned)."""
    s1 = {**DEFAULT_SCHEDULE, **qk.attrs.get("schedule", {})}
    s2 = {**DEFAULT_SCHEDULE, **pv.attrs.get("schedule", {})}
    qv, kv, vv = values[qk.inputs[0]], values[qk.inputs[1]], values[pv.inputs[1]]
    m, d, n1, n2 = qv.shape[-2], qv.shape[-1], kv.shape[-2], vv.shape[-1]
    nr1, nr2 = int(s1["nr"]), int(s2["nr"])
    pk1 = -(-n1 // nr1) * nr1 * d
    pk2 = -(-n2 // nr2) * nr2 * n1
    return _align16(pk1), _align16(m * n1), _align16(pk2)


def annotate_scratch(g: Graph) -> Graph:
    """Record each node's scratch need (``attrs["scratch"]``) for the memory planner."""
    out = g.clone()
    for n in out.nodes:
        extra = scratch_floats(n, out.values)
        if extra:
            n.attrs["scratch"] = extra
    return out


def lower(
    g: Graph, prefix: str = "pm", header: bool = True, parallel_work: int | None = None
) -> Program:
    """Lower a planned graph to a C program whose entry is ``<prefix>_entry``; kernels with
    at least ``parallel_work`` operations (default :data:`PARALLEL_WORK`) are split over the
    threads."""
    prog = Lowering(g, prefix, parallel_work).lower()
    if header:
        prog.source = C_HEADER + prog.source
    return prog


def _pack_panel(kk: int, nr: int, ncols: int, src: str) -> L.Loop:
    """Copy one ``kk x nr`` column panel of B into ``dst`` (row-major, ``nr`` wide), reading
    element ``src`` and zero-filling columns past ``ncols`` (the GEMM's pre-packing)."""
    return L.Loop(
        "k",
        kk,
        [
            L.Loop(
                "ji",
                nr,
                [L.Stmt(f"dst[k*{nr} + ji] = (jo*{nr} + ji < {ncols}) ? {src} : 0.f;")],
                "vectorize",
            )
        ],
    )
