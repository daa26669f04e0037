"""Rearrangements a sweep of common PyTorch calls found refused at stop 67, each composed from
the IR's existing ops (no new kernel).

* **Pure moves** (exact copies; a boolean mask stays a mask, an int64 tensor stays int64):
  ``diagonal`` (the two dims permuted last and merged, every ``(m + 1)``-th element kept: a
  strided slice, as :func:`~.common._einsum_diagonal` takes an einsum's), ``narrow`` (a slice),
  ``movedim`` / ``moveaxis`` (a permute), ``swapaxes`` / ``swapdims`` (a transpose),
  ``unflatten`` / ``nn.Unflatten`` (a reshape), ``Tensor.unfold`` (sliding windows: a row
  gather, a reshape and a permute; stop 70), ``channel_shuffle`` / ``nn.ChannelShuffle``
  (Zhang et al. 2018, ShuffleNet: reshape, swap, reshape) and ``rot90`` (flips, as
  :func:`~.torch_more_ops.rearranged` gathers them, and a transpose); ``broadcast_tensors``
  (each operand expanded; stop 71).
* **Differences**: ``diff`` (``prepend`` / ``append`` concatenated, then ``n`` times the slice
  from 1 minus the slice to -1) and ``outer`` / ``ger`` (a column times a row, broadcast).

Arguments PyTorch itself rejects, and results with an empty dim (a diagonal past the matrix, a
``diff`` of order at least the dim's size), are refused by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.fx
from torch import nn

from provenml.compiler.frontend.common import UnsupportedOp, broadcast_ones
from provenml.compiler.frontend.torch_fx import (
    FxBuilder,
    Handler,
    _as_float,
    _module,
    arg,
    broadcast_copy,
    meta_like,
    target_name,
)
from provenml.compiler.frontend.torch_more_ops import _dims, _dtype, rearranged

__all__ = ["MOVE_BOOL", "MOVE_FUNCTIONS", "MOVE_FUNCTION_NAMES", "MOVE_METHODS", "MOVE_MODULES"]


def _refuse(b: FxBuilder, node: torch.fx.Node, why: str) -> UnsupportedOp:
    return UnsupportedOp(target_name(node, b.gm), node.name, why)


def _int_arg(b: FxBuilder, node: torch.fx.Node, value: Any, what: str) -> int:
    """A Python int, or a constant 0-d tensor's value (folded, or an IR constant); a tensor
    computed at run time is refused (the compiled shapes are static)."""
    v = b.val(value)
    if isinstance(v, str) and v in b.g.consts and b.g.consts[v].size == 1:
        return int(b.g.consts[v].reshape(()))
    if isinstance(v, str):
        raise _refuse(b, node, f"a {what} computed at run time")
    return int(v)


def _slice(b: FxBuilder, x: str, dim: int, start: int, stop: int, step: int) -> str:
    """``x[.., start:stop:step, ..]`` along ``dim`` (the IR's ``slice``, dtype kept)."""
    shape = list(b.shape(x))
    shape[dim] = len(range(start, stop, step))
    attrs = {"dim": dim, "start": start, "stop": stop, "step": step}
    return b.emit("slice", [x], attrs, meta_like(shape, _dtype(b, x)))


def _permuted(b: FxBuilder, x: str, perm: Sequence[int]) -> str:
    """``x.permute(perm)``, or ``x`` itself where ``perm`` is the identity."""
    if tuple(perm) == tuple(range(len(perm))):
        return x
    shape = b.shape(x)
    like = meta_like([shape[d] for d in perm], _dtype(b, x))
    return b.emit("permute", [x], {"perm": tuple(perm)}, like)


def _flipped(b: FxBuilder, x: str, dims: Sequence[int]) -> str:
    """``x.flip(dims)`` (``dims`` non-negative) as :func:`~.torch_more_ops._flip` does it: one
    row gather by constant positions (:func:`~.torch_more_ops.rearranged`)."""
    shape = b.shape(x)
    lead = max(dims) + 1
    positions = np.flip(np.arange(int(np.prod(shape[:lead]))).reshape(shape[:lead]), dims)
    return rearranged(b, x, positions)


# -- pure moves ----------------------------------------------------------------------------------
def _diagonal(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.diagonal(x, offset=0, dim1=0, dim2=1)`` / ``x.diagonal``: the elements
    ``x[.., i, .., i + offset, ..]`` (``offset < 0``: below the main diagonal), the diagonal
    as the last dim. ``dim1``, ``dim2`` permuted last, merged to ``n * m`` and every
    ``(m + 1)``-th element kept from ``offset`` (``-offset * m`` below): a strided slice."""
    x = b.tensor_arg(node.args[0])
    shape = b.shape(x)
    rank = len(shape)
    offset = int(b.val(arg(node, 1, "offset", 0)))
    dim1 = int(b.val(arg(node, 2, "dim1", 0)))
    dim2 = int(b.val(arg(node, 3, "dim2", 1)))
    if rank < 2 or dim1 % rank == dim2 % rank:
        raise _refuse(b, node, f"dims {dim1}, {dim2} of a rank-{rank} tensor")
    d1, d2 = dim1 % rank, dim2 % rank
    length = int(out.shape[-1])
    if length == 0:
        raise _refuse(b, node, f"offset {offset} past the matrix (an empty diagonal)")
    rest = [d for d in range(rank) if d not in (d1, d2)]
    n, m = shape[d1], shape[d2]
    moved = _permuted(b, x, (*rest, d1, d2))
    flat = b.reshape(moved, meta_like([shape[d] for d in rest] + [n * m], _dtype(b, x)))
    start = offset if offset >= 0 else -offset * m
    return _slice(b, flat, len(rest), start, start + (length - 1) * (m + 1) + 1, m + 1)


def _narrow(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``x.narrow(dim, start, length)`` / ``torch.narrow``: ``length`` elements from
    ``start`` along ``dim`` (a negative ``start`` counts from the end): a slice."""
    x = b.tensor_arg(node.args[0])
    shape = b.shape(x)
    dim = int(b.val(arg(node, 1, "dim"))) % len(shape)
    start = _int_arg(b, node, arg(node, 2, "start"), "start")
    length = _int_arg(b, node, arg(node, 3, "length"), "length")
    start = start + shape[dim] if start < 0 else start
    if (start, length) == (0, shape[dim]):
        return x
    return _slice(b, x, dim, start, start + length, 1)


def _select_index(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``x.select(dim, index)`` / ``torch.select`` (``x[:, index]`` for dim 1; stop 69, refused
    before): a one-wide slice, then the dim dropped (a reshape). An index out of range is
    refused as PyTorch refuses it."""
    x = b.tensor_arg(node.args[0])
    shape = b.shape(x)
    dim = int(b.val(arg(node, 1, "dim"))) % len(shape)
    index = _int_arg(b, node, arg(node, 2, "index"), "index")
    if not -shape[dim] <= index < shape[dim]:
        raise _refuse(b, node, f"index {index} for a dim of {shape[dim]}")
    index %= shape[dim]
    piece = _slice(b, x, dim, index, index + 1, 1)
    return b.reshape(piece, meta_like(tuple(out.shape), _dtype(b, x)))


def _unfold_windows(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``x.unfold(dimension, size, step)`` (``Tensor.unfold``, stop 70; refused before): the
    windows ``x[.., w * step : w * step + size, ..]`` along ``dimension``, ``w`` a new dim in
    its place and the window's ``size`` elements a new last dim. One row gather by constant
    positions over the dims up to ``dimension`` (as :func:`~.torch_more_ops.rearranged`), a
    reshape, and a permute moving the window's dim last."""
    x = b.tensor_arg(node.args[0])
    shape = list(b.shape(x))
    if not shape:
        raise _refuse(b, node, "a 0-d tensor")
    dim = int(b.val(arg(node, 1, "dimension"))) % len(shape)
    size = _int_arg(b, node, arg(node, 2, "size"), "window size")
    step = _int_arg(b, node, arg(node, 3, "step"), "step")
    count = int(out.shape[dim])
    if count == 0:
        raise _refuse(b, node, "no window fits (an empty result)")
    dtype = _dtype(b, x)
    width = int(np.prod(shape[dim + 1 :], dtype=np.int64))
    prefix = int(np.prod(shape[:dim], dtype=np.int64))
    table = b.reshape(x, meta_like((prefix * shape[dim], width), dtype))
    starts = np.arange(prefix)[:, None, None] * shape[dim]
    offsets = np.arange(count)[None, :, None] * step + np.arange(size)[None, None, :]
    rows = b.g.add_const(np.ascontiguousarray(starts + offsets, dtype=np.int64), "rows")
    gathered = b.emit(
        "embedding", [table, rows], {}, meta_like((prefix, count, size, width), dtype)
    )
    grid = b.reshape(gathered, meta_like((*shape[:dim], count, size, *shape[dim + 1 :]), dtype))
    rank = len(shape) + 1
    order = [d for d in range(rank) if d != dim + 1] + [dim + 1]
    result = _permuted(b, grid, order)
    if x in b.bools:
        b.bools.add(result)
    return result


def _movedim(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.movedim(x, source, destination)`` / ``moveaxis`` / the methods: the dims of
    ``source`` (an int or a sequence) moved to ``destination``, the others kept in order
    around them: a permute."""
    x = b.tensor_arg(node.args[0])
    rank = len(b.shape(x))
    source = _dims(b.val(arg(node, 1, "source")), rank)
    destination = _dims(b.val(arg(node, 2, "destination")), rank)
    if len(source) != len(destination):
        raise _refuse(b, node, f"{len(source)} source dims for {len(destination)} destinations")
    order = [d for d in range(rank) if d not in source]
    for to, d in sorted(zip(destination, source, strict=True)):
        order.insert(to, d)
    return _permuted(b, x, order)


def _swap(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``x.swapaxes(a, b)`` / ``swapdims`` / ``torch.swapaxes`` / ``torch.swapdims``: the
    transpose of two dims."""
    x = b.tensor_arg(node.args[0])
    kw = node.kwargs
    first = node.args[1] if len(node.args) > 1 else kw.get("axis0", kw.get("dim0"))
    second = node.args[2] if len(node.args) > 2 else kw.get("axis1", kw.get("dim1"))
    d0, d1 = (int(b.val(d)) % out.dim() for d in (first, second))
    return x if d0 == d1 else b.transpose(x, d0, d1, out)


def _unflatten(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``x.unflatten(dim, sizes)`` / ``torch.unflatten`` / ``nn.Unflatten(dim, sizes)``: one
    dim split into ``sizes`` (a ``-1`` among them as PyTorch resolved it): a reshape to the
    traced shape."""
    return b.reshape(b.tensor_arg(node.args[0]), out)


def _channel_shuffle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.channel_shuffle(x, groups)`` / ``torch.channel_shuffle`` / ``nn.ChannelShuffle``
    (Zhang et al. 2018, ShuffleNet, Sec. 3.1): ``(N, C, *)`` reshaped to ``(N, g, C / g,
    *)``, dims 1 and 2 swapped, reshaped back."""
    if node.op == "call_module":
        groups = int(_module(node, b).groups)
    else:
        groups = _int_arg(b, node, arg(node, 1, "groups"), "group count")
    x = b.tensor_arg(node.args[0])
    n, c, *rest = b.shape(x)
    if groups <= 0 or c % groups:
        raise _refuse(b, node, f"{c} channels in {groups} groups")
    if groups in (1, c):
        return x  # one group, or one channel per group: the order stays
    width = int(np.prod(rest, dtype=np.int64))
    grid = b.reshape(x, meta_like((n, groups, c // groups, width), _dtype(b, x)))
    return b.reshape(_permuted(b, grid, (0, 2, 1, 3)), out)


def _rot90(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.rot90(x, k=1, dims=(0, 1))`` / ``x.rot90``: ``k`` quarter turns from
    ``dims[0]`` towards ``dims[1]`` (``k < 0`` the other way), as PyTorch composes them:
    ``k = 1`` flips ``dims[1]`` then transposes, ``k = 2`` flips both, ``k = 3`` flips
    ``dims[0]`` then transposes."""
    x = b.tensor_arg(node.args[0])
    rank = len(b.shape(x))
    k = int(b.val(arg(node, 1, "k", 1))) % 4
    spec = b.val(arg(node, 2, "dims", (0, 1)))
    dims = _dims(spec, rank) if rank else ()
    if len(dims) != 2 or dims[0] == dims[1]:
        raise _refuse(b, node, f"dims {spec!r} (two different dims)")
    if k == 0:
        return x
    if k == 2:
        return _flipped(b, x, dims)
    flipped = _flipped(b, x, (dims[1] if k == 1 else dims[0],))
    return b.transpose(flipped, dims[0], dims[1], out)


# -- differences ---------------------------------------------------------------------------------
def _diff(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.diff(x, n=1, dim=-1, prepend=None, append=None)`` / ``x.diff``: ``prepend``
    and ``append`` (tensors of ``x``'s rank) concatenated along ``dim`` first, then ``n``
    times ``y[1:] - y[:-1]`` along ``dim`` (slices and a ``sub``; int64 stays int64, an int64
    beside a float operand is promoted as PyTorch promotes)."""
    x = b.tensor_arg(node.args[0])
    n = int(b.val(arg(node, 1, "n", 1)))
    if n == 0:
        return x
    rank = len(b.shape(x))
    if rank == 0 or n < 0:
        raise _refuse(b, node, f"order {n} of a rank-{rank} tensor")
    dim = int(b.val(arg(node, 2, "dim", -1))) % rank
    if out.shape[dim] == 0:
        raise _refuse(b, node, f"order {n} along a dim of {b.shape(x)[dim]} (an empty result)")
    dtype = torch.int64 if out.dtype in (torch.int64, torch.int32) else torch.float32
    pieces = [
        b.tensor_arg(t)
        for t in (arg(node, 3, "prepend"), node.args[0], arg(node, 4, "append"))
        if t is not None
    ]
    if dtype == torch.float32:
        pieces = [_as_float(b, t) for t in pieces]
    y = pieces[0]
    if len(pieces) > 1:
        shape = list(b.shape(x))
        shape[dim] = sum(b.shape(t)[dim] for t in pieces)
        y = b.emit("cat", pieces, {"dim": dim}, meta_like(shape, dtype))
    for _ in range(n):
        size = b.shape(y)[dim]
        later, earlier = _slice(b, y, dim, 1, size, 1), _slice(b, y, dim, 0, size - 1, 1)
        y = b.emit("sub", [later, earlier], {}, meta_like(b.shape(later), dtype))
    return y


def _outer(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.outer(a, b)`` / ``torch.ger`` / ``a.outer(b)``: ``a[i] b[j]`` of two vectors,
    ``a`` reshaped to a column times ``b`` (a broadcast ``mul``)."""
    left = b.tensor_arg(node.args[0])
    right = b.tensor_arg(arg(node, 1, "vec2"))
    if len(b.shape(left)) != 1 or len(b.shape(right)) != 1:
        shapes = f"{b.shape(left)} and {b.shape(right)}"
        raise _refuse(b, node, f"operands of shapes {shapes} (two vectors)")
    column = b.reshape(left, meta_like((b.shape(left)[0], 1), _dtype(b, left)))
    return b.emit("mul", [column, right], {}, out)


def _broadcast_tensors(b: FxBuilder, node: torch.fx.Node, out: Any) -> tuple[str, ...]:
    """``torch.broadcast_tensors(a, b, ...)``: each operand expanded to the shapes' common
    broadcast shape, as ``expand`` does (a multiply by ones, exact; an operand already of that
    shape passes as it is). ``torch.distributions.Normal(loc, scale)`` calls it (stop 71: S2's
    Gaussian policy and HolE's scores were refused)."""
    names = [b.tensor_arg(t) for t in node.args]
    target = tuple(out[0].shape)
    results = []
    for name in names:
        ones = broadcast_ones(b.shape(name), target)
        results.append(name if ones is None else broadcast_copy(b, name, ones, "broadcast"))
    return tuple(results)


# -- tables --------------------------------------------------------------------------------------
#: calls that are both ``torch.<name>`` and ``Tensor.<name>``
BOTH: dict[str, Handler] = {
    "diagonal": _diagonal,
    "diff": _diff,
    "outer": _outer,
    "ger": _outer,
    "narrow": _narrow,
    "select": _select_index,
    "movedim": _movedim,
    "moveaxis": _movedim,
    "swapaxes": _swap,
    "swapdims": _swap,
    "unflatten": _unflatten,
    "rot90": _rot90,
}
MOVE_FUNCTIONS: dict[Any, Handler] = {
    **{getattr(torch, name): handler for name, handler in BOTH.items()},
    torch.channel_shuffle: _channel_shuffle,  # F.channel_shuffle is the same function
    torch.native_channel_shuffle: _channel_shuffle,
    torch.broadcast_tensors: _broadcast_tensors,
}
MOVE_FUNCTION_NAMES: dict[str, Handler] = {
    "channel_shuffle": _channel_shuffle,
    "native_channel_shuffle": _channel_shuffle,
    "select": _select_index,
    # importing torch_geometric replaces torch.select by its wrapper ``_new_select`` (the same
    # call for tensors), so after that import the table entry above no longer matches
    "_new_select": _select_index,
    "broadcast_tensors": _broadcast_tensors,
}
MOVE_METHODS: dict[str, Handler] = {**BOTH, "unfold": _unfold_windows}  # F.unfold is im2col
MOVE_MODULES: dict[type, Handler] = {
    nn.Unflatten: _unflatten,
    nn.ChannelShuffle: _channel_shuffle,
}
#: handlers a boolean tensor may pass through (pure moves keep a mask a mask)
MOVE_BOOL: tuple[Handler, ...] = (
    _diagonal,
    _narrow,
    _select_index,
    _unfold_windows,
    _movedim,
    _swap,
    _unflatten,
    _channel_shuffle,
    _rot90,
    _broadcast_tensors,
)
