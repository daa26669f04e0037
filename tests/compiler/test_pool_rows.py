"""Pools in the row (NCHW) layout (stop 69): a pool whose input is not channels-last stays in
rows (no layout transforms around it) and runs the row kernel, vectorized along the output row
with the window's in-bounds range computed per tap; it matches eager for every kernel, stride
and padding, rows wider than one accumulator chunk, NaN and infinities in windows; a pool after
a convolution still runs channels-last."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import provenml.compiler as pc
from provenml.compiler.codegen.kernels.pool import ROW_CHUNK

Pool = Callable[[torch.Tensor], torch.Tensor]

POOLS: dict[str, Pool] = {
    "max 2": lambda x: F.max_pool2d(x, 2),
    "max 3 s1 p1": lambda x: F.max_pool2d(x, 3, 1, 1),
    "max 3 s2 p1": lambda x: F.max_pool2d(x, 3, 2, 1),
    "max (3, 1) s (2, 1) p (1, 0)": lambda x: F.max_pool2d(x, (3, 1), (2, 1), (1, 0)),
    "max (1, 5) s 3 p (0, 2)": lambda x: F.max_pool2d(x, (1, 5), 3, (0, 2)),
    "avg 2": lambda x: F.avg_pool2d(x, 2),
    "avg 3 s2 p1": lambda x: F.avg_pool2d(x, 3, 2, 1),
    "avg (2, 4) s (1, 3)": lambda x: F.avg_pool2d(x, (2, 4), (1, 3)),
}


class Wrap(nn.Module):
    def __init__(self, op: Pool) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


def _layouts(model: nn.Module, x: torch.Tensor) -> tuple[list[str], list[str]]:
    """The ops of the graph after layout transformation and the pools' layouts there."""
    stages = dict(pc.optimize(pc.trace(model, [x]), pc.CompileOptions(tuning=False)))
    g = stages["transform_layout"]
    ops = [n.op for n in g.nodes]
    pools = [g.values[n.name].layout for n in g.nodes if n.op.endswith("_pool2d")]
    return ops, pools


@pytest.mark.parametrize("name", list(POOLS))
def test_row_layout_pools_match_eager(name: str, cache: str) -> None:
    model = Wrap(POOLS[name]).eval()
    x = torch.randn(2, 3, 11, 13)
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", ["max", "avg"])
def test_rows_wider_than_one_chunk(op: str, cache: str) -> None:
    """Output rows of ``ROW_CHUNK`` + some: the chunks' seams and the last partial chunk."""
    pool: Pool = (
        (lambda x: F.max_pool2d(x, 3, 1, 1))
        if op == "max"
        else (lambda x: F.avg_pool2d(x, 3, 1, 1))
    )
    model = Wrap(pool).eval()
    x = torch.randn(1, 2, 3, ROW_CHUNK + 37)
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-6)


def test_nan_and_infinities_in_row_windows_as_eager(cache: str) -> None:
    model = Wrap(lambda x: F.max_pool2d(x, 3, 2, 1) + F.avg_pool2d(x, 2)[..., :5, :6]).eval()
    x = torch.randn(1, 2, 10, 12)
    x[0, 0, 3, 4] = float("nan")
    x[0, 1, 0, 0] = float("inf")
    x[0, 1, 7, 9] = float("-inf")
    compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), model(x), equal_nan=True)


def test_a_pool_on_rows_adds_no_layout_transform() -> None:
    ops, pools = _layouts(
        Wrap(lambda x: F.max_pool2d(x.sigmoid(), 2)).eval(), torch.randn(1, 4, 8, 8)
    )
    assert pools == ["row"] and "layout_transform" not in ops


def test_a_pool_after_a_convolution_stays_channels_last() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)).eval()
    ops, pools = _layouts(model, torch.randn(1, 3, 8, 8))
    assert pools == ["NHWC"]
    assert ops.count("layout_transform") == 2  # the input and the output, none around the pool
