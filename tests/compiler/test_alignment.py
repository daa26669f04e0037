"""The compiled graph's weight blob and arena start on a cache line (64 bytes).

Every constant and planned buffer sits at a multiple of 16 floats from those bases, so with
aligned bases the kernels' 64-byte vector loads never straddle two lines. numpy alone gives
16-byte alignment: the same build of ``resnet_stage:3`` ran 13% slower when its weights
started 16, 32 or 48 bytes past a line (docs/compiler_history.md, *Stop 36*).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import provenml.compiler as pc
from provenml.compiler.runtime import CACHE_LINE, aligned_copy, aligned_zeros


@pytest.mark.parametrize("size", [1, 15, 16, 17, 1000, 4097])
def test_aligned_buffers_start_on_a_cache_line(size: int) -> None:
    zeros = aligned_zeros(size)
    assert zeros.shape == (size,) and zeros.dtype == np.float32
    assert zeros.ctypes.data % CACHE_LINE == 0 and not zeros.any()
    values = np.arange(size, dtype=np.float32).reshape(1, -1)
    copy = aligned_copy(values)
    assert copy.ctypes.data % CACHE_LINE == 0
    np.testing.assert_array_equal(copy, values.ravel())


def test_aligned_copy_keeps_the_bits_of_int64_constants() -> None:
    ints = np.array([-1, 2**40 + 3, 7], np.int64).view(np.float32)
    copy = aligned_copy(ints)
    np.testing.assert_array_equal(copy.view(np.int64), [-1, 2**40 + 3, 7])


def test_every_build_has_aligned_weights_and_arena() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(33, 70), torch.nn.ReLU(), torch.nn.Linear(70, 5))
    model.eval()
    x = torch.randn(3, 33)
    for _ in range(4):  # each build allocates anew: none may land off a line by chance
        compiled = pc.compile(model, (x,), threads=1, tuning=False)
        graph = compiled.graph
        assert graph.consts.ctypes.data % CACHE_LINE == 0
        assert graph.arena.ctypes.data % CACHE_LINE == 0
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)
