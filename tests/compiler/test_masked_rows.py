"""Fully masked attention rows as eager PyTorch computes them (stop 68). A query whose keys
are all masked gets probabilities 0 from ``scaled_dot_product_attention`` (PyTorch's "safe
softmax": the output row is 0) and NaN from ``torch.softmax`` and from the paths of
``nn.MultiheadAttention`` that do not go through SDPA (``need_weights=True``, the batch-first
self-attention fast path). Before, masked scores were the float32 minimum and such a row
attended uniformly to every key; partially masked rows are unchanged (the other tests)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import provenml.compiler as pc
from provenml.compiler.frontend.torch_attention import sdpa_path

B, H, L, S, D = 2, 2, 4, 5, 8
KEEP = torch.ones(L, S, dtype=torch.bool)
KEEP[1] = False  # query 1 sees no key
ADDITIVE = torch.zeros(L, S).masked_fill(~KEEP, float("-inf"))


class Sdpa(nn.Module):
    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask)


class SdpaMaskInput(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, m: torch.Tensor):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m)


class Manual(nn.Module):
    """softmax(q kᵀ / sqrt(d) + mask) v written out: the fused attention kernel, NaN rows."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.softmax(q @ k.transpose(-1, -2) / D**0.5 + ADDITIVE, -1) @ v


class Mha(nn.Module):
    """Self- or cross-attention of ``L`` queries over ``L`` keys, the second sequence's keys
    all padded, or query 1's keys all masked (masks as buffers: ``torch.fx`` traces the
    module call, whose batch-first self-attention eager runs on its fast path)."""

    def __init__(self, batch_first: bool, need_weights: bool, cross: bool, padding: bool):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=batch_first)
        self.need_weights, self.cross, self.padding = need_weights, cross, padding
        pad = torch.zeros(2, L, dtype=torch.bool)
        pad[1] = True
        self.register_buffer("pad", pad)
        self.register_buffer("mask", ~KEEP[:, :L])

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        kv = memory if self.cross else x
        if self.padding:
            return self.attn(x, kv, kv, key_padding_mask=self.pad, need_weights=self.need_weights)[
                0
            ]
        return self.attn(x, kv, kv, attn_mask=self.mask, need_weights=self.need_weights)[0]


def _close(model: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        expected = model(*inputs)
        got = pc.compile(model, inputs if len(inputs) > 1 else inputs[0])(*inputs)
    assert torch.equal(got.isnan(), expected.isnan())
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5, equal_nan=True)
    return expected


def _qkv() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return tuple(torch.randn(B, H, n, D, generator=gen) for n in (L, S, S))  # type: ignore[return-value]


@pytest.mark.parametrize("mask", [KEEP, ADDITIVE], ids=["boolean", "additive"])
def test_sdpa_gives_a_fully_masked_row_zero(mask: torch.Tensor) -> None:
    expected = _close(Sdpa(mask), *_qkv())
    assert (expected[:, :, 1] == 0).all() and not expected.isnan().any()


def test_sdpa_mask_as_input_and_written_out_softmax() -> None:
    q, k, v = _qkv()
    _close(SdpaMaskInput(), q, k, v, ADDITIVE)
    assert _close(Manual(), q, k, v)[:, :, 1].isnan().all()


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("padding", [False, True])
def test_multihead_attention_follows_eagers_path(
    batch_first: bool, need_weights: bool, cross: bool, padding: bool
) -> None:
    torch.manual_seed(1)
    model = Mha(batch_first, need_weights, cross, padding)
    x, memory = torch.randn(2, L, 8), torch.randn(2, L, 8)
    if not batch_first:
        x, memory = x.transpose(0, 1).contiguous(), memory.transpose(0, 1).contiguous()
    expected = _close(model, x, memory)
    assert expected.isnan().any() == (not sdpa_path(batch_first, not cross, need_weights))


@pytest.mark.parametrize("batch_first", [True, False])
def test_transformer_layers_with_a_fully_padded_sequence(batch_first: bool) -> None:
    torch.manual_seed(2)
    x = torch.randn(2, 6, 16)
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[1] = True
    if not batch_first:
        x = x.transpose(0, 1).contiguous()

    class Layers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.TransformerEncoderLayer(16, 2, 32, 0.0, batch_first=batch_first)
            self.dec = nn.TransformerDecoderLayer(16, 2, 32, 0.0, batch_first=batch_first)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return (self.enc(x, src_key_padding_mask=pad),
                    self.dec(x, x, memory_key_padding_mask=pad))  # fmt: skip

    model = Layers().eval()
    with torch.no_grad():
        expected = model(x)
        got = pc.compile(model, x)(x)
    for e, g in zip(expected, got, strict=True):
        assert torch.equal(g.isnan(), e.isnan())
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4, equal_nan=True)
