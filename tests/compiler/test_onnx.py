"""The ONNX frontend (issue 23, item 3): models exported with ``torch.onnx.export`` and graphs
built by hand with ``onnx.helper``, compiled through the same IR and pipeline, against ONNX
Runtime on the same model and against eager PyTorch, to 1e-4."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.compiler._user_models import (
    CONFIGS,
    EINSUM_CASES,
    PADDED,
    USER_MODELS,
    Einsum,
    Padded,
    PaddedAttention,
    Tagger,
    TokenMask,
    exported_onnx,
    minilm_pooled,
    padded_sequences,
    padding_mask,
    recurrent_inputs,
    token_ids,
    user_model,
)

import provenml.compiler as pc
from provenml.compiler.models import build_model
from provenml.errors import ProvenmlError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

TOL = {"rtol": 1e-4, "atol": 1e-4}


def _ort(model: bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)  # type: ignore[no-any-return]


def _export(model: torch.nn.Module, x: torch.Tensor, dynamo: bool = False) -> bytes:
    if not dynamo:
        return exported_onnx(model, {"x": x})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (x,), dynamo=True, verbose=False)
        return program.model_proto.SerializeToString()  # type: ignore[union-attr]


def _matches_ort_and_eager(
    data: bytes, model: torch.nn.Module, x: torch.Tensor, cache: str
) -> None:
    """``data`` (``model`` exported) compiled on ``x`` gives ONNX Runtime's and eager's
    outputs, with their dtypes."""
    compiled = pc.compile_onnx(data, (x,), tuning=False, threads=1, cache_dir=cache)
    got = compiled(x)
    with torch.no_grad():
        eager = model(x)
    got, eager = ((t,) if isinstance(t, torch.Tensor) else tuple(t) for t in (got, eager))
    for y, want, ref in zip(got, _ort(data, {"x": x.numpy()}), eager, strict=True):
        assert y.dtype == ref.dtype
        np.testing.assert_allclose(y.numpy(), want, **TOL)
        np.testing.assert_allclose(y.numpy(), ref.numpy(), **TOL)


@pytest.mark.parametrize("name", ["mlp", "resnet", "transformer"])
def test_exported_model_matches_ort_and_eager(name: str, cache: str) -> None:
    model, x = build_model(name, batch=2 if name == "mlp" else 1)
    data = _export(model, x)
    _matches_ort_and_eager(data, model, x, cache)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", "transformer"])
def test_dynamo_exported_model_matches_ort(name: str, cache: str) -> None:
    model, x = build_model(name, batch=1)
    data = _export(model, x, dynamo=True)
    feeds = {onnx.load_from_string(data).graph.input[0].name: x.numpy()}
    compiled = pc.compile_onnx(data, (x,), tuning=False, threads=1, cache_dir=cache)
    np.testing.assert_allclose(compiled(x).numpy(), _ort(data, feeds)[0], **TOL)


def _model(
    nodes: list[onnx.NodeProto],
    inputs: dict[str, tuple[int, ...]],
    outputs: list[str],
    inits: dict[str, np.ndarray] | None = None,
    opset: int = 17,
    int_inputs: tuple[str, ...] = (),
) -> bytes:
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info(
                k, TensorProto.INT64 if k in int_inputs else TensorProto.FLOAT, list(v)
            )
            for k, v in inputs.items()
        ],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()  # type: ignore[no-any-return]


R = np.random.default_rng(0)


def w(*shape: int) -> np.ndarray:
    return R.standard_normal(shape).astype(np.float32)


N = helper.make_node
HAND_BUILT = {
    "gemm_alpha_beta_transA": (
        [N("Gemm", ["x", "W", "C"], ["y"], alpha=0.5, beta=2.0, transA=1)],
        {"x": (6, 3)},
        {"W": w(6, 5), "C": w(1, 5)},
        17,
    ),
    "gemm_runtime_b_transB": (
        [N("Gemm", ["x", "b"], ["y"], transB=1)],
        {"x": (3, 6), "b": (5, 6)},
        {},
        17,
    ),
    # an empty axes input reduces every dim (it was a no-op before stop 54)
    "pad_constant_and_crop": (
        [N("Pad", ["x", "pads", "value"], ["y"], mode="constant")],
        {"x": (2, 3, 4)},
        {"pads": np.array([0, 1, -1, 0, 2, 3], np.int64), "value": np.array(0.25, np.float32)},
        18,
    ),
    "reduce_sum_max_empty_axes": (
        [
            N("ReduceSum", ["x", "none"], ["s"], keepdims=0),
            N("ReduceMax", ["x", "none"], ["m"], keepdims=1),
            N("Mul", ["m", "s"], ["y"]),
        ],
        {"x": (2, 3, 4)},
        {"none": np.zeros(0, np.int64)},
        18,
    ),
    "matmul_batched_and_const": (
        [N("MatMul", ["x", "b"], ["t"]), N("MatMul", ["t", "W"], ["y"])],
        {"x": (2, 3, 4), "b": (2, 4, 5)},
        {"W": w(5, 7)},
        17,
    ),
    "conv_pool_bn_relu": (
        [
            N("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
            N("BatchNormalization", ["c", "s", "o", "m", "v"], ["n"], epsilon=1e-3),
            N("Relu", ["n"], ["r"]),
            N("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
            N("GlobalAveragePool", ["p"], ["g"]),
            N("Flatten", ["g"], ["y"], axis=1),
        ],
        {"x": (1, 3, 9, 9)},
        {
            "W": w(8, 3, 3, 3),
            "B": w(8),
            "s": w(8),
            "o": w(8),
            "m": w(8),
            "v": np.abs(w(8)) + 0.5,
        },
        17,
    ),
    "conv1d_depthwise": (
        [N("Conv", ["x", "W"], ["y"], group=4, pads=[2, 2], kernel_shape=[5])],
        {"x": (2, 4, 11)},
        {"W": w(4, 1, 5)},
        17,
    ),
    "gelu_softmax_layernorm": (
        [
            N("Gelu", ["x"], ["g"], approximate="tanh"),
            N("Softmax", ["g"], ["s"], axis=1),
            N("LayerNormalization", ["s", "gamma", "beta"], ["y"], epsilon=1e-5),
        ],
        {"x": (2, 5, 8)},
        {"gamma": w(8), "beta": w(8)},
        20,
    ),
    "softmax_opset11_flattens": (
        [N("Softmax", ["x"], ["y"], axis=1)],
        {"x": (2, 3, 4)},
        {},
        11,
    ),
    "decomposed_layernorm_and_gelu": (
        [
            N("ReduceMean", ["x"], ["mu"], axes=[-1]),
            N("Sub", ["x", "mu"], ["d"]),
            N("Pow", ["d", "two"], ["d2"]),
            N("ReduceMean", ["d2"], ["var"], axes=[-1]),
            N("Add", ["var", "eps"], ["ve"]),
            N("Sqrt", ["ve"], ["sd"]),
            N("Div", ["d", "sd"], ["n"]),
            N("Div", ["n", "sqrt2"], ["h"]),
            N("Erf", ["h"], ["e"]),
            N("Add", ["e", "one"], ["e1"]),
            N("Mul", ["n", "e1"], ["m"]),
            N("Mul", ["m", "half"], ["y"]),
        ],
        {"x": (3, 16)},
        {
            "two": np.float32(2.0),
            "eps": np.float32(1e-5),
            "sqrt2": np.float32(np.sqrt(2.0)),
            "one": np.float32(1.0),
            "half": np.float32(0.5),
        },
        13,
    ),
    "reshape_shape_chain_transpose_split_concat": (
        [
            N("Shape", ["x"], ["sh"]),
            N("Gather", ["sh", "zero"], ["b"], axis=0),
            N("Unsqueeze", ["b", "ax0"], ["b1"]),
            N("Concat", ["b1", "rest"], ["target"], axis=0),
            N("Reshape", ["x", "target"], ["r"]),
            N("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
            N("Split", ["t", "sizes"], ["a", "c"], axis=2),
            N("Concat", ["c", "a"], ["cat"], axis=2),
            N("Slice", ["cat", "st", "en", "axs", "stp"], ["sl"]),
            N("Unsqueeze", ["sl", "ax0"], ["u"]),
            N("Squeeze", ["u", "ax0"], ["y"]),
        ],
        {"x": (2, 3, 8)},
        {
            "zero": np.array(0, np.int64),
            "ax0": np.array([0], np.int64),
            "rest": np.array([-1, 6], np.int64),
            "sizes": np.array([1, 3], np.int64),
            "st": np.array([1, 0], np.int64),
            "en": np.array([100, 4], np.int64),
            "axs": np.array([1, 2], np.int64),
            "stp": np.array([2, 1], np.int64),
        },
        13,
    ),
    "sigmoid_tanh_sub_reduce_sum": (
        [
            N("Sigmoid", ["x"], ["s"]),
            N("Tanh", ["x"], ["t"]),
            N("Sub", ["s", "t"], ["d"]),
            N("ReduceSum", ["d", "ax"], ["y"], keepdims=0),
        ],
        {"x": (4, 5, 6)},
        {"ax": np.array([1], np.int64)},
        13,
    ),
}


@pytest.mark.parametrize("name", sorted(HAND_BUILT))
def test_hand_built_graph_matches_ort(name: str, cache: str) -> None:
    nodes, inputs, inits, opset = HAND_BUILT[name]
    data = _model(nodes, inputs, ["y"], inits, opset)
    feeds = {k: w(*v) for k, v in inputs.items()}
    compiled = pc.compile_onnx(data, list(feeds.values()), tuning=False, threads=1, cache_dir=cache)
    np.testing.assert_allclose(compiled(*feeds.values()).numpy(), _ort(data, feeds)[0], **TOL)


def test_embedding_lookup_and_two_outputs(cache: str) -> None:
    nodes = [
        N("Gather", ["E", "ids"], ["e"], axis=0),
        N("Relu", ["e"], ["y"]),
        N("Neg", ["e"], ["z"]),
    ]
    data = _model(nodes, {"ids": (2, 3)}, ["y", "z"], {"E": w(10, 4)}, int_inputs=("ids",))
    ids = np.array([[1, 9, 0], [3, 3, 7]], np.int64)
    compiled = pc.compile_onnx(data, (ids,), tuning=False, threads=1, cache_dir=cache)
    y, z = compiled(ids)
    ref_y, ref_z = _ort(data, {"ids": ids})
    np.testing.assert_allclose(y.numpy(), ref_y, **TOL)
    np.testing.assert_allclose(z.numpy(), ref_z, **TOL)


def test_path_proto_and_static_shapes(cache: str, tmp_path: Path) -> None:
    data = _model([N("Relu", ["x"], ["y"])], {"x": (2, 3)}, ["y"])
    path = tmp_path / "relu.onnx"
    path.write_bytes(data)
    x = w(2, 3)
    for source in (path, str(path), onnx.load(str(path))):
        compiled = pc.compile_onnx(source, tuning=False, threads=1, cache_dir=cache)
        np.testing.assert_allclose(compiled(x).numpy(), np.maximum(x, 0))


def test_symbolic_dims_need_examples(cache: str) -> None:
    data = _model([N("Relu", ["x"], ["y"])], {"x": ("batch", 3)}, ["y"])  # type: ignore[dict-item]
    with pytest.raises(ProvenmlError, match=r"symbolic dims.*pass example inputs"):
        pc.compile_onnx(data, cache_dir=cache)
    compiled = pc.compile_onnx(data, input_shapes={"x": (5, 3)}, tuning=False, cache_dir=cache)
    assert tuple(compiled(w(5, 3)).shape) == (5, 3)


def test_unsupported_op_names_op_and_node() -> None:
    data = _model(
        [N("Relu", ["x"], ["r"]), N("Hardmax", ["r"], ["y"], name="the_hardmax")],
        {"x": (2, 3)},
        ["y"],
    )
    with pytest.raises(ProvenmlError, match=r"unsupported op 'Hardmax' at node 'the_hardmax'"):
        pc.compile_onnx(data)


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(ProvenmlError, match="cannot read the ONNX model"):
        pc.compile_onnx(b"not an onnx file")
    with pytest.raises(ProvenmlError, match="expects a path"):
        pc.compile_onnx(42)
    data = _model([N("Relu", ["x"], ["y"])], {"x": (2, 3)}, ["y"])
    with pytest.raises(ProvenmlError, match=r"takes 1 inputs \['x'\], got 2"):
        pc.compile_onnx(data, (w(2, 3), w(2, 3)))
    with pytest.raises(ProvenmlError, match="threads= must be"):
        pc.compile_onnx(data, threads=0)


@pytest.mark.filterwarnings("ignore:Implicit dimension choice")
@pytest.mark.parametrize("name", sorted(set(USER_MODELS) - {"resizes"}))  # no ONNX for some modes
def test_exported_activations_and_maths_match_ort(name: str, cache: str) -> None:
    """Stop 54's ops as ``torch.onnx.export`` writes them: HardSwish, HardSigmoid (alpha 1/6),
    Clip [0, 6] for ReLU6, Softplus; Abs, Log, Sqrt, Pow, Reciprocal and 1-D MatMuls;
    LogSoftmax; GroupNorm and InstanceNorm2d as InstanceNormalization; ReduceMax, ReduceMin;
    Clip to any bounds (a run-time one too), Max, Min, LeakyRelu, Elu; Pad and nearest
    Resize (by scales and by sizes)."""
    model, x = user_model(name)
    data = _export(model, x)
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    wanted = {
        "mobilenet_v3_head": {"HardSwish", "HardSigmoid", "Clip", "Softplus"},
        "maths": {"Abs"},
        "classifier": {"LogSoftmax"},
        "norms": {"InstanceNormalization"},
        "reductions": {"ReduceMax", "ReduceMin"},
        "clamps": {"Clip", "Max", "Min", "LeakyRelu", "Elu"},
        "pad_upsample": {"Pad", "Resize"},
        "unet_decoder": {"ConvTranspose", "Resize"},
        "conv_variants": {"Conv", "ConvTranspose"},
        "indices": {"ArgMax", "ArgMin", "Cast"},
        "masked_ops": {"Where", "Greater", "Not", "And", "Or", "Cast"},
        "mode_pads": {"Pad"},
    }[name]
    assert wanted <= ops, ops
    _matches_ort_and_eager(data, model, x, cache)


def test_exported_token_mask_model_matches_ort_and_eager(cache: str) -> None:
    """Comparisons on int64 token ids (Equal, Not, Greater, GreaterOrEqual on the exported
    graph's integer input) into padding masks, against ONNX Runtime and eager."""
    model, ids = TokenMask().eval(), token_ids()
    data = _export(model, ids)
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert {"Equal", "Cast"} <= ops and ops & {"Greater", "GreaterOrEqual", "Less"}, ops
    _matches_ort_and_eager(data, model, ids, cache)


def test_hand_built_vector_matmuls_clip_and_global_max_pool(cache: str) -> None:
    v = w(4)
    nodes = [
        N("MatMul", ["v", "x"], ["row"]),  # [4] @ [3, 4, 5] -> [3, 5]
        N("MatMul", ["x", "u"], ["col"]),  # [3, 4, 5] @ [5] -> [3, 4]
        N("Clip", ["col", "zero", "six"], ["clipped"]),
        N("Clip", ["row", "zero", ""], ["relu"]),
        N("GlobalMaxPool", ["x4"], ["pooled"]),
    ]
    inits = {
        "v": v,
        "u": w(5),
        "zero": np.array(0.0, np.float32),
        "six": np.array(6.0, np.float32),
    }
    data = _model(nodes, {"x": (3, 4, 5), "x4": (2, 3, 4, 5)}, ["clipped", "relu", "pooled"], inits)
    x, x4 = w(3, 4, 5) * 4, w(2, 3, 4, 5)
    inputs = (torch.from_numpy(x), torch.from_numpy(x4))
    compiled = pc.compile_onnx(data, inputs, tuning=False, cache_dir=cache)
    ours = compiled(*inputs)
    for got, want in zip(ours, _ort(data, {"x": x, "x4": x4}), strict=True):
        np.testing.assert_allclose(got.numpy(), want, **TOL)


@pytest.mark.parametrize(
    ("node", "inits", "why"),
    [
        (N("LeakyRelu", ["x"], ["y"], alpha=2.0), {}, "alpha 2.0"),
        (
            N(
                "Resize",
                ["x", "", "s"],
                ["y"],
                mode="cubic",
                coordinate_transformation_mode="tf_crop_and_resize",
            ),
            {"s": np.array([1.0, 2.0], np.float32)},
            "tf_crop_and_resize",
        ),
        (
            N("Resize", ["x", "", "s"], ["y"], mode="linear", antialias=1),
            {"s": np.array([1.0, 0.5], np.float32)},
            "antialias",
        ),
        (N("ConvTranspose", ["x", "W"], ["y"], group=3), {"W": np.ones((4, 1, 3))}, "group=3"),
        (
            N("GRU", ["x", "W", "R"], ["y"], hidden_size=2),  # linear_before_reset=0
            {"W": np.ones((1, 6, 4)), "R": np.ones((1, 6, 2))},
            "linear_before_reset=0",
        ),
        (N("HardSigmoid", ["x"], ["y"]), {}, "alpha=0.2"),
        (N("MatMul", ["x", "x"], ["y"]), {}, "1-D @ 1-D"),
        (N("ArgMax", ["x"], ["y"], select_last_index=1), {}, "select_last_index=1"),
    ],
)
def test_what_the_new_onnx_ops_refuse_is_named(
    node: onnx.NodeProto, inits: dict[str, float], why: str
) -> None:
    arrays = {k: np.array(v, np.float32) for k, v in inits.items()}
    shape = {"MatMul": (4,), "ConvTranspose": (1, 4, 4), "GRU": (3, 1, 4)}.get(node.op_type, (2, 4))
    data = _model([node], {"x": shape}, ["y"], arrays)
    with pytest.raises(ProvenmlError, match=why):
        pc.compile_onnx(data, tuning=False)


def test_exported_padded_attention_matches_ort(cache: str) -> None:
    """Masks computed at run time from the input (Greater, Not, Where on -inf scores, SDPA's
    boolean attn_mask) as ``torch.onnx.export`` writes them."""
    torch.manual_seed(0)
    model, x = PaddedAttention().eval(), padded_sequences()
    data = _export(model, x)
    _matches_ort_and_eager(data, model, x, cache)


@pytest.mark.parametrize("kind", ["mha", "layer", "computed", "mha_and_mask"])
def test_exported_key_padding_masks_match_ort(kind: str, cache: str) -> None:
    """A boolean graph input (the key padding mask) and the Expand, Where and Cast the exporter
    writes around it; another mask at run time."""
    torch.manual_seed(0)
    model = Padded(kind, PADDED[kind]()).eval()
    x, pad = torch.randn(2, 10, 32), padding_mask({1: 7})
    data = exported_onnx(model, {"x": x, "pad": pad})
    compiled = pc.compile_onnx(data, (x, pad), tuning=False, threads=1, cache_dir=cache)
    for mask in (pad, padding_mask({0: 3, 1: 9})):
        y = compiled(x, mask).numpy()
        np.testing.assert_allclose(y, _ort(data, {"x": x.numpy(), "pad": mask.numpy()})[0], **TOL)
        with torch.no_grad():
            np.testing.assert_allclose(y, model(x, mask).numpy(), **TOL)


@pytest.mark.parametrize("mode", ["reflect", "edge", "wrap"])
def test_hand_built_mode_pads_match_ort(mode: str, cache: str) -> None:
    pads = np.array([0, 2, 1, 0, 0, 1, 3, 2], np.int64)  # begins then ends, per dim
    data = _model([N("Pad", ["x", "p"], ["y"], mode=mode)], {"x": (2, 4, 5, 6)}, ["y"],
                  {"p": pads}, opset=19)  # fmt: skip
    x = w(2, 4, 5, 6)
    compiled = pc.compile_onnx(data, (torch.from_numpy(x),), tuning=False, cache_dir=cache)
    np.testing.assert_allclose(compiled(torch.from_numpy(x)).numpy(), _ort(data, {"x": x})[0])


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_exported_recurrent_models_match_ort(
    kind: str, config: str, with_state: bool, cache: str
) -> None:
    """ONNX LSTM / GRU as torch.onnx.export writes nn.LSTM / nn.GRU (gates in ONNX's order,
    one node per layer, both directions in one node)."""
    torch.manual_seed(0)
    model = Tagger(kind, with_state, **CONFIGS[config]).eval()
    inputs = recurrent_inputs(model)
    names = ["x", "h0", "c0"]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, inputs, buf, dynamo=False, input_names=names)
    data = buf.getvalue()
    used = [i.name for i in onnx.load_from_string(data).graph.input]
    feeds = {n: t.numpy() for n, t in zip(names, inputs, strict=True) if n in used}
    args = [t for n, t in zip(names, inputs, strict=True) if n in used]
    compiled = pc.compile_onnx(data, args, tuning=False, threads=1, cache_dir=cache)
    y = compiled(*args).numpy()
    np.testing.assert_allclose(y, _ort(data, feeds)[0], **TOL)
    with torch.no_grad():
        np.testing.assert_allclose(y, model(*inputs).numpy(), **TOL)


def test_hand_built_expand_matches_ort(cache: str) -> None:
    nodes = [N("Expand", ["x", "s"], ["y"])]
    data = _model(nodes, {"x": (3, 1, 4)}, ["y"], {"s": np.array([2, 3, 5, 1], np.int64)})
    x = w(3, 1, 4)
    compiled = pc.compile_onnx(data, (torch.from_numpy(x),), tuning=False, cache_dir=cache)
    np.testing.assert_allclose(compiled(torch.from_numpy(x)).numpy(), _ort(data, {"x": x})[0])


def test_a_boolean_onnx_output_or_arithmetic_is_refused() -> None:
    data = _model([N("Greater", ["x", "z"], ["y"])], {"x": (2, 4)}, ["y"], {"z": w(4)})
    with pytest.raises(ProvenmlError, match="boolean output"):
        pc.compile_onnx(data, tuning=False)
    nodes = [N("Greater", ["x", "z"], ["g"]), N("ReduceSum", ["g"], ["y"])]
    data = _model(nodes, {"x": (2, 4)}, ["y"], {"z": w(4)})
    with pytest.raises(ProvenmlError, match="boolean tensor operand"):
        pc.compile_onnx(data, tuning=False)


def _hand_built_matches_ort(data: bytes, x: np.ndarray, cache: str) -> None:
    """A one-input hand-built graph compiled on ``x`` gives ONNX Runtime's output and shape."""
    compiled = pc.compile_onnx(data, (torch.from_numpy(x),), tuning=False, cache_dir=cache)
    want = _ort(data, {"x": x})[0]
    got = compiled(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize(
    "coords", ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]
)
@pytest.mark.parametrize("by", ["scales", "sizes"])
def test_hand_built_linear_resize_matches_ort(coords: str, by: str, cache: str) -> None:
    # up in one dim, down in the other (a fractional scale), and a length-1 output
    resize = {
        "scales": ("", "s", np.array([1.0, 1.0, 1.75, 0.6], np.float32)),
        "sizes": ("", "", None),
    }[by]
    inputs = ["x", "", resize[1]] if by == "scales" else ["x", "", "", "n"]
    inits = {"s": resize[2]} if by == "scales" else {"n": np.array([2, 3, 9, 1], np.int64)}
    node = N("Resize", inputs, ["y"], mode="linear", coordinate_transformation_mode=coords)
    data = _model([node], {"x": (2, 3, 5, 4)}, ["y"], inits, opset=13)
    x = w(2, 3, 5, 4)
    _hand_built_matches_ort(data, x, cache)


@pytest.mark.parametrize(
    ("coords", "cubic"),
    [
        ("half_pixel", {}),
        ("pytorch_half_pixel", {}),
        ("align_corners", {}),
        ("asymmetric", {"cubic_coeff_a": -0.5}),
        ("half_pixel", {"exclude_outside": 1}),
    ],
)
@pytest.mark.parametrize("by", ["scales", "sizes"])
def test_hand_built_cubic_resize_matches_ort(
    coords: str, cubic: dict[str, float], by: str, cache: str
) -> None:
    # up in one dim, down in the other, edge taps clamped (or excluded)
    if by == "scales":
        inputs, inits = ["x", "", "s"], {"s": np.array([1.0, 1.0, 1.75, 0.6], np.float32)}
    else:
        inputs, inits = ["x", "", "", "n"], {"n": np.array([2, 3, 9, 3], np.int64)}
    node = N("Resize", inputs, ["y"], mode="cubic", coordinate_transformation_mode=coords, **cubic)
    data = _model([node], {"x": (2, 3, 5, 6)}, ["y"], inits, opset=13)
    _hand_built_matches_ort(data, w(2, 3, 5, 6), cache)


def test_exported_bicubic_matches_ort_and_eager(cache: str) -> None:
    model = _Bicubic().eval()
    x = torch.randn(2, 3, 6, 8)
    _matches_ort_and_eager(_export(model, x), model, x, cache)


class _Bicubic(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = torch.nn.functional.interpolate(x, size=(9, 13), mode="bicubic")
        corners = torch.nn.functional.interpolate(
            x, scale_factor=1.5, mode="bicubic", align_corners=True
        )
        return up.mean(dim=(2, 3)) + corners.amax(dim=(2, 3))


@pytest.mark.parametrize(
    "attrs",
    [
        {"strides": [2, 2]},
        {"strides": [2, 3], "pads": [1, 0, 2, 1], "output_padding": [1, 2]},
        {"strides": [3, 2], "output_shape": [11, 10]},
        {"pads": [2, 2, 2, 2]},  # pads past kernel - 1: the convolution crops
        {"strides": [2, 2], "group": 3},  # depthwise
    ],
)
def test_hand_built_conv_transpose_matches_ort(attrs: dict[str, list[int]], cache: str) -> None:
    node = N("ConvTranspose", ["x", "W", "B"], ["y"], **attrs)
    out = 3 if attrs.get("group") == 3 else 4
    inits = {"W": w(3, out // 3 if out == 3 else out, 3, 2), "B": w(out)}
    data = _model([node], {"x": (2, 3, 4, 5)}, ["y"], inits)
    x = w(2, 3, 4, 5)
    _hand_built_matches_ort(data, x, cache)


@pytest.mark.parametrize(
    ("attrs", "weight"),
    [
        ({"auto_pad": "SAME_UPPER", "strides": [2, 2]}, (4, 3, 3, 2)),
        ({"auto_pad": "SAME_LOWER", "strides": [1, 2]}, (4, 3, 2, 3)),
        ({"auto_pad": "VALID", "strides": [2, 1]}, (4, 3, 3, 3)),
        ({"pads": [0, 1, 2, 1]}, (4, 3, 3, 3)),  # asymmetric: padded first
        ({"dilations": [2, 3], "pads": [2, 3, 2, 3]}, (4, 3, 3, 3)),
        ({"dilations": [2, 2], "strides": [2, 1], "group": 3}, (6, 1, 2, 3)),  # multiplier 2
        ({"group": 3, "strides": [2, 2], "pads": [1, 1, 1, 1]}, (6, 1, 3, 3)),
    ],
)
def test_hand_built_conv_pads_groups_and_dilations_match_ort(
    attrs: dict[str, object], weight: tuple[int, ...], cache: str
) -> None:
    node = N("Conv", ["x", "W", "B"], ["y"], **attrs)
    data = _model([node], {"x": (2, 3, 7, 9)}, ["y"], {"W": w(*weight), "B": w(weight[0])})
    _hand_built_matches_ort(data, w(2, 3, 7, 9), cache)


def test_hand_built_grouped_conv_and_tile_match_ort(cache: str) -> None:
    nodes = [
        N("Conv", ["x", "W"], ["c"], group=2, pads=[1, 1]),  # 1-d, 2 groups of 3 -> 2 x 2
        N("ConvTranspose", ["c", "V"], ["u"], group=2, strides=[2], dilations=[2]),
        N("Tile", ["u", "reps"], ["y"]),
    ]
    inits = {"W": w(4, 3, 3), "V": w(4, 3, 2), "reps": np.array([1, 2, 3], np.int64)}
    data = _model(nodes, {"x": (2, 6, 5)}, ["y"], inits)
    _hand_built_matches_ort(data, w(2, 6, 5), cache)


@pytest.mark.parametrize(("equation", "second", "shape"), EINSUM_CASES)
def test_exported_einsum_matches_ort(
    equation: str, second: str, shape: tuple[int, ...], cache: str
) -> None:
    torch.manual_seed(0)
    model, x = Einsum(equation, second).eval(), torch.randn(shape)
    data = _export(model, x)
    assert "Einsum" in {n.op_type for n in onnx.load_from_string(data).graph.node}
    _matches_ort_and_eager(data, model, x, cache)


def test_hand_built_gathers_match_ort(cache: str) -> None:
    """Gather of a run-time tensor by constant indices on an inner axis (negative ones too),
    by run-time row ids on axis 0 of a 3-d tensor, and of a boolean mask (a Cast of int64
    ids to bool, gathered, into a Where); GatherElements of constants along an axis longer
    than 32 (folded with NumPy: ONNX's reference evaluator fails there)."""
    long_axis = np.arange(60, dtype=np.float32).reshape(1, 60)
    nodes = [
        N("Gather", ["x", "cols"], ["picked"], axis=2),  # (2, 3, 2, 5)
        N("Gather", ["x", "ids"], ["rows"], axis=0),  # (2, 2, 3, 5)
        N("Cast", ["ids_mask"], ["mask"], to=TensorProto.BOOL),  # (2, 4)
        N("Gather", ["mask", "order"], ["reordered"], axis=1),  # (2, 4)
        N("Where", ["reordered", "one", "zero"], ["flags"]),
        N("GatherElements", ["table", "pos"], ["folded"], axis=1),  # (1, 4) of constants
        N("Gather", ["ids_mask", "order"], ["ids_reordered"], axis=1),  # int64 gathered
        N("Cast", ["ids_reordered"], ["ids_float"], to=TensorProto.FLOAT),
        N("ReduceSum", ["ids_float"], ["e"], keepdims=0),
        N("ReduceSum", ["picked"], ["a"], keepdims=0),
        N("ReduceSum", ["rows"], ["b2"], keepdims=0),
        N("ReduceSum", ["flags"], ["c"], keepdims=0),
        N("ReduceSum", ["folded"], ["d"], keepdims=0),
        N("Sum", ["a", "b2", "c", "d", "e"], ["y"]),
    ]
    inits = {
        "cols": np.array([[4, -1], [0, 2], [1, 1]], np.int64),
        "order": np.array([3, 0, 2, 1], np.int64),
        "one": np.array(1.0, np.float32),
        "zero": np.array(0.0, np.float32),
        "table": long_axis,
        "pos": np.array([[59, 33, 0, -2]], np.int64),
    }
    data = _model(
        nodes,
        {"x": (2, 3, 5), "ids": (2, 2), "ids_mask": (2, 4)},
        ["y"],
        inits,
        int_inputs=("ids", "ids_mask"),
    )
    feeds = {
        "x": w(2, 3, 5),
        "ids": np.array([[1, 0], [-1, 1]], np.int64),
        "ids_mask": np.array([[5, 0, 7, 0], [0, 0, 3, 9]], np.int64),
    }
    compiled = pc.compile_onnx(
        data, tuple(feeds.values()), tuning=False, threads=1, cache_dir=cache
    )
    np.testing.assert_allclose(compiled(*feeds.values()).numpy(), _ort(data, feeds)[0], **TOL)


def _ids_and_mask_model_matches_ort_and_eager(
    model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, cache: str
) -> None:
    """``model(ids, mask)`` exported with ``torch.onnx.export`` and compiled through
    ``compile_onnx`` gives ONNX Runtime's and eager's outputs."""
    data = exported_onnx(model, {"ids": ids, "mask": mask})
    compiled = pc.compile_onnx(data, (ids, mask), tuning=False, threads=1, cache_dir=cache)
    got = compiled(ids, mask).numpy()
    want = _ort(data, {"ids": ids.numpy(), "mask": mask.numpy()})[0]
    np.testing.assert_allclose(got, want, **TOL)
    with torch.no_grad():
        np.testing.assert_allclose(got, model(ids, mask).numpy(), **TOL)


def test_exported_sentence_encoder_matches_ort_and_eager(
    cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """all-MiniLM-L6-v2 (the wheel's BERT) exported with ``torch.onnx.export``: its token-type
    GatherElements, the int64 mask Cast to bool and gathered into the attention mask, through
    ``compile_onnx``, against ONNX Runtime and eager."""
    model, ids, mask, _ = minilm_pooled(monkeypatch)
    _ids_and_mask_model_matches_ort_and_eager(model, ids, mask, cache)


@pytest.mark.parametrize("name", ["roberta", "llama", "gpt2"])
def test_exported_transformers_models_match_ort_and_eager(name: str, cache: str) -> None:
    """transformers' RoBERTa (position ids by Cast, CumSum and integer Mul / Add; its
    token-type buffer by GatherElements at those ids), Llama and GPT-2, exported with
    ``torch.onnx.export``, against ONNX Runtime and eager."""
    from tests.compiler.test_user_models import _ids_and_mask, _transformers_model

    ids, mask = _ids_and_mask()
    _ids_and_mask_model_matches_ort_and_eager(_transformers_model(name), ids, mask, cache)


def test_hand_built_integer_maths_match_ort(cache: str) -> None:
    """Cast of a mask to int32 and of floats to int64 (truncation toward zero), CumSum of
    integers and of floats, integer Mul / Add / Sub, and GatherElements by run-time indices,
    negative ones included, against ONNX Runtime."""
    nodes = [
        N("Equal", ["ids", "zero"], ["pad"]),
        N("Not", ["pad"], ["keep"]),
        N("Cast", ["keep"], ["keep32"], to=TensorProto.INT32),
        N("Cast", ["keep32"], ["keep64"], to=TensorProto.INT64),
        N("CumSum", ["keep64", "axis"], ["count"]),
        N("Mul", ["count", "keep64"], ["positions"]),
        N("Sub", ["positions", "one"], ["index"]),  # -1 at padding: wrapped to the last
        N("GatherElements", ["table", "index"], ["picked"], axis=1),
        N("Cast", ["x"], ["truncated"], to=TensorProto.INT64),
        N("Add", ["picked", "truncated"], ["sum"]),
        N("Cast", ["sum"], ["y_int"], to=TensorProto.FLOAT),
        N("CumSum", ["x", "axis"], ["y_float"]),
        N("Add", ["y_int", "y_float"], ["y"]),
    ]
    inits = {
        "zero": np.array(0, np.int64),
        "one": np.array(1, np.int64),
        "axis": np.array(1, np.int64),
        "table": np.arange(10, 22, dtype=np.int64).reshape(2, 6) * (2**35),
    }
    data = _model(nodes, {"ids": (2, 6), "x": (2, 6)}, ["y"], inits, int_inputs=("ids",))
    feeds = {
        "ids": np.array([[4, 8, 0, 0, 0, 0], [1, 2, 3, 4, 5, 0]], np.int64),
        "x": np.array([[-1.5, -0.5, 0.5, 1.5, 2.9, -2.9]] * 2, np.float32),
    }
    compiled = pc.compile_onnx(
        data, tuple(feeds.values()), tuning=False, threads=1, cache_dir=cache
    )
    np.testing.assert_allclose(compiled(*feeds.values()).numpy(), _ort(data, feeds)[0], **TOL)


def test_average_pool_without_padding_counted_matches_ort_and_eager(cache: str) -> None:
    """AveragePool's ``count_include_pad=0`` (ONNX's default; PyTorch's ``False``) divides each
    border window by its elements inside the input: refused until stop 58."""
    model = torch.nn.Sequential(
        torch.nn.AvgPool2d(3, 1, 1, count_include_pad=False),
        torch.nn.AvgPool2d((3, 2), (2, 1), (1, 1), count_include_pad=False),
    ).eval()
    x = torch.randn(2, 3, 7, 6, generator=torch.Generator().manual_seed(0))
    _matches_ort_and_eager(exported_onnx(model, {"x": x}), model, x, cache)


def test_ceil_mode_pools_match_ort_and_eager(cache: str) -> None:
    """Stop 73: MaxPool / AveragePool with ``ceil_mode=1`` (a SqueezeNet's or GoogLeNet's
    pools), a partial last window among them, both ``count_include_pad`` rules; refused before,
    even where the windows fit evenly."""
    model = torch.nn.Sequential(
        torch.nn.MaxPool2d(3, 2, ceil_mode=True),
        torch.nn.AvgPool2d(2, 2, ceil_mode=True),
        torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True),
        torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
    ).eval()
    x = torch.randn(2, 3, 31, 26, generator=torch.Generator().manual_seed(0))
    _matches_ort_and_eager(exported_onnx(model, {"x": x}), model, x, cache)


def test_integer_rows_and_argmax_of_integers_match_ort_and_eager(cache: str) -> None:
    """ArgMax / ArgMin of int64 values (compared as integers, beyond 2^24) and Gather of one
    row of an int64 tensor, against ONNX Runtime and eager (stop 58)."""

    class IntegerModel(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x.argmax(-1), x.argmin(-1), x[1][:3]])

    x = torch.randint(-(2**40), 2**40, (3, 9), generator=torch.Generator().manual_seed(0))
    model = IntegerModel().eval()
    _matches_ort_and_eager(exported_onnx(model, {"x": x}), model, x, cache)
