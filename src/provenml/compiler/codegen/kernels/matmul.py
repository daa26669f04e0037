"""Dense (``x @ Wᵀ`` against pre-packed weight panels) and batched matmul kernels (B packed
panel by panel on the thread that consumes it), each with its fused epilogue."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from provenml.compiler import loopir as L
from provenml.compiler.codegen.kernels.tiles import (
    anchored_setup,
    epilogue_fn,
    mm_variants,
    register_tile,
    tile_variants,
)
from provenml.compiler.codegen.nests import pack_panel, with_lets
from provenml.compiler.ir import Node, Value

if TYPE_CHECKING:
    from provenml.compiler.codegen.lowering import Lowering


def dense(
    low: Lowering,
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
    m = low.g.values[x].size // kk
    packed = int(anchor.attrs.get("packed", 0))
    mr = max(1, min(int(sched["mr"]), m))
    nr = packed or int(sched["nr"])
    ku = int(sched["ku"])
    nb = -(-nn_ // nr)
    mb = -(-m // mr)
    epi_fn = epilogue_fn(low, n, anchor, epi, len(low.g.values[anchor.name].shape) - 1, names)
    X, W, Y = names[x], names[w], names[n.name]
    ldb = nr if packed else nn_
    branches: L.Body = []
    for variant in tile_variants(m, mr, nn_, nr):
        nrc = nr if packed else variant.cols
        tile = register_tile(
            low,
            variant.rows,
            nrc,
            variant.cols,
            ku,
            f"{X}[(i0 + ii)*{kk} + k]",
            f"bp[k*{ldb} + ji]",
            f"{Y}[r*{nn_} + c]",
            bias,
            epi_fn,
            kk,
            (f"{X} + i0*{kk}", str(kk), "bp", str(ldb)),
            int(sched.get("vec", 8)),
        )
        # the store loop needs r, c
        tile[-1] = with_lets(tile[-1], ["r = i0 + ii", "c = j0 + ji"])
        branches.append(L.If(variant.cond, tile))
    pre = [
        f"const long jo = t / {mb}, io = t % {mb};",
        f"const long i0 = io * {mr}, j0 = jo * {nr};",
        f"const float* restrict bp = {W} + " + (f"jo * {kk * nr};" if packed else "j0;"),
        f"enum {{ MB_FULL = {m // mr}, NB_FULL = {nn_ // nr} }};",
    ]
    if low.weight_prefetch and packed and nb > 1 and mb > 1:
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
    low: Lowering,
    n: Node,
    kname: str,
    anchor: Node,
    epi: list[Node],
    sched: dict[str, int],
    decl: list[str],
    names: dict[str, str],
) -> L.Kernel:
    a, b = anchor.inputs
    av, bv, ov = low.g.values[a], low.g.values[b], low.g.values[anchor.name]
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
    scratch = f"(arena + {low.scratch(n)})"
    bsrc = f"{B}[{batch_offset(bv, 'pb')} + " + (
        f"(jo*{nr} + ji)*{kk} + k]" if trans else f"k*{nn_} + jo*{nr} + ji]"
    )
    # One parallel iteration per packed panel p = (batch pb, column block jo): the thread
    # that packs a panel of B also computes every row tile that reads it, so packing needs
    # no barrier (each thread only reads the panels it packed itself).
    pack = pack_panel(kk, nr, nn_, bsrc)
    epi_fn = epilogue_fn(low, n, anchor, epi, len(ov.shape) - 1, names)
    variants = mm_variants(
        low,
        m,
        nn_,
        kk,
        kk,
        mr,
        nr,
        ku,
        "ap",
        f"{Y}[r*{nn_} + c]",
        f"bt*{m} + i0 + ii",
        epi_fn,
        int(sched.get("vec", 8)),
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


def lower_dense(low: Lowering, n: Node, kname: str) -> L.Kernel:
    """A dense node, or a fused group anchored on one."""
    anchor, *epi = n.attrs["body"] if n.op == "fused" else [n]
    sched, decl, names = anchored_setup(low, n, anchor, epi)
    return dense(low, n, kname, anchor, epi, sched, decl, names)


def lower_matmul(low: Lowering, n: Node, kname: str) -> L.Kernel:
    """A (batched) matmul node, or a fused group anchored on one."""
    anchor, *epi = n.attrs["body"] if n.op == "fused" else [n]
    sched, decl, names = anchored_setup(low, n, anchor, epi)
    return matmul(low, n, kname, anchor, epi, sched, decl, names)
