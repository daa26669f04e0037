"""More ONNX ops for the ONNX frontend (stop 59), each from IR ops that exist: what PyTorch's
exporter writes for the ops stop 59 added to the torch frontend.

PRelu, ReduceLogSumExp / ReduceL1 / ReduceL2 / ReduceSumSquare, Mod (``fmod=0``: the
divisor's sign, Python's), Trilu, ScatterElements (``reduction`` none / add / max / min, as
the IR's ``scatter`` of one-element rows), DepthToSpace (DCR and CRD) / SpaceToDepth, OneHot
(last axis), Mish, TopK, Floor / Ceil / Round / Sign, and (stop 66) Sin, Cos, Tan, Asin,
Acos, Atan, Sinh, Cosh, Asinh, Acosh, Atanh; and (stop 67, what the exporters write for the ops
stop 67 added to the torch frontend) Selu, Celu, Softsign, Shrink, ThresholdedRelu,
ReduceProd, ReduceLogSum, IsInf, Xor, Mean, LpNormalization, LpPool / GlobalLpPool,
MeanVarianceNormalization and RMSNormalization; (stop 71) ScatterND. The handlers follow
:mod:`.onnx`'s: each takes the builder and the node and returns the IR values of the node's
outputs; what they cannot map is refused by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from provenml.compiler.frontend.common import UnsupportedOp
from provenml.compiler.frontend.onnx import (
    DATA_SIZED,
    WRAP_NEGATIVE,
    OnnxBuilder,
    OnnxHandler,
    _axes,
    _binary,
    _bool_input,
    _pool,
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
        if kind == "square":
            return [b.emit("sum", [b.emit("mul", [x, x])], {"dims": axes, "keepdim": keep})]
        return [_p_norm(b, x, 1.0 if kind == "l1" else 2.0, axes, keep)]

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


def _scatter_operands(
    b: OnnxBuilder, node: onnx.NodeProto, op: str
) -> tuple[dict[str, object], list[str]]:
    """A ScatterElements / ScatterND node's IR ``scatter`` attributes (its ``reduction``:
    none, add, mul, max or min) and its ``data``, ``indices`` and ``updates``, float32 data."""
    reduction = attrs_of(node).get("reduction", b"none")
    reduction = reduction.decode() if isinstance(reduction, bytes) else str(reduction)
    if reduction not in SCATTER_REDUCTIONS:
        raise UnsupportedOp(op, b.current, f"reduction={reduction!r}")
    data, index, updates = (b.tensor(name) for name in node.input[:3])
    if b.g.values[data].dtype != "float32" or b.g.values[updates].dtype != "float32":
        raise UnsupportedOp(op, b.current, "non-float32 data")
    return {"reduce": SCATTER_REDUCTIONS[reduction], "include_self": True}, [data, index, updates]


def _scatter_elements(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """ScatterElements: ``data`` with ``updates[j]`` written (``none``) or combined (add,
    mul, max, min) at ``indices[j]`` along ``axis``, in order of ``j``: the IR's ``scatter`` of
    one-element rows at flat positions (:func:`element_positions`, as GatherElements reads
    them)."""
    at = attrs_of(node)
    attrs, (data, index, updates) = _scatter_operands(b, node, "ScatterElements")
    shape, ishape = b.g.values[data].shape, b.g.values[index].shape
    axis = int(at.get("axis", 0)) % len(shape)
    flat = element_positions(b, shape, index, axis)
    count = int(np.prod(ishape, dtype=np.int64))
    rows = b.reshape(flat, (count,))
    table = b.reshape(data, (int(np.prod(shape, dtype=np.int64)), 1))
    values = b.reshape(updates, (count, 1))
    return [b.reshape(b.emit("scatter", [table, rows, values], attrs), shape)]


def _scatter_nd(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """ScatterND (stop 71: what ``torch.onnx.export`` writes for ``t[:, :s, :s] = v``, S9's
    few-shot heads build their adjacency so): ``data`` with the slice ``data[i_1, ..., i_k]``
    replaced (``reduction`` none) or combined (add, mul, max, min) by ``updates[j]`` for each
    index tuple ``indices[j] = (i_1, ..., i_k)``, in order of ``j``: the IR's ``scatter`` of
    rows (the data's first ``k`` dims flattened, the rest one row each) at the tuples' flat
    row positions, each coordinate checked against its dim and negative ones counted from the
    end (``bounded``, as ScatterElements)."""
    attrs, (data, index, updates) = _scatter_operands(b, node, "ScatterND")
    shape = b.g.values[data].shape
    rows, table = nd_rows(b, "ScatterND", data, index)
    values = b.reshape(updates, (b.g.values[rows].shape[0], b.g.values[table].shape[1]))
    return [b.reshape(b.emit("scatter", [table, rows, values], attrs), shape)]


def nd_rows(b: OnnxBuilder, op: str, data: str, index: str) -> tuple[str, str]:
    """The rows that ScatterND / GatherND index tuples ``(i_1, ..., i_k)`` (the last dim of
    ``index``) address, and ``data`` as the table of those rows: its first ``k`` dims
    flattened, the rest one row each. Each coordinate is checked against its dim, a negative
    one counted from the end (``bounded``, as ScatterElements)."""
    shape, ishape = b.g.values[data].shape, b.g.values[index].shape
    k = int(ishape[-1])
    if not 1 <= k <= len(shape):
        raise UnsupportedOp(op, b.current, f"index tuples of {k} coordinates")
    count = int(np.prod(ishape[:-1], dtype=np.int64))
    width = int(np.prod(shape[k:], dtype=np.int64))
    strides = np.cumprod([1, *shape[1:k][::-1]])[::-1]  # rows per step of each coordinate
    tuples = b.reshape(index, (count, k))
    rows = ""
    for j in range(k):
        coordinate = b.reshape(b.slice(tuples, 1, j, j + 1), (count,))
        limit = b.g.add_const(np.asarray(shape[j], np.int64), "n")
        checked = b.emit("bounded", [coordinate, limit], WRAP_NEGATIVE)
        step = b.g.add_const(np.asarray(strides[j], np.int64), "stride")
        term = b.emit("mul", [checked, step])
        rows = term if not rows else b.emit("add", [rows, term])
    table = b.reshape(data, (int(np.prod(shape[:k], dtype=np.int64)), width))
    return rows, table


def _gather_nd(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """GatherND with ``batch_dims=0`` (stop 72: what the ``torch.export``-based exporter
    writes for ``table[ids]``): ``out[j] = data[indices[j]]`` for each index tuple, the
    slice of the trailing dims: the IR's row gather (``embedding``) at :func:`nd_rows`."""
    if int(attrs_of(node).get("batch_dims", 0)):
        raise UnsupportedOp("GatherND", b.current, "batch_dims > 0")
    data, index = b.tensor(node.input[0]), b.tensor(node.input[1])
    if b.g.values[index].dtype != "int64":
        raise UnsupportedOp("GatherND", b.current, "non-integer indices")
    shape, ishape = b.g.values[data].shape, b.g.values[index].shape
    rows, table = nd_rows(b, "GatherND", data, index)
    gathered = b.emit("embedding", [table, rows])
    out = b.reshape(gathered, (*ishape[:-1], *shape[int(ishape[-1]) :]))
    if data in b.bools:
        b.bools.add(out)
    return [out]


class _TorchStyle:
    """The part of the torch builder's interface that :mod:`.torch_selections`' position
    finding calls, over an :class:`OnnxBuilder` (results shaped by the ``like`` tensors the
    torch builder takes; their dtypes the ONNX builder infers alike)."""

    def __init__(self, b: OnnxBuilder) -> None:
        self.onnx, self.g, self.current = b, b.g, b.current
        self.guard_values, self.bools = b.guard_values, b.bools

    def shape(self, x: str) -> tuple[int, ...]:
        return self.g.values[x].shape

    def reshape(self, x: str, like: Any) -> str:
        return self.onnx.reshape(x, tuple(like.shape))

    def emit(self, op: str, inputs: list[str], attrs: dict[str, Any], like: Any) -> str:
        return self.onnx.emit(op, inputs, attrs)


def _nonzero(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """NonZero (stop 72; PyG's self-loop removal exports to it): the ``(rank, count)``
    coordinates of the nonzero elements in row-major order, with the example inputs' count
    kept and checked on every call, as ``pc.compile`` takes ``nonzero`` (stop 71; the
    positions by :func:`~.torch_selections.true_positions`)."""
    from provenml.compiler.frontend.torch_selections import coordinates, true_positions

    x = b.tensor(node.input[0])
    shape = b.g.values[x].shape
    if not b.example or not shape:
        why = DATA_SIZED["NonZero"] if not b.example else "a 0-d input"
        raise UnsupportedOp("NonZero", b.current, why + " (given example inputs, it compiles)")
    count = int(np.count_nonzero(b.example_value(node.input[0])))
    mask = x
    if x not in b.bools:
        zero = b.g.add_const(
            np.zeros((), np.int64 if b.g.values[x].dtype == "int64" else np.float32), "z"
        )
        mask = b.emit("ne", [x, zero])
        b.bools.add(mask)
    style = _TorchStyle(b)
    positions = true_positions(style, mask, count, f"NonZero at node {b.current}")  # type: ignore[arg-type]
    rows = [b.reshape(c, (1, count)) for c in coordinates(style, positions, shape)]  # type: ignore[arg-type]
    return [rows[0] if len(rows) == 1 else b.emit("cat", rows, {"dim": 0})]


def _constant_of_shape(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """ConstantOfShape whose shape is computed at run time (one known at compile time is
    folded): the shape the example inputs give, guarded on each call (stop 72; PyG's pooling
    sizes its output by ``int(batch.max()) + 1``, exported as ReduceMax -> Add -> Concat ->
    ConstantOfShape), filled with the ``value`` attribute (0.0 by default)."""
    from onnx import numpy_helper

    shape = b.const_input(node, 0)
    assert shape is not None  # (its one input is required)
    fill = attrs_of(node).get("value")
    value = numpy_helper.to_array(fill).reshape(-1)[0] if fill is not None else np.float32(0)
    dtype = np.int64 if np.asarray(value).dtype.kind in "iub" else np.float32
    arr = np.full(tuple(int(d) for d in np.asarray(shape).reshape(-1)), value, dtype=dtype)
    return [b.g.add_const(np.ascontiguousarray(arr), "filled")]


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


# -- stop 67 ---------------------------------------------------------------------------------
def _const(b: OnnxBuilder, value: float) -> str:
    return b.g.add_const(np.float32(value), "k")


def _elu_like(b: OnnxBuilder, x: str, alpha: float, divide_by: float, scale: float) -> str:
    """``scale (max(0, x) + min(0, alpha (exp(x / divide_by) - 1)))``: Selu and Celu."""
    inner = x if divide_by == 1.0 else b.emit("div", [x, _const(b, divide_by)])
    negative = b.emit(
        "mul", [b.emit("sub", [b.emit("exp", [inner]), _const(b, 1.0)]), _const(b, alpha)]
    )
    total = b.emit("add", [b.emit("relu", [x]), b.emit("minimum", [negative, _const(b, 0.0)])])
    return total if scale == 1.0 else b.emit("mul", [total, _const(b, scale)])


def _selu(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Selu (``alpha``, ``gamma``; Klambauer et al. 2017, eq. 2)."""
    at = attrs_of(node)
    alpha = float(at.get("alpha", 1.67326319217681884765625))
    gamma = float(at.get("gamma", 1.05070102214813232421875))
    return [_elu_like(b, b.tensor(node.input[0]), alpha, 1.0, gamma)]


def _celu(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Celu (``alpha``; Barron 2017, eq. 3)."""
    alpha = float(attrs_of(node).get("alpha", 1.0))
    return [_elu_like(b, b.tensor(node.input[0]), alpha, alpha, 1.0)]


def _softsign(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Softsign: ``x / (1 + |x|)``."""
    x = b.tensor(node.input[0])
    return [b.emit("div", [x, b.emit("add", [b.emit("abs", [x]), _const(b, 1.0)])])]


def _shrink(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Shrink (``lambd``, ``bias``): 0 where ``|x| <= lambd``, else ``x - copysign(bias,
    x)`` (PyTorch's hardshrink is ``bias=0``, softshrink ``bias=lambd``); a NaN stays NaN."""
    at = attrs_of(node)
    lambd, bias = float(at.get("lambd", 0.5)), float(at.get("bias", 0.0))
    x = b.tensor(node.input[0])
    inside = b.emit("le", [b.emit("abs", [x]), _const(b, lambd)])
    shifted = x if bias == 0.0 else b.emit("sub", [x, b.emit("copysign", [_const(b, bias), x])])
    return [b.emit("keep_where_not", [inside, shifted])]


def _thresholded_relu(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """ThresholdedRelu (``alpha``): ``x`` where ``x > alpha``, else 0."""
    x = b.tensor(node.input[0])
    above = b.emit("gt", [x, _const(b, float(attrs_of(node).get("alpha", 1.0)))])
    return [b.emit("keep_where", [above, x])]


def _reduce_prod(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """ReduceProd: the reduced axes moved last and merged, the last entry of a ``cumprod``
    scan over them (in double), reshaped to the kept (or ``keepdims``) shape; float32."""
    x = b.tensor(node.input[0])
    if b.g.values[x].dtype != "float32":
        raise UnsupportedOp(node.op_type, b.current, "an integer product (float32 only)")
    axes, keep = _reduce_axes(b, node, x)
    shape = b.g.values[x].shape
    kept = [d for d in range(len(shape)) if d not in axes]
    moved = (
        b.emit("permute", [x], {"perm": (*kept, *axes)})
        if axes != tuple(range(len(kept), len(shape)))
        else x
    )
    count = int(np.prod([shape[d] for d in axes], dtype=np.int64))
    rows = b.reshape(moved, (*[shape[d] for d in kept], count))
    last_dim = len(kept)
    scan = b.emit("cumprod", [rows], {"dim": last_dim})
    last = b.slice(scan, last_dim, count - 1, count)
    out = [1 if d in axes else n for d, n in enumerate(shape)] if keep else [shape[d] for d in kept]
    return [b.reshape(last, out)]


def _reduce_log_sum(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """ReduceLogSum: ``log(sum(x))`` over the axes."""
    x = b.tensor(node.input[0])
    axes, keep = _reduce_axes(b, node, x)
    return [b.emit("log", [b.emit("sum", [x], {"dims": axes, "keepdim": keep})])]


def _is_inf(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """IsInf (``detect_negative``, ``detect_positive``), flagged boolean: ``|x| == inf``, or
    ``x == inf`` / ``x == -inf`` for one sign (the torch frontend's ``isinf`` comparisons)."""
    at = attrs_of(node)
    negative, positive = bool(at.get("detect_negative", 1)), bool(at.get("detect_positive", 1))
    x = b.tensor(node.input[0])
    if not (negative or positive):
        raise UnsupportedOp(node.op_type, b.current, "neither sign detected")
    if negative and positive:
        y = b.emit("eq", [b.emit("abs", [x]), _const(b, np.inf)])
    else:
        y = b.emit("eq", [x, _const(b, np.inf if positive else -np.inf)])
    b.bools.add(y)
    return [y]


def _xor(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Xor of two boolean tensors: ``a != b`` on their 0 / 1 values, flagged boolean."""
    y = b.emit("ne", [_bool_input(b, node, 0), _bool_input(b, node, 1)])
    b.bools.add(y)
    return [y]


def _mean(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Mean of any number of inputs (broadcast): their sum over their count."""
    total = b.tensor(node.input[0])
    for name in node.input[1:]:
        total = b.emit("add", [total, b.tensor(name)])
    count = len(node.input)
    return [total if count == 1 else b.emit("div", [total, _const(b, float(count))])]


def _p_norm(b: OnnxBuilder, x: str, p: float, dims: tuple[int, ...], keep: bool) -> str:
    """``(sum |x|^p)^(1/p)`` over ``dims`` (p 1 and 2 without ``pow``): ReduceL1 / ReduceL2,
    LpNormalization, GlobalLpPool."""
    if p == 2.0:
        return b.emit(
            "sqrt", [b.emit("sum", [b.emit("mul", [x, x])], {"dims": dims, "keepdim": keep})]
        )
    magnitude = b.emit("abs", [x])
    if p == 1.0:
        return b.emit("sum", [magnitude], {"dims": dims, "keepdim": keep})
    powered = b.emit("pow", [magnitude, _const(b, p)])
    total = b.emit("sum", [powered], {"dims": dims, "keepdim": keep})
    return b.emit("pow", [total, _const(b, 1.0 / p)])


def _lp_normalization(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """LpNormalization (``axis``, ``p`` 1 or 2): ``x`` over its ``p`` norm along ``axis``."""
    at = attrs_of(node)
    x = b.tensor(node.input[0])
    axis = int(at.get("axis", -1)) % len(b.g.values[x].shape)
    p = float(at.get("p", 2))
    if p not in (1.0, 2.0):
        raise UnsupportedOp(node.op_type, b.current, f"p={p:g} (1 or 2)")
    return [b.emit("div", [x, _p_norm(b, x, p, (axis,), True)])]


def _global_lp_pool(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """GlobalLpPool (``p``): the ``p`` norm over the spatial dims, kept."""
    x = b.tensor(node.input[0])
    dims = tuple(range(2, len(b.g.values[x].shape)))
    return [_p_norm(b, x, float(attrs_of(node).get("p", 2)), dims, True)]


def _lp_pool(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """LpPool (``p``, ``kernel_shape``, ``strides``, ``pads``; 1-d or 2-d): ``(k
    avg_pool(|x|^p))^(1/p)`` with the padded window's size ``k`` (pads add zeros), the
    average pooled by AveragePool's handler on the powered input."""
    from onnx import helper

    at = attrs_of(node)
    p = float(at.get("p", 2))
    x = b.tensor(node.input[0])
    powered = b.emit("pow", [b.emit("abs", [x]), _const(b, p)])
    alias = f"{node.output[0]}__lp_powered"
    b.env[alias] = powered
    kept = {k: v for k, v in at.items() if k not in ("p",)}
    average = helper.make_node(
        "AveragePool", [alias], [f"{node.output[0]}__lp_mean"], count_include_pad=1, **kept
    )
    (mean,) = _pool("avg_pool2d")(b, average)
    window = float(np.prod([int(k) for k in at["kernel_shape"]]))
    return [b.emit("pow", [b.emit("mul", [mean, _const(b, window)]), _const(b, 1.0 / p)])]


def _mean_variance_normalization(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """MeanVarianceNormalization (``axes``, default 0, 2, 3): ``(x - mean) / (std + 1e-9)``,
    ONNX's function body."""
    x = b.tensor(node.input[0])
    rank = len(b.g.values[x].shape)
    axes = tuple(_axes(b, node, rank) or [0, 2, 3])
    centred = b.emit("sub", [x, b.emit("mean", [x], {"dims": axes, "keepdim": True})])
    variance = b.emit("mean", [b.emit("mul", [centred, centred])], {"dims": axes, "keepdim": True})
    spread = b.emit("add", [b.emit("sqrt", [variance]), _const(b, 1e-9)])
    return [b.emit("div", [centred, spread])]


def _rms_normalization(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """RMSNormalization (opset 23; ``axis``, ``epsilon``): ``x rsqrt(mean(x^2) + eps) scale``
    over the dims from ``axis`` on (Zhang & Sennrich 2019, eq. 4)."""
    at = attrs_of(node)
    x = b.tensor(node.input[0])
    rank = len(b.g.values[x].shape)
    axis = int(at.get("axis", -1)) % rank
    dims = tuple(range(axis, rank))
    mean_square = b.emit("mean", [b.emit("mul", [x, x])], {"dims": dims, "keepdim": True})
    eps = _const(b, float(at.get("epsilon", 1e-5)))
    y = b.emit("mul", [x, b.emit("rsqrt", [b.emit("add", [mean_square, eps])])])
    return [b.emit("mul", [y, b.tensor(node.input[1])])]


MORE_ONNX_OPS: dict[str, OnnxHandler] = {
    "ScatterND": _scatter_nd,
    "GatherND": _gather_nd,
    "ConstantOfShape": _constant_of_shape,
    "NonZero": _nonzero,
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
    # stop 67
    "Selu": _selu,
    "Celu": _celu,
    "Softsign": _softsign,
    "Shrink": _shrink,
    "ThresholdedRelu": _thresholded_relu,
    "ReduceProd": _reduce_prod,
    "ReduceLogSum": _reduce_log_sum,
    "IsInf": _is_inf,
    "Xor": _xor,
    "Mean": _mean,
    "LpNormalization": _lp_normalization,
    "LpPool": _lp_pool,
    "GlobalLpPool": _global_lp_pool,
    "MeanVarianceNormalization": _mean_variance_normalization,
    "RMSNormalization": _rms_normalization,
}
