"""Rank-5 (volumetric) ONNX Conv, MaxPool and AveragePool for the ONNX frontend, from the IR's
2-d ops as :mod:`.torch_volumes` composes them for PyTorch's Conv3d and 3-d pools.

Each handler wraps the table's existing one: an input of rank 5 is lowered here, any other
goes to the existing handler unchanged (:func:`volume_onnx_ops`).

* **Conv** with 3 spatial dims: a depth im2col into channels and one conv2d
  (:func:`~.torch_volumes.conv3d_by_depth_columns`); any ``group``, ``dilations``,
  ``strides``, ``pads`` (asymmetric too) and ``auto_pad`` (``SAME_UPPER`` / ``SAME_LOWER`` /
  ``VALID``), as the 2-d Conv.
* **MaxPool / AveragePool** on ``(N, C, D, H, W)``: the 2-d pool over ``(H, W)``, then over
  depth with a ``(kd, 1)`` window (:func:`~.torch_volumes.separable_pool3d`); AveragePool's
  ``count_include_pad=0`` (the default) divides each pass by its window's count inside the
  input, so the whole by their product, the box's count. ``ceil_mode`` (a partial last
  window since stop 73: each pass extends its axes past their end); dilations,
  MaxPool's ``Indices`` output, ``auto_pad`` ``SAME_*`` and
  asymmetric pads are refused by name.

GlobalAveragePool / GlobalMaxPool (a reduction over every spatial dim) and
BatchNormalization (per channel) already take rank-5 inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from provenml.compiler.frontend.common import (
    UnsupportedOp,
    avg_pool_rescale,
    ceil_extension,
    ceil_pool_sizes,
    conv_output_size,
    pool_fill,
)
from provenml.compiler.frontend.onnx import (
    OnnxBuilder,
    OnnxHandler,
    _constant_pad,
    _conv_ops,
    _conv_pads,
    _pads,
    attrs_of,
)
from provenml.compiler.frontend.torch_volumes import conv3d_by_depth_columns, separable_pool3d

if TYPE_CHECKING:
    import onnx

__all__ = ["volume_onnx_ops"]


def _rank(b: OnnxBuilder, node: onnx.NodeProto) -> int:
    return len(b.g.values[b.tensor(node.input[0])].shape)


def _conv3d(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Conv of an ``(N, C, D, H, W)`` input: :func:`~.torch_volumes.conv3d_by_depth_columns`
    with the node's ``pads`` (or ``auto_pad``), ``strides``, ``dilations`` and ``group``."""
    at = attrs_of(node)
    x, w = b.tensor(node.input[0]), b.tensor(node.input[1])
    xs, ws = b.g.values[x].shape, b.g.values[w].shape
    if len(ws) != 5:
        raise UnsupportedOp("Conv", b.current, f"a rank-{len(ws)} weight for a 3-d convolution")
    dilation = tuple(int(d) for d in at.get("dilations", [1, 1, 1]))
    strides = tuple(int(s) for s in at.get("strides", [1, 1, 1]))
    begin, end = _conv_pads(at, xs[2:], ws[2:], strides, dilation)
    group = int(at.get("group", 1))
    if xs[1] % group or ws[1] * group != xs[1]:
        raise UnsupportedOp("Conv", b.current, f"group={group} for {xs[1]} input channels")
    bias = b.tensor(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    try:
        y = conv3d_by_depth_columns(
            x,
            w,
            bias,
            strides,
            begin,
            end,
            dilation,
            group,
            _conv_ops(b),
            b.g.add_const,
        )
    except ValueError as exc:
        raise UnsupportedOp("Conv", b.current, str(exc)) from exc
    return [y]


def _pool3d(op: str, b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """MaxPool (``op="max_pool2d"``) / AveragePool (``"avg_pool2d"``) of an ``(N, C, D, H,
    W)`` input by :func:`~.torch_volumes.separable_pool3d`."""
    at = attrs_of(node)
    if any(int(d) != 1 for d in at.get("dilations", [1, 1, 1])):
        raise UnsupportedOp(node.op_type, b.current, f"dilations {list(at['dilations'])}")
    if len(node.output) > 1 and node.output[1]:
        raise UnsupportedOp(node.op_type, b.current, "the Indices output")
    x = b.tensor(node.input[0])
    shape = b.g.values[x].shape
    pads = _pads(node, at, 3)
    kernel = tuple(int(k) for k in at["kernel_shape"])
    stride = tuple(int(s) for s in at.get("strides", [1, 1, 1]))
    sizes = [
        conv_output_size(v, k, s, p, 1)
        for v, k, s, p in zip(shape[2:], kernel, stride, pads, strict=True)
    ]
    if at.get("ceil_mode", 0):
        # (stop 73; a partial last window was refused) each pass extends its axes past
        # their end to reach the ceiling's sizes, as the 2-d pool does
        sizes, _ = ceil_pool_sizes(shape[2:], kernel, stride, pads)
    include = bool(at.get("count_include_pad", 0))

    def pool2d(
        planes: str,
        kernel2: tuple[int, int],
        stride2: tuple[int, int],
        padding2: tuple[int, int],
        out_shape: tuple[int, ...],
    ) -> str:
        size = b.g.values[planes].shape[2:]
        outputs = out_shape[2:]
        extra = ceil_extension(outputs, size, kernel2, stride2, padding2)
        if any(extra):
            pads4 = [(0, 0), (0, 0), *((0, e) for e in extra)]
            planes = _constant_pad(b, planes, pads4, pool_fill(op))
        y = b.emit(op, [planes], {"kernel": kernel2, "stride": stride2, "padding": padding2})
        if op != "avg_pool2d":
            return y
        rescale = avg_pool_rescale(size, kernel2, stride2, padding2, include, None, outputs)
        return y if rescale is None else b.emit("mul", [y, b.g.add_const(rescale, "pool")])

    y = separable_pool3d(
        x, kernel, stride, pads, sizes, lambda v: b.g.values[v].shape, b.reshape, pool2d
    )
    return [y]


def _volumes(existing: OnnxHandler, volume: OnnxHandler) -> OnnxHandler:
    """``volume`` for a rank-5 input, else ``existing`` unchanged."""

    def handle(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
        return volume(b, node) if _rank(b, node) == 5 else existing(b, node)

    handle.__doc__ = f"{volume.__doc__}\n\nOther ranks: {existing.__doc__}"
    return handle


def _max_pool3d(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """MaxPool of an ``(N, C, D, H, W)`` input (NaN propagates, as in the 2-d pool)."""
    return _pool3d("max_pool2d", b, node)


def _average_pool3d(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """AveragePool of an ``(N, C, D, H, W)`` input."""
    return _pool3d("avg_pool2d", b, node)


def volume_onnx_ops(table: Mapping[str, OnnxHandler]) -> dict[str, OnnxHandler]:
    """Conv, MaxPool and AveragePool handlers that take rank-5 inputs and pass every other to
    ``table``'s handler (the table as registered so far)."""
    volumes = {"Conv": _conv3d, "MaxPool": _max_pool3d, "AveragePool": _average_pool3d}
    return {op: _volumes(table[op], handler) for op, handler in volumes.items()}
