"""Operands as strided views: broadcast strides over an iteration domain, their 2-D (row, col)
form, and reshape / permute / slice chains followed back to a materialized buffer. Used by
fusion (what may join a group) and by the kernels (how a group reads its operands)."""

from __future__ import annotations

import numpy as np

from provenml.compiler.ir import Graph, Node, Value

VIEW_OPS = ("reshape", "permute", "slice")


def strides_over(domain: tuple[int, ...], v: Value, domain_layout: str) -> tuple[int, ...] | None:
    """Element strides of ``v`` over the physical iteration domain (0 where broadcast)."""
    shape = v.physical_shape if v.layout == domain_layout else None
    if shape is None:
        if v.layout == "NHWC" or domain_layout == "NHWC":
            if len(v.shape) == 1 and v.shape[0] == 1:
                shape = (1,)
            else:
                return None
        else:
            shape = v.shape
    if len(shape) > len(domain):
        return None
    shape = (1,) * (len(domain) - len(shape)) + tuple(shape)
    strides = []
    acc = 1
    for size, dsize in zip(reversed(shape), reversed(domain), strict=True):
        if size == dsize:
            strides.append(acc if size != 1 else 0)
        elif size == 1:
            strides.append(0)
        else:
            return None
        acc *= size
    return tuple(reversed(strides))


def collapse_strides(
    domain: tuple[int, ...], strides: tuple[int, ...], rows: int
) -> tuple[int, int] | None:
    """Strides (row, col) of an operand over a 2-D view (first ``rows`` domain dims flattened,
    the rest flattened), or None when the operand cannot be indexed that way."""

    def one(dims: tuple[int, ...], st: tuple[int, ...]) -> int | None:
        pairs = [(d, s) for d, s in zip(dims, st, strict=True) if d != 1]
        if not pairs:
            return 0
        if all(s == 0 for _, s in pairs):
            return 0
        if any(s == 0 for _, s in pairs):
            return None
        for (d1, s1), (_, s2) in zip(pairs[1:], pairs[:-1], strict=False):
            if s2 != s1 * d1:
                return None
        return pairs[-1][1]

    r = one(domain[:rows], strides[:rows])
    c = one(domain[rows:], strides[rows:])
    if r is None or c is None:
        return None
    return (r, c)


def strided_view(
    g: Graph, name: str, members: dict[str, Node]
) -> tuple[str, int, tuple[int, ...]] | None:
    """``name`` as a strided view of a materialized buffer, through the reshape / permute /
    slice ``members`` that produce it: ``(source value, offset, strides)`` in elements of the
    source (row-major), so ``name[i] = source.flat[offset + sum(i_d * strides_d)]``. ``None``
    when a reshape cannot be expressed with strides (only reshapes of a contiguous view and
    reshapes that add or drop size-1 dims are followed)."""
    shape = g.values[name].shape
    if name not in members:
        if g.values[name].layout != "row":
            return None
        return name, 0, tuple(int(np.prod(shape[d + 1 :])) for d in range(len(shape)))
    m = members[name]
    inner = strided_view(g, m.inputs[0], members)
    if inner is None:
        return None
    src, off, st = inner
    in_shape = g.values[m.inputs[0]].shape
    if m.op == "permute":
        perm = m.attrs["perm"]
        return src, off, tuple(st[p] for p in perm)
    if m.op == "slice":
        d, start, step = m.attrs["dim"], m.attrs["start"], m.attrs["step"]
        st2 = list(st)
        st2[d] = st[d] * step
        return src, off + start * st[d], tuple(st2)
    contiguous = tuple(int(np.prod(in_shape[d + 1 :])) for d in range(len(in_shape)))
    if all(s == c for s, c, n in zip(st, contiguous, in_shape, strict=True) if n > 1):
        return src, off, tuple(int(np.prod(shape[d + 1 :])) for d in range(len(shape)))
    old = [(n, s) for n, s in zip(in_shape, st, strict=True) if n > 1]
    if [n for n in shape if n > 1] != [n for n, _ in old]:
        return None
    it = iter(old)
    return src, off, tuple(next(it)[1] if n > 1 else 0 for n in shape)
