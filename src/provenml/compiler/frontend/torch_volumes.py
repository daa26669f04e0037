"""Volumes (video and volumetric models: C3D, I3D, R(2+1)D, 3-D U-Nets): 3-d convolution,
pooling and batch norm on ``(N, C, D, H, W)`` inputs, each composed from the IR's 2-d ops (no
new kernel).

* **Conv3d** (``nn.Conv3d``, ``F.conv3d``; ONNX ``Conv`` on rank 5 in :mod:`.onnx_volumes`):
  a depth im2col into channels and one conv2d, :func:`conv3d_by_depth_columns`:
  ``y[n, o, d] = sum_t conv2d(x[n, :, d*s + t*dil - p], W[:, :, t])``. The depth taps become
  input channels ``c*kd + t`` of an ``(N*Do, C*kd, H, W)`` tensor (one row gather by constant
  rows; zero padding in depth reads one zero row), the weight ``(Co, C/G, kd, kh, kw)`` is
  ``(Co, C/G*kd, kh, kw)`` (each group's channels stay contiguous), and the conv2d (any
  stride, padding, dilation and groups, :func:`~.common.lower_conv`) gives ``(N*Do, Co, Ho,
  Wo)``, permuted to ``(N, Co, Do, Ho, Wo)``. Padding: ints or triples, ``'valid'``,
  ``'same'`` (the odd pad at the end, as PyTorch), and the modules' ``reflect`` /
  ``replicate`` / ``circular`` padding modes (the mode's pad first, as PyTorch).
* **MaxPool3d / AvgPool3d** (modules and ``F.``): separable, the 2-d pool over ``(H, W)`` of
  the ``(N, C*D, H, W)`` view, then over ``(D, Ho*Wo)`` with a ``(kd, 1)`` window; both views
  are reshapes (no copy). A box window's max is the max of the maxima (a NaN propagates
  through both), its sum the sum of sums; without padding counted the divisor is the product
  of the per-axis counts, which each pass divides by; ``divisor_override`` rescales the
  padded-window average. ``ceil_mode`` with a partial last window since stop 73 (each pass
  extends its axis, as the 2-d pool does); no dilation, no ``return_indices`` (as the 2-d
  pool).
* **AdaptiveAvgPool3d / AdaptiveMaxPool3d**: to ``1x1x1`` one reduction over the three dims;
  else the 2-d adaptive pool over ``(H, W)`` and a reduction over equal depth windows (sizes
  that divide the input's).
* **BatchNorm3d** in inference: the IR's ``batch_norm`` (per-channel, rank-generic), as
  ``BatchNorm1d`` / ``2d``; ``F.batch_norm`` on 5-d inputs compiled already.

An unbatched ``(C, D, H, W)`` input is a batch of one. What these cannot map is refused by
name with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.fx
from torch import nn

from provenml.compiler.frontend.common import ConvOps, UnsupportedOp, lower_conv
from provenml.compiler.frontend.torch_fx import (
    FxBuilder,
    Handler,
    _batch_norm_module,
    _module,
    arg,
    conv_call,
    meta_like,
    mode_pad,
    pool_window,
    target_name,
)
from provenml.errors import ProvenmlError

__all__ = [
    "VOLUME_FUNCTION_NAMES",
    "VOLUME_MODULES",
    "conv3d_by_depth_columns",
    "separable_pool3d",
]

Triple = tuple[int, int, int]
#: a 2-d pool of ``(N, C, H, W)`` by ``kernel``, ``stride``, ``padding``; the last argument
#: is the result's shape
Pool2d = Callable[[str, tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, ...]], str]


# -- frontend-neutral lowerings (the ONNX frontend's rank-5 Conv / pools use them too) -------
def conv3d_by_depth_columns(
    x: str,
    w: str,
    bias: str | None,
    stride: Sequence[int],
    begin: Sequence[int],
    end: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    ops: ConvOps,
    add_const: Callable[[np.ndarray, str], str],
) -> str:
    """A 3-d convolution of ``x`` ``(N, C, D, H, W)`` by ``w`` ``(Co, C / groups, kd, kh,
    kw)``, zero-padded by ``begin`` / ``end`` per spatial dim (``ops``: the frontend's, as
    :func:`~.common.lower_conv` takes them; ``add_const(array, stem)``: its graph's constants,
    an int64 array kept int64), as a depth im2col into channels and one conv2d::

        y[n, o, d] = sum_t conv2d(x[n, :, d*sd + t*dd - pd], W[:, :, t])

    Row ``(n, d, c, t)`` of the columns is the ``(H, W)`` plane ``x[n, c, d*sd + t*dd - pd]``,
    or zeros where that depth is padding: one ``embedding`` gather by constant rows from ``x``
    viewed as ``(N*C*D, H*W)`` (one zero row appended when some tap reads padding). Viewed as
    ``(N*Do, C*kd, H, W)`` its channel ``c*kd + t`` pairs with the weight viewed as ``(Co,
    C/G*kd, kh, kw)``: group ``g``'s channels ``[g C/G kd, (g+1) C/G kd)`` stay contiguous, so
    the conv2d's groups are the 3-d convolution's. The conv2d (:func:`~.common.lower_conv`:
    dilation by space-to-batch, any groups) takes the ``(H, W)`` stride, dilation and the
    symmetric part of the padding (the rest is padded first); its ``(N*Do, Co, Ho, Wo)`` is
    permuted to ``(N, Co, Do, Ho, Wo)``. Copies: the gather (``kd Do / D`` times ``x``), the
    zero row's concatenation (``x`` once, only with depth padding) and the output permute
    (none when ``Do`` or ``Co`` is 1). ``ValueError`` when the kernel is larger than the
    padded input."""
    n, c, depth, height, width = (int(v) for v in ops.shape_of(x))
    co, per_group, kd, kh, kw = (int(v) for v in ops.shape_of(w))
    sd, dd = int(stride[0]), int(dilation[0])
    symmetric = [min(int(b), int(e)) for b, e in zip(begin[1:], end[1:], strict=True)]
    extra = [
        (int(b) - s, int(e) - s) for b, e, s in zip(begin[1:], end[1:], symmetric, strict=True)
    ]
    if any(p for pair in extra for p in pair):  # the asymmetric part of the (H, W) padding
        x = ops.pad(x, [(0, 0), *extra])
        height, width = (int(v) for v in ops.shape_of(x)[3:])
    span = dd * (kd - 1) + 1
    out_depth = (depth + int(begin[0]) + int(end[0]) - span) // sd + 1
    if out_depth < 1:
        raise ValueError(f"a depth kernel {kd} dilated by {dd} is larger than the padded input")
    taps = np.arange(out_depth)[:, None] * sd - int(begin[0]) + np.arange(kd)[None, :] * dd
    inside = (taps >= 0) & (taps < depth)  # (Do, kd)
    planes = np.arange(n * c, dtype=np.int64).reshape(n, 1, c, 1) * depth
    rows = np.where(inside[None, :, None, :], planes + taps[None, :, None, :], n * c * depth)
    plane = height * width
    table = ops.emit("reshape", [x], {"shape": (n * c * depth, plane)}, (n * c * depth, plane))
    if not inside.all():
        zeros = add_const(np.zeros((1, plane), np.float32), "depth_pad")
        table = ops.emit("cat", [table, zeros], {"dim": 0}, (n * c * depth + 1, plane))
    ids = add_const(np.ascontiguousarray(rows, dtype=np.int64), "depth_rows")
    columns = ops.emit("embedding", [table, ids], {}, (n, out_depth, c, kd, plane))
    shape = (n * out_depth, c * kd, height, width)
    columns = ops.emit("reshape", [columns], {"shape": shape}, shape)
    shape = (co, per_group * kd, kh, kw)
    w2 = ops.emit("reshape", [w], {"shape": shape}, shape)
    y = lower_conv(columns, w2, bias, stride[1:], symmetric, dilation[1:], groups, ops)
    ho, wo = (int(v) for v in ops.shape_of(y)[2:])
    shape = (n, out_depth, co, ho * wo)
    y = ops.emit("reshape", [y], {"shape": shape}, shape)
    if out_depth > 1 and co > 1:
        shape = (n, co, out_depth, ho * wo)
        y = ops.emit("permute", [y], {"perm": (0, 2, 1, 3)}, shape)
    shape = (n, co, out_depth, ho, wo)
    return ops.emit("reshape", [y], {"shape": shape}, shape)


def _skips(kernel: int, stride: int, padding: int) -> bool:
    """Whether a pool pass over one axis is the identity."""
    return (kernel, stride, padding) == (1, 1, 0)


def separable_pool3d(
    x: str,
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    out_size: Sequence[int],
    shape_of: Callable[[str], Sequence[int]],
    reshape: Callable[[str, tuple[int, ...]], str],
    pool2d: Pool2d,
) -> str:
    """A box-window 3-d pool of ``x`` ``(N, C, D, H, W)`` to ``out_size`` ``(Do, Ho, Wo)`` as
    two 2-d pools (``pool2d``: max, or average with its divisor rule): over ``(H, W)`` of the
    ``(N, C*D, H, W)`` view, then over ``(D, Ho*Wo)`` of the ``(N, C, D, Ho*Wo)`` view with a
    ``(kd, 1)`` window. Both views are reshapes; a pass that is the identity (kernel 1, stride
    1, no padding) is skipped."""
    n, c, depth, height, width = (int(v) for v in shape_of(x))
    od, oh, ow = (int(v) for v in out_size)
    (kd, kh, kw), (sd, sh, sw), (pd, ph, pw) = (
        tuple(int(v) for v in t) for t in (kernel, stride, padding)
    )
    y = x
    if not (_skips(kh, sh, ph) and _skips(kw, sw, pw)):
        planes = reshape(x, (n, c * depth, height, width))
        y = pool2d(planes, (kh, kw), (sh, sw), (ph, pw), (n, c * depth, oh, ow))
    if not _skips(kd, sd, pd):
        columns = reshape(y, (n, c, depth, oh * ow))
        y = pool2d(columns, (kd, 1), (sd, 1), (pd, 0), (n, c, od, oh * ow))
    return reshape(y, (n, c, od, oh, ow))


# -- the torch frontend ----------------------------------------------------------------------
def _refuse(b: FxBuilder, node: torch.fx.Node, why: str) -> UnsupportedOp:
    return UnsupportedOp(target_name(node, b.gm), node.name, why)


def _triple(value: Any) -> Triple:
    """An int or a sequence of three ints (a one-element sequence repeated)."""
    values = [int(value)] if isinstance(value, int) else [int(v) for v in value]
    if len(values) == 1:
        values *= 3
    return (values[0], values[1], values[2])


def _reshaper(b: FxBuilder) -> Callable[[str, tuple[int, ...]], str]:
    def reshape(x: str, shape: tuple[int, ...]) -> str:
        return x if b.shape(x) == tuple(shape) else b.reshape(x, meta_like(shape))

    return reshape


def _batched(b: FxBuilder, x: str) -> str:
    """An unbatched ``(C, D, H, W)`` input as a batch of one (PyTorch takes both)."""
    return x if len(b.shape(x)) == 5 else b.reshape(x, meta_like((1, *b.shape(x))))


def _unbatched(b: FxBuilder, y: str, out: torch.Tensor) -> str:
    """The result in the recorded shape (the batch of one dropped again), checked."""
    if int(np.prod(b.shape(y))) != out.numel() or b.shape(y)[-3:] != tuple(out.shape[-3:]):
        raise ProvenmlError(f"{b.current}: {b.shape(y)} != {tuple(out.shape)}")
    return y if b.shape(y) == tuple(out.shape) else b.reshape(y, out)


def _same_padding(kernel: Triple, dilation: Triple) -> tuple[Triple, Triple]:
    """``padding='same'`` per dim: ``dil (k - 1)`` in all, the odd one at the end (PyTorch's
    ``_convolution_mode``)."""
    totals = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
    return _triple([t // 2 for t in totals]), _triple([t - t // 2 for t in totals])


def conv3d(
    b: FxBuilder,
    node: torch.fx.Node,
    ins: list[str],
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
    out: torch.Tensor,
) -> str:
    """``F.conv3d`` / ``nn.Conv3d``: :func:`conv3d_by_depth_columns` (``ins``: input, weight
    and the bias if any; padding ints, a triple, ``'valid'`` or ``'same'``)."""
    x, w, *bias = ins
    if len(b.shape(x)) not in (4, 5):
        raise _refuse(b, node, f"a rank-{len(b.shape(x))} input (conv3d takes 4-d or 5-d)")
    kernel = _triple(b.shape(w)[2:])
    dil = _triple(b.val(dilation))
    pads = b.val(padding)
    if isinstance(pads, str):
        if pads not in ("valid", "same"):
            raise _refuse(b, node, f"padding={pads!r} (only 'valid', 'same' or integers)")
        begin, end = ((0, 0, 0), (0, 0, 0)) if pads == "valid" else _same_padding(kernel, dil)
    else:
        begin = end = _triple(pads)
    try:
        y = conv3d_by_depth_columns(
            _batched(b, x),
            w,
            bias[0] if bias else None,
            _triple(b.val(stride)),
            begin,
            end,
            dil,
            int(b.val(groups)),
            b._conv_ops(),
            b.g.add_const,
        )
    except ValueError as exc:
        raise _refuse(b, node, str(exc)) from exc
    return _unbatched(b, y, out)


def _conv3d(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.conv3d(x, weight, bias, stride, padding, dilation, groups)``."""
    ins, settings = conv_call(b, node)
    return conv3d(b, node, ins, *settings, out)


def _conv3d_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``nn.Conv3d``: its ``reflect`` / ``replicate`` / ``circular`` padding modes as the
    mode's pad first and no padding in the convolution (as PyTorch's ``_conv_forward``)."""
    mod = _module(node, b)
    assert isinstance(mod, nn.Conv3d)
    x = b.tensor_arg(node.args[0])
    padding: Any = mod.padding
    if mod.padding_mode != "zeros":
        pads = list(mod._reversed_padding_repeated_twice)
        x = mode_pad(b, x, pads, mod.padding_mode, "Conv3d", node.name)
        padding = 0
    ins = [x, b.const(mod.weight, "w")]
    if mod.bias is not None:
        ins.append(b.const(mod.bias, "b"))
    return conv3d(b, node, ins, mod.stride, padding, mod.dilation, mod.groups, out)


def pool3d(
    b: FxBuilder,
    node: torch.fx.Node,
    op: str,
    x: Any,
    kernel: Any,
    stride: Any,
    padding: Any,
    options: dict[str, Any],
    out: torch.Tensor,
) -> str:
    """``max_pool3d`` / ``avg_pool3d`` (``op``: the IR's ``max_pool2d`` / ``avg_pool2d``) by
    :func:`separable_pool3d`, each pass :meth:`FxBuilder.pool` (so its ``ceil_mode`` rule and
    border divisors hold per axis). ``options``: ``ceil_mode``, ``dilation``,
    ``return_indices``, ``count_include_pad``, ``divisor_override`` (absent: the defaults)."""
    if any(d != 1 for d in _triple(options.get("dilation") or 1)):
        raise _refuse(b, node, f"dilation={options['dilation']}")
    if options.get("return_indices"):
        raise _refuse(b, node, "return_indices=True")
    xin = b.tensor_arg(x)
    if len(b.shape(xin)) not in (4, 5):
        raise _refuse(b, node, f"a rank-{len(b.shape(xin))} input (3-d pooling takes 4-d or 5-d)")
    k = _triple(b.val(kernel))
    step = b.val(stride)
    s = k if step in (None, (), []) else _triple(step)  # ([]: torch.export, the kernel)
    divisor = options.get("divisor_override")
    ceil = bool(options.get("ceil_mode"))
    if op == "max_pool2d":
        passes: dict[str, Any] = {"ceil_mode": ceil, "dilation": None, "return_indices": False}
    else:  # with divisor_override: the padded-window average, rescaled at the end
        include = True if divisor else options.get("count_include_pad", True)
        passes = {"ceil_mode": ceil, "count_include_pad": include, "divisor_override": None}

    def pool2d(
        planes: str,
        kernel2: tuple[int, int],
        stride2: tuple[int, int],
        padding2: tuple[int, int],
        shape: tuple[int, ...],
    ) -> str:
        try:
            return b.pool(op, planes, kernel2, stride2, padding2, node, meta_like(shape), passes)
        except UnsupportedOp as refused:  # named as the user wrote it
            raise _refuse(b, node, refused.why) from None

    xb = _batched(b, xin)
    batch_out = tuple(out.shape) if len(out.shape) == 5 else (1, *out.shape)
    y = separable_pool3d(
        xb, k, s, _triple(b.val(padding)), batch_out[2:], b.shape, _reshaper(b), pool2d
    )
    if divisor:
        factor = b.const(np.float32(float(np.prod(k)) / float(divisor)), "pool")
        y = b.emit("mul", [y, factor], {}, meta_like(b.shape(y)))
    return _unbatched(b, y, out)


def _pool3d(op: str) -> Handler:
    """``F.max_pool3d(x, k, stride, padding, dilation, ceil_mode, return_indices)`` /
    ``F.avg_pool3d(x, k, stride, padding, ceil_mode, count_include_pad, divisor_override)``."""
    names = (
        ("dilation", "ceil_mode", "return_indices")
        if op == "max_pool2d"
        else ("ceil_mode", "count_include_pad", "divisor_override")
    )

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        options = {name: b.val(arg(node, 4 + i, name)) for i, name in enumerate(names)}
        options = {key: value for key, value in options.items() if value is not None}
        return pool3d(b, node, op, node.args[0], *pool_window(node), options, out)

    return handle


def _pool3d_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``nn.MaxPool3d`` / ``nn.AvgPool3d``: :func:`pool3d` with the module's settings."""
    mod = _module(node, b)
    assert isinstance(mod, (nn.MaxPool3d, nn.AvgPool3d))
    op = "max_pool2d" if isinstance(mod, nn.MaxPool3d) else "avg_pool2d"
    keys = ("ceil_mode", "dilation", "return_indices", "count_include_pad", "divisor_override")
    options = {key: getattr(mod, key) for key in keys if hasattr(mod, key)}
    return pool3d(b, node, op, node.args[0], mod.kernel_size, mod.stride, mod.padding, options, out)


def _with_indices(b: FxBuilder, node: torch.fx.Node, out: Any) -> str:
    """``F.max_pool3d`` / ``F.adaptive_max_pool3d`` with ``return_indices=True`` (fx records
    them as ``*_with_indices``): the indices are refused."""
    raise _refuse(b, node, "return_indices=True (the argmax positions are not computed)")


def adaptive3d(
    b: FxBuilder, node: torch.fx.Node, x: Any, size: Any, op: str, out: torch.Tensor
) -> str:
    """Adaptive average (``op="mean"``) or max (``"amax"``) 3-d pooling: to ``1x1x1`` one
    reduction over ``(D, H, W)``; else :meth:`FxBuilder.adaptive` over ``(H, W)`` (skipped
    where the size is kept), then equal depth windows reduced (``(N, C, Do, k, Ho*Wo)``,
    reduced over ``k``: no copy). Sizes must divide the input's (PyTorch's windows then do
    not overlap); others are refused."""
    xin = _batched(b, b.tensor_arg(x))
    n, c, depth, height, width = b.shape(xin)
    wanted = (size, size, size) if size is None or isinstance(size, int) else tuple(size)
    od, oh, ow = (
        full if s is None else int(s)
        for s, full in zip(wanted, (depth, height, width), strict=True)
    )
    if (od, oh, ow) == (1, 1, 1):
        y = b.emit(op, [xin], {"dims": (2, 3, 4), "keepdim": True}, meta_like((n, c, 1, 1, 1)))
        return _unbatched(b, y, out)
    if depth % od or height % oh or width % ow:
        why = f"output size {(od, oh, ow)} that does not divide {(depth, height, width)}"
        raise _refuse(b, node, why)
    y = xin
    if (oh, ow) != (height, width):
        try:
            y = b.adaptive(xin, (oh, ow), meta_like((n, c, depth, oh, ow)), op)
        except UnsupportedOp as refused:
            raise _refuse(b, node, refused.why) from None
    if od != depth:
        windows = b.reshape(y, meta_like((n, c, od, depth // od, oh * ow)))
        y = b.emit(op, [windows], {"dims": (3,), "keepdim": False}, meta_like((n, c, od, oh * ow)))
    y = y if b.shape(y) == (n, c, od, oh, ow) else b.reshape(y, meta_like((n, c, od, oh, ow)))
    return _unbatched(b, y, out)


def _adaptive3d(op: str) -> Handler:
    """``F.adaptive_avg_pool3d(x, size)`` / ``F.adaptive_max_pool3d(x, size, return_indices)``
    and ``nn.AdaptiveAvgPool3d`` / ``nn.AdaptiveMaxPool3d``."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: Any) -> str:
        if node.op == "call_module":
            mod = _module(node, b)
            size, indices = mod.output_size, getattr(mod, "return_indices", False)
        else:
            size = b.val(arg(node, 1, "output_size"))
            indices = b.val(arg(node, 2, "return_indices", False))
        if indices:
            raise _refuse(b, node, "return_indices=True (the argmax positions are not computed)")
        return adaptive3d(b, node, node.args[0], size, op, out)

    return handle


#: ``(the name fx records the F. function by, nn.<Module>, handler)``
LAYERS: tuple[tuple[str | None, type | None, Handler], ...] = (
    ("conv3d", None, _conv3d),
    (None, nn.Conv3d, _conv3d_module),
    ("max_pool3d", None, _pool3d("max_pool2d")),
    ("avg_pool3d", None, _pool3d("avg_pool2d")),
    (None, nn.MaxPool3d, _pool3d_module),
    (None, nn.AvgPool3d, _pool3d_module),
    ("max_pool3d_with_indices", None, _with_indices),
    ("adaptive_max_pool3d_with_indices", None, _with_indices),
    ("adaptive_avg_pool3d", nn.AdaptiveAvgPool3d, _adaptive3d("mean")),
    ("adaptive_max_pool3d", nn.AdaptiveMaxPool3d, _adaptive3d("amax")),
    (None, nn.BatchNorm3d, _batch_norm_module),
)
#: functions by the name fx records them by (``F.conv3d`` is the builtin ``torch.conv3d``;
#: ``F.max_pool3d`` a dispatcher named ``max_pool3d``); no method or call by object is needed
VOLUME_FUNCTION_NAMES: dict[str, Handler] = {
    name: handler for name, _, handler in LAYERS if name is not None
}
VOLUME_MODULES: dict[type, Handler] = {
    module: handler for _, module, handler in LAYERS if module is not None
}
