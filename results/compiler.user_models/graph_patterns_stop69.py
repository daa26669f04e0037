"""Stop 69: a second probe of pass interactions, against eager: graph shapes that the fusion
and memory-planning passes must get right although every op in them is supported alone: an
intermediate a fused group would swallow that is also returned, the same value returned twice
or the input returned, in-place reuse next to transposed, sliced and reshaped reads of the
same buffer, epilogues whose operand is a run-time input, a value read by two fused groups.

    .venv/bin/python results/compiler.user_models/graph_patterns_stop69.py [--tuning]
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from _probe import Case, compile_with, run_probe
from torch import nn

Pattern = tuple[Callable[..., object], tuple[tuple[int, ...], ...]]

torch.manual_seed(0)
W = torch.randn(16, 16) / 4
B = torch.randn(16)


class Fn(nn.Module):
    def __init__(self, fn: Callable[..., object]) -> None:
        super().__init__()
        self.fn = fn
        self.linear = nn.Linear(16, 16)
        self.other = nn.Linear(16, 16)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.norm = nn.LayerNorm(16)

    def forward(self, *xs: torch.Tensor) -> object:
        return self.fn(self, *xs)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
    scores = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return scores @ v, scores


CASES: dict[str, Pattern] = {
    "dense, epilogue, pre-activation returned": (
        lambda m, x: (F.gelu(m.linear(x)), m.linear(x)),
        ((4, 16),),
    ),
    "dense + run-time bias input": (lambda m, x, b: x @ W + b, ((4, 16), (16,))),
    "dense read by two epilogues": (
        lambda m, x: torch.relu(m.linear(x)) + torch.sigmoid(m.linear(x)) * 2,
        ((4, 16),),
    ),
    "a value and its transpose added": (lambda m, x: (x @ W) + (x @ W).t(), ((16, 16),)),
    "relu then its transpose": (lambda m, x: torch.relu(x) * torch.relu(x).t(), ((16, 16),)),
    "overlapping slices": (lambda m, x: x[:, :10] * 2 + x[:, 3:13], ((4, 16),)),
    "elementwise into a reshaped read": (
        lambda m, x: torch.relu(x).reshape(8, 8) + x.reshape(8, 8).t(),
        ((4, 16),),
    ),
    "the input returned": (lambda m, x: (x, x * 2), ((4, 16),)),
    "one value returned twice": (lambda m, x: (torch.tanh(x), torch.tanh(x)), ((4, 16),)),
    "a reshape of the input returned": (lambda m, x: (x.reshape(8, 8), x + 1), ((4, 16),)),
    "softmax, its input returned": (
        lambda m, x: (torch.softmax(x * 3, -1), x * 3),
        ((4, 16),),
    ),
    "layer norm read twice": (lambda m, x: m.norm(x) * m.norm(x).sum(-1, keepdim=True), ((4, 16),)),
    "attention, the weights returned": (
        lambda m, q, k, v: attention(q, k, v),
        ((2, 8, 16), (2, 8, 16), (2, 8, 16)),
    ),
    "attention, output plus its query": (
        lambda m, q, k, v: attention(q, k, v)[0] + q,
        ((2, 8, 16), (2, 8, 16), (2, 8, 16)),
    ),
    "attention on one tensor (self)": (
        lambda m, x: attention(x, x, x)[0] * 2,
        ((2, 8, 16),),
    ),
    "conv, relu, residual, pre-activation returned": (
        lambda m, x: (torch.relu(m.conv(x)) + x, m.conv(x)),
        ((1, 4, 9, 9),),
    ),
    "conv output read channels-last and in rows": (
        lambda m, x: (m.conv(x).mean((2, 3)), m.conv(x).flatten(1) @ torch.ones(324, 2)),
        ((1, 4, 9, 9),),
    ),
    "cat of one tensor with itself, then in place": (
        lambda m, x: torch.relu(torch.cat([x, x], 1)) - torch.cat([x, x], 1),
        ((4, 16),),
    ),
    "mean subtracted by hand, mean returned": (
        lambda m, x: (x - x.mean(-1, keepdim=True), x.mean(-1, keepdim=True)),
        ((4, 16),),
    ),
    "a chain with intermediates returned": (
        lambda m, x: (lambda a: (a, torch.exp(a), torch.exp(a) - a))(torch.sin(x)),
        ((4, 16),),
    ),
    "two linears on one input, summed": (lambda m, x: m.linear(x) + m.other(x), ((4, 16),)),
    "linear of its own output": (lambda m, x: m.linear(m.linear(x)) - m.linear(x), ((4, 16),)),
    "broadcast add of a column and a row": (
        lambda m, x, y: torch.relu(x[:, :1] + y[:1, :]) * x,
        ((16, 16), (16, 16)),
    ),
}


#: ``--tuning``: compile as ``pc.compile``'s default does (the auto-tuner picks the schedules)
TUNING = "--tuning" in sys.argv


def cases() -> Iterator[Case]:
    for name, (fn, shapes) in CASES.items():
        torch.manual_seed(1)
        example = tuple(torch.randn(*s) for s in shapes)
        xs = tuple(torch.randn(*s) for s in shapes)  # run on other inputs than traced
        yield name, Fn(fn).eval(), example, xs


def main() -> None:
    # two calls on the same inputs: buffers reused across calls
    run_probe(cases(), compile_with(tuning=TUNING), width=48, calls=2, header=f"tuning {TUNING}")


if __name__ == "__main__":
    main()
