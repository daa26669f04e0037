"""NaN and infinities through the max / min family as eager PyTorch gives them (stop 67):
``maximum`` / ``minimum``, the clamps (``clamp``, ``hardtanh``, ``relu6``, ``hardsigmoid``),
``relu``, max pooling and ``amax`` / ``amin`` propagate a NaN operand; a max over ``-inf``
alone is ``-inf``. Before, ``fmaxf`` / ``fminf`` and ``a > b ? a : b`` under ``-ffast-math``
kept the number (``clamp(nan, -1, 1)`` was 1, ``max_pool2d`` of a window with a NaN its
largest number) and a max over ``-inf`` was ``-FLT_MAX``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import provenml.compiler as pc

NAN, INF = float("nan"), float("inf")
# 37 columns: two 16-float vectors and a scalar tail of 5, NaN in each part
ROW = [NAN, 1.0, -1.0, INF, -INF, 0.5, -0.5, 7.0, -7.0, 3.0, -3.0, 0.0, 2.0, -2.0, 9.0, -9.0]
ROW = ROW + ROW[::-1] + [4.0, NAN, -INF, -4.0, 0.25]


def _inputs(rows: int = 4) -> torch.Tensor:
    x = torch.tensor(ROW)[None].repeat(rows, 1)
    for r in range(rows):  # the NaNs at other columns in every row
        x[r] = x[r].roll(5 * r)
    return x


class Bounded(nn.Module):
    """Each op of the family, stacked; ``maximum`` / ``minimum`` against a shifted copy so
    that a NaN meets a number on either side."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        other = x.roll(1, -1)
        return torch.stack(
            [F.relu(x), F.relu6(x), F.hardtanh(x), x.clamp(-1.0, 1.0), x.clamp(min=0.2),
             x.clamp(max=-0.2), torch.maximum(x, other), torch.maximum(other, x),
             torch.minimum(x, other), torch.minimum(other, x), F.leaky_relu(x, 0.1),
             F.hardsigmoid(x), F.hardswish(x), F.elu(x)]
        )  # fmt: skip


class Reductions(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        grid = x.reshape(2, 2, -1)
        return (x.amax(-1), x.amin(-1), x.amax(0), x.amin(0), grid.amax((0, 1)),
                x.max(-1).values, F.max_pool2d(x[None, None], (2, 3), (1, 2), (1, 1)),
                F.adaptive_max_pool2d(x[None, None], (1, 1)))  # fmt: skip


class LinearThenClamp(nn.Module):
    """A clamp fused into the matrix product's epilogue: a NaN input row stays NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(37, 24)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardtanh(self.linear(x))


class ConvThenPool(nn.Module):
    """ResNet's stem order: conv, ReLU, max pool (the channels-last pooling kernel)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.conv(x)), 3, 2, 1)


def _same(got: object, want: object) -> None:
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7, equal_nan=True)


@pytest.mark.parametrize("threads", [1, 2])
def test_max_min_and_clamps_propagate_nan(threads: int, cache: str) -> None:
    x = _inputs()
    model = Bounded().eval()
    want = model(x)
    assert torch.isnan(want).any(dim=-1).all()  # every op met a NaN
    compiled = pc.compile(model, (x,), threads=threads, tuning=False, cache_dir=cache)
    _same(compiled(x), want)


@pytest.mark.parametrize("threads", [1, 2])
def test_max_reductions_and_pooling_propagate_nan(threads: int, cache: str) -> None:
    x = _inputs()
    model = Reductions().eval()
    compiled = pc.compile(model, (x,), threads=threads, tuning=False, cache_dir=cache)
    _same(compiled(x), model(x))


def test_a_max_over_negative_infinity_alone_is_negative_infinity(cache: str) -> None:
    """A fully masked row's max (global max pooling over padded steps) is ``-inf``."""

    class MaskedMax(nn.Module):
        def forward(self, x: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, ...]:
            masked = x.masked_fill(keep == 0, -INF)
            return masked.amax(-1), masked.amax(0), F.max_pool1d(masked[None], 4)[0]

    x, keep = torch.randn(3, 8), torch.ones(3, 8)
    keep[1] = 0.0  # one row masked throughout
    keep[:, 4] = 0.0  # one column masked throughout
    model = MaskedMax().eval()
    want = model(x, keep)
    assert (want[0][1] == -INF) and (want[1][4] == -INF)
    compiled = pc.compile(model, (x, keep), threads=2, tuning=False, cache_dir=cache)
    _same(compiled(x, keep), want)


def test_a_clamp_in_a_matmul_epilogue_keeps_a_nan_row(cache: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 37)
    x[2, 7] = NAN
    model = LinearThenClamp().eval()
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    out = compiled(x)
    assert torch.isnan(out[2]).all() and not torch.isnan(out[[0, 1, 3, 4]]).any()
    # a sum over 37 products in another order than eager's: float32 rounding, not exactness
    torch.testing.assert_close(out, model(x), rtol=1e-5, atol=1e-6, equal_nan=True)


def test_channels_last_max_pooling_keeps_a_nan(cache: str) -> None:
    x = torch.randn(1, 3, 20, 20)
    x[0, 1, 9, 9] = NAN
    model = ConvThenPool().eval()
    want = model(x)
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    got = compiled(x)
    assert torch.isnan(got).sum() == torch.isnan(want).sum() > 0
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, equal_nan=True)


def test_scatter_amax_and_amin_propagate_nan(cache: str) -> None:
    class ScatterExtremes(nn.Module):
        def forward(self, x: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
            base = torch.zeros(4, 37)
            return (base.scatter_reduce(0, index, x, "amax", include_self=False),
                    base.scatter_reduce(0, index, x, "amin"))  # fmt: skip

    x = _inputs(6)
    index = torch.tensor([0, 1, 2, 3, 1, 2])[:, None].expand(6, 37).contiguous()
    model = ScatterExtremes().eval()
    compiled = pc.compile(model, (x, index), threads=2, tuning=False, cache_dir=cache)
    _same(compiled(x, index), model(x, index))


def test_a_nan_survives_subtracting_its_own_clamp(cache: str) -> None:
    """``x - relu(x)``, ``x - clamp(x)``, ``x - maximum(x, y)``: the NaN branch hands back a
    quieted copy of the operand, so finite-math's ``x - x = 0`` cannot fold it to 0."""

    class Residuals(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x - F.relu(x), x - x.clamp(-1.0, 1.0),
                                x - torch.maximum(x, x.flip(-1)), x - x.amax(-1, keepdim=True),
                                torch.minimum(x, x.roll(1, -1)) - x])  # fmt: skip

    x = _inputs()
    model = Residuals().eval()
    want = model(x)
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    got = compiled(x)
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    _same(got, want)
