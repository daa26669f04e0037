"""Stop 72: ``torch.compile(model, backend="provenml")`` finds the compiler by name (the
``torch_dynamo_backends`` entry point in pyproject.toml), and ``torch.compile``'s ``options=``
and ``mode=`` reach it as compile options (before: no such backend; and through a callable,
``options=`` failed as an unknown compile option ``'options'``)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import provenml.compiler as pc
from provenml.compiler import api


@pytest.fixture(autouse=True)
def _fresh() -> None:
    torch._dynamo.reset()


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The compile options each graph the backend compiles was given."""
    opts: list[dict[str, Any]] = []
    real = api._compile_static

    def recording(gm: Any, example: Any, options: dict[str, Any]) -> Any:
        opts.append(dict(options))
        return real(gm, example, options)

    monkeypatch.setattr(api, "_compile_static", recording)
    return opts


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)).eval()


def test_the_backend_is_registered_by_name() -> None:
    from torch._dynamo.backends.registry import list_backends, lookup_backend

    assert "provenml" in list_backends(exclude_tags=())
    assert lookup_backend("provenml") is pc.backend


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"options": {"threads": 1, "tuning": False}}, {"mode": "max-autotune"}],
)
def test_compile_by_name(kwargs: dict[str, Any], seen: list[dict[str, Any]]) -> None:
    model, x = _net(), torch.randn(4, 8)
    compiled = torch.compile(model, backend="provenml", **kwargs)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
    assert len(seen) == 1
    for key, value in kwargs.get("options", {}).items():
        assert seen[0][key] == value
    assert "mode" not in seen[0] and "options" not in seen[0]


def test_options_through_a_callable_backend(seen: list[dict[str, Any]]) -> None:
    model, x = _net(), torch.randn(4, 8)
    compiled = torch.compile(model, backend=pc.backend, options={"tuning": False})
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
    assert seen[0]["tuning"] is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"options": {"thread": 1}}, "unknown compile option"),
        ({"mode": "fastest"}, "unknown torch.compile mode 'fastest'"),
    ],
)
def test_bad_options_are_named(kwargs: dict[str, Any], message: str) -> None:
    compiled = torch.compile(_net(), backend="provenml", **kwargs)
    with torch.no_grad(), pytest.raises(Exception, match=message):
        compiled(torch.randn(4, 8))
