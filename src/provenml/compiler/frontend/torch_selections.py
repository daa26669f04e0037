"""Selections by a boolean mask computed at run time, for the torch frontend (stop 71):
``x[mask]``, ``torch.masked_select``, ``nonzero`` / ``argwhere`` and one-argument
``torch.where``.

How many elements a mask selects depends on the data, and the compiler's shapes are static,
so these were refused. As for an integer the model reads from its inputs' values (stop 71's
:class:`~provenml.compiler.ir.ValueGuard`), the compiled graph now keeps the example's count
``k`` and checks it after every call (another count raises ``ValueGuardFailed``, naming both):
a model that selects the same number of elements from every input (the valid tokens of
fixed-length batches, one detection per image, the edges without self loops of graphs with as
many loops) compiles and gives eager's result.

The positions of the ``True`` elements (row-major, as PyTorch lists them) are found without
sorting: with the mask flattened to ``m`` (0 / 1) and ``r = cumsum(m)``, element ``i`` goes to
slot ``r_i - 1`` if ``m_i`` else to a spare slot ``k``, ``slot_i = m_i (r_i - 1 - k) + k`` (int64),
and the IR's ``scatter`` writes ``i`` into a ``k + 1`` table at ``slot_i``: its first ``k``
rows are the positions, in order (exact up to 2^24 elements, as float32 holds the integers).
A count larger than the example's puts some ``i`` past the table: the kernel skips it, and the
guard's error is raised first. Coordinates (``nonzero``) are the positions' ``//`` and ``%`` by
the strides; the selected values a row gather of the tensor viewed as rows of the mask's dims.

Only a mask over the leading dims of ``x`` (``x[mask]`` with ``mask.shape == x.shape[:m]``)
is taken in indexing; one mixed with other indices is refused as before.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.fx

from provenml.compiler.frontend.common import UnsupportedOp, broadcast_ones
from provenml.compiler.frontend.torch_fx import (
    FxBuilder,
    Handler,
    _where,
    arg,
    broadcast_copy,
    meta_like,
    target_name,
)
from provenml.compiler.ir import ValueGuard

__all__ = ["SELECTION_FUNCTIONS", "SELECTION_FUNCTION_NAMES", "SELECTION_METHODS", "selected_rows"]

#: float32 holds every integer position below this exactly
EXACT_POSITIONS = 2**24


def _as_mask(b: FxBuilder, x: str) -> str:
    """A boolean IR value as it is; any other tensor's ``x != 0`` (what ``nonzero`` selects)."""
    if x in b.bools:
        return x
    zero = b.g.add_const(
        np.zeros((), np.int64 if b.g.values[x].dtype == "int64" else np.float32), "z"
    )
    mask = b.emit("ne", [x, zero], {}, meta_like(b.shape(x), torch.bool))
    b.bools.add(mask)
    return mask


def true_positions(b: FxBuilder, mask: str, count: int, what: str) -> str:
    """The flat positions (row-major, int64 ``(count,)``) of the ``True`` elements of the
    boolean IR value ``mask``, of which the example had ``count``; that count is guarded (the
    module docstring)."""
    n = int(np.prod(b.shape(mask), dtype=np.int64))
    if n >= EXACT_POSITIONS:
        raise UnsupportedOp(what, b.current, f"a mask of {n} elements (at most 2^24)")
    flat = b.reshape(mask, meta_like((n,), torch.bool))
    ones = b.emit("to_int", [flat], {}, meta_like((n,), torch.int64))
    total = b.emit("sum", [ones], {"dims": (0,), "keepdim": False}, meta_like((), torch.int64))
    b.g.value_guards.append(ValueGuard(count, f"the number of True elements of a mask, {what}"))
    b.guard_values.append(total)
    rank = b.emit("cumsum", [ones], {"dim": 0}, meta_like((n,), torch.int64))
    shift = b.g.add_const(np.asarray(-1 - count, np.int64), "shift")
    spare = b.g.add_const(np.asarray(count, np.int64), "spare")
    offset = b.emit("add", [rank, shift], {}, meta_like((n,), torch.int64))
    scaled = b.emit("mul", [ones, offset], {}, meta_like((n,), torch.int64))
    slots = b.emit("add", [scaled, spare], {}, meta_like((n,), torch.int64))
    table = b.g.add_const(np.zeros((count + 1, 1), np.float32), "slots")
    every = b.g.add_const(np.arange(n, dtype=np.float32).reshape(n, 1), "positions")
    attrs = {"reduce": "replace", "include_self": True}
    written = b.emit("scatter", [table, slots, every], attrs, meta_like((count + 1, 1)))
    attrs = {"dim": 0, "start": 0, "stop": count, "step": 1}
    kept = b.emit("slice", [written], attrs, meta_like((count, 1)))
    column = b.reshape(kept, meta_like((count,)))
    return b.emit("to_int", [column], {}, meta_like((count,), torch.int64))


def coordinates(b: FxBuilder, positions: str, shape: tuple[int, ...]) -> list[str]:
    """Each dim's coordinate of flat ``positions`` in a tensor of ``shape`` (int64 vectors)."""
    count = b.shape(positions)[0]
    like = meta_like((count,), torch.int64)
    strides = np.cumprod([1, *shape[1:][::-1]])[::-1]
    columns = []
    for stride, size in zip(strides, shape, strict=True):
        step = b.g.add_const(np.asarray(stride, np.int64), "stride")
        column = b.emit("floor_divide", [positions, step], {}, like)
        extent = b.g.add_const(np.asarray(size, np.int64), "extent")
        columns.append(b.emit("remainder", [column, extent], {}, like))
    return columns


def selected_rows(
    b: FxBuilder, x: str, mask: str, out: torch.Tensor, what: str, dim: int = 0
) -> str:
    """``x[mask]`` for a mask over the dims ``dim ..`` of ``x`` (``x[:, mask]`` for ``dim``
    1, PyG's ``edge_index[:, keep]``): the rows of ``x`` with those dims moved first and
    viewed as ``(prod(mask.shape), rest)`` at the mask's true positions, moved back to where
    PyTorch puts the selection (at ``dim``)."""
    shape, lead = b.shape(x), b.shape(mask)
    span = range(dim, dim + len(lead))
    if tuple(shape[dim : dim + len(lead)]) != tuple(lead):
        raise UnsupportedOp(what, b.current, f"a mask of shape {lead} for a tensor of {shape}")
    count = int(out.shape[dim])
    positions = true_positions(b, mask, count, what)
    dtype = torch.int64 if b.g.values[x].dtype == "int64" else torch.float32
    is_bool = x in b.bools
    others = [k for k in range(len(shape)) if k not in span]
    if dim:
        perm = (*span, *others)
        moved = [shape[k] for k in perm]
        x = b.emit("permute", [x], {"perm": perm}, meta_like(moved, dtype))
    rows = int(np.prod(lead, dtype=np.int64))
    rest = [shape[k] for k in others]
    width = int(np.prod(rest, dtype=np.int64))
    table = b.reshape(x, meta_like((rows, width), dtype))
    gathered = b.emit("embedding", [table, positions], {}, meta_like((count, width), dtype))
    result = b.reshape(gathered, meta_like((count, *rest), dtype))
    if dim:  # (count, before.., after..) -> (before.., count, after..)
        back = (*range(1, dim + 1), 0, *range(dim + 1, len(rest) + 1))
        result = b.emit("permute", [result], {"perm": back}, meta_like(tuple(out.shape), dtype))
    if is_bool:
        b.bools.add(result)
    return result


def _nonzero_columns(b: FxBuilder, x: Any, count: int, what: str) -> list[str]:
    """Each dim's coordinates (int64 ``(count,)``) of the nonzero elements of ``x``."""
    name = b.tensor_arg(x)
    positions = true_positions(b, _as_mask(b, name), count, what)
    return coordinates(b, positions, b.shape(name)) if b.shape(name) else []


def _nonzero(b: FxBuilder, node: torch.fx.Node, out: Any) -> Any:
    """``nonzero(x)`` (``(count, ndim)`` coordinates), ``nonzero(x, as_tuple=True)`` and
    ``argwhere(x)``."""
    as_tuple = bool(b.val(node.kwargs.get("as_tuple", False)))
    count = int((out[0] if as_tuple else out).shape[0])
    columns = _nonzero_columns(b, node.args[0], count, target_name(node, b.gm))
    if as_tuple:
        return tuple(columns) or (b.g.add_const(np.zeros((count,), np.int64), "i"),)
    if not columns:
        return b.g.add_const(np.zeros((count, 0), np.int64), "i")
    like = meta_like((count, 1), torch.int64)
    pieces = [b.reshape(c, like) for c in columns]
    if len(pieces) == 1:
        return pieces[0]
    return b.emit("cat", pieces, {"dim": 1}, meta_like((count, len(columns)), torch.int64))


def _where_or_positions(b: FxBuilder, node: torch.fx.Node, out: Any) -> Any:
    """``torch.where(cond)``: ``nonzero(cond, as_tuple=True)``; the three-argument form as
    before."""
    if node.op == "call_function" and len(node.args) + len(node.kwargs) == 1:
        cond = node.args[0] if node.args else node.kwargs["condition"]
        return tuple(_nonzero_columns(b, cond, int(out[0].shape[0]), "where"))
    return _where(b, node, out)


def _masked_select(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.masked_select(x, mask)`` / ``x.masked_select(mask)``: the elements of ``x``
    (``x`` and ``mask`` broadcast together) where ``mask``, flattened."""
    x = b.tensor_arg(node.args[0])
    mask = b.tensor_arg(arg(node, 1, "mask"))
    if mask not in b.bools:
        raise UnsupportedOp("masked_select", node.name, "a mask that is not boolean")
    full = tuple(int(v) for v in np.broadcast_shapes(b.shape(x), b.shape(mask)))
    dtype = torch.int64 if b.g.values[x].dtype == "int64" else torch.float32
    x, mask = (_expanded(b, t, full) for t in (x, mask))
    n = int(np.prod(full, dtype=np.int64))
    flat_x = b.reshape(x, meta_like((n,), dtype))
    flat_mask = b.reshape(mask, meta_like((n,), torch.bool))
    b.bools.add(flat_mask)
    return selected_rows(b, flat_x, flat_mask, out, "masked_select")


def _expanded(b: FxBuilder, x: str, shape: tuple[int, ...]) -> str:
    """``x`` expanded to ``shape`` (as ``expand``; a mask stays a mask)."""
    ones = broadcast_ones(b.shape(x), shape)
    return x if ones is None else broadcast_copy(b, x, ones, "expanded")


SELECTION_FUNCTIONS: dict[Any, Handler] = {
    torch.nonzero: _nonzero,
    torch.argwhere: _nonzero,
    torch.where: _where_or_positions,
    torch.masked_select: _masked_select,
}
SELECTION_FUNCTION_NAMES: dict[str, Handler] = {
    "nonzero": _nonzero,
    "argwhere": _nonzero,
    "masked_select": _masked_select,
}
SELECTION_METHODS: dict[str, Handler] = {
    "nonzero": _nonzero,
    "argwhere": _nonzero,
    "masked_select": _masked_select,
}
