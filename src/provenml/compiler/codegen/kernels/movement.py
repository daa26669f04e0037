"""Data-movement kernels: permutes and layout transforms, slices, concatenation, embedding
lookups."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from provenml.compiler import loopir as L
from provenml.compiler.codegen.nests import flat_nest
from provenml.compiler.ir import Node

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


def embedding(low: Lowering, n: Node, kname: str) -> L.Kernel:
    w, idx = n.inputs
    dim = low.g.values[w].shape[1]
    rows = low.g.values[w].shape[0]
    count = low.g.values[idx].size
    item = 8 if low.g.values[w].dtype == "int64" else 4  # bytes per element of the table
    decl, names = low.decls(n, [n.name], [w, idx])
    code = (
        f"long row = (long){names[idx]}[q];\nif (row < 0) row += {rows};\n"
        f"memcpy({names[n.name]} + q*{dim}, {names[w]} + row*{dim}, {dim * item});"
    )
    return L.Kernel(kname, decl, [L.Loop("q", count, [L.Stmt(code)])])
