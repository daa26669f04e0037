"""Stop 73: refusals that name a way round. Control flow on the inputs' values (``if
x.sum() > 0``) cannot be one static graph; the message says so and points at ``torch.where``
and at the ``torch.compile`` backend, which compiles the graphs on either side of the branch
(checked here: both sides exact, both compiled). A NumPy call on ``.numpy()`` is named as one."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import provenml.compiler as pc
from provenml.compiler import api
from provenml.errors import ProvenmlError

OPTS = {"tuning": False, "threads": 1}


class Branch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.first(x))
        if h.sum() > 0:
            return self.second(h)
        return -self.second(h)


class LoopFromItem(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(int(x.abs().max().item()) + 1):
            x = torch.tanh(x)
        return x


class NumpyMean(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float(x.detach().numpy().mean())


@pytest.mark.parametrize("model", [Branch(), LoopFromItem()], ids=["branch", "loop"])
def test_control_flow_on_values_names_the_ways_round(model: nn.Module) -> None:
    with pytest.raises(ProvenmlError, match="depends on its inputs' values") as refused:
        pc.compile(model.eval(), (torch.rand(4, 8),), **OPTS)
    assert "torch.where" in str(refused.value) and "backend='provenml'" in str(refused.value)


def test_a_numpy_call_is_named() -> None:
    with pytest.raises(ProvenmlError, match=r"NumPy's mean \(on a tensor's .numpy\(\)"):
        pc.compile(NumpyMean().eval(), (torch.rand(4, 8),), **OPTS)


def test_the_backend_compiles_both_sides_of_the_branch(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = Branch().eval()
    built: list[int] = []
    real = api._compile_static

    def counting(gm: Any, example_inputs: Any, opts: Any) -> Any:
        built.append(len(example_inputs))
        return real(gm, example_inputs, opts)

    monkeypatch.setattr(api, "_compile_static", counting)
    torch._dynamo.reset()
    fast = torch.compile(model, backend="provenml", options=OPTS)
    sides = set()
    with torch.no_grad():
        for scale in (1.0, -1.0, 1.0, -1.0):
            x = torch.rand(4, 8) * scale * 4
            sides.add(bool(torch.tanh(model.first(x)).sum() > 0))
            assert torch.allclose(fast(x), model(x), atol=1e-6)
    assert sides == {True, False}
    assert len(built) >= 3  # the graph before the branch, and one after it on each side


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_a_lower_or_double_precision_model_is_told_to_use_float(dtype: torch.dtype) -> None:
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU()).eval().to(dtype)
    with pytest.raises(ProvenmlError, match=r"compiles in float32: input 0 is torch\.") as refused:
        pc.compile(model, (torch.randn(2, 8, dtype=dtype),), **OPTS)
    assert f"parameters are {dtype}" in str(refused.value) and "model.float()" in str(refused.value)
    fast = pc.compile(model.float(), (torch.randn(2, 8),), **OPTS)  # the way round compiles
    x = torch.randn(2, 8)
    assert torch.allclose(fast(x), model(x), atol=1e-6)
