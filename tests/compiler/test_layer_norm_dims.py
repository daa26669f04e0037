"""Layer norm over several trailing dims (stop 69; refused before): ``nn.LayerNorm([C, H, W])``
as GAN and some vision models write it, ``nn.LayerNorm((H, W))`` without affine parameters,
``F.layer_norm`` with parameters; through the PyTorch frontend (exact against eager on a new
input) and ONNX's LayerNormalization with an axis before the last (against ONNX Runtime)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tests.compiler._user_models import exported_onnx
from torch import nn

import provenml.compiler as pc


def _affine(norm: nn.LayerNorm) -> nn.LayerNorm:
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    return norm


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(5, 7) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (5, 7), self.weight, None, 1e-3).relu()


CASES: dict[str, nn.Module] = {
    "LayerNorm([C, H, W])": _affine(nn.LayerNorm([6, 5, 7])),
    "LayerNorm((H, W)), no affine": nn.LayerNorm((5, 7), elementwise_affine=False),
    "F.layer_norm with a weight, then relu": Functional(),
    "conv then LayerNorm([C, H, W])": nn.Sequential(
        nn.Conv2d(6, 6, 3, padding=1), _affine(nn.LayerNorm([6, 5, 7]))
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_layer_norm_over_several_dims_matches_eager(name: str, cache: str) -> None:
    torch.manual_seed(0)
    model = CASES[name].eval()
    example, x = torch.randn(2, 6, 5, 7), torch.randn(2, 6, 5, 7) * 3 + 1
    compiled = pc.compile(model, (example,), threads=2, tuning=False, cache_dir=cache)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


def test_onnx_layer_normalization_over_several_dims(cache: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    model = _affine(nn.LayerNorm((5, 7))).eval()
    x = torch.randn(2, 6, 5, 7)
    data = exported_onnx(model, {"x": x})
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (reference,) = session.run(None, {"x": x.numpy()})
    compiled = pc.compile_onnx(data, (x,), tuning=False, threads=2, cache_dir=cache)
    got = compiled(x)
    torch.testing.assert_close(got, torch.from_numpy(reference), rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(got, model(x), rtol=1e-4, atol=1e-4)
