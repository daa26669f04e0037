"""The loop-level IR (survey Sec. 3.2, "low-level IR"): one loop nest per fused group, with
Halide/TVM-style schedule primitives that rewrite the nest without changing what it computes:
:func:`split`, :func:`reorder`, :func:`vectorize`, :func:`parallel`, :func:`unroll`.

A nest is a tree of :class:`Loop`, :class:`Let` (an index defined from loop variables) and
:class:`Stmt` (one C statement over the index variables); :func:`to_c` lowers it to C: a
parallel loop becomes this thread's slice of a balanced static partition (:func:`partition`,
the ``PM_PART`` macro) inside the graph's single persistent OpenMP parallel region, with no
implicit barrier (the entry places barriers only where data dependencies need them); vectorized
loops get ``omp simd``, unrolled ones ``GCC unroll``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from provenml.errors import ProvenmlError


@dataclass
class Stmt:
    """One C statement (or a block of them) over the loop variables in scope."""

    code: str


@dataclass
class Decl(Stmt):
    """A declaration at kernel scope (visible to every following top-level loop)."""


@dataclass
class Let:
    """``const long var = expr;``: an index recomputed from loop variables (split creates these)."""

    var: str
    expr: str


@dataclass
class If:
    """``if (cond) body``: selects a specialised variant (e.g. a full or an edge tile)."""

    cond: str
    body: list[Loop | Let | Stmt | If]


@dataclass
class Loop:
    """``for (var = 0; var < extent; ++var) body`` with a schedule annotation."""

    var: str
    extent: int | str
    body: list[Loop | Let | Stmt] = field(default_factory=list)
    kind: str = "serial"  # serial | parallel | vectorize | unroll
    factor: int = 0  # unroll factor; for a vectorized loop its simdlen (0: gcc's choice)
    # a vectorized loop's OpenMP reduction clause, e.g. "max:mx" (stop 68: with infinities
    # and NaN honoured gcc no longer vectorizes a max reduction on its own)
    reduction: str = ""


@dataclass
class Kernel:
    """One loop nest (one fused group) compiled to one C function."""

    name: str
    prologue: list[str]  # pointer declarations
    body: list[Loop | Let | Stmt]
    helpers: list[str] = field(default_factory=list)  # C helper functions (e.g. tile kernels)


Body = list[Loop | Let | Stmt | If]


def find(body: Body, var: str) -> tuple[Body, int]:
    """The list holding the loop over ``var`` and its index there."""
    for i, item in enumerate(body):
        if isinstance(item, (Loop, If)):
            if isinstance(item, Loop) and item.var == var:
                return body, i
            try:
                return find(item.body, var)
            except KeyError:
                pass
    raise KeyError(var)


def loop(kernel: Kernel | Body, var: str) -> Loop:
    body = kernel.body if isinstance(kernel, Kernel) else kernel
    try:
        parent, i = find(body, var)
    except KeyError as exc:
        raise ProvenmlError(f"loop IR: no loop over '{var}'") from exc
    item = parent[i]
    assert isinstance(item, Loop)
    return item


def split(kernel: Kernel | Body, var: str, factor: int) -> tuple[str, str]:
    """Split the loop over ``var`` into ``var_o`` (extent ceil(n/factor)) and ``var_i``
    (extent factor, shorter on the last iteration when factor does not divide n);
    ``var`` becomes ``var_o*factor + var_i`` for the original body."""
    body = kernel.body if isinstance(kernel, Kernel) else kernel
    parent, i = find(body, var)
    lp = parent[i]
    assert isinstance(lp, Loop)
    outer, inner = f"{var}_o", f"{var}_i"
    if isinstance(lp.extent, int):
        n_outer: int | str = -(-lp.extent // factor)
        inner_ext: int | str = (
            factor if lp.extent % factor == 0 else f"MIN({factor}, {lp.extent} - {outer}*{factor})"
        )
    else:
        n_outer = f"(({lp.extent}) + {factor - 1}) / {factor}"
        inner_ext = f"MIN({factor}, ({lp.extent}) - {outer}*{factor})"
    inner_loop = Loop(
        inner,
        inner_ext,
        [Let(var, f"{outer}*{factor} + {inner}"), *lp.body],
        lp.kind if lp.kind != "parallel" else "serial",
        lp.factor,
    )
    parent[i] = Loop(
        outer, n_outer, [inner_loop], "parallel" if lp.kind == "parallel" else "serial"
    )
    return outer, inner


def _chain(lp: Loop) -> list[Loop]:
    chain = [lp]
    while True:
        loops = [x for x in chain[-1].body if isinstance(x, Loop)]
        others = [x for x in chain[-1].body if not isinstance(x, (Loop, Let))]
        if len(loops) != 1 or others:
            return chain
        chain.append(loops[0])


def reorder(kernel: Kernel | Body, order: list[str]) -> None:
    """Permute perfectly nested loops (lets move to the innermost body, where every loop
    variable they read is in scope). ``order`` lists the loop variables outermost first."""
    body = kernel.body if isinstance(kernel, Kernel) else kernel
    for var in order:  # the outermost of the loops heads a perfect chain holding them all
        parent, i = find(body, var)
        head = parent[i]
        assert isinstance(head, Loop)
        chain = _chain(head)[: len(order)]
        if sorted(lp.var for lp in chain) == sorted(order):
            break
    else:
        raise ProvenmlError(f"loop IR: {order} are not perfectly nested loops")
    lets = [x for lp in chain for x in lp.body if isinstance(x, Let)]
    innermost = [x for x in chain[-1].body if not isinstance(x, Let)]
    by_var = {lp.var: lp for lp in chain}
    new = [Loop(v, by_var[v].extent, [], by_var[v].kind, by_var[v].factor) for v in order]
    for outer, inner in itertools.pairwise(new):
        outer.body = [inner]
    new[-1].body = lets + innermost
    parent[i] = new[0]


def vectorize(kernel: Kernel | Body, var: str, simdlen: int = 0) -> None:
    """Mark the loop for SIMD code generation (``#pragma omp simd``); ``simdlen`` asks for
    that many lanes (e.g. 16 for 512-bit vectors, which gcc's ``-march=native`` does not pick by
    itself on Intel AVX-512 machines, where it prefers 256-bit vectors)."""
    lp = loop(kernel, var)
    lp.kind = "vectorize"
    lp.factor = simdlen


def parallel(kernel: Kernel | Body, var: str) -> None:
    """Distribute the loop's iterations over the threads of the graph's parallel region (each
    thread runs its contiguous slice of a balanced static partition, :func:`partition`)."""
    loop(kernel, var).kind = "parallel"


def unroll(kernel: Kernel | Body, var: str, factor: int = 0) -> None:
    """Unroll the loop (fully when ``factor`` is 0 and the extent is constant)."""
    lp = loop(kernel, var)
    lp.kind = "unroll"
    lp.factor = factor or (lp.extent if isinstance(lp.extent, int) else 4)


def _lower(items: Body, indent: str) -> list[str]:
    lines: list[str] = []
    for item in items:
        if isinstance(item, Stmt):
            lines += [indent + ln for ln in item.code.splitlines()]
        elif isinstance(item, If):
            lines.append(f"{indent}if ({item.cond}) {{")
            lines += _lower(item.body, indent + "  ")
            lines.append(f"{indent}}}")
        elif isinstance(item, Let):
            lines.append(f"{indent}const long {item.var} = {item.expr};")
        else:
            if item.kind == "parallel":
                lines.append(f"{indent}/* parallel (nested: serial) */")
            elif item.kind == "vectorize":
                simdlen = f" simdlen({item.factor})" if item.factor else ""
                reduction = f" reduction({item.reduction})" if item.reduction else ""
                lines.append(f"{indent}#pragma omp simd{simdlen}{reduction}")
            elif item.kind == "unroll":
                lines.append(f"{indent}#pragma GCC unroll {item.factor}")
            lines.append(
                f"{indent}for (long {item.var} = 0; {item.var} < {item.extent}; ++{item.var}) {{"
            )
            lines += _lower(item.body, indent + "  ")
            lines.append(f"{indent}}}")
    return lines


# C of the balanced static partition: thread ``tid`` of ``nth`` gets [lo, hi) of 0..n-1; the first
# n % nth threads get one iteration more. Must agree with :func:`partition`.
PARTITION_C = (
    "#define PM_PART(n, lo, hi) do { const long q_ = (n) / nth, r_ = (n) % nth; "
    "lo = tid * q_ + MIN(tid, r_); hi = lo + q_ + (tid < r_ ? 1 : 0); } while (0)"
)


def partition(n: int, tid: int, nth: int) -> tuple[int, int]:
    """Thread ``tid``'s slice ``[lo, hi)`` of ``n`` iterations split over ``nth`` threads:
    contiguous, sizes differ by at most one (the Python twin of ``PM_PART``)."""
    q, r = divmod(n, nth)
    lo = tid * q + min(tid, r)
    return lo, lo + q + (1 if tid < r else 0)


def is_split(kernel: Kernel) -> bool:
    """Whether the kernel has a top-level parallel loop (its work is shared by the threads)."""
    return any(isinstance(x, Loop) and x.kind == "parallel" for x in kernel.body)


def to_c(kernel: Kernel, signature: str, split: bool = True) -> str:
    """Lower a kernel to a C function called by every thread of the graph's parallel region
    (``signature`` ends in ``int tid, int nth``).

    With ``split``, each top-level parallel loop runs this thread's slice of the partition
    (``PM_PART``), other top-level work runs on thread 0 only, and consecutive pieces are
    separated by ``omp barrier`` (the later piece reads what the earlier one wrote, e.g. the
    padded copy of a conv input). Without ``split`` everything runs serially (the caller runs
    the kernel on one thread)."""
    lines = [f"static void {kernel.name}({signature}) {{"]
    lines += ["  " + p for p in kernel.prologue]
    groups: list[tuple[bool, Body]] = []  # (parallel?, items)
    for item in kernel.body:
        if isinstance(item, Decl):
            groups.append((False, [item]))
        elif split and isinstance(item, Loop) and item.kind == "parallel":
            groups.append((True, [item]))
        elif groups and not groups[-1][0] and not isinstance(groups[-1][1][0], Decl):
            groups[-1][1].append(item)
        else:
            groups.append((False, [item]))
    work_done = False
    for par, items in groups:
        if isinstance(items[0], Decl):
            lines += ["  " + ln for ln in items[0].code.splitlines()]
            continue
        if split and work_done:
            lines.append("  #pragma omp barrier")
        work_done = True
        if not split:
            lines += _lower(items, "  ")
        elif par:
            lp = items[0]
            assert isinstance(lp, Loop)
            lo, hi = f"{lp.var}_lo", f"{lp.var}_hi"
            lines += ["  {", f"    long {lo}, {hi};", f"    PM_PART({lp.extent}, {lo}, {hi});"]
            lines.append(f"    for (long {lp.var} = {lo}; {lp.var} < {hi}; ++{lp.var}) {{")
            lines += _lower(lp.body, "      ")
            lines += ["    }", "  }"]
        else:
            lines += ["  if (tid == 0) {", *_lower(items, "    "), "  }"]
    lines.append("}")
    return "\n".join(kernel.helpers + lines)


@dataclass
class Stage:
    """One piece of a kernel for the worker-pool runtime: a C function ``name(SIGNATURE)``
    that runs chunk ``tid`` of ``nth`` of a parallel loop (its ``PM_PART`` slice), or the whole
    piece when it is serial (called with ``tid = 0, nth = 1``). ``extent`` is the parallel
    loop's trip count when known (1 for a serial piece, 0 when symbolic): a stage has at most
    that many chunks."""

    name: str
    source: str
    parallel: bool
    extent: int = 1


def to_c_stages(kernel: Kernel, signature: str, split: bool = True) -> list[Stage]:
    """Lower a kernel to stages for the worker-pool runtime: the pieces :func:`to_c` would
    separate by barriers become functions of their own (each with the kernel's declarations),
    run one after the other; a parallel piece is cut into chunks that any thread may claim.
    Without ``split`` the whole kernel is one serial stage."""
    if not split:
        return [Stage(kernel.name, to_c(kernel, signature, split=False), False)]
    decls: list[str] = []
    stages: list[Stage] = []
    pending: Body = []

    def emit(items: Body, par: bool) -> None:
        name = f"{kernel.name}_s{len(stages)}"
        lines = [f"static void {name}({signature}) {{"]
        lines += ["  " + p for p in kernel.prologue]
        lines += ["  " + ln for d in decls for ln in d.splitlines()]
        extent = 1
        if par:
            lp = items[0]
            assert isinstance(lp, Loop)
            extent = lp.extent if isinstance(lp.extent, int) else 0
            lo, hi = f"{lp.var}_lo", f"{lp.var}_hi"
            lines += ["  {", f"    long {lo}, {hi};", f"    PM_PART({lp.extent}, {lo}, {hi});"]
            lines.append(f"    for (long {lp.var} = {lo}; {lp.var} < {hi}; ++{lp.var}) {{")
            lines += _lower(lp.body, "      ")
            lines += ["    }", "  }"]
        else:
            lines += _lower(items, "  ")
        lines.append("}")
        helpers = kernel.helpers if not stages else []
        stages.append(Stage(name, "\n".join(helpers + lines), par, extent))

    for item in kernel.body:
        if isinstance(item, Decl):
            if pending:
                emit(pending, False)
                pending = []
            decls.append(item.code)
        elif isinstance(item, Loop) and item.kind == "parallel":
            if pending:
                emit(pending, False)
                pending = []
            emit([item], True)
        else:
            pending.append(item)
    if pending:
        emit(pending, False)
    return stages


def describe(body: Body, indent: str = "") -> str:
    """A readable form of the nest (for dumping the loop IR)."""
    out = []
    for item in body:
        if isinstance(item, Stmt):
            out.append(indent + item.code.replace("\n", " "))
        elif isinstance(item, If):
            out.append(f"{indent}if {item.cond}:")
            out.append(describe(item.body, indent + "  "))
        elif isinstance(item, Let):
            out.append(f"{indent}{item.var} = {item.expr}")
        else:
            tag = (
                ""
                if item.kind == "serial"
                else f"  [{item.kind}{'x' + str(item.factor) if item.factor else ''}]"
            )
            out.append(f"{indent}for {item.var} in 0..{item.extent}{tag}")
            out.append(describe(item.body, indent + "  "))
    return "\n".join(out)
