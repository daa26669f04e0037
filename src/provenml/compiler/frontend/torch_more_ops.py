"""More of PyTorch's ops for the torch frontend, each composed from IR ops that already exist
(no new kernel): what a probe of common layers and functions found refused at stop 59.

* **Rearrangements** (exact copies): ``flip`` and ``roll`` as a row gather (the IR's
  ``embedding``) by constant positions, rows as wide as the dims after the last one moved;
  ``pixel_shuffle`` / ``pixel_unshuffle`` (Shi et al. 2016, ESPCN) as reshape, permute,
  reshape.
* **Masks**: ``tril`` / ``triu`` (``keep_where`` by a constant triangle); ``F.one_hot`` (int64
  ids compared with the classes' ``arange``).
* **Activations**: ``mish`` (Misra 2019: ``x tanh(softplus(x))``), ``glu`` (Dauphin et al.
  2017: ``a sigmoid(b)`` of the two halves), ``prelu`` (He et al. 2015: ``x`` where ``x > 0``,
  else ``w x``, ``w`` per channel of dim 1); ``softplus`` at any ``beta`` / ``threshold`` is
  in :func:`~.torch_fx._softplus_op`.
* **Reductions**: ``logsumexp`` (``m + log(sum(exp(x - m)))``, ``m`` the max, for finite
  inputs), ``var_mean`` / ``std_mean``, ``F.cosine_similarity`` (each side divided by its norm
  clamped to ``eps``, then the dot product), ``torch.linalg.matrix_norm`` / ``linalg.norm``
  (Frobenius and the vector orders of :data:`~.torch_fx.NORM_ORDERS`).
* **Scatters** (message passing): ``index_add`` and ``scatter_add`` / ``scatter_reduce``
  (sum, mean, amax, amin; ``include_self`` either way), their in-place forms where the result
  is what is used, through the IR's ``scatter`` (stop 59's one new op: rows combined in
  order); ``index_select`` as a gather.
* **More maths**: ``cumprod`` and (stop 62) ``logcumsumexp`` (the IR's scans, in double),
  ``atan2``, ``torch.cdist`` (p 1, 2, inf, from the differences).
* **Maths** (stop 66): ``sin``, ``cos``, ``tan``, their inverses and hyperbolic forms,
  ``log1p``, ``expm1``, ``log2``, ``log10``, ``exp2``, ``erf``, ``erfc``, ``lgamma`` (as
  functions, methods, in-place methods and ``torch.special`` aliases; the IR's
  ``MATH_UNARY``, one libm call per element), and ``reciprocal`` (a division);
  ``zeros_like`` / ``ones_like`` / ``full_like`` (constants of the traced shape);
  ``isnan`` / ``isinf`` / ``isfinite`` (boolean masks) and ``nan_to_num``.
* **Patches**: ``F.unfold`` (im2col, a row gather by constant positions) and ``F.fold``
  (col2im, a ``scatter`` add in col2im's order).
* **Selections**: ``topk``, ``sort``, ``argsort``, ``kthvalue`` through the IR's ``topk`` /
  ``topk_indices`` (sorted, ties in order of position).
* **Layers**: ``F.instance_norm`` (the input's statistics: a group norm with a group per
  channel; running statistics: a batch norm), ``nn.EmbeddingBag`` / ``F.embedding_bag``
  (a 2-D batch of bags, sum / mean / max: a gather then a reduction over the bag),
  ``nn.Bilinear`` / ``F.bilinear`` (``y_o = x1^T A_o x2 + b_o`` as one product by ``A``
  reshaped, a multiply by ``x2`` and a sum).

What these cannot map (a ``num_classes`` left to the data, per-bag offsets, an int64 operand
where the IR computes in floats, ...) is refused by name, as everywhere in the frontend.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
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
    _binary,
    _cumsum,
    _group_norm_op,
    _module,
    _new_filled,
    _norm,
    _select,
    _ValuesIndices,
    arg,
    constant_pad,
    flat_positions,
    meta_like,
    pair,
    running_stats_norm,
    target_name,
)
from provenml.compiler.ir import MATH_UNARY

__all__ = ["MORE_FUNCTIONS", "MORE_FUNCTION_NAMES", "MORE_METHODS", "MORE_MODULES", "MOVES"]


def _dims(value: Any, rank: int) -> tuple[int, ...]:
    """One dim or a sequence of them, made non-negative."""
    dims = (value,) if isinstance(value, int) else tuple(value)
    return tuple(int(d) % rank for d in dims)


def _dtype(b: FxBuilder, x: str) -> torch.dtype:
    return torch.int64 if b.g.values[x].dtype == "int64" else torch.float32


# -- rearrangements ------------------------------------------------------------------------------
def rearranged(b: FxBuilder, x: str, positions: np.ndarray) -> str:
    """``x`` with its leading dims rearranged: ``positions`` (an array over those dims) holds,
    at each place of the result, the flat index of the leading-dims row of ``x`` it takes; the
    trailing dims move whole. One row gather (``embedding``) by a constant; an int64 ``x``
    gathers integers, a boolean one stays boolean."""
    shape = b.shape(x)
    lead = positions.ndim
    width = int(np.prod(shape[lead:], dtype=np.int64))
    dtype = _dtype(b, x)
    table = b.reshape(x, meta_like((int(np.prod(shape[:lead], dtype=np.int64)), width), dtype))
    rows = b.g.add_const(np.ascontiguousarray(positions, dtype=np.int64), "rows")
    gathered = b.emit("embedding", [table, rows], {}, meta_like([*positions.shape, width], dtype))
    result = b.reshape(gathered, meta_like(shape, dtype))
    if x in b.bools:
        b.bools.add(result)
    return result


def _flip(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.flip(x, dims)`` / ``x.flip(dims)`` (``x.flip(0, 1)`` too): the elements in
    reverse order along each of ``dims``."""
    x = b.tensor_arg(node.args[0])
    rest = node.args[1:] or (node.kwargs.get("dims"),)
    spec = b.val(rest[0] if len(rest) == 1 else rest)
    shape = b.shape(x)
    dims = _dims(spec, len(shape))
    if not dims:
        return x
    lead = max(dims) + 1
    positions = np.flip(np.arange(int(np.prod(shape[:lead]))).reshape(shape[:lead]), dims)
    return rearranged(b, x, positions)


def _roll(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.roll(x, shifts, dims)``: each element ``shift`` places on along its dim,
    wrapping round (``dims`` None: along the flattened tensor, the shape kept)."""
    x = b.tensor_arg(node.args[0])
    shifts = b.val(arg(node, 1, "shifts"))
    dims = b.val(arg(node, 2, "dims"))
    shape = b.shape(x)
    if dims is None or dims == ():
        size = int(np.prod(shape, dtype=np.int64))
        flat = b.reshape(x, meta_like([size], _dtype(b, x)))
        shift = int(shifts if isinstance(shifts, int) else shifts[0])
        rolled = rearranged(b, flat, np.roll(np.arange(size), shift))
        return b.reshape(rolled, meta_like(shape, _dtype(b, x)))
    dims_t = _dims(dims, len(shape))
    shifts_t = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    if len(shifts_t) != len(dims_t):
        raise UnsupportedOp("roll", node.name, "shifts and dims of different lengths")
    lead = max(dims_t) + 1
    positions = np.arange(int(np.prod(shape[:lead]))).reshape(shape[:lead])
    positions = np.roll(positions, [int(s) for s in shifts_t], dims_t)
    return rearranged(b, x, positions)


def _pixel_shuffle(inverse: bool) -> Handler:
    """``F.pixel_shuffle(x, r)`` / ``nn.PixelShuffle`` ``(*, C r^2, H, W) -> (*, C, H r, W r)``
    and its inverse ``pixel_unshuffle``: a reshape that splits the factor out, a permute that
    interleaves it with the spatial dims, a reshape that merges them (exact)."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        if node.op == "call_module":
            mod = _module(node, b)
            r = int(mod.upscale_factor if not inverse else mod.downscale_factor)
        else:
            r = int(b.val(arg(node, 1, "downscale_factor" if inverse else "upscale_factor")))
        x = b.tensor_arg(node.args[0])
        *lead, c, h, w = b.shape(x)
        n = int(np.prod(lead, dtype=np.int64))
        if inverse:  # (n, c, h / r, r, w / r, r) -> (n, c, r, r, h / r, w / r)
            split = (n, c, h // r, r, w // r, r)
            perm = (0, 1, 3, 5, 2, 4)
        else:  # (n, c / r^2, r, r, h, w) -> (n, c / r^2, h, r, w, r)
            split = (n, c // (r * r), r, r, h, w)
            perm = (0, 1, 4, 2, 5, 3)
        grid = b.reshape(x, meta_like(split))
        moved = b.emit("permute", [grid], {"perm": perm}, meta_like([split[p] for p in perm]))
        return b.reshape(moved, out)

    return handle


# -- masks ---------------------------------------------------------------------------------------
def _triangle(upper: bool) -> Handler:
    """``torch.tril(x, diagonal)`` / ``triu`` (and the methods): ``x`` kept on and below (above)
    the ``diagonal``-th diagonal of its last two dims, zeros elsewhere, by ``keep_where`` with
    a constant triangle. Float tensors only (the IR's select computes in floats)."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        x = b.tensor_arg(node.args[0])
        name = target_name(node, b.gm)
        if b.g.values[x].dtype == "int64" or x in b.bools:
            raise UnsupportedOp(name, node.name, "an integer or boolean tensor (float only)")
        k = int(b.val(arg(node, 1, "diagonal", 0)))
        rows, cols = b.shape(x)[-2:]
        ones = np.ones((rows, cols), np.float32)
        keep = np.triu(ones, k) if upper else np.tril(ones, k)
        return b.emit("keep_where", [b.const(keep, "triangle"), x], {}, out)

    return handle


def _one_hot(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.one_hot(ids, num_classes)``: ``ids[..., None] == arange(num_classes)`` as int64
    (0 / 1). ``num_classes=-1`` (the width read from the data) is refused: the compiled
    shape would be the example's."""
    classes = int(b.val(arg(node, 1, "num_classes", -1)))
    if classes < 0:
        raise UnsupportedOp(
            "one_hot", node.name, "num_classes=-1 (the width depends on the data; give it)"
        )
    ids = b.tensor_arg(node.args[0])
    if b.g.values[ids].dtype != "int64":
        raise UnsupportedOp("one_hot", node.name, "ids that are not an integer tensor")
    shape = b.shape(ids)
    column = b.reshape(ids, meta_like([*shape, 1], torch.int64))
    classes_row = b.g.add_const(np.arange(classes, dtype=np.int64), "classes")
    hits = b.emit("eq", [column, classes_row], {}, meta_like(out.shape))
    return b.emit("to_int", [hits], {}, out)


# -- activations ---------------------------------------------------------------------------------
def _mish(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.mish`` / ``nn.Mish`` (Misra 2019, eq. 1): ``x tanh(softplus(x))``."""
    x = b.tensor_arg(node.args[0])
    like = meta_like(b.shape(x))
    smooth = b.emit("tanh", [b.emit("softplus", [x], {}, like)], {}, like)
    return b.emit("mul", [x, smooth], {}, out)


def _glu(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.glu(x, dim)`` / ``nn.GLU`` (Dauphin et al. 2017, eq. 1): the first half of ``x``
    along ``dim`` times the sigmoid of the second."""
    dim = _module(node, b).dim if node.op == "call_module" else b.val(arg(node, 1, "dim", -1))
    x = b.tensor_arg(node.args[0])
    shape = b.shape(x)
    d = int(dim) % len(shape)
    half = shape[d] // 2
    halves = [
        b.emit("slice", [x], {"dim": d, "start": s, "stop": s + half, "step": 1}, out)
        for s in (0, half)
    ]
    gate = b.emit("sigmoid", [halves[1]], {}, out)
    return b.emit("mul", [halves[0], gate], {}, out)


def _prelu(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.prelu(x, w)`` / ``nn.PReLU`` (He et al. 2015, eq. 1): ``x`` where ``x > 0``, else
    ``w x``, ``w`` one slope or one per channel (dim 1). Selected, not ``relu(x) + w min(x,
    0)``, so NaNs and signed zeros come out as PyTorch's."""
    x = b.tensor_arg(node.args[0])
    if node.op == "call_module":
        weight = b.const(_module(node, b).weight, "slope")
    else:
        weight = b.tensor_arg(arg(node, 1, "weight"))
    shape = b.shape(x)
    count = int(np.prod(b.shape(weight), dtype=np.int64))
    if count > 1:  # one slope per channel, broadcast along dim 1
        if len(shape) < 2 or shape[1] != count:
            raise UnsupportedOp(
                target_name(node, b.gm), node.name, f"{count} slopes for input {tuple(shape)}"
            )
        weight = b.reshape(weight, meta_like([count] + [1] * (len(shape) - 2)))
    like = meta_like(shape)
    scaled = b.emit("mul", [x, weight], {}, like)
    positive = b.emit("gt", [x, b.const(np.float32(0.0))], {}, like)
    return _select(b, positive, x, scaled, out)


# -- reductions ----------------------------------------------------------------------------------
def _logsumexp(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.logsumexp(x, dim, keepdim)``: ``m + log(sum(exp(x - m)))`` over ``dim``, ``m``
    the max there (the shift keeps ``exp`` from overflowing), or 0 where that max is infinite,
    as PyTorch does (stop 68): a slice of ``-inf`` gives ``-inf``, one holding ``inf`` gives
    ``inf`` (``inf - inf`` gave NaN before)."""
    x = b.tensor_arg(node.args[0])
    shape = b.shape(x)
    dims = tuple(sorted(_dims(b.val(arg(node, 1, "dim")), len(shape))))
    keepdim = bool(b.val(arg(node, 2, "keepdim", False)))
    kept = meta_like([1 if d in dims else n for d, n in enumerate(shape)])
    peak = b.emit("amax", [x], {"dims": dims, "keepdim": True}, kept)
    magnitude = b.emit("abs", [peak], {}, kept)
    infinite = b.emit("eq", [magnitude, b.const(np.float32(np.inf), "inf")], {}, kept)
    peak = b.emit("keep_where_not", [infinite, peak], {}, kept)
    shifted = b.emit("exp", [b.emit("sub", [x, peak], {}, meta_like(shape))], {}, meta_like(shape))
    total = b.emit("sum", [shifted], {"dims": dims, "keepdim": keepdim}, out)
    peak_out = peak if keepdim else b.reshape(peak, out)
    return b.emit("add", [b.emit("log", [total], {}, out), peak_out], {}, out)


def _cosine_similarity(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.cosine_similarity(x1, x2, dim, eps)`` / ``nn.CosineSimilarity``: ``sum(x1 / max(
    ||x1||, eps) * x2 / max(||x2||, eps))`` along ``dim``, the inputs broadcast together."""
    if node.op == "call_module":
        mod = _module(node, b)
        dim, eps = mod.dim, mod.eps
    else:
        dim, eps = b.val(arg(node, 2, "dim", 1)), b.val(arg(node, 3, "eps", 1e-8))
    x1, x2 = b.tensor_arg(node.args[0]), b.tensor_arg(arg(node, 1, "x2"))
    shape = tuple(np.broadcast_shapes(b.shape(x1), b.shape(x2)))
    d = int(dim) % len(shape)
    units = []
    for x in (x1, x2):
        own = b.shape(x)
        if len(own) < len(shape):
            own = (1,) * (len(shape) - len(own)) + tuple(own)
            x = b.reshape(x, meta_like(own))
        kept = meta_like([1 if k == d else n for k, n in enumerate(own)])
        norm = _norm(b, x, 2, {"dims": (d,), "keepdim": True}, kept)
        floor = b.emit("maximum", [norm, b.const(np.float32(eps))], {}, kept)
        units.append(b.emit("div", [x, floor], {}, meta_like(own)))
    product = b.emit("mul", units, {}, meta_like(shape))
    return b.emit("sum", [product], {"dims": (d,), "keepdim": False}, out)


def _linalg_norm(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.linalg.matrix_norm(A, "fro", dim)`` and ``torch.linalg.norm(x, ord, dim)``:
    the Frobenius norm (``ord`` "fro", or None over two dims or all) and, over one dim, the
    vector orders 1, 2 and inf (:func:`~.torch_fx._norm`); spectral and nuclear norms are
    refused by name."""
    name = target_name(node, b.gm)
    x = b.tensor_arg(node.args[0])
    rank = len(b.shape(x))
    matrix = "matrix_norm" in name
    order = b.val(arg(node, 1, "ord", "fro" if matrix else None))
    dim = b.val(arg(node, 2, "dim", (-2, -1) if matrix else None))
    keepdim = bool(b.val(arg(node, 3, "keepdim", False)))
    if node.kwargs.get("dtype") is not None:
        raise UnsupportedOp(name, node.name, "a dtype= conversion")
    dims = tuple(range(rank)) if dim is None else _dims(dim, rank)
    if order in (None, "fro"):
        order = 2
    elif len(dims) != 1 or order not in NORM_ORDERS:
        raise UnsupportedOp(name, node.name, f"ord={order!r} (Frobenius; vector orders 1, 2, inf)")
    return _norm(b, x, order, {"dims": tuple(sorted(dims)), "keepdim": keepdim}, out)


# -- layers --------------------------------------------------------------------------------------
def _instance_norm(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.instance_norm(x, running_mean, running_var, weight, bias, use_input_stats, momentum,
    eps)`` (what ``nn.InstanceNorm*d`` calls when traced through): with the input's own
    statistics a group norm with a group per channel; with running statistics a batch norm."""
    eps = float(b.val(arg(node, 7, "eps", 1e-5)))
    weight, bias = arg(node, 3, "weight"), arg(node, 4, "bias")
    if b.val(arg(node, 5, "use_input_stats", True)):
        return _group_norm_op(b, node, out.shape[1], weight, bias, eps, out)
    mean, var = arg(node, 1, "running_mean"), arg(node, 2, "running_var")
    return running_stats_norm(b, node.args[0], mean, var, weight, bias, eps, out)


EMBEDDING_BAG_MODES = {"sum": "sum", "mean": "mean", "max": "amax"}


def _bag(
    b: FxBuilder,
    where: str,
    table: str,
    ids: Any,
    mode: str,
    refused: dict[str, Any],
    out: torch.Tensor,
) -> str:
    """A 2-D batch of bags of ids: the rows gathered, then reduced over each bag (dim 1)."""
    given = [key for key, value in refused.items() if value not in (None, False)]
    if given or mode not in EMBEDDING_BAG_MODES:
        why = f"mode={mode!r}" if not given else ", ".join(given)
        raise UnsupportedOp("embedding_bag", where, f"{why} (2-D bags: sum, mean, max)")
    index = b.tensor_arg(ids)
    shape = b.shape(index)
    if len(shape) != 2:
        raise UnsupportedOp("embedding_bag", where, "1-D ids with offsets (2-D bags only)")
    width = b.shape(table)[1]
    rows = b.emit("embedding", [table, index], {}, meta_like([*shape, width]))
    return b.emit(EMBEDDING_BAG_MODES[mode], [rows], {"dims": (1,), "keepdim": False}, out)


def _embedding_bag(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.embedding_bag(ids, weight, offsets, max_norm, norm_type, scale_grad_by_freq,
    mode, sparse, per_sample_weights, include_last_offset, padding_idx)`` on 2-D ids."""
    refused = {
        name: b.val(arg(node, i, name))
        for i, name in ((2, "offsets"), (3, "max_norm"), (8, "per_sample_weights"))
    }
    refused["padding_idx"] = b.val(arg(node, 10, "padding_idx"))
    table = b.tensor_arg(arg(node, 1, "weight"))
    mode = str(b.val(arg(node, 6, "mode", "mean")))
    return _bag(b, node.name, table, node.args[0], mode, refused, out)


def _embedding_bag_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``nn.EmbeddingBag(ids)`` on 2-D ids (offsets and per-sample weights refused)."""
    mod = _module(node, b)
    assert isinstance(mod, nn.EmbeddingBag)
    refused = {
        "offsets": b.val(arg(node, 1, "offsets")),
        "per_sample_weights": b.val(arg(node, 2, "per_sample_weights")),
        "max_norm": mod.max_norm,
        "padding_idx": mod.padding_idx,
    }
    table = b.const(mod.weight, "w")
    return _bag(b, node.name, table, node.args[0], mod.mode, refused, out)


def _constant_array(b: FxBuilder, value: Any, op: str, where: str) -> np.ndarray:
    """A weight known at compile time as an array (a parameter, a folded tensor)."""
    v = b.val(value)
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    if isinstance(v, str) and v in b.g.consts:
        return np.asarray(b.g.consts[v])
    raise UnsupportedOp(op, where, "a weight computed at run time")


def bilinear(
    b: FxBuilder, x1: str, x2: str, weight: np.ndarray, bias: Any, out: torch.Tensor
) -> str:
    """``y_o = x1^T A_o x2 + b_o`` for ``A`` of shape ``(out, in1, in2)``: ``x1`` times ``A``
    laid out as ``(in1, out * in2)`` (one product), times ``x2`` broadcast over ``out``,
    summed over ``in2``; leading dims flattened and restored."""
    outputs, in1, in2 = weight.shape
    lead = b.shape(x1)[:-1]
    n = int(np.prod(lead, dtype=np.int64))
    rows1 = b.reshape(x1, meta_like([n, in1]))
    rows2 = b.reshape(x2, meta_like([n, 1, in2]))
    laid = np.ascontiguousarray(weight.transpose(1, 0, 2).reshape(in1, outputs * in2))
    product = b.emit("matmul", [rows1, b.const(laid, "w")], {}, meta_like([n, outputs * in2]))
    product = b.reshape(product, meta_like([n, outputs, in2]))
    weighted = b.emit("mul", [product, rows2], {}, meta_like([n, outputs, in2]))
    y = b.emit("sum", [weighted], {"dims": (2,), "keepdim": False}, meta_like([n, outputs]))
    if bias is not None:
        y = b.emit("add", [y, bias], {}, meta_like([n, outputs]))
    return b.reshape(y, out)


def _bilinear(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.bilinear(x1, x2, weight, bias)`` / ``nn.Bilinear`` (:func:`bilinear`)."""
    x1, x2 = b.tensor_arg(node.args[0]), b.tensor_arg(arg(node, 1, "input2"))
    if node.op == "call_module":
        mod = _module(node, b)
        weight = mod.weight.detach().numpy()
        bias = None if mod.bias is None else b.const(mod.bias, "b")
    else:
        weight = _constant_array(b, arg(node, 2, "weight"), "bilinear", node.name)
        bias_arg = arg(node, 3, "bias")
        bias = None if b.val(bias_arg) is None else b.tensor_arg(bias_arg)
    return bilinear(b, x1, x2, np.asarray(weight, np.float32), bias, out)


# -- scatters (message passing: a GNN's sum / mean / max over each node's incoming edges) ---------
def _floats(b: FxBuilder, node: torch.fx.Node, *names: str) -> None:
    for name in names:
        if b.g.values[name].dtype != "float32" or name in b.bools:
            raise UnsupportedOp(target_name(node, b.gm), node.name, "a non-float32 tensor")


def _scatter_rows(
    b: FxBuilder, table: str, rows: str, src: str, reduce: str, include_self: bool
) -> str:
    return b.emit(
        "scatter",
        [table, rows, src],
        {"reduce": reduce, "include_self": include_self},
        meta_like(b.shape(table)),
    )


def _index_add(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``x.index_add(dim, index, source, alpha=)`` / ``torch.index_add`` / ``index_add_``:
    ``x`` with ``alpha * source``'s slices along ``dim`` added at ``index`` (in order), as the
    IR's ``scatter`` of rows: ``dim`` moved to the front, the other dims one row."""
    x = b.tensor_arg(node.args[0])
    index = b.tensor_arg(arg(node, 2, "index"))
    source = b.tensor_arg(arg(node, 3, "source"))
    _floats(b, node, x, source)
    alpha = b.val(node.kwargs.get("alpha", 1))
    d = _one_dim_index(b, node, x, index)
    src = _front(b, source, d)
    if alpha != 1:
        src = b.emit("mul", [src, b.const(np.float32(alpha))], {}, meta_like(b.shape(src)))
    y = _scatter_rows(b, _front(b, x, d), index, src, "add", True)
    return _unfront(b, y, b.shape(x), d)


def _one_dim_index(b: FxBuilder, node: torch.fx.Node, x: str, index: str) -> int:
    """The (non-negative) ``dim`` of ``index_add`` / ``index_select``, whose ``index`` must be
    a 1-D int64 tensor."""
    if len(b.shape(index)) != 1 or b.g.values[index].dtype != "int64":
        raise UnsupportedOp(target_name(node, b.gm), node.name, "an index that is not 1-D int64")
    return int(b.val(arg(node, 1, "dim"))) % len(b.shape(x))


SCATTER_REDUCES = {"sum": "add", "prod": "mul", "amax": "amax", "amin": "amin", "mean": "mean"}


def _element_scatter(reduce: str | None) -> Handler:
    """``x.scatter_add(dim, index, src)`` (``reduce`` None: the call's own ``reduce``
    argument, ``scatter_reduce(dim, index, src, reduce, include_self=)``), functions and
    in-place forms: ``x[.., index[j], ..] (op)= src[j]`` along ``dim`` for each element ``j``
    of ``index`` (``src`` read where ``index`` has elements), as the IR's ``scatter`` of
    one-element rows at flat positions ``base[j] + index[j] * stride``. ``mean``: the sum
    divided by the count of what was combined (``x`` itself counted with ``include_self``);
    ``prod`` (since stop 60) multiplies in order."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        name = target_name(node, b.gm)
        mode = reduce if reduce is not None else str(b.val(arg(node, 4, "reduce")))
        include_self = bool(b.val(node.kwargs.get("include_self", True)))
        if mode not in SCATTER_REDUCES:
            raise UnsupportedOp(name, node.name, f"reduce={mode!r} (sum, prod, mean, amax, amin)")
        x = b.tensor_arg(node.args[0])
        index = b.tensor_arg(arg(node, 2, "index"))
        src = b.tensor_arg(arg(node, 3, "src"))
        _floats(b, node, x, src)
        shape, ishape = b.shape(x), b.shape(index)
        d = int(b.val(arg(node, 1, "dim"))) % len(shape)
        if b.shape(src) != ishape:  # PyTorch reads src where index has elements
            for k, size in enumerate(ishape):
                if b.shape(src)[k] != size:
                    cut = [*b.shape(src)]
                    cut[k] = size
                    attrs = {"dim": k, "start": 0, "stop": size, "step": 1}
                    src = b.emit("slice", [src], attrs, meta_like(cut))
        row_index = _broadcast_row_index(b, arg(node, 2, "index"), shape, ishape, d)
        if row_index is not None:  # whole slices along d: rows as wide as the other dims
            table, rows, values = _front(b, x, d), row_index, _front(b, src, d)
        else:
            table, rows, values = _element_rows(b, x, index, src, d)
        size, count = b.shape(table)[0], b.shape(rows)[0]
        combine = "add" if mode == "mean" else SCATTER_REDUCES[mode]
        y = _scatter_rows(b, table, rows, values, combine, include_self)
        if mode == "mean":  # (counts per row, broadcast over its width)
            zeros = b.const(np.zeros((size, 1), np.float32), "zeros")
            ones = b.const(np.ones((count, 1), np.float32), "ones")
            counted = _scatter_rows(b, zeros, rows, ones, "add", True)
            if include_self:
                counted = b.emit(
                    "add", [counted, b.const(np.float32(1.0))], {}, meta_like([size, 1])
                )
            else:  # untouched places keep x: divided by 1
                counted = b.emit(
                    "maximum", [counted, b.const(np.float32(1.0))], {}, meta_like([size, 1])
                )
            y = b.emit("div", [y, counted], {}, meta_like(b.shape(y)))
        return _unfront(b, y, shape, d) if row_index is not None else b.reshape(y, out)

    return handle


def _front(b: FxBuilder, t: str, d: int) -> str:
    """``t`` with dim ``d`` moved first, the others flattened into one row: ``(n_d, rest)``
    (its dtype kept)."""
    shape, dtype = b.shape(t), _dtype(b, t)
    perm = (d, *[k for k in range(len(shape)) if k != d])
    moved_shape = [shape[p] for p in perm]
    moved = t if d == 0 else b.emit("permute", [t], {"perm": perm}, meta_like(moved_shape, dtype))
    width = int(np.prod(shape, dtype=np.int64)) // shape[d]
    return b.reshape(moved, meta_like([shape[d], width], dtype))


def _unfront(b: FxBuilder, rows: str, shape: Sequence[int], d: int) -> str:
    """The inverse of :func:`_front` for a tensor of ``shape`` (``rows`` may have another
    first dim: ``index_select`` picks rows)."""
    dtype = _dtype(b, rows)
    perm = (d, *[k for k in range(len(shape)) if k != d])
    moved = b.reshape(rows, meta_like([b.shape(rows)[0], *[shape[p] for p in perm[1:]]], dtype))
    if d == 0:
        return moved
    inverse = tuple(int(i) for i in np.argsort(perm))
    return b.emit(
        "permute", [moved], {"perm": inverse},
        meta_like([b.shape(moved)[p] for p in inverse], dtype),
    )  # fmt: skip


def _broadcast_row_index(
    b: FxBuilder, index_arg: Any, shape: tuple[int, ...], ishape: tuple[int, ...], d: int
) -> str | None:
    """The 1-D row ids when a scatter's index is one id per slice along ``d``, broadcast over
    whole slices (``index.view(-1, 1).expand_as(src)``: how PyTorch Geometric scatters edge
    messages to nodes), else None. Then the scatter moves rows as wide as a slice instead of
    one element at a time (stop 59: 1.3M one-element updates for 20,000 edges of 64 features
    become 20,000 rows)."""
    if not isinstance(index_arg, torch.fx.Node):
        return None
    if target_name(index_arg, b.gm).split(".")[-1] not in ("expand", "expand_as", "broadcast_to"):
        return None
    source = index_arg.args[0]
    if not isinstance(source, torch.fx.Node) or not b.is_tensor(source):
        return None
    ids = b.tensor_arg(source)
    before = b.shape(ids)
    one_per_slice = len(before) == len(shape) and all(
        n == 1 for k, n in enumerate(before) if k != d
    )
    whole = all(ishape[k] == shape[k] for k in range(len(shape)) if k != d)
    if not (one_per_slice and whole and b.g.values[ids].dtype == "int64"):
        return None
    return b.reshape(ids, meta_like([before[d]], torch.int64))


def _element_rows(b: FxBuilder, x: str, index: str, src: str, d: int) -> tuple[str, str, str]:
    """``x`` as a table of one-element rows, the flat positions ``base[j] + index[j] *
    stride`` that ``index`` names along ``d`` (:func:`flat_positions`) and ``src``'s elements
    as rows."""
    shape, ishape = b.shape(x), b.shape(index)
    count = int(np.prod(ishape, dtype=np.int64))
    rows = b.reshape(flat_positions(b, shape, index, d), meta_like([count], torch.int64))
    table = b.reshape(x, meta_like([int(np.prod(shape, dtype=np.int64)), 1]))
    return table, rows, b.reshape(src, meta_like([count, 1]))


def _index_select(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.index_select(x, dim, index)`` / ``x.index_select``: rows of ``x`` with ``dim``
    moved to the front, gathered (``embedding``), moved back."""
    x = b.tensor_arg(node.args[0])
    index = b.tensor_arg(arg(node, 2, "index"))
    d = _one_dim_index(b, node, x, index)
    table = _front(b, x, d)
    width = b.shape(table)[1]
    rows = b.emit(
        "embedding", [table, index], {}, meta_like([b.shape(index)[0], width], _dtype(b, x))
    )
    return _unfront(b, rows, b.shape(x), d)


def _matrix_transpose(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``x.t()`` / ``torch.t``: a 2-D tensor transposed, a 0-D or 1-D one as it is."""
    x = b.tensor_arg(node.args[0])
    if len(b.shape(x)) < 2:
        return x
    return b.emit("permute", [x], {"perm": (1, 0)}, out)


def _same_values(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``clone`` / ``detach``: the same values (the IR has no aliasing to break)."""
    return b.tensor_arg(node.args[0])


ROUNDING = ("floor", "ceil", "round", "trunc", "sign")


#: ``torch.<name>`` / ``Tensor.<name>`` -> the IR's unary op (ir.MATH_UNARY, and erf)
MATH_NAMES: dict[str, str] = {
    **{op: op for op in MATH_UNARY},
    **{f"arc{op[1:]}": op for op in ("asin", "acos", "atan", "asinh", "acosh", "atanh")},
    "erf": "erf",
}
#: ``torch.special`` aliases of the same functions
SPECIAL_NAMES: dict[str, str] = {
    "expm1": "expm1",
    "log1p": "log1p",
    "exp2": "exp2",
    "erf": "erf",
    "erfc": "erfc",
    "gammaln": "lgamma",
}


def _math(op: str) -> Handler:
    """``torch.sin``, ``torch.log1p``, ``torch.lgamma``, ... (stop 66; ir.MATH_UNARY): the
    IR's unary op, computed by C's libm; an int64 tensor is converted to float32 first, as
    PyTorch promotes it."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        x = _as_float(b, b.tensor_arg(node.args[0]))
        return b.emit(op, [x], {}, meta_like(tuple(out.shape)))

    return handle


def _special_value_test(kind: str) -> Handler:
    """``torch.isnan`` / ``isinf`` / ``isfinite`` and their methods (stop 66): a boolean mask
    from the comparisons that test NaN on the float's bits (``-ffast-math`` would fold
    ``x != x``; stop 55): NaN as ``x != x``, infinite as ``|x| == inf``, finite as
    ``|x| < inf`` (false for NaN)."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        x = b.tensor_arg(node.args[0])
        if b.g.values[x].dtype == "int64":
            raise UnsupportedOp(target_name(node, b.gm), node.name, "an integer tensor")
        if kind == "isnan":
            name = b.emit("ne", [x, x], {}, out)
        else:
            magnitude = b.emit("abs", [x], {}, meta_like(b.shape(x)))
            infinity = b.const(np.float32(np.inf), "inf")
            name = b.emit("eq" if kind == "isinf" else "lt", [magnitude, infinity], {}, out)
        b.bools.add(name)
        return name

    return handle


def _nan_to_num(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.nan_to_num(x, nan=0.0, posinf=None, neginf=None)`` and the method: NaN, +inf
    and -inf replaced (the infinities by float32's largest and lowest values unless given),
    three selections on :func:`_special_value_test`'s kind of masks."""
    x = b.tensor_arg(node.args[0])
    if b.g.values[x].dtype == "int64":
        return x  # an integer tensor holds no NaN or infinity
    finfo = torch.finfo(torch.float32)
    replace = {
        "nan": b.val(arg(node, 1, "nan")),
        "posinf": b.val(arg(node, 2, "posinf")),
        "neginf": b.val(arg(node, 3, "neginf")),
    }
    defaults = {"nan": 0.0, "posinf": finfo.max, "neginf": finfo.min}
    for key, value in replace.items():
        if value is None:
            replace[key] = defaults[key]
        elif not isinstance(value, int | float):
            raise UnsupportedOp(target_name(node, b.gm), node.name, f"a {key} computed at run time")
    like = meta_like(b.shape(x))
    masks = (
        b.emit("ne", [x, x], {}, like),
        b.emit("eq", [x, b.const(np.float32(np.inf), "inf")], {}, like),
        b.emit("eq", [x, b.const(np.float32(-np.inf), "minus_inf")], {}, like),
    )
    result = x
    for mask, key in zip(masks, ("nan", "posinf", "neginf"), strict=True):
        b.bools.add(mask)
        result = _select(b, mask, float(replace[key]), result, out if key == "neginf" else like)
    return result


def _reciprocal(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.reciprocal`` / ``Tensor.reciprocal``: ``1 / x`` (an int64 tensor as floats)."""
    x = _as_float(b, b.tensor_arg(node.args[0]))
    one = b.g.add_const(np.float32(1.0), "one")
    return b.emit("div", [one, x], {}, meta_like(tuple(out.shape)))


def _rounding(op: str) -> Handler:
    """``torch.floor`` / ``ceil`` / ``round`` (ties to even; ``decimals`` since stop 70) /
    ``trunc`` / ``sign`` and their methods: the IR's unary op; an int64 tensor is its own
    floor, ceil, round and truncation (as in PyTorch)."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        x = b.tensor_arg(node.args[0])
        if b.g.values[x].dtype == "int64" and op != "sign":
            return x
        decimals = int(b.val(node.kwargs.get("decimals", 0)))
        if decimals:  # stop 70: PyTorch's form, x * 10^d rounded, divided by 10^d (d < 0: /, *)
            like = meta_like(b.shape(x))
            power = b.g.add_const(np.float32(10.0 ** abs(decimals)), "power")
            scale, unscale = ("mul", "div") if decimals > 0 else ("div", "mul")
            rounded = b.emit(op, [b.emit(scale, [x, power], {}, like)], {}, like)
            return b.emit(unscale, [rounded, power], {}, out)
        return b.emit(op, [x], {}, out)  # sign of an int64 tensor in integers (stop 68)

    return handle


# -- selections ----------------------------------------------------------------------------------
def _selected(
    b: FxBuilder, node: torch.fx.Node, x: str, dim: int, k: int, largest: bool, out: Any
) -> tuple[str, str]:
    """The IR's ``topk`` and ``topk_indices`` of ``x`` along ``dim`` (float32 only)."""
    if b.g.values[x].dtype != "float32" or x in b.bools:
        raise UnsupportedOp(target_name(node, b.gm), node.name, "a non-float32 tensor")
    attrs = {"dim": dim, "k": k, "largest": largest}
    values = b.emit("topk", [x], attrs, out[0])
    indices = b.emit("topk_indices", [x], attrs, out[1])
    return values, indices


def _topk(b: FxBuilder, node: torch.fx.Node, out: Any) -> Any:
    """``torch.topk(x, k, dim=-1, largest=True, sorted=True)`` / ``x.topk``: ``(values,
    indices)``, always sorted (``sorted=False`` leaves the order to the implementation), ties
    in order of position."""
    x = b.tensor_arg(node.args[0])
    rank = len(b.shape(x))
    k = int(b.val(arg(node, 1, "k")))
    dim = int(b.val(arg(node, 2, "dim", -1))) % rank
    largest = bool(b.val(arg(node, 3, "largest", True)))
    return _ValuesIndices(_selected(b, node, x, dim, k, largest, out))


def _sort(b: FxBuilder, node: torch.fx.Node, out: Any) -> Any:
    """``torch.sort(x, dim=-1, descending=False, stable=False)`` / ``x.sort``: ``(values,
    indices)`` (ties in order of position, as ``stable=True``)."""
    x = b.tensor_arg(node.args[0])
    rank = len(b.shape(x))
    dim_arg = arg(node, 1, "dim", -1)
    dim = int(b.val(dim_arg if not isinstance(b.val(dim_arg), bool) else -1)) % rank
    descending = bool(b.val(node.kwargs.get("descending", False)))
    size = b.shape(x)[dim]
    return _ValuesIndices(_selected(b, node, x, dim, size, descending, out))


def _argsort(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.argsort(x, dim=-1, descending=False)`` / ``x.argsort``: the sort's indices."""
    x = b.tensor_arg(node.args[0])
    rank = len(b.shape(x))
    dim = int(b.val(arg(node, 1, "dim", -1))) % rank
    descending = bool(b.val(arg(node, 2, "descending", False)))
    values_like = meta_like(out.shape)
    return _selected(b, node, x, dim, b.shape(x)[dim], descending, (values_like, out))[1]


def _cdist(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.cdist(x1, x2, p)`` for ``p`` 1, 2 and inf: the distance of every row pair,
    ``(.., P, M)`` against ``(.., R, M)`` -> ``(.., P, R)``, from the differences directly
    (``x1[.., :, None, :] - x2[.., None, :, :]``; PyTorch's ``p = 2`` takes a matmul form
    beyond 25 rows, whose cancellation this avoids: the two agree to float32 rounding on
    separated points and this one is the more exact on close ones)."""
    order = b.val(arg(node, 2, "p", 2.0))
    if order not in NORM_ORDERS:
        raise UnsupportedOp("cdist", node.name, f"p={order!r} (1, 2, inf)")
    x1, x2 = b.tensor_arg(node.args[0]), b.tensor_arg(arg(node, 1, "x2"))
    s1, s2 = b.shape(x1), b.shape(x2)
    lead = tuple(np.broadcast_shapes(s1[:-2], s2[:-2]))
    left = b.reshape(x1, meta_like([*s1[:-1], 1, s1[-1]]))
    right = b.reshape(x2, meta_like([*s2[:-2], 1, *s2[-2:]]))
    pairs = (*lead, s1[-2], s2[-2], s1[-1])
    difference = b.emit("sub", [left, right], {}, meta_like(pairs))
    return _norm(b, difference, order, {"dims": (len(pairs) - 1,), "keepdim": False}, out)


# -- patches (im2col and col2im) ------------------------------------------------------------------
def _patch_positions(
    channels: int,
    padded: tuple[int, int],
    kernel: tuple[int, int],
    dilation: tuple[int, int],
    stride: tuple[int, int],
) -> tuple[np.ndarray, tuple[int, int]]:
    """Where ``F.unfold``'s column ``(c, ki, kj)`` and patch ``l`` read in a ``(C, Hp, Wp)``
    tensor flattened (rows ``c * kh * kw + ki * kw + kj``, columns the patches row-major), and
    the patch grid ``(rows, cols)``."""
    (hp, wp), (kh, kw), (dh, dw), (sh, sw) = padded, kernel, dilation, stride
    rows = (hp - dh * (kh - 1) - 1) // sh + 1
    cols = (wp - dw * (kw - 1) - 1) // sw + 1
    c, ki, kj, i, j = np.ix_(
        np.arange(channels), np.arange(kh), np.arange(kw), np.arange(rows), np.arange(cols)
    )
    flat = c * hp * wp + (i * sh + ki * dh) * wp + (j * sw + kj * dw)
    return flat.reshape(channels * kh * kw, rows * cols).astype(np.int64), (rows, cols)


def _patch_args(b: FxBuilder, node: torch.fx.Node, first: int) -> tuple[tuple[int, int], ...]:
    """``kernel_size, dilation, padding, stride`` of ``F.unfold`` / ``F.fold`` (or of the
    ``nn.Unfold`` / ``nn.Fold`` module called) as pairs."""
    names = ("kernel_size", "dilation", "padding", "stride")
    if node.op == "call_module":
        mod = _module(node, b)
        return tuple(pair(getattr(mod, name)) for name in names)
    defaults = (None, 1, 0, 1)
    return tuple(
        pair(b.val(arg(node, first + k, name, default)))
        for k, (name, default) in enumerate(zip(names, defaults, strict=True))
    )


def _unfold(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.unfold(x, kernel_size, dilation, padding, stride)`` (im2col): ``(N, C, H, W)`` ->
    ``(N, C kh kw, L)``, zero-padded, as a row gather (``embedding``) of the padded input laid
    out ``(C Hp Wp, N)`` by constant positions, then moved back (exact copies)."""
    kernel, dilation, padding, stride = _patch_args(b, node, 1)
    x = b.tensor_arg(node.args[0])
    if len(b.shape(x)) != 4:
        raise UnsupportedOp("unfold", node.name, "an input that is not 4-D (N, C, H, W)")
    padded = constant_pad(
        b, x, [padding[1], padding[1], padding[0], padding[0]], 0.0, "unfold", node.name
    )
    n, c, hp, wp = b.shape(padded)
    positions, _ = _patch_positions(c, (hp, wp), kernel, dilation, stride)
    table = b.emit(
        "permute", [b.reshape(padded, meta_like([n, c * hp * wp]))], {"perm": (1, 0)},
        meta_like([c * hp * wp, n]),
    )  # fmt: skip
    rows = b.g.add_const(np.ascontiguousarray(positions), "patches")
    gathered = b.emit("embedding", [table, rows], {}, meta_like([*positions.shape, n]))
    return b.emit("permute", [gathered], {"perm": (2, 0, 1)}, out)


def _fold(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.fold(cols, output_size, kernel_size, dilation, padding, stride)`` (col2im): the sum
    of the overlapping patches, ``(N, C kh kw, L)`` -> ``(N, C, H, W)``, as the IR's ``scatter``
    (add) of each column's values into the padded output laid out ``(C Hp Wp, N)``, in the
    order PyTorch's col2im adds them, then the padding cropped."""
    if node.op == "call_module":
        size = pair(_module(node, b).output_size)
    else:
        size = pair(b.val(arg(node, 1, "output_size")))
    kernel, dilation, padding, stride = _patch_args(b, node, 2)
    cols = b.tensor_arg(node.args[0])
    if len(b.shape(cols)) != 3:
        raise UnsupportedOp("fold", node.name, "an input that is not 3-D (N, C kh kw, L)")
    n, depth, count = b.shape(cols)
    c = depth // (kernel[0] * kernel[1])
    hp, wp = size[0] + 2 * padding[0], size[1] + 2 * padding[1]
    positions, _ = _patch_positions(c, (hp, wp), kernel, dilation, stride)
    if positions.shape[1] != count:
        raise UnsupportedOp("fold", node.name, f"{count} patches for {positions.shape[1]} places")
    zeros = b.const(np.zeros((c * hp * wp, n), np.float32), "zeros")
    rows = b.g.add_const(np.ascontiguousarray(positions.reshape(-1)), "patches")
    moved = b.emit("permute", [cols], {"perm": (1, 2, 0)}, meta_like([depth, count, n]))
    values = b.reshape(moved, meta_like([depth * count, n]))
    summed = b.emit(
        "scatter", [zeros, rows, values], {"reduce": "add", "include_self": True},
        meta_like([c * hp * wp, n]),
    )  # fmt: skip
    image = b.emit(
        "permute", [b.reshape(summed, meta_like([c, hp, wp, n]))], {"perm": (3, 0, 1, 2)},
        meta_like([n, c, hp, wp]),
    )  # fmt: skip
    return constant_pad(
        b, image, [-padding[1], -padding[1], -padding[0], -padding[0]], 0.0, "fold", node.name
    )


def kth_smallest(b: FxBuilder, node: torch.fx.Node, x: str, dim: int, k: int) -> tuple[str, str]:
    """The ``k``-th smallest of ``x`` along ``dim`` and its position (the last of the ``k``
    smallest of the IR's ``topk`` / ``topk_indices``), ``dim`` kept with size 1."""
    smallest = [*b.shape(x)]
    smallest[dim] = k
    kept = [*smallest]
    kept[dim] = 1
    like = (meta_like(smallest), meta_like(smallest, torch.int64))
    slice_attrs = {"dim": dim, "start": k - 1, "stop": k, "step": 1}
    value, index = (
        b.emit("slice", [t], slice_attrs, meta_like(kept, dtype))
        for t, dtype in zip(
            _selected(b, node, x, dim, k, False, like), (torch.float32, torch.int64), strict=True
        )
    )
    return value, index


def _kthvalue(b: FxBuilder, node: torch.fx.Node, out: Any) -> Any:
    """``torch.kthvalue(x, k, dim=-1, keepdim=False)``: the ``k``-th smallest along ``dim``
    and its position (:func:`kth_smallest`)."""
    x = b.tensor_arg(node.args[0])
    rank = len(b.shape(x))
    k = int(b.val(arg(node, 1, "k")))
    dim = int(b.val(arg(node, 2, "dim", -1))) % rank
    keepdim = bool(b.val(arg(node, 3, "keepdim", False)))
    picked = kth_smallest(b, node, x, dim, k)
    if keepdim:
        return _ValuesIndices(picked)
    final = [s for d, s in enumerate(b.shape(x)) if d != dim]
    return _ValuesIndices(
        tuple(
            b.reshape(t, meta_like(final, dtype))
            for t, dtype in zip(picked, (torch.float32, torch.int64), strict=True)
        )
    )


# -- integer and floor arithmetic ---------------------------------------------------------------
DIVISIONS = {None: "div", "floor": "floor_divide", "trunc": "trunc_divide"}


def _div(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.div`` / ``Tensor.div`` / ``true_divide``: ``rounding_mode`` None divides
    (integers as floats), ``"floor"`` is ``floor_divide``, ``"trunc"`` (since stop 60)
    ``trunc_divide`` (before stop 59 the mode was ignored: a silent true division)."""
    mode = b.val(node.kwargs.get("rounding_mode"))
    if mode not in DIVISIONS:
        raise UnsupportedOp(target_name(node, b.gm), node.name, f"rounding_mode={mode!r}")
    return _binary(DIVISIONS[mode], check_alpha=False)(b, node, out)


#: calls that are both ``torch.<name>`` and ``Tensor.<name>`` (in-place ``Tensor.<name>_``
#: forms too, through ``FxBuilder.rebind_in_place``)
BOTH: dict[str, Handler] = {
    "atan2": _binary("atan2", check_alpha=False),
    "arctan2": _binary("atan2", check_alpha=False),
    "cumprod": _cumsum,
    "logcumsumexp": _cumsum,  # stop 62
    "topk": _topk,
    "sort": _sort,
    "argsort": _argsort,
    **{op: _rounding(op) for op in ROUNDING},
    "floor_divide": _binary("floor_divide", check_alpha=False),
    "remainder": _binary("remainder", check_alpha=False),
    "fmod": _binary("fmod", check_alpha=False),
    "div": _div,
    "true_divide": _div,
    "t": _matrix_transpose,
    "clone": _same_values,
    "index_add": _index_add,
    "scatter_add": _element_scatter("sum"),
    "scatter_reduce": _element_scatter(None),
    "index_select": _index_select,
    "flip": _flip,
    "roll": _roll,
    "tril": _triangle(upper=False),
    "triu": _triangle(upper=True),
    "logsumexp": _logsumexp,
    "kthvalue": _kthvalue,
    **{name: _math(op) for name, op in MATH_NAMES.items()},  # stop 66
    "reciprocal": _reciprocal,
    **{kind: _special_value_test(kind) for kind in ("isnan", "isinf", "isfinite")},
    "nan_to_num": _nan_to_num,
}
MORE_FUNCTIONS: dict[Any, Handler] = {
    **{getattr(torch, name): handler for name, handler in BOTH.items()},
    torch.cdist: _cdist,
    operator.floordiv: BOTH["floor_divide"],
    operator.mod: BOTH["remainder"],
    torch.linalg.matrix_norm: _linalg_norm,
    torch.linalg.norm: _linalg_norm,
    F.one_hot: _one_hot,
    F.cosine_similarity: _cosine_similarity,
    F.bilinear: _bilinear,
    **{getattr(torch.special, name): _math(op) for name, op in SPECIAL_NAMES.items()},
    torch.zeros_like: _new_filled(0.0),
    torch.ones_like: _new_filled(1.0),
    torch.full_like: _new_filled(None, value_position=1),
}
MORE_FUNCTION_NAMES: dict[str, Handler] = {
    # importing torch_geometric replaces torch.index_select by its wrapper (stop 69)
    "index_select": _index_select,
    "_new_index_select": _index_select,
    "unfold": _unfold,
    "fold": _fold,
    "pixel_shuffle": _pixel_shuffle(inverse=False),
    "pixel_unshuffle": _pixel_shuffle(inverse=True),
    "mish": _mish,
    "glu": _glu,
    "prelu": _prelu,
    "instance_norm": _instance_norm,
    "embedding_bag": _embedding_bag,
    "cosine_similarity": _cosine_similarity,
    "one_hot": _one_hot,
    "logsumexp": _logsumexp,
}
MORE_METHODS: dict[str, Handler] = {**BOTH, "detach": _same_values}
MORE_MODULES: dict[type, Handler] = {
    nn.Unfold: _unfold,
    nn.Fold: _fold,
    nn.PixelShuffle: _pixel_shuffle(inverse=False),
    nn.PixelUnshuffle: _pixel_shuffle(inverse=True),
    nn.Mish: _mish,
    nn.GLU: _glu,
    nn.PReLU: _prelu,
    nn.CosineSimilarity: _cosine_similarity,
    nn.EmbeddingBag: _embedding_bag_module,
    nn.Bilinear: _bilinear,
}
#: handlers a boolean tensor may pass through (moves, and a mask divided as 0 / 1 floats)
MOVES: tuple[Handler, ...] = (_flip, _roll, _matrix_transpose, _same_values, _div)
