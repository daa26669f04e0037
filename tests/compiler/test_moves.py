"""Stop 67's rearrangements (``frontend/torch_moves.py``): ``diagonal``, ``diff``, ``outer`` /
``ger``, ``narrow``, ``movedim`` / ``moveaxis``, ``swapaxes`` / ``swapdims``, ``unflatten`` /
``nn.Unflatten``, channel shuffle and ``rot90``, refused before: each in its function, method
and keyword forms against eager (exactly: the values are only moved, or one subtraction /
product as eager computes it), boolean masks and int64 tensors through the pure moves, and
what they refuse, by name."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from tests.compiler._user_models import Apply
from torch import nn

import provenml.compiler as pc
from provenml.compiler.frontend.common import UnsupportedOp


def _joined(*results: torch.Tensor) -> torch.Tensor:
    """The results flattened into one vector (a ``cat``: still exact copies)."""
    return torch.cat([r.flatten() for r in results])


def _check(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, cache: str) -> None:
    """``fn`` compiled against eager, exactly, on ``x`` and on other values of its shape."""
    model = Apply(fn).eval()
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    if x.is_floating_point():
        fresh = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    else:
        fresh = torch.randint(-50, 50, x.shape, generator=torch.Generator().manual_seed(1))
    for inputs in (x, fresh):
        with torch.no_grad():
            expected = model(inputs)
        got = compiled(inputs)
        assert got.dtype == expected.dtype
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


X = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0))
SQUARE = torch.randn(4, 4, 3, generator=torch.Generator().manual_seed(0))
IMAGE = torch.randn(2, 6, 3, 2, generator=torch.Generator().manual_seed(0))

#: each op in its forms: (the calls, the input)
CASES: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]] = {
    "diagonal": (
        lambda t: _joined(
            torch.diagonal(t),
            t.diagonal(2, -1, 0),
            torch.diagonal(t, offset=-2, dim1=1, dim2=2),
            t.diagonal(offset=1, dim1=-1, dim2=-2),
            t[:1, :1].diagonal(),  # a 1 x 1 matrix (with a batch dim)
        ),
        X,
    ),
    "diff": (
        lambda t: _joined(
            torch.diff(t),
            t.diff(n=2, dim=1),
            torch.diff(t, 1, 0, prepend=t[:1] * 2.0),
            t.diff(dim=-1, append=torch.ones(3, 4, 2)),
            torch.diff(t, n=3, dim=-2, prepend=t[:, :2], append=t[:, -1:]),
            t.diff(n=0, prepend=t),  # order 0: the input, nothing prepended
        ),
        X,
    ),
    "outer": (
        lambda t: _joined(
            torch.outer(t[0, 0], t[1, :, 0]),
            torch.ger(t[2, 1], t[0, 2, :4]),
            t[0, 1].outer(t[1, 1]),
            torch.outer(t[0, 0], vec2=t[2, 2]),
        ),
        X,
    ),
    "narrow": (
        lambda t: _joined(
            t.narrow(1, -3, 2),
            torch.narrow(t, -1, 1, 2),
            t.narrow(dim=0, start=0, length=3),  # the whole dim
            t.narrow(2, torch.tensor(2), 3),  # a constant 0-d tensor start
        ),
        X,
    ),
    "movedim": (
        lambda t: _joined(
            torch.movedim(t, 0, -1),
            t.moveaxis((0, 1), (2, 0)),
            torch.moveaxis(t, source=[-1, 0], destination=[0, -1]),
            t.movedim(1, 1),  # nothing moves
            t.swapaxes(0, 2),
            torch.swapdims(t, -1, 0),
            t.swapdims(dim0=2, dim1=1),
            torch.swapaxes(t, axis0=1, axis1=-3),
        ),
        X,
    ),
    "unflatten": (
        lambda t: _joined(
            t.unflatten(1, (2, -1)),
            torch.unflatten(t, -2, (2, 2)),
            nn.Unflatten(2, (5, -1))(t),
            t.unflatten(dim=0, sizes=(1, 3)),
        ),
        X,
    ),
    "channel_shuffle": (
        lambda t: _joined(
            F.channel_shuffle(t, 2),
            torch.channel_shuffle(t, 3),
            nn.ChannelShuffle(3)(t.flatten(2)),
            F.channel_shuffle(t, 6),  # one channel per group: the order stays
        ),
        IMAGE,
    ),
    "rot90": (
        lambda t: _joined(
            torch.rot90(t),
            t.rot90(2, (0, 1)),
            torch.rot90(t, -1, (1, 0)),
            t.rot90(3),
            torch.rot90(t, k=5, dims=(2, 0)),
            t.rot90(-6, [-1, 1]),
            t.rot90(4),
        ),
        SQUARE,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_compiled_matches_eager(name: str, cache: str) -> None:
    fn, x = CASES[name]
    _check(fn, x, cache)


def test_unflatten_module_in_a_model(cache: str) -> None:
    """``nn.Unflatten`` and ``nn.ChannelShuffle`` as submodules (fx leaves: call_module)."""

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unflatten = nn.Unflatten(1, (6, -1))
            self.shuffle = nn.ChannelShuffle(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.shuffle(self.unflatten(x))

    model = Head().eval()
    x = torch.randn(2, 36)
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=0, atol=0)


def test_boolean_masks_through_the_moves(cache: str) -> None:
    """A comparison's mask through each pure move stays a mask (then made 0 / 1 floats)."""

    def moves(t: torch.Tensor) -> torch.Tensor:
        mask = t > 0
        return _joined(
            mask.diagonal(1, 1, 2).float(),
            torch.narrow(mask, 2, 1, 3).float(),
            mask.movedim(0, -1).float(),
            torch.swapaxes(mask, 0, 1).float(),
            mask.unflatten(2, (1, 5)).float(),
            F.channel_shuffle(mask[:, :, :, None], 2).float(),
            torch.rot90(mask, 1, (-1, -2)).float(),
            t.masked_fill(mask.rot90(2, (1, 2)), -1.0),  # a moved mask used as a mask
        )

    _check(moves, X, cache)


def test_int64_through_the_moves(cache: str) -> None:
    """An int64 tensor stays int64 through each move, and through diff and outer."""

    def moves(t: torch.Tensor) -> torch.Tensor:
        return _joined(
            t.diagonal(-1),
            t.narrow(1, 1, 2),
            torch.movedim(t, 2, 0),
            t.swapdims(0, 2),
            t.unflatten(-1, (3, 2)),
            torch.channel_shuffle(t, 2),
            t.rot90(1, (1, 2)),
            torch.diff(t, 2, dim=0, append=t[:1]),
            torch.outer(t[0, 0], t[1, 1]),
        )

    _check(moves, torch.arange(72).reshape(3, 4, 6) - 30, cache)


def test_int64_diff_with_a_float_operand_is_promoted(cache: str) -> None:
    """``diff`` of int64 with a float ``prepend`` and an ``outer`` of int64 by float: floats,
    as PyTorch promotes."""
    x = torch.arange(12).reshape(3, 4)
    _check(
        lambda t: _joined(
            torch.diff(t, prepend=torch.full((3, 1), 0.5)), t[0].outer(t[1].float() * 0.5)
        ),
        x,
        cache,
    )


def _refused(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, cache: str) -> None:
    pc.compile(Apply(fn).eval(), (x,), threads=2, tuning=False, cache_dir=cache)


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (lambda t: t.diagonal(7).sum() + t, r"diagonal.*empty diagonal"),
        (lambda t: torch.diff(t, n=5).sum() + t, r"diff.*empty result"),
        (lambda t: t.narrow(1, (t[0, 0, 0] > 100).long(), 1), r"narrow.*run time"),
        (lambda t: torch.diff(t > 0).float(), r"diff.*boolean"),
    ],
    ids=["diagonal_empty", "diff_empty", "narrow_run_time_start", "diff_of_a_mask"],
)
def test_refusals_name_the_op(
    fn: Callable[[torch.Tensor], torch.Tensor], match: str, cache: str
) -> None:
    with pytest.raises(UnsupportedOp, match=match):
        _refused(fn, X, cache)
