"""Loop-nest builders shared by the kernels (flat parallel nests, index lets, B-panel packing,
batch offsets)."""

from __future__ import annotations

import numpy as np

from provenml.compiler import loopir as L


def flat_nest(idx: list[str], dims: list[int], stmt: L.Stmt, min_parallel: int) -> L.Body:
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


def with_lets(item: L.Loop | L.Let | L.Stmt, lets: list[str]) -> L.Loop | L.Let | L.Stmt:
    """Insert ``name = expr`` lets at the top of the innermost loop of a nest."""
    assert isinstance(item, L.Loop)
    lp = item
    while any(isinstance(x, L.Loop) for x in lp.body):
        lp = next(x for x in lp.body if isinstance(x, L.Loop))
    lp.body = [L.Let(*[s.strip() for s in let.split("=", 1)]) for let in lets] + lp.body
    return item


def pack_panel(kk: int, nr: int, ncols: int, src: str) -> L.Loop:
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


def batch_terms(batch: tuple[int, ...], strides: tuple[int, ...]) -> str:
    """C offset of flat batch index ``bt`` for a view with ``strides`` over ``batch`` dims."""
    terms = []
    for d, size in enumerate(batch):
        inner = int(np.prod(batch[d + 1 :]))
        if size > 1 and strides[d]:
            terms.append(f"((bt / {inner}) % {size})*{strides[d]}")
    return " + ".join(terms) or "0"
