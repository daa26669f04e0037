"""More ONNX ops for the ONNX frontend (stop 59), each from IR ops that exist: what PyTorch's
exporter writes for the ops stop 59 added to the torch frontend.

PRelu, ReduceLogSumExp / ReduceL1 / ReduceL2 / ReduceSumSquare, Mod (``fmod=0``: the
divisor's sign, Python's), Trilu, ScatterElements (``reduction`` none / add / max / min, as
the IR's ``scatter`` of one-element rows), DepthToSpace (DCR and CRD) / SpaceToDepth, OneHot
(last axis), Mish, TopK, Floor / Ceil / Round / Sign, and (stop 66) Sin, Cos, Tan, Asin,
Acos, Atan, Sinh, Cosh, Asinh, Acosh, Atanh. The handlers follow :mod:`.onnx`'s:
each takes the builder and the node and returns the IR values of the node's outputs; what
they cannot map is refused by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from provenml.compiler.frontend.common import UnsupportedOp
from provenml.compiler.frontend.onnx import (
    OnnxBuilder,
    OnnxHandler,
    _axes,
    _binary,
    _unary,
    attrs_of,
    element_positions,
)

if TYPE_CHECKING:
    import onnx

__all__ = ["MORE_ONNX_OPS"]


def _select(b: OnnxBuilder, cond: str, yes: str, no: str) -> str:
    """``where(cond, yes, no)`` as the two exact halves the torch frontend uses."""
    return b.emit("add", [b.emit("keep_where", [cond, yes]), b.emit("keep_where_not", [cond, no])])


def _prelu(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """PRelu: ``x`` where ``x > 0``, else ``slope * x`` (slope broadcast to ``x``)."""
    x, slope = b.tensor(node.input[0]), b.tensor(node.input[1])
    positive = b.emit("gt", [x, b.g.add_const(np.float32(0.0), "zero")])
    return [_select(b, positive, x, b.emit("mul", [x, slope]))]


def _reduce_axes(b: OnnxBuilder, node: onnx.NodeProto, x: str) -> tuple[tuple[int, ...], bool]:
    rank = len(b.g.values[x].shape)
    axes = _axes(b, node, rank) or list(range(rank))
    return tuple(axes), bool(attrs_of(node).get("keepdims", 1))


def _log_sum_exp(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """ReduceLogSumExp: ``m + log(sum(exp(x - m)))``, ``m`` the max over the axes (finite
    inputs, as the torch frontend's ``logsumexp``)."""
    x = b.tensor(node.input[0])
    axes, keep = _reduce_axes(b, node, x)
    peak = b.emit("amax", [x], {"dims": axes, "keepdim": True})
    total = b.emit(
        "sum", [b.emit("exp", [b.emit("sub", [x, peak])])], {"dims": axes, "keepdim": keep}
    )
    shift = peak if keep else b.reshape(peak, b.g.values[total].shape)
    return [b.emit("add", [b.emit("log", [total]), shift])]


def _norm_reduce(kind: str) -> OnnxHandler:
    """ReduceL1 (``sum |x|``), ReduceL2 (``sqrt(sum x^2)``), ReduceSumSquare (``sum x^2``)."""

    def handle(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
        x = b.tensor(node.input[0])
        axes, keep = _reduce_axes(b, node, x)
        terms = b.emit("abs", [x]) if kind == "l1" else b.emit("mul", [x, x])
        total = b.emit("sum", [terms], {"dims": axes, "keepdim": keep})
        return [b.emit("sqrt", [total]) if kind == "l2" else total]

    return handle


def _mod(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Mod with ``fmod=0`` (the result takes the divisor's sign): the IR's ``remainder``;
    ``fmod=1`` (C's ``fmod``, the dividend's sign; since stop 60): ``fmod``."""
    return _binary("fmod" if int(attrs_of(node).get("fmod", 0)) else "remainder")(b, node)


def _div(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Div: of two integer tensors, C's truncating division (``trunc_divide``, since stop
    60; refused before), else the float quotient."""
    ints = all(b.g.values[b.tensor(name)].dtype == "int64" for name in node.input[:2])
    return _binary("trunc_divide" if ints else "div")(b, node)


def _trilu(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Trilu: the upper (``upper=1``) or lower triangle from diagonal ``k`` of the last two
    dims kept, zeros elsewhere (float tensors)."""
    x = b.tensor(node.input[0])
    if b.g.values[x].dtype != "float32" or x in b.bools:
        raise UnsupportedOp("Trilu", b.current, "an integer or boolean tensor (float only)")
    k_given = b.const_input(node, 1)
    k = int(k_given) if k_given is not None else 0
    rows, cols = b.g.values[x].shape[-2:]
    ones = np.ones((rows, cols), np.float32)
    keep = np.triu(ones, k) if int(attrs_of(node).get("upper", 1)) else np.tril(ones, k)
    return [b.emit("keep_where", [b.g.add_const(keep, "triangle"), x])]


SCATTER_REDUCTIONS = {"none": "replace", "add": "add", "mul": "mul", "max": "amax", "min": "amin"}


def _scatter_elements(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """ScatterElements: ``data`` with ``updates[j]`` written (``none``) or combined (add,
    mul, max, min) at ``indices[j]`` along ``axis``, in order of ``j``: the IR's ``scatter`` of
    one-element rows at flat positions (:func:`element_positions`, as GatherElements reads
    them)."""
    at = attrs_of(node)
    reduction = at.get("reduction", b"none")
    reduction = reduction.decode() if isinstance(reduction, bytes) else str(reduction)
    if reduction not in SCATTER_REDUCTIONS:
        raise UnsupportedOp("ScatterElements", b.current, f"reduction={reduction!r}")
    data, index, updates = (b.tensor(name) for name in node.input[:3])
    if b.g.values[data].dtype != "float32" or b.g.values[updates].dtype != "float32":
        raise UnsupportedOp("ScatterElements", b.current, "non-float32 data")
    shape, ishape = b.g.values[data].shape, b.g.values[index].shape
    axis = int(at.get("axis", 0)) % len(shape)
    flat = element_positions(b, shape, index, axis)
    count = int(np.prod(ishape, dtype=np.int64))
    rows = b.reshape(flat, (count,))
    table = b.reshape(data, (int(np.prod(shape, dtype=np.int64)), 1))
    values = b.reshape(updates, (count, 1))
    attrs = {"reduce": SCATTER_REDUCTIONS[reduction], "include_self": True}
    return [b.reshape(b.emit("scatter", [table, rows, values], attrs), shape)]


def _depth_space(to_space: bool) -> OnnxHandler:
    """DepthToSpace (``mode`` DCR, the default, or CRD: PyTorch's ``pixel_shuffle``) and
    SpaceToDepth: a reshape, a transpose, a reshape (exact)."""

    def handle(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
        at = attrs_of(node)
        r = int(at["blocksize"])
        x = b.tensor(node.input[0])
        n, c, h, w = b.g.values[x].shape
        mode = at.get("mode", b"DCR")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        if to_space and mode == "DCR":
            split, perm = (n, r, r, c // (r * r), h, w), (0, 3, 4, 1, 5, 2)
        elif to_space:
            split, perm = (n, c // (r * r), r, r, h, w), (0, 1, 4, 2, 5, 3)
        else:
            split, perm = (n, c, h // r, r, w // r, r), (0, 3, 5, 1, 2, 4)
        grid = b.reshape(x, split)
        moved = b.emit("permute", [grid], {"perm": perm})
        final = (n, c // (r * r), h * r, w * r) if to_space else (n, c * r * r, h // r, w // r)
        return [b.reshape(moved, final)]

    return handle


def _one_hot(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """OneHot along the last axis: ``off + (on - off) * (indices[..., None] == arange(depth))``
    (negative indices counted from the end, as ONNX specifies)."""
    if int(attrs_of(node).get("axis", -1)) != -1:
        raise UnsupportedOp("OneHot", b.current, "an axis other than the last")
    depth_given, values = b.const_input(node, 1), b.const_input(node, 2)
    assert depth_given is not None and values is not None
    depth = int(np.asarray(depth_given).reshape(-1)[0])
    index = b.tensor(node.input[0])
    if b.g.values[index].dtype != "int64":
        index = b.emit("to_int", [index])
    shape = b.g.values[index].shape
    column = b.reshape(index, (*shape, 1))
    classes = b.g.add_const(np.arange(depth, dtype=np.int64), "classes")
    wrapped = b.g.add_const(np.arange(depth, dtype=np.int64) - depth, "classes")
    hit = b.emit("add", [b.emit("eq", [column, classes]), b.emit("eq", [column, wrapped])])
    off, on = (float(v) for v in np.asarray(values).reshape(-1)[:2])
    scaled = b.emit("mul", [hit, b.g.add_const(np.float32(on - off), "on")])
    return [b.emit("add", [scaled, b.g.add_const(np.float32(off), "off")])]


def _mish(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Mish (opset 18): ``x tanh(softplus(x))``."""
    x = b.tensor(node.input[0])
    return [b.emit("mul", [x, b.emit("tanh", [b.emit("softplus", [x])])])]


def _top_k(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """TopK (``K`` known at compile time, ``axis``, ``largest``; always sorted, ties in order
    of position): the IR's ``topk`` and ``topk_indices``."""
    at = attrs_of(node)
    x = b.tensor(node.input[0])
    if b.g.values[x].dtype != "float32" or x in b.bools:
        raise UnsupportedOp("TopK", b.current, "a non-float32 tensor")
    k_given = b.const_input(node, 1)
    assert k_given is not None
    attrs = {
        "dim": int(at.get("axis", -1)) % len(b.g.values[x].shape),
        "k": int(np.asarray(k_given).reshape(-1)[0]),
        "largest": bool(int(at.get("largest", 1))),
    }
    return [b.emit("topk", [x], attrs), b.emit("topk_indices", [x], attrs)]


TRIGONOMETRIC = ("Sin", "Cos", "Tan", "Asin", "Acos", "Atan")
HYPERBOLIC = ("Sinh", "Cosh", "Asinh", "Acosh", "Atanh")

MORE_ONNX_OPS: dict[str, OnnxHandler] = {
    "PRelu": _prelu,
    "ReduceLogSumExp": _log_sum_exp,
    "ReduceL1": _norm_reduce("l1"),
    "ReduceL2": _norm_reduce("l2"),
    "ReduceSumSquare": _norm_reduce("square"),
    "Mod": _mod,
    "Div": _div,
    "Trilu": _trilu,
    "ScatterElements": _scatter_elements,
    "DepthToSpace": _depth_space(to_space=True),
    "SpaceToDepth": _depth_space(to_space=False),
    "OneHot": _one_hot,
    "Mish": _mish,
    "TopK": _top_k,
    "Floor": _unary("floor"),
    "Ceil": _unary("ceil"),
    "Round": _unary("round"),  # ties to even, as ONNX specifies
    "Sign": _unary("sign"),
    # stop 66: the trigonometric and hyperbolic functions (ir.MATH_UNARY, libm's float forms)
    **{name: _unary(name.lower()) for name in TRIGONOMETRIC + HYPERBOLIC},
}
