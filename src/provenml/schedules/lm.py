"""Byte-level language models and a replayable batch stream for the schedule experiments.

The models live in :mod:`provenml.nn.bytelm` (shared with ``provenml.selection``) and are
re-exported here. Two models, one contract: ``model(x)`` takes bytes ``x`` of shape
``[B, W]`` and returns logits ``[B, W - model.offset, 256]`` for the next byte after each of
the last ``W - offset`` positions.

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

from provenml.core.registry import Registry
from provenml.errors import ProvenmlError
from provenml.nn.bytelm import (  # the models live in the shared layer (also used by selection)
    VOCAB,
    Block,
    ByteNGramMLP,
    ByteTransformer,
    CausalSelfAttention,
)

__all__ = [
    "VOCAB",
    "BatchStream",
    "Block",
    "ByteNGramMLP",
    "ByteTransformer",
    "CausalSelfAttention",
    "Evaluator",
    "build_model",
    "lm_loss",
    "window_length",
]


#: The byte-level language models by name.
MODELS: Registry[type[nn.Module]] = Registry("model", normalize=str)
MODELS.register("mlp", ByteNGramMLP)
MODELS.register("transformer", ByteTransformer)


def build_model(name: str, **kwargs: int) -> nn.Module:
    """The model ``name`` (``mlp`` or ``transformer``) built with ``kwargs``."""
    model: nn.Module = MODELS.build(name, **kwargs)
    return model


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
