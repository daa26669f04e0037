"""PyTorch's attention modules in the torch frontend: ``nn.MultiheadAttention``,
``nn.TransformerEncoderLayer`` and ``nn.TransformerEncoder``, lowered from the modules' own
weights and settings (their ``forward`` takes Python branches on run-time properties, so they
are traced as leaf modules, a bare one wrapped first: :func:`as_traceable`).

Multi-head attention (Vaswani et al. 2017, Sec. 3.2.2): ``MultiHead(Q, K, V) = Concat(head_1,
..., head_h) W^O`` with ``head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)``: one projection per
input (one ``3E``-wide projection, sliced, where the three inputs are one tensor), heads split
by a reshape and a permute, Eq. 1 through :func:`~provenml.compiler.frontend.torch_fx.attention`
(which the fusion pass makes one attention kernel), heads merged, the output projection. The
encoder layer is PyTorch's: ``x + SA(LN1(x))`` then ``x + FF(LN2(x))`` with ``norm_first``,
else ``LN1(x + SA(x))`` then ``LN2(x + FF(x))``, ``FF(x) = W_2 act(W_1 x)`` with ReLU or GELU.
Inference only: dropout is the identity.

Registered into :data:`~provenml.compiler.frontend.torch_fx.MODULES` by the package's
``__init__``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, NamedTuple, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from provenml.compiler.frontend.common import UnsupportedOp
from provenml.compiler.frontend.torch_fx import (
    MASKED,
    FxBuilder,
    Handler,
    arg,
    attention,
    attention_mask,
    meta_like,
)

__all__ = ["ATTENTION_FUNCTIONS", "ATTENTION_MODULES", "LEAF_ROOTS", "as_traceable"]


def _linear(b: FxBuilder, x: str, weight: Any, bias: Any) -> str:
    """``x W^T + b`` on an IR value, the weight and bias constants."""
    shape = b.shape(x)
    ins = [x, b.const(weight.detach(), "w")]
    if bias is not None:
        ins.append(b.const(bias.detach(), "b"))
    return b.emit("linear", ins, {}, meta_like([*shape[:-1], int(weight.shape[0])]))


def _swap01(b: FxBuilder, x: str) -> str:
    """(L, N, E) <-> (N, L, E): the layout of ``batch_first=False``."""
    s = b.shape(x)
    return b.emit("permute", [x], {"perm": (1, 0, 2)}, meta_like([s[1], s[0], s[2]]))


def _heads(b: FxBuilder, x: str, heads: int) -> str:
    """(N, T, E) -> (N, heads, T, E / heads)."""
    n, t, e = b.shape(x)
    split = b.reshape(x, meta_like([n, t, heads, e // heads]))
    return b.emit("permute", [split], {"perm": (0, 2, 1, 3)}, meta_like([n, heads, t, e // heads]))


def multi_head_attention(
    b: FxBuilder,
    mod: nn.MultiheadAttention,
    query: str,
    key: str,
    value: str,
    mask: str | None,
    causal: bool,
    safe: bool,
) -> tuple[str, str]:
    """``mod``'s attention on batch-first IR values ``(N, L, E)``, ``(N, S, kdim)``,
    ``(N, S, vdim)``: returns (the output ``(N, L, E)``, the probabilities ``(N, h, L, S)``).
    ``safe``: a query whose keys are all masked attends to nothing (output: the projection's
    bias) rather than giving NaN; :func:`sdpa_path` says which eager takes."""
    n, length, embed = b.shape(query)
    heads = mod.num_heads
    if mod._qkv_same_embed_dim:
        w_q, w_k, w_v = mod.in_proj_weight.chunk(3)
    else:
        w_q, w_k, w_v = mod.q_proj_weight, mod.k_proj_weight, mod.v_proj_weight
    bias = mod.in_proj_bias
    b_q, b_k, b_v = bias.chunk(3) if bias is not None else (None, None, None)
    if query == key == value and mod._qkv_same_embed_dim:  # self-attention: one projection
        qkv = _linear(b, query, mod.in_proj_weight, bias)
        q, k, v = (
            b.emit(
                "slice",
                [qkv],
                {"dim": 2, "start": i * embed, "stop": (i + 1) * embed, "step": 1},
                meta_like([n, length, embed]),
            )
            for i in range(3)
        )
    else:
        q, k, v = (
            _linear(b, x, w, bb)
            for x, w, bb in ((query, w_q, b_q), (key, w_k, b_k), (value, w_v, b_v))
        )
    # (the functional path's stand-in for the module has neither option: getattr)
    bias_k, bias_v = getattr(mod, "bias_k", None), getattr(mod, "bias_v", None)
    zero_attn = bool(getattr(mod, "add_zero_attn", False))
    if bias_k is not None:  # add_bias_kv: one learned key and value after the keys
        k, v = (_append_row(b, t, learned) for t, learned in ((k, bias_k), (v, bias_v)))
    qh, kh, vh = (_heads(b, t, heads) for t in (q, k, v))
    if zero_attn:  # a zero key and value after those, per head
        kh, vh = (_append_row(b, t, None) for t in (kh, vh))
    attended, probs = attention(
        b,
        qh,
        kh,
        vh,
        meta_like(b.shape(qh)),
        mask=mask,
        causal=causal,
        op="MultiheadAttention",
        safe=safe,
    )
    merged = b.emit(
        "permute", [attended], {"perm": (0, 2, 1, 3)}, meta_like([n, length, heads, embed // heads])
    )
    merged = b.reshape(merged, meta_like([n, length, embed]))
    return _linear(b, merged, mod.out_proj.weight, mod.out_proj.bias), probs


def _append_row(b: FxBuilder, x: str, row: torch.Tensor | None) -> str:
    """``x`` (``(N, T, E)`` or ``(N, h, T, d)``) with one more step along ``T``: ``row``
    (``bias_k`` / ``bias_v``, shape ``(1, 1, E)``) for every sample, or zeros (stop 72:
    ``add_bias_kv`` and ``add_zero_attn``, as ``F.multi_head_attention_forward`` appends them
    after the projections and after the head split)."""
    shape = list(b.shape(x))
    extra = [*shape[:-2], 1, shape[-1]]
    if row is None:
        piece = b.const(np.zeros(extra, np.float32), "zero_attn")
    else:
        piece = b.const(row.detach().expand(*extra).contiguous(), "bias_kv")
    grown = [*shape[:-2], shape[-2] + 1, shape[-1]]
    return b.emit("cat", [x, piece], {"dim": len(shape) - 2}, meta_like(grown))


def _pad_keys(b: FxBuilder, mask: str, extra: int) -> str:
    """An additive mask over the keys with ``extra`` unmasked keys appended (``F.pad(mask,
    (0, extra))``, as PyTorch pads it for ``add_bias_kv`` / ``add_zero_attn``)."""
    shape = list(b.shape(mask))
    zeros = b.const(np.zeros([*shape[:-1], extra], np.float32), "pad")
    return b.emit(
        "cat", [mask, zeros], {"dim": len(shape) - 1}, meta_like([*shape[:-1], shape[-1] + extra])
    )


def _batch_first(b: FxBuilder, *inputs: str) -> tuple[str, ...]:
    """Each distinct input swapped to batch-first once (self-attention stays one tensor)."""
    swapped: dict[str, str] = {}
    for x in inputs:
        if x not in swapped:
            swapped[x] = _swap01(b, x)
    return tuple(swapped[x] for x in inputs)


def _mask(b: FxBuilder, mask_arg: Any, heads: int, batch: int, where: str) -> str | None:
    """An ``attn_mask`` of shape (L, S), or (N * heads, L, S) reshaped to (N, heads, L, S); a
    boolean one masks where it is ``True`` (the module's rule, the opposite of SDPA's)."""
    if mask_arg is None:
        return None
    mask = attention_mask(b, mask_arg, "MultiheadAttention", where, true_masks=True)
    shape = b.shape(mask)
    if len(shape) == 3:
        mask = b.reshape(mask, meta_like([batch, heads, shape[1], shape[2]]))
    return mask


def _key_padding(
    b: FxBuilder, padding_arg: Any, batch: int, keys: int, op: str, where: str
) -> str | None:
    """A ``key_padding_mask`` ``(N, S)`` as an additive mask ``(N, 1, 1, S)``: a boolean one
    ignores the keys where it is ``True`` (a graph input, a mask computed at run time or a
    constant), a float one is added as it is."""
    value = b.val(padding_arg)
    if value is None:  # absent, or a wrapper's parameter left at its default
        return None
    if isinstance(value, torch.Tensor):  # known at compile time
        arr = value.detach().cpu().numpy()
        arr = np.where(arr, MASKED, 0.0) if arr.dtype == np.bool_ else arr
        padding = b.const(arr.astype(np.float32), "padding")
    else:
        padding = b.tensor_arg(padding_arg)
        if padding in b.bools:
            fill = b.const(np.float32(MASKED), "masked")
            padding = b.emit("keep_where", [padding, fill], {}, meta_like(b.shape(padding)))
        elif b.g.values[padding].dtype != "float32":
            raise UnsupportedOp(op, where, "an integer key_padding_mask")
    if tuple(b.shape(padding)) != (batch, keys):
        raise UnsupportedOp(
            op, where, f"key_padding_mask of shape {b.shape(padding)}, not {(batch, keys)}"
        )
    return b.reshape(padding, meta_like([batch, 1, 1, keys]))


def _with_padding(b: FxBuilder, mask: str | None, padding: str) -> str:
    """``attn_mask + key_padding_mask`` as PyTorch merges them (a sum; masked is ``-inf``)."""
    if mask is None:
        return padding
    shape = np.broadcast_shapes(tuple(b.shape(mask)), tuple(b.shape(padding)))
    return b.emit("add", [mask, padding], {}, meta_like(shape))


def sdpa_path(batch_first: bool, self_attention: bool, need_weights: bool) -> bool:
    """Whether eager ``nn.MultiheadAttention`` (in eval, under ``torch.no_grad``) computes
    the call through ``scaled_dot_product_attention``, whose softmax gives a fully masked
    query probabilities 0 (output: ``out_proj``'s bias), rather than through an explicit
    softmax or the fused "fast path", which give NaN there (measured on torch 2.13, stop 68):
    ``need_weights=True`` takes the softmax, a batch-first self-attention the fast path,
    anything else SDPA. The compiled call follows the same rule (:func:`multi_head_attention`'s
    ``safe``)."""
    return not need_weights and not (batch_first and self_attention)


def _check_mha(mod: nn.MultiheadAttention, where: str) -> None:
    """(Since stop 72 ``add_bias_kv`` and ``add_zero_attn`` compile: :func:`_append_row`.)"""


def _attend(
    b: FxBuilder,
    mod: nn.MultiheadAttention,
    op: str,
    where: str,
    qkv: tuple[str, str, str],
    batch_first: bool,
    args: dict[str, Any],
) -> tuple[str, str | None]:
    """The call of ``nn.MultiheadAttention`` / ``F.multi_head_attention_forward``: ``qkv``
    (batch-first or sequence-first, as ``batch_first`` says), ``args`` the call's
    ``attn_mask``, ``key_padding_mask``, ``is_causal``, ``need_weights`` and
    ``average_attn_weights`` (fx arguments); returns (output, weights or None), the weights
    averaged over heads unless ``average_attn_weights`` is false."""
    query, key, value = qkv
    if len(b.shape(query)) != 3:
        raise UnsupportedOp(op, where, "unbatched (2-d) inputs")
    if not batch_first:
        query, key, value = _batch_first(b, query, key, value)
    batch = b.shape(query)[0]
    mask = _mask(b, args["attn_mask"], mod.num_heads, batch, where)
    causal = bool(b.val(args["is_causal"]))
    padding = _key_padding(b, args["key_padding_mask"], batch, b.shape(key)[1], op, where)
    if padding is not None:  # PyTorch then applies attn_mask as given (is_causal a hint)
        mask, causal = _with_padding(b, mask, padding), False
    extra = int(getattr(mod, "bias_k", None) is not None)
    extra += int(bool(getattr(mod, "add_zero_attn", False)))
    if extra and causal:
        raise UnsupportedOp(op, where, "is_causal with add_bias_kv / add_zero_attn")
    if extra and mask is not None:  # the appended keys are never masked
        mask = _pad_keys(b, mask, extra)
    safe = sdpa_path(batch_first, query == key == value, bool(b.val(args["need_weights"])))
    y, probs = multi_head_attention(
        b, mod, query, key, value, None if causal else mask, causal, safe
    )
    if not batch_first:
        y = _swap01(b, y)
    if not b.val(args["need_weights"]):
        return y, None
    if b.val(args["average_attn_weights"]):
        n, _, length, keys = b.shape(probs)
        return y, b.emit(
            "mean", [probs], {"dims": (1,), "keepdim": False}, meta_like([n, length, keys])
        )
    return y, probs


def _mha_module(b: FxBuilder, node: torch.fx.Node, out: Any) -> tuple[str, str | None]:
    """``nn.MultiheadAttention(query, key, value, key_padding_mask, need_weights, attn_mask,
    average_attn_weights, is_causal)``: (output, weights or None) (:func:`_attend`)."""
    mod = b.gm.get_submodule(str(node.target))
    assert isinstance(mod, nn.MultiheadAttention)
    _check_mha(mod, node.name)
    query, key, value = (
        b.tensor_arg(arg(node, i, name)) for i, name in enumerate(("query", "key", "value"))
    )
    args = {
        name: arg(node, i, name, default)
        for name, (i, default) in {
            "key_padding_mask": (3, None),
            "need_weights": (4, True),
            "attn_mask": (5, None),
            "average_attn_weights": (6, True),
            "is_causal": (7, False),
        }.items()
    }
    qkv = (query, key, value)
    return _attend(b, mod, "MultiheadAttention", node.name, qkv, mod.batch_first, args)


# F.multi_head_attention_forward's parameters, in order (its defaults: None / False below)
MHA_FUNCTION_ARGS = (
    "query", "key", "value", "embed_dim_to_check", "num_heads", "in_proj_weight",
    "in_proj_bias", "bias_k", "bias_v", "add_zero_attn", "dropout_p", "out_proj_weight",
    "out_proj_bias", "training", "key_padding_mask", "need_weights", "attn_mask",
    "use_separate_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "static_k",
    "static_v", "average_attn_weights", "is_causal",
)  # fmt: skip
MHA_FUNCTION_DEFAULTS = {"training": True, "need_weights": True, "average_attn_weights": True}
MHA_FUNCTION_WEIGHTS = (
    *("in_proj_weight", "in_proj_bias", "out_proj_weight", "out_proj_bias"),
    *("q_proj_weight", "k_proj_weight", "v_proj_weight"),
)


def _constant_tensor(
    b: FxBuilder, value: Any, name: str, where: str, op: str = "multi_head_attention_forward"
) -> torch.Tensor | None:
    """A weight argument known at compile time (a parameter, a concatenation of biases) as a
    tensor; None stays None, one computed at run time is refused by name."""
    value = b.val(value)
    if value is None or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, str) and value in b.g.consts:
        return torch.from_numpy(np.asarray(b.g.consts[value]))
    raise UnsupportedOp(op, where, f"{name} computed at run time")


def _mha_function(b: FxBuilder, node: torch.fx.Node, out: Any) -> tuple[str, str | None]:
    """``F.multi_head_attention_forward(query, key, value, embed_dim, num_heads, ...)``
    called as a function (WavLM; ``nn.MultiheadAttention`` as ``torch.export`` traces it):
    the weights, known at compile time, are given to :func:`multi_head_attention` as the
    module would hold them, and the call is lowered as the module's (:func:`_attend`;
    sequence-first inputs)."""
    where = node.name
    a = {
        name: arg(node, i, name, MHA_FUNCTION_DEFAULTS.get(name))
        for i, name in enumerate(MHA_FUNCTION_ARGS)
    }
    if b.val(a["bias_k"]) is not None or b.val(a["add_zero_attn"]):
        raise UnsupportedOp("multi_head_attention_forward", where, "bias_k / add_zero_attn")
    if b.val(a["static_k"]) is not None or b.val(a["static_v"]) is not None:
        raise UnsupportedOp("multi_head_attention_forward", where, "static_k / static_v")
    if b.val(a["training"]) and float(b.val(a["dropout_p"]) or 0.0) > 0:
        raise UnsupportedOp("multi_head_attention_forward", where, "dropout in training mode")
    weights = {name: _constant_tensor(b, a[name], name, where) for name in MHA_FUNCTION_WEIGHTS}
    separate = bool(b.val(a["use_separate_proj_weight"]))
    holder = SimpleNamespace(
        num_heads=int(b.val(a["num_heads"])),
        _qkv_same_embed_dim=not separate,
        in_proj_weight=None if separate else weights["in_proj_weight"],
        q_proj_weight=weights["q_proj_weight"],
        k_proj_weight=weights["k_proj_weight"],
        v_proj_weight=weights["v_proj_weight"],
        in_proj_bias=weights["in_proj_bias"],
        out_proj=SimpleNamespace(weight=weights["out_proj_weight"], bias=weights["out_proj_bias"]),
    )
    query, key, value = (b.tensor_arg(a[name]) for name in ("query", "key", "value"))
    mod = cast(nn.MultiheadAttention, holder)
    return _attend(b, mod, "multi_head_attention_forward", where, (query, key, value), False, a)


def _activation(b: FxBuilder, layer: nn.TransformerEncoderLayer, x: str, where: str) -> str:
    act = layer.activation
    if act is F.relu or isinstance(act, nn.ReLU):
        return b.emit("relu", [x], {}, meta_like(b.shape(x)))
    if act is F.gelu or (isinstance(act, nn.GELU) and act.approximate == "none"):
        return b.emit("gelu", [x], {}, meta_like(b.shape(x)))
    raise UnsupportedOp("TransformerEncoderLayer", where, f"activation {act!r}")


def _layer_norm(b: FxBuilder, norm: nn.LayerNorm, x: str) -> str:
    return b.layer_norm(
        x, norm.normalized_shape, norm.weight, norm.bias, norm.eps, meta_like(b.shape(x))
    )


def encoder_layer(
    b: FxBuilder,
    layer: nn.TransformerEncoderLayer,
    x: str,
    mask: str | None,
    causal: bool,
    where: str,
) -> str:
    """One ``nn.TransformerEncoderLayer`` on a batch-first IR value ``(N, L, E)``."""
    _check_mha(layer.self_attn, where)

    def self_attention(h: str) -> str:
        safe = sdpa_path(layer.self_attn.batch_first, True, False)
        return multi_head_attention(b, layer.self_attn, h, h, h, mask, causal, safe)[0]

    def feed_forward(h: str) -> str:
        inner = _activation(
            b, layer, _linear(b, h, layer.linear1.weight, layer.linear1.bias), where
        )
        return _linear(b, inner, layer.linear2.weight, layer.linear2.bias)

    def add(u: str, v: str) -> str:
        return b.emit("add", [u, v], {}, meta_like(b.shape(u)))

    if layer.norm_first:
        x = add(x, self_attention(_layer_norm(b, layer.norm1, x)))
        return add(x, feed_forward(_layer_norm(b, layer.norm2, x)))
    x = _layer_norm(b, layer.norm1, add(x, self_attention(x)))
    return _layer_norm(b, layer.norm2, add(x, feed_forward(x)))


def _encoder_input(
    b: FxBuilder, node: torch.fx.Node, layers: list[nn.TransformerEncoderLayer]
) -> tuple[str, str | None, bool]:
    """The (batch-first) input, mask and causal flag of an encoder (layer) call, the key
    padding mask merged into the mask. ``nn.TransformerEncoder``'s nested-tensor fast path
    (``use_nested_tensor``) zeroes the outputs at padded positions, depending on the mask's
    values (only right-aligned padding takes it): with a padding mask it is refused."""
    module = b.gm.get_submodule(str(node.target))
    name = type(module).__name__
    padding_arg = arg(node, 2, "src_key_padding_mask")
    if padding_arg is not None and getattr(module, "use_nested_tensor", False):
        raise UnsupportedOp(
            name,
            node.name,
            "src_key_padding_mask with the nested-tensor fast path (it zeroes padded outputs "
            "depending on the mask's values): build it with enable_nested_tensor=False",
        )
    x = b.tensor_arg(arg(node, 0, "src"))
    if len(b.shape(x)) != 3:
        raise UnsupportedOp(name, node.name, "unbatched (2-d) input")
    if not layers[0].self_attn.batch_first:
        x = _swap01(b, x)
    heads, batch = layers[0].self_attn.num_heads, b.shape(x)[0]
    mask_arg = arg(node, 1, "src_mask" if name.endswith("Layer") else "mask")
    causal = bool(b.val(arg(node, 3, "is_causal", False)))
    length = b.shape(x)[1]
    padding = _key_padding(b, padding_arg, batch, length, name, node.name)
    if padding is not None:  # the attention applies src_mask as given (is_causal a hint)
        return x, _with_padding(b, _mask(b, mask_arg, heads, batch, node.name), padding), False
    mask = None if causal else _mask(b, mask_arg, heads, batch, node.name)
    return x, mask, causal


def _encoder_layer_module(b: FxBuilder, node: torch.fx.Node, out: Any) -> str:
    layer = b.gm.get_submodule(str(node.target))
    assert isinstance(layer, nn.TransformerEncoderLayer)
    x, mask, causal = _encoder_input(b, node, [layer])
    y = encoder_layer(b, layer, x, mask, causal, node.name)
    return y if layer.self_attn.batch_first else _swap01(b, y)


def _encoder_module(b: FxBuilder, node: torch.fx.Node, out: Any) -> str:
    """``nn.TransformerEncoder``: its layers in turn, then its final norm if it has one."""
    encoder = b.gm.get_submodule(str(node.target))
    assert isinstance(encoder, nn.TransformerEncoder)
    layers = list(encoder.layers)
    x, mask, causal = _encoder_input(b, node, layers)
    for layer in layers:
        x = encoder_layer(b, layer, x, mask, causal, node.name)
    if encoder.norm is not None:
        if not isinstance(encoder.norm, nn.LayerNorm):
            raise UnsupportedOp("TransformerEncoder", node.name, f"norm {encoder.norm!r}")
        x = _layer_norm(b, encoder.norm, x)
    return x if layers[0].self_attn.batch_first else _swap01(b, x)


# torch._transformer_encoder_layer_fwd's parameters, in order
FAST_ENCODER_ARGS = (
    "src", "embed_dim", "num_heads", "qkv_weight", "qkv_bias", "proj_weight", "proj_bias",
    "use_gelu", "norm_first", "eps", "norm_weight_1", "norm_bias_1", "norm_weight_2",
    "norm_bias_2", "ffn_weight_1", "ffn_bias_1", "ffn_weight_2", "ffn_bias_2", "mask",
    "mask_type",
)  # fmt: skip


def _fast_encoder_layer(b: FxBuilder, node: torch.fx.Node, out: Any) -> str:
    """``torch._transformer_encoder_layer_fwd``: the fused fast path that
    ``nn.TransformerEncoderLayer`` takes in inference (batch-first, no grad), which is what
    dynamo records when a model under ``torch.no_grad()`` goes through ``torch.compile``.
    Its weights, known at compile time, are laid out as the module holds them and the layer
    is lowered as the module's (:func:`encoder_layer`). ``mask_type`` 0 is an attention mask
    ``(L, L)``, 1 a key padding mask ``(N, L)``, 2 the two merged ``(N, heads, L, L)``; the
    module has made them additive floats already."""
    where = node.name
    a = {name: arg(node, i, name) for i, name in enumerate(FAST_ENCODER_ARGS)}
    w = {
        name: _constant_tensor(b, a[name], name, where, "_transformer_encoder_layer_fwd")
        for name in FAST_ENCODER_ARGS[3:18]
        if name not in ("use_gelu", "norm_first", "eps")
    }
    eps = float(b.val(a["eps"]))
    embed = int(b.val(a["embed_dim"]))

    def norm(weight: str, bias: str) -> SimpleNamespace:
        return SimpleNamespace(normalized_shape=(embed,), weight=w[weight], bias=w[bias], eps=eps)

    attention_weights = SimpleNamespace(
        num_heads=int(b.val(a["num_heads"])),
        _qkv_same_embed_dim=True,
        in_proj_weight=w["qkv_weight"],
        in_proj_bias=w["qkv_bias"],
        out_proj=SimpleNamespace(weight=w["proj_weight"], bias=w["proj_bias"]),
        bias_k=None,
        add_zero_attn=False,
        batch_first=True,  # the fast path's only layout: a fully masked row NaN (sdpa_path)
    )
    layer = SimpleNamespace(
        self_attn=attention_weights,
        linear1=SimpleNamespace(weight=w["ffn_weight_1"], bias=w["ffn_bias_1"]),
        linear2=SimpleNamespace(weight=w["ffn_weight_2"], bias=w["ffn_bias_2"]),
        norm1=norm("norm_weight_1", "norm_bias_1"),
        norm2=norm("norm_weight_2", "norm_bias_2"),
        norm_first=bool(b.val(a["norm_first"])),
        activation=F.gelu if b.val(a["use_gelu"]) else F.relu,
    )
    x = b.tensor_arg(a["src"])
    if len(b.shape(x)) != 3:
        raise UnsupportedOp("_transformer_encoder_layer_fwd", where, "unbatched (2-d) input")
    batch, length = b.shape(x)[:2]
    mask_type = b.val(a["mask_type"])
    mask: str | None = None
    if b.val(a["mask"]) is not None:
        op = "_transformer_encoder_layer_fwd"
        if mask_type == 1:
            mask = _key_padding(b, a["mask"], batch, length, op, where)
        elif mask_type == 0:
            mask = _mask(b, a["mask"], attention_weights.num_heads, batch, where)
        else:
            mask = attention_mask(b, a["mask"], op, where, true_masks=True)
    fake = cast(nn.TransformerEncoderLayer, layer)
    return encoder_layer(b, fake, x, mask, False, where)


class _AttentionMasks(NamedTuple):
    """One attention's additive mask (or None) and causal flag, batch-first shapes."""

    mask: str | None
    causal: bool


def _masks(
    b: FxBuilder,
    node: torch.fx.Node,
    args: tuple[Any, Any, Any],
    heads: int,
    batch: int,
    keys: int,
) -> _AttentionMasks:
    """``(attn_mask, key_padding_mask, is_causal)`` fx arguments of one attention as the
    module passes them on: with a padding mask the two are merged and ``is_causal`` is only a
    hint; with ``is_causal`` true and no padding, the attention is causal (the mask, which
    PyTorch requires beside it, is then not read); ``is_causal`` None (a decoder's default:
    PyTorch checks whether the mask is the causal one) reads the mask as given."""
    op = type(b.gm.get_submodule(str(node.target))).__name__
    mask_arg, padding_arg, causal_arg = args
    padding = _key_padding(b, padding_arg, batch, keys, op, node.name)
    if padding is not None:
        merged = _with_padding(b, _mask(b, mask_arg, heads, batch, node.name), padding)
        return _AttentionMasks(merged, False)
    if bool(b.val(causal_arg)):
        return _AttentionMasks(None, True)
    return _AttentionMasks(_mask(b, mask_arg, heads, batch, node.name), False)


def decoder_layer(
    b: FxBuilder,
    layer: nn.TransformerDecoderLayer,
    x: str,
    memory: str,
    masks: tuple[_AttentionMasks, _AttentionMasks],
    where: str,
) -> str:
    """One ``nn.TransformerDecoderLayer`` (Vaswani et al. 2017, Sec. 3.1: self-attention,
    attention over the encoder's output ``memory``, feed-forward, each in a residual with a
    layer norm, before or after as ``norm_first`` says) on batch-first IR values."""
    _check_mha(layer.self_attn, where)
    _check_mha(layer.multihead_attn, where)
    own, cross = masks

    def self_attention(h: str) -> str:
        safe = sdpa_path(layer.self_attn.batch_first, True, False)
        return multi_head_attention(b, layer.self_attn, h, h, h, own.mask, own.causal, safe)[0]

    def memory_attention(h: str) -> str:
        mha = layer.multihead_attn
        safe = sdpa_path(mha.batch_first, False, False)
        return multi_head_attention(b, mha, h, memory, memory, cross.mask, cross.causal, safe)[0]

    def feed_forward(h: str) -> str:
        hidden = _linear(b, h, layer.linear1.weight, layer.linear1.bias)
        inner = _activation(b, layer, hidden, where)  # type: ignore[arg-type]
        return _linear(b, inner, layer.linear2.weight, layer.linear2.bias)

    def add(u: str, v: str) -> str:
        return b.emit("add", [u, v], {}, meta_like(b.shape(u)))

    blocks = (
        (self_attention, layer.norm1),
        (memory_attention, layer.norm2),
        (feed_forward, layer.norm3),
    )
    for block, norm in blocks:
        if layer.norm_first:
            x = add(x, block(_layer_norm(b, norm, x)))
        else:
            x = _layer_norm(b, norm, add(x, block(x)))
    return x


def _decode(
    b: FxBuilder,
    node: torch.fx.Node,
    layers: list[nn.TransformerDecoderLayer],
    tgt: str,
    memory: str,
    args: dict[str, Any],
) -> str:
    """``layers`` on ``tgt`` (and ``memory``) as the modules lay them out, ``args`` the
    decoder's mask arguments (fx); the result in the input's layout."""
    where = node.name
    first = layers[0]
    if len(b.shape(tgt)) != 3 or len(b.shape(memory)) != 3:
        raise UnsupportedOp(type(first).__name__, where, "unbatched (2-d) inputs")
    if not first.self_attn.batch_first:
        tgt, memory = _swap01(b, tgt), _swap01(b, memory)
    batch, length, keys = b.shape(tgt)[0], b.shape(tgt)[1], b.shape(memory)[1]
    heads = first.self_attn.num_heads
    own = _masks(
        b, node, (args["tgt_mask"], args["tgt_key_padding_mask"], args["tgt_is_causal"]),
        heads, batch, length,
    )  # fmt: skip
    cross = _masks(
        b, node,
        (args["memory_mask"], args["memory_key_padding_mask"], args["memory_is_causal"]),
        first.multihead_attn.num_heads, batch, keys,
    )  # fmt: skip
    for layer in layers:
        tgt = decoder_layer(b, layer, tgt, memory, (own, cross), where)
    return tgt


DECODER_ARGS = (
    "tgt", "memory", "tgt_mask", "memory_mask", "tgt_key_padding_mask",
    "memory_key_padding_mask", "tgt_is_causal", "memory_is_causal",
)  # fmt: skip


def _decoder_module(b: FxBuilder, node: torch.fx.Node, out: Any) -> str:
    """``nn.TransformerDecoderLayer`` / ``nn.TransformerDecoder`` (its layers in turn, then
    its final norm if it has one) on ``(tgt, memory)`` and their masks."""
    module = b.gm.get_submodule(str(node.target))
    args = {name: arg(node, i, name) for i, name in enumerate(DECODER_ARGS)}
    tgt, memory = b.tensor_arg(args["tgt"]), b.tensor_arg(args["memory"])
    if isinstance(module, nn.TransformerDecoderLayer):
        layers, norm = [module], None
    else:
        assert isinstance(module, nn.TransformerDecoder)
        layers, norm = list(module.layers), module.norm
    y = _decode(b, node, layers, tgt, memory, args)
    if norm is not None:
        if not isinstance(norm, nn.LayerNorm):
            raise UnsupportedOp(type(module).__name__, node.name, f"norm {norm!r}")
        y = _layer_norm(b, norm, y)
    return y if layers[0].self_attn.batch_first else _swap01(b, y)


TRANSFORMER_ARGS = (
    "src", "tgt", "src_mask", "tgt_mask", "memory_mask", "src_key_padding_mask",
    "tgt_key_padding_mask", "memory_key_padding_mask", "src_is_causal", "tgt_is_causal",
    "memory_is_causal",
)  # fmt: skip


def _transformer_module(b: FxBuilder, node: torch.fx.Node, out: Any) -> str:
    """``nn.Transformer(src, tgt, ...)``: its encoder on ``src`` (layers, final norm), then its
    decoder on ``tgt`` over that memory. A source padding mask with the encoder's
    nested-tensor fast path is refused, as for ``nn.TransformerEncoder``."""
    model = b.gm.get_submodule(str(node.target))
    assert isinstance(model, nn.Transformer)
    a = {name: arg(node, i, name) for i, name in enumerate(TRANSFORMER_ARGS)}
    encoder, decoder = model.encoder, model.decoder
    if not isinstance(encoder, nn.TransformerEncoder) or not isinstance(
        decoder, nn.TransformerDecoder
    ):
        raise UnsupportedOp("Transformer", node.name, "a custom encoder or decoder")
    if a["src_key_padding_mask"] is not None and getattr(encoder, "use_nested_tensor", False):
        raise UnsupportedOp(
            "Transformer", node.name,
            "src_key_padding_mask with the encoder's nested-tensor fast path (it zeroes "
            "padded outputs depending on the mask's values)",
        )  # fmt: skip
    enc_layers = list(encoder.layers)
    src, tgt = b.tensor_arg(a["src"]), b.tensor_arg(a["tgt"])
    if len(b.shape(src)) != 3:
        raise UnsupportedOp("Transformer", node.name, "unbatched (2-d) inputs")
    batch_first = enc_layers[0].self_attn.batch_first
    x = src if batch_first else _swap01(b, src)
    batch, length = b.shape(x)[0], b.shape(x)[1]
    own = _masks(
        b, node, (a["src_mask"], a["src_key_padding_mask"], a["src_is_causal"]),
        enc_layers[0].self_attn.num_heads, batch, length,
    )  # fmt: skip
    for layer in enc_layers:
        x = encoder_layer(b, layer, x, own.mask, own.causal, node.name)
    if encoder.norm is not None:
        x = _layer_norm(b, encoder.norm, x)
    memory = x if batch_first else _swap01(b, x)  # _decode takes the module's layout
    dec_args = {name: a.get(name) for name in DECODER_ARGS}
    y = _decode(b, node, list(decoder.layers), tgt, memory, dec_args)
    if decoder.norm is not None:
        y = _layer_norm(b, decoder.norm, y)
    return y if batch_first else _swap01(b, y)


ATTENTION_MODULES: dict[type, Handler] = {
    nn.MultiheadAttention: _mha_module,  # type: ignore[dict-item]
    nn.TransformerEncoderLayer: _encoder_layer_module,
    nn.TransformerEncoder: _encoder_module,
    nn.TransformerDecoderLayer: _decoder_module,
    nn.TransformerDecoder: _decoder_module,
    nn.Transformer: _transformer_module,
}
ATTENTION_FUNCTIONS: dict[Any, Handler] = {
    F.multi_head_attention_forward: _mha_function,  # type: ignore[dict-item]
    torch._transformer_encoder_layer_fwd: _fast_encoder_layer,
}
# modules whose forward cannot be traced (run-time branches): a bare one is wrapped so that
# torch.fx sees one leaf-module call (torch.nn modules are leaves to torch.fx)
LEAF_ROOTS = tuple(ATTENTION_MODULES)


class _WrappedAttention(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> Any:
        return self.inner(query, key, value, key_padding_mask=key_padding_mask)


class _WrappedEncoder(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, src: torch.Tensor) -> Any:
        return self.inner(src)


class _WrappedPair(_WrappedEncoder):
    """A decoder ``(tgt, memory)`` or ``nn.Transformer`` ``(src, tgt)``."""

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> Any:  # type: ignore[override]
        return self.inner(first, second)


def as_traceable(model: nn.Module) -> nn.Module:
    """``model`` itself, or, where it is one of :data:`LEAF_ROOTS`, a module that calls it with
    its tensor inputs (query, key, value; or src), so that ``torch.fx.symbolic_trace`` records
    one call of it instead of tracing its forward."""
    if isinstance(model, nn.MultiheadAttention):
        return _WrappedAttention(model)
    if isinstance(model, (nn.TransformerDecoderLayer, nn.TransformerDecoder, nn.Transformer)):
        return _WrappedPair(model)
    if isinstance(model, LEAF_ROOTS):
        return _WrappedEncoder(model)
    if isinstance(model, (nn.GRU, nn.LSTM, nn.RNN)):  # (x); the outputs come back flattened
        from provenml.compiler.frontend.torch_recurrent import _WrappedRecurrent

        return _WrappedRecurrent(model)
    return model
