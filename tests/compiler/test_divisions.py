"""Stop 60: the divisions stop 59 left refused, through both frontends: true division of
integers (as floats), ``rounding_mode="trunc"`` and ``fmod`` (integers and floats), ONNX's
integer Div and ``Mod`` with ``fmod=1``; and a 0-d tensor times a Python number, which
failed shape inference before (a 0-d constant was stored 1-d)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from tests.compiler._user_models import Call

import provenml.compiler as pc

INTS = torch.tensor([7, -7, 5, -9, 6, 0, 123_456_789, -1])
DIVISORS = torch.tensor([2, 3, -4, -5, 3, 7, 1000, 4])
# float dividends that are exact multiples of their divisors (an integer quotient, where an
# approximate division would truncate one below) and others
STEPS = torch.tensor([0.5, 1.5, -4.5, 0.25, 3.0, 0.1, 7.0, -2.5])
FLOATS = torch.cat(
    [STEPS * torch.arange(-3, 5), torch.randn(8, generator=torch.Generator().manual_seed(0)) * 9]
)
FLOAT_DIVISORS = torch.cat([STEPS, STEPS.flip(0)])


CASES: dict[str, tuple[Callable[..., torch.Tensor], tuple[torch.Tensor, ...]]] = {
    "int true division": (lambda a, b: a / b, (INTS, DIVISORS)),
    "int by a scalar": (lambda a, b: a / 4 + torch.true_divide(b, 2.5), (INTS, DIVISORS)),
    "mask mean": (lambda a, b: (a > 0).sum(-1) / (b != 0).sum(-1), (INTS, DIVISORS)),
    "int trunc": (lambda a, b: torch.div(a, b, rounding_mode="trunc"), (INTS, DIVISORS)),
    "float trunc": (lambda x, y: x.div(y, rounding_mode="trunc"), (FLOATS, FLOAT_DIVISORS)),
    "int fmod": (lambda a, b: torch.fmod(a, b) * 10 + a.fmod(3), (INTS, DIVISORS)),
    "float fmod": (lambda x, y: torch.fmod(x, y), (FLOATS, FLOAT_DIVISORS)),
    "0-d times a number": (lambda a, b: a.sum() * 3 + b.sum() // 2, (INTS, DIVISORS)),
    "0-d float": (lambda x, y: x.sum() * 0.5 - y.mean() / 4, (FLOATS, FLOAT_DIVISORS)),
}
EXACT = ("int trunc", "float trunc", "int fmod", "float fmod", "0-d times a number")


@pytest.mark.parametrize("case", list(CASES))
def test_divisions_match_eager(case: str, cache: str) -> None:
    fn, args = CASES[case]
    model = Call(fn).eval()
    compiled = pc.compile(model, args, tuning=False, threads=1, cache_dir=cache)
    got, want = compiled(*args), model(*args)
    assert got.dtype == want.dtype and got.shape == want.shape
    if case in EXACT:
        assert torch.equal(got, want), (got, want)
    else:  # a float quotient: within an ulp or two (-ffast-math's division)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=0)


@pytest.mark.parametrize("case", ["int trunc", "int fmod"])
def test_integer_trunc_and_fmod_by_zero_raise(case: str, cache: str) -> None:
    fn, args = CASES[case]
    compiled = pc.compile(Call(fn).eval(), args, tuning=False, threads=1, cache_dir=cache)
    zero = DIVISORS.clone()
    zero[3] = 0
    with pytest.raises(pc.IntegerDivisionByZero, match="-9"):
        compiled(INTS, zero)


def _onnx_binary(op: str, dtype: int, **attrs: int) -> bytes:
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "b"], ["y"], **attrs)],
        op.lower(),
        [helper.make_tensor_value_info(n, dtype, [8]) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", dtype, [8])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


@pytest.mark.parametrize(
    ("op", "fmod", "ints"),
    [("Div", 0, True), ("Mod", 1, True), ("Mod", 1, False), ("Mod", 0, True)],
)
def test_onnx_integer_div_and_fmod_match_onnx_runtime(
    op: str, fmod: int, ints: bool, cache: str
) -> None:
    dtype = onnx.TensorProto.INT64 if ints else onnx.TensorProto.FLOAT
    raw = _onnx_binary(op, dtype, **({"fmod": fmod} if op == "Mod" else {}))
    args = (INTS, DIVISORS) if ints else (FLOATS[:8], FLOAT_DIVISORS[:8])
    feeds = {"a": args[0].numpy(), "b": args[1].numpy()}
    want = ort.InferenceSession(raw, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    compiled = pc.compile_onnx(raw, args, tuning=False, cache_dir=cache)
    np.testing.assert_array_equal(compiled(*args).numpy(), want)
