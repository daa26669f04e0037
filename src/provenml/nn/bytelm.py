"""Byte-level language models: ``model(x)`` takes bytes ``x`` of shape ``[B, W]`` and returns
logits ``[B, W - model.offset, 256]`` for the next byte after each of the last ``W - offset``
positions (shared by the schedule and the data-selection experiments).

* :class:`ByteNGramMLP`, a neural n-gram model over the last ``context`` bytes;
* :class:`ByteTransformer`, a decoder-only transformer written nanoGPT-style (Radford et al.
  2019's GPT-2 block: pre-norm, causal self-attention, 4x GELU MLP).

Usage::

    import torch
    from provenml.nn import ByteTransformer

    model = ByteTransformer(dim=64, layers=2, heads=4, context=64)
    logits = model(torch.randint(0, 256, (8, 64)))   # [8, 64, 256]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from provenml.errors import ProvenmlError

__all__ = ["VOCAB", "Block", "ByteNGramMLP", "ByteTransformer", "CausalSelfAttention"]

VOCAB = 256


class ByteNGramMLP(nn.Module):
    """Embed each of the last ``context`` bytes, concatenate, two GELU layers, byte logits."""

    def __init__(self, context: int = 16, embed: int = 16, hidden: int = 256) -> None:
        super().__init__()
        self.context = context
        self.offset = context - 1
        self.embed = nn.Embedding(VOCAB, embed)
        self.mlp = nn.Sequential(
            nn.Linear(context * embed, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, VOCAB),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] < self.context:
            raise ProvenmlError(f"ByteNGramMLP needs windows of >= {self.context} bytes")
        windows = x.unfold(1, self.context, 1)  # [B, W - context + 1, context]
        return self.mlp(self.embed(windows).flatten(-2))


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ProvenmlError(f"model width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ByteTransformer(nn.Module):
    """A small GPT over bytes: token + learned position embeddings, pre-norm blocks."""

    def __init__(self, dim: int = 64, layers: int = 2, heads: int = 4, context: int = 64) -> None:
        super().__init__()
        self.context = context
        self.offset = 0
        self.tok = nn.Embedding(VOCAB, dim)
        self.pos = nn.Embedding(context, dim)
        self.blocks = nn.Sequential(*(Block(dim, heads) for _ in range(layers)))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, VOCAB, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.context:
            raise ProvenmlError(f"window of {x.shape[1]} bytes exceeds context {self.context}")
        positions = torch.arange(x.shape[1], device=x.device)
        return self.head(self.ln(self.blocks(self.tok(x) + self.pos(positions))))
