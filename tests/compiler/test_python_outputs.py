"""Outputs that are Python values (stop 70): a ``None`` among a model's outputs (a loss it did
not compute, attention weights it was not asked for) was refused, a size refused, and a
number came back as a 0-d tensor; they are now returned as the model returns them, around the
compiled tensors, through ``pc.compile`` and the ``torch.compile`` backend."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import provenml.compiler as pc


class WithExtras(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, 3)
        self.attention = nn.MultiheadAttention(4, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        attended, weights = self.attention(x, x, x, need_weights=False)  # weights is None
        return {
            "logits": self.head(attended),
            "loss": None,
            "weights": weights,
            "tokens": x.shape[1],
            "scale": 0.5,
        }


def _check(got: Any, want: Any) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-5)
        else:
            assert got[key] == value and type(got[key]) is type(value), key


def test_python_values_among_the_outputs(cache: str) -> None:
    model = WithExtras().eval()
    compiled = pc.compile(model, (torch.randn(2, 5, 4),), threads=1, tuning=False, cache_dir=cache)
    x = torch.randn(2, 5, 4)
    with torch.no_grad():
        _check(compiled(x), model(x))


def test_python_values_through_the_backend() -> None:
    torch._dynamo.reset()
    model = WithExtras().eval()
    compiled = torch.compile(model, backend=pc.backend)
    x = torch.randn(2, 5, 4)
    with torch.no_grad():
        _check(compiled(x), model(x))


def test_a_model_of_no_tensor_output_is_refused(cache: str) -> None:
    class Sizes(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[int, int]:
            return x.shape[0], x.shape[1]

    with pytest.raises(pc.UnsupportedOp, match="no tensor among the outputs"):
        pc.compile(Sizes().eval(), (torch.randn(2, 3),), tuning=False, cache_dir=cache)
