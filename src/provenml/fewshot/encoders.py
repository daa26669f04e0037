"""Encoders: any ``nn.Module`` mapping a batch of samples ``[M, ...]`` to features ``[M, d]``
with an ``out_dim`` attribute. Two small ones for 1-D signals and flat vectors are here; a
user's own CNN or a pretrained backbone works the same way."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from provenml.errors import ProvenmlError


@runtime_checkable
class Encoder(Protocol):
    """What the few-shot pipeline needs from an encoder."""

    out_dim: int

    def __call__(self, x: Tensor) -> Tensor: ...


class Conv1dEncoder(nn.Module):
    """A small 1-D CNN for signals ``[M, length]`` or ``[M, channels, length]``: conv blocks
    (conv, batch norm, ReLU, max-pool by 2), then global average pooling and a linear map."""

    def __init__(
        self, in_channels: int = 1, channels: Sequence[int] = (16, 32, 32), out_dim: int = 64
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers += [
                nn.Conv1d(previous, width, kernel_size=5, padding=2, bias=False),
                nn.BatchNorm1d(width),
                nn.ReLU(),
                nn.MaxPool1d(2),
            ]
            previous = width
        self.features = nn.Sequential(*layers)
        self.out = nn.Linear(2 * previous, out_dim)
        self.in_channels, self.out_dim = in_channels, out_dim

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.shape[1] != self.in_channels:
            raise ProvenmlError(
                f"Conv1dEncoder expects [M, length] or [M, {self.in_channels}, length], "
                f"got {list(x.shape)}"
            )
        h = self.features(x)
        return self.out(torch.cat([h.mean(-1), h.amax(-1)], dim=-1))


class MLPEncoder(nn.Module):
    """A multilayer perceptron on flat inputs ``[M, in_dim]``."""

    def __init__(self, in_dim: int, hidden: Sequence[int] = (128, 128), out_dim: int = 64) -> None:
        super().__init__()
        dims = [in_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(dims[-1], out_dim))
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))


@torch.no_grad()
def encode(encoder: nn.Module, x: Tensor, batch_size: int = 2048) -> Tensor:
    """Features of all of ``x`` in eval mode, in chunks (the encoder's mode is restored)."""
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    try:
        chunks = [encoder(x[i : i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
    finally:
        encoder.train(was_training)
    return torch.cat(chunks)
