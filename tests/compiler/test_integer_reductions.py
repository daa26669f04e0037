"""Integer max / min reductions, ``abs``, ``sign`` and ``where`` in 64-bit integers, and the
boolean xor (stop 68; refused before): ``lengths.max()`` of a padded batch, ``ids.amax(-1)``,
``torch.where(ids > 0, ids, 0)``. Values beyond 2^24 (and 2^31) check that nothing passes
through float32."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import provenml.compiler as pc

IDS = torch.tensor(
    [[3, -7, 0, 12, -1, 5, 2**31 + 5, -(2**40) - 3],
     [2**24 + 1, -(2**24) - 1, 9, 9, -9, 0, 1, -1]]
)  # fmt: skip


class IntegerOps(nn.Module):
    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (
            ids.amax(-1), ids.amin(0), ids.max(), ids.min(), ids.abs(), torch.sign(ids),
            torch.where(ids > 0, ids, 0), ids.masked_fill(ids < 0, 7), ids.abs().amax((0, 1)),
            torch.where(ids > 0, ids, -ids) + 1,
            (ids - 1).clamp(min=0), torch.relu(ids),  # stop 69: relu of integers
        )  # fmt: skip


def test_integer_reductions_abs_sign_and_where_are_exact() -> None:
    model = IntegerOps().eval()
    got, want = pc.compile(model, IDS)(IDS), model(IDS)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype == torch.int64
        assert torch.equal(g, w), (g, w)


class PaddedLengths(nn.Module):
    """The longest sequence of a padded batch from its mask, as an int64 count."""

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return (mask != 0).long().sum(-1).max()


def test_the_longest_of_a_padded_batch() -> None:
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    model = PaddedLengths().eval()
    got = pc.compile(model, mask)(mask)
    assert got.dtype == torch.int64 and int(got) == 5


class Xor(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        a, b = x > 0, x.flip(-1) > 0.5
        return (a ^ b).float(), torch.logical_xor(a, b).float(), a.logical_xor(b).float()


@pytest.mark.parametrize("seed", [0, 1])
def test_boolean_xor(seed: int) -> None:
    x = torch.randn(3, 37, generator=torch.Generator().manual_seed(seed))
    model = Xor().eval()
    for g, w in zip(pc.compile(model, x)(x), model(x), strict=True):
        assert torch.equal(g, w)
