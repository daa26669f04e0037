"""Stop 69: a probe of the graph passes' pairings, against eager. Stop 69 found a batch norm
after a linear dropped by the folding pass (a wrong result no op-by-op sweep could see: each
op alone was right). This probe compiles every pairing of a producer the passes rewrite
(linear on 2-d and 3-d inputs, Conv1d, Conv2d plain / grouped / depthwise / strided, Conv3d,
ConvTranspose2d) with a follower they fold or fuse (batch norm, batch norm + ReLU, a
per-channel scale, a constant shift, a residual with the producer's input or output, the
producer's output also returned), and reports the largest difference to eager per case.

    .venv/bin/python results/compiler.user_models/pass_pairs_stop69.py [--tuning]
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

import torch
from _probe import Case, compile_with, run_probe
from torch import nn

Producer = tuple[Callable[[], nn.Module], tuple[int, ...], int]

#: name -> (module factory, input shape, channels of its output's axis 1)
PRODUCERS: dict[str, Producer] = {
    "linear 2-d": (lambda: nn.Linear(6, 8), (5, 6), 8),
    "linear 3-d (batch, 8, features)": (lambda: nn.Linear(6, 6), (3, 8, 6), 8),
    "conv1d": (lambda: nn.Conv1d(4, 8, 3, padding=1), (2, 4, 17), 8),
    "conv2d": (lambda: nn.Conv2d(3, 8, 3, padding=1), (2, 3, 12, 12), 8),
    "conv2d no bias": (lambda: nn.Conv2d(3, 8, 3, bias=False), (1, 3, 12, 12), 8),
    "conv2d groups 2": (lambda: nn.Conv2d(4, 8, 3, padding=1, groups=2), (1, 4, 10, 10), 8),
    "conv2d depthwise": (lambda: nn.Conv2d(8, 8, 3, padding=1, groups=8), (1, 8, 10, 10), 8),
    "conv2d stride 2": (lambda: nn.Conv2d(3, 8, 3, 2, 1), (1, 3, 15, 15), 8),
    "conv3d": (lambda: nn.Conv3d(3, 8, 3, padding=1, bias=False), (1, 3, 5, 8, 8), 8),
    "conv transpose 2d": (lambda: nn.ConvTranspose2d(4, 8, 2, 2), (1, 4, 6, 6), 8),
}


def _norm(channels: int, rank: int) -> nn.Module:
    kind = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}[rank]
    norm = kind(channels)
    norm.running_mean.uniform_(-1.0, 1.0)
    norm.running_var.uniform_(0.5, 2.0)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    return norm


class Pair(nn.Module):
    """``producer`` then ``follower``; ``also_out``: the producer's output is returned too."""

    def __init__(self, producer: nn.Module, follower: str, channels: int, rank: int) -> None:
        super().__init__()
        self.producer, self.follower = producer, follower
        self.norm = _norm(channels, rank)
        shape = (1, channels) + (1,) * (rank - 2)
        self.scale = nn.Parameter(torch.rand(shape) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        y = self.producer(x)
        if self.follower == "batch norm":
            return self.norm(y)
        if self.follower == "batch norm + relu":
            return torch.relu(self.norm(y))
        if self.follower == "per-channel scale":
            return y * self.scale
        if self.follower == "constant shift":
            return y + 0.25
        if self.follower == "residual with the output":
            return self.norm(y) + y
        if self.follower == "output returned too":
            return self.norm(y), y
        raise ValueError(self.follower)


FOLLOWERS = [
    "batch norm",
    "batch norm + relu",
    "per-channel scale",
    "constant shift",
    "residual with the output",
    "output returned too",
]


#: ``--tuning``: compile as ``pc.compile``'s default does (the auto-tuner picks the schedules)
TUNING = "--tuning" in sys.argv


def cases() -> Iterator[Case]:
    for name, (factory, shape, channels) in PRODUCERS.items():
        for follower in FOLLOWERS:
            torch.manual_seed(0)
            model = Pair(factory(), follower, channels, len(shape)).eval()
            example, x = torch.randn(*shape), torch.randn(*shape)  # run on another input
            yield f"{name:34s} {follower}", model, (example,), (x,)


def main() -> None:
    run_probe(cases(), compile_with(tuning=TUNING), width=61, header=f"tuning {TUNING}")


if __name__ == "__main__":
    main()
