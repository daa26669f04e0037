"""Stop 74: in-place changes through views, as users write them. ``torch.fx`` records ``v *=
2`` on a tensor as ``v * 2``: ``v = y[:, :2]; v *= 2; return y`` compiled to a model that left
``y`` unchanged (1.3 off, silently), through ``pc.compile`` and the ``torch.compile`` backend
alike; ``y[:, 0].add_(3)`` was refused, and through the backend, whose partitions compiled
the view apart from its change, came out unchanged. Now a trace that computes other values
than the model is taken again through TorchDynamo, augmented assignments on tensors are in
place, a changed view is written back into its base, views read after their base changes are
taken again, and the backend keeps views of changed tensors in PyTorch
(``results/compiler.user_models/in_place_views_stop74.py``: 13 habits x 3 routes, 13 wrong
and 16 refused before, 0 and 0 now)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
from torch import nn

import provenml.compiler as pc
from provenml.compiler.frontend.torch_fx import changed_views

OPTS = {"tuning": False, "threads": 1}


class Habit(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def scale_a_view(x: torch.Tensor) -> torch.Tensor:
    y = x * 1.0
    v = y[:, :2]
    v *= 2
    return y


def add_into_a_view_then_read_both(x: torch.Tensor) -> torch.Tensor:
    y = x + 1
    v = y[:, :2]
    v += 3
    return v.sum() + y


def method_on_a_column(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y[:, 0].add_(3)
    return y


def alias_then_augmented(x: torch.Tensor) -> torch.Tensor:
    y = x + 1
    z = y
    y += 3
    return z * 2


def view_of_a_view(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    z = y[0]
    z[1] += 5
    return y


def transposed_view(x: torch.Tensor) -> torch.Tensor:
    y = x + 0
    y.t().add_(1)
    return y


def reshaped_view(x: torch.Tensor) -> torch.Tensor:
    y = x * 2
    flat = y.view(-1)
    flat[:3] = 0
    return y


def two_views_one_changed(x: torch.Tensor) -> torch.Tensor:
    y = x + 0
    a, b = y[:, :2], y[:, 2:]
    a *= 2
    return b.sum() + y


def size_augmented(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[1]
    n *= 2  # (an int: rebound, not changed in place)
    return torch.cat([x, x], 1).reshape(-1, n)


HABITS = [
    scale_a_view,
    add_into_a_view_then_read_both,
    method_on_a_column,
    alias_then_augmented,
    view_of_a_view,
    transposed_view,
    reshaped_view,
    two_views_one_changed,
    size_augmented,
]


def _compiled(model: nn.Module, x: torch.Tensor, route: str) -> Callable[..., torch.Tensor]:
    if route == "pc.compile":
        return pc.compile(model, (x,), **OPTS)
    if route == "backend":
        torch._dynamo.reset()
        return torch.compile(model, backend="provenml", options=OPTS)
    return pc.compile(torch.export.export(model, (x,)), (x,), **OPTS)


@pytest.mark.parametrize("route", ["pc.compile", "backend", "torch.export"])
@pytest.mark.parametrize("habit", HABITS, ids=lambda f: f.__name__)
def test_an_in_place_change_through_a_view_compiles_as_eager(
    habit: Callable[[torch.Tensor], torch.Tensor], route: str
) -> None:
    model = Habit(habit).eval()
    x = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # (the backend compiled it whole)
        fast = _compiled(model, x, route)
        other = torch.randn(4, 4)
        with torch.no_grad():
            torch.testing.assert_close(fast(other.clone()), model(other.clone()))


def test_a_change_through_a_view_with_no_inverse_is_refused_where_it_shows() -> None:
    def through_select(x: torch.Tensor) -> torch.Tensor:
        y = x + 0
        y.select(1, 0).mul_(2)  # (a select has no write-back here)
        return y

    with pytest.raises(pc.UnsupportedOp, match=r"in-place change of a view.*read after it"):
        pc.compile(Habit(through_select).eval(), (torch.randn(3, 3),), **OPTS)


def test_the_backend_keeps_views_of_changed_tensors_in_pytorch() -> None:
    """A graph the backend must partition (``digamma`` is not compiled): the transpose whose
    change shows in ``y`` runs in PyTorch, with its in-place change, not as a compiled copy."""

    def partitioned(x: torch.Tensor) -> torch.Tensor:
        y = x.abs() + 1
        y.t().add_(torch.digamma(y[0]))
        return y * 2

    model = Habit(partitioned).eval()
    gm = torch.fx.symbolic_trace(model)
    pinned = changed_views(gm)
    assert any(n.startswith("t") for n in pinned) and any(n.startswith("add_") for n in pinned)
    torch._dynamo.reset()
    fast = torch.compile(model, backend="provenml", options=OPTS)
    x = torch.rand(3, 3)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        torch.testing.assert_close(fast(x.clone()), model(x.clone()))


def test_a_tensor_made_in_forward_and_changed_is_not_changed_by_tracing() -> None:
    """The recorder changes a tensor torch.fx keeps as an attribute on a copy: traced twice
    (the faithfulness check, a run after a rewrite), the attribute stays as forward made it."""

    class Counts(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            totals = torch.zeros(3, 4)
            totals[1:] += 1
            return totals.index_add_(0, torch.tensor([0, 2, 2, 1]), x)

    model = Counts().eval()
    fast = pc.compile(model, (torch.randn(4, 4),), **OPTS)
    x = torch.randn(4, 4)
    torch.testing.assert_close(fast(x), model(x))
