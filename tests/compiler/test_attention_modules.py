"""PyTorch's attention modules through the compiler (stop 54): nn.MultiheadAttention
(self- and cross-attention, sequence-first, kdim / vdim, boolean and float masks, averaged and
per-head weights), nn.TransformerEncoderLayer (ReLU / GELU, post- and pre-norm) and
nn.TransformerEncoder (with a final norm, causal), bare or inside a model, against eager;
the attention fused into one kernel where the weights are not asked for."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from tests.compiler._user_models import PADDED, Padded, padding_mask
from torch import nn

import provenml.compiler as pc
from provenml.errors import ProvenmlError

E, HEADS, BATCH, LENGTH = 32, 4, 2, 10


class Around(nn.Module):
    """Calls ``fn(x, module)``; holds a boolean causal buffer and a float per-head mask."""

    def __init__(self, fn: Callable[..., torch.Tensor], module: nn.Module) -> None:
        super().__init__()
        self.fn, self.module = fn, module
        self.register_buffer("future", torch.ones(LENGTH, LENGTH, dtype=torch.bool).triu(1))
        self.register_buffer("bias", torch.randn(BATCH * HEADS, LENGTH, LENGTH))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x, self)


def _mha(**kwargs: object) -> nn.MultiheadAttention:
    return nn.MultiheadAttention(E, HEADS, **kwargs)  # type: ignore[arg-type]


def _layer(**kwargs: object) -> nn.TransformerEncoderLayer:
    return nn.TransformerEncoderLayer(E, HEADS, 64, **kwargs)  # type: ignore[arg-type]


def _seq_first(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(0, 1).contiguous()


CASES: dict[str, tuple[Callable[..., torch.Tensor], Callable[[], nn.Module], bool, bool]] = {
    # name: (forward, module, sequence-first input, fused attention expected)
    "self_no_weights": (
        lambda x, s: s.module(x, x, x, need_weights=False)[0],
        lambda: _mha(batch_first=True),
        False,
        True,
    ),
    "self_with_weights": (
        lambda x, s: s.module(x, x, x)[0] + s.module(x, x, x)[1].sum(-1, keepdim=True),
        lambda: _mha(batch_first=True),
        False,
        False,
    ),
    "per_head_weights": (
        lambda x, s: s.module(x, x, x, average_attn_weights=False)[1].sum(1),
        lambda: _mha(batch_first=True),
        False,
        False,
    ),
    "sequence_first": (
        lambda x, s: s.module(x, x, x, need_weights=False)[0],
        lambda: _mha(),
        True,
        True,
    ),
    "cross_kdim_vdim": (
        lambda x, s: s.module(x, x[:, :6, :16], x[:, :6, :8], need_weights=False)[0],
        lambda: _mha(batch_first=True, kdim=16, vdim=8),
        False,
        True,
    ),
    "bool_mask_buffer": (
        lambda x, s: s.module(x, x, x, attn_mask=s.future, need_weights=False)[0],
        lambda: _mha(batch_first=True),
        False,
        True,
    ),
    "float_mask_per_head": (
        lambda x, s: s.module(x, x, x, attn_mask=s.bias, need_weights=False)[0],
        lambda: _mha(batch_first=True),
        False,
        True,
    ),
    "encoder_layer_relu": (lambda x, s: s.module(x), lambda: _layer(batch_first=True), False, True),
    "encoder_layer_gelu_prenorm_seq_first": (
        lambda x, s: s.module(x),
        lambda: _layer(activation="gelu", norm_first=True),
        True,
        True,
    ),
    "encoder_final_norm_bool_mask": (
        lambda x, s: s.module(x, mask=s.future).mean(1),
        lambda: nn.TransformerEncoder(
            _layer(batch_first=True), 2, norm=nn.LayerNorm(E), enable_nested_tensor=False
        ),
        False,
        True,
    ),
    "encoder_causal": (
        lambda x, s: s.module(x, mask=s.future.float() * -1e9, is_causal=True),
        lambda: nn.TransformerEncoder(_layer(batch_first=True), 2, enable_nested_tensor=False),
        False,
        True,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_attention_module_matches_eager(name: str, cache: str) -> None:
    fn, make, seq_first, fused = CASES[name]
    torch.manual_seed(0)
    model = Around(fn, make()).eval()
    x = torch.randn(BATCH, LENGTH, E)
    x = _seq_first(x) if seq_first else x
    with torch.no_grad():
        ref = model(x)
    compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), ref, rtol=1e-5, atol=1e-5)
    assert ("kind=attention" in compiled.dump("plan_memory")) == fused


@pytest.mark.parametrize(
    "module",
    [
        nn.MultiheadAttention(E, HEADS, batch_first=True),
        nn.TransformerEncoderLayer(E, HEADS, 64, batch_first=True),
    ],
)
def test_a_bare_module_compiles(module: nn.Module, cache: str) -> None:
    """The module itself as the model (its forward has run-time branches torch.fx cannot
    trace): MultiheadAttention returns its (output, averaged weights) pair."""
    torch.manual_seed(0)
    module = module.eval()
    x = torch.randn(BATCH, LENGTH, E)
    inputs = (x, x, x) if isinstance(module, nn.MultiheadAttention) else (x,)
    with torch.no_grad():
        ref = module(*inputs)
    compiled = pc.compile(module, inputs, threads=2, tuning=False, cache_dir=cache)
    out = compiled(*inputs)
    for got, want in zip(
        out if isinstance(out, tuple) else (out,),
        ref if isinstance(ref, tuple) else (ref,),
        strict=True,
    ):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_sdpa_reads_a_whole_boolean_buffer_as_a_mask(cache: str) -> None:
    """A boolean buffer passed whole (a get_attr, not a computed slice) was made a float
    constant of 1 / 0 before it reached the mask: the scores got +1 / +0."""

    class Masked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("keep", torch.rand(LENGTH, LENGTH) > 0.3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q = x.view(BATCH, LENGTH, HEADS, E // HEADS).transpose(1, 2)
            return F.scaled_dot_product_attention(q, q, q, attn_mask=self.keep)

    torch.manual_seed(0)
    model, x = Masked().eval(), torch.randn(BATCH, LENGTH, E)
    compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("fn", "module", "why"),
    [
        (
            lambda x, s: s.module(x, src_key_padding_mask=s.future[:BATCH]),
            nn.TransformerEncoder(_layer(batch_first=True), 2),  # the nested-tensor fast path
            "enable_nested_tensor=False",
        ),
        (  # (add_bias_kv compiles since stop 72; with is_causal it is refused)
            lambda x, s: s.module(x, x, x, attn_mask=s.future, is_causal=True)[0],
            _mha(batch_first=True, add_bias_kv=True),
            "is_causal with add_bias_kv",
        ),
        (
            lambda x, s: s.module(x),
            nn.TransformerEncoderLayer(E, HEADS, 64, batch_first=True, activation=F.silu),
            "activation",
        ),
    ],
)
def test_what_the_attention_modules_refuse_is_named(
    fn: Callable[..., torch.Tensor], module: nn.Module, why: str
) -> None:
    model = Around(fn, module).eval()
    with pytest.raises(ProvenmlError, match=why):
        pc.compile(model, (torch.randn(BATCH, LENGTH, E),), tuning=False)


# -- key padding masks (stop 55) ------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(PADDED))
def test_key_padding_masks_match_eager(kind: str, cache: str) -> None:
    torch.manual_seed(0)
    model = Padded(kind, PADDED[kind]()).eval()
    x, pad = torch.randn(BATCH, LENGTH, E), padding_mask({1: 7})
    with torch.no_grad():
        ref = model(x, pad)
    compiled = pc.compile(model, (x, pad), threads=1, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x, pad), ref, rtol=1e-5, atol=1e-5)
    other = padding_mask({0: 4, 1: 9})  # another mask at run time, same shapes
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, other), model(x, other), rtol=1e-5, atol=1e-5)


def test_a_bare_module_takes_a_key_padding_mask(cache: str) -> None:
    torch.manual_seed(0)
    module = _mha(batch_first=True).eval()
    x, pad = torch.randn(BATCH, LENGTH, E), padding_mask({0: 6})
    compiled = pc.compile(module, (x, x, x, pad), threads=1, tuning=False, cache_dir=cache)
    with torch.no_grad():
        want = module(x, x, x, key_padding_mask=pad)
    for got, ref in zip(compiled(x, x, x, pad), want, strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ProvenmlError, match="compiled for a boolean tensor"):
        compiled(x, x, x, pad.float())


# -- add_bias_kv and add_zero_attn (stop 72) ------------------------------------------------------
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize(("bias_kv", "zero_attn"), [(True, False), (False, True), (True, True)])
def test_bias_kv_and_zero_attn_match_eager(
    batch_first: bool, need_weights: bool, bias_kv: bool, zero_attn: bool, cache: str
) -> None:
    """A learned key and value appended after the projections and a zero one after the head
    split, with a float ``attn_mask`` and a ``key_padding_mask`` padded for them (unmasked);
    refused before stop 72."""
    torch.manual_seed(0)
    module = nn.MultiheadAttention(
        E, HEADS, add_bias_kv=bias_kv, add_zero_attn=zero_attn, batch_first=batch_first
    ).eval()
    keys = LENGTH + 2
    mask, padding = torch.randn(LENGTH, keys), torch.zeros(BATCH, keys, dtype=torch.bool)
    padding[1, -3:] = True

    def call(x: torch.Tensor, kv: torch.Tensor, s: nn.Module) -> tuple[torch.Tensor, ...]:
        out = s.module(
            x, kv, kv, key_padding_mask=padding, attn_mask=mask, need_weights=need_weights
        )
        return out if need_weights else out[:1]

    class Cross(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = module

        def forward(self, x: torch.Tensor, kv: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return call(x, kv, self)

    def inputs() -> tuple[torch.Tensor, torch.Tensor]:
        q, kv = torch.randn(BATCH, LENGTH, E), torch.randn(BATCH, keys, E)
        return (q, kv) if batch_first else (q.transpose(0, 1), kv.transpose(0, 1))

    model = Cross().eval()
    compiled = pc.compile(model, inputs(), tuning=False, threads=1, cache_dir=cache)
    other = inputs()
    with torch.no_grad():
        for got, want in zip(compiled(*other), model(*other), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
