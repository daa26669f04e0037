"""Item assignment, chained in-place calls and numbers read from tensors (stop 69).
``t[index] = value`` compiled to the tensor without the assignment (a buffer filled by
assignment became a constant: the example's values), in ``t.sub_(a).div_(b)`` the division
was lost, and ``x / x.max().item()`` divided by the example's maximum; all silently wrong.
Each case here runs on an input other than the one traced and is exact against eager; what
the assignment cannot express, and a number read from an input's values, are refused by
name."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import provenml.compiler as pc
from provenml.compiler.frontend.common import UnsupportedOp


def clone_column(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y[:, 0] = 0
    return y


def fresh_buffer(x: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(x.shape[0], 20)
    out[:, :16] = x
    return out


def block(x: torch.Tensor) -> torch.Tensor:
    y = x * 1
    y[1:3, 2:5] = x[:2, :3] * 2
    return y


def ellipsis_negative(x: torch.Tensor) -> torch.Tensor:
    y = x + 1
    y[..., -1] = 5.0
    return y


def strided_scalar(x: torch.Tensor) -> torch.Tensor:
    y = x * 2
    y[::2, 1::3] = -1.0
    return y


def by_mask(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y[y > 0.5] = 0.5
    return y


def broadcast_row(x: torch.Tensor) -> torch.Tensor:
    y = torch.zeros_like(x)
    y[:, 4:8] = x[0, :4]
    return y


def integers(x: torch.Tensor) -> torch.Tensor:
    counts = (x > 0).long().sum(1)
    counts[0] = 7
    return counts


def chained_in_place(x: torch.Tensor) -> torch.Tensor:
    y = x @ torch.ones(16, 16)
    y.clamp_(-1.0, 1.0)
    y.sub_(0.5).div_(2)
    return y


class ClassToken(nn.Module):
    """A ViT-style sequence: a learned class token in front of the patch embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.cls = nn.Parameter(torch.randn(16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = torch.zeros(x.shape[0], 5, 16)
        tokens[:, 0] = self.cls
        tokens[:, 1:] = x.reshape(x.shape[0], 4, 4).repeat(1, 1, 4)
        return tokens


class Wrap(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


CASES: dict[str, Callable[[torch.Tensor], torch.Tensor] | nn.Module] = {
    "a column of a clone": clone_column,
    "a slice of a fresh buffer": fresh_buffer,
    "a 2-d block from a tensor": block,
    "ellipsis and a negative index": ellipsis_negative,
    "a strided scalar fill": strided_scalar,
    "through a boolean mask": by_mask,
    "a row broadcast into a region": broadcast_row,
    "an int64 element": integers,
    "clamp_, then sub_(..).div_(..)": chained_in_place,
    "a class token": ClassToken(),
}


@pytest.mark.parametrize("name", list(CASES))
def test_assignments_match_eager_on_a_new_input(name: str, cache: str) -> None:
    case = CASES[name]
    model = (case if isinstance(case, nn.Module) else Wrap(case)).eval()
    example, x = torch.randn(4, 16), torch.randn(4, 16)
    compiled = pc.compile(model, (example,), threads=2, tuning=False, cache_dir=cache)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-6, atol=1e-6)


def _tensor_index(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y[torch.tensor([0, 2])] = 0.0
    return y


def _input_changed(x: torch.Tensor) -> torch.Tensor:
    x[:, 0] = 0.0
    return x * 2


def _strided_tensor(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y[:, ::2] = x[:, :8]
    return y


def _new_axis(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y[None, 0] = 1.0
    return y


@pytest.mark.parametrize(
    ("fn", "why"),
    [
        (_tensor_index, "advanced indexing"),
        (_input_changed, "graph input"),
        (_strided_tensor, "strided slice"),
        (_new_axis, "new axis"),
    ],
)
def test_what_assignment_cannot_express_is_refused(
    fn: Callable[[torch.Tensor], torch.Tensor], why: str, cache: str
) -> None:
    with pytest.raises(UnsupportedOp, match=why):
        pc.compile(Wrap(fn).eval(), (torch.randn(4, 16),), threads=1, tuning=False, cache_dir=cache)


def test_a_float_from_input_values_is_refused(cache: str) -> None:
    """Stop 69: such a number was taken from the example run and frozen into the graph; a
    float stays refused (stop 71), as another input would almost never give the same one."""
    model = Wrap(lambda x: x / x.abs().max().item()).eval()
    with pytest.raises(UnsupportedOp, match="the example's number"):
        pc.compile(model, (torch.randn(4, 16),), threads=1, tuning=False, cache_dir=cache)


@pytest.mark.parametrize(
    ("fn", "same_number"),
    [
        (lambda x: x * int((x > 0).sum()), lambda x: x.flip(1)),  # as many positives
        (lambda x: x * x.argmax().item(), lambda x: x * 2.0),  # the same position
    ],
    ids=["int(sum)", "argmax().item()"],
)
def test_an_integer_from_input_values_is_kept_and_checked(
    fn: Callable[[torch.Tensor], torch.Tensor],
    same_number: Callable[[torch.Tensor], torch.Tensor],
    cache: str,
) -> None:
    """Stop 71: an integer read from the inputs' values is the example's in the compiled
    graph, which checks it after each call: an input with the same number gives eager's
    result, one with another number a ``ValueGuardFailed`` (stop 69 refused the model)."""
    model = Wrap(fn).eval()
    example = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
    compiled = pc.compile(model, (example,), threads=1, tuning=False, cache_dir=cache)
    same = same_number(example)
    torch.testing.assert_close(compiled(same), model(same))
    other = torch.arange(64.0).reshape(4, 16)  # 63 positives, the largest last
    with pytest.raises(pc.ValueGuardFailed, match="on the example inputs and is 63"):
        compiled(other)


def test_numbers_from_shapes_still_compile(cache: str) -> None:
    def sizes(x: torch.Tensor) -> torch.Tensor:
        scale = x.shape[0] * x.size(-1) + x.dim() - x.numel() + len(x)
        return x * scale / x.size(1)

    model = Wrap(sizes).eval()
    compiled = pc.compile(model, (torch.randn(4, 16),), threads=1, tuning=False, cache_dir=cache)
    x = torch.randn(4, 16)
    torch.testing.assert_close(compiled(x), model(x))


class RelativePositions(nn.Module):
    """BEiT's relative position index, built in forward from the input's size (so TorchDynamo
    traces it): a ``contiguous()`` copy of a permuted tensor changed in place, then assigned
    into a table. Everything is known at compile time; until stop 70 the frontend refused it
    (``contiguous()`` counted as a view of the permuted tensor, and a constant value could not
    be assigned), which made transformers' BEiT fail since stop 69."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.randn(3 * 3 + 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = int(x.shape[-1] ** 0.5)
        coords = torch.flatten(
            torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")), 1
        )
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
        relative[:, :, 0] += side - 1
        relative[:, :, 1] += side - 1
        relative[:, :, 0] *= 2 * side - 1
        index = torch.zeros(size=(side * side + 1,) * 2, dtype=relative.dtype)
        index[1:, 1:] = relative.sum(-1)
        index[0, 0:] = 9
        index[0:, 0] = 10
        index[0, 0] = 11
        return x @ self.bias[index.flatten()].view(side * side + 1, -1)[:, : x.shape[-1]].T


def test_a_table_built_by_assignment_at_compile_time(cache: str) -> None:
    model = RelativePositions().eval()
    compiled = pc.compile(model, (torch.randn(2, 4),), threads=1, tuning=False, cache_dir=cache)
    x = torch.randn(2, 4)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
