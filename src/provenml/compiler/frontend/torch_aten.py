"""ATen operators, as ``torch.export`` records them, for the torch frontend (stop 72).

``pc.compile(torch.export.export(model, args))`` and ``pc.compile(exported.module())`` give
the frontend a graph of ATen operators (``aten.linear.default``, ``aten.batch_norm.default``,
``aten.view.default``) where ``torch.fx`` gives ``F.linear`` and ``Tensor.view``. Each ATen
call is rewritten, before conversion, as the call of the PyTorch function the handler tables
know, with the arguments in that function's order:

* the ``torch`` / ``torch.nn.functional`` function that *binds* the operator (a built-in:
  ``F.conv2d``, ``F.linear``, ``torch.softmax``) takes ATen's arguments in ATen's order;
* a Python wrapper of it (``F.batch_norm``, ``F.embedding``, ``F.dropout``) may order or name
  them differently (``aten.batch_norm`` is ``(input, weight, bias, running_mean, ...)``,
  ``F.batch_norm`` ``(input, running_mean, running_var, weight, ...)``): the arguments are
  matched by name (``torch.fx.operator_schemas.normalize_function`` names ATen's; a few
  renames, :data:`RENAMED`), and an argument the wrapper has no parameter for leaves the call
  unconverted, refused by name;
* otherwise the tensor method of that name (ATen's ``self`` first).

The same name matching fixes direct calls of ``torch`` built-ins whose ``torch.nn.functional``
namesake orders its arguments differently: ``torch.batch_norm(x, weight, bias, mean, var,
...)`` was converted with ``F.batch_norm``'s order (stop 72: NaN, silently) and
``torch.embedding(weight, ids)`` refused.
"""

from __future__ import annotations

import copy
import inspect
import operator
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch.fx.operator_schemas import normalize_function

__all__ = ["RENAMED", "graph_copy", "normalise_calls"]

#: ATen argument names -> the Python wrappers' (ATen's ``self`` is the wrappers' ``input``)
RENAMED = {"self": "input", "train": "training"}
#: ATen arguments that change nothing in inference, dropped when the wrapper lacks them
INERT = frozenset({"cudnn_enabled", "cudnn_enable", "scale_grad_by_freq", "sparse"})


def graph_copy(graph: torch.fx.Graph) -> torch.fx.Graph:
    """A deep copy of ``graph`` (node names kept), without the ``FutureWarning`` PyTorch's
    own pytree specs raise when copied (``LeafSpec``), which said nothing to a user."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return copy.deepcopy(graph)


def _is_builtin(fn: Any) -> bool:
    return fn is not None and not inspect.isfunction(fn) and callable(fn)


def _has(table: dict[Any, Any], fn: Any) -> bool:
    try:
        return fn in table
    except TypeError:  # an unhashable target
        return False


def _by_name(
    node: torch.fx.Node, wrapper: Callable[..., Any], example: dict[str, Any]
) -> tuple[Any, ...] | None:
    """``node``'s arguments in ``wrapper``'s order, matched by name; None if they do not fit."""
    types = tuple(
        type(example[a.name]) if isinstance(a, torch.fx.Node) and a.name in example else type(a)
        for a in node.args
    )
    try:
        pair = normalize_function(
            node.target,  # type: ignore[arg-type]
            tuple(node.args),
            dict(node.kwargs),
            arg_types=types,
            normalize_to_only_use_kwargs=True,
        )
    except Exception:
        return None
    if pair is None:
        return None
    named = {RENAMED.get(k, k): v for k, v in pair.kwargs.items()}
    if wrapper is F.embedding:  # aten.embedding(weight, indices, padding_idx=-1, ...)
        named["input"] = named.pop("indices", None)
        if named.get("padding_idx") == -1:
            named["padding_idx"] = None
    params = inspect.signature(wrapper).parameters
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params.values()):
        return None  # (a dispatching wrapper: the caller keeps ATen's order)
    for name in list(named):
        if name not in params and name in INERT:
            del named[name]
    if set(named) - set(params):
        return None
    order = list(params)
    last = max((order.index(n) for n in named), default=-1)
    args = []
    for name in order[: last + 1]:
        default = params[name].default
        args.append(named.get(name, None if default is inspect.Parameter.empty else default))
    return tuple(args)


#: ``INT64_MAX``, ATen's end of a slice that runs to the end of its dim (``x[2:]``)
_TO_THE_END = 2**63 - 1


def _rank(a: Any, example: dict[str, Any]) -> int | None:
    """The number of dims of the recorded value of node ``a``, None if it has none."""
    value = example.get(a.name) if isinstance(a, torch.fx.Node) else None
    return value.dim() if isinstance(value, torch.Tensor) else None


def _slice_twin(args: tuple[Any, ...], example: dict[str, Any]) -> tuple[Any, ...] | None:
    """``aten.slice.Tensor(x, dim=0, start=None, end=None, step=1)`` as ``x[..., start:end:
    step]``, the slice at ``dim`` (a negative dim counted from the end of ``x``'s shape)."""
    given = (*args, *(0, None, None, 1)[len(args) - 1 :])  # (the defaults past those given)
    x, dim, start, end, step = given[:5]
    rank = _rank(x, example)
    if rank is None or not isinstance(dim, int):
        return None
    dim = dim + rank if dim < 0 else dim
    if isinstance(end, int) and end >= _TO_THE_END:
        end = None
    return (x, (*(slice(None),) * dim, slice(start, end, step)))


def _index_twin(args: tuple[Any, ...], example: dict[str, Any]) -> tuple[Any, ...] | None:
    """``aten.index.Tensor(x, [i, None, j])`` as ``x[i, :, j]``: ATen's ``None`` is a whole
    dim, the rest are index tensors, with NumPy's advanced-indexing rules in both."""
    x, indices = args[0], args[1]
    if not isinstance(indices, (list, tuple)):
        return None
    return (x, tuple(slice(None) if i is None else i for i in indices))


def _one_index_dim(args: tuple[Any, ...], example: dict[str, Any]) -> int | None:
    """The dim of ``aten.index.Tensor(x, [None, .., idx])`` where ``idx`` is the one index,
    a 1-D integer tensor after whole dims: ``x.index_select(dim, idx)`` (``x[:, idx]``, which
    as an item read mixes a run-time index with slices); None otherwise."""
    indices = args[1] if len(args) == 2 else None
    if not isinstance(indices, (list, tuple)):
        return None
    given = [k for k, i in enumerate(indices) if i is not None]
    if len(given) != 1 or given[0] == 0:
        return None
    value = (
        example.get(indices[given[0]].name)
        if isinstance(indices[given[0]], torch.fx.Node)
        else None
    )
    if not isinstance(value, torch.Tensor) or value.dim() != 1 or value.is_floating_point():
        return None
    return None if value.dtype == torch.bool else given[0]


#: ``aten.upsample_<mode>.vec(input, output_size, [align_corners,] scale_factors)``
_UPSAMPLE_MODES = {
    "upsample_nearest1d": "nearest",
    "upsample_nearest2d": "nearest",
    "upsample_nearest3d": "nearest",
    "upsample_nearest_exact2d": "nearest-exact",
    "upsample_linear1d": "linear",
    "upsample_bilinear2d": "bilinear",
    "upsample_trilinear3d": "trilinear",
    "upsample_bicubic2d": "bicubic",
}


def _resize_twin(
    base: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[str, Any, tuple[Any, ...], dict[str, Any]] | None:
    """``aten.upsample_bilinear2d.vec(x, size, align_corners, scales)`` and its kin as
    ``F.interpolate(x, size=..., scale_factor=..., mode=..., align_corners=...)`` (stop 74:
    an FCN's upsampling through ``torch.export`` was refused)."""
    mode = _UPSAMPLE_MODES.get(base)
    if mode is None or kwargs:
        return None
    nearest = mode.startswith("nearest")
    if len(args) != (3 if nearest else 4):
        return None
    size, scales = args[1], args[-1]
    align = None if nearest else args[2]
    options = {"size": size, "scale_factor": scales, "mode": mode}
    if size is not None and scales is not None:
        options["scale_factor"] = None  # (both given: the size is the result's)
    if not nearest:
        options["align_corners"] = align
    return ("call_function", F.interpolate, (args[0],), options)


#: ATen's operator overloads (``mask_a & mask_b`` is ``aten.__and__.Tensor``)
_DUNDER_OPERATORS = {"__and__": operator.and_, "__or__": operator.or_, "__xor__": operator.xor}
#: their in-place forms (``keep &= other``), as the logical ops of boolean tensors
_IN_PLACE_DUNDERS = {
    "__iand__": "logical_and_",
    "__ior__": "logical_or_",
    "__ixor__": "logical_xor_",
}


def _aten_twin(
    base: str, node: torch.fx.Node, example: dict[str, Any]
) -> tuple[str, Any, tuple[Any, ...], dict[str, Any]] | None:
    """The torch-level call of an ATen operator whose name no ``torch`` function or tensor
    method carries with the same arguments (stop 74: ``torch.export`` graphs of
    ``transformers`` models were refused at ``slice.Tensor``, ``index.Tensor``, ``alias``,
    ``einsum``, ``split_with_sizes``, ``linalg_vector_norm``, ``bitwise_not``,
    ``__and__``, ``__iand__``, ``rsub``, ``numpy_T``, ``fill_``, ``unfold``, ``cdist``,
    ``broadcast_tensors``, ``upsample_*.vec``, ``fft_rfft``, ``fft_irfft``, ``_conj``).
    ``slice`` and ``select`` become item reads (``x[:, 2:]``, ``x[:, 0]``), so that an
    in-place change of one is written back into its base as ``x[:, 0] += 3`` is
    (:func:`~.torch_setitem.write_back_views`)."""
    args, kwargs = tuple(node.args), dict(node.kwargs)
    if base.endswith("_") and not base.endswith("__") and hasattr(torch.Tensor, base):
        return ("call_method", base, args, kwargs)  # (``torch.fill_`` exists, unconverted)
    if base == "to" and kwargs.get("layout") in (None, torch.strided):
        # (``aten.to.dtype_layout``: ``Tensor.to`` takes no layout, and a pinned memory is
        # nothing on a CPU; kept as they were where they say more)
        inert = {"layout": (None, torch.strided), "pin_memory": (None, False)}
        if all(kwargs.get(k) in ok for k, ok in inert.items()):
            kept = {k: v for k, v in kwargs.items() if k not in inert}
            return ("call_method", "to", args, kept)
    if base == "slice" and not kwargs:
        sliced = _slice_twin(args, example)
        return None if sliced is None else ("call_function", operator.getitem, sliced, {})
    if base == "select" and not kwargs and len(args) == 3 and isinstance(args[1], int):
        rank = _rank(args[0], example)  # ``x.select(d, i)``, as ``x[:, ..., i]`` (a view)
        if rank is not None:
            dim = args[1] + rank if args[1] < 0 else args[1]
            index = (*(slice(None),) * dim, args[2])
            return ("call_function", operator.getitem, (args[0], index), {})
    dim = _one_index_dim(args, example) if base == "index" and not kwargs else None
    if dim is not None:
        return ("call_function", torch.index_select, (args[0], dim, args[1][dim]), {})
    if base == "index" and not kwargs and len(args) == 2:
        indexed = _index_twin(args, example)
        return None if indexed is None else ("call_function", operator.getitem, indexed, {})
    if base in ("alias", "lift_fresh_copy") and len(args) == 1 and not kwargs:
        # (an alias shares the memory, as ``detach``; ``lift_fresh_copy`` copies a constant)
        method = "detach" if base == "alias" else "clone"
        return ("call_method", method, args, {})
    if base == "einsum" and len(args) == 2 and isinstance(args[1], (list, tuple)):
        # (a ``path``, the contraction order, dropped: the plan chooses its own, same sums)
        return ("call_function", torch.einsum, (args[0], *args[1]), {})
    if base == "rsub" and len(args) == 2 and kwargs.get("alpha", 1) == 1:  # ``1 - x``
        return ("call_function", operator.sub, (args[1], args[0]), {})
    if base == "unfold" and not kwargs:  # ``Tensor.unfold(dim, size, step)``, not im2col
        return ("call_method", "unfold", args, {})
    if base in ("cdist", "_cdist_forward"):  # (x1, x2, p, compute_mode): torch.cdist's order
        return ("call_function", torch.cdist, args, kwargs)
    if base == "broadcast_tensors" and len(args) == 1 and isinstance(args[0], (list, tuple)):
        return ("call_function", torch.broadcast_tensors, tuple(args[0]), {})
    if base in ("fft_rfft", "fft_irfft"):  # (x, n, dim, norm): torch.fft's order (HolE)
        fn = torch.fft.rfft if base == "fft_rfft" else torch.fft.irfft
        return ("call_function", fn, args, kwargs)
    if base == "_conj" and len(args) == 1:
        return ("call_function", torch.conj, args, {})
    resized = _resize_twin(base, args, kwargs)
    if resized is not None:
        return resized
    if base == "split_with_sizes":
        return ("call_method", "split", args, kwargs)
    if base == "linalg_vector_norm":
        return ("call_function", torch.linalg.vector_norm, args, kwargs)
    if base in _IN_PLACE_DUNDERS and len(args) == 2 and not kwargs:  # ``keep &= other``
        return ("call_method", _IN_PLACE_DUNDERS[base], args, {})
    if base == "numpy_T" and len(args) == 1 and _rank(args[0], example) is not None:
        rank = _rank(args[0], example)  # ``x.T``: the dims reversed
        return ("call_method", "permute", (args[0], tuple(range(rank or 0))[::-1]), {})
    if base in _DUNDER_OPERATORS and len(args) == 2 and not kwargs:  # ``aten.__and__.Tensor``
        return ("call_function", _DUNDER_OPERATORS[base], args, {})
    if base == "bitwise_not" and len(args) == 1 and not kwargs:
        return ("call_function", operator.invert, args, {})  # (booleans only: ints refused)
    return None


def _rewrite(
    node: torch.fx.Node,
    functions: dict[Any, Any],
    function_names: dict[str, Any],
    example: dict[str, Any],
) -> tuple[str, Any, tuple[Any, ...], dict[str, Any]] | None:
    """(op, target, args, kwargs) of the torch-level call standing for ``node``, or None to
    leave it as it is."""
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        if target.namespace != "aten":
            return None
        base = target._schema.name.split("::", 1)[1]
        twin = _aten_twin(base, node, example)
        if twin is not None:
            return twin
    elif _is_builtin(target) and getattr(torch, getattr(target, "__name__", ""), None) is target:
        base = target.__name__  # type: ignore[union-attr]
        if _has(functions, target):
            return None
    else:
        return None
    in_torch, in_f = getattr(torch, base, None), getattr(F, base, None)
    aten = isinstance(target, torch._ops.OpOverload)
    if aten and _is_builtin(in_torch) and _has(functions, in_torch):
        return ("call_function", in_torch, tuple(node.args), dict(node.kwargs))
    if aten and _is_builtin(in_f):  # the binding itself: ATen's order
        return ("call_function", in_f, tuple(node.args), dict(node.kwargs))
    if inspect.isfunction(in_f):  # a Python wrapper (never the built-in ``in_torch`` itself)
        args = _by_name(node, in_f, example)
        if args is not None:
            return ("call_function", in_f, args, {})
        if aten and base in function_names:  # a dispatching wrapper (max_pool2d): same prefix
            return ("call_function", in_f, tuple(node.args), dict(node.kwargs))
        return None
    if aten and _is_builtin(in_torch):
        return ("call_function", in_torch, tuple(node.args), dict(node.kwargs))
    if aten and hasattr(torch.Tensor, base):
        return ("call_method", base, tuple(node.args), dict(node.kwargs))
    return None


def normalise_calls(
    gm: torch.fx.GraphModule,
    functions: dict[Any, Any],
    function_names: dict[str, Any],
    example: dict[str, Any],
) -> torch.fx.GraphModule:
    """``gm`` with its ATen calls (and the ``torch`` built-ins whose functional namesake orders
    its arguments differently) rewritten as the torch-level calls the handler tables know; a
    copy when anything changes (the caller's graph module stays as it was). ``example`` holds
    the recorded values by node name (to tell a built-in's overloads apart)."""
    plans = {}
    for node in gm.graph.nodes:
        if node.op == "call_function":
            plan = _rewrite(node, functions, function_names, example)
            if plan is not None:
                plans[node.name] = plan
    if not plans:
        return gm
    graph = graph_copy(gm.graph)
    mapping = {n.name: n for n in graph.nodes}  # (the copy keeps the names)

    def renamed(a: Any) -> Any:
        return mapping[a.name] if isinstance(a, torch.fx.Node) else a

    for node in graph.nodes:
        plan = plans.get(node.name)
        if plan is None:
            continue
        op, target, args, kwargs = plan
        node.op, node.target = op, target
        node.args = torch.fx.node.map_aggregate(args, renamed)
        node.kwargs = torch.fx.node.map_aggregate(kwargs, renamed)
    return torch.fx.GraphModule(gm, graph)
