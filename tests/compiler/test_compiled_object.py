"""Stop 72: the compiled model as an object a user handles: its repr is one line (the
dataclass's own printed every stage's IR, 99 KB for a two-layer MLP), and ``as_module()``
lets it stand in for a submodule of a larger model (assigning it raised PyTorch's "cannot
assign ... as child module")."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

import provenml.compiler as pc
from provenml.errors import ProvenmlError


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 16)).eval()


def test_repr_is_one_short_line() -> None:
    x = torch.randn(4, 16)
    fast = pc.compile(_mlp(), (x,), tuning=False, threads=1)
    text = repr(fast)
    assert "\n" not in text and len(text) < 300, text
    assert "float32[4, 16]" in text and "threads=1" in text


def test_as_module_stands_in_for_a_submodule() -> None:
    encoder, x = _mlp(), torch.randn(4, 16)
    model = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), encoder).eval()
    with torch.no_grad():
        want = model(x)
        model[2] = pc.compile(encoder, (torch.tanh(model[0](x)),), tuning=False).as_module()
        assert isinstance(model[2], pc.CompiledModule)
        torch.testing.assert_close(model(x), want)
        again = pickle.loads(pickle.dumps(model))
        torch.testing.assert_close(again(x), want)
    assert "CompiledModule(Compiled(inputs" in repr(model)
    assert list(model[2].parameters()) == []  # the weights are frozen in the compiled code


def test_numpy_examples_and_a_torchscript_model() -> None:
    """NumPy example inputs are taken as tensors (``compile_onnx`` took them already); a
    TorchScript module is refused naming the two ways round (before: "traced_func_name=
    forward doesn't exist in TopLevelTracedModule", then TorchDynamo's own refusal)."""
    model, x = _mlp(), torch.randn(4, 16)
    fast = pc.compile(model, (x.numpy(),), tuning=False, threads=1)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x))
    with pytest.raises(ProvenmlError, match=r"TorchScript module.*compile_onnx"):
        pc.compile(torch.jit.trace(model, x), (x,), tuning=False)
