"""Stop 72: ``torch.export`` programs compile (``pc.compile(exported, args)``, or its
``.module()``): their graphs hold ATen operators, which the frontend now rewrites as the
torch-level calls its tables know (``frontend/torch_aten.py``). Before: ``AttributeError:
'ExportedProgram' object has no attribute 'named_modules'``, and the module refused (``call
model.eval() first``, which it does not allow). The same name matching fixed two direct calls
of ``torch`` built-ins ordered unlike their ``torch.nn.functional`` namesakes:
``torch.batch_norm`` (silently NaN) and ``torch.embedding`` (refused). And ``F.dropout`` with
``training=True`` (its default) is refused, as ``F.dropout2d``'s already was, instead of
compiled as the identity."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
import torch.utils._pytree as pytree
from torch import nn

import provenml.compiler as pc
from provenml.errors import ProvenmlError


class CausalAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv, self.out = nn.Linear(32, 96), nn.Linear(32, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, -1)
        q, k, v = (t.view(1, 10, 4, 8).transpose(1, 2) for t in (q, k, v))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(o.transpose(1, 2).reshape(1, 10, 32))


MODELS: dict[str, Callable[[], tuple[nn.Module, torch.Tensor]]] = {
    "mlp_batchnorm_dropout": lambda: (
        nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Dropout(0.5), nn.GELU(),
                      nn.Linear(16, 2)),
        torch.randn(4, 8),
    ),
    "cnn": lambda: (
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                      nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)),
        torch.randn(2, 3, 16, 16),
    ),
    "encoder_layer": lambda: (
        nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), torch.randn(1, 10, 32)
    ),
    "gru": lambda: (nn.GRU(8, 16, batch_first=True), torch.randn(2, 5, 8)),
    "causal_attention": lambda: (CausalAttention(), torch.randn(1, 10, 32)),
    "layer_norm_softmax": lambda: (
        nn.Sequential(nn.LayerNorm(16), nn.Softmax(-1)), torch.randn(3, 16)
    ),
    "embedding": lambda: (
        nn.Sequential(nn.Embedding(20, 8), nn.Flatten(), nn.Linear(40, 3)),
        torch.randint(0, 20, (2, 5)),
    ),
}  # fmt: skip


def _other(x: torch.Tensor) -> torch.Tensor:
    return torch.randn_like(x) if x.is_floating_point() else torch.randint(0, 20, x.shape)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("form", ["program", "module"])
def test_an_exported_program_compiles(name: str, form: str) -> None:
    torch.manual_seed(0)
    model, x = MODELS[name]()
    model.eval()
    exported = torch.export.export(model, (x,))
    fast = pc.compile(exported if form == "program" else exported.module(), (x,), tuning=False)
    other = _other(x)
    with torch.no_grad():
        got, want = pytree.tree_leaves(fast(other)), pytree.tree_leaves(model(other))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_a_program_exported_in_training_mode_is_refused() -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.5)).train()
    exported = torch.export.export(model, (torch.randn(4, 8),))
    with pytest.raises(ProvenmlError, match="training=True"):
        pc.compile(exported, (torch.randn(4, 8),), tuning=False)


class TorchBuiltins(nn.Module):
    """``torch.batch_norm`` and ``torch.embedding`` take ATen's argument order."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(4) + 0.5)
        self.bias = nn.Parameter(torch.randn(4))
        self.register_buffer("mean", torch.randn(4))
        self.register_buffer("var", torch.rand(4) + 0.5)
        self.table = nn.Parameter(torch.randn(10, 4))

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        normed = torch.batch_norm(
            x, self.weight, self.bias, self.mean, self.var, False, 0.1, 1e-5, False
        )
        return normed + torch.embedding(self.table, ids)


def test_torch_builtins_ordered_unlike_their_functional_namesakes() -> None:
    torch.manual_seed(0)
    model = TorchBuiltins().eval()
    x, ids = torch.randn(3, 4), torch.tensor([1, 7, 2])
    fast = pc.compile(model, (x, ids), tuning=False, threads=1)
    other = (torch.randn(3, 4), torch.tensor([9, 0, 4]))
    with torch.no_grad():
        torch.testing.assert_close(fast(*other), model(*other))


class Dropouts(nn.Module):
    def __init__(self, always: bool) -> None:
        super().__init__()
        self.always = always

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.dropout(x, 0.3, training=self.training) + F.dropout(x, 0.0)
        return y + F.dropout(x, 0.5) if self.always else y


def test_dropout_in_training_mode_is_refused() -> None:
    x = torch.randn(4, 8)
    fast = pc.compile(Dropouts(always=False).eval(), (x,), tuning=False, threads=1)
    torch.testing.assert_close(fast(x), 2 * x)
    with pytest.raises(ProvenmlError, match=r"'dropout'.*training=True"):
        pc.compile(Dropouts(always=True).eval(), (x,), tuning=False, threads=1)
