"""Data-movement kernels: permutes and layout transforms, slices, concatenation, embedding
lookups."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from provenml.compiler import loopir as L
from provenml.compiler.codegen.nests import flat_nest
from provenml.compiler.ir import Node
from provenml.errors import ProvenmlError

if TYPE_CHECKING:
    from provenml.compiler.codegen.lowering import Lowering


def copy_nest(
    kname: str,
    decl: list[str],
    dst: str,
    dst_shape: tuple[int, ...],
    src_expr_of: Any,
) -> L.Kernel:
    idx = [f"i{d}" for d in range(len(dst_shape))]
    st = [int(np.prod(dst_shape[d + 1 :])) for d in range(len(dst_shape))]
    dst_off = " + ".join(f"{v}*{s}" for v, s in zip(idx, st, strict=True)) or "0"
    stmt = L.Stmt(f"{dst}[{dst_off}] = {src_expr_of(idx)};")
    return L.Kernel(kname, decl, flat_nest(idx, list(dst_shape), stmt, 4096))


def permute(low: Lowering, n: Node, kname: str) -> L.Kernel:
    x = n.inputs[0]
    xv, ov = low.g.values[x], low.g.values[n.name]
    decl, names = low.decls(n, [n.name], [x])
    if n.op == "layout_transform":  # physical permutation between NCHW and NHWC
        perm = (0, 2, 3, 1) if ov.layout == "NHWC" else (0, 3, 1, 2)
    else:
        perm = tuple(n.attrs["perm"])
    src_shape = xv.physical_shape
    src_st = [int(np.prod(src_shape[d + 1 :])) for d in range(len(src_shape))]
    out_shape = ov.physical_shape

    def src(idx: list[str]) -> str:
        return " + ".join(f"{v}*{src_st[p]}" for v, p in zip(idx, perm, strict=True)) or "0"

    if not tiles_pay(out_shape, perm):
        return copy_nest(
            kname, decl, names[n.name], out_shape, lambda idx: f"{names[x]}[{src(idx)}]"
        )
    return tiled_transpose(kname, decl, names[n.name], names[x], out_shape, perm, src_st)


#: a permute that moves the source's innermost dim away from the output's innermost runs in
#: ``TRANSPOSE_TILE`` x ``TRANSPOSE_TILE`` tiles from this many elements on (stop 69)
TILED_FROM = 4096
TRANSPOSE_TILE = 16
#: source cache lines (64 B) the plain copy may keep live between two uses: half of a 32 KiB
#: L1 data cache
REUSED_LINES = 256
#: output rows shorter than this are too short for the plain copy's vector loop (RGB: 3)
SHORT_ROWS = 8


def tiles_pay(out_shape: tuple[int, ...], perm: tuple[int, ...]) -> bool:
    """Whether a permute runs as :func:`tiled_transpose` rather than the plain copy in output
    order. The plain copy reads one source cache line per output element of the dims after
    ``rows_at`` (the output dim the source stores contiguously) and comes back to each line at
    the next ``rows_at`` index: it thrashes L1 when those are more than ``REUSED_LINES``
    (e.g. NHWC -> NCHW of a 56x56 map), and its vector row is short when the output's last dim
    is below ``SHORT_ROWS`` (NCHW -> NHWC of an RGB image: 4x faster tiled). Otherwise (NCHW
    -> NHWC with 9, 48 or 64 channels) the plain copy is as fast or faster (per shape:
    ``benchmarks/bench_compiler_levers.py --check tiles``)."""
    if len(perm) < 2 or int(np.prod(out_shape)) < TILED_FROM:
        return False
    rows_at = perm.index(len(perm) - 1)
    if rows_at == len(perm) - 1:
        return False
    window = int(np.prod(out_shape[rows_at + 1 :]))
    return window > REUSED_LINES or int(out_shape[-1]) < SHORT_ROWS


def tiled_transpose(
    kname: str,
    decl: list[str],
    dst: str,
    src: str,
    out_shape: tuple[int, ...],
    perm: tuple[int, ...],
    src_strides: list[int],
) -> L.Kernel:
    """A permute that changes the innermost dim, in square tiles (stop 69; before, always
    the plain copy in output order, see :func:`tiles_pay`). The output's last dim ``a`` and
    the dim ``b`` that the source stores contiguously are cut into tiles of
    ``TRANSPOSE_TILE``; a tile reads ``TILE`` source rows of ``TILE`` contiguous elements and
    writes within ``TILE`` output rows, so each line it touches is loaded once. The threads
    share the flattened (other dims x tiles) loop."""
    tile = TRANSPOSE_TILE
    last = len(out_shape) - 1
    rows_at = perm.index(last)
    outer = [d for d in range(last) if d != rows_at]
    out_strides = [int(np.prod(out_shape[d + 1 :])) for d in range(len(out_shape))]
    counts = [int(out_shape[d]) for d in outer]
    tiles_b = -(-int(out_shape[rows_at]) // tile)
    tiles_a = -(-int(out_shape[last]) // tile)
    lets: list[L.Let | L.Stmt] = []
    below = tiles_b * tiles_a
    for d, count in reversed(list(zip(outer, counts, strict=True))):
        lets.insert(0, L.Let(f"i{d}", f"(o / {below}) % {count}"))
        below *= count
    lets += [
        L.Let("b0", f"((o / {tiles_a}) % {tiles_b}) * {tile}"),
        L.Let("a0", f"(o % {tiles_a}) * {tile}"),
    ]
    base_out = " + ".join([f"i{d}*{out_strides[d]}" for d in outer] or ["0"])
    base_in = " + ".join([f"i{d}*{src_strides[perm[d]]}" for d in outer] or ["0"])
    step_b_out, step_b_in = out_strides[rows_at], src_strides[perm[rows_at]]
    step_a_in = src_strides[perm[last]]
    b_end = f"MIN(b0 + {tile}, {out_shape[rows_at]})"
    a_end = f"MIN(a0 + {tile}, {out_shape[last]})"
    # the tile's rows along ``a``; within each, ``b`` (the source's contiguous dim) innermost:
    # contiguous reads, writes ``step_b_out`` apart into the tile's few output lines (measured
    # against ``b`` outermost, i.e. gathered reads and contiguous writes, and against a tile
    # buffered on the stack: this order was fastest on every shape where tiling wins)
    code = f"""const long b1 = {b_end}, a1 = {a_end};
for (long a = a0; a < a1; ++a) {{
  #pragma omp simd
  for (long b = b0; b < b1; ++b)
    {dst}[{base_out} + b*{step_b_out} + a] = {src}[{base_in} + a*{step_a_in} + b*{step_b_in}];
}}"""
    total = int(np.prod(counts)) * tiles_b * tiles_a
    return L.Kernel(kname, decl, [L.Loop("o", total, [*lets, L.Stmt(code)], "parallel")])


def slice_copy(low: Lowering, n: Node, kname: str) -> L.Kernel:
    x = n.inputs[0]
    xv, ov = low.g.values[x], low.g.values[n.name]
    decl, names = low.decls(n, [n.name], [x])
    st = [int(np.prod(xv.shape[d + 1 :])) for d in range(len(xv.shape))]
    a = n.attrs

    def src(idx: list[str]) -> str:
        terms = []
        for d, v in enumerate(idx):
            e = f"({a['start']} + {v}*{a['step']})" if d == a["dim"] else v
            terms.append(f"{e}*{st[d]}")
        return " + ".join(terms) or "0"

    return copy_nest(kname, decl, names[n.name], ov.shape, lambda idx: f"{names[x]}[{src(idx)}]")


def cat(low: Lowering, n: Node, kname: str) -> L.Kernel:
    ov = low.g.values[n.name]
    d = n.attrs["dim"]
    decl, names = low.decls(n, [n.name], list(dict.fromkeys(n.inputs)))
    outer = int(np.prod(ov.shape[:d])) if d else 1
    out_row = int(np.prod(ov.shape[d:]))
    item = 8 if ov.dtype == "int64" else 4  # bytes per element
    stmts = []
    off = 0
    for i in n.inputs:
        chunk = int(np.prod(low.g.values[i].shape[d:]))
        stmts.append(
            f"memcpy({names[n.name]} + o*{out_row} + {off}, {names[i]} + o*{chunk}, "
            f"{chunk * item});"
        )
        off += chunk
    return L.Kernel(kname, decl, [L.Loop("o", outer, [L.Stmt("\n".join(stmts))])])


def checked_row(low: Lowering, n: Node, rows: int, body: str) -> str:
    """C statements running ``body`` for the index ``row`` (from ``n``'s second input) of a
    tensor of ``rows`` rows; one out of range (``[0, rows)``, or ``[-rows, rows)`` for a node
    with ``wrap_negative``, whose negative ones count from the end: ONNX's Gather) is
    recorded for the caller instead (``pm_fail``, site: ``n``), who raises, as PyTorch does:
    unchecked, it read or wrote outside the tensor (stop 60). Constant indices (a
    rearrangement's) are checked here, once."""
    wrap = bool(n.attrs.get("wrap_negative"))
    wrapped = f"if (row < 0) row += {rows};\n  " if wrap else ""
    index = low.g.consts.get(n.inputs[1])
    if index is not None:
        bad = (index < (-rows if wrap else 0)) | (index >= rows)
        if np.any(bad):
            raise ProvenmlError(
                f"codegen: constant index {int(index[bad].flat[0])} out of range for "
                f"{rows} rows at node {n.name} (from {n.source})"
            )
        return f"{wrapped}{body}"
    fail = f"pm_fail(PM_BAD_ROW, {low.error_site(n)}, row, {rows});"
    low_end = f"-{rows}" if wrap else "0"
    return f"if (row < {low_end} || row >= {rows}) {fail}\nelse {{\n  {wrapped}{body}\n}}"


def embedding(low: Lowering, n: Node, kname: str) -> L.Kernel:
    w, idx = n.inputs
    dim = low.g.values[w].shape[1]
    rows = low.g.values[w].shape[0]
    count = low.g.values[idx].size
    item = 8 if low.g.values[w].dtype == "int64" else 4  # bytes per element of the table
    decl, names = low.decls(n, [n.name], [w, idx])
    copy = f"memcpy({names[n.name]} + q*{dim}, {names[w]} + row*{dim}, {dim * item});"
    code = f"long row = (long){names[idx]}[q];\n" + checked_row(low, n, rows, copy)
    return L.Kernel(kname, decl, [L.Loop("q", count, [L.Stmt(code)])])


SCATTER_COMBINE = {
    "add": "{y} + {s}",
    "mul": "{y} * {s}",  # stop 60: scatter_reduce's "prod", ONNX's reduction "mul"
    "amax": "pm_maxf({y}, {s})",
    "amin": "pm_minf({y}, {s})",
    "replace": "{s}",  # the last update of a row wins
}
SCATTER_BLOCK = 16  # columns per parallel chunk


def scatter(low: Lowering, n: Node, kname: str) -> L.Kernel:
    """``scatter`` (stop 59): ``out = base``, then for each ``q`` in order, row ``rows[q]``
    of ``out`` combined (``reduce``: add, amax, amin) with row ``q`` of ``src``: PyTorch's
    ``index_add`` and, one element per row, ``scatter_add`` / ``scatter_reduce``. With
    ``include_self`` false a row's first update replaces it (a per-chunk ``seen`` mark).
    Threads split the columns (blocks of 16), each running every ``q`` over its own, so no two
    write one element and each element's updates keep the order of ``q`` (the sums are
    PyTorch's CPU order). An index out of range is reported to the caller
    (:func:`checked_row`)."""
    base, idx, src = n.inputs
    rows, width = low.g.values[base].shape
    count = low.g.values[idx].size
    decl, names = low.decls(n, [n.name], [base, idx, src])
    Y, B, rows_at, S = (names[v] for v in (n.name, base, idx, src))
    source_at = f"{S}[q*{width} + i]"
    combine = SCATTER_COMBINE[n.attrs["reduce"]].format(y=f"{Y}[at]", s=source_at)
    include_self = bool(n.attrs["include_self"])
    value = combine if include_self else f"first ? {source_at} : {combine}"
    update = f"{{ const long at = row*{width} + i; {Y}[at] = {value}; }}"
    mark = "" if include_self else "const int first = !seen[row]; seen[row] = 1;"
    code = (
        f"const long c0 = c*{SCATTER_BLOCK}, c1 = MIN({width}, c0 + {SCATTER_BLOCK});\n"
        f"for (long r = 0; r < {rows}; ++r) for (long i = c0; i < c1; ++i) "
        f"{Y}[r*{width} + i] = {B}[r*{width} + i];\n"
        + (
            ""
            if include_self  # the marks: a checked allocation (pm_scratch), zeroed
            else f"unsigned char* seen = (unsigned char*)pm_scratch({rows});\n"
            f"memset(seen, 0, {rows});\n"
        )
        + f"for (long q = 0; q < {count}; ++q) {{\n"
        f"  long row = (long){rows_at}[q];\n  "
        + checked_row(low, n, rows, f"{mark}  for (long i = c0; i < c1; ++i) {update}")
        + "\n}"
        + ("" if include_self else "\nfree(seen);")
    )
    blocks = -(-width // SCATTER_BLOCK)
    # one block: a serial loop, which one thread runs (top-level serial work is thread 0's)
    body = L.Loop("c", blocks, [L.Stmt(code)], "parallel" if blocks > 1 else "serial")
    return L.Kernel(kname, decl, [body])
