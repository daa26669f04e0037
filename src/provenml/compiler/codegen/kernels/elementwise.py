"""Elementwise kernels: one flat loop nest over the output's physical domain, every operand
read through its broadcast strides (adjacent dims that every operand walks contiguously are
collapsed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from provenml.compiler import loopir as L
from provenml.compiler.codegen.c_source import chain
from provenml.compiler.codegen.nests import flat_nest
from provenml.compiler.ir import Node
from provenml.compiler.passes import strides_over
from provenml.errors import ProvenmlError

if TYPE_CHECKING:
    from provenml.compiler.codegen.lowering import Lowering


def elementwise(low: Lowering, n: Node, kname: str, body: list[Node]) -> L.Kernel:
    out_v = low.g.values[n.name]
    dom = out_v.physical_shape or (1,)
    inside = {m.name for m in body}
    ext = [i for i in dict.fromkeys(i for m in body for i in m.inputs) if i not in inside]
    strides = {}
    for i in ext:
        st = strides_over(tuple(dom), low.g.values[i], out_v.layout)
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
    # a dim of extent 1 indexes nothing (stop 69: a leading batch of 1, which a broadcast
    # operand walks with stride 0, kept every contiguous op from collapsing into one run, and
    # flat_nest then split the loop over that one row: a single thread did all the work)
    for d in reversed(range(len(dims))):
        if dims[d] == 1 and len(dims) > 1:
            del dims[d]
            del own[d]
            for s in sts.values():
                del s[d]
    d = len(dims) - 2
    while d >= 0:
        if all(s[d] == s[d + 1] * dims[d + 1] for s in [*list(sts.values()), own]):
            dims[d] *= dims[d + 1]
            for s in [*list(sts.values()), own]:
                s[d] = s[d + 1]
                del s[d + 1]
            del dims[d + 1]
        d -= 1
    decl, names = low.decls(n, [n.name], ext)
    idx = [f"i{d}" for d in range(len(dims))]

    def off(st: list[int]) -> str:
        terms = [f"{v}*{s}" if s != 1 else v for v, s in zip(idx, st, strict=True) if s != 0]
        return " + ".join(terms) or "0"

    load = {i: f"{names[i]}[{off(sts[i])}]" for i in ext}
    dtypes = {m.name: low.g.values[m.name].dtype for m in body if m.name in low.g.values}
    stmts, result = chain(body, load, {}, dtypes, low.error_site)
    inner = L.Stmt("\n".join([*stmts, f"{names[n.name]}[{off(own)}] = {result};"]))
    return L.Kernel(kname, decl, flat_nest(idx, dims, inner, 2048))


def lower_elementwise(low: Lowering, n: Node, kname: str) -> L.Kernel:
    """An elementwise op, or a fused chain of them."""
    return elementwise(low, n, kname, n.attrs["body"] if n.op == "fused" else [n])
