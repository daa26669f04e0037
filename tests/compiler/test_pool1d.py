"""1-d pooling (stop 67): ``F.max_pool1d`` / ``F.avg_pool1d``, ``nn.MaxPool1d`` /
``nn.AvgPool1d``, adaptive 1-d pooling to sizes that divide the length, and ONNX's 1-d
MaxPool / AveragePool, each as the 2-d pool over a height of 1 (as Conv1d), against eager
and ONNX Runtime; what the 2-d pool refuses is refused under the 1-d op's name."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from tests.compiler._user_models import exported_onnx
from torch import nn

import provenml.compiler as pc
from provenml.compiler.frontend.common import UnsupportedOp

POOLS: dict[str, Callable[[torch.Tensor], torch.Tensor] | nn.Module] = {
    "max k3": lambda x: F.max_pool1d(x, 3),
    "max k3 s2 p1": lambda x: F.max_pool1d(x, 3, 2, 1),
    "max keywords": lambda x: F.max_pool1d(x, kernel_size=4, stride=1),
    "avg k4": lambda x: F.avg_pool1d(x, 4),
    "avg without pads": lambda x: F.avg_pool1d(x, 3, 2, 1, False, False),
    "avg ceil, even": lambda x: F.avg_pool1d(x, 4, 4, 0, True),
    "MaxPool1d": nn.MaxPool1d(2),
    "MaxPool1d padded": nn.MaxPool1d(3, 2, padding=1),
    "AvgPool1d": nn.AvgPool1d(3, 1, 1, count_include_pad=False),
    "adaptive max 1": lambda x: F.adaptive_max_pool1d(x, 1),
    "adaptive max 6": lambda x: F.adaptive_max_pool1d(x, 6),
    "adaptive avg 8": lambda x: F.adaptive_avg_pool1d(x, 8),
    "AdaptiveAvgPool1d 1": nn.AdaptiveAvgPool1d(1),
    "AdaptiveMaxPool1d 4": nn.AdaptiveMaxPool1d(4),
    "unbatched": lambda x: F.max_pool1d(x[0], 3),
}


class Wrap(nn.Module):
    def __init__(self, op: Callable[[torch.Tensor], torch.Tensor] | nn.Module) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class TextCNN(nn.Module):
    """Kim (2014)'s sentence classifier: embeddings, 1-d convolutions of three widths, ReLU,
    max over time, a linear layer."""

    def __init__(self, vocabulary: int = 50, width: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocabulary, width)
        self.convs = nn.ModuleList(nn.Conv1d(width, 8, k, padding=k // 2) for k in (3, 5, 7))
        self.head = nn.Linear(24, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids).transpose(1, 2)
        pooled = [F.max_pool1d(F.relu(conv(x)), x.shape[-1]).squeeze(-1) for conv in self.convs]
        return self.head(torch.cat(pooled, dim=1))


@pytest.mark.parametrize("name", list(POOLS))
def test_one_dimensional_pooling_matches_eager(name: str, cache: str) -> None:
    x = torch.randn(2, 5, 24)
    model = Wrap(POOLS[name]).eval()
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-6)


def test_a_text_cnn_with_max_over_time_matches_eager(cache: str) -> None:
    ids = torch.randint(0, 50, (3, 20))
    model = TextCNN().eval()
    compiled = pc.compile(model, (ids,), threads=2, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(ids), model(ids), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("op", "named", "why"),
    [
        (lambda x: F.adaptive_avg_pool1d(x, 5), "adaptive_avg_pool1d", "does not divide"),
        (nn.MaxPool1d(2, dilation=2), "MaxPool1d", "dilation"),
        (nn.AdaptiveMaxPool1d(4, return_indices=True), "adaptive_max_pool1d", "return_indices"),
    ],
)
def test_what_the_pool_cannot_do_is_refused_by_the_one_dimensional_name(
    op: Callable[[torch.Tensor], torch.Tensor] | nn.Module, named: str, why: str, cache: str
) -> None:
    x = torch.randn(2, 5, 24)
    with pytest.raises(UnsupportedOp, match=why) as refused:
        pc.compile(Wrap(op).eval(), (x,), threads=1, tuning=False, cache_dir=cache)
    assert f"'{named}'" in str(refused.value)


def test_a_partial_last_window_matches_eager(cache: str) -> None:
    """Stop 73: ``ceil_mode=True`` where a last window runs past the end (refused before)."""
    x = torch.randn(2, 5, 24)
    for op in (lambda t: F.avg_pool1d(t, 5, 5, 0, True), nn.MaxPool1d(5, 5, 2, ceil_mode=True)):
        model = Wrap(op).eval()
        compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-6)


def test_onnx_one_dimensional_pools_match_onnx_runtime_and_eager(cache: str) -> None:
    ort = pytest.importorskip("onnxruntime")

    class Pools(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.max_pool1d(x, 3, 2, 1) + F.avg_pool1d(x, 3, 2, 1, count_include_pad=False)

    x = torch.randn(2, 5, 24)
    model = Pools().eval()
    data = exported_onnx(model, {"x": x})
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (reference,) = session.run(None, {"x": x.numpy()})
    compiled = pc.compile_onnx(data, (x,), tuning=False, threads=2, cache_dir=cache)
    got = compiled(x)
    torch.testing.assert_close(got, torch.from_numpy(reference), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got, model(x), rtol=1e-4, atol=1e-4)
