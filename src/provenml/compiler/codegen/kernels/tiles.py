"""The register-blocked tile shared by every matmul-like kernel (dense, batched matmul,
convolution, attention): an ``mr x nr`` accumulator tile over a packed B panel, the k-loop as
the vector-register micro-kernel (:func:`~provenml.compiler.codegen.c_source.microkernel`) when
``nr`` is a multiple of 8 (of 16 for the 512-bit path, schedule ``vec=16``), and the fused
elementwise epilogue applied to the tile before it is stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from provenml.compiler import loopir as L
from provenml.compiler.codegen.c_source import VLEN, VLEN_WIDE, chain, microkernel
from provenml.compiler.codegen.nests import with_lets
from provenml.compiler.codegen.resources import DEFAULT_SCHEDULE
from provenml.compiler.ir import Node
from provenml.compiler.passes import collapse_strides, strides_over
from provenml.errors import ProvenmlError

if TYPE_CHECKING:
    from provenml.compiler.codegen.lowering import Lowering


def epilogue_loads(
    low: Lowering, n: Node, anchor: Node, epi: list[Node], rows: int, names: dict[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Per-element loads of epilogue operands at (row r, col c) of the anchor's 2-D view."""
    av = low.g.values[anchor.name]
    dom = av.physical_shape
    inside = {m.name for m in epi} | {anchor.name}
    load = {}
    for i in dict.fromkeys(i for m in epi for i in m.inputs):
        if i in inside:
            continue
        st = strides_over(dom, low.g.values[i], av.layout)
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


def epilogue_fn(
    low: Lowering, n: Node, anchor: Node, epi: list[Node], rows: int, names: dict[str, str]
) -> Any:
    load, _ = epilogue_loads(low, n, anchor, epi, rows, names)

    def fn(acc: str) -> tuple[list[str], str]:
        stmts = [f"const float t_anchor = {acc};"]
        dtypes = {m.name: low.g.values[m.name].dtype for m in epi if m.name in low.g.values}
        more, result = chain(epi, load, {anchor.name: "t_anchor"}, dtypes, low.error_site)
        return stmts + more, result or "t_anchor"

    return fn


def register_tile(
    low: Lowering,
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
    vec: int = VLEN,
) -> L.Body:
    """The register-blocked micro-kernel for one ``mr x nrc`` tile (``nrs`` columns stored).

    ``ukr = (a_base, lda, b_base, ldb)`` describes the operands as strided pointers; with it
    (and ``nrc`` a multiple of 8) the k-loop is a call of the :func:`microkernel` helper,
    else the loop nest over ``a_expr`` / ``b_expr``. ``vec`` (the schedule's ``vec``) asks
    for 16-float (512-bit) vectors; a tile whose ``nrc`` is not a multiple of 16 then uses
    the 8-float helper (same sums in the same order). Element 2 of the returned body is the
    k-loop (a Loop or the helper call), which the convolution wraps in its kh/kw loops."""
    init = L.Loop("ii", mr, [L.Loop("ji", nrc, [L.Stmt("acc[ii][ji] = 0.f;")])])
    L.unroll([init], "ii")
    L.vectorize([init], "ji")
    if ukr is not None and nrc % VLEN == 0:
        vlen = VLEN_WIDE if vec == VLEN_WIDE and nrc % VLEN_WIDE == 0 else VLEN
        name, code = microkernel(mr, nrc, ku, vlen)
        low.helpers[name] = code
        a_base, lda, b_base, ldb = ukr
        call = L.Stmt(f"{name}({k_extent}, {a_base}, {lda}, {b_base}, {ldb}, &acc[0][0]);")
        stmts, result = epi_stmts_fn("acc[ii][ji]" + (f" + {bias}" if bias else ""))
        st = L.Loop(
            "ii",
            mr,
            [L.Loop("ji", nrs, [L.Stmt("\n".join([*stmts, f"{store} = {result};"]))])],
        )
        L.unroll([st], "ii")
        # the epilogue in vectors of the micro-kernel's width (512-bit: libmvec's 16-lane
        # erff/expf; it also reads back the accumulators in the width they were stored)
        L.vectorize([st], "ji", vlen if vlen == VLEN_WIDE else 0)
        align = 4 * vlen
        return [
            L.Stmt(f"float acc[{mr}][{nrc}] __attribute__((aligned({align})));"),
            init,
            call,
            st,
        ]
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


@dataclass(frozen=True)
class TileVariant:
    """One of the up to four register-tile variants of an ``m x n`` output cut into
    ``mr x nr`` tiles: full tiles, the last row tile (``m % mr`` rows), the last column tile
    (``n % nr`` columns) and the corner. ``rows``/``cols``: the variant's tile size;
    ``cond``: the C condition that picks it, on the row tile index ``row_index`` and the
    column tile index ``jo`` against the enum constants ``MB_FULL``/``NB_FULL``."""

    rows: int
    cols: int
    full_cols: bool
    cond: str


def tile_variants(m: int, mr: int, n: int, nr: int, row_index: str = "io") -> list[TileVariant]:
    """The variants that occur (a partial row or column tile only when ``mr``/``nr`` does not
    divide ``m``/``n``), full rows first, then full columns first."""
    variants = []
    for full_m in (True, False):
        if not full_m and m % mr == 0:
            continue
        for full_n in (True, False):
            if not full_n and n % nr == 0:
                continue
            cond_m = f"{row_index} < MB_FULL" if full_m else f"{row_index} == MB_FULL"
            cond_n = "jo < NB_FULL" if full_n else "jo == NB_FULL"
            variants.append(
                TileVariant(
                    rows=mr if full_m else m % mr,
                    cols=nr if full_n else n % nr,
                    full_cols=full_n,
                    cond=f"{cond_m} && {cond_n}",
                )
            )
    return variants


def mm_variants(
    low: Lowering,
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
    vec: int = VLEN,
) -> list[L.If]:
    """The full/edge tile variants of a packed-B matmul row tile: ``a`` points at the A
    rows (``lda`` apart, ``kk`` long), ``bp`` at the packed panel, ``store`` writes element
    (r, c) where ``r = row`` and ``c = j0 + ji``; ``vec``: the micro-kernel's vector width
    in floats (see :func:`register_tile`)."""
    variants = []
    for variant in tile_variants(m, mr, nn_, nr):
        tile = register_tile(
            low,
            variant.rows,
            nr,
            variant.cols,
            ku,
            f"{a}[(i0 + ii)*{lda} + k]",
            f"bp[k*{nr} + ji]",
            store,
            None,
            epi_fn,
            kk,
            (f"{a} + i0*{lda}", str(lda), "bp", str(nr)),
            vec,
        )
        tile[-1] = with_lets(tile[-1], [f"r = {row}", "c = j0 + ji"])
        variants.append(L.If(variant.cond, tile))
    return variants


def anchored_setup(
    low: Lowering, n: Node, anchor: Node, epi: list[Node]
) -> tuple[dict[str, int], list[str], dict[str, str]]:
    """The schedule of a matmul-like anchor and the pointer declarations of its group."""
    sched = {**DEFAULT_SCHEDULE, **anchor.attrs.get("schedule", {})}
    inside = {m.name for m in epi}
    ext = [
        i
        for i in dict.fromkeys(anchor.inputs + [i for m in epi for i in m.inputs])
        if i not in inside and i != anchor.name
    ]
    decl, names = low.decls(n, [n.name], ext)
    return sched, decl, names
