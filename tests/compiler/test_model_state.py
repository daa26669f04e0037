"""State a model keeps across calls (stop 70): a forward that changes a buffer, a tensor
attribute or a Python number gives a new result on every eager call, and compiled it would
freeze the example's state (silently before stop 70); it is refused naming what changed. A
lazily built cache (state that changes once, the result unchanged) still compiles."""

from __future__ import annotations

import operator

import pytest
import torch
from torch import nn

import provenml.compiler as pc
from provenml.errors import ProvenmlError


class BufferCounter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("steps", torch.zeros(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.steps.add_(1.0)
        return x * self.steps


class RunningState(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.state = torch.zeros(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x + self.state
        self.state = out.mean(0)
        return out


class CallCounter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(4, 4)
        self.inner.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inner.calls += 1
        return self.inner(x) * self.inner.calls


@pytest.mark.parametrize(
    ("model", "changed"),
    [(BufferCounter, "'steps'"), (RunningState, "'state'"), (CallCounter, "'inner.calls'")],
)
def test_state_changed_in_forward_is_refused(model: type, changed: str, cache: str) -> None:
    with pytest.raises(
        ProvenmlError, match=f"keeps state across calls: its forward changed {changed}"
    ):
        pc.compile(model().eval(), (torch.randn(2, 4),), tuning=False, cache_dir=cache)


class LazyTable(nn.Module):
    """Builds a table on its first call and reuses it: its state changes once, its result
    never."""

    def __init__(self) -> None:
        super().__init__()
        self.table: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.table is None:
            self.table = torch.linspace(0.0, 1.0, 4)
        return x * self.table


def test_a_cache_built_once_compiles(cache: str) -> None:
    model = LazyTable().eval()
    compiled = pc.compile(model, (torch.randn(2, 4),), threads=1, tuning=False, cache_dir=cache)
    x = torch.randn(2, 4)
    torch.testing.assert_close(compiled(x), model(x), rtol=0, atol=0)


def test_in_place_change_of_a_buffer_in_a_graph_module_is_refused() -> None:
    """A ``GraphModule`` whose graph changes a buffer in place (as TorchDynamo records it;
    ``torch.fx.symbolic_trace`` instead runs the change once, on the real buffer, and records
    nothing) is refused by the frontend itself."""
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    steps = graph.get_attr("steps")
    graph.output(graph.call_function(operator.mul, (x, graph.call_method("add_", (steps, 1.0)))))
    gm = torch.fx.GraphModule(BufferCounter(), graph).eval()
    with pytest.raises(pc.UnsupportedOp, match="in-place change of the model's tensor 'steps'"):
        pc.trace(gm, (torch.randn(2, 4),))


def test_the_example_inputs_are_left_alone(cache: str) -> None:
    """The eager runs take copies: a model refused for changing its input in place leaves the
    caller's example as it was."""

    class Doubles(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x.mul_(2)
            return x + 1

    example = torch.ones(2, 4)
    with pytest.raises(pc.UnsupportedOp, match="in-place change of a graph input"):
        pc.compile(Doubles().eval(), (example,), tuning=False, cache_dir=cache)
    assert torch.equal(example, torch.ones(2, 4))


def test_a_tensor_made_in_forward_and_changed_in_place_is_not_state(cache: str) -> None:
    """``torch.zeros(..)`` in forward is a new tensor each call; ``torch.fx`` keeps it as a
    ``_tensor_constant`` attribute, which the in-place refusal for parameters and buffers must
    not take for model state (the first version of stop 70's refusal did)."""

    class Counts(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            totals = torch.zeros(3, 4)
            return totals.index_add_(0, torch.tensor([0, 2, 2, 1]), x)

    model = Counts().eval()
    compiled = pc.compile(model, (torch.randn(4, 4),), threads=1, tuning=False, cache_dir=cache)
    x = torch.randn(4, 4)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-6, atol=1e-6)


def test_a_lazy_module_compiles(cache: str) -> None:
    """``nn.LazyLinear`` / ``nn.LazyConv2d`` hold uninitialized parameters until their first
    call, whose shape cannot be read: the state fingerprint took it (a crash in the first
    version of stop 70's check); the first call's materialised weights are state changed once,
    the result the same on a second call."""
    model = nn.Sequential(nn.LazyConv2d(4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(5)).eval()
    compiled = pc.compile(
        model, (torch.randn(2, 3, 6, 6),), threads=1, tuning=False, cache_dir=cache
    )
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
