"""The vector-register micro-kernel (``codegen.microkernel``) under every tile shape the tuner
tries: full and edge tiles of dense (with a fused epilogue), batched matmul (transposed B) and
NHWC convolution, against eager PyTorch at rtol 1e-4."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import provenml.compiler as pc
from provenml.compiler.codegen import DEFAULT_SCHEDULE, microkernel


class DenseGelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(37, 50)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.lin(x)) + x[..., :1]


class AttentionScores(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return torch.relu(q @ k.transpose(-2, -1) * 0.5)


def conv_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(8, 24, 3, stride=2, padding=1), nn.ReLU()).eval()


MODELS = {
    "dense": (lambda: DenseGelu().eval(), lambda: [torch.randn(2, 13, 37)]),
    "bmm": (
        lambda: AttentionScores().eval(),
        lambda: [torch.randn(3, 13, 21), torch.randn(3, 19, 21)],
    ),
    "conv": (conv_model, lambda: [torch.randn(1, 8, 9, 11)]),
}


@pytest.mark.parametrize("schedule", [(6, 16, 4), (4, 32, 1), (1, 8, 4)])
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_microkernel_tiles_match_eager(
    model_name: str, schedule: tuple[int, int, int], cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mr, nr, ku = schedule
    for key, val in (("mr", mr), ("nr", nr), ("ku", ku)):
        monkeypatch.setitem(DEFAULT_SCHEDULE, key, val)
    torch.manual_seed(0)
    factory, inputs = MODELS[model_name]
    model, xs = factory(), inputs()
    compiled = pc.compile(model, xs, tuning=False, cache_dir=cache)
    assert "pm_ukr_" in compiled.source  # the helper, not the fallback loop nest, ran
    with torch.no_grad():
        ref = model(*xs)
    torch.testing.assert_close(compiled(*xs), ref, rtol=1e-4, atol=1e-4)


def test_microkernel_source_has_named_vector_accumulators() -> None:
    name, code = microkernel(6, 16, 4)
    assert name == "pm_ukr_6x16_u4"
    assert "c5_1 += av * b1;" in code and "acc[" not in code.split("for (long k")[1].split("}")[0]
