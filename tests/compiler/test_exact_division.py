"""The compiler's builds divide and take square roots exactly (``build.FLAGS``: ``-mno-recip
-fno-reciprocal-math``, stop 66): IEEE's infinities and zeros where ``-ffast-math``'s
approximate reciprocals plus a Newton step gave NaN, in vector loops and in their scalar
tails, against eager."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import provenml.compiler as pc
from provenml.compiler.build import FLAGS

INF = float("inf")
EDGE_VALUES = [0.0, -0.0, 1.0, 4.0, INF, -INF, -1.0, 1e-40]  # 1e-40: a subnormal float32


class EdgeCases(nn.Module):
    """Each op whose fast-math form broke an IEEE special value, stacked."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inv_sqrt = x.pow(-0.5)
        return torch.stack(
            [1.0 / x, (x + 1.0) / x, x.rsqrt(), inv_sqrt, x.sqrt(), torch.sigmoid(x),
             F.silu(x), inv_sqrt.masked_fill(inv_sqrt == INF, 0.0), x.reciprocal()]
        )  # fmt: skip


def test_the_flags_turn_reciprocal_approximations_off() -> None:
    assert "-mno-recip" in FLAGS and "-fno-reciprocal-math" in FLAGS


@pytest.mark.parametrize("threads", [1, 2])
def test_special_values_match_eager_in_vector_and_tail_loops(threads: int, cache: str) -> None:
    # 19 columns: one 16-float vector, then a scalar tail of 3 (the tail broke on its own)
    x = torch.tensor(EDGE_VALUES * 2 + [0.0, INF, -0.0])[None].repeat(3, 1)
    model = EdgeCases().eval()
    compiled = pc.compile(model, (x,), threads=threads, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-6, atol=0.0, equal_nan=True)


def test_gcn_normalisation_of_an_isolated_node_is_masked_to_zero(cache: str) -> None:
    """PyG's ``deg ** -0.5`` masked where it is infinite: a node no edge reaches has degree 0,
    and its messages must be 0, not NaN (GCNConv with ``add_self_loops=False``, TAGConv)."""

    class Normalise(nn.Module):
        def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            degree = torch.zeros(x.shape[0]).scatter_add(0, target, torch.ones(target.shape[0]))
            inv_sqrt = degree.pow(-0.5)
            inv_sqrt = inv_sqrt.masked_fill(inv_sqrt == INF, 0.0)
            return x * inv_sqrt[:, None]

    x, target = torch.randn(21, 5), torch.tensor([0, 2, 2, 5, 7, 11, 20])
    model = Normalise().eval()
    compiled = pc.compile(model, (x, target), threads=1, tuning=False, cache_dir=cache)
    out = compiled(x, target)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, model(x, target), rtol=1e-6, atol=1e-7)


class SpecialValueTests(nn.Module):
    """``isnan`` / ``isinf`` / ``isfinite`` (functions, methods, of a fused product) and
    ``nan_to_num`` with its defaults and with given values (stop 66)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        doubled = x * 2.0
        masks = [torch.isnan(x), x.isinf(), torch.isfinite(doubled), torch.isinf(doubled)]
        cleaned = torch.where(torch.isnan(x) | torch.isinf(x), -7.0, x)
        return torch.stack(
            [*(m.float() for m in masks), cleaned, torch.nan_to_num(x),
             x.nan_to_num(nan=1.5, posinf=2.5, neginf=-3.5)]
        )  # fmt: skip


@pytest.mark.parametrize("threads", [1, 2])
def test_nan_and_infinity_tests_match_eager(threads: int, cache: str) -> None:
    nan = float("nan")
    x = torch.tensor([*EDGE_VALUES, nan, 3e38, -3e38] * 2 + [nan, INF, -INF])[None].repeat(2, 1)
    model = SpecialValueTests().eval()
    compiled = pc.compile(model, (x,), threads=threads, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), model(x), rtol=0.0, atol=0.0, equal_nan=True)


def test_a_size_output_comes_back_as_an_int() -> None:
    """A model returning a size (an int): it came back as a float32 tensor, then (stop 66) was
    refused; since stop 70 it comes back as the int itself (``Graph.constant_outputs``)."""

    class WithSize(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
            return x * 2.0, x.shape[0]

    x = torch.randn(3, 4)
    doubled, size = pc.compile(WithSize().eval(), (x,), tuning=False)(x)
    assert size == 3 and type(size) is int
    torch.testing.assert_close(doubled, x * 2.0, rtol=0.0, atol=0.0)
