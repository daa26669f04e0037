"""An elementwise kernel whose operands are all contiguous collapses to one run and is split
over the threads in blocks (stop 69: a leading dim of 1, walked with stride 0 by a broadcast
operand, kept the run from collapsing, and the parallel loop had one iteration: one thread
did all the work). Exact against eager for shapes with 1s anywhere."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import provenml.compiler as pc


class PermutedRelu(nn.Module):
    """A relu of a permuted tensor: a standalone elementwise kernel (nothing to fuse into)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x.permute(0, 2, 1, 3)) * 2 - 1


@pytest.mark.parametrize("shape", [(1, 16, 16, 300), (1, 1, 40, 70), (2, 1, 1, 5000), (1, 3, 1, 1)])
def test_a_contiguous_elementwise_kernel_matches_eager(shape: tuple[int, ...], cache: str) -> None:
    x = torch.randn(*shape)
    model = PermutedRelu().eval()
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), model(x))


def test_a_batch_of_one_is_split_over_the_threads(cache: str) -> None:
    x = torch.randn(1, 16, 16, 300)
    compiled = pc.compile(PermutedRelu().eval(), (x,), threads=2, tuning=False, cache_dir=cache)
    nests = compiled.loop_nests().split("\n-- ")
    (elementwise,) = [nest for nest in nests if "pm_maxf" in nest]
    extents = [int(e) for e in re.findall(r"in 0\.\.(\d+)\s+\[parallel\]", elementwise)]
    assert extents and max(extents) > 1, elementwise
