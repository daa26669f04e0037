"""Stop 59's ONNX ops (``frontend/onnx_more_ops.py``, a negative-step Slice in ``onnx.py``):
models using them exported with the TorchScript exporter, compiled, against ONNX Runtime and
eager PyTorch to 1e-4, and a hand-built ScatterElements with repeated indices and every
reduction against ONNX Runtime."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import provenml.compiler as pc

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
TOL = {"rtol": 1e-4, "atol": 1e-4}


class _Two(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return self.fn(x, ids)


PERMUTED = torch.tensor([3, 1, 0, 2])[:, None, None, None]  # "none": one update per place
CASES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    # PRelu, ReduceLogSumExp, DepthToSpace / SpaceToDepth, Trilu
    "activations_reductions": lambda x, ids: (
        F.prelu(x, torch.linspace(-1, 1, 8)) + torch.logsumexp(x, dim=1, keepdim=True)
        + F.pixel_unshuffle(F.pixel_shuffle(x, 2), 2) + torch.tril(x, -1) - torch.triu(x, 2)
    ),
    # OneHot, ScatterElements (add and none), Mod and Floor, a flip (negative-step Slice)
    "scatter_onehot_mod": lambda x, ids: (
        x.scatter_add(0, ids, x * 2) + x.scatter(0, PERMUTED.expand(4, 8, 6, 6), x * 3)
        + torch.remainder(x * 10, 3.0) + x.flip(1, 3)
        + F.one_hot(ids[:, 0, 0, 0], 8).float()[:, :, None, None]
        + torch.round(x * 4) + torch.sign(x)
    ),
    # ReduceMean / ReduceMax over axes that are not adjacent (permuted last), kept and not
    "reductions_apart": lambda x, ids: (
        x.mean((0, 2), keepdim=True) + x.amax((1, 3), keepdim=True)
        + x.sum((0, 3))[None, :, :, None]
    ),
    # TopK (values and int64 indices), its smallest form
    "topk": lambda x, ids: torch.cat(
        [torch.topk(x, 3, dim=1).values.flatten(1), torch.topk(x, 2, largest=False)[1].flatten(1)],
        1,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_exported_models_match_ort_and_eager(name: str, cache: str) -> None:
    torch.manual_seed(0)
    model = _Two(CASES[name]).eval()
    x, ids = torch.randn(4, 8, 6, 6), torch.randint(0, 4, (4, 8, 6, 6))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x, ids), buf, dynamo=False, input_names=["x", "ids"])
    data = buf.getvalue()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    used = [i.name for i in session.get_inputs()]  # the exporter drops unused inputs
    args = [{"x": x, "ids": ids}[n] for n in used]
    compiled = pc.compile_onnx(data, tuple(args), tuning=False, threads=1, cache_dir=cache)
    got = compiled(*args).numpy()
    want = session.run(None, {n: a.numpy() for n, a in zip(used, args, strict=True)})[0]
    np.testing.assert_allclose(got, want, **TOL)
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x, ids).numpy(), **TOL)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_elements_with_repeated_indices(reduction: str, cache: str) -> None:
    """Indices that repeat along the axis and a negative one: each reduction as ONNX Runtime
    computes it ("none" with distinct targets per column, where ONNX fixes the result)."""
    helper = onnx.helper
    data = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    updates = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    if reduction == "none":
        index = np.array([[0, 1, 2, 3], [4, -1, 0, 1], [2, 3, 4, 0]], np.int64)
    else:
        index = np.array([[0, 0, 1, 4], [0, -1, 1, 4], [2, 0, 3, -5]], np.int64)
    node = helper.make_node(
        "ScatterElements", ["data", "index", "updates"], ["y"], axis=0, reduction=reduction
    )
    _scatter_against_onnx_runtime(node, data, index, updates, cache)


def _scatter_against_onnx_runtime(
    node: onnx.NodeProto, data: np.ndarray, index: np.ndarray, updates: np.ndarray, cache: str
) -> pc.Compiled:
    """One scatter node on inputs ``data``, ``index``, ``updates``, compiled and compared with
    ONNX Runtime exactly; returns the compiled graph."""
    helper = onnx.helper
    feeds = {"data": data, "index": index, "updates": updates}
    kinds = {"data": onnx.TensorProto.FLOAT, "index": onnx.TensorProto.INT64}
    inputs = [
        helper.make_tensor_value_info(k, kinds.get(k, onnx.TensorProto.FLOAT), list(v.shape))
        for k, v in feeds.items()
    ]
    output = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, list(data.shape))
    graph = helper.make_graph([node], "scatter", inputs, [output])
    raw = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()
    want = ort.InferenceSession(raw, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    compiled = pc.compile_onnx(raw, args, tuning=False, threads=1, cache_dir=cache)
    np.testing.assert_allclose(compiled(*args).numpy(), want, rtol=0, atol=0)
    return compiled


@pytest.mark.parametrize(
    ("data_shape", "index", "reduction"),
    [
        ((4, 5, 3), [[[0, 1], [3, -1]], [[2, 0], [-4, 2]]], "none"),  # (2, 2, 2): slices of 3
        ((4, 5, 3), [[1], [-1]], "none"),  # whole (5, 3) blocks, one negative
        ((4, 5), [[0, 0], [0, 0], [3, 4]], "add"),  # a repeated element, added twice
        ((4, 5), [[1, 2], [1, 2], [0, 4]], "max"),
    ],
    ids=["pairs into a 3-d tensor", "first coordinate only", "add, repeated", "max"],
)
def test_scatter_nd(data_shape: tuple[int, ...], index: list, reduction: str, cache: str) -> None:
    """Stop 71: ScatterND (``torch.onnx.export``'s form of ``t[:, :s, :s] = v``), run-time
    indices with negative ones, against ONNX Runtime."""
    helper = onnx.helper
    rng = np.random.default_rng(0)
    idx = np.array(index, np.int64)
    update_shape = (*idx.shape[:-1], *data_shape[idx.shape[-1] :])
    data = rng.standard_normal(data_shape).astype(np.float32)
    updates = rng.standard_normal(update_shape).astype(np.float32)
    node = helper.make_node("ScatterND", ["data", "index", "updates"], ["y"], reduction=reduction)
    compiled = _scatter_against_onnx_runtime(node, data, idx, updates, cache)
    args = (torch.from_numpy(data), torch.from_numpy(idx), torch.from_numpy(updates))
    bad = args[1].clone()
    bad.view(-1)[0] = data_shape[0]  # one past the first dim
    with pytest.raises(pc.IndexOutOfRange):
        compiled(args[0], bad, args[2])


def test_adjacency_assigned_by_slices_exports_and_compiles(cache: str) -> None:
    """S9's heads write their adjacency so; the exporter writes ScatterND."""

    class Adjacency(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            adjacency = torch.zeros(x.shape[0], 6, 6)
            adjacency[:, :2, :2] = x @ x.transpose(1, 2)
            adjacency[:, 2:, :] = 0.5
            return adjacency.softmax(-1)

    model = Adjacency().eval()
    x = torch.randn(3, 2, 4)
    raw = io.BytesIO()
    torch.onnx.export(model, (x,), raw, dynamo=False)
    assert "ScatterND" in {n.op_type for n in onnx.load_from_string(raw.getvalue()).graph.node}
    compiled = pc.compile_onnx(raw.getvalue(), (x,), tuning=False, threads=1, cache_dir=cache)
    other = torch.randn(3, 2, 4)
    torch.testing.assert_close(compiled(other), model(other))


def test_nonzero_is_refused_with_the_way_round(cache: str) -> None:
    """NonZero's output size depends on the data (PyG's self-loop selection exports to it):
    without example inputs to read the count from (stop 72: with them it compiles,
    ``test_onnx_example_values.py``), the refusal says so and points at ``pc.compile`` on the
    PyTorch model (stop 71)."""
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("NonZero", ["x"], ["y"])],
        "nonzero",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.INT64, [1, None])],
    )
    raw = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()
    with pytest.raises(pc.UnsupportedOp, match=r"size depends on the data; pc\.compile"):
        pc.compile_onnx(raw, input_shapes={"x": (4,)}, tuning=False, threads=1, cache_dir=cache)
