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

    return copy_nest(kname, decl, names[n.name], out_shape, lambda idx: f"{names[x]}[{src(idx)}]")


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
