"""Byte-level language models and a replayable batch stream for the schedule experiments.

Two models, one contract: ``model(x)`` takes bytes ``x`` of shape ``[B, W]`` and returns logits
``[B, W - model.offset, 256]`` for the next byte after each of the last ``W - offset`` positions.

* :class:`ByteNGramMLP`, a neural n-gram model over the last ``context`` bytes (the `small`
  preset: a few milliseconds a step on 2 cores);
* :class:`ByteTransformer`, a decoder-only transformer written nanoGPT-style (the `paper`
  preset).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from provenml.errors import ProvenmlError

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


def build_model(name: str, **kwargs: int) -> nn.Module:
    models = {"mlp": ByteNGramMLP, "transformer": ByteTransformer}
    if name not in models:
        raise ProvenmlError(f"unknown model {name!r}; choose one of {', '.join(models)}")
    return models[name](**kwargs)


def window_length(model: nn.Module, predictions_per_window: int) -> int:
    """Input window so that ``model`` makes ``predictions_per_window`` predictions."""
    return int(model.offset) + predictions_per_window  # type: ignore[arg-type]


class BatchStream:
    """Batch ``k`` is a fixed function of (data, seed, k): every arm that takes step ``k`` sees
    the same bytes, whatever branch it is on and whenever it asks."""

    def __init__(
        self, data: torch.Tensor, window: int, batch_size: int, steps: int, seed: int
    ) -> None:
        if data.numel() <= window + 1:
            raise ProvenmlError(f"corpus of {data.numel()} bytes is shorter than one window")
        generator = torch.Generator().manual_seed(seed)
        self.data = data
        self.window = window
        self.starts = torch.randint(
            0, data.numel() - window - 1, (steps, batch_size), generator=generator
        )
        self._offsets = torch.arange(window + 1)

    def __len__(self) -> int:
        return self.starts.shape[0]

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``[B, W]`` and next-byte targets ``[B, W]`` for optimizer step ``step``."""
        chunk = self.data[self.starts[step, :, None] + self._offsets].long()
        return chunk[:, :-1], chunk[:, 1:]


def lm_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean next-byte cross-entropy in nats per byte over the positions the model predicts."""
    logits = model(x)
    targets = y[:, y.shape[1] - logits.shape[1] :]
    return F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))


class Evaluator:
    """Validation loss (nats/byte) on a fixed set of windows, in chunks, without gradients."""

    def __init__(
        self, data: torch.Tensor, window: int, windows: int, seed: int = 1234, chunk: int = 4096
    ) -> None:
        stream = BatchStream(data, window, windows, 1, seed)
        self.x, self.y = stream.batch(0)
        self.chunk = chunk

    @torch.no_grad()
    def __call__(self, model: nn.Module, device: torch.device) -> float:
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        for start in range(0, self.x.shape[0], self.chunk):
            x = self.x[start : start + self.chunk].to(device)
            y = self.y[start : start + self.chunk].to(device)
            n = x.shape[0]
            total += float(lm_loss(model, x, y)) * n
            count += n
        model.train(was_training)
        loss = total / count
        if not math.isfinite(loss):
            return float("nan")
        return loss
