"""Activations, a norm, maths and reductions that a sweep of common PyTorch calls found refused
at stop 67, each composed from the IR's ops (the two-argument libm functions ``pow``,
``hypot`` and ``copysign`` are the IR's, stop 67).

* **RMSNorm** (Zhang & Sennrich 2019, eq. 4): ``x / sqrt(mean(x^2) + eps) * g`` over the
  trailing ``normalized_shape`` dims, ``F.rms_norm`` and ``nn.RMSNorm`` (LLaMA, T5, Mistral);
  ``eps=None`` is float32's machine epsilon, as PyTorch's.
* **Activations**: SELU (Klambauer et al. 2017, eq. 2: ``lambda elu(x, alpha)`` with their
  fixed constants), CELU (Barron 2017, eq. 3: ``max(0, x) + min(0, alpha (exp(x / alpha) -
  1))``), ``logsigmoid`` (``-softplus(-x)``), ``softsign`` (``x / (1 + |x|)``),
  ``tanhshrink`` (``x - tanh x``), ``hardshrink`` / ``softshrink`` (0 where ``|x| <= l``),
  ``threshold`` (``value`` where ``x <= threshold``), ``softmin`` (softmax of ``-x``), RReLU
  in inference (a leaky ReLU of slope ``(lower + upper) / 2``), the alpha and channel
  dropouts in inference (the identity); functions and modules.
* **Maths**: ``lerp`` (PyTorch's two-sided form: ``a + w (b - a)`` for ``|w| < 0.5``, else
  ``b - (b - a)(1 - w)``), ``addcmul`` / ``addcdiv`` (``x + value t1 t2``, ``x + value t1 /
  t2``), ``logaddexp`` (``max + log1p(exp(-|a - b|))``, equal arguments ``a + log 2`` so
  that two equal infinities stay infinite), ``hypot``, ``copysign``, ``frac`` (``x -
  trunc x``), ``sinc`` (``sin(pi x) / (pi x)``, 1 at 0).
* **Reductions**: ``prod`` (the last entry of the IR's ``cumprod`` scan, in double),
  ``any`` / ``all`` (``amax`` / ``amin`` of the 0 / 1 test ``x != 0``, a boolean result),
  ``count_nonzero`` (the int64 sum of ``x != 0``), ``nansum`` and ``nanmean`` (the sum of
  the numbers, over their count), ``median`` (the ``(n + 1) // 2``-th smallest, NaN where a NaN is),
  ``cummax`` / ``cummin`` (a lower-triangular table's extremes, O(length^2)),
  ``pairwise_distance`` (the norm of ``x1 - x2 + eps``), ``bucketize`` / ``searchsorted`` on
  1-D boundaries (counts of comparisons), LP pooling (``(k avg_pool(x^p))^(1/p)``).
* **Local response normalisation** (Krizhevsky et al. 2012): squares pooled over a window of
  channels (a padded ``(size, 1)`` average pool), ``x / (k + alpha avg)^beta``.
* **Sampling** (spatial transformers): ``F.affine_grid`` (2-D) and ``F.grid_sample`` on 4-D
  inputs, bilinear or nearest, zeros or border padding (the IR's row gather by run-time ids,
  four neighbours weighted).

What these cannot map (an integer ``prod``, a training-mode dropout, ...) is refused by name.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from provenml.compiler.frontend.common import UnsupportedOp
from provenml.compiler.frontend.torch_fx import (
    NORM_ORDERS,
    FxBuilder,
    Handler,
    _as_float,
    _bounded,
    _leaky_relu_op,
    _MinMax,
    _module,
    _module_softmax_dim,
    _norm,
    _select,
    _ValuesIndices,
    arg,
    constant_pad,
    elu_form,
    meta_like,
    target_name,
)
from provenml.compiler.frontend.torch_more_ops import _dims as _some_dims
from provenml.compiler.frontend.torch_more_ops import _dtype, kth_smallest

__all__ = [
    "COMMON_BOOL",
    "COMMON_FUNCTIONS",
    "COMMON_FUNCTION_NAMES",
    "COMMON_METHODS",
    "COMMON_MODULES",
]

#: SELU's constants (Klambauer et al. 2017, eq. 14), as PyTorch writes them
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _scalar(b: FxBuilder, value: float) -> str:
    return b.const(np.float32(value))


def _dims(value: Any, rank: int) -> tuple[int, ...]:
    """One dim or a sequence of them, made non-negative and sorted; ``None``: every dim."""
    return tuple(range(rank)) if value is None else tuple(sorted(_some_dims(value, rank)))


def _kept(shape: tuple[int, ...], dims: tuple[int, ...]) -> torch.Tensor:
    return meta_like([1 if d in dims else n for d, n in enumerate(shape)])


# -- RMSNorm ---------------------------------------------------------------------------------
def rms_norm(
    b: FxBuilder, x: str, dims: int, weight: str | None, eps: float | None, out: Any
) -> str:
    """RMSNorm (Zhang & Sennrich 2019, eq. 4) over the last ``dims`` dims of ``x``:
    ``x * rsqrt(mean(x * x) + eps)`` (PyTorch's order), times ``weight`` if given."""
    shape = b.shape(x)
    reduced = tuple(range(len(shape) - dims, len(shape)))
    like, kept = meta_like(shape), _kept(shape, reduced)
    squares = b.emit("mul", [x, x], {}, like)
    mean_square = b.emit("mean", [squares], {"dims": reduced, "keepdim": True}, kept)
    epsilon = float(torch.finfo(torch.float32).eps) if eps is None else float(eps)
    shifted = b.emit("add", [mean_square, _scalar(b, epsilon)], {}, kept)
    scale = b.emit("rsqrt", [shifted], {}, kept)
    y = b.emit("mul", [x, scale], {}, out if weight is None else like)
    return y if weight is None else b.emit("mul", [y, weight], {}, out)


def _rms_norm(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.rms_norm(x, normalized_shape, weight=None, eps=None)``."""
    shape = b.val(arg(node, 1, "normalized_shape"))
    dims = 1 if isinstance(shape, int) else len(shape)
    weight = arg(node, 2, "weight")
    w = None if b.val(weight) is None else b.tensor_arg(weight)
    return rms_norm(b, b.tensor_arg(node.args[0]), dims, w, b.val(arg(node, 3, "eps")), out)


def _rms_norm_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``nn.RMSNorm(normalized_shape, eps, elementwise_affine)``."""
    mod = _module(node, b)
    assert isinstance(mod, nn.RMSNorm)
    w = None if mod.weight is None else b.const(mod.weight, "g")
    return rms_norm(b, b.tensor_arg(node.args[0]), len(mod.normalized_shape), w, mod.eps, out)


# -- activations -----------------------------------------------------------------------------
def _selu(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.selu`` / ``nn.SELU`` (Klambauer et al. 2017, eq. 2)."""
    return elu_form(b, b.tensor_arg(node.args[0]), SELU_ALPHA, 1.0, SELU_SCALE, out)


def _celu(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.celu(x, alpha)`` / ``nn.CELU`` (Barron 2017, eq. 3)."""
    alpha = (
        _module(node, b).alpha if node.op == "call_module" else b.val(arg(node, 1, "alpha", 1.0))
    )
    if float(alpha) == 0.0:
        raise UnsupportedOp(target_name(node, b.gm), node.name, "alpha 0 (PyTorch raises)")
    return elu_form(b, b.tensor_arg(node.args[0]), float(alpha), float(alpha), 1.0, out)


def _logsigmoid(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.logsigmoid`` / ``nn.LogSigmoid``: ``-softplus(-x)`` (softplus linear past 20)."""
    x = b.tensor_arg(node.args[0])
    like = meta_like(b.shape(x))
    softplus = b.emit("softplus", [b.emit("neg", [x], {}, like)], {}, like)
    return b.emit("neg", [softplus], {}, out)


def _softsign(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.softsign`` / ``nn.Softsign``: ``x / (1 + |x|)``."""
    x = b.tensor_arg(node.args[0])
    like = meta_like(b.shape(x))
    denominator = b.emit("add", [b.emit("abs", [x], {}, like), _scalar(b, 1.0)], {}, like)
    return b.emit("div", [x, denominator], {}, out)


def _tanhshrink(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.tanhshrink`` / ``nn.Tanhshrink``: ``x - tanh(x)``."""
    x = b.tensor_arg(node.args[0])
    return b.emit("sub", [x, b.emit("tanh", [x], {}, meta_like(b.shape(x)))], {}, out)


def _shrink(soft: bool) -> Handler:
    """``F.hardshrink`` / ``F.softshrink`` (``lambd``, default 0.5) and their modules: 0 where
    ``|x| <= l``, else ``x`` (hard) or ``x - copysign(l, x)`` (soft); a NaN stays NaN, as
    PyTorch's. (Not ``x - clamp(x, -l, l)``: under ``-ffast-math`` gcc folds the NaN branch's
    ``x - x`` to 0.)"""

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        if node.op == "call_module":
            lambd = _module(node, b).lambd
        else:
            lambd = b.val(arg(node, 1, "lambd", 0.5))
        x = b.tensor_arg(node.args[0])
        like = meta_like(b.shape(x))
        inside = b.emit("le", [b.emit("abs", [x], {}, like), _scalar(b, float(lambd))], {}, like)
        if soft:
            step = b.emit("copysign", [_scalar(b, float(lambd)), x], {}, like)
            x = b.emit("sub", [x, step], {}, like)
        return b.emit("keep_where_not", [inside, x], {}, out)

    return handle


def _threshold(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.threshold(x, threshold, value)`` / ``nn.Threshold``: ``value`` where ``x <=
    threshold``, else ``x`` (a NaN kept)."""
    if node.op == "call_module":
        mod = _module(node, b)
        threshold, value = mod.threshold, mod.value
    else:
        threshold, value = b.val(arg(node, 1, "threshold")), b.val(arg(node, 2, "value"))
    x = b.tensor_arg(node.args[0])
    below = b.emit("le", [x, _scalar(b, float(threshold))], {}, meta_like(b.shape(x)))
    return _select(b, below, float(value), x, out)


def _softmin(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.softmin(x, dim)`` / ``nn.Softmin``: the softmax of ``-x``."""
    dim = _module(node, b).dim if node.op == "call_module" else b.val(arg(node, 1, "dim"))
    x = b.tensor_arg(node.args[0])
    negated = b.emit("neg", [x], {}, meta_like(b.shape(x)))
    return b.softmax(negated, _module_softmax_dim(dim, out), out)


def _rrelu(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.rrelu(x, lower, upper, training=False)`` / ``nn.RReLU`` in inference (Xu et al.
    2015): a leaky ReLU whose slope is the mean of the sampling range."""
    if node.op == "call_module":
        mod = _module(node, b)
        lower, upper, training = mod.lower, mod.upper, mod.training
    else:
        lower = b.val(arg(node, 1, "lower", 1.0 / 8))
        upper = b.val(arg(node, 2, "upper", 1.0 / 3))
        training = b.val(arg(node, 3, "training", False))
    if training:
        raise UnsupportedOp(target_name(node, b.gm), node.name, "training=True (random slopes)")
    return _leaky_relu_op(b, node, (float(lower) + float(upper)) / 2, out)


def _inference_dropout(training_by_default: bool) -> Handler:
    """The dropouts in inference: the identity. A module in training mode, or a function whose
    ``training`` is true (``F.dropout``'s and ``F.dropout2d``'s default) with ``p > 0``, is
    refused (stop 72: ``F.dropout`` was the identity whatever ``training`` said, so a model
    calling ``F.dropout(x, 0.5)``, random in eager, compiled silently to no dropout; so did a
    ``torch.export`` program exported in training mode)."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        if node.op == "call_module":
            training = _module(node, b).training
        else:
            training = b.val(arg(node, 2, "training", training_by_default))
            training = training and float(b.val(arg(node, 1, "p", 0.5))) != 0.0
        if training:
            why = "training=True (random masks)"
            raise UnsupportedOp(target_name(node, b.gm), node.name, why)
        return b.emit("identity", [b.tensor_arg(node.args[0])], {}, out)

    return handle


# -- maths -----------------------------------------------------------------------------------
def _float_operand(b: FxBuilder, value: Any) -> str:
    """A tensor operand as float32, a Python number as a float32 constant."""
    if b.is_tensor(value):
        return _as_float(b, b.tensor_arg(value))
    return _scalar(b, float(b.val(value)))


def _shape_of(b: FxBuilder, *names: str) -> torch.Tensor:
    return meta_like(np.broadcast_shapes(*(b.shape(n) for n in names)))


def _lerp(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.lerp(start, end, weight)``: ``start + w (end - start)`` where ``|w| < 0.5``,
    else ``end - (end - start)(1 - w)``, PyTorch's two-sided form (exact at both ends); a
    scalar weight picks its side at compile time."""
    start, end = (_float_operand(b, v) for v in (node.args[0], arg(node, 1, "end")))
    weight = arg(node, 2, "weight")
    span = b.emit("sub", [end, start], {}, _shape_of(b, end, start))
    if not b.is_tensor(weight):
        w = float(b.val(weight))
        if abs(w) < 0.5:
            step = b.emit("mul", [span, _scalar(b, w)], {}, meta_like(b.shape(span)))
            return b.emit("add", [start, step], {}, out)
        step = b.emit("mul", [span, _scalar(b, 1.0 - w)], {}, meta_like(b.shape(span)))
        return b.emit("sub", [end, step], {}, out)
    w = _float_operand(b, weight)
    like = meta_like(out.shape)
    near_start = b.emit("add", [start, b.emit("mul", [span, w], {}, like)], {}, like)
    rest = b.emit("sub", [_scalar(b, 1.0), w], {}, meta_like(b.shape(w)))
    near_end = b.emit("sub", [end, b.emit("mul", [span, rest], {}, like)], {}, like)
    small = b.emit(
        "lt",
        [b.emit("abs", [w], {}, meta_like(b.shape(w))), _scalar(b, 0.5)],
        {},
        meta_like(b.shape(w)),
    )
    return _select(b, small, near_start, near_end, out)


def _addc(op: str) -> Handler:
    """``torch.addcmul(x, t1, t2, value=1)`` / ``addcdiv``: ``x + value (t1 op t2)``."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        x, t1, t2 = (
            _float_operand(b, v)
            for v in (node.args[0], arg(node, 1, "tensor1"), arg(node, 2, "tensor2"))
        )
        value = float(b.val(node.kwargs.get("value", 1)))
        combined = b.emit(op, [t1, t2], {}, _shape_of(b, t1, t2))
        if value != 1.0:
            combined = b.emit(
                "mul", [combined, _scalar(b, value)], {}, meta_like(b.shape(combined))
            )
        return b.emit("add", [x, combined], {}, out)

    return handle


def _libm_binary(op: str) -> Handler:
    """``torch.hypot`` / ``torch.copysign``: the IR's op of that name (C's ``hypotf`` /
    ``copysignf``), float32."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        left, right = (_float_operand(b, v) for v in (node.args[0], arg(node, 1, "other")))
        return b.emit(op, [left, right], {}, out)

    return handle


def _logaddexp(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.logaddexp(a, b)``: ``max(a, b) + log1p(exp(-|a - b|))``; where ``a == b`` the
    difference is taken as 0, so two equal infinities give that infinity (``inf - inf``
    would be NaN)."""
    left, right = (_float_operand(b, v) for v in (node.args[0], arg(node, 1, "other")))
    like = _shape_of(b, left, right)
    gap = b.emit("abs", [b.emit("sub", [left, right], {}, like)], {}, like)
    gap = b.emit("keep_where_not", [b.emit("eq", [left, right], {}, like), gap], {}, like)
    tail = b.emit("log1p", [b.emit("exp", [b.emit("neg", [gap], {}, like)], {}, like)], {}, like)
    return b.emit("add", [b.emit("maximum", [left, right], {}, like), tail], {}, out)


def _frac(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.frac``: ``x - trunc(x)`` (the sign of ``x``)."""
    x = b.tensor_arg(node.args[0])
    return b.emit("sub", [x, b.emit("trunc", [x], {}, meta_like(b.shape(x)))], {}, out)


def _sinc(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.sinc`` (and ``torch.special.sinc``): ``sin(pi x) / (pi x)``, 1 at 0."""
    x = _as_float(b, b.tensor_arg(node.args[0]))
    like = meta_like(b.shape(x))
    angle = b.emit("mul", [x, _scalar(b, math.pi)], {}, like)
    ratio = b.emit("div", [b.emit("sin", [angle], {}, like), angle], {}, like)
    zero = b.emit("eq", [x, _scalar(b, 0.0)], {}, like)
    return _select(b, zero, 1.0, ratio, out)


def _pairwise_distance(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.pairwise_distance(x1, x2, p=2, eps=1e-6, keepdim=False)`` / ``nn.PairwiseDistance``:
    the ``p`` norm of ``x1 - x2 + eps`` over the last dim (orders 1, 2 and inf)."""
    if node.op == "call_module":
        mod = _module(node, b)
        order, eps, keepdim = mod.norm, mod.eps, mod.keepdim
    else:
        order = b.val(arg(node, 2, "p", 2.0))
        eps, keepdim = b.val(arg(node, 3, "eps", 1e-6)), b.val(arg(node, 4, "keepdim", False))
    if order not in NORM_ORDERS:
        raise UnsupportedOp(target_name(node, b.gm), node.name, f"p={order} (1, 2 or inf)")
    x1, x2 = (_float_operand(b, v) for v in (node.args[0], arg(node, 1, "x2")))
    like = _shape_of(b, x1, x2)
    gap = b.emit("add", [b.emit("sub", [x1, x2], {}, like), _scalar(b, float(eps))], {}, like)
    attrs = {"dims": (len(like.shape) - 1,), "keepdim": bool(keepdim)}
    return _norm(b, gap, order, attrs, out)


# -- reductions ------------------------------------------------------------------------------
def _prod(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.prod(x, dim=None, keepdim=False)`` / ``x.prod``: the last entry of the IR's
    ``cumprod`` along ``dim`` (accumulated in double); over every element the flattened
    tensor's. Integer products and a ``dtype=`` are refused."""
    name = target_name(node, b.gm)
    if node.kwargs.get("dtype") is not None or out.dtype != torch.float32:
        raise UnsupportedOp(name, node.name, f"a product as {out.dtype} (float32 only)")
    x = _as_float(b, b.tensor_arg(node.args[0]))
    shape = b.shape(x)
    dim = b.val(arg(node, 1, "dim"))
    if dim is None or not shape:
        count = int(np.prod(shape, dtype=np.int64))
        x, shape, dim = b.reshape(x, meta_like((count,))), (count,), 0
    d = int(dim) % len(shape)
    scan = b.emit("cumprod", [x], {"dim": d}, meta_like(shape))
    last = b.emit(
        "slice",
        [scan],
        {"dim": d, "start": shape[d] - 1, "stop": shape[d], "step": 1},
        meta_like([1 if k == d else n for k, n in enumerate(shape)]),
    )
    return b.reshape(last, out)


def _nonzero_test(b: FxBuilder, x: str) -> str:
    """``x != 0`` as 0 / 1 floats (a boolean mask is one already)."""
    if x in b.bools:
        return x
    integer = b.g.values[x].dtype == "int64"
    zero = b.g.add_const(np.asarray(0, dtype=np.int64 if integer else np.float32), "zero")
    return b.emit("ne", [x, zero], {}, meta_like(b.shape(x)))


def _any_all(op: str) -> Handler:
    """``x.any(dim, keepdim)`` / ``torch.any`` (``amax``) and ``all`` (``amin``) of the 0 / 1
    test ``x != 0``: a boolean result."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        x = b.tensor_arg(node.args[0])
        rank = len(b.shape(x))
        dims = _dims(b.val(arg(node, 1, "dim")), rank)
        keepdim = bool(b.val(arg(node, 2, "keepdim", False)))
        tested = _nonzero_test(b, x)
        if not dims:  # a 0-d tensor
            result = b.emit("identity", [tested], {}, out)
        else:
            result = b.emit(op, [tested], {"dims": dims, "keepdim": keepdim}, out)
        b.bools.add(result)
        return result

    return handle


def _count_nonzero(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.count_nonzero(x, dim=None)`` / the method: the int64 sum of ``x != 0``."""
    x = b.tensor_arg(node.args[0])
    dims = _dims(b.val(arg(node, 1, "dim")), len(b.shape(x)))
    tested = _nonzero_test(b, x)
    counts = b.emit("to_int", [tested], {}, meta_like(b.shape(x), torch.int64))
    return b.emit("sum", [counts], {"dims": dims, "keepdim": False}, out)


def _sum_of_numbers(
    b: FxBuilder, node: torch.fx.Node, out: torch.Tensor
) -> tuple[str, str, dict[str, Any]]:
    """``nansum`` / ``nanmean``'s common part: (the sum of the elements of ``x`` that are not
    NaN over ``dim``, the 0 / 1 mask of those elements, the reduction's attrs)."""
    if node.kwargs.get("dtype") is not None:
        raise UnsupportedOp(target_name(node, b.gm), node.name, "a dtype argument")
    x = b.tensor_arg(node.args[0])
    shape = b.shape(x)
    dims = _dims(b.val(arg(node, 1, "dim")), len(shape))
    keepdim = bool(b.val(arg(node, 2, "keepdim", False)))
    like = meta_like(shape)
    # x == x is the NaN test the comparisons make explicit (an IEEE comparison with a NaN)
    present = b.emit("eq", [x, x], {}, like)
    attrs = {"dims": dims, "keepdim": keepdim}
    return b.emit("sum", [b.emit("keep_where", [present, x], {}, like)], attrs, out), present, attrs


def _nansum(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.nansum(x, dim=None, keepdim=False)`` / the method (stop 68): the sum of the
    elements that are not NaN (0 where every one is)."""
    return _sum_of_numbers(b, node, out)[0]


def _nanmean(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.nanmean(x, dim=None, keepdim=False)`` / the method: the sum of the elements that
    are not NaN over their count (0 / 0, NaN, where every one is)."""
    total, present, attrs = _sum_of_numbers(b, node, out)
    count = b.emit("sum", [present], attrs, out)
    return b.emit("div", [total, count], {}, out)


def _bucket_count(
    b: FxBuilder, node: torch.fx.Node, values: str, boundaries: str, right: bool, out: Any
) -> str:
    """How many of the 1-D sorted ``boundaries`` lie below each value (``b < v``; ``right``:
    ``b <= v``), int64: ``len(boundaries)`` minus the count of ``v <= b`` (``v < b``), so that a
    NaN, which compares false, counts every boundary, as PyTorch's binary search does."""
    if len(b.shape(boundaries)) != 1:
        why = f"{len(b.shape(boundaries))}-D boundaries (1-D only)"
        raise UnsupportedOp(target_name(node, b.gm), node.name, why)
    if node.kwargs.get("out_int32") or node.kwargs.get("sorter") is not None:
        raise UnsupportedOp(target_name(node, b.gm), node.name, "out_int32 or a sorter")
    shape = b.shape(values)
    count = b.shape(boundaries)[0]
    column = b.reshape(values, meta_like((*shape, 1), _dtype(b, values)))
    above = b.emit("lt" if right else "le", [column, boundaries], {}, meta_like((*shape, count)))
    ints = b.emit("to_int", [above], {}, meta_like((*shape, count), torch.int64))
    below = b.emit("sum", [ints], {"dims": (len(shape),), "keepdim": False}, out)
    total = b.g.add_const(np.asarray(count, dtype=np.int64), "count")
    return b.emit("sub", [total, below], {}, out)


def _bucketize(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.bucketize(x, boundaries, right=False)``: :func:`_bucket_count`."""
    values, boundaries = b.tensor_arg(node.args[0]), b.tensor_arg(arg(node, 1, "boundaries"))
    right = bool(b.val(node.kwargs.get("right", False)))
    return _bucket_count(b, node, values, boundaries, right, out)


def _searchsorted(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.searchsorted(sorted_sequence, values, right=False, side=None)`` for a 1-D
    sequence: :func:`_bucket_count` (``side="right"`` is ``right=True``)."""
    sequence, values = b.tensor_arg(node.args[0]), b.tensor_arg(arg(node, 1, "input"))
    side = b.val(node.kwargs.get("side"))
    right = bool(b.val(node.kwargs.get("right", False))) or side == "right"
    return _bucket_count(b, node, values, sequence, right, out)


def _lp_pool(dims: int) -> Handler:
    """``F.lp_pool1d`` / ``F.lp_pool2d(x, norm_type, kernel_size, stride=None,
    ceil_mode=False)`` and ``nn.LPPool1d`` / ``nn.LPPool2d``: ``(k avg_pool(x^p))^(1/p)``,
    ``k`` the window's size, as PyTorch computes it (a negative window sum gives NaN for an
    odd ``p``, as there)."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        if node.op == "call_module":
            mod = _module(node, b)
            p, kernel, stride, ceil = mod.norm_type, mod.kernel_size, mod.stride, mod.ceil_mode
        else:
            p = b.val(arg(node, 1, "norm_type"))
            kernel, stride = b.val(arg(node, 2, "kernel_size")), b.val(arg(node, 3, "stride"))
            ceil = b.val(arg(node, 4, "ceil_mode", False))
        x = b.tensor_arg(node.args[0])
        like = meta_like(b.shape(x))
        powered = b.emit("pow", [x, _scalar(b, float(p))], {}, like)
        sizes = (kernel,) * dims if isinstance(kernel, int) else tuple(kernel)
        pool = b.pool1d if dims == 1 else b.pool
        options = {"ceil_mode": ceil}
        try:
            mean = pool("avg_pool2d", powered, kernel, stride, 0, node, out, options)
        except UnsupportedOp as refused:  # named as the user wrote it
            raise UnsupportedOp(target_name(node, b.gm), node.name, refused.why) from None
        total = b.emit("mul", [mean, _scalar(b, float(np.prod(sizes)))], {}, out)
        return b.emit("pow", [total, _scalar(b, 1.0 / float(p))], {}, out)

    return handle


GRID_SAMPLE_MODES = ("bilinear", "nearest")
GRID_SAMPLE_PADDINGS = ("zeros", "border")


def _grid_sample(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.grid_sample(x, grid, mode, padding_mode, align_corners)`` on a 4-D input
    (Jaderberg et al. 2015's sampler): each output pixel reads ``x`` at the grid's ``(x, y)``
    in [-1, 1], unnormalised as PyTorch does (``((g + 1) W - 1) / 2``, or ``(g + 1) (W - 1) /
    2`` with ``align_corners``), ``border`` clamping the coordinate into the image. Bilinear:
    the four neighbours' rows gathered from ``x`` viewed as an ``(N H W, C)`` table (the IR's
    row gather by run-time int64 ids) and weighted by PyTorch's corner areas; a neighbour
    outside the image (``zeros``) weighs 0 and reads a clamped row. Nearest: the coordinate
    rounded half to even. Reflection padding and 5-D inputs are refused."""
    name = target_name(node, b.gm)
    mode = b.val(arg(node, 2, "mode", "bilinear"))
    padding = b.val(arg(node, 3, "padding_mode", "zeros"))
    align = bool(b.val(arg(node, 4, "align_corners", None)) or False)
    if mode not in GRID_SAMPLE_MODES or padding not in GRID_SAMPLE_PADDINGS:
        why = (
            f"mode={mode!r}, padding_mode={padding!r} ({GRID_SAMPLE_MODES}; {GRID_SAMPLE_PADDINGS})"
        )
        raise UnsupportedOp(name, node.name, why)
    x, grid = b.tensor_arg(node.args[0]), b.tensor_arg(arg(node, 1, "grid"))
    if len(b.shape(x)) != 4:
        raise UnsupportedOp(name, node.name, f"a {len(b.shape(x))}-D input (4-D only)")
    n, c, h, w = b.shape(x)
    _, rows_out, cols_out, _ = b.shape(grid)
    plane = meta_like((n, rows_out, cols_out))
    int_plane = meta_like((n, rows_out, cols_out), torch.int64)

    def source(k: int, size: int) -> str:
        """Grid coordinate ``k`` (0: x, 1: y) as a pixel coordinate."""
        g = b.emit(
            "slice",
            [grid],
            {"dim": 3, "start": k, "stop": k + 1, "step": 1},
            meta_like((n, rows_out, cols_out, 1)),
        )
        g = b.reshape(g, plane)
        shifted = b.emit("add", [g, _scalar(b, 1.0)], {}, plane)
        if align:
            pixel = b.emit("mul", [shifted, _scalar(b, (size - 1) / 2)], {}, plane)
        else:
            scaled = b.emit(
                "sub",
                [b.emit("mul", [shifted, _scalar(b, float(size))], {}, plane), _scalar(b, 1.0)],
                {},
                plane,
            )
            pixel = b.emit("div", [scaled, _scalar(b, 2.0)], {}, plane)
        return into_image(pixel, size) if padding == "border" else pixel

    def into_image(v: str, size: int) -> str:
        """``v`` clamped to the pixel range ``[0, size - 1]``."""
        low = b.emit("maximum", [v, _scalar(b, 0.0)], {}, plane)
        return b.emit("minimum", [low, _scalar(b, float(size - 1))], {}, plane)

    fx, fy = source(0, w), source(1, h)
    table = b.reshape(
        b.emit("permute", [x], {"perm": (0, 2, 3, 1)}, meta_like((n, h, w, c))),
        meta_like((n * h * w, c)),
    )
    first_rows = b.g.add_const(
        (np.arange(n, dtype=np.int64) * h * w).reshape(n, 1, 1), "image_rows"
    )

    def corner(cx: str, cy: str, weight: str) -> str:
        """``weight`` times ``x`` at integer-valued ``(cx, cy)`` (0 outside the image)."""
        inside = [
            b.emit(op, [v, _scalar(b, bound)], {}, plane)
            for v, size in ((cx, w), (cy, h))
            for op, bound in (("ge", 0.0), ("le", float(size - 1)))
        ]
        for test in inside:
            weight = b.emit("mul", [weight, test], {}, plane)
        ids = [
            b.emit("to_int", [into_image(v, size)], {}, int_plane) for v, size in ((cx, w), (cy, h))
        ]
        row_ids = b.emit(
            "mul", [ids[1], b.g.add_const(np.asarray(w, dtype=np.int64), "width")], {}, int_plane
        )
        row_ids = b.emit(
            "add", [b.emit("add", [row_ids, ids[0]], {}, int_plane), first_rows], {}, int_plane
        )
        values = b.emit("embedding", [table, row_ids], {}, meta_like((n, rows_out, cols_out, c)))
        weight = b.reshape(weight, meta_like((n, rows_out, cols_out, 1)))
        return b.emit("mul", [values, weight], {}, meta_like((n, rows_out, cols_out, c)))

    if mode == "nearest":
        total = corner(
            b.emit("round", [fx], {}, plane), b.emit("round", [fy], {}, plane), _scalar(b, 1.0)
        )
    else:
        x0, y0 = b.emit("floor", [fx], {}, plane), b.emit("floor", [fy], {}, plane)
        x1, y1 = (b.emit("add", [v, _scalar(b, 1.0)], {}, plane) for v in (x0, y0))
        east, west = b.emit("sub", [fx, x0], {}, plane), b.emit("sub", [x1, fx], {}, plane)
        south, north = b.emit("sub", [fy, y0], {}, plane), b.emit("sub", [y1, fy], {}, plane)
        parts = [
            corner(cx, cy, b.emit("mul", [wx, wy], {}, plane))
            for cy, wy in ((y0, north), (y1, south))
            for cx, wx in ((x0, west), (x1, east))
        ]
        total = parts[0]
        for part in parts[1:]:
            total = b.emit("add", [total, part], {}, meta_like((n, rows_out, cols_out, c)))
    return b.emit("permute", [total], {"perm": (0, 3, 1, 2)}, out)


def _affine_grid(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.affine_grid(theta, size, align_corners)`` for a 2-D ``size`` ``(N, C, H, W)``:
    each pixel's normalised ``(x, y, 1)`` (PyTorch's base grid: ``linspace(-1, 1)``, scaled by
    ``(W - 1) / W`` without ``align_corners``) times ``theta``'s rows, ``x t00 + y t01 +
    t02`` and ``x t10 + y t11 + t12`` with ``theta``'s entries broadcast over the image."""
    size = [int(v) for v in b.val(arg(node, 1, "size"))]
    if len(size) != 4:
        raise UnsupportedOp(target_name(node, b.gm), node.name, f"size {size} (4-D only)")
    align = bool(b.val(arg(node, 2, "align_corners", None)) or False)
    n, _, h, w = size
    theta = _as_float(b, b.tensor_arg(node.args[0]))

    def axis(count: int) -> np.ndarray:
        steps = np.linspace(-1.0, 1.0, count, dtype=np.float32)
        return steps if align or count == 1 else steps * np.float32((count - 1) / count)

    xs = b.g.add_const(np.broadcast_to(axis(w)[None, None, :], (1, h, w)).copy(), "grid_x")
    ys = b.g.add_const(np.broadcast_to(axis(h)[None, :, None], (1, h, w)).copy(), "grid_y")
    plane = meta_like((n, h, w))
    flat_theta = b.reshape(theta, meta_like((n, 6)))
    coordinates = []
    for row in (0, 1):
        entries = []
        for col in (0, 1, 2):
            flat = row * 3 + col
            t = b.emit(
                "slice",
                [flat_theta],
                {"dim": 1, "start": flat, "stop": flat + 1, "step": 1},
                meta_like((n, 1)),
            )
            entries.append(b.reshape(t, meta_like((n, 1, 1))))
        value = b.emit("mul", [xs, entries[0]], {}, plane)
        value = b.emit("add", [value, b.emit("mul", [ys, entries[1]], {}, plane)], {}, plane)
        value = b.emit("add", [value, entries[2]], {}, plane)
        coordinates.append(b.reshape(value, meta_like((n, h, w, 1))))
    return b.emit("cat", coordinates, {"dim": 3}, out)


def _median(b: FxBuilder, node: torch.fx.Node, out: Any) -> Any:
    """``torch.median(x)`` (the lower median of every element, a 0-d value) and
    ``torch.median(x, dim, keepdim)`` (values and indices): the ``(n + 1) // 2``-th smallest
    (:func:`~.torch_more_ops.kth_smallest`, as ``kthvalue``); a slice holding a NaN gives NaN
    and the first NaN's position, as PyTorch's."""
    x = b.tensor_arg(node.args[0])
    if b.g.values[x].dtype != "float32" or x in b.bools:
        raise UnsupportedOp(target_name(node, b.gm), node.name, "a non-float32 tensor")
    shape = b.shape(x)
    dim = b.val(arg(node, 1, "dim"))
    whole = dim is None
    if whole:
        count = int(np.prod(shape, dtype=np.int64))
        x, shape, dim = b.reshape(x, meta_like((count,))), (count,), 0
    d = int(dim) % len(shape)
    keepdim = bool(b.val(arg(node, 2, "keepdim", False)))
    kept = [1 if i == d else n for i, n in enumerate(shape)]
    value, index = kth_smallest(b, node, x, d, (shape[d] + 1) // 2)
    like = meta_like(shape)
    missing = b.emit("ne", [x, x], {}, like)  # IEEE: true only for a NaN
    has_nan = b.emit("amax", [missing], {"dims": (d,), "keepdim": True}, meta_like(kept))
    value = _select(b, has_nan, float("nan"), value, meta_like(kept))
    first_nan = b.emit(
        "argmax", [missing], {"dim": d, "keepdim": True}, meta_like(kept, torch.int64)
    )
    flag = b.emit("to_int", [has_nan], {}, meta_like(kept, torch.int64))
    step = b.emit(
        "mul",
        [flag, b.emit("sub", [first_nan, index], {}, meta_like(kept, torch.int64))],
        {},
        meta_like(kept, torch.int64),
    )
    index = b.emit("add", [index, step], {}, meta_like(kept, torch.int64))
    if whole:
        return b.reshape(value, out)
    final = kept if keepdim else [n for i, n in enumerate(shape) if i != d]
    return _ValuesIndices(
        (b.reshape(value, meta_like(final)), b.reshape(index, meta_like(final, torch.int64)))
    )


def _local_response_norm(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1)`` / ``nn.LocalResponseNorm``
    (Krizhevsky et al. 2012, Sec. 3.3) as PyTorch computes it: ``x / (k + alpha avg)^beta``,
    ``avg`` the mean of ``x^2`` over the channels ``c - size // 2 .. c + (size - 1) // 2``
    (zeros beyond the ends, counted): the squares viewed as ``(N, 1, C, rest)``, padded along
    the channels and average-pooled by a ``(size, 1)`` window."""
    if node.op == "call_module":
        mod = _module(node, b)
        size, alpha, beta, k = mod.size, mod.alpha, mod.beta, mod.k
    else:
        size = b.val(arg(node, 1, "size"))
        alpha, beta = b.val(arg(node, 2, "alpha", 1e-4)), b.val(arg(node, 3, "beta", 0.75))
        k = b.val(arg(node, 4, "k", 1.0))
    x = b.tensor_arg(node.args[0])
    shape = b.shape(x)
    if len(shape) < 3:
        raise UnsupportedOp(target_name(node, b.gm), node.name, f"a {len(shape)}-D input")
    n, channels = shape[0], shape[1]
    rest = int(np.prod(shape[2:], dtype=np.int64))
    size = int(size)
    squares = b.emit("mul", [x, x], {}, meta_like(shape))
    grid = b.reshape(squares, meta_like((n, 1, channels, rest)))
    padded = constant_pad(
        b, grid, (0, 0, size // 2, (size - 1) // 2), 0.0, "local_response_norm", node.name
    )
    options = {"ceil_mode": False, "count_include_pad": True}
    like = meta_like((n, 1, channels, rest))
    mean = b.pool("avg_pool2d", padded, (size, 1), (1, 1), (0, 0), node, like, options)
    mean = b.reshape(mean, meta_like(shape))
    scale = b.emit(
        "add",
        [
            b.emit("mul", [mean, _scalar(b, float(alpha))], {}, meta_like(shape)),
            _scalar(b, float(k)),
        ],
        {},
        meta_like(shape),
    )
    scale = b.emit("pow", [scale, _scalar(b, float(beta))], {}, meta_like(shape))
    return b.emit("div", [x, scale], {}, out)


#: the largest ``rows x length x length`` comparison table ``cummax`` / ``cummin`` build
RUNNING_EXTREME_LIMIT = 1 << 24


def _running_extreme(op: str) -> Handler:
    """``torch.cummax`` / ``cummin(x, dim)`` (values and indices), as a table rather than a
    scan: entry ``(i, j)`` holds ``x_j`` for ``j <= i`` (else -inf / +inf), its ``amax`` /
    ``amin`` over ``j`` is the running extreme (a NaN propagates); the index is the last ``j
    <= i`` where ``x_j`` equals it or is NaN, PyTorch's rule (ties move to the later position,
    and after a NaN to the latest NaN). O(length^2) work and memory: a table beyond
    :data:`RUNNING_EXTREME_LIMIT` elements is refused."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: Any) -> Any:
        name = target_name(node, b.gm)
        x = b.tensor_arg(node.args[0])
        if b.g.values[x].dtype != "float32" or x in b.bools:
            raise UnsupportedOp(name, node.name, "a non-float32 tensor")
        shape = b.shape(x)
        d = int(b.val(arg(node, 1, "dim"))) % len(shape)
        length = shape[d]
        order = [i for i in range(len(shape)) if i != d] + [d]
        moved = [shape[i] for i in order]
        rows = int(np.prod(moved[:-1], dtype=np.int64))
        if rows * length * length > RUNNING_EXTREME_LIMIT:
            why = f"a {rows} x {length} x {length} comparison table (at most 2^24 elements)"
            raise UnsupportedOp(name, node.name, why)
        last = (
            b.emit("permute", [x], {"perm": tuple(order)}, meta_like(moved))
            if order != list(range(len(shape)))
            else x
        )
        table_shape = (*moved, length)
        table = meta_like(table_shape)
        columns = b.reshape(last, meta_like((*moved[:-1], 1, length)))
        before = b.g.add_const(np.tril(np.ones((length, length), dtype=np.float32)), "lower")
        fill = -np.inf if op == "amax" else np.inf
        entries = _select(b, before, columns, float(fill), table)
        values = b.emit(op, [entries], {"dims": (len(moved),), "keepdim": False}, meta_like(moved))
        equal = b.emit("eq", [columns, b.reshape(values, meta_like((*moved, 1)))], {}, table)
        missing = b.emit("ne", [columns, columns], {}, meta_like((*moved[:-1], 1, length)))
        hit = b.emit(
            "keep_where", [before, b.emit("maximum", [equal, missing], {}, table)], {}, table
        )
        positions = b.g.add_const(np.arange(length, dtype=np.float32), "positions")
        where = _select(b, hit, positions, -1.0, table)
        latest = b.emit(
            "amax", [where], {"dims": (len(moved),), "keepdim": False}, meta_like(moved)
        )
        indices = b.emit("to_int", [latest], {}, meta_like(moved, torch.int64))
        back = tuple(order.index(i) for i in range(len(shape)))
        if order != list(range(len(shape))):
            values = b.emit("permute", [values], {"perm": back}, meta_like(shape))
            indices = b.emit("permute", [indices], {"perm": back}, meta_like(shape, torch.int64))
        return _ValuesIndices((values, indices))

    return handle


# -- stop 70: a probe's refusals ------------------------------------------------------------------
def _clamp_side(side: str) -> Handler:
    """``torch.clamp_min(x, min)`` / ``x.clamp_min`` and ``clamp_max``: a clamp with the one
    bound (``torch.clamp``'s handler)."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        bound = arg(node, 1, side)
        low, high = (bound, None) if side == "min" else (None, bound)
        return _bounded(b, node, low, high, out)

    return handle


def _logit(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.logit(x, eps=None)`` / ``x.logit`` / ``torch.special.logit``: ``log(z / (1 -
    z))`` with ``z = clamp(x, eps, 1 - eps)`` where ``eps`` is given (PyTorch's form)."""
    x = _as_float(b, b.tensor_arg(node.args[0]))
    like = meta_like(b.shape(x))
    eps = b.val(arg(node, 1, "eps"))
    if eps is not None:
        x = b.emit("maximum", [x, _scalar(b, float(eps))], {}, like)
        x = b.emit("minimum", [x, _scalar(b, 1.0 - float(eps))], {}, like)
    odds = b.emit("div", [x, b.emit("sub", [_scalar(b, 1.0), x], {}, like)], {}, like)
    return b.emit("log", [odds], {}, out)


def _signbit(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.signbit(x)`` / ``x.signbit``: whether the sign bit is set (``-0.0`` and a
    negative NaN too): ``copysign(1, x) < 0``, a boolean mask (an int64 ``x``: ``x < 0``)."""
    x = b.tensor_arg(node.args[0])
    like = meta_like(b.shape(x))
    if b.g.values[x].dtype != "int64":
        x = b.emit("copysign", [_scalar(b, 1.0), x], {}, like)
    name = b.emit("lt", [x, _scalar(b, 0.0)], {}, like)
    b.bools.add(name)
    return name


def _aminmax(b: FxBuilder, node: torch.fx.Node, out: Any) -> _MinMax:
    """``torch.aminmax(x, *, dim=None, keepdim=False)`` / ``x.aminmax``: ``(amin, amax)``
    over ``dim`` (every dim where None), read by index or as ``.min`` / ``.max``."""
    dim, keepdim = arg(node, 1, "dim"), arg(node, 2, "keepdim", False)
    low = b.reduce("amin", node.args[0], dim, keepdim, out[0])
    return _MinMax((low, b.reduce("amax", node.args[0], dim, keepdim, out[1])))


def _xlogy(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.xlogy(x, y)`` / ``x.xlogy`` / ``torch.special.xlogy``: ``x log(y)``, 0 where
    ``x == 0``, NaN where ``y`` is NaN (PyTorch's order of the two cases)."""
    x, y = (_float_operand(b, v) for v in (node.args[0], arg(node, 1, "other")))
    like = _shape_of(b, x, y)
    product = b.emit("mul", [x, b.emit("log", [y], {}, meta_like(b.shape(y)))], {}, like)
    x_zero = b.emit("eq", [x, _scalar(b, 0.0)], {}, meta_like(b.shape(x)))
    kept = b.emit("keep_where_not", [x_zero, product], {}, like)
    y_nan = b.emit("ne", [y, y], {}, meta_like(b.shape(y)))
    return _select(b, y_nan, y, kept, out)


#: calls that are both ``torch.<name>`` and ``Tensor.<name>``
BOTH: dict[str, Handler] = {
    "xlogy": _xlogy,
    "clamp_min": _clamp_side("min"),
    "clamp_max": _clamp_side("max"),
    "logit": _logit,
    "signbit": _signbit,
    "aminmax": _aminmax,
    "lerp": _lerp,
    "addcmul": _addc("mul"),
    "addcdiv": _addc("div"),
    "hypot": _libm_binary("hypot"),
    "copysign": _libm_binary("copysign"),
    "logaddexp": _logaddexp,
    "frac": _frac,
    "sinc": _sinc,
    "prod": _prod,
    "any": _any_all("amax"),
    "all": _any_all("amin"),
    "count_nonzero": _count_nonzero,
    "nanmean": _nanmean,
    "nansum": _nansum,
    "median": _median,
    "cummax": _running_extreme("amax"),
    "cummin": _running_extreme("amin"),
}
#: ``(F.<function>, the name fx may record it by, nn.<Module>, handler)``; ``None`` where
#: there is none
LAYERS: tuple[tuple[Any, str | None, type | None, Handler], ...] = (
    (F.rms_norm, "rms_norm", None, _rms_norm),
    (None, None, nn.RMSNorm, _rms_norm_module),
    (F.selu, "selu", nn.SELU, _selu),
    (F.celu, "celu", nn.CELU, _celu),
    (F.logsigmoid, "log_sigmoid", nn.LogSigmoid, _logsigmoid),
    (F.softsign, None, nn.Softsign, _softsign),
    (F.tanhshrink, None, nn.Tanhshrink, _tanhshrink),
    (F.hardshrink, "hardshrink", nn.Hardshrink, _shrink(soft=False)),
    (F.softshrink, "softshrink", nn.Softshrink, _shrink(soft=True)),
    (F.threshold, "_threshold", nn.Threshold, _threshold),
    (None, "threshold", None, _threshold),  # the name under TorchDynamo's export
    (F.softmin, None, nn.Softmin, _softmin),
    (F.rrelu, None, nn.RReLU, _rrelu),
    (F.pairwise_distance, "pairwise_distance", nn.PairwiseDistance, _pairwise_distance),
    (F.lp_pool1d, None, nn.LPPool1d, _lp_pool(1)),
    (F.local_response_norm, "local_response_norm", nn.LocalResponseNorm, _local_response_norm),
    (F.lp_pool2d, None, nn.LPPool2d, _lp_pool(2)),
    (F.dropout, None, None, _inference_dropout(training_by_default=True)),
    (F.alpha_dropout, None, nn.AlphaDropout, _inference_dropout(training_by_default=False)),
    (F.feature_alpha_dropout, None, nn.FeatureAlphaDropout, _inference_dropout(False)),
    (F.dropout1d, None, nn.Dropout1d, _inference_dropout(training_by_default=True)),
    (F.dropout2d, None, nn.Dropout2d, _inference_dropout(training_by_default=True)),
    (F.dropout3d, None, nn.Dropout3d, _inference_dropout(training_by_default=True)),
)
COMMON_FUNCTIONS: dict[Any, Handler] = {
    **{getattr(torch, name): handler for name, handler in BOTH.items()},
    torch.special.logit: _logit,
    torch.special.xlogy: _xlogy,
    **{function: handler for function, _, _, handler in LAYERS if function is not None},
    torch.special.sinc: _sinc,
    torch.bucketize: _bucketize,
    F.grid_sample: _grid_sample,
    F.affine_grid: _affine_grid,
    torch.searchsorted: _searchsorted,
}
#: functions fx records under another callable than the one ``F`` exports
COMMON_FUNCTION_NAMES: dict[str, Handler] = {
    name: handler for _, name, _, handler in LAYERS if name is not None
}
COMMON_METHODS: dict[str, Handler] = dict(BOTH)
#: a module in inference is its function with the module's settings (each handler reads them)
COMMON_MODULES: dict[type, Handler] = {
    module: handler for _, _, module, handler in LAYERS if module is not None
}
#: handlers that take boolean masks
COMMON_BOOL: tuple[Handler, ...] = (BOTH["any"], BOTH["all"], BOTH["count_nonzero"])
