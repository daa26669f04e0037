"""Inference batch norm folded into the producer's constant weight and bias (stop 69): after a
linear (a 2-d batch norm over its features; stops 1-68 dropped the batch norm there, a wrong
result), after Conv1d and Conv3d through the reshapes and permutes their lowerings end in,
and after a permute that keeps the features whole; left as a multiply-add where the channel
axis is not the producer's (a linear over a sequence, normalised over the sequence axis) or
the producer's output has another use. Every case exact against eager."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import provenml.compiler as pc


def _with_statistics(model: nn.Module) -> nn.Module:
    """Running statistics and affine parameters away from the identity, in eval mode."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1.0, 1.0)
            m.running_var.uniform_(0.5, 2.0)
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


class FeaturesLast(nn.Module):
    """A linear over (batch, sequence, features), then BatchNorm1d over the features."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 10)
        self.norm = nn.BatchNorm1d(10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(x).permute(0, 2, 1))


class SharedOutput(nn.Module):
    """A convolution whose output is used twice: by its batch norm and by a residual."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.norm(y) + y


FOLDED: dict[str, tuple[nn.Module, tuple[int, ...]]] = {
    "Linear + BatchNorm1d": (nn.Sequential(nn.Linear(6, 10), nn.BatchNorm1d(10)), (5, 6)),
    "Conv1d + BatchNorm1d": (
        nn.Sequential(nn.Conv1d(3, 8, 3, padding=1), nn.BatchNorm1d(8)),
        (2, 3, 20),
    ),
    "Conv3d + BatchNorm3d": (
        nn.Sequential(nn.Conv3d(3, 8, 3, padding=1, bias=False), nn.BatchNorm3d(8), nn.ReLU()),
        (1, 3, 6, 10, 10),
    ),
    "Conv2d + BatchNorm2d": (nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)), (1, 3, 9, 9)),
    "Linear, permute, BatchNorm1d": (FeaturesLast(), (2, 7, 6)),
}

KEPT: dict[str, tuple[nn.Module, tuple[int, ...]]] = {
    "Linear over a sequence + BatchNorm1d(sequence)": (
        nn.Sequential(nn.Linear(6, 6), nn.BatchNorm1d(4)),
        (3, 4, 6),
    ),
    "a shared convolution output": (SharedOutput(), (1, 4, 8, 8)),
}


def _folded_ops(model: nn.Module, x: torch.Tensor) -> list[str]:
    stages = dict(pc.optimize(pc.trace(model, [x]), pc.CompileOptions(tuning=False)))
    return [n.op for n in stages["fold_constants"].nodes]


@pytest.mark.parametrize("name", list(FOLDED))
def test_batch_norm_folds_into_the_producer(name: str, cache: str) -> None:
    module, shape = FOLDED[name]
    model = _with_statistics(module)
    x = torch.randn(*shape)
    ops = _folded_ops(model, x)
    assert "batch_norm" not in ops and "mul" not in ops and "add" not in ops, ops
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(KEPT))
def test_batch_norm_stays_a_multiply_add_where_it_cannot_fold(name: str, cache: str) -> None:
    module, shape = KEPT[name]
    model = _with_statistics(module)
    x = torch.randn(*shape)
    ops = _folded_ops(model, x)
    assert "mul" in ops, ops
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
