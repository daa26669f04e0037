"""Outputs nested as the model returns them (stop 69): a dict (keys in the model's order), a
nested tuple, a list, a module's tuple inside a dict; each leaf exact against eager on a new
input, the containers of the same types. Before, a dict or a nested tuple was refused and a
list came back as a tuple."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import provenml.compiler as pc


class Heads(nn.Module):
    """A detection-style model: a trunk, then a dict of heads (keys not in sorted order)."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(8, 16)
        self.boxes, self.scores = nn.Linear(16, 4), nn.Linear(16, 3)
        self.attention = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        h = torch.relu(self.trunk(x))
        return {
            "scores": self.scores(h),
            "boxes": self.boxes(h).sigmoid(),
            "attention": self.attention(h, h, h),
        }


class Wrap(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> Any:
        return self.fn(x)


CASES: dict[str, nn.Module] = {
    "dict of heads, a module's tuple inside": Heads(),
    "nested tuple": Wrap(lambda x: (x * 2, (x + 1, [x - 1, x.sum(-1)]))),
    "list": Wrap(lambda x: [x * 2, x + 1]),
    "dict in a tuple": Wrap(lambda x: (x.relu(), {"z": x * 3, "a": x / 2})),
}


@pytest.mark.parametrize("name", list(CASES))
def test_nested_outputs_come_back_as_the_model_returns_them(name: str, cache: str) -> None:
    model = CASES[name].eval()
    example, x = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    compiled = pc.compile(model, (example,), threads=2, tuning=False, cache_dir=cache)
    with torch.no_grad():
        got, want = compiled(x), model(x)
    assert torch.utils._pytree.tree_structure(got) == torch.utils._pytree.tree_structure(want)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
