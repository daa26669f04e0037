"""Stop 72: the compiled code computes no gradients. Through ``torch.compile(model,
backend=provenml.compiler.backend)`` a training step's forward ran compiled and returned
detached outputs: ``loss.backward()`` failed ("element 0 of tensors does not require grad"),
and a loss with another term silently left the model without gradients. A graph that needs
gradients now runs in PyTorch (one warning); the graph TorchDynamo traces under
``torch.no_grad()`` is compiled as before. ``pc.compile``'s model warns when an input that
requires grad meets its detached result."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import provenml.compiler as pc
from provenml.compiler import api


@pytest.fixture(autouse=True)
def _fresh() -> None:
    torch._dynamo.reset()
    api._WARNED_GRADIENTS.clear()


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the graphs the backend hands to the compiler (one entry per compile)."""
    calls: list[int] = []
    real = api._compile_static

    def counting(*args: Any, **kwargs: Any) -> Callable[..., Any]:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "_compile_static", counting)
    return calls


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))


def test_training_through_the_backend_matches_eager(compiles: list[int]) -> None:
    eager, trained = _net(), _net()
    compiled = torch.compile(trained, backend=pc.backend)
    opt_eager = torch.optim.SGD(eager.parameters(), lr=0.1)
    opt_compiled = torch.optim.SGD(trained.parameters(), lr=0.1)
    x, y = torch.randn(32, 8), torch.randn(32, 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            for model, opt in ((eager, opt_eager), (compiled, opt_compiled)):
                loss = ((model(x) - y) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
    for a, b in zip(eager.parameters(), trained.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    messages = [str(w.message) for w in caught if "compiles for inference" in str(w.message)]
    assert len(messages) == 1, messages
    assert "torch.no_grad()" in messages[0]
    assert not compiles  # nothing was compiled for the training graph


def test_a_second_loss_term_still_reaches_the_model() -> None:
    """The silent case: with another differentiable term the backward ran, and the model's
    parameters got no gradient from the compiled part."""
    model = _net()
    compiled = torch.compile(model, backend=pc.backend)
    x = torch.randn(4, 8)
    extra = torch.ones(1, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (compiled(x).sum() + extra.sum()).backward()
    reference = _net()
    reference(x).sum().backward()
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert p.grad is not None
        torch.testing.assert_close(p.grad, q.grad)


def test_inference_is_still_compiled(compiles: list[int]) -> None:
    model = _net().eval()
    compiled = torch.compile(model, backend=pc.backend)
    x = torch.randn(4, 8)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either
        torch.testing.assert_close(compiled(x), model(x))
    assert len(compiles) == 1
    with torch.inference_mode():
        torch.testing.assert_close(compiled(-x), model(-x))


def test_frozen_parameters_with_grad_mode_on_are_compiled(compiles: list[int]) -> None:
    model = _net().eval().requires_grad_(False)
    compiled = torch.compile(model, backend=pc.backend)
    x = torch.randn(4, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(compiled(x), model(x))
    assert len(compiles) == 1


def test_the_grad_mode_graphs_are_kept_apart(compiles: list[int]) -> None:
    """TorchDynamo guards on grad mode: the no-grad call compiles, the next training call
    runs in PyTorch (with gradients), and the no-grad call after it is compiled code again."""
    model = _net()
    compiled = torch.compile(model, backend=pc.backend)
    x = torch.randn(4, 8)
    with torch.no_grad():
        compiled(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = compiled(x)
    assert out.grad_fn is not None
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
    assert len(compiles) == 1


def test_pc_compile_warns_once_when_an_input_requires_grad() -> None:
    model = _net().eval()
    x = torch.randn(4, 8)
    fast = pc.compile(model, (x,), tuning=False, threads=1)
    leaf = copy.deepcopy(x).requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad():
            fast(leaf)  # no autograd graph is wanted: no warning
        fast(x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fast(leaf)
        fast(leaf)
    assert out.grad_fn is None
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert "input 0 requires grad" in messages[0]
    assert "detached" in messages[0]
