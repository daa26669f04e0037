"""``Tensor.select`` / ``torch.select`` (refused before stop 69) and ``cat`` / ``stack`` of a
sequence held by one node (``torch.cat(x.chunk(3, -1)[::-1], -1)`` crashed with ``'Node'
object is not iterable`` before stop 69): exact against eager on the traced input and a new
one; a boolean mask stays a mask through ``select``."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from tests.compiler._user_models import Apply

import provenml.compiler as pc

CASES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "select, method": lambda x: x.select(1, 2) * 2,
    "select, function, negative index": lambda x: torch.select(x, 2, -1) + 1,
    "select of the last dim, then narrow": lambda x: x.select(-1, 0).narrow(1, 1, 2),
    "a mask selected, then used": lambda x: x[:, 0] * (x > 0).select(1, 1),
    "cat of chunks reversed": lambda x: torch.cat(x.chunk(3, dim=-1)[::-1], -1),
    "stack of a split's pieces": lambda x: torch.stack(x.split(2, dim=-1), 0).sum(0),
    "cat of every other chunk": lambda x: torch.cat(x.chunk(6, dim=-1)[::2], 1),
}


@pytest.mark.parametrize("name", list(CASES))
def test_select_and_sequences_match_eager(name: str, cache: str) -> None:
    model = Apply(CASES[name]).eval()
    example, x = torch.randn(2, 3, 6), torch.randn(2, 3, 6)
    compiled = pc.compile(model, (example,), threads=2, tuning=False, cache_dir=cache)
    for inputs in (example, x):
        with torch.no_grad():
            torch.testing.assert_close(compiled(inputs), model(inputs), rtol=0, atol=0)


def test_torch_select_after_torch_geometric_patched_it(cache: str) -> None:
    """Importing torch_geometric replaces ``torch.select`` and ``torch.index_select`` by
    wrappers (``_new_select``, ``_new_index_select``); they compile as the functions (the
    suite failed this way when PyG's tests ran first)."""
    pytest.importorskip("torch_geometric")
    assert torch.select.__name__ == "_new_select"
    assert torch.index_select.__name__ == "_new_index_select"
    index = torch.tensor([5, 0, 0])
    model = Apply(
        lambda x: (
            torch.select(x, 1, -2) * 3 + torch.index_select(x, 2, index)[:, 0].sum(-1, keepdim=True)
        )
    ).eval()
    x = torch.randn(2, 3, 6)
    compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-6, atol=1e-6)  # a sum
