"""Stop 72: ONNX models exported by ``torch.onnx.export``'s default exporter (``dynamo=True``,
``torch.export``-based, since PyTorch 2.9). Two of the library's models were refused through
it: PyG's pooling sizes its output by ``int(batch.max()) + 1``, exported as ReduceMax -> Add
-> Concat -> ConstantOfShape, a shape computed at run time; and ``table[ids]`` exports to
GatherND. A small integer input a handler needs at compile time (a shape, a count) is now
read from the example inputs and checked on every call (``ValueGuardFailed`` otherwise, as
``pc.compile``'s integer ``.item()``); GatherND (``batch_dims=0``) is a row gather."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import provenml.compiler as pc
from provenml.errors import ProvenmlError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
helper = onnx.helper
TensorProto = onnx.TensorProto


def _model(nodes: list, inputs: list, outputs: list, inits: list | None = None) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def _pooling() -> bytes:
    """``out = zeros(max(batch) + 1, F).index_add(0, batch, x)``: a sum pool whose number of
    rows is computed from the ids, as PyG's ``global_add_pool`` exports."""
    one = helper.make_tensor("one", TensorProto.INT64, [1], [1])
    width = helper.make_tensor("width", TensorProto.INT64, [1], [3])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("ReduceMax", ["batch"], ["top"], keepdims=1),
        helper.make_node("Add", ["top", "one"], ["rows"]),
        helper.make_node("Concat", ["rows", "width"], ["shape"], axis=0),
        helper.make_node("ConstantOfShape", ["shape"], ["zeros"]),
        helper.make_node("Unsqueeze", ["batch", "axes"], ["index"]),
        helper.make_node("ScatterND", ["zeros", "index", "x"], ["y"], reduction="add"),
    ]
    return _model(
        nodes,
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [6, 3]),
            helper.make_tensor_value_info("batch", TensorProto.INT64, [6]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [one, width, axes],
    )


def _run_ort(model: bytes, **feeds: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]  # type: ignore[no-any-return]


def test_a_shape_computed_from_the_ids_is_taken_from_the_example(cache: str) -> None:
    data = _pooling()
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    batch = np.array([0, 0, 1, 1, 1, 2], np.int64)
    compiled = pc.compile_onnx(data, (x, batch), tuning=False, threads=1, cache_dir=cache)
    np.testing.assert_allclose(compiled(x, batch).numpy(), _run_ort(data, x=x, batch=batch))
    other = np.array([2, 0, 1, 0, 2, 1], np.int64)  # the same number of graphs: same shape
    np.testing.assert_allclose(
        compiled(2 * x, other).numpy(), _run_ort(data, x=2 * x, batch=other), rtol=1e-6
    )
    with pytest.raises(pc.ValueGuardFailed, match="ConstantOfShape input 0"):
        compiled(x, np.array([0, 0, 1, 1, 1, 3], np.int64))  # four graphs


def test_without_example_inputs_the_shape_is_refused_naming_the_way(cache: str) -> None:
    with pytest.raises(ProvenmlError, match="given example inputs"):
        pc.compile_onnx(_pooling(), input_shapes={"x": (6, 3), "batch": (6,)}, cache_dir=cache)


def test_a_shape_cast_from_a_float_is_guarded_exactly(cache: str) -> None:
    """An integer computed from float values (a Cast of a ReduceMax) sizes the output: the
    example's number, checked as an integer on each call."""
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["top"], keepdims=1),
        helper.make_node("Cast", ["top"], ["rows"], to=TensorProto.INT64),
        helper.make_node("ConstantOfShape", ["rows"], ["filled"]),
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=1),
        helper.make_node("Add", ["filled", "total"], ["y"]),
    ]
    data = _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    x = np.array([3.0, 1.0, 2.5, 0.0], np.float32)
    compiled = pc.compile_onnx(data, (x,), tuning=False, threads=1, cache_dir=cache)
    np.testing.assert_allclose(compiled(x).numpy(), _run_ort(data, x=x))
    np.testing.assert_allclose(compiled(x * 1.2).numpy(), _run_ort(data, x=x * 1.2))  # 3.6 -> 3
    with pytest.raises(pc.ValueGuardFailed, match="it was 3 on the example inputs and is 6"):
        compiled(x * 2)


@pytest.mark.parametrize(
    ("data_shape", "index"),
    [
        ((5, 4), [[1], [4], [-1]]),  # k = 1: rows, a negative one from the end
        ((3, 4, 2), [[[0, 1], [2, -1]], [[1, 0], [2, 3]]]),  # k = 2 of 3 dims: slices
        ((3, 4), [[2, 3], [0, 0]]),  # k = rank: elements
    ],
)
def test_gather_nd_against_onnx_runtime(
    data_shape: tuple[int, ...], index: list, cache: str
) -> None:
    idx = np.array(index, np.int64)
    data = np.random.default_rng(1).standard_normal(data_shape).astype(np.float32)
    model = _model(
        [helper.make_node("GatherND", ["data", "index"], ["y"])],
        [
            helper.make_tensor_value_info("data", TensorProto.FLOAT, list(data_shape)),
            helper.make_tensor_value_info("index", TensorProto.INT64, list(idx.shape)),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    compiled = pc.compile_onnx(model, (data, idx), tuning=False, threads=1, cache_dir=cache)
    np.testing.assert_array_equal(
        compiled(data, idx).numpy(), _run_ort(model, data=data, index=idx)
    )
    bad = idx.copy()
    bad.reshape(-1)[0] = data_shape[0]
    with pytest.raises(pc.IndexOutOfRange):
        compiled(data, bad)


def test_an_embedding_lookup_by_the_default_exporter(cache: str) -> None:
    """``table[ids]`` (S3's bigram model) through ``torch.onnx.export(..., dynamo=True)``."""
    pytest.importorskip("onnxscript")
    import contextlib
    import io
    import warnings

    class Lookup(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = torch.nn.Parameter(torch.randn(16, 16))

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.table[ids].log_softmax(-1)

    torch.manual_seed(0)
    model, ids = Lookup().eval(), torch.randint(0, 16, (2, 5))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (ids,), dynamo=True, verbose=False)
    data = program.model_proto.SerializeToString()
    compiled = pc.compile_onnx(data, (ids,), tuning=False, threads=1, cache_dir=cache)
    other = torch.randint(0, 16, (2, 5))
    with torch.no_grad():
        torch.testing.assert_close(compiled(other), model(other))


def test_nonzero_keeps_the_example_count(cache: str) -> None:
    """NonZero (PyG's self-loop removal exports to it): the coordinates in row-major order,
    the example's count checked on each call."""
    model = _model(
        [helper.make_node("NonZero", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, None)],
    )
    x = np.array([[0, 1, 0, 2], [3, 0, 0, 0], [0, 0, 5, 0]], np.float32)
    compiled = pc.compile_onnx(model, (x,), tuning=False, threads=1, cache_dir=cache)
    for value in (x, np.roll(x, 1), -np.roll(x, 5)):
        np.testing.assert_array_equal(compiled(value).numpy(), _run_ort(model, x=value))
    with pytest.raises(pc.ValueGuardFailed, match="it was 4 on the example inputs and is 12"):
        compiled(np.ones((3, 4), np.float32))
    with pytest.raises(ProvenmlError, match="given example inputs"):
        pc.compile_onnx(model, input_shapes={"x": (3, 4)}, cache_dir=cache)


@pytest.mark.parametrize(("shape", "ids", "axis"), [((3, 5, 4), (2, 3), 1), ((2, 7), (4,), -1)])
def test_gather_of_run_time_ids_on_another_axis(
    shape: tuple[int, ...], ids: tuple[int, ...], axis: int, cache: str
) -> None:
    """``edge_index[:, keep]`` exports to Gather on axis 1 with run-time ids (before: refused,
    "run-time indices on an axis other than 0")."""
    model = _model(
        [helper.make_node("Gather", ["x", "i"], ["y"], axis=axis)],
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape)),
            helper.make_tensor_value_info("i", TensorProto.INT64, list(ids)),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    size = shape[axis]
    example = rng.integers(-size, size, ids).astype(np.int64)
    compiled = pc.compile_onnx(model, (x, example), tuning=False, threads=1, cache_dir=cache)
    other = rng.integers(-size, size, ids).astype(np.int64)
    np.testing.assert_array_equal(compiled(x, other).numpy(), _run_ort(model, x=x, i=other))
    with pytest.raises(pc.IndexOutOfRange):
        compiled(x, np.full(ids, size, np.int64))


def test_gather_nd_reads_a_boolean_mask(cache: str) -> None:
    """Stop 74: ``transformers`` builds its attention mask as ``mask[batch, positions]`` of a
    boolean mask, which the default exporter writes as GatherND of a boolean tensor: refused
    ("a boolean tensor operand") for 19 of the 41 models; the gathered mask feeds Where."""
    rows = np.array([[0], [2], [1]], np.int64)
    model = _model(
        [
            helper.make_node("Greater", ["x", "zero"], ["positive"]),
            helper.make_node("GatherND", ["positive", "rows"], ["picked"]),
            helper.make_node("Where", ["picked", "x_rows", "minus"], ["y"]),
        ],
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4]),
            helper.make_tensor_value_info("x_rows", TensorProto.FLOAT, [3, 4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("minus", TensorProto.FLOAT, [], [-1.0]),
            helper.make_tensor("rows", TensorProto.INT64, [3, 1], rows.reshape(-1).tolist()),
        ],
    )
    generator = np.random.default_rng(2)
    x, x_rows = (generator.standard_normal((3, 4)).astype(np.float32) for _ in range(2))
    compiled = pc.compile_onnx(model, (x, x_rows), tuning=False, threads=1, cache_dir=cache)
    other = generator.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(
        compiled(other, x_rows).numpy(), _run_ort(model, x=other, x_rows=x_rows)
    )
