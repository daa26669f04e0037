"""How the model is called (stop 70): a ``forward(self, *inputs)`` compiled to a graph of no
inputs before (``torch.fx`` made one placeholder of the tuple; the call then failed with
"compiled graph takes 0 inputs, got 2"); a model class's own ``__call__`` was skipped; a
TorchScript module inside the model was refused as ``Tensor.forward``, now by what it is."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import provenml.compiler as pc


class Sum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, first: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        total = self.proj(first)
        for x in rest:
            total = total + x
        return total


@pytest.mark.parametrize("count", [1, 2, 3])
def test_forward_with_star_args(count: int, cache: str) -> None:
    model = Sum().eval()
    example = tuple(torch.randn(2, 4) for _ in range(count))
    compiled = pc.compile(model, example, threads=1, tuning=False, cache_dir=cache)
    inputs = tuple(torch.randn(2, 4) for _ in range(count))
    with torch.no_grad():
        torch.testing.assert_close(compiled(*inputs), model(*inputs), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "make", [torch.jit.script, lambda m: torch.jit.trace(m, torch.randn(2, 4))]
)
def test_a_torchscript_submodule_is_refused_by_name(make: object, cache: str) -> None:
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = make(nn.Linear(4, 4))  # type: ignore[operator]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x) * 2

    with pytest.raises(pc.UnsupportedOp, match=r"TorchScript module.*compile the nn.Module"):
        pc.compile(Model().eval(), (torch.randn(2, 4),), tuning=False, cache_dir=cache)


class DoublesThenCalls(nn.Module):
    """A model whose class overrides ``__call__`` (pre- and post-processing around forward)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return super().__call__(x * 2) + 1


def test_a_root_that_overrides_call(cache: str) -> None:
    """``torch.fx`` traces the root's ``forward`` directly, so the class's ``__call__`` was
    skipped before stop 70 (2.0 off); it is now called (a submodule's always was)."""
    model = DoublesThenCalls().eval()
    compiled = pc.compile(model, (torch.randn(2, 4),), threads=1, tuning=False, cache_dir=cache)
    x = torch.randn(2, 4)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-6, atol=1e-6)


def test_an_autocast_region_warns_that_it_compiles_in_float32(cache: str) -> None:
    """``torch.autocast`` inside forward: torch.fx runs it while tracing and records nothing,
    so the region compiles in float32; since stop 70 the compile says so (the result is the
    float32 one), and ``torch.autocast`` is left as it was."""
    enter = torch.autocast.__enter__

    class Autocast(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(16, 16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y = self.linear(x)
            return y.float()

    model = Autocast().eval()
    with pytest.warns(UserWarning, match=r"autocast regions \(bfloat16\) compile in float32"):
        compiled = pc.compile(model, (torch.randn(2, 16),), tuning=False, cache_dir=cache)
    assert torch.autocast.__enter__ is enter
    x = torch.randn(2, 16)
    torch.testing.assert_close(compiled(x), model.linear(x), rtol=1e-5, atol=1e-5)
