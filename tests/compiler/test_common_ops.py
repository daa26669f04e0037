"""Stop 67's common ops (``frontend/torch_common_ops.py``; ``pow`` / ``hypot`` / ``copysign``
as IR ops): RMSNorm, the activations, the maths and the reductions a sweep of everyday
PyTorch calls found refused, against eager at one and two threads, on values that include
NaN, infinities and zeros where the op is defined there, and their refusals by name."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import provenml.compiler as pc
from provenml.compiler.frontend.common import UnsupportedOp
from provenml.compiler.interp import interpret

NAN, INF = float("nan"), float("inf")


def _inputs(seed: int = 0) -> torch.Tensor:
    """(4, 6, 37): 37 columns so vector loops and their scalar tails both run; special values
    in the first row."""
    x = torch.randn(4, 6, 37, generator=torch.Generator().manual_seed(seed)) * 2
    x[0, 0, :8] = torch.tensor([NAN, INF, -INF, 0.0, -0.0, 0.5, -0.5, 1e-30])
    return x


class Apply(nn.Module):
    def __init__(self, op: Callable[..., torch.Tensor] | nn.Module) -> None:
        super().__init__()
        self.op = op

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.op(*xs)


ELEMENTWISE: dict[str, Callable[[torch.Tensor], torch.Tensor] | nn.Module] = {
    "selu": F.selu,
    "SELU": nn.SELU(),
    "celu": lambda x: F.celu(x, 0.7),
    "CELU": nn.CELU(1.5),
    "logsigmoid": F.logsigmoid,
    "LogSigmoid": nn.LogSigmoid(),
    "softsign": F.softsign,
    "Softsign": nn.Softsign(),
    "tanhshrink": F.tanhshrink,
    "hardshrink": lambda x: F.hardshrink(x, 0.3),
    "Hardshrink": nn.Hardshrink(),
    "softshrink": F.softshrink,
    "Softshrink": nn.Softshrink(1.0),
    "threshold": lambda x: F.threshold(x, 0.1, 9.0),
    "Threshold": nn.Threshold(-0.2, -5.0),
    "softmin": lambda x: F.softmin(x, dim=-1),
    "Softmin": nn.Softmin(1),
    "RReLU": nn.RReLU(0.1, 0.3).eval(),
    "rrelu": lambda x: F.rrelu(x, 0.2, 0.4, training=False),
    "AlphaDropout": nn.AlphaDropout(0.3).eval(),
    "Dropout1d": nn.Dropout1d(0.3).eval(),
    "dropout2d": lambda x: F.dropout2d(x[None], 0.3, training=False)[0],
    "frac": torch.frac,
    "frac method": lambda x: x.frac(),
    "sinc": torch.sinc,
    "special.sinc": torch.special.sinc,
    "pow 1.5 of |x|": lambda x: x.abs() ** 1.5,
    "pow 4": lambda x: torch.pow(x, 4),
    "pow 0.3 (NaN below 0)": lambda x: x.pow(0.3),
    "2 ** x": lambda x: 2**x,
    "pow 10 by x": lambda x: torch.pow(10.0, x.clamp(-30, 30)),
    "pow by a tensor": lambda x: torch.pow(x.abs(), x.flip(-1).clamp(-3, 3)),
    "hypot": lambda x: torch.hypot(x, x.flip(-1)),
    "copysign": lambda x: torch.copysign(x, x.flip(-1)),
    "copysign scalar": lambda x: x.copysign(-1.0),
    "logaddexp": lambda x: torch.logaddexp(x, x.flip(-1)),
    "logaddexp equal": lambda x: torch.logaddexp(x, x),
    "lerp scalar small": lambda x: torch.lerp(x, x.flip(-1), 0.3),
    "lerp scalar large": lambda x: x.lerp(x.flip(-1), 0.8),
    "lerp tensor": lambda x: torch.lerp(x, x.flip(-1), torch.sigmoid(x.roll(1, -1))),
    "addcmul": lambda x: torch.addcmul(x, x.flip(-1), x.roll(1, -1), value=0.5),
    "addcdiv": lambda x: x.addcdiv(x.flip(-1), x.roll(1, -1).abs() + 1),
}

REDUCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor | tuple[torch.Tensor, ...]]] = {
    "rms_norm": lambda x: F.rms_norm(x, (37,)),
    "rms_norm two dims, weight, eps": lambda x: F.rms_norm(
        x, (6, 37), torch.linspace(0.5, 1.5, 222).reshape(6, 37), 1e-5
    ),
    "prod dim": lambda x: (x / 2).prod(-1),
    "prod dim 1 keepdim": lambda x: torch.prod(x / 2, 1, keepdim=True),
    "prod all": lambda x: (x[1:, :2, :5] / 2 + 1).prod(),
    "any / all": lambda x: ((x > 3).any(-1).float(), (x > -3).all(1).float(), x.any().float()),
    "any of floats": lambda x: torch.any(x.round(), dim=2, keepdim=True).float(),
    "count_nonzero": lambda x: (torch.count_nonzero(x.round(), dim=-1), (x > 0).count_nonzero()),
    "nanmean": lambda x: (x.nanmean(-1), torch.nanmean(x, dim=(0, 2), keepdim=True)),
    "pairwise_distance": lambda x: F.pairwise_distance(x[1:], x[1:].flip(0)),
    "PairwiseDistance p1": nn.PairwiseDistance(1.0, keepdim=True),
}


def _close(got: object, want: object) -> None:
    torch.testing.assert_close(got, want, rtol=2e-5, atol=1e-5, equal_nan=True)


def _exactly(got: object, want: object) -> None:
    """Each output (values, indices) equal to eager's, NaN where eager has NaN."""
    gots = got if isinstance(got, tuple) else (got,)
    wants = want if isinstance(want, tuple) else (want,)
    for g, w in zip(gots, wants, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_ops_match_eager(name: str, cache: str) -> None:
    x = _inputs()
    model = Apply(ELEMENTWISE[name]).eval()
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    _close(compiled(x), model(x))


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_norms_and_reductions_match_eager(name: str, cache: str) -> None:
    x = _inputs()
    x[0, 0, :8] = torch.tensor([NAN, 1.0, -2.0, 0.0, -0.0, 0.5, -0.5, 3.0])  # NaN, no inf
    x[2, 3] = 0.0  # a row of zeros (any / all / count_nonzero)
    op = REDUCTIONS[name]
    model = Apply(op if not isinstance(op, nn.Module) else _PairwiseOf(op)).eval()
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    got, want = compiled(x), model(x)
    _close(got, want)
    for g, w in zip(
        got if isinstance(got, tuple) else (got,),
        want if isinstance(want, tuple) else (want,),
        strict=True,
    ):
        assert g.dtype == w.dtype


class _PairwiseOf(nn.Module):
    def __init__(self, distance: nn.Module) -> None:
        super().__init__()
        self.distance = distance

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.distance(x[1:], x[1:].flip(0))


def test_rms_norm_module_in_a_llama_style_block_matches_eager(cache: str) -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.RMSNorm(64, eps=1e-6)
            self.gate, self.up = nn.Linear(64, 128, bias=False), nn.Linear(64, 128, bias=False)
            self.down = nn.Linear(128, 64, bias=False)
            with torch.no_grad():
                self.norm.weight.uniform_(0.5, 1.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.norm(x)
            return x + self.down(F.silu(self.gate(h)) * self.up(h))

    x = torch.randn(2, 16, 64)
    model = Block().eval()
    for threads in (1, 2):
        compiled = pc.compile(model, (x,), threads=threads, tuning=False, cache_dir=cache)
        _close(compiled(x), model(x))


def test_the_new_binary_ops_interpret_as_they_compile(cache: str) -> None:
    """The interpreter (the passes' reference) computes pow / hypot / copysign as the C does."""
    x = _inputs()[1:]

    class Binary(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            y = x.flip(-1)
            return (x.abs() ** y.clamp(-2, 2), torch.hypot(x, y), torch.copysign(x, y))

    model = Binary().eval()
    compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
    interpreted = interpret(compiled.graph.graph, [x.numpy()])
    for got, ref, want in zip(compiled(x), interpreted, model(x), strict=True):
        np.testing.assert_allclose(got.numpy(), ref, rtol=2e-6, atol=1e-6)
        _close(got, want)


@pytest.mark.parametrize(
    ("op", "why"),
    [
        (lambda x: torch.pow(x.long(), x.long()), "integer power"),
        (lambda x: x.long().prod(-1), "float32 only"),
        (lambda x: F.rrelu(x, training=True), "training=True"),
        (lambda x: F.pairwise_distance(x, x.flip(0), p=3.0), "p=3.0"),
        (lambda x: F.dropout2d(x[None]), "training=True"),
    ],
)
def test_what_cannot_be_mapped_is_refused_by_name(
    op: Callable[[torch.Tensor], torch.Tensor], why: str, cache: str
) -> None:
    x = torch.randn(3, 5)
    with pytest.raises(UnsupportedOp, match=why):
        pc.compile(Apply(op).eval(), (x,), threads=1, tuning=False, cache_dir=cache)


def test_onnx_pow_by_a_tensor_and_by_any_constant_matches_onnx_runtime(cache: str) -> None:
    """ONNX Pow beyond the constant exponents that are products and roots (stop 67)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    exponent = numpy_helper.from_array(np.array([1.7], dtype=np.float32), "e")
    graph = helper.make_graph(
        [helper.make_node("Pow", ["x", "y"], ["by_tensor"]),
         helper.make_node("Pow", ["x", "e"], ["by_constant"])],
        "pow",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [3, 37]) for n in ("x", "y")],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [3, 37])
         for n in ("by_tensor", "by_constant")],
        initializer=[exponent],
    )  # fmt: skip
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    data = data.SerializeToString()
    onnx.checker.check_model(data)
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 3.0, (3, 37)).astype(np.float32)
    y = rng.uniform(-2.0, 2.0, (3, 37)).astype(np.float32)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    want = session.run(None, {"x": x, "y": y})
    compiled = pc.compile_onnx(data, (x, y), tuning=False, threads=2, cache_dir=cache)
    for got, ref in zip(compiled(x, y), want, strict=True):
        np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-5, atol=1e-6)


BOUNDARIES = torch.tensor([-1.0, 0.0, 0.5, 2.0])
BUCKETS_AND_POOLS: dict[str, Callable[[torch.Tensor], torch.Tensor] | nn.Module] = {
    "bucketize": lambda x: torch.bucketize(x, BOUNDARIES),
    "bucketize right": lambda x: torch.bucketize(x, BOUNDARIES, right=True),
    "searchsorted": lambda x: torch.searchsorted(BOUNDARIES, x),
    "searchsorted side right": lambda x: torch.searchsorted(BOUNDARIES, x, side="right"),
    "bucketize int64": lambda x: torch.bucketize(
        x.clamp(-9, 9).round().long(), torch.tensor([-1, 0, 2])
    ),
    "lp_pool1d p2": lambda x: F.lp_pool1d(x.abs(), 2, 3),
    "lp_pool1d p3 stride 2": lambda x: F.lp_pool1d(x, 3, 4, 2),
    "LPPool1d": nn.LPPool1d(2, 4),
    "lp_pool2d": lambda x: F.lp_pool2d(x[None].abs(), 2.5, (1, 2)),
    "LPPool2d unbatched": nn.LPPool2d(2, (1, 3)),
    "max_pool2d unbatched": lambda x: F.max_pool2d(x, 2),
    "avg_pool2d unbatched padded": lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
}


@pytest.mark.parametrize("name", list(BUCKETS_AND_POOLS))
def test_buckets_and_pools_match_eager(name: str, cache: str) -> None:
    """NaN counts every boundary (PyTorch's binary search); the 2-d pools take an unbatched
    ``(C, H, W)`` input."""
    x = _inputs()[:, :, :24]
    x[1, 1, :4] = torch.tensor([-1.0, 0.0, 0.5, 2.0])  # values on the boundaries
    model = Apply(BUCKETS_AND_POOLS[name]).eval()
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    got, want = compiled(x), model(x)
    assert got.dtype == want.dtype
    _close(got, want)


class Sampler(nn.Module):
    def __init__(self, **options: object) -> None:
        super().__init__()
        self.options = options

    def forward(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(x, grid, **self.options)  # type: ignore[arg-type]


class SpatialTransformer(nn.Module):
    """Jaderberg et al. (2015): a localisation layer predicts ``theta``, ``affine_grid`` and
    ``grid_sample`` resample the input (twice, with and without ``align_corners``)."""

    def __init__(self) -> None:
        super().__init__()
        self.localise = nn.Linear(3 * 7 * 9, 6)
        with torch.no_grad():
            self.localise.weight.mul_(0.05)
            self.localise.bias.copy_(torch.tensor([1.0, 0.1, 0.05, -0.1, 0.9, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.localise(x.flatten(1)).view(-1, 2, 3)
        for align in (False, True):
            x = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align), align_corners=align)
        return x


@pytest.mark.parametrize(
    "options",
    [
        {"align_corners": False},
        {"align_corners": True},
        {"mode": "nearest", "align_corners": False},
        {"padding_mode": "border", "align_corners": False},
        {"mode": "nearest", "padding_mode": "border", "align_corners": True},
    ],
    ids=["bilinear", "bilinear aligned", "nearest", "border", "nearest border aligned"],
)
def test_grid_sample_matches_eager(options: dict[str, object], cache: str) -> None:
    """Sample points inside, on the edges of and outside the image (zeros padding weighs the
    outside neighbours 0), with a grid given at run time."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 9, generator=generator)
    grid = torch.rand(2, 5, 6, 2, generator=generator) * 2.4 - 1.2
    grid[0, 0, :3] = torch.tensor([[-1.0, 1.0], [0.0, 0.0], [1.0, -1.0]])
    model = Sampler(**options).eval()
    compiled = pc.compile(model, (x, grid), threads=2, tuning=False, cache_dir=cache)
    other = torch.rand(2, 5, 6, 2, generator=generator) * 2 - 1
    for g in (grid, other):
        _close(compiled(x, g), model(x, g))


def test_a_spatial_transformer_matches_eager(cache: str) -> None:
    x = torch.randn(2, 3, 7, 9)
    model = SpatialTransformer().eval()
    for threads in (1, 2):
        compiled = pc.compile(model, (x,), threads=threads, tuning=False, cache_dir=cache)
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ({"padding_mode": "reflection"}, "padding_mode='reflection'"),
        ({"mode": "bicubic"}, "bicubic"),
    ],
)
def test_grid_sample_refuses_other_modes_by_name(
    options: dict[str, object], why: str, cache: str
) -> None:
    x, grid = torch.randn(1, 2, 4, 4), torch.rand(1, 3, 3, 2) * 2 - 1
    with pytest.raises(UnsupportedOp, match=why):
        pc.compile(Sampler(**options).eval(), (x, grid), threads=1, tuning=False, cache_dir=cache)


@pytest.mark.parametrize(
    "op",
    [
        lambda x: x.median(),
        lambda x: torch.median(x, -1),
        lambda x: x.median(1, keepdim=True),
        lambda x: x.median(dim=0).values * 2,
    ],
    ids=["whole", "last dim", "dim 1 kept", "values of dim 0"],
)
def test_median_matches_eager_with_nan(
    op: Callable[[torch.Tensor], torch.Tensor], cache: str
) -> None:
    """The lower median and its position; a slice with a NaN gives NaN and the first NaN's
    position (the eager values and indices, exactly)."""
    x = torch.randn(3, 6, 7, generator=torch.Generator().manual_seed(0))
    x[0, 1, 2] = x[1, 2, 0] = x[1, 2, 5] = NAN
    model = Apply(op).eval()
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    _exactly(compiled(x), model(x))


@pytest.mark.parametrize("shape", [(2, 7, 5, 6), (2, 7, 9), (1, 6, 2, 3, 4)])
def test_local_response_norm_matches_eager(shape: tuple[int, ...], cache: str) -> None:
    """Odd and even window sizes (their asymmetric channel padding), 3-, 4- and 5-D inputs."""

    class Normalised(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.odd, self.even = nn.LocalResponseNorm(3), nn.LocalResponseNorm(4, 2e-4, 0.6, 2.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.odd(x) + self.even(x) + F.local_response_norm(x, 5)

    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    model = Normalised().eval()
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    _close(compiled(x), model(x))


@pytest.mark.parametrize(
    "op",
    [
        lambda x: torch.cummax(x, -1),
        lambda x: x.cummin(1),
        lambda x: x.cummax(dim=0).values * 2,
        lambda x: torch.cummin(x, 2).indices + 1,
    ],
    ids=["cummax last dim", "cummin dim 1", "cummax values dim 0", "cummin indices"],
)
def test_cummax_and_cummin_match_eager_with_ties_and_nan(
    op: Callable[[torch.Tensor], torch.Tensor], cache: str
) -> None:
    """Rounded values (ties: the index moves to the later position) and NaNs (the value stays
    NaN, the index moves to each later NaN), exactly as eager."""
    x = torch.randn(3, 6, 7, generator=torch.Generator().manual_seed(0)).round()
    x[0, 1, 2] = x[1, 2, 0] = x[1, 2, 5] = NAN
    model = Apply(op).eval()
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    _exactly(compiled(x), model(x))


def test_cummax_refuses_a_comparison_table_too_large(cache: str) -> None:
    x = torch.randn(2, 4096)
    with pytest.raises(UnsupportedOp, match="comparison table"):
        pc.compile(Apply(lambda t: t.cummax(-1).values).eval(), (x,), tuning=False, cache_dir=cache)
