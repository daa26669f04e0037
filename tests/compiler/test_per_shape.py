"""Stop 72: ``pc.compile(model, example, dynamic=True)`` builds one specialisation per input
signature, on the first call with it (a server's batch sizes); without it, a call with
another shape names both shapes and the two ways to get one build per shape."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

import provenml.compiler as pc
from provenml.errors import ProvenmlError


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4)).eval()


def test_one_build_per_batch_size() -> None:
    model = _model()
    fast = pc.compile(model, (torch.randn(2, 8),), dynamic=True, tuning=False, threads=1)
    assert isinstance(fast, pc.CompiledPerShape)
    with torch.no_grad():
        for batch in (1, 2, 5, 1, 5):
            x = torch.randn(batch, 8)
            torch.testing.assert_close(fast(x), model(x))
    assert sorted(key[0][0][0] for key in fast.compiled) == [1, 2, 5]  # three builds
    assert "3 specialisations" in repr(fast)
    again = pickle.loads(pickle.dumps(fast))
    x = torch.randn(3, 8)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))


def test_keyword_inputs_per_shape() -> None:
    class Masked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(20, 8)

        def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return (self.emb(input_ids) * mask[..., None]).sum(1)

    torch.manual_seed(0)
    model = Masked().eval()
    batch = {"input_ids": torch.randint(0, 20, (2, 5)), "mask": torch.ones(2, 5)}
    fast = pc.compile(model, example_kwargs=batch, dynamic=True, tuning=False, threads=1)
    longer = {"input_ids": torch.randint(0, 20, (3, 7)), "mask": torch.ones(3, 7)}
    with torch.no_grad():
        torch.testing.assert_close(fast(**longer), model(**longer))
        torch.testing.assert_close(fast(**batch), model(**batch))
    assert len(fast.compiled) == 2


def test_without_dynamic_another_shape_names_the_ways() -> None:
    fast = pc.compile(_model(), (torch.randn(2, 8),), tuning=False, threads=1)
    with pytest.raises(
        ProvenmlError, match=r"compiled for shape \(2, 8\), got \(3, 8\).*dynamic=True"
    ):
        fast(torch.randn(3, 8))


def test_onnx_models_per_shape_then_onnx_runtime(tmp_path: object) -> None:
    """Stop 73: ``compile_onnx(..., dynamic=True)`` (the shape error suggested it, and
    ``compile_onnx`` refused it as an unknown option); past ``max_shapes`` ONNX Runtime runs
    the file."""
    import warnings

    pytest.importorskip("onnxruntime")
    model = _model()
    path = f"{tmp_path}/model.onnx"
    x = torch.randn(2, 8)
    torch.onnx.export(
        model, (x,), path, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "batch"}}
    )
    fast = pc.compile_onnx(path, (x,), dynamic=True, max_shapes=2, tuning=False, threads=1)
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for batch in (3, 2, 5, 7, 3):
            x = torch.randn(batch, 8)
            torch.testing.assert_close(fast(x), model(x))
    assert len(fast.compiled) == 2 and "torch.float32[3, 8]" in repr(fast)
    again = pickle.loads(pickle.dumps(fast))  # (its build and its fallback travel with it)
    for batch in (3, 9):
        x = torch.randn(batch, 8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.testing.assert_close(again(x), model(x))
    assert sum("met more than 2 input signatures" in str(w.message) for w in caught) == 1
    with pytest.raises(ProvenmlError, match="applies with dynamic=True"):
        pc.compile_onnx(path, (x,), max_shapes=3)
    with pytest.raises(ProvenmlError, match="needs example_inputs"):
        pc.compile_onnx(path, dynamic=True)


def test_structured_signatures_print() -> None:
    class Pair(nn.Module):
        def forward(self, pair: list[torch.Tensor], scale: float) -> torch.Tensor:
            return pair[0] * scale + pair[1]

    fast = pc.compile(
        Pair().eval(), ([torch.ones(2), torch.ones(2)], 2.0), dynamic=True, tuning=False
    )
    torch.testing.assert_close(fast([torch.ones(3), torch.ones(3)], 0.5), torch.full((3,), 1.5))
    assert "2 specialisations" in repr(fast) and "0.5" in repr(fast)


class SizedMask(nn.Module):
    """A mask built from the length (``torch.ones(n, n)``): ``torch.fx`` cannot trace it,
    TorchDynamo can."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        mask = torch.ones(n, n).tril()
        scores = (x @ x.transpose(1, 2)).masked_fill(mask == 0, -1e9)
        out = self.proj(scores.softmax(-1) @ x)
        return out if n <= 6 else out * 2  # (a branch on the length: one export guard)


def test_later_shapes_of_a_dynamo_traced_model_build_from_one_export() -> None:
    """Stop 74: a model TorchDynamo had to trace was traced anew for every new shape (1.1-1.6
    s a length for a two-layer GPT-2); now later shapes compile from one ``torch.export``
    with dynamic dims (0.08 s a cached length), each build checked against the model, and a
    shape the export's guards refuse (``n > 6`` here) is traced as before."""
    torch.manual_seed(0)
    model = SizedMask().eval()
    fast = pc.compile(model, (torch.randn(2, 4, 8),), dynamic=True, tuning=False, threads=1)
    assert isinstance(fast, pc.CompiledPerShape) and fast.program is None
    with torch.no_grad():
        for length in (5, 3, 9, 5):
            x = torch.randn(2, length, 8)
            torch.testing.assert_close(fast(x), model(x))
    assert isinstance(fast.program, torch.export.ExportedProgram)
    assert len(fast.compiled) == 4
    again = pickle.loads(pickle.dumps(fast))
    assert again.program is None  # (exported again when needed)
    with torch.no_grad():
        x = torch.randn(2, 6, 8)
        torch.testing.assert_close(again(x), model(x))


def test_a_model_torch_fx_traces_is_not_exported() -> None:
    fast = pc.compile(_model(), (torch.randn(2, 8),), dynamic=True, tuning=False, threads=1)
    fast(torch.randn(3, 8))
    assert fast.program is False
