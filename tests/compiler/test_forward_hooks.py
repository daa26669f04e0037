"""Forward hooks (stop 70): ``torch.fx`` records a ``torch.nn`` module as one node and calls the
root's ``forward`` directly, so before stop 70 a hook that changed an input or an output was
silently left out of the compiled model (0.72 and 100 off in stop 70's probe). Now the hooks
are traced into the graph, in PyTorch's order, with a warning naming the hooked modules; a
hook on a module the compiler converts whole is refused by name."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.utils.prune as prune
from torch import nn

import provenml.compiler as pc


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(8, 8)
        self.second = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x).relu())


def _compile(model: nn.Module, x: torch.Tensor, cache: str) -> Any:
    with pytest.warns(UserWarning, match="forward hooks of"):
        return pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)


def _check(model: nn.Module, compiled: Any, x: torch.Tensor) -> None:
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-6, atol=1e-6)


def test_hooks_on_leaves_and_the_root_are_compiled(cache: str) -> None:
    torch.manual_seed(0)
    model = TwoLayers().eval()
    model.first.register_forward_hook(lambda m, args, out: out * 2)
    model.second.register_forward_pre_hook(lambda m, args: (args[0] + 1,))
    model.second.register_forward_pre_hook(lambda m, args: args[0].flip(-1))  # not a tuple
    model.register_forward_hook(lambda m, args, out: out - args[0][..., :4])
    model.register_forward_pre_hook(
        lambda m, args, kwargs: ((args[0] * 3,), kwargs), with_kwargs=True
    )
    compiled = _compile(model, torch.randn(5, 8), cache)
    without = pc.compile(TwoLayers().eval(), (torch.randn(5, 8),), threads=1, tuning=False)
    x = torch.randn(5, 8)
    _check(model, compiled, x)
    assert not torch.allclose(without(x), model(x))  # the hooks change the result


def test_hook_order_and_prepend(cache: str) -> None:
    model = TwoLayers().eval()
    model.first.register_forward_hook(lambda m, args, out: out + 1)
    model.first.register_forward_hook(lambda m, args, out: out * 3, prepend=True)
    model.first.register_forward_hook(lambda m, args, kwargs, out: out - 2, with_kwargs=True)
    compiled = _compile(model, torch.randn(3, 8), cache)
    _check(model, compiled, torch.randn(3, 8))


def test_global_hook_applies_to_every_module(cache: str) -> None:
    model = TwoLayers().eval()
    handle = nn.modules.module.register_module_forward_hook(
        lambda m, args, out: out * 0.5 if isinstance(m, nn.Linear) else None
    )
    try:
        compiled = _compile(model, torch.randn(3, 8), cache)
        _check(model, compiled, torch.randn(3, 8))
    finally:
        handle.remove()


def test_hook_on_a_module_converted_whole_is_refused(cache: str) -> None:
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = layer

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layer(x)

    layer.self_attn.register_forward_hook(lambda m, args, out: (out[0] * 2, out[1]))
    with pytest.raises(pc.UnsupportedOp, match="forward hook on its submodule 'self_attn'"):
        pc.compile(Encoder().eval(), (torch.randn(2, 5, 8),), tuning=False, cache_dir=cache)


def test_a_model_without_hooks_gives_no_warning(cache: str) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pc.compile(
            TwoLayers().eval(), (torch.randn(3, 8),), threads=1, tuning=False, cache_dir=cache
        )


def test_hook_on_a_module_of_constant_inputs_applies_once(cache: str) -> None:
    """A hooked module whose inputs are constants (positions built in forward) is folded from
    the recorded example run, which must call the module without its hooks: they are in the
    graph already (applied twice, 150 off, in the first version of stop 70's fix)."""

    class Positions(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = nn.Embedding(8, 4)
            self.table.register_forward_hook(lambda m, args, out: out * 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.table(torch.arange(x.shape[1]))

    model = Positions().eval()
    compiled = _compile(model, torch.randn(2, 8, 4), cache)
    _check(model, compiled, torch.randn(2, 8, 4))


def test_a_forward_replaced_on_the_instance_is_compiled(cache: str) -> None:
    """Adapter and LoRA libraries patch a layer's ``forward`` on the instance; the frontend
    converted an ``nn.Linear`` from its parameters and ignored the patch (0.39 off before stop
    70). Now such a module is traced through its new ``forward``."""
    model = TwoLayers().eval()
    original = model.first.forward
    low_rank = nn.Linear(8, 2, bias=False)
    model.first.forward = lambda x: original(x) + 0.5 * (low_rank(x) @ torch.ones(2, 8))
    compiled = pc.compile(model, (torch.randn(3, 8),), threads=1, tuning=False, cache_dir=cache)
    _check(model, compiled, torch.randn(3, 8))


def test_a_replaced_forward_inside_a_module_converted_whole_is_refused(cache: str) -> None:
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True).eval()
    original = layer.linear1.forward
    layer.linear1.forward = lambda x: original(x) * 2
    with pytest.raises(pc.UnsupportedOp, match="a replaced forward of its submodule 'linear1'"):
        pc.compile(nn.Sequential(layer).eval(), (torch.randn(2, 5, 8),), cache_dir=cache)


class PrunedAndNormed(nn.Module):
    """``torch.nn.utils.prune`` and the old ``torch.nn.utils.weight_norm`` compute a layer's
    weight in a forward pre-hook that assigns it to the module."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 8)
        prune.l1_unstructured(self.linear, "weight", amount=0.5)
        self.conv = nn.utils.weight_norm(nn.Conv1d(8, 8, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.conv(x.unsqueeze(-1).repeat(1, 1, 4)).mean(-1)


def test_hooks_that_set_a_weight(cache: str) -> None:
    """Traced on proxies, such a hook left a proxy as the layer's weight (the first version of
    stop 70's hook tracing failed on it); the trace now puts the weight the eager run computed
    back, and the user's model holds no proxy afterwards."""
    model = PrunedAndNormed().eval()
    compiled = _compile(model, torch.randn(3, 8), cache)
    _check(model, compiled, torch.randn(3, 8))
    assert type(vars(model.linear)["weight"]) is torch.Tensor
    assert type(vars(model.conv)["weight"]) is torch.Tensor


def test_a_forward_that_caches_on_self_leaves_no_proxy(cache: str) -> None:
    class Caching(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(8, 8)
            self.last = torch.zeros(1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.last = self.linear(x)
            return self.last * 2

    model = Caching().eval()
    compiled = pc.compile(model, (torch.randn(3, 8),), threads=1, tuning=False, cache_dir=cache)
    assert isinstance(model.last, torch.Tensor) and not isinstance(model.last, torch.fx.Proxy)
    _check(model, compiled, torch.randn(3, 8))


def test_a_weight_set_from_the_input_by_a_hook_is_refused(cache: str) -> None:
    model = TwoLayers().eval()
    weight = model.first.weight.detach().clone()
    del model.first.weight

    def scaled_by_input(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        module.weight = weight * args[0].abs().mean()

    model.first.register_forward_pre_hook(scaled_by_input)
    with pytest.raises(pc.UnsupportedOp, match=r"'first\.weight' is set from the model's inputs"):
        pc.compile(model, (torch.randn(3, 8),), tuning=False, cache_dir=cache)
