"""Stop 69: an eighth probe, against eager on inputs other than the traced ones: chains of views
and data movement as models write them (transpose-contiguous-view, chunk then cat in another
order, unfold into patches, flips and rolls, repeat / repeat_interleave / expand, strided and
negative slices, index_select and advanced indexing by constant index tensors, gathers and
scatters, pixel shuffle, im2col by F.unfold).

    .venv/bin/python results/compiler.user_models/views_stop69.py
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from _probe import Case, compile_with, run_probe
from torch import nn

IDX = torch.tensor([3, 0, 2, 2])
ROWS, COLS = torch.tensor([[0, 1], [1, 0]]), torch.tensor([[2, 3], [0, 1]])

CASES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "transpose, contiguous, view": lambda x: x.transpose(1, 2).contiguous().view(2, -1) * 2,
    "chunk, then cat reversed": lambda x: torch.cat(x.chunk(3, dim=-1)[::-1], -1) + 1,
    "unfold into patches": lambda x: x.unfold(2, 2, 2).unfold(3, 2, 2).sum((-1, -2)),
    "flip and roll": lambda x: torch.roll(x.flip(-1), shifts=(1, -2), dims=(1, 3)) - x,
    "repeat and expand": lambda x: (
        x[:, :1].repeat(1, 3, 1, 1) + x.mean(1, keepdim=True).expand_as(x)
    ),
    "repeat_interleave": lambda x: x.repeat_interleave(2, dim=1)[:, ::2] * x,
    "strided slices": lambda x: x[:, ::2, 1::3, ::-1] if False else x[:, ::2, 1::3, ::2] + 0,
    "index_select by a constant": lambda x: x.index_select(3, IDX).relu(),
    "advanced indexing, two index tensors": lambda x: x[:, :, ROWS, COLS] * 3,
    "gather along the last dim": lambda x: x.gather(-1, x.argsort(-1)[..., :2]),
    "scatter_add into zeros": lambda x: torch.zeros(2, 3, 4, 6).scatter_add(
        3, IDX.clamp(max=5).view(1, 1, 1, 4).expand(2, 3, 4, 4), x[..., :4]
    ),
    "pixel shuffle then unshuffle": lambda x: (
        F.pixel_unshuffle(F.pixel_shuffle(x[:, :1].repeat(1, 4, 1, 1), 2), 2) + 0
    ),
    "F.unfold (im2col) then fold back": lambda x: (
        F.fold(F.unfold(x, 2, stride=2), (4, 6), 2, stride=2) - x
    ),
    "narrow, select, unsqueeze, squeeze": lambda x: (
        x.narrow(3, 1, 4).select(1, 2).unsqueeze(1).squeeze(1) * 2
    ),
    "view as complex-free reshape chain": lambda x: (
        x.reshape(2, 3, 24).permute(2, 0, 1).reshape(-1, 3).t().contiguous()
    ),
    "movedim then flatten": lambda x: torch.movedim(x, 1, -1).flatten(1, 2).softmax(-1),
    "tril of a batched product": lambda x: torch.tril(x @ x.transpose(-1, -2)),
    "diagonal and trace-like sum": lambda x: torch.diagonal(x[..., :4], dim1=-2, dim2=-1).sum(-1),
}


class Wrap(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def cases() -> Iterator[Case]:
    for name, fn in CASES.items():
        yield name, Wrap(fn).eval(), (torch.randn(2, 3, 4, 6),), (torch.randn(2, 3, 4, 6),)


if __name__ == "__main__":
    run_probe(cases(), compile_with(tuning=False), width=40)
