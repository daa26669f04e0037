"""Infinities and NaN through arithmetic as eager PyTorch gives them (stop 68). The kernels
were built with ``-ffast-math``'s finite-math licence, under which gcc folded ``x - x`` and
``exp(x) - exp(x)`` to 0 and ``x / x`` to 1 (PyTorch: NaN for an infinite ``x``, and for
``0 / 0``), and ``erf(nan)`` was -1; they are now built with ``-fno-finite-math-only``
(``build.FLAGS``). The vector maths (glibc's libmvec) must survive that flag: the last test
reads the built library's symbols."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import provenml.compiler as pc
from provenml.compiler.build import FLAGS
from provenml.compiler.codegen.erf import BOUND, erf_float32

NAN, INF = float("nan"), float("inf")
# 3 x 16 columns: two 16-float vectors and a scalar tail (the value list repeated)
ROW = [INF, -INF, NAN, 0.0, 1.0, -1.0, 3.0, -3.0, 1e38, -1e38, 88.0, -88.0, 0.5, 20.0, -20.0]
ROW = ROW * 3 + [100.0, -100.0, 4.0]


class Elementwise(nn.Module):
    def __init__(self, fn: object) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)  # type: ignore[operator]


CASES = {
    "x - x": lambda x: x - x,
    "x + (-x)": lambda x: x + (-x),
    "x / x": lambda x: x / x,
    "exp(x) - exp(x)": lambda x: torch.exp(x) - torch.exp(x),
    "x * 0": lambda x: x * 0.0,
    "x - relu(x)": lambda x: x - F.relu(x),
    "erf": torch.erf,
    "gelu of finite and -inf": lambda x: F.gelu(torch.where(x == INF, 0.0, x)),
    "sign": torch.sign,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
    "log_softmax": lambda x: torch.log_softmax(x, -1),
    "logsumexp": lambda x: torch.logsumexp(x, -1),
    "isfinite": lambda x: torch.isfinite(x).float(),
}


def _inputs() -> torch.Tensor:
    x = torch.tensor(ROW)[None].repeat(3, 1)
    for r in range(3):  # the special values at other columns in every row
        x[r] = x[r].roll(7 * r)
    return x


@pytest.mark.parametrize("name", list(CASES))
def test_special_values_as_eager(name: str) -> None:
    model = Elementwise(CASES[name]).eval()
    x = _inputs()
    expected = model(x)
    got = pc.compile(model, x)(x)
    assert torch.equal(torch.isnan(got), torch.isnan(expected)), name
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5, equal_nan=True)


def test_finite_math_is_off() -> None:
    assert "-fno-finite-math-only" in FLAGS
    assert FLAGS.index("-fno-finite-math-only") > FLAGS.index("-ffast-math")


def test_erf_is_exactly_one_beyond_the_bound() -> None:
    """GELU's ``1 + erf(x / sqrt 2)`` must be 0 for a large negative ``x``: the rational
    approximation alone gives 1 - 6e-8 at the bound (gelu(-1e38) was -9e30)."""
    x = np.array([-1e38, -BOUND * 1.01, BOUND * 1.01, 1e38, NAN], np.float32)
    y = erf_float32(x)
    assert y[:4].tolist() == [-1.0, -1.0, 1.0, 1.0]
    assert np.isnan(y[4])
    model = Elementwise(F.gelu).eval()
    big = torch.tensor([[-1e38, -1e30, -100.0, -6.0, 6.0, 100.0] * 3])
    torch.testing.assert_close(pc.compile(model, big)(big), model(big), rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(shutil.which("nm") is None, reason="needs binutils' nm")
def test_vector_maths_survive_the_flag() -> None:
    """``expf`` / ``tanhf`` in a vectorised loop call libmvec's ``_ZGV..._expf``, as under
    full ``-ffast-math``: without ``__FAST_MATH__`` glibc's header would not declare them and
    every element would call the scalar function."""
    model = Elementwise(lambda x: torch.tanh(x) + torch.exp(x)).eval()
    x = torch.randn(4, 256)
    compiled = pc.compile(model, x)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
    symbols = subprocess.run(
        ["nm", "-D", "--undefined-only", str(compiled.graph.library)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    vector = [s.split("@")[0] for s in symbols.split() if s.startswith("_ZGV")]
    assert any(s.endswith("_expf") for s in vector), symbols
    assert any(s.endswith("_tanhf") for s in vector), symbols


class LogSoftmaxes(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.log_softmax(x, -1), torch.log_softmax(x, 0), torch.logsumexp(x, -1)


def test_log_softmax_of_large_logits_keeps_its_precision() -> None:
    """``(x - max) - log(sum)`` as PyTorch orders it: ``x - (max + log(sum))`` lost the log
    to the max's rounding (four equal 1e38 logits gave 0 for log(1/4); logits near 3e4 moved
    by up to ulp(3e4) = 0.002)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 40, generator=gen) * 3 + 3e4
    x[5, :4] = 1e38
    model = LogSoftmaxes().eval()
    for got, want in zip(pc.compile(model, x)(x), model(x), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-5)


class Reductions(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.logsumexp(x, -1), torch.logsumexp(x, 0), torch.nansum(x, -1), x.nansum(0)


def test_logsumexp_of_infinities_and_nansum() -> None:
    """A slice of ``-inf`` has ``logsumexp`` ``-inf`` and one holding ``inf`` has ``inf``, as
    PyTorch shifts by 0 where the max is infinite (``inf - inf`` gave NaN); ``nansum`` skips
    the NaNs."""
    x = torch.tensor(
        [[-INF] * 6, [INF, 1.0, 2.0, 3.0, 4.0, 5.0], [INF, -INF, 0.0, 1.0, 2.0, 3.0],
         [NAN, 1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]
    )  # fmt: skip
    model = Reductions().eval()
    for got, want in zip(pc.compile(model, x)(x), model(x), strict=True):
        assert torch.equal(got.isnan(), want.isnan())
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, equal_nan=True)
