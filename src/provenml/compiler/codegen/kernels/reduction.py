"""Reduction kernels: softmax (and log-softmax, ``attrs["log"]``) and layer norm over the last
dim (with fused elementwise prologue and epilogue), softmax over another dim, and mean / sum
over adjacent dims; group norm."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from provenml.compiler import loopir as L
from provenml.compiler.codegen.c_source import chain, local_array, released
from provenml.compiler.ir import Node, adjacent
from provenml.compiler.passes import collapse_strides, strides_over
from provenml.errors import ProvenmlError

if TYPE_CHECKING:
    from provenml.compiler.codegen.lowering import Lowering


def row_reduction(
    low: Lowering, n: Node, kname: str, anchor: Node, pro: list[Node], epi: list[Node]
) -> L.Kernel:
    """softmax / layer norm over the last dim, with an elementwise prologue computed once
    into a row buffer and an elementwise epilogue applied on the way out."""
    v = low.g.values[anchor.name]
    length = v.shape[-1]
    rows = v.size // length
    inside = {m.name for m in pro + epi + [anchor]}
    ext = [
        i
        for i in dict.fromkeys(i for m in [*pro, anchor, *epi] for i in m.inputs)
        if i not in inside
    ]
    decl, names = low.decls(n, [n.name], ext)
    dom = v.physical_shape

    def loads(members: list[Node]) -> dict[str, str]:
        out = {}
        for i in dict.fromkeys(i for m in members for i in m.inputs):
            if i in inside:
                continue
            st = strides_over(dom, low.g.values[i], v.layout)
            rc = collapse_strides(dom, st, len(dom) - 1) if st is not None else None
            if rc is None:
                raise ProvenmlError(f"codegen: operand {i} of {n.name} not row-indexable")
            expr = " + ".join(f"{t}*{s}" for t, s in (("r", rc[0]), ("j", rc[1])) if s != 0) or "0"
            out[i] = f"{names[i]}[{expr}]"
        return out

    x = anchor.inputs[0]
    if pro:
        dtypes = {m.name: low.g.values[m.name].dtype for m in pro if m.name in low.g.values}
        stmts, res = chain(pro, loads(pro), {}, dtypes, low.error_site)
        fill = L.Loop("j", length, [L.Stmt("\n".join([*stmts, f"row[j] = {res};"]))], "vectorize")
    else:
        fill = L.Loop("j", length, [L.Stmt(f"row[j] = {names[x]}[r*{length} + j];")], "vectorize")
    Y = names[n.name]
    epi_loads = loads(epi)
    if anchor.op == "softmax" and anchor.attrs.get("log"):
        # log-softmax: (x - max) - log(sum(exp(x - max))), as PyTorch orders it: the row
        # shifted in place, the exps summed (stop 68: before, x - (max + log(sum)), where a
        # large max swallowed the log, e.g. 0 for log_softmax of four equal 1e38 logits)
        stats = [
            *row_max("row", length),
            L.Loop("j", length, [L.Stmt("row[j] -= mx;")], "vectorize"),
            *summed("sum", length, lambda t, j: f"{t} += expf(row[{j}]);"),
            L.Stmt("const float log_sum = logf(sum);"),
        ]
        value = "row[j] - log_sum"
    elif anchor.op == "softmax":
        stats = softmax_row("row", length, bool(anchor.attrs.get("safe")))
        value = "row[j] * inv"
    else:
        w, b = names[anchor.inputs[1]], names[anchor.inputs[2]]
        square = "{{ const float d = row[{j}] - mu; {t} += d * d; }}"
        stats = [
            *summed("s1", length, lambda t, j: f"{t} += row[{j}];"),
            L.Stmt(f"const float mu = s1 / {length}.f;"),
            *summed("s2", length, lambda t, j: square.format(t=t, j=j)),
            L.Stmt(f"const float rstd = 1.f / sqrtf(s2 / {length}.f + {anchor.attrs['eps']!r}f);"),
        ]
        value = f"(row[j] - mu) * rstd * {w}[j] + {b}[j]"
    dtypes = {m.name: low.g.values[m.name].dtype for m in epi if m.name in low.g.values}
    stmts, res = chain(epi, epi_loads, {anchor.name: "t_val"}, dtypes, low.error_site)
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
    row, release = local_array("float", "row", length)
    body = L.Loop(
        "r",
        rows,
        [L.Stmt(row), fill, *stats, store, *released(release)],
        "parallel" if rows > 1 else "serial",
    )
    return L.Kernel(kname, decl, [body])


#: a float32 sum over more elements than this adds the float32 sums of its blocks of this
#: many in double (stop 70: one float32 running sum per vector lane lost precision over long
#: rows, e.g. a variance over 2^23 values 1.4e-4 off where eager's cascade sum is 3e-8); a
#: sum of at most this many elements is computed as before, bit for bit
SUM_BLOCK = 1024


def summed(acc: str, length: int, add: Callable[[str, str], str]) -> list[L.Loop | L.Stmt]:
    """Statements that declare ``float acc`` as the sum over ``j < length`` of a term:
    ``add(target, index)`` is the C statement adding the term at ``index`` (an expression)
    to ``target``. Blocked past :data:`SUM_BLOCK` elements."""
    if length <= SUM_BLOCK:
        return [L.Stmt(f"float {acc} = 0.f;"), L.Loop("j", length, [L.Stmt(add(acc, "j"))])]
    blocks, tail = divmod(length, SUM_BLOCK)
    part, total = f"{acc}_part", f"{acc}_total"
    out: list[L.Loop | L.Stmt] = [
        L.Stmt(f"double {total} = 0.0;"),
        L.Loop(
            "jb",
            blocks,
            [
                L.Stmt(f"float {part} = 0.f;"),
                L.Loop("jj", SUM_BLOCK, [L.Stmt(add(part, f"(jb * {SUM_BLOCK} + jj)"))]),
                L.Stmt(f"{total} += {part};"),
            ],
        ),
    ]
    if tail:
        out += [
            L.Stmt(f"float {acc}_tail = 0.f;"),
            L.Loop("jt", tail, [L.Stmt(add(f"{acc}_tail", f"({blocks * SUM_BLOCK} + jt)"))]),
            L.Stmt(f"{total} += {acc}_tail;"),
        ]
    return [*out, L.Stmt(f"float {acc} = (float){total};")]


def row_max(row: str, length: int) -> list[L.Loop | L.Let | L.Stmt]:
    """``mx``, the largest of ``row[0:length]``: ``-inf`` for a row of ``-inf`` (a fully
    masked row; before stop 68 the float32 minimum), the loop vectorized through an OpenMP
    max reduction (a NaN element makes the softmax's sum, and so the row, NaN either way)."""
    return [
        L.Stmt("float mx = -INFINITY;"),
        L.Loop("j", length, [L.Stmt(f"mx = MAX(mx, {row}[j]);")], "vectorize", reduction="max:mx"),
    ]


def softmax_row(row: str, length: int, safe: bool) -> list[L.Loop | L.Let | L.Stmt]:
    """``row[j] = exp(row[j] - mx)`` and ``inv = 1 / sum_j row[j]`` (the caller scales by
    ``inv``). A row of ``-inf`` gives NaN, as ``torch.softmax`` (``-inf - -inf``); with
    ``safe`` it gives 0, as ``scaled_dot_product_attention``'s softmax (PyTorch's
    ``_safe_softmax``): the shift is 0, every exponential 0 and ``inv`` 0."""
    shift = [L.Stmt("if (mx == -INFINITY) mx = 0.f;  /* safe softmax: a fully masked row */")]
    return [
        *row_max(row, length),
        *(shift if safe else []),
        L.Loop("j", length, [L.Stmt(f"{row}[j] = expf({row}[j] - mx);")], "vectorize"),
        *summed("sum", length, lambda t, j: f"{t} += {row}[{j}];"),
        L.Stmt(f"const float inv = {'sum > 0.f ? 1.f / sum : 0.f' if safe else '1.f / sum'};"),
    ]


def axis_softmax(low: Lowering, n: Node, kname: str) -> L.Kernel:
    v = low.g.values[n.name]
    d = n.attrs["dim"]
    outer = int(np.prod(v.shape[:d])) if d else 1
    red = v.shape[d]
    inner = int(np.prod(v.shape[d + 1 :]))
    decl, names = low.decls(n, [n.name], n.inputs)
    X, Y = names[n.inputs[0]], names[n.name]
    at = f"(o*{red} + q)*{inner} + i"
    code = f"float mx = -INFINITY;\nfor (long q = 0; q < {red}; ++q) mx = MAX(mx, {X}[{at}]);\n"
    inverse = "1.f / s"
    if n.attrs.get("safe"):  # a row of -inf gives 0 (softmax_row)
        code += "if (mx == -INFINITY) mx = 0.f;\n"
        inverse = "s > 0.f ? 1.f / s : 0.f"
    if n.attrs.get("log"):  # log-softmax
        code += (  # (x - max) - log(sum): the shifted values stored first (see row_reduction)
            f"float s = 0.f;\nfor (long q = 0; q < {red}; ++q) "
            f"{{ {Y}[{at}] = {X}[{at}] - mx; s += expf({Y}[{at}]); }}\n"
            f"const float log_s = logf(s);\n"
            f"for (long q = 0; q < {red}; ++q) {Y}[{at}] -= log_s;"
        )
    else:
        code += (
            f"float s = 0.f;\nfor (long q = 0; q < {red}; ++q) "
            f"{{ const float e = expf({X}[{at}] - mx); {Y}[{at}] = e; s += e; }}\n"
            f"const float inv = {inverse};\n"
            f"for (long q = 0; q < {red}; ++q) {Y}[{at}] *= inv;"
        )
    body = L.Loop("o", outer, [L.Loop("i", inner, [L.Stmt(code)])], "parallel")
    return L.Kernel(kname, decl, [body])


def reduce(low: Lowering, n: Node, kname: str) -> L.Kernel:
    """mean / sum / amax / amin over dims that are contiguous in the input's physical order."""
    xv = low.g.values[n.inputs[0]]
    dims = tuple(n.attrs["dims"])
    if xv.layout == "NHWC":
        perm = (0, 2, 3, 1)
        dims = tuple(sorted(perm.index(d) for d in dims))
    shape = xv.physical_shape
    if not adjacent(dims):
        raise ProvenmlError(
            f"codegen: {n.op} over non-adjacent dims {n.attrs['dims']} at node {n.name}"
        )
    outer = int(np.prod(shape[: dims[0]])) if dims[0] else 1
    red = int(np.prod([shape[d] for d in dims]))
    inner = int(np.prod(shape[dims[-1] + 1 :]))
    decl, names = low.decls(n, [n.name], n.inputs)
    X, Y = names[n.inputs[0]], names[n.name]
    scale = f" * {1.0 / red!r}f" if n.op == "mean" else ""
    integer = xv.dtype == "int64"
    start, step = {
        "amax": ("-INFINITY", "acc[i] = pm_maxf(acc[i], {x});"),
        "amin": ("INFINITY", "acc[i] = pm_minf(acc[i], {x});"),
    }.get(n.op, ("0.f", "acc[i] += {x};"))
    if integer and n.op in ("amax", "amin"):  # stop 68: 64-bit integers (ids.amax())
        start, step = {
            "amax": ("LLONG_MIN", "acc[i] = MAX(acc[i], {x});"),
            "amin": ("LLONG_MAX", "acc[i] = MIN(acc[i], {x});"),
        }[n.op]
    # an int64 sum (a count: mask.sum() in PyTorch is an integer) adds 64-bit integers
    acc = "long long" if integer else "float"
    accumulators, release = local_array(acc, "acc", inner)

    def accumulate(var: str, extent: int, position: str) -> L.Loop:
        """``acc[i] op= x`` over ``var < extent``, ``position`` the reduced index."""
        element = f"{X}[(o*{red} + {position})*{inner} + i]"
        body = [L.Loop("i", inner, [L.Stmt(step.format(x=element))], "vectorize")]
        return L.Loop(var, extent, body)

    blocked = n.op in ("sum", "mean") and not integer and red > SUM_BLOCK
    if not blocked:
        stages = [
            L.Loop("i", inner, [L.Stmt(f"acc[i] = {start};")], "vectorize"),
            accumulate("q", red, "q"),
            L.Loop("i", inner, [L.Stmt(f"{Y}[o*{inner} + i] = acc[i]{scale};")], "vectorize"),
        ]
    else:  # stop 70: float32 sums of blocks of SUM_BLOCK, added in double (see summed)
        totals, release_totals = local_array("double", "total", inner)
        reset = L.Loop("i", inner, [L.Stmt("acc[i] = 0.f;")], "vectorize")
        flush = L.Loop("i", inner, [L.Stmt("total[i] += acc[i];")], "vectorize")
        blocks, tail = divmod(red, SUM_BLOCK)
        stages = [
            L.Stmt(totals),
            L.Loop("i", inner, [L.Stmt("total[i] = 0.0;")], "vectorize"),
            L.Loop(
                "qb", blocks, [reset, accumulate("qq", SUM_BLOCK, f"(qb*{SUM_BLOCK} + qq)"), flush]
            ),
            *(
                [reset, accumulate("qq", tail, f"({blocks * SUM_BLOCK} + qq)"), flush]
                if tail
                else []
            ),
            L.Loop("i", inner, [L.Stmt(f"{Y}[o*{inner} + i] = (float)total[i]{scale};")]),
            *released(release_totals),
        ]
    body = L.Loop(
        "o",
        outer,
        [L.Stmt(accumulators), *stages, *released(release)],
        "parallel" if outer > 1 else "serial",
    )
    return L.Kernel(kname, decl, [body])


def along_dim(low: Lowering, n: Node) -> tuple[int, int, int]:
    """``(outer, length, inner)`` of a node that works along one ``dim`` of its row-layout
    input (argmax / argmin, cumsum): the lines it walks are ``outer x inner``, ``length``
    long, ``inner`` apart."""
    xv = low.g.values[n.inputs[0]]
    if xv.layout != "row":
        raise ProvenmlError(f"codegen: {n.op} of a {xv.layout} tensor at node {n.name}")
    dim, shape = int(n.attrs["dim"]), xv.shape
    outer = int(np.prod(shape[:dim])) if dim else 1
    return outer, int(shape[dim]), int(np.prod(shape[dim + 1 :]))


def cumsum(low: Lowering, n: Node, kname: str) -> L.Kernel:
    """Cumulative sum (and, since stop 59, product: ``cumprod``) along ``dim`` (row layout):
    each (outer, inner) line summed in order, a float32 tensor's in double (as PyTorch's CPU
    kernel accumulates, then rounds each result to float32), an int64 tensor's in 64-bit
    integers (exact). Lines run in parallel over the outer dims; the inner dims vectorize."""
    outer, steps, inner = along_dim(low, n)
    decl, names = low.decls(n, [n.name], n.inputs)
    X, Y = names[n.inputs[0]], names[n.name]
    xv = low.g.values[n.inputs[0]]
    acc, out = ("long long", "") if xv.dtype == "int64" else ("double", "(float)")
    at = f"(o*{steps} + q)*{inner} + i"
    start, step = ("1", "*=") if n.op == "cumprod" else ("0", "+=")  # cumprod: stop 59
    accumulators, release = local_array(acc, "acc", inner)
    body = L.Loop(
        "o",
        outer,
        [
            L.Stmt(accumulators),
            L.Loop("i", inner, [L.Stmt(f"acc[i] = {start};")], "vectorize"),
            L.Loop(
                "q",
                steps,
                [
                    L.Loop(
                        "i", inner, [L.Stmt(f"acc[i] {step} {X}[{at}];\n{Y}[{at}] = {out}acc[i];")]
                    )
                ],
            ),
            *released(release),
        ],
        "parallel" if outer > 1 else "serial",
    )
    return L.Kernel(kname, decl, [body])


# logcumsumexp's inputs are clamped to +-LOG_SCAN_BOUND (in double) before the scan: the
# build's -ffast-math assumes no infinities, and an infinite input would give inf - inf. The
# bound is far beyond any float32, so a clamped -inf (a masked log-probability) still adds
# exp(-1e300 - m) = 0, a line of -inf stays at -1e300 + log(k), and both round back to -inf
# (+inf likewise) when the result is stored as float32.
LOG_SCAN_BOUND = "1e300"


def logcumsumexp(low: Lowering, n: Node, kname: str) -> L.Kernel:
    """``y_q = log(sum_{p <= q} exp(x_p))`` along ``dim``, float32 in double: the running
    maximum ``m_q = max(m_{q-1}, x_q)`` and the running sum ``s_q = s_{q-1} exp(m_{q-1} - m_q)
    + exp(x_q - m_q)``, so no exponent is positive, and ``y_q = m_q + log(s_q)`` (the
    streaming log-sum-exp; PyTorch adds ``x_q`` to ``y_{q-1}`` as ``max + log1p(exp(min -
    max))``, the same value to rounding)."""
    outer, steps, inner = along_dim(low, n)
    decl, names = low.decls(n, [n.name], n.inputs)
    X, Y = names[n.inputs[0]], names[n.name]
    if low.g.values[n.inputs[0]].dtype != "float32":
        raise ProvenmlError(f"codegen: logcumsumexp of a non-float32 tensor at node {n.name}")
    at = f"(o*{steps} + q)*{inner} + i"
    bound = LOG_SCAN_BOUND
    update = (
        f"double x = (double){X}[{at}];\n"
        f"x = x < -{bound} ? -{bound} : (x > {bound} ? {bound} : x);\n"
        "const double top = x > m[i] ? x : m[i];\n"
        "s[i] = s[i] * exp(m[i] - top) + exp(x - top);\n"
        "m[i] = top;\n"
        f"{Y}[{at}] = (float)(top + log(s[i]));"
    )
    maxima, release_m = local_array("double", "m", inner)
    sums, release_s = local_array("double", "s", inner)
    body = L.Loop(
        "o",
        outer,
        [
            L.Stmt(f"{maxima}\n{sums}"),
            L.Loop("i", inner, [L.Stmt(f"m[i] = -{bound}; s[i] = 0;")], "vectorize"),
            L.Loop("q", steps, [L.Loop("i", inner, [L.Stmt(update)])]),
            *released(release_m, release_s),
        ],
        "parallel" if outer > 1 else "serial",
    )
    return L.Kernel(kname, decl, [body])


def arg_reduce(low: Lowering, n: Node, kname: str) -> L.Kernel:
    """argmax / argmin along one dim (row layout): per position, the index of the first
    largest (smallest) value as an int64, a NaN winning over any number, as ``torch.argmax``
    and ``numpy.argmax`` define it. The comparisons use ``pm_isnan``, which survives
    ``-ffast-math``; an int64 input is compared as 64-bit integers."""
    outer, red, inner = along_dim(low, n)
    decl, names = low.decls(n, [n.name], n.inputs)
    X, Y = names[n.inputs[0]], names[n.name]
    better = ">" if n.op == "argmax" else "<"
    at = f"{X}[(o*{red} + q)*{inner} + i]"
    integer = low.g.values[n.inputs[0]].dtype == "int64"  # (stop 58: CLIP's token ids)
    ctype = "long long" if integer else "float"
    wins = (
        f"v {better} best[i]"
        if integer
        else (f"(v {better} best[i]) | (pm_isnan(v) & !pm_isnan(best[i]))")
    )
    update = f"const {ctype} v = {at};\nif ({wins}) {{ best[i] = v; idx[i] = q; }}"
    best, release_best = local_array(ctype, "best", inner)
    idx, release_idx = local_array("long long", "idx", inner)
    body = L.Loop(
        "o",
        outer,
        [
            L.Stmt(f"{best}\n{idx}"),
            L.Loop(
                "i", inner, [L.Stmt(f"best[i] = {X}[o*{red}*{inner} + i]; idx[i] = 0;")], "serial"
            ),
            L.Loop("q", red, [L.Loop("i", inner, [L.Stmt(update)], "serial")], "serial"),
            L.Loop("i", inner, [L.Stmt(f"{Y}[o*{inner} + i] = idx[i];")], "serial"),
            *released(release_best, release_idx),
        ],
        "parallel" if outer > 1 else "serial",
    )
    return L.Kernel(kname, decl, [body])


def group_norm(low: Lowering, n: Node, kname: str) -> L.Kernel:
    """Group norm (Wu & He 2018, eq. 1-3 with GN's sets): for each sample and group of
    ``C / groups`` channels, the mean and variance over the group's channels and positions
    (two passes), then ``(x - mu) / sqrt(var + eps) * w[c] + b[c]``; one (sample, group) per
    parallel iteration, in NCHW ("row") or NHWC order."""
    v = low.g.values[n.name]
    batch, channels = v.shape[0], v.shape[1]
    positions = v.size // (batch * channels)
    groups = int(n.attrs["groups"])
    per_group = channels // groups
    count = per_group * positions
    decl, names = low.decls(n, [n.name], n.inputs)
    X, W, B, Y = (names[i] for i in (*n.inputs, n.name))
    if v.layout == "NHWC":  # channel fastest: (sample, position, channel)
        at = f"((long)b * {positions} + p) * {channels} + g * {per_group} + q"
    else:  # (sample, channel, position): a group is one contiguous block
        at = f"((long)b * {channels} + g * {per_group} + q) * {positions} + p"
    loops = f"for (int q = 0; q < {per_group}; ++q) for (int p = 0; p < {positions}; ++p)"
    if count <= SUM_BLOCK:
        sums = (
            f"float s1 = 0.f;\n{loops} s1 += {X}[{at}];\n"
            f"const float mu = s1 / {count}.f;\n"
            f"float s2 = 0.f;\n{loops} {{ const float d = {X}[{at}] - mu; s2 += d * d; }}\n"
        )
    else:  # stop 70: float32 sums of each channel's blocks of SUM_BLOCK, added in double
        blocks = (
            f"for (int q = 0; q < {per_group}; ++q) "
            f"for (int p0 = 0; p0 < {positions}; p0 += {SUM_BLOCK}) {{\n"
            f"const int p1 = p0 + {SUM_BLOCK} < {positions} ? p0 + {SUM_BLOCK} : {positions};\n"
            "float part = 0.f;\nfor (int p = p0; p < p1; ++p) "
        )
        sums = (
            f"double s1_total = 0.0;\n{blocks}part += {X}[{at}];\ns1_total += part; }}\n"
            f"const float mu = (float)s1_total / {count}.f;\n"
            f"double s2_total = 0.0;\n{blocks}{{ const float d = {X}[{at}] - mu; "
            "part += d * d; }\ns2_total += part; }\n"
            "const float s2 = (float)s2_total;\n"
        )
    code = (
        f"const int b = o / {groups}, g = o % {groups};\n"
        f"{sums}"
        f"const float rstd = 1.f / sqrtf(s2 / {count}.f + {float(n.attrs['eps'])!r}f);\n"
        f"{loops} {{ const int c = g * {per_group} + q; "
        f"{Y}[{at}] = ({X}[{at}] - mu) * rstd * {W}[c] + {B}[c]; }}"
    )
    body = L.Loop(
        "o", batch * groups, [L.Stmt(code)], "parallel" if batch * groups > 1 else "serial"
    )
    return L.Kernel(kname, decl, [body])


def lower_row_op(low: Lowering, n: Node, kname: str) -> L.Kernel:
    """A lone softmax or layer norm: a row kernel over the last dim, else a strided softmax."""
    last = len(low.g.values[n.name].shape) - 1
    if n.op == "layer_norm" or n.attrs["dim"] == last:
        return row_reduction(low, n, kname, n, [], [])
    return axis_softmax(low, n, kname)


def lower_fused_reduction(low: Lowering, n: Node, kname: str) -> L.Kernel:
    """A softmax / layer-norm group with its elementwise prologue and epilogue."""
    body = n.attrs["body"]
    anchor = next(m for m in body if m.op in ("softmax", "layer_norm"))
    k = body.index(anchor)
    return row_reduction(low, n, kname, anchor, body[:k], body[k + 1 :])


def topk(low: Lowering, n: Node, kname: str) -> L.Kernel:
    """``topk`` / ``topk_indices`` along ``dim`` (row layout): each line's (value, position)
    pairs sorted by ``qsort`` (``pm_pair_desc`` for the largest, ``pm_pair_asc`` for the
    smallest: value, then position, so ties come in order, as a stable sort; a NaN counts as
    the largest value, as in PyTorch), the first ``k`` written. Lines (outer x inner) run in
    parallel; the pair buffer is allocated per line (``pm_scratch``: out of memory ends the
    process with a message, since stop 62; before, an unchecked ``malloc``)."""
    outer, length, inner = along_dim(low, n)
    k = int(n.attrs["k"])
    decl, names = low.decls(n, [n.name], n.inputs)
    X, Y = names[n.inputs[0]], names[n.name]
    order = "pm_pair_desc" if n.attrs["largest"] else "pm_pair_asc"
    field = "i" if n.op == "topk_indices" else "v"
    code = (
        f"const long o = line / {inner}, i = line % {inner};\n"
        f"pm_pair* pairs = (pm_pair*)pm_scratch((size_t){length} * sizeof(pm_pair));\n"
        f"for (long q = 0; q < {length}; ++q) {{ pairs[q].v = {X}[(o*{length} + q)*{inner} + i]; "
        "pairs[q].i = q; }\n"
        f"qsort(pairs, {length}, sizeof(pm_pair), {order});\n"
        f"for (long q = 0; q < {k}; ++q) {Y}[(o*{k} + q)*{inner} + i] = pairs[q].{field};\n"
        "free(pairs);"
    )
    lines = outer * inner
    body = L.Loop("line", lines, [L.Stmt(code)], "parallel" if lines > 1 else "serial")
    return L.Kernel(kname, decl, [body])
