"""Stop 73: inputs that are not one tensor each (lists and dicts of tensors, numbers,
``None``, a parameter left to its default), and specialisations by value and their limit
(``compile(..., dynamic=True)``, ``torch.compile(..., backend=pc.backend, dynamic=True)``)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import provenml.compiler as pc
from provenml.compiler import api
from provenml.errors import ProvenmlError

OPTS = {"tuning": False, "threads": 1}


class OptionalMask(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.linear(x)
        return y if mask is None else y * mask


class Nested(nn.Module):
    """A dict of a list of tensors and a tensor, a number, a flag and None in; a dict out."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 4)

    def forward(
        self, batch: dict[str, object], top: int, flag: bool = True, extra: None = None
    ) -> dict[str, torch.Tensor]:
        a, b = batch["pair"]  # type: ignore[misc]
        y = self.linear(a + 2 * b)[:, :top]
        if flag:
            y = y + batch["bias"]  # type: ignore[operator]
        return {"y": y, "sum": y.sum(-1)}


def _example() -> tuple[dict[str, object], int]:
    torch.manual_seed(0)
    return {"pair": [torch.randn(3, 8), torch.randn(3, 8)], "bias": torch.randn(3, 2)}, 2


def test_a_parameter_left_to_its_default() -> None:
    torch.manual_seed(0)
    model, x = OptionalMask().eval(), torch.randn(3, 8)
    alone = pc.compile(model, (x,), **OPTS)  # failed inside torch.fx before (mask is a Proxy)
    assert torch.allclose(alone(x), model(x), atol=1e-6)
    assert "input dtype" not in repr(alone) and alone.graph.graph.inputs == ["x"]
    mask = torch.rand(3, 4)
    both = pc.compile(model, (x, mask), **OPTS)
    assert torch.allclose(both(x, mask), model(x, mask), atol=1e-6)


def test_nested_inputs_numbers_flags_and_none() -> None:
    model = Nested().eval()
    batch, top = _example()
    fast = pc.compile(model, (batch, top), example_kwargs={"flag": True, "extra": None}, **OPTS)
    torch.manual_seed(1)
    other = {"pair": [torch.randn(3, 8), torch.randn(3, 8)], "bias": torch.randn(3, 2)}
    got, want = fast(other, 2, flag=True, extra=None), model(other, 2, flag=True)
    assert set(got) == {"y", "sum"}
    for key in want:
        assert torch.allclose(got[key], want[key], atol=1e-6)
    assert "called as" in repr(fast) and "Tensor[3, 8]" in repr(fast)
    # NumPy arrays stand for tensors at any depth
    numpy_batch = {"pair": [p.numpy() for p in other["pair"]], "bias": other["bias"].numpy()}  # type: ignore[union-attr]
    assert torch.allclose(fast(numpy_batch, 2, flag=True, extra=None)["y"], want["y"], atol=1e-6)


def test_a_call_unlike_the_compiled_one_is_named() -> None:
    model = Nested().eval()
    batch, top = _example()
    fast = pc.compile(model, (batch, top), **OPTS)
    with pytest.raises(ProvenmlError, match="got 3 where it was compiled for 2"):
        fast(batch, 3)
    with pytest.raises(ProvenmlError, match="another nesting of the inputs"):
        fast({"pair": [batch["pair"][0]], "bias": batch["bias"]}, 2)  # type: ignore[index]
    with pytest.raises(ProvenmlError, match="not compiled for keyword"):
        fast(batch, 2, flag=False)
    with pytest.raises(ProvenmlError, match="compiled for a tensor"):
        fast({"pair": [batch["pair"][0], 1.0], "bias": batch["bias"]}, 2)  # type: ignore[index]
    with pytest.raises(ProvenmlError, match="no tensor among the example inputs"):
        pc.compile(model, ({"pair": [1, 2]}, 2), **OPTS)


def test_structured_inputs_pickle() -> None:
    model = Nested().eval()
    batch, top = _example()
    fast = pc.compile(model, (batch, top), **OPTS)
    again = pickle.loads(pickle.dumps(fast))
    assert torch.equal(again(batch, top)["y"], fast(batch, top)["y"])
    with pytest.raises(ProvenmlError, match="compiled for 2"):
        again(batch, 1)


def test_dynamic_builds_once_per_value_of_a_number() -> None:
    model = Nested().eval()
    batch, _ = _example()
    off = {"flag": False}
    fast = pc.compile(model, (batch, 2), example_kwargs=off, dynamic=True, **OPTS)
    for top in (1, 3, 2):
        want = model(batch, top, flag=False)["y"]
        assert torch.allclose(fast(batch, top, flag=False)["y"], want, atol=1e-6)
    assert len(fast.compiled) == 3
    assert torch.allclose(fast(batch, 2, flag=True)["y"], model(batch, 2)["y"], atol=1e-6)
    assert len(fast.compiled) == 4


def test_dynamic_stops_compiling_after_max_shapes() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), nn.Tanh()).eval()
    fast = pc.compile(model, (torch.randn(1, 8),), dynamic=True, max_shapes=2, **OPTS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for batch in (2, 3, 4, 3):
            x = torch.randn(batch, 8)
            assert torch.allclose(fast(x), model(x), atol=1e-6)
    assert len(fast.compiled) == 2  # batches 1 and 2; 3 and 4 ran in PyTorch
    said = [str(w.message) for w in caught if "met more than 2 input signatures" in str(w.message)]
    assert len(said) == 1
    with pytest.raises(ProvenmlError, match="applies with dynamic=True"):
        pc.compile(model, (torch.randn(1, 8),), max_shapes=3, **OPTS)


class CausalAttention(nn.Module):
    """A mask built from the sequence length, and a float attribute (TorchDynamo passes the
    length as an int and lifts the float to a 0-d float64 input under ``dynamic=True``)."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(16)
        self.qkv = nn.Linear(16, 48)
        self.scale = 0.25

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        positions = torch.arange(n)
        allowed = positions[None, :] <= positions[:, None]
        q, k, v = self.qkv(self.norm(x)).chunk(3, -1)
        scores = (q @ k.transpose(-1, -2)) * self.scale
        scores = scores.masked_fill(~allowed, float("-inf"))
        return scores.softmax(-1) @ v


def test_backend_dynamic_compiles_masks_built_from_the_length(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.manual_seed(0)
    model = CausalAttention().eval()
    left: list[list[str]] = []
    monkeypatch.setattr(api, "_warn_left_to_pytorch", left.append)
    torch._dynamo.reset()
    fast = torch.compile(model, backend=pc.backend, dynamic=True, options=OPTS)
    with torch.no_grad():
        for n in (3, 5, 4, 5):
            x = torch.randn(2, n, 16)
            assert torch.allclose(fast(x), model(x), atol=1e-5)
        model.scale = 0.5  # a float attribute changed: the specialisation follows it
        x = torch.randn(2, 4, 16)
        assert torch.allclose(fast(x), model(x), atol=1e-5)
    assert left == []  # before stop 73 the whole graph was left to PyTorch


def test_backend_stops_compiling_new_shapes_after_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.manual_seed(0)
    model = CausalAttention().eval()
    monkeypatch.setattr(api, "MAX_SPECIALISATIONS", 2)
    torch._dynamo.reset()
    fast = torch.compile(model, backend=pc.backend, dynamic=True, options=OPTS)
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in (3, 4, 5, 6, 3):
            x = torch.randn(2, n, 16)
            assert torch.allclose(fast(x), model(x), atol=1e-5)
    assert any("met more than 2" in str(w.message) for w in caught)


def test_numpy_array_example_inside_a_list() -> None:
    model = Nested().eval()
    batch, top = _example()
    as_numpy = {"pair": [np.asarray(p) for p in batch["pair"]], "bias": batch["bias"]}  # type: ignore[union-attr]
    fast = pc.compile(model, (as_numpy, top), **OPTS)
    assert torch.allclose(fast(batch, top)["y"], model(batch, top)["y"], atol=1e-6)


def test_weights_loaded_after_compiling_are_named() -> None:
    """Stop 73: ``load_state_dict`` after ``pc.compile`` left the compiled model computing with
    the old weights without a word; now one warning. ``dynamic=True`` compiles again."""
    torch.manual_seed(0)
    model, x = nn.Linear(8, 4).eval(), torch.randn(3, 8)
    fast = pc.compile(model, (x,), **OPTS)
    per_shape = pc.compile(model, (x,), dynamic=True, **OPTS)
    before = fast(x)
    new = {k: v * 2 for k, v in model.state_dict().items()}
    model.load_state_dict(new)
    with pytest.warns(RuntimeWarning, match="load_state_dict\\(\\) ran after it compiled"):
        assert torch.equal(fast(x), before)  # the weights it compiled with, as documented
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast(x)  # once
        assert torch.allclose(per_shape(x), model(x), atol=1e-6)  # rebuilt with the new ones
    del fast, per_shape
    import gc

    gc.collect()
    assert not model._load_state_dict_post_hooks  # the hooks went with the compiled models


def test_the_model_still_pickles_after_compiling(tmp_path: object) -> None:
    """The reload watch sits in the model's hooks: ``torch.save(model)`` and ``deepcopy``
    still work, and the copy watches nothing."""
    import copy

    model, x = nn.Linear(8, 4).eval(), torch.randn(3, 8)
    fast = pc.compile(model, (x,), **OPTS)
    torch.save(model, f"{tmp_path}/model.pt")
    loaded = torch.load(f"{tmp_path}/model.pt", weights_only=False)
    twin = copy.deepcopy(model)
    for other in (loaded, twin):
        other.load_state_dict(model.state_dict())  # no effect on ``fast``
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast(x)


def test_a_backend_graph_computing_no_tensor_is_left_silently() -> None:
    """Under ``dynamic=True`` TorchDynamo hands over graphs that return a size alone (PyG's
    self loops: ``(30,)``); the backend warned "compiled nothing" for them."""

    class SizeOnly(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[int]:
            return (x.shape[0] * 2,)

    gm = torch.fx.symbolic_trace(SizeOnly())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = api._partitioned(gm, [torch.randn(3, 2)], dict(OPTS))
    assert run(torch.randn(5, 2)) == (10,)
