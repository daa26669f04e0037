"""3-d convolutions, pooling and batch norm (``frontend/torch_volumes.py``,
``frontend/onnx_volumes.py``): Conv3d as a depth im2col and one conv2d, the 3-d pools as two
2-d ones, adaptive 3-d pooling and BatchNorm3d, against eager (max abs error 1e-4, float32) and
against ONNX Runtime for the rank-5 ONNX ops; NaN through max pooling; refusals by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.compiler._user_models import exported_onnx
from torch import nn

import provenml.compiler as pc
from provenml.compiler.frontend.common import UnsupportedOp

SHAPE = (2, 4, 5, 6, 7)  # (N, C, D, H, W): every extent different, so a swapped axis shows
SYMBOLIC = ["n", "c", "d", "h", "w"]  # a hand-built ONNX graph's rank-5 outputs
# eager PyTorch warns that 'same' with an even kernel pads a copy of the input (as here)
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")


class Apply(nn.Module):
    def __init__(self, op: Callable[[torch.Tensor], torch.Tensor] | nn.Module) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


def _volume(seed: int = 0, shape: tuple[int, ...] = SHAPE) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _matches(model: nn.Module, x: torch.Tensor, cache: str) -> None:
    """The compiled model against eager: the shape, NaN where eager has NaN, and at most 1e-4
    apart elsewhere."""
    model = model.eval()
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    with torch.no_grad():
        want = model(x)
    torch.testing.assert_close(compiled(x), want, rtol=0.0, atol=1e-4, equal_nan=True)


def _conv(*args: Any, seed: int = 1, **kwargs: Any) -> nn.Conv3d:
    torch.manual_seed(seed)
    return nn.Conv3d(*args, **kwargs)


CONVOLUTIONS: dict[str, nn.Module | Callable[[torch.Tensor], torch.Tensor]] = {
    "k3": _conv(4, 6, 3),
    "k1": _conv(4, 3, 1),
    "k(3,2,1) s(2,1,2) p(1,0,1)": _conv(4, 5, (3, 2, 1), stride=(2, 1, 2), padding=(1, 0, 1)),
    "k3 p2 dilation 2": _conv(4, 3, 3, padding=2, dilation=2),
    "k(2,3,3) s(1,2,1) p(1,1,0) d(2,1,2)": _conv(
        4, 3, (2, 3, 3), stride=(1, 2, 1), padding=(1, 1, 0), dilation=(2, 1, 2)
    ),
    "depth stride 3 p2": _conv(4, 2, (3, 1, 1), stride=(3, 1, 1), padding=(2, 0, 0)),
    "whole depth (Do 1)": _conv(4, 3, (5, 3, 3)),
    "one output channel": _conv(4, 1, 3, padding=1),
    "groups 2": _conv(4, 6, 3, padding=1, groups=2),
    "groups 2 strided dilated": _conv(4, 2, 2, stride=2, dilation=(2, 1, 1), groups=2),
    "depthwise k(3,1,1)": _conv(4, 4, (3, 1, 1), padding=(1, 0, 0), groups=4),
    "depthwise multiplier k(1,3,3)": _conv(4, 8, (1, 3, 3), padding=(0, 1, 1), groups=4),
    "depthwise k3 p1 (multiplier 2)": _conv(4, 8, 3, padding=1, groups=4),
    "no bias": _conv(4, 3, (3, 2, 2), padding=1, bias=False),
    "same": _conv(4, 3, 3, padding="same"),
    "same, even kernels (the odd pad at the end)": _conv(4, 3, (2, 4, 2), padding="same"),
    "same dilated": _conv(4, 3, (2, 3, 2), padding="same", dilation=(3, 1, 2)),
    "valid": _conv(4, 3, 2, padding="valid"),
    "reflect": _conv(4, 3, 3, padding=1, padding_mode="reflect"),
    "replicate": _conv(4, 3, (3, 1, 3), padding=(2, 0, 1), padding_mode="replicate"),
    "circular": _conv(4, 3, 3, padding=(1, 2, 1), padding_mode="circular"),
    "F.conv3d": lambda x: F.conv3d(x, WEIGHT, BIAS, 1, 1),
    "F.conv3d keywords": lambda x: F.conv3d(
        x, WEIGHT[:, :2], stride=(2, 1, 1), padding=(0, 1, 2), dilation=(1, 2, 1), groups=2
    ),
    "F.conv3d same": lambda x: F.conv3d(x, WEIGHT, padding="same", dilation=2),
}
WEIGHT = torch.randn(6, 4, 3, 2, 3, generator=torch.Generator().manual_seed(2))
BIAS = torch.randn(6, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("name", list(CONVOLUTIONS))
def test_conv3d_matches_eager(name: str, cache: str) -> None:
    _matches(Apply(CONVOLUTIONS[name]), _volume(), cache)


def test_conv3d_on_an_unbatched_input_matches_eager(cache: str) -> None:
    _matches(Apply(_conv(4, 3, 3, stride=(2, 1, 1), padding=1)), _volume()[0], cache)


def test_conv3d_with_a_run_time_weight_matches_eager(cache: str) -> None:
    """The weight an input of the compiled model, not a constant (its reshape runs)."""

    class Standardised(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(WEIGHT.clone())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            w = self.weight
            return F.conv3d(x, (w - w.mean()) / w.std(), padding=(1, 0, 1))

    _matches(Standardised(), _volume(), cache)


POOLS: dict[str, nn.Module | Callable[[torch.Tensor], torch.Tensor]] = {
    "MaxPool3d 2": nn.MaxPool3d(2),
    "MaxPool3d k3 s2 p1": nn.MaxPool3d(3, 2, 1),
    "MaxPool3d k(1,3,3) s(1,2,2) p(0,1,1)": nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
    "MaxPool3d depth only k(3,1,1) p(1,0,0)": nn.MaxPool3d((3, 1, 1), 1, (1, 0, 0)),
    "MaxPool3d ceil_mode, windows fit": nn.MaxPool3d((5, 3, 7), ceil_mode=True),
    "max_pool3d": lambda x: F.max_pool3d(x, (2, 3, 2), (1, 2, 3), (1, 1, 0)),
    "max_pool3d positional": lambda x: F.max_pool3d(x, 3, 1, 1, 1, False, False),
    "AvgPool3d 2": nn.AvgPool3d(2),
    "AvgPool3d k3 s2 p1": nn.AvgPool3d(3, 2, 1),
    "AvgPool3d k3 s2 p1 no pad counted": nn.AvgPool3d(3, 2, 1, count_include_pad=False),
    "AvgPool3d k(2,3,3) p(1,1,1) no pad counted": nn.AvgPool3d(
        (2, 3, 3), 1, (1, 1, 1), count_include_pad=False
    ),
    "AvgPool3d divisor_override": nn.AvgPool3d(3, 2, 1, divisor_override=5),
    "AvgPool3d divisor_override, no pad counted": nn.AvgPool3d(
        2, 1, 1, count_include_pad=False, divisor_override=3
    ),
    "AvgPool3d ceil_mode, windows fit": nn.AvgPool3d((5, 3, 7), ceil_mode=True),
    "avg_pool3d": lambda x: F.avg_pool3d(x, (3, 2, 3), (2, 2, 1), (1, 0, 1)),
    "avg_pool3d keywords": lambda x: F.avg_pool3d(
        x, kernel_size=2, stride=1, padding=1, count_include_pad=False
    ),
    "avg_pool3d positional divisor": lambda x: F.avg_pool3d(x, 2, 2, 1, False, True, 7),
    "AdaptiveAvgPool3d 1": nn.AdaptiveAvgPool3d(1),
    "AdaptiveAvgPool3d (5,3,1)": nn.AdaptiveAvgPool3d((5, 3, 1)),
    "AdaptiveAvgPool3d (1,2,7)": nn.AdaptiveAvgPool3d((1, 2, 7)),
    "AdaptiveAvgPool3d (None,3,None)": nn.AdaptiveAvgPool3d((None, 3, None)),
    "AdaptiveMaxPool3d 1": nn.AdaptiveMaxPool3d(1),
    "AdaptiveMaxPool3d (1,6,1)": nn.AdaptiveMaxPool3d((1, 6, 1)),
    "adaptive_avg_pool3d (5,2,7)": lambda x: F.adaptive_avg_pool3d(x, (5, 2, 7)),
    "adaptive_max_pool3d 1": lambda x: F.adaptive_max_pool3d(x, 1),
    "adaptive_max_pool3d (1,3,7)": lambda x: F.adaptive_max_pool3d(x, (1, 3, 7)),
    "BatchNorm3d": nn.BatchNorm3d(4),
    "batch_norm": lambda x: F.batch_norm(x, torch.arange(4.0), torch.arange(1.0, 5.0)),
}


def _trained_norms(model: nn.Module) -> nn.Module:
    """Batch norms with non-trivial statistics and affine parameters (else they are the
    identity and a wrong channel axis would not show)."""
    generator = torch.Generator().manual_seed(4)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(c, generator=generator))
                m.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
                m.weight.copy_(torch.randn(c, generator=generator))
                m.bias.copy_(torch.randn(c, generator=generator))
    return model


@pytest.mark.parametrize("name", list(POOLS))
def test_pooling_and_batch_norm_match_eager(name: str, cache: str) -> None:
    _matches(_trained_norms(Apply(POOLS[name])), _volume(), cache)


@pytest.mark.parametrize(
    "op",
    [nn.MaxPool3d(3, 2, 1), nn.AvgPool3d(2, 1, 1, count_include_pad=False),
     nn.AdaptiveAvgPool3d((5, 2, 1))],
    ids=["max", "avg", "adaptive"],
)  # fmt: skip
def test_3d_pooling_of_an_unbatched_input_matches_eager(op: nn.Module, cache: str) -> None:
    _matches(Apply(op), _volume()[0], cache)


def test_nan_propagates_through_max_pooling_as_in_eager(cache: str) -> None:
    """A NaN in a window makes that window's max NaN (eager's rule), through both passes of
    the separable pool, at the border (padding) and inside; -inf / +inf as values."""
    x = _volume()
    x[0, 0, 0, 0, 0] = float("nan")  # a corner: read by padded windows only
    x[1, 2, 3, 4, 5] = float("nan")
    x[0, 1, 2, 3, 3] = float("inf")
    x[1, 3, :, :, :] = float("-inf")  # a whole channel of -inf: max is -inf, not NaN
    for op in (nn.MaxPool3d(3, 2, 1), nn.MaxPool3d((2, 1, 3), 1), nn.AdaptiveMaxPool3d(1)):
        model = Apply(op).eval()
        compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
        got, want = compiled(x), model(x)
        assert torch.isnan(want).any()
        torch.testing.assert_close(got, want, rtol=0.0, atol=0.0, equal_nan=True)


class Small3dCnn(nn.Module):
    """A little C3D-style video classifier: two Conv3d + BatchNorm3d + ReLU blocks with a
    max pool between them, a global average pool and a linear head."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(3, 8, 3, padding=1),
            nn.BatchNorm3d(8),
            nn.ReLU(),
            nn.MaxPool3d((1, 2, 2)),
            nn.Conv3d(8, 16, (3, 3, 3), stride=(2, 1, 1), padding=1, groups=2),
            nn.BatchNorm3d(16),
            nn.ReLU(),
            nn.MaxPool3d(2, ceil_mode=False),
            nn.AdaptiveAvgPool3d(1),
        )
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


def test_a_small_3d_cnn_matches_eager(cache: str) -> None:
    torch.manual_seed(0)
    model = _trained_norms(Small3dCnn())
    _matches(model, _volume(5, (2, 3, 6, 12, 10)), cache)


@pytest.mark.parametrize(
    "op",
    [
        nn.AvgPool3d(2, ceil_mode=True),
        lambda x: F.max_pool3d(x, (2, 1, 1), ceil_mode=True),
        nn.AvgPool3d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        nn.MaxPool3d(3, 2, 1, ceil_mode=True),
    ],
)
def test_a_partial_last_window_matches_eager(
    op: Callable[[torch.Tensor], torch.Tensor] | nn.Module, cache: str
) -> None:
    """Stop 73: ``ceil_mode=True`` with a partial last window (refused before), each axis's
    pass extending the input past its end (the 2-d pool's rule)."""
    model = Apply(op)
    model.training = False
    _matches(model, _volume(), cache)


@pytest.mark.parametrize(
    ("op", "named", "why"),
    [
        (lambda x: F.max_pool3d(x, 2, return_indices=True)[0], "max_pool3d_with_indices",
         "return_indices"),
        (nn.MaxPool3d(2, return_indices=True), "MaxPool3d", "return_indices"),
        (nn.MaxPool3d(2, dilation=2), "MaxPool3d", "dilation"),
        (lambda x: F.max_pool3d(x, 2, dilation=(1, 2, 1)), "max_pool3d", "dilation"),
        (nn.AdaptiveAvgPool3d((2, 3, 7)), "AdaptiveAvgPool3d", "does not divide"),
        (lambda x: F.adaptive_max_pool3d(x, (5, 4, 7)), "adaptive_max_pool3d",
         "does not divide"),
        (nn.AdaptiveMaxPool3d(1, return_indices=True), "AdaptiveMaxPool3d", "return_indices"),
        (lambda x: F.adaptive_max_pool3d(x, 1, return_indices=True)[1].float(),
         "adaptive_max_pool3d_with_indices", "return_indices"),
        (nn.BatchNorm3d(4).train(), "BatchNorm3d", "training-mode"),
    ],
)  # fmt: skip
def test_what_cannot_be_composed_is_refused_by_name(
    op: Callable[[torch.Tensor], torch.Tensor] | nn.Module, named: str, why: str, cache: str
) -> None:
    model = Apply(op)
    model.training = False  # the root in inference; a submodule may still be training
    with pytest.raises(UnsupportedOp, match=why) as refused:
        pc.compile(model, (_volume(),), threads=1, tuning=False, cache_dir=cache)
    assert f"'{named}'" in str(refused.value)


# -- ONNX ------------------------------------------------------------------------------------
class VolumeOps(nn.Module):
    """What PyTorch's exporter writes as rank-5 ONNX ops: BatchNormalization (before any
    convolution, so it is not folded into one), Conv (strided, dilated, grouped), MaxPool
    (adaptive max pooling to 1 among them: a window of the whole volume), AveragePool
    (count_include_pad 0 and 1) and GlobalAveragePool."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.norm = nn.BatchNorm3d(4)
        self.conv = nn.Conv3d(4, 6, (3, 2, 3), stride=(2, 1, 1), padding=(1, 1, 0), groups=2)
        self.dilated = nn.Conv3d(6, 6, 3, padding=2, dilation=(2, 1, 2))
        self.max = nn.MaxPool3d(3, 2, 1)
        self.avg = nn.AvgPool3d(3, 2, 1, count_include_pad=False)
        self.avg_counted = nn.AvgPool3d((2, 3, 3), 1, (1, 1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dilated(torch.relu(self.conv(self.norm(x))))
        pooled = self.max(y) + self.avg(y)
        counted = self.avg_counted(y)
        glob = F.adaptive_avg_pool3d(counted, 1) + F.adaptive_max_pool3d(counted, 1)
        return pooled.flatten(1).sum(1, keepdim=True) + glob.flatten(1)


def test_onnx_rank5_ops_match_onnx_runtime_and_eager(cache: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    x = _volume(6)
    model = _trained_norms(VolumeOps()).eval()
    data = exported_onnx(model, {"x": x})
    import onnx

    exported = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert {"BatchNormalization", "Conv", "MaxPool", "AveragePool", "GlobalAveragePool"} <= exported
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (reference,) = session.run(None, {"x": x.numpy()})
    compiled = pc.compile_onnx(data, (x,), tuning=False, threads=2, cache_dir=cache)
    got = compiled(x)
    torch.testing.assert_close(got, torch.from_numpy(reference), rtol=0.0, atol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(got, model(x), rtol=0.0, atol=1e-4)


def _onnx_conv3d(attrs: dict[str, object], weight: np.ndarray, bias: bool) -> bytes:
    """A hand-built one-node graph: Conv on an (N, C, D, H, W) input."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(weight, "w")]
    inputs = ["x", "w"]
    if bias:
        b = np.random.default_rng(1).standard_normal(weight.shape[0]).astype(np.float32)
        inits.append(numpy_helper.from_array(b, "b"))
        inputs.append("b")
    graph = helper.make_graph(
        [helper.make_node("Conv", inputs, ["y"], **attrs)],
        "conv3d",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, SYMBOLIC)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


@pytest.mark.parametrize(
    ("attrs", "weight_shape", "bias"),
    [
        ({"pads": [2, 0, 1, 0, 1, 2], "strides": [2, 1, 1]}, (3, 4, 3, 2, 3), True),
        ({"auto_pad": "SAME_UPPER", "group": 2}, (6, 2, 2, 3, 4), True),
        ({"pads": [1, 2, 0, 2, 1, 1], "dilations": [2, 2, 1], "group": 2}, (4, 2, 2, 3, 2), True),
        ({"auto_pad": "SAME_LOWER", "strides": [2, 2, 1]}, (2, 4, 2, 2, 3), False),
        ({"auto_pad": "VALID", "group": 4}, (8, 1, 3, 1, 3), True),
    ],
    ids=[
        "asymmetric pads",
        "same upper grouped",
        "asymmetric pads dilated grouped",
        "same lower strided",
        "valid depthwise",
    ],
)
def test_a_hand_built_onnx_rank5_conv_matches_onnx_runtime(
    attrs: dict[str, object], weight_shape: tuple[int, ...], bias: bool, cache: str
) -> None:
    ort = pytest.importorskip("onnxruntime")
    weight = np.random.default_rng(0).standard_normal(weight_shape).astype(np.float32)
    data = _onnx_conv3d(attrs, weight, bias)
    x = _volume(7).numpy()
    (reference,) = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )
    compiled = pc.compile_onnx(data, (x,), tuning=False, threads=2, cache_dir=cache)
    got = np.asarray(compiled(x))
    assert got.shape == reference.shape
    np.testing.assert_allclose(got, reference, rtol=0.0, atol=1e-4)


def test_hand_built_onnx_rank5_pools_match_onnx_runtime(cache: str) -> None:
    """ONNX's own defaults (AveragePool without the padding counted) and GlobalMaxPool (which
    the exporter does not write). (No NaN here: ONNX Runtime's MaxPool skips NaN, where
    PyTorch's, and the compiled pool, propagate it.)"""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("MaxPool", ["x"], ["max"], kernel_shape=[3, 2, 3], strides=[2, 2, 1],
                         pads=[1, 0, 1, 1, 0, 1]),
        helper.make_node("AveragePool", ["x"], ["avg"], kernel_shape=[2, 3, 3],
                         pads=[1, 1, 1, 1, 1, 1]),
        helper.make_node("AveragePool", ["x"], ["counted"], kernel_shape=[3, 3, 2],
                         strides=[1, 2, 2], pads=[1, 1, 0, 1, 1, 0], count_include_pad=1),
        helper.make_node("GlobalMaxPool", ["x"], ["global_max"]),
        helper.make_node("GlobalAveragePool", ["x"], ["global_avg"]),
    ]  # fmt: skip
    names = ["max", "avg", "counted", "global_max", "global_avg"]
    graph = helper.make_graph(
        nodes,
        "pools",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, SYMBOLIC) for name in names],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    x = _volume(8).numpy()
    want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    compiled = pc.compile_onnx(data, (x,), tuning=False, threads=2, cache_dir=cache)
    for name, got, ref in zip(names, compiled(x), want, strict=True):
        np.testing.assert_allclose(np.asarray(got), ref, rtol=0.0, atol=1e-4, err_msg=name)


def test_onnx_rank5_pools_refuse_what_they_cannot_compose(cache: str) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    def pool(**attrs: object) -> bytes:
        graph = helper.make_graph(
            [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2, 2], **attrs)],
            "pool",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, SYMBOLIC)],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.checker.check_model(model)
        return bytes(model.SerializeToString())

    x = _volume().numpy()
    for attrs, why in (
        ({"dilations": [1, 2, 1]}, "dilations"),
        ({"pads": [1, 0, 0, 0, 0, 0]}, "asymmetric pads"),
    ):
        with pytest.raises(UnsupportedOp, match=why) as refused:
            pc.compile_onnx(pool(**attrs), (x,), tuning=False, threads=1, cache_dir=cache)
        assert "'MaxPool'" in str(refused.value)


@pytest.mark.parametrize(
    ("op", "attrs"),
    [
        ("MaxPool", {"strides": [2, 2, 2], "ceil_mode": 1}),
        ("MaxPool", {"kernel_shape": [3, 3, 3], "strides": [2, 2, 2], "pads": [1] * 6,
                     "ceil_mode": 1}),
        ("AveragePool", {"strides": [2, 2, 2], "ceil_mode": 1}),
        ("AveragePool", {"kernel_shape": [3, 3, 3], "strides": [2, 2, 2], "pads": [1] * 6,
                         "ceil_mode": 1}),
        ("AveragePool", {"kernel_shape": [3, 3, 3], "strides": [2, 2, 2], "pads": [1] * 6,
                         "ceil_mode": 1, "count_include_pad": 1}),
    ],
)  # fmt: skip
def test_onnx_rank5_pools_with_a_partial_last_window_match_ort(
    op: str, attrs: dict[str, object], cache: str
) -> None:
    """Stop 73: ``ceil_mode=1`` where a last window runs past the end (refused before)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    attrs = {"kernel_shape": [2, 2, 2], **attrs}
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], **attrs)],
        "pool",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, SYMBOLIC)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    x = _volume(3).numpy()
    (want,) = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = pc.compile_onnx(data, (x,), tuning=False, threads=1, cache_dir=cache)(x)
    assert tuple(got.shape) == want.shape
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
