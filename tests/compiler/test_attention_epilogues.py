"""Elementwise epilogues after an attention block's ``@ v`` (stop 69): the fusion pass put the
``@ v`` product's fused group into the attention kernel but only its matmul, so an epilogue
fused into that group (a scale, a shift, an activation) was silently dropped (``(p @ v) + 1``
came out without the 1). Each case is exact against eager and compiles to one attention
kernel that applies the epilogue; with a causal mask, with the heads' output permute, and
through ``F.scaled_dot_product_attention``."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import provenml.compiler as pc

Epilogue = Callable[[torch.Tensor], torch.Tensor]

EPILOGUES: dict[str, Epilogue] = {
    "times 2": lambda o: o * 2,
    "plus 1": lambda o: o + 1,
    "relu": torch.relu,
    "gelu": F.gelu,
    "a column bias and tanh": lambda o: torch.tanh(o + torch.linspace(-1, 1, 16)),
}


class Attention(nn.Module):
    def __init__(self, epilogue: Epilogue, how: str) -> None:
        super().__init__()
        self.epilogue, self.how = epilogue, how

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.how == "sdpa causal":
            return self.epilogue(F.scaled_dot_product_attention(q, k, v, is_causal=True))
        scores = q @ k.transpose(-2, -1) * 0.25
        if self.how == "masked":
            scores = scores + torch.triu(torch.full((8, 8), float("-inf")), 1)
        out = self.epilogue(torch.softmax(scores, dim=-1) @ v)
        if self.how == "heads merged":
            return out.transpose(1, 2).reshape(2, 8, 4 * 16)
        return out


@pytest.mark.parametrize("how", ["plain", "masked", "heads merged", "sdpa causal"])
@pytest.mark.parametrize("name", list(EPILOGUES))
def test_an_epilogue_after_attention_is_applied(name: str, how: str, cache: str) -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 8, 16) for _ in range(3))
    model = Attention(EPILOGUES[name], how).eval()
    compiled = pc.compile(model, (q, k, v), threads=2, tuning=False, cache_dir=cache)
    kinds = [n.attrs.get("kind") for n in compiled.stages[-1][1].nodes if n.op == "fused"]
    assert "attention" in kinds
    torch.testing.assert_close(compiled(q, k, v), model(q, k, v), rtol=1e-5, atol=1e-5)


def test_self_attention_on_one_tensor_with_a_scale_after(cache: str) -> None:
    """q, k and v the same tensor, the output scaled (the probe's case)."""

    class SelfAttention(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (torch.softmax(x @ x.transpose(-2, -1) * 0.25, dim=-1) @ x) * 2

    x = torch.randn(2, 8, 16)
    model = SelfAttention().eval()
    compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
