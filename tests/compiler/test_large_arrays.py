"""Stop 62: kernels whose scratch arrays grow with the tensor (a reduction's per-column
accumulators, a softmax's row buffer, an NCHW convolution's output plane) keep them on the
thread's stack only up to ``codegen.c_source.STACK_SCRATCH_BYTES`` and take larger ones from
the heap. Before, ``torch.cumsum(x, 0)`` of a (3, 1_500_000) tensor overflowed the 8 MiB stack
and the process died of a segmentation fault: a regression here fails by crashing the test's
worker."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tests.compiler._user_models import Apply
from torch import nn

import provenml.compiler as pc
from provenml.compiler.codegen.c_source import STACK_SCRATCH_BYTES

# 2^21 + 3 columns: 8 MiB of float accumulators, 16 MiB of double ones, each beyond a
# thread's whole stack
COLUMNS = (1 << 21) + 3


def _along_the_long_dim(x: torch.Tensor) -> torch.Tensor:
    parts = [
        torch.cumsum(x, 0),
        torch.logcumsumexp(x, 0),
        x.sum(0, keepdim=True),
        x.amax(0, keepdim=True),
        x.argmax(0, keepdim=True).float(),
        torch.softmax(x, -1) * COLUMNS,  # one row buffer of COLUMNS floats per row
        F.layer_norm(x, (COLUMNS,)),
    ]
    return torch.cat(parts, 0)


def test_reductions_and_scans_over_arrays_larger_than_a_stack(cache: str) -> None:
    assert COLUMNS * 4 > 8 * STACK_SCRATCH_BYTES  # the heap path, far beyond the limit
    x = torch.randn(3, COLUMNS, generator=torch.Generator().manual_seed(0))
    model = Apply(_along_the_long_dim).eval()
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    # on the heap: cumsum's accumulators, logcumsumexp's maxima and sums, sum's and amax's
    # accumulators, argmax's values and indices, the softmax's and layer norm's row buffers
    assert compiled.source.count("pm_scratch((size_t)") == 9
    y = torch.randn(3, COLUMNS, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(compiled(y), model(y), rtol=1e-4, atol=1e-4)


def test_an_nchw_convolution_whose_plane_is_beyond_the_stack_limit(cache: str) -> None:
    """``layout=False`` keeps NCHW, whose kernel accumulates one output plane at a time: a
    300 x 300 plane is 360,000 bytes of accumulators, over the stack limit."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU()).eval()
    assert STACK_SCRATCH_BYTES < 300 * 300 * 4
    x = torch.randn(1, 2, 300, 300)
    compiled = pc.compile(model, (x,), threads=2, tuning=False, layout=False, cache_dir=cache)
    assert "pm_scratch((size_t)" in compiled.source
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)
