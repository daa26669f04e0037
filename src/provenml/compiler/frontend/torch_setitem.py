"""Item assignment, ``t[index] = value`` (stop 69). TorchDynamo's export records it as an
``operator.setitem`` call that returns None and that nothing reads; until stop 69 the frontend
dropped such a call as a side effect with no result, so ``y = x.clone(); y[:, 0] = 0; return y``
compiled to ``x`` (and a buffer built from ``x.shape`` and filled by assignment compiled to the
example's values, a constant). Now the assignment is a new value that ``t``'s name stands for
afterwards, as for the in-place methods (:meth:`~.torch_fx.FxBuilder.rebind_in_place` applies
the same refusals: a graph input, a view of another tensor, a view read after the change).

The value is ``where(region, placed, t)`` with ``region`` a constant 0 / 1 mask of ``t``'s shape
(``keep_where`` halves, exact) and ``placed`` the value broadcast to the region and padded with
zeros to ``t``'s shape. Indices: integers, slices (any step for a scalar value, step 1 for a
tensor value), ``...``, or one boolean mask tensor of ``t``'s shape (since stop 71, of its
leading dims) with a scalar value (``t[mask] = v``, i.e. ``masked_fill``) or, since stop 71, a
tensor value: the selected rows replaced (:func:`_masked_rows`), the mask's count guarded.
Refused by name: advanced (integer tensor) indices, ``None`` in the index, a boolean tensor
being assigned into, a tensor value into an int64 tensor, or a value that does not broadcast to
the region.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import torch
import torch.fx

from provenml.compiler.frontend.common import UnsupportedOp, broadcast_ones
from provenml.compiler.frontend.torch_fx import (
    FxBuilder,
    _bool_operand,
    _select,
    broadcast_copy,
    constant_pad,
    meta_like,
)

__all__ = ["SIDE_EFFECT_FUNCTIONS", "assign_items"]


def _refuse(node: torch.fx.Node, why: str) -> UnsupportedOp:
    return UnsupportedOp("setitem", node.name, why)


def _region(
    node: torch.fx.Node, index: Any, shape: tuple[int, ...]
) -> tuple[list[slice], list[int]]:
    """Per dim of ``shape``, the slice ``index`` selects (integers as one-wide slices), and the
    dims an integer removes from the assigned region."""
    items = list(index) if isinstance(index, tuple) else [index]
    if any(item is None for item in items):
        raise _refuse(node, "None (a new axis) in the index")
    if sum(item is Ellipsis for item in items) > 1:
        raise _refuse(node, "two ellipses in the index")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        fill = len(shape) - (len(items) - 1)
        items = items[:at] + [slice(None)] * fill + items[at + 1 :]
    if len(items) > len(shape):
        raise _refuse(node, f"{len(items)} indices for a rank-{len(shape)} tensor")
    items += [slice(None)] * (len(shape) - len(items))
    slices: list[slice] = []
    dropped: list[int] = []
    for dim, (item, size) in enumerate(zip(items, shape, strict=True)):
        if isinstance(item, bool) or not isinstance(item, (int, slice)):
            raise _refuse(node, f"an index of type {type(item).__name__} (advanced indexing)")
        if isinstance(item, int):
            if not -size <= item < size:
                raise _refuse(node, f"index {item} out of range for a dim of {size}")
            start = item % size
            slices.append(slice(start, start + 1, 1))
            dropped.append(dim)
        else:
            start, stop, step = item.indices(size)
            if step <= 0:
                raise _refuse(node, f"a slice step of {step}")
            slices.append(slice(start, max(stop, start), step))
    return slices, dropped


def _folded(b: FxBuilder, node: torch.fx.Node) -> torch.Tensor | None:
    """The assignment's result where the tensor, the index and the value are all known at
    compile time (a relative-position table built from sizes, as BEiT builds one in forward):
    done in PyTorch on a copy (stop 70: refused as "a value of type Tensor" before); None
    where any of them is computed at run time."""
    target, index, value = node.args
    base, items, assigned = b.val(target), b.val(index), b.val(value)
    if not isinstance(base, torch.Tensor) or isinstance(assigned, str):
        return None
    if any(isinstance(i, str) for i in (items if isinstance(items, tuple) else (items,))):
        return None
    result = base.clone()
    result[items] = assigned
    return result


def assign_items(b: FxBuilder, node: torch.fx.Node) -> str | torch.Tensor:
    """``operator.setitem(t, index, value)`` as a new IR value (the module docstring), or a
    constant where everything is known at compile time (:func:`_folded`)."""
    folded = _folded(b, node)
    if folded is not None:
        return folded
    target, index, value = node.args
    if not isinstance(target, torch.fx.Node):
        raise _refuse(node, "assignment into a non-tensor")
    x = b.tensor_arg(target)
    if x in b.bools:
        raise _refuse(node, "assignment into a boolean tensor")
    shape = b.shape(x)
    integer = b.g.values[x].dtype == "int64"
    dtype = torch.int64 if integer else torch.float32
    like = meta_like(shape, dtype)
    index = b.val(index)
    scalar = not isinstance(value, torch.fx.Node) or not b.is_tensor(value)
    number = b.val(value) if scalar else None
    if isinstance(number, torch.Tensor) and number.numel() != 1:  # a constant tensor value
        scalar, number = False, None
    if scalar and not isinstance(number, (int, float)):
        if isinstance(number, torch.Tensor) and number.numel() == 1:
            number = number.item()
        else:
            raise _refuse(node, f"a value of type {type(number).__name__}")
    if isinstance(index, str) and index in b.g.values:  # t[mask] = v
        mask = _bool_operand(b, node.args[1], "setitem", node.name)
        lead = b.shape(mask)
        if tuple(shape[: len(lead)]) != tuple(lead):
            raise _refuse(node, f"a boolean mask of shape {lead} for a tensor of shape {shape}")
        if not scalar:
            return _masked_rows(b, node, x, mask, value)
        if lead != shape:  # a mask over the leading dims: each selected row whole
            rows = (*lead, *[1] * (len(shape) - len(lead)))
            spread = b.reshape(mask, meta_like(rows))
            b.bools.add(spread)
            mask = broadcast_copy(b, spread, broadcast_ones(rows, shape), "rows")
        return _select(b, mask, _number(b, number, integer), x, like)
    if isinstance(index, torch.Tensor) or (
        isinstance(index, tuple) and any(isinstance(i, (str, torch.Tensor)) for i in index)
    ):
        raise _refuse(node, "a tensor index (advanced indexing)")
    slices, dropped = _region(node, index, shape)
    region = np.zeros(shape, np.float32)
    region[tuple(slices)] = 1.0
    mask = b.const(region, "region")
    b.bools.add(mask)
    if scalar:
        return _select(b, mask, _number(b, number, integer), x, like)
    if integer:
        raise _refuse(node, "a tensor value assigned into an int64 tensor")
    if any(s.step != 1 for s in slices):
        raise _refuse(node, "a tensor value assigned through a strided slice")
    v = b.tensor_arg(value)
    if b.g.values[v].dtype != "float32" or v in b.bools:
        raise _refuse(node, "a value that is not a float tensor")
    sizes = [s.stop - s.start for s in slices]
    kept_dims = [d for d in range(len(shape)) if d not in dropped]
    kept = [sizes[d] for d in kept_dims]
    try:
        np.broadcast_shapes(b.shape(v), tuple(kept))
    except ValueError:
        raise _refuse(
            node, f"a value of shape {b.shape(v)} for a region of shape {tuple(kept)}"
        ) from None
    if len(b.shape(v)) > len(kept):  # leading 1s beyond the region's rank
        v = b.reshape(v, meta_like(b.shape(v)[len(b.shape(v)) - len(kept) :]))
    ranked = [1] * len(shape)
    vshape = b.shape(v)
    for d, size in zip(kept_dims[len(kept_dims) - len(vshape) :], vshape, strict=True):
        ranked[d] = size
    v = b.reshape(v, meta_like(ranked))
    ones = broadcast_ones(tuple(ranked), tuple(sizes))
    if ones is not None:
        v = broadcast_copy(b, v, ones, "assigned")
    pads: list[int] = []
    for s, size in reversed(list(zip(slices, shape, strict=True))):
        pads += [s.start, size - s.stop]
    placed = constant_pad(b, v, pads, 0.0, "setitem", node.name)
    return _select(b, mask, placed, x, like)


def _masked_rows(b: FxBuilder, node: torch.fx.Node, x: str, mask: str, value: Any) -> str:
    """``t[mask] = v`` with a tensor ``v`` (stop 71; PyG's ChebConv writes ``w[loops] -= 1``):
    the rows of ``t`` (viewed as the mask's dims by the rest) at the mask's ``True``
    positions replaced by ``v``'s rows (the IR's row ``scatter``); the count of ``True``
    elements is the example's, checked on every call
    (:func:`~.torch_selections.true_positions`)."""
    from provenml.compiler.frontend.torch_selections import true_positions

    shape, lead = b.shape(x), b.shape(mask)
    if b.g.values[x].dtype == "int64":
        raise _refuse(node, "a tensor value assigned into an int64 tensor")
    example = b.results.get(node.args[1].name) if isinstance(node.args[1], torch.fx.Node) else None
    if not isinstance(example, torch.Tensor):
        raise _refuse(node, "a boolean mask whose example value is unknown")
    count = int(example.sum())
    v = b.tensor_arg(value)
    if b.g.values[v].dtype != "float32" or v in b.bools:
        raise _refuse(node, "a value that is not a float tensor")
    rest = tuple(shape[len(lead) :])
    try:
        ones = broadcast_ones(b.shape(v), (count, *rest))
    except ValueError:
        raise _refuse(
            node, f"a value of shape {b.shape(v)} for {count} selected rows of shape {rest}"
        ) from None
    if ones is not None:
        v = broadcast_copy(b, v, ones, "assigned")
    rows = int(np.prod(lead, dtype=np.int64))
    width = int(np.prod(rest, dtype=np.int64))
    positions = true_positions(b, mask, count, "setitem (t[mask] = v)")
    table = b.reshape(x, meta_like((rows, width)))
    values = b.reshape(v, meta_like((count, width)))
    attrs = {"reduce": "replace", "include_self": True}
    written = b.emit("scatter", [table, positions, values], attrs, meta_like((rows, width)))
    return b.reshape(written, meta_like(shape))


def _number(b: FxBuilder, number: float, integer: bool) -> str:
    """A scalar constant in the target's dtype."""
    if integer:
        if float(number) != int(number):
            raise UnsupportedOp("setitem", b.current, f"a fractional value {number} into int64")
        return b.g.add_const(np.asarray(int(number), dtype=np.int64), "assigned")
    return b.g.add_const(np.asarray(number, dtype=np.float32), "assigned")


#: call_function targets that change their first argument and return None: the frontend
#: converts them into the new value of that argument
SIDE_EFFECT_FUNCTIONS = {operator.setitem: assign_items}
