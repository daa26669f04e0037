"""Stop 69: a fourth probe, against eager: in-place ops and writes through views, as models
write them (``nn.ReLU(inplace=True)``, ``x += y``, ``y.mul_(c)``, a write into a view of a
value that is returned, item assignment into a clone or a fresh buffer, ``masked_fill_``).
Each must give eager's result on an input other than the traced example, or be refused by
name; a silently different result is a bug.

    .venv/bin/python results/compiler.user_models/in_place_stop69.py
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from _probe import Case, compile_with, run_probe
from torch import nn


def augmented(x: torch.Tensor) -> torch.Tensor:
    y = x * 2
    y += x
    y *= 3
    return y


def view_add(x: torch.Tensor) -> torch.Tensor:
    y = x * 2
    z = y.view(-1)
    z.add_(1)
    return y


def slice_write(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y[:, 0] = 0
    return y


def fresh_buffer(x: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(x.shape[0], 20)
    out[:, :16] = x
    return out


def accumulate(x: torch.Tensor) -> torch.Tensor:
    total = torch.zeros_like(x)
    for k in range(3):
        total += x * k
    return total


def transposed_view_write(x: torch.Tensor) -> torch.Tensor:
    y = x * 1.5
    y.t()[0].mul_(0)  # zeroes column 0 of y
    return y


def masked_in_place(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y.masked_fill_(y > 0.5, 0.5)
    return y.relu_()


def in_place_then_read_old_alias(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    y = x + 1
    alias = y[:2]
    y.mul_(3)
    return alias, y


def narrow_copy(x: torch.Tensor) -> torch.Tensor:
    y = x * 1
    y.narrow(1, 2, 4).copy_(x[:, :4] * 10)
    return y


def index_add(x: torch.Tensor) -> torch.Tensor:
    y = torch.zeros(6, 16)
    return y.index_add_(0, torch.tensor([0, 2, 2, 5]), x)


def clamp_in_place(x: torch.Tensor) -> torch.Tensor:
    y = x @ torch.ones(16, 16)
    y.clamp_(-1.0, 1.0)
    y.sub_(0.5).div_(2)
    return y


CASES: dict[str, Callable[[torch.Tensor], object] | nn.Module] = {
    "nn.ReLU(inplace=True)": nn.Sequential(nn.Linear(16, 16), nn.ReLU(inplace=True)),
    "y += x, y *= c": augmented,
    "write through a view of a returned value": view_add,
    "item assignment into a clone": slice_write,
    "a slice of a fresh buffer assigned": fresh_buffer,
    "+= in a loop": accumulate,
    "write through a transposed view": transposed_view_write,
    "masked_fill_ then relu_": masked_in_place,
    "an alias taken before an in-place op": in_place_then_read_old_alias,
    "narrow(...).copy_": narrow_copy,
    "index_add_ (repeated indices)": index_add,
    "clamp_, sub_, div_": clamp_in_place,
}


class Wrap(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], object]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> object:
        return self.fn(x)


def cases() -> Iterator[Case]:
    for name, case in CASES.items():
        torch.manual_seed(0)
        model = (case if isinstance(case, nn.Module) else Wrap(case)).eval()
        example, x = torch.randn(4, 16), torch.randn(4, 16)  # run on another input than traced
        yield name, model, (example,), (x,)


def main() -> None:
    run_probe(cases(), compile_with(tuning=False), width=44)


if __name__ == "__main__":
    main()
