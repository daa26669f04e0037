"""Every supported op, compiled to C and interpreted with NumPy, against eager PyTorch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import provenml.compiler as pc
from provenml.errors import ProvenmlError


class Fn(nn.Module):
    """A one-input module running ``fn(mods, x)``."""

    def __init__(self, fn, *mods: nn.Module) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.fn = fn
        self.mods = nn.ModuleList(mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.mods, x)


class Fn2(Fn):
    """A two-input module running ``fn(mods, a, b)``."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.fn(self.mods, a, b)


def r(*shape: int) -> torch.Tensor:
    return torch.randn(*shape)


CASES = {
    "linear": (lambda m, x: m[0](x), [nn.Linear(12, 20)], [r(3, 12)]),
    "linear_nobias_3d": (lambda m, x: m[0](x), [nn.Linear(12, 5, bias=False)], [r(2, 3, 12)]),
    "matmul": (lambda m, a, b: a @ b, [], [r(5, 7), r(7, 9)]),
    "matmul_broadcast": (lambda m, a, b: torch.matmul(a, b), [], [r(2, 3, 5, 7), r(7, 4)]),
    "bmm": (lambda m, a, b: torch.bmm(a, b), [], [r(3, 5, 6), r(3, 6, 17)]),
    "matmul_transposed": (lambda m, a, b: a @ b.transpose(-2, -1), [], [r(2, 5, 6), r(2, 9, 6)]),
    "conv2d": (lambda m, x: m[0](x), [nn.Conv2d(3, 10, 3, padding=1)], [r(2, 3, 9, 9)]),
    "conv2d_stride_nopad": (
        lambda m, x: m[0](x),
        [nn.Conv2d(4, 20, 3, stride=2, bias=False)],
        [r(1, 4, 11, 11)],
    ),
    "conv2d_1x1": (lambda m, x: m[0](x), [nn.Conv2d(8, 16, 1)], [r(1, 8, 5, 5)]),
    "conv2d_depthwise": (
        lambda m, x: m[0](x),
        [nn.Conv2d(6, 6, 3, padding=1, groups=6)],
        [r(2, 6, 8, 8)],
    ),
    "relu": (lambda m, x: F.relu(x), [], [r(4, 33)]),
    "gelu": (lambda m, x: F.gelu(x), [], [r(4, 33)]),
    "gelu_tanh": (lambda m, x: F.gelu(x, approximate="tanh"), [], [r(4, 33)]),
    "silu": (lambda m, x: F.silu(x), [], [r(4, 33)]),
    "tanh": (lambda m, x: torch.tanh(x), [], [r(4, 33)]),
    "sigmoid": (lambda m, x: torch.sigmoid(x), [], [r(4, 33)]),
    "add_broadcast": (lambda m, a, b: a + b, [], [r(3, 4, 5), r(4, 1)]),
    "sub_scalar": (lambda m, a: a - 1.5, [], [r(3, 4)]),
    "mul_broadcast": (lambda m, a, b: a * b, [], [r(3, 1, 5), r(1, 4, 5)]),
    "div": (lambda m, a, b: a / (b * b + 1), [], [r(3, 4), r(3, 4)]),
    "layer_norm": (lambda m, x: m[0](x), [nn.LayerNorm(16)], [r(2, 5, 16)]),
    "batch_norm": (lambda m, x: m[0](x), [nn.BatchNorm2d(3)], [r(2, 3, 4, 4)]),
    "softmax_last": (lambda m, x: torch.softmax(x, -1), [], [r(3, 7, 10)]),
    "softmax_mid": (lambda m, x: F.softmax(x, dim=1), [], [r(3, 7, 10)]),
    "max_pool": (lambda m, x: F.max_pool2d(x, 3, 2, 1), [], [r(2, 3, 9, 9)]),
    "avg_pool": (lambda m, x: m[0](x), [nn.AvgPool2d(2)], [r(2, 3, 8, 8)]),
    "reshape_view": (lambda m, x: x.view(x.size(0), -1).reshape(6, 10), [], [r(3, 4, 5)]),
    "permute_transpose": (
        lambda m, x: x.permute(2, 0, 1).transpose(0, 1).contiguous(),
        [],
        [r(3, 4, 5)],
    ),
    "slicing": (lambda m, x: x[:, 1:4, ::2] * 2, [], [r(3, 6, 8)]),
    "indexing": (lambda m, x: x[1] + x[..., -1:], [], [r(3, 4, 5)]),
    "cat": (lambda m, a, b: torch.cat([a, b, a], dim=1), [], [r(2, 3, 4), r(2, 5, 4)]),
    "embedding": (
        lambda m, i: m[0](i),
        [nn.Embedding(11, 6)],
        [torch.tensor([[1, 4, 10], [0, 2, 2]])],
    ),
    "mean": (lambda m, x: x.mean((2, 3)), [], [r(2, 3, 4, 5)]),
    "mean_keepdim_last": (lambda m, x: x.mean(-1, keepdim=True), [], [r(2, 3, 4)]),
    "sum": (lambda m, x: torch.sum(x, dim=1), [], [r(2, 3, 4)]),
    "sum_all": (lambda m, x: x.sum(), [], [r(2, 3)]),
    "adaptive_avg_pool": (
        lambda m, x: m[0](x).flatten(1),
        [nn.AdaptiveAvgPool2d(1)],
        [r(2, 5, 4, 4)],
    ),
}


def _model(name: str) -> tuple[nn.Module, list[torch.Tensor]]:
    torch.manual_seed(0)
    fn, mods, xs = CASES[name]
    model = (Fn2 if len(xs) == 2 else Fn)(fn, *mods).eval()
    for mod in mods:
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2)
    return model, xs


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_matches_eager(name: str, cache: str) -> None:
    model, xs = _model(name)
    with torch.no_grad():
        ref = model(*xs)
    interp = pc.interpret(pc.trace(model, xs), [x.numpy() for x in xs])[0]
    np.testing.assert_allclose(interp, ref.numpy(), rtol=1e-4, atol=1e-5)
    compiled = pc.compile(model, xs, tuning=False, cache_dir=cache)
    np.testing.assert_allclose(compiled(*xs).numpy(), ref.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "name", ["conv2d", "conv2d_depthwise", "linear", "max_pool", "matmul_transposed"]
)
def test_op_without_layout_or_fusion(name: str, cache: str) -> None:
    model, xs = _model(name)
    with torch.no_grad():
        ref = model(*xs)
    compiled = pc.compile(
        model, xs, tuning=False, layout=False, fusion=False, memory_planning=False, cache_dir=cache
    )
    np.testing.assert_allclose(compiled(*xs).numpy(), ref.numpy(), rtol=1e-4, atol=1e-5)


def test_unsupported_op_names_op_and_node(cache: str) -> None:
    model = Fn(lambda m, x: torch.special.bessel_j0(x) + 1).eval()
    with pytest.raises(
        ProvenmlError, match=r"unsupported op 'special_bessel_j0' at node 'special_bessel_j0'"
    ):
        pc.compile(model, [r(3, 4)], cache_dir=cache)


def test_unsupported_module_names_module(cache: str) -> None:
    model = nn.Sequential(nn.Identity(), nn.LPPool3d(2, 2)).eval()  # (nn.LSTMCell until stop 70)
    with pytest.raises(ProvenmlError, match=r"unsupported op 'LPPool3d' at node"):
        pc.compile(model, [r(1, 2, 4, 4, 4)], cache_dir=cache)


def test_wrong_input_shape_is_a_clear_error(cache: str) -> None:
    model, xs = _model("relu")
    compiled = pc.compile(model, xs, tuning=False, cache_dir=cache)
    with pytest.raises(ProvenmlError, match="compiled for shape"):
        compiled(r(5, 5))


def test_training_mode_refused() -> None:
    with pytest.raises(ProvenmlError, match="eval"):
        pc.compile(nn.Linear(3, 3), [r(2, 3)])


def test_scaled_attention_pattern(cache: str) -> None:
    def attn(m: nn.ModuleList, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), dim=-1)

    model = Fn2(attn).eval()
    xs = [r(2, 4, 6, 8), r(2, 4, 6, 8)]
    compiled = pc.compile(model, xs, tuning=False, cache_dir=cache)
    np.testing.assert_allclose(compiled(*xs).numpy(), model(*xs).numpy(), rtol=1e-4, atol=1e-6)


def test_erf_approximation_is_refit_and_within_its_bound(cache: str) -> None:
    """The kernels' erf (codegen/erf.py) has the coefficients its fit gives, stays within
    5e-7 of erf over the float range that matters, and GELU compiled with it matches eager's
    exact GELU to 1e-6 (x 4, the largest |x|/2 where the error is not clamped away)."""
    from scipy.special import erf

    from provenml.compiler.codegen.erf import ERF_DEN, ERF_NUM, erf_float32, fit_erf_rational

    num, den = fit_erf_rational()
    np.testing.assert_allclose(num, ERF_NUM, rtol=1e-9)
    np.testing.assert_allclose(den, ERF_DEN, rtol=1e-9)
    xs = np.linspace(-7.0, 7.0, 400_001).astype(np.float32)
    assert np.abs(erf_float32(xs) - erf(xs.astype(np.float64))).max() < 5e-7
    x = torch.linspace(-8.0, 8.0, 4096).reshape(1, 4096)
    compiled = pc.compile(
        Fn(lambda m, t: F.gelu(t)).eval(), (x,), threads=1, tuning=False, cache_dir=cache
    )
    assert (compiled(x) - F.gelu(x)).abs().max().item() < 4e-6
