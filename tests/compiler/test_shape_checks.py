"""Stop 72: code that tests its inputs' shapes (``if q.shape != k.shape: raise``,
``if x.dim() == 4``; DenseCL's loss validates its views so) failed ``torch.fx``'s tracing and
then TorchDynamo's (on a step counter read with ``int(buffer)``), so the model was refused.
The frontend now traces again with the example's shapes carried by the proxies
(``MetaHookTracer``), and reads a 0-d integer or boolean buffer as its value. A test of a
tensor's *values* must still be refused, not baked in from the example."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import provenml.compiler as pc
from provenml.errors import ProvenmlError


class ShapeChecked(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(6, 6)
        self.register_buffer("steps", torch.tensor(7))
        self.warmup = 5

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        if q.shape != k.shape or q.dim() != 3:
            raise ValueError("q and k must be (batch, tokens, 6) alike")
        scores = self.proj(q) @ k.transpose(1, 2)
        if q.shape[1] % 2:  # an odd number of tokens: drop the last
            scores = scores[:, :-1]
        weight = 0.0 if int(self.steps) < self.warmup else 1.0
        return scores.softmax(-1) * weight


class ValueTested(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # depends on the values: no static graph holds both branches
            return x * 2
        return -x


@pytest.mark.parametrize("tokens", [4, 5])
def test_shape_tests_trace_with_the_example_shapes(tokens: int) -> None:
    torch.manual_seed(0)
    model = ShapeChecked().eval()
    q, k = torch.randn(2, tokens, 6), torch.randn(2, tokens, 6)
    fast = pc.compile(model, (q, k), tuning=False, threads=1)
    other = (torch.randn(2, tokens, 6), torch.randn(2, tokens, 6))
    with torch.no_grad():
        torch.testing.assert_close(fast(*other), model(*other))
    assert float(fast(*other).abs().sum()) > 0  # the counter's value (7 >= 5) was read


def test_a_test_of_values_is_still_refused() -> None:
    x = torch.ones(3)
    with pytest.raises(ProvenmlError, match="could not trace"):
        pc.compile(ValueTested().eval(), (x,), tuning=False, threads=1)
