"""Permutes that change the innermost dim run as tiled transposes (stop 69): exact against
eager for ranks 2-5, extents that are not multiples of the tile, float and int64 tensors, and
the NCHW <-> NHWC layout transforms around a convolution; small permutes keep the plain copy."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import provenml.compiler as pc
from provenml.compiler.codegen.kernels.movement import REUSED_LINES, TILED_FROM, TRANSPOSE_TILE


class Permute(nn.Module):
    def __init__(self, perm: tuple[int, ...]) -> None:
        super().__init__()
        self.perm = perm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.perm).contiguous()


# (shape, perm): each output's dims after the one the source stores contiguously hold more than
# REUSED_LINES elements (the plain copy would thrash L1)
CASES = {
    "2-d": ((301, 131), (1, 0)),
    "3-d, last two": ((3, 290, 37), (0, 2, 1)),
    "3-d, rotate": ((300, 3, 45), (2, 0, 1)),
    "4-d, NCHW -> NHWC": ((2, 270, 23, 21), (0, 2, 3, 1)),
    "4-d, NHWC -> NCHW": ((2, 23, 21, 19), (0, 3, 1, 2)),
    "5-d": ((2, 5, 7, 9, 33), (4, 1, 0, 3, 2)),
    "3 channels to NHWC (short output rows)": ((1, 3, 40, 50), (0, 2, 3, 1)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_tiled_permutes_match_eager(name: str, cache: str) -> None:
    shape, perm = CASES[name]
    x = torch.randn(*shape)
    model = Permute(perm).eval()
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    assert x.numel() >= TILED_FROM and f"a0 + {TRANSPOSE_TILE}" in compiled.source
    torch.testing.assert_close(compiled(x), model(x), rtol=0, atol=0)


def test_an_int64_transpose_is_exact(cache: str) -> None:
    x = torch.randint(-(2**40), 2**40, (70, 90))
    model = Permute((1, 0)).eval()
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "shape", [(5, 7, 9), (2, 48, 56, 56)], ids=["small", "48 channels to NHWC"]
)
def test_the_plain_copy_where_it_reuses_its_lines(shape: tuple[int, ...], cache: str) -> None:
    """Below ``TILED_FROM`` elements, or when the source lines the copy reads between two
    steps of the source's contiguous dim stay in L1 and the output rows are at least a tile
    long (NCHW -> NHWC with 48 channels)."""
    x = torch.randn(*shape)
    model = Permute((0, 2, 3, 1) if len(shape) == 4 else (2, 0, 1)).eval()
    compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
    assert shape[1] <= REUSED_LINES and f"a0 + {TRANSPOSE_TILE}" not in compiled.source
    torch.testing.assert_close(compiled(x), model(x), rtol=0, atol=0)


def test_a_convolution_between_layout_transforms_matches_eager(cache: str) -> None:
    model = nn.Sequential(nn.Conv2d(5, 24, 3, padding=1), nn.ReLU()).eval()
    x = torch.randn(1, 5, 37, 29)
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
