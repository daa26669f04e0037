"""The fused attention kernel: per head, scores through the micro-kernel into scratch, a
row softmax in place, then scores @ v into the output, all on the thread that owns the head."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from provenml.compiler import loopir as L
from provenml.compiler.codegen.kernels.reduction import softmax_row
from provenml.compiler.codegen.kernels.tiles import epilogue_fn, mm_variants
from provenml.compiler.codegen.nests import batch_terms, pack_panel
from provenml.compiler.codegen.resources import (
    DEFAULT_SCHEDULE,
    attention_parts,
    attention_scratch,
)
from provenml.compiler.ir import Node
from provenml.compiler.passes import strided_view, strides_over
from provenml.errors import ProvenmlError

if TYPE_CHECKING:
    from provenml.compiler.codegen.lowering import Lowering


def attention(low: Lowering, n: Node, kname: str, body: list[Node]) -> L.Kernel:
    """A fused attention group (``passes.fuse_attention``), one parallel iteration per batch
    (head): ``S = epi(q @ kᵀ)`` through the micro-kernel into the head's scratch, plus the
    additive mask if the group has one, a softmax over each row of S in place, then
    ``epi(S @ v)`` into the output. q, k, v are read and the output written through strides
    (absorbed reshape/permute/slice views). Every step of a head runs on the thread that owns
    the head: no barrier inside the kernel."""
    views, qk, qk_epi, mask, softmax_node, pv, pv_epi, post = attention_parts(body)
    safe = bool(softmax_node.attrs.get("safe"))  # SDPA's: a fully masked row gives 0
    decl, names = low.decls(n, [n.name], list(n.inputs))
    members = {m.name: m for m in views}
    qv, kv = low.g.values[qk.inputs[0]], low.g.values[qk.inputs[1]]
    vv = low.g.values[pv.inputs[1]]
    m, d, n1, n2 = qv.shape[-2], qv.shape[-1], kv.shape[-2], vv.shape[-1]
    batch = qv.shape[:-2]
    nbatch = int(np.prod(batch))

    def base(name: str) -> tuple[str, tuple[int, ...]]:
        view = strided_view(low.g, name, members)
        if view is None:
            raise ProvenmlError(f"codegen: operand {name} of {n.name} is not a strided view")
        src, off, st = view
        return f"{names[src]} + {off} + {batch_terms(batch, st)}", st[-2:]

    q_at, q_st = base(qk.inputs[0])
    k_at, k_st = base(qk.inputs[1])
    v_at, v_st = base(pv.inputs[1])
    out_shape = low.g.values[pv.name].shape
    y_st = tuple(int(np.prod(out_shape[dd + 1 :])) for dd in range(len(out_shape)))
    if post is not None:  # the output permute: write each element where it lands
        pshape = low.g.values[post.name].shape
        cs = [int(np.prod(pshape[dd + 1 :])) for dd in range(len(pshape))]
        y_list = [0] * len(cs)
        for dd, src_dim in enumerate(post.attrs["perm"]):
            y_list[src_dim] = cs[dd]
        y_st = tuple(y_list)
    y_at = f"{names[n.name]} + {batch_terms(batch, y_st)}"
    s1 = {**DEFAULT_SCHEDULE, **qk.attrs.get("schedule", {})}
    s2 = {**DEFAULT_SCHEDULE, **pv.attrs.get("schedule", {})}
    mr1, nr1, mr2, nr2 = (
        min(int(s1["mr"]), m),
        int(s1["nr"]),
        min(int(s2["mr"]), m),
        int(s2["nr"]),
    )
    nb1, nb2 = -(-n1 // nr1), -(-n2 // nr2)
    pk1, sz, pk2 = attention_scratch(qk, pv, low.g.values)
    epi1 = epilogue_fn(low, n, qk, qk_epi, len(low.g.values[qk.name].shape) - 1, names)
    epi2 = epilogue_fn(low, n, pv, pv_epi, len(out_shape) - 1, names)
    head_code = (
        f"float* pk1 = arena + {low.scratch(n)} + bt*{pk1 + sz + pk2};\n"
        f"float* S = pk1 + {pk1};\nfloat* pk2 = S + {sz};\n"
        f"const float* restrict qb = {q_at};\n"
        f"const float* restrict kb = {k_at};\n"
        f"const float* restrict vb = {v_at};\n"
        f"float* yb = {y_at};"
    )
    add_mask: list[L.Loop] = []
    if mask is not None:  # scores + mask, read through its broadcast strides
        mo = mask.inputs[mask.attrs["mask_operand"]]
        mst = strides_over(low.g.values[mask.name].shape, low.g.values[mo], "row")
        if mst is None:
            raise ProvenmlError(f"codegen: mask {mo} of {n.name} does not broadcast")
        head_code += f"\nconst float* restrict mb = {names[mo]} + {batch_terms(batch, mst)};"
        at = " + ".join(
            f"{v}*{s}" if s != 1 else v for v, s in (("q", mst[-2]), ("j", mst[-1])) if s
        )
        add_mask = [L.Loop("j", n1, [L.Stmt(f"row[j] += mb[{at or '0'}];")], "vectorize")]
    head = L.Stmt(head_code)

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
        pack = pack_panel(kk, nr, ncols, src)
        variants = mm_variants(
            low,
            m,
            ncols,
            kk,
            lda,
            mr,
            nr,
            int(sched["ku"]),
            a,
            store,
            f"bt*{m} + i0 + ii",
            epi,
            int(sched.get("vec", 8)),
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
            L.Stmt(f"float* row = S + q*{n1};"),
            *add_mask,
            *softmax_row("row", n1, safe),
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


def lower_attention(low: Lowering, n: Node, kname: str) -> L.Kernel:
    """A fused attention group."""
    return attention(low, n, kname, n.attrs["body"])
