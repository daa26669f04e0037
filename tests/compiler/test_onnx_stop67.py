"""Stop 67's ONNX ops (``frontend/onnx_more_ops.py``), what the exporters write for the ops
stop 67 added to the torch frontend: hand-built graphs against ONNX Runtime (1e-5), and
models exported by ``torch.onnx.export`` against ONNX Runtime and eager."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.compiler._user_models import exported_onnx
from torch import nn

import provenml.compiler as pc

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

N = helper.make_node
SHAPE = (2, 3, 5, 37)
ABS = N("Abs", ["x"], ["ax"])
CAST = N("Cast", ["m"], ["y"], to=TensorProto.FLOAT)
LAST, MIDDLE, MINUS_ONE = np.array([3]), np.array([1, 2]), np.array([-1])


def _model(nodes: list[onnx.NodeProto], opset: int, inits: dict[str, np.ndarray]) -> bytes:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model.SerializeToString()  # type: ignore[no-any-return]


#: (nodes writing "y" from "x", opset, initializers)
GRAPHS: dict[str, tuple[list[onnx.NodeProto], int, dict[str, np.ndarray]]] = {
    "Selu": ([N("Selu", ["x"], ["y"])], 17, {}),
    "Selu with attributes": ([N("Selu", ["x"], ["y"], alpha=1.2, gamma=0.9)], 17, {}),
    "Celu": ([N("Celu", ["x"], ["y"], alpha=0.7)], 17, {}),
    "Softsign": ([N("Softsign", ["x"], ["y"])], 17, {}),
    "Shrink hard": ([N("Shrink", ["x"], ["y"], lambd=0.4)], 17, {}),
    "Shrink soft": ([N("Shrink", ["x"], ["y"], lambd=0.4, bias=0.4)], 17, {}),
    "ThresholdedRelu": ([N("ThresholdedRelu", ["x"], ["y"], alpha=0.3)], 17, {}),
    "ReduceProd one axis": ([N("ReduceProd", ["x", "a"], ["y"], keepdims=0)], 18, {"a": LAST}),
    "ReduceProd two axes kept": ([N("ReduceProd", ["x", "a"], ["y"])], 18, {"a": MIDDLE}),
    "ReduceLogSum": ([ABS, N("ReduceLogSum", ["ax", "a"], ["y"])], 18, {"a": MINUS_ONE}),
    "IsInf": ([N("IsInf", ["x"], ["m"]), CAST], 17, {}),
    "IsInf positive": ([N("IsInf", ["x"], ["m"], detect_negative=0), CAST], 17, {}),
    "Xor": (
        [N("Greater", ["x", "z"], ["g"]), N("Less", ["x", "h"], ["l"]), N("Xor", ["g", "l"], ["m"]),
         CAST],
        17, {"z": np.float32(0.0), "h": np.float32(0.5)},
    ),
    "Mean": ([ABS, N("Mean", ["x", "ax", "c"], ["y"])], 17, {"c": np.float32(2.0)}),
    "LpNormalization p2": ([N("LpNormalization", ["x"], ["y"], axis=1)], 17, {}),
    "LpNormalization p1": ([N("LpNormalization", ["x"], ["y"], axis=-1, p=1)], 17, {}),
    "LpPool": ([N("LpPool", ["x"], ["y"], kernel_shape=[2, 3], strides=[1, 2], p=3)], 18, {}),
    "LpPool padded": ([N("LpPool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], 18, {}),
    "GlobalLpPool": ([N("GlobalLpPool", ["x"], ["y"], p=3)], 17, {}),
    "MeanVarianceNormalization": ([N("MeanVarianceNormalization", ["x"], ["y"])], 17, {}),
    "RMSNormalization": (
        [N("RMSNormalization", ["x", "s"], ["y"], axis=-1, epsilon=1e-6)],
        23, {"s": np.linspace(0.5, 1.5, 37).astype(np.float32)},
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(GRAPHS))
def test_stop67_onnx_ops_match_onnx_runtime(name: str, cache: str) -> None:
    nodes, opset, inits = GRAPHS[name]
    data = _model(nodes, opset, inits)
    x = np.random.default_rng(0).normal(0.0, 1.5, SHAPE).astype(np.float32)
    x[0, 0, 0, :3] = [np.inf, -np.inf, 0.0]
    if name.startswith(("LpNormalization", "MeanVariance", "RMS", "ReduceProd")):
        x[0, 0, 0, :2] = [2.0, -2.0]  # finite, where the norms take every element
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {"x": x})
    compiled = pc.compile_onnx(data, (x,), tuning=False, threads=2, cache_dir=cache)
    np.testing.assert_allclose(np.asarray(compiled(x)), want, rtol=1e-5, atol=1e-5)


def test_exported_stop67_activations_match_onnx_runtime_and_eager(cache: str) -> None:
    """SELU, CELU, softsign, softshrink, hardshrink and ``prod`` as ``torch.onnx.export``
    writes them (its ``isinf`` casts to float64 first, which the frontend refuses)."""

    class Activations(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.selu(x) + F.celu(x, 0.5) + F.softsign(x) + F.softshrink(x) + F.hardshrink(x)
            return y + (x / 4 + 1).prod(-1, keepdim=True)

    x = torch.randn(3, 4, 16)
    x[0, 0, 0] = float("nan")
    model = Activations().eval()
    data = exported_onnx(model, {"x": x})
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {"x": x.numpy()})
    compiled = pc.compile_onnx(data, (x,), tuning=False, threads=2, cache_dir=cache)
    got = compiled(x)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.as_tensor(got), model(x), rtol=1e-5, atol=1e-5, equal_nan=True)
