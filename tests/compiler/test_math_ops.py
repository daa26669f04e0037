"""Stop 66's maths (``ir.MATH_UNARY``: ``sin`` ... ``lgamma``, one libm call per element, and
``reciprocal``), refused before: each on its own domain against eager and the IR
interpreter, the method, in-place and ``torch.special`` forms, an int64 input, a diffusion
model's sinusoidal time embedding, and the ONNX frontend's trigonometric ops against ONNX
Runtime."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import provenml.compiler as pc
from provenml.compiler.ir import MATH_UNARY

WIDTH = 37  # not a multiple of the vector width: the kernels' tail loops run too

#: each function on an interval inside its domain, away from poles: (low, high)
DOMAINS: dict[str, tuple[float, float]] = {
    "sin": (-20.0, 20.0),
    "cos": (-20.0, 20.0),
    "tan": (-1.5, 1.5),
    "asin": (-0.99, 0.99),
    "acos": (-0.99, 0.99),
    "atan": (-30.0, 30.0),
    "sinh": (-10.0, 10.0),
    "cosh": (-10.0, 10.0),
    "asinh": (-50.0, 50.0),
    "acosh": (1.0, 50.0),
    "atanh": (-0.99, 0.99),
    "log1p": (-0.9, 30.0),
    "expm1": (-10.0, 10.0),
    "log2": (1e-3, 100.0),
    "log10": (1e-3, 100.0),
    "exp2": (-20.0, 20.0),
    "erf": (-4.0, 4.0),
    "erfc": (-4.0, 4.0),
    "lgamma": (0.05, 12.0),
    "lgamma_negative": (-2.95, -2.05),  # log|Gamma| between two poles
}


class EveryFunction(nn.Module):
    """``torch.<f>`` of ``x`` (in [0, 1)) mapped onto each function's interval, stacked."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = []
        for name, (low, high) in DOMAINS.items():
            fn = getattr(torch, name.removesuffix("_negative"))
            outputs.append(fn(low + (high - low) * x))
        return torch.stack(outputs)


def test_every_function_matches_eager_and_the_interpreter(cache: str) -> None:
    assert set(MATH_UNARY) <= {n.removesuffix("_negative") for n in DOMAINS}
    model = EveryFunction().eval()
    x = torch.rand(3, WIDTH, generator=torch.Generator().manual_seed(0))
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    x2 = torch.rand(3, WIDTH, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x2)
    got = compiled(x2)
    for k, name in enumerate(DOMAINS):  # one function at a time, so a failure names it
        torch.testing.assert_close(got[k], expected[k], rtol=2e-6, atol=2e-6, msg=name)
    interpreted = pc.interpret(pc.trace(model, (x2,)), [x2.numpy()])[0]
    np.testing.assert_allclose(interpreted, expected.numpy(), rtol=2e-6, atol=2e-6)


def test_outside_the_domain_gives_what_eager_gives(cache: str) -> None:
    """NaN outside a domain, infinities at a pole, as PyTorch."""
    x = torch.tensor([[-2.0, -1.0, 0.0, 1.0, 2.0, 0.5, -3.0, 1e-30]])

    class Edges(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack(
                [torch.asin(x), torch.acosh(x), torch.atanh(x), torch.log1p(x - 1.0),
                 torch.log2(x), torch.lgamma(x)]
            )  # fmt: skip

    model = Edges().eval()
    compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), model(x), rtol=2e-6, atol=2e-6, equal_nan=True)


class Forms(nn.Module):
    """Methods, an in-place method on an intermediate, ``torch.special`` and ``arc`` names."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 2.0
        y.sin_()
        z = x.cos() + x.tanh().arcsin() + torch.arctan(x) + (x + 3.0).reciprocal()
        z = z + torch.special.expm1(x) + torch.special.log1p(x.abs()) + torch.special.exp2(x)
        z = z + torch.special.erfc(x) + torch.special.gammaln(x.abs() + 0.5) + torch.erf(x)
        return y + z + (x.abs() + 3.0).lgamma().log10() + torch.reciprocal(x + 5.0)


def test_method_in_place_and_special_forms(cache: str) -> None:
    model = Forms().eval()
    x = torch.randn(4, WIDTH, generator=torch.Generator().manual_seed(2))
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    x2 = torch.randn(4, WIDTH, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(compiled(x2), model(x2), rtol=1e-5, atol=1e-5)


def test_an_integer_input_is_promoted_as_pytorch_does(cache: str) -> None:
    class Ids(nn.Module):
        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return torch.sin(ids) + torch.lgamma(ids + 1) + ids.reciprocal()

    model = Ids().eval()
    ids = torch.randint(1, 40, (5, WIDTH))
    compiled = pc.compile(model, (ids,), threads=1, tuning=False, cache_dir=cache)
    ids2 = torch.randint(1, 40, (5, WIDTH), generator=torch.Generator().manual_seed(4))
    out = compiled(ids2)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, model(ids2), rtol=2e-6, atol=2e-5)


class TimeEmbeddingMlp(nn.Module):
    """A diffusion model's noise-level input: the sinusoidal embedding of a run-time time step
    (Ho et al. 2020, after Vaswani et al. 2017) through SiLU MLP layers, added to features."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10_000.0) * torch.arange(half) / half))
        self.mlp = nn.Sequential(nn.Linear(dim, 64), nn.SiLU(), nn.Linear(64, dim))
        self.body = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        angles = t[:, None].float() * self.freqs[None]
        embedding = torch.cat([angles.sin(), angles.cos()], dim=-1)
        return self.body(x) + self.mlp(embedding)  # type: ignore[no-any-return]


def test_a_sinusoidal_time_embedding_compiles(cache: str) -> None:
    torch.manual_seed(0)
    model = TimeEmbeddingMlp().eval()
    x, t = torch.randn(6, 32), torch.randint(0, 1000, (6,))
    compiled = pc.compile(model, (x, t), threads=2, tuning=False, cache_dir=cache)
    x2, t2 = torch.randn(6, 32), torch.randint(0, 1000, (6,))
    with torch.no_grad():
        torch.testing.assert_close(compiled(x2, t2), model(x2, t2), rtol=1e-5, atol=1e-5)


def test_onnx_trigonometric_ops_match_ort_and_eager(cache: str) -> None:
    """A hand-built graph (PyTorch's TorchScript exporter has no Sinh / Cosh): each op on
    ``x`` squashed into its domain by Tanh (times 0.99) or lifted by Abs + 1 (Acosh)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    ops = ("Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh")
    squashed = {"Tan", "Asin", "Acos", "Atanh"}
    nodes = [
        helper.make_node("Tanh", ["x"], ["t"]),
        helper.make_node("Mul", ["t", "scale"], ["bounded"]),
        helper.make_node("Abs", ["x"], ["a"]),
        helper.make_node("Add", ["a", "one"], ["lifted"]),
    ]
    for op in ops:
        source = "bounded" if op in squashed else "lifted" if op == "Acosh" else "x"
        nodes.append(helper.make_node(op, [source], [op.lower()], name=f"the_{op.lower()}"))
    nodes.append(helper.make_node("Concat", [op.lower() for op in ops], ["y"], axis=0))
    shape = (3, WIDTH)
    graph = helper.make_graph(
        nodes,
        "trigonometric",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (3 * len(ops), WIDTH))],
        [helper.make_tensor("scale", TensorProto.FLOAT, (), [0.99]),
         helper.make_tensor("one", TensorProto.FLOAT, (), [1.0])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(5)) * 2
    compiled = pc.compile_onnx(data, (x,), tuning=False, threads=1, cache_dir=cache)
    got = compiled(x).numpy()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(got, session.run(None, {"x": x.numpy()})[0], rtol=1e-5, atol=1e-5)
    bounded, lifted = torch.tanh(x) * 0.99, x.abs() + 1.0
    eager = [
        getattr(torch, op.lower())(bounded if op in squashed else lifted if op == "Acosh" else x)
        for op in ops
    ]
    np.testing.assert_allclose(got, torch.cat(eager).numpy(), rtol=1e-5, atol=1e-5)


def test_filled_like_constants(cache: str) -> None:
    """``zeros_like`` / ``ones_like`` / ``full_like`` of float and int64 tensors."""

    class Filled(nn.Module):
        def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
            column = x[:, 0]
            counts = torch.zeros_like(column).scatter_add(0, ids % 4, torch.ones_like(column))
            counts = counts + (torch.zeros_like(ids) + ids * 2).float()  # int64 constants
            return torch.full_like(x, 2.5) * x + torch.zeros_like(x) + counts[:, None]

    model = Filled().eval()
    x, ids = torch.randn(6, WIDTH), torch.randint(0, 6, (6,))
    compiled = pc.compile(model, (x, ids), threads=1, tuning=False, cache_dir=cache)
    x2, ids2 = torch.randn(6, WIDTH), torch.randint(0, 6, (6,))
    torch.testing.assert_close(compiled(x2, ids2), model(x2, ids2))
