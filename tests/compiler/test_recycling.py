"""Output recycling (``CompiledGraph.recycle_outputs``): a compiled graph hands an earlier
call's output tensor out again only when nothing outside the graph refers to it."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import provenml.compiler as pc
from provenml.compiler.models import build_model


@pytest.fixture(scope="module")
def block(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, torch.nn.Module, torch.Tensor]:
    model, x = build_model("transformer", batch=1)  # output 64 KiB
    compiled = pc.compile(
        model,
        (x,),
        threads=1,
        tune_threads=False,
        tuning=False,
        cache_dir=str(tmp_path_factory.mktemp("recycle")),
    )
    return compiled, model, x


def _ptr(t: torch.Tensor) -> int:
    return int(t.data_ptr())


def test_a_dropped_output_is_reused(block: tuple) -> None:
    compiled, _, x = block
    assert compiled.graph.recycle_outputs
    first = _ptr(compiled(x))  # dropped at once
    assert _ptr(compiled(x)) == first


def test_rebinding_one_name_alternates_two_blocks(block: tuple) -> None:
    compiled, _, x = block
    y = compiled(x)
    seen = {_ptr(y)}
    for _ in range(6):
        y = compiled(x)  # the previous y is still alive during the call
        seen.add(_ptr(y))
    assert len(seen) == 2


# how a caller may keep an output alive (without the tensor itself), and how to read it back
HOLDERS: dict[str, tuple[Callable[[torch.Tensor], Any], Callable[[Any], torch.Tensor]]] = {
    "name": (lambda out: out, lambda keep: keep),
    "view": (lambda out: out[0, :3], lambda keep: keep),
    "numpy": (lambda out: out.numpy(), torch.from_numpy),
    "list": (lambda out: [out], lambda keep: keep[0]),
    "dlpack": (torch.utils.dlpack.to_dlpack, torch.utils.dlpack.from_dlpack),
}


@pytest.mark.parametrize("holder", sorted(HOLDERS))
def test_an_output_anything_still_holds_is_never_written(block: tuple, holder: str) -> None:
    compiled, model, x = block
    hold, read = HOLDERS[holder]
    out = compiled(x)
    keep = hold(out)
    snapshot = (out[0, :3] if holder == "view" else out).clone()  # (a capsule reads once)
    del out
    gc.collect()
    for _ in range(4):  # calls on other inputs: a wrongly reused block would change
        compiled(torch.randn_like(x))
    assert torch.equal(read(keep), snapshot)
    with torch.no_grad():
        ref = model(x)
    expected = ref[0, :3] if holder == "view" else ref
    np.testing.assert_allclose(snapshot.numpy(), expected.numpy(), atol=1e-4)


def test_the_list_a_compiled_graph_returns_holds_its_tensors(block: tuple) -> None:
    """``CompiledGraph.__call__`` returns a list; holding only that list keeps the output."""
    compiled, _, x = block
    held = compiled.graph(x)
    snapshot = held[0].clone()
    for _ in range(4):
        compiled.graph(torch.randn_like(x))
    assert torch.equal(held[0], snapshot)


@pytest.mark.parametrize(
    "change",
    [
        "squeeze_",
        "resize_smaller",
        "resize_larger",
        "set_",
        "requires_grad_",
        "transpose_",
        "storage_resize_",
    ],
)
def test_an_output_changed_in_place_then_dropped_is_not_handed_out_again(
    block: tuple, change: str
) -> None:
    """Without the check (``runtime._reusable``) the graph writes its 64 KiB output through the
    changed tensor: wrong shapes, or past the end of a shrunk storage (the process crashes)."""
    compiled, model, x = block
    with torch.no_grad():
        ref = model(x)
    out = compiled(x)
    if change == "squeeze_":
        out.squeeze_(0)
    elif change == "resize_smaller":
        out.resize_(10)
    elif change == "resize_larger":
        out.resize_(2, 64, 256)
    elif change == "set_":
        out.set_(torch.zeros(3))
    elif change == "requires_grad_":
        out.requires_grad_()
    elif change == "storage_resize_":
        out.untyped_storage().resize_(16)
    else:
        out.transpose_(1, 2)
    del out
    for _ in range(3):
        again = compiled(x)
        assert again.shape == x.shape and again.is_contiguous() and not again.requires_grad
        np.testing.assert_allclose(again.numpy(), ref.numpy(), atol=1e-4)


def test_an_output_fed_back_as_the_input_is_not_overwritten(block: tuple) -> None:
    compiled, model, x = block
    y = compiled(x)
    e = x
    with torch.no_grad():
        e = model(e)
        for _ in range(4):
            y = compiled(y)  # the input is the previous output: it must not be the new one
            e = model(e)
    np.testing.assert_allclose(y.numpy(), e.numpy(), rtol=1e-4, atol=1e-4)


def test_recycling_off_allocates_every_call(block: tuple) -> None:
    compiled, _, x = block
    compiled.graph.recycle_outputs = False
    try:
        kept = [compiled(x) for _ in range(3)]
        assert len({_ptr(t) for t in kept}) == 3
    finally:
        compiled.graph.recycle_outputs = True


def test_small_outputs_are_recycled_huge_ones_are_not(cache: str) -> None:
    """On by default up to RECYCLE_MAX_BYTES (4 MiB): a tiny output's torch.empty is most of
    the saving; an 8 MiB one takes long enough to compute that it would only hold memory."""

    class Double(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2.0

    model, x = build_model("mlp", batch=1)
    small = pc.compile(model, (x,), threads=1, tune_threads=False, tuning=False, cache_dir=cache)
    assert small.graph.recycle_outputs
    first = _ptr(small(x))
    assert _ptr(small(x)) == first
    big_x = torch.randn(1024, 2048)  # 8 MiB
    big = pc.compile(Double().eval(), (big_x,), threads=1, tune_threads=False, cache_dir=cache)
    assert not big.graph.recycle_outputs
    torch.testing.assert_close(big(big_x), big_x * 2.0)
