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
from provenml.compiler.frontend.torch_aten import graph_copy
from provenml.compiler.frontend.torch_fx import (
    AUGMENTED_ASSIGNMENTS,
    WRITE_BACK,
    WRITTEN_FROM,
    FxBuilder,
    _bool_operand,
    _select,
    broadcast_copy,
    call_name,
    constant_pad,
    in_place_target,
    is_view_call,
    meta_like,
)

__all__ = [
    "AUGMENTED_ASSIGNMENTS",
    "SIDE_EFFECT_FUNCTIONS",
    "WRITE_BACK",
    "WRITE_METHODS",
    "assign_items",
    "copy_into",
    "in_place_augmented",
    "write_back_views",
]


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


def copy_into(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``dst.copy_(src)`` (``torch.export``'s write of a changed view back into its base, stop
    74): ``src`` broadcast to ``dst``'s shape, the new value of ``dst``; a copy between
    dtypes (float into int64, a number) is refused by name."""
    src = node.args[1] if len(node.args) > 1 else node.kwargs.get("src")
    if not isinstance(src, torch.fx.Node) or not b.is_tensor(src):
        raise UnsupportedOp("copy_", node.name, "a copy of a non-tensor")
    x = b.tensor_arg(src)
    integer = out.dtype in (torch.int64, torch.int32)
    same = (x in b.bools) == (out.dtype == torch.bool) and (
        (b.g.values[x].dtype == "int64") == integer
    )
    if not same:
        raise UnsupportedOp(
            "copy_", node.name, f"a copy into a {out.dtype} tensor of another dtype"
        )
    ones = broadcast_ones(b.shape(x), tuple(out.shape))
    return x if ones is None else broadcast_copy(b, x, ones, "copied")


#: in-place methods this module converts (``t.copy_(u)``, as ``copy``: the in-place rebinding
#: makes the result ``t``'s new value)
WRITE_METHODS = {"copy": copy_into}

#: call_function targets that change their first argument and return None: the frontend
#: converts them into the new value of that argument
SIDE_EFFECT_FUNCTIONS = {operator.setitem: assign_items}


def in_place_augmented(gm: torch.fx.GraphModule, results: dict[str, Any]) -> torch.fx.GraphModule:
    """``gm`` with each augmented assignment on a tensor (``results`` holds the example run's
    values by node name) made the in-place method call it is (:data:`AUGMENTED_ASSIGNMENTS`);
    a copy where any changes, the caller's graph module left as it was."""
    places = [
        n.name
        for n in gm.graph.nodes
        if n.op == "call_function"
        and n.target in AUGMENTED_ASSIGNMENTS
        and n.args
        and isinstance(n.args[0], torch.fx.Node)
        and isinstance(results.get(n.args[0].name), torch.Tensor)
    ]
    if not places:
        return gm
    graph = graph_copy(gm.graph)
    for node in graph.nodes:
        if node.name in places:
            node.op, node.target = "call_method", AUGMENTED_ASSIGNMENTS[node.target]
    return torch.fx.GraphModule(gm, graph)


def _basic_item_view(node: torch.fx.Node, results: dict[str, Any]) -> bool:
    """Whether ``node`` is ``base[index]`` with a basic index (integers, slices, ``None``,
    ``...``; sizes computed in the graph count as integers): a view sharing ``base``'s memory,
    never a copy (an index tensor or list, advanced indexing, copies)."""
    if node.op != "call_function" or node.target is not operator.getitem or len(node.args) != 2:
        return False
    base = node.args[0]
    if not isinstance(base, torch.fx.Node) or not isinstance(results.get(base.name), torch.Tensor):
        return False
    index = node.args[1]
    items = index if isinstance(index, tuple) else (index,)

    def basic(item: Any) -> bool:
        value = results.get(item.name) if isinstance(item, torch.fx.Node) else item
        if isinstance(value, slice):
            return all(basic(v) for v in (value.start, value.stop, value.step) if v is not None)
        is_int = isinstance(value, int) and not isinstance(value, bool)
        return is_int or value is None or value is Ellipsis

    return all(basic(item) for item in items)


def _inverse_view(
    graph: torch.fx.Graph, view: torch.fx.Node, results: dict[str, Any]
) -> torch.fx.Node | None:
    """A node after ``view`` (a view call of ``base``, sharing its memory) computing ``base``'s
    values from ``view``'s: the transpose of a transpose, the inverse of a permutation, the
    view reshaped as ``base`` for ``view`` / ``reshape`` / ``flatten`` / ``unsqueeze`` /
    ``squeeze`` / ``contiguous`` / ``detach``; None for a view with no inverse here."""
    base, name = view.args[0], call_name(view)
    rank = results[base.name].dim() if isinstance(base, torch.fx.Node) else None
    if name == "t" and rank is not None and rank <= 2:
        return graph.call_method("t", (view,))
    if name == "transpose" and len(view.args) == 3:
        return graph.call_method("transpose", (view, view.args[1], view.args[2]))
    if name == "permute":
        dims = view.args[1] if len(view.args) == 2 else view.args[1:]
        dims = results.get(dims.name) if isinstance(dims, torch.fx.Node) else dims
        if not isinstance(dims, (list, tuple)) or not all(isinstance(d, int) for d in dims):
            return None
        order = [d % len(dims) for d in dims]
        return graph.call_method("permute", (view, tuple(order.index(k) for k in range(len(dims)))))
    if name in RESHAPING_VIEWS:
        return graph.call_method("reshape_as", (view, base))
    return None


#: view calls whose inverse is a reshape to the base's shape (:func:`_inverse_view`)
RESHAPING_VIEWS = frozenset(
    {"view", "reshape", "flatten", "unsqueeze", "squeeze", "contiguous", "detach", "view_as"}
    | {"reshape_as", "unflatten"}
)


def write_back_views(gm: torch.fx.GraphModule, recorded: Any) -> torch.fx.GraphModule:
    """``gm`` with the change of each view written back into its base after an in-place call
    changes the view (``recorded``: the example run's :class:`~.torch_fx._Recorder`, its
    values and which views shared memory): PyTorch's change shows in the base, the IR's
    values do not share memory (stop 74: ``y[:, 0].add_(3)`` and ``torch.export``'s
    ``add_(select(t, 2, 0), 3)`` were refused as "an in-place change of a view of another
    tensor"; ``v = y[:2]; v *= 2`` computed wrong). A ``view = base[index]`` with a basic
    index (:func:`_basic_item_view`) is written back as ``base[index] = view``; a transpose,
    permutation or reshape that shared memory as ``base.copy_(inverse of the view)``
    (:func:`_inverse_view`). A write-back into a view is written back in turn (``z = y[0];
    z[1] += 5``); the caller runs the graph again and calls this until it returns ``gm``.
    Python's ``t[i] += v`` (``getitem``, in-place add, ``setitem``) already writes back; its
    in-place call is only marked. A copy where anything changes."""
    results, shares = recorded.results, recorded.shares_memory

    def plan(node: torch.fx.Node) -> str | None:  # "item", "inverse" or None
        view = in_place_target(node)
        if view is None or node.meta.get(WRITE_BACK) is not None:
            return None
        if _basic_item_view(view, results):
            return "item"
        is_call = view.op in ("call_method", "call_function") and bool(view.args)
        if is_call and shares.get(view.name, False) and isinstance(view.args[0], torch.fx.Node):
            return "inverse"
        return None

    if not any(plan(n) is not None for n in gm.graph.nodes) and not _stale_views(gm.graph, shares):
        return gm
    graph = graph_copy(gm.graph)
    for node in list(graph.nodes):
        how = plan(node)
        view = in_place_target(node)
        if how is None or view is None:
            continue
        base = view.args[0]
        if how == "item":
            index = view.args[1]
            own = any(
                u.op == "call_function"
                and u.target is operator.setitem
                and u.args[0] is base
                and u.args[1] == index
                for u in node.users
            )
            node.meta[WRITE_BACK] = view.name
            if own:  # (Python's ``t[i] += v``: its own assignment follows)
                continue
            with graph.inserting_after(node):
                written = graph.call_function(operator.setitem, (base, index, view))
        else:
            with graph.inserting_after(node):
                inverse = _inverse_view(graph, view, results)
            if inverse is None:
                continue  # (refused where the change would show: FxBuilder.rebind_in_place)
            node.meta[WRITE_BACK] = view.name
            with graph.inserting_after(inverse):
                written = graph.call_method("copy_", (base, inverse))
        written.meta[WRITTEN_FROM] = view.name
    for change, stale in _stale_views(graph, shares):
        order = {n: k for k, n in enumerate(graph.nodes)}
        with graph.inserting_after(change):
            fresh = graph.node_copy(stale)
        for user in list(stale.users):
            if order.get(user, -1) > order[change]:
                user.replace_input_with(stale, fresh)
    return torch.fx.GraphModule(gm, graph)


def _stale_views(graph: torch.fx.Graph, shares: dict[str, bool]) -> list[Any]:
    """``(change, view)`` pairs: ``view`` a view call of the tensor an in-place ``change``
    changes, made before it, read after it, and sharing the tensor's memory in the example
    run: PyTorch's view shows the change, so the reads after it take the view again from the
    changed tensor (stop 74: ``a = y[:, :2]; b = y[:, 2:]; a *= 2; return b.sum() + y`` was
    refused as "a view of the tensor (b) is read after it changes"); the view a write-back
    writes is left alone (its name has the change)."""
    order = {n: k for k, n in enumerate(graph.nodes)}
    pairs = []
    for change in graph.nodes:
        target = in_place_target(change)
        if target is None:
            continue
        for view in target.users:
            if (
                is_view_call(view)
                and view.args
                and view.args[0] is target
                and order[view] < order[change]
                and shares.get(view.name, False)
                and view.name != change.meta.get(WRITTEN_FROM)
                and in_place_target(view) is None
                and any(order[u] > order[change] for u in view.users)
            ):
                pairs.append((change, view))
    return pairs
