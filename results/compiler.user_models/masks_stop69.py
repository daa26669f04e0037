"""Stop 69: a sixth probe, against eager on inputs other than the traced ones: masks and
integer inputs as sequence models use them (lengths given as an int64 input, padding masks
built from them, masked means and masked softmax, positions from a cumulative sum, one-hot
products, gathers by an argmax, token ids through an embedding).

    .venv/bin/python results/compiler.user_models/masks_stop69.py
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from _probe import Case, compile_with, run_probe
from torch import nn

B, L, D = 3, 7, 8


def padding_mask(lengths: torch.Tensor) -> torch.Tensor:
    return torch.arange(L)[None, :] < lengths[:, None]


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    mask = padding_mask(lengths).float()
    return (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)


def masked_softmax(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    scores = x @ x.transpose(1, 2) / D**0.5
    scores = scores.masked_fill(~padding_mask(lengths)[:, None, :], float("-inf"))
    return torch.softmax(scores, -1) @ x


def where_padding(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return torch.where(padding_mask(lengths)[..., None], x, torch.zeros_like(x)).amax(1)


def positions(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    mask = padding_mask(lengths).long()
    pos = torch.cumsum(mask, 1) * mask  # 1..len, 0 at padding
    return x + POSITIONS(pos)


def last_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    index = (lengths - 1).clamp(min=0)[:, None, None].expand(B, 1, D)
    return x.gather(1, index).squeeze(1)


def argmax_gather(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    best = x.sum(-1).argmax(1, keepdim=True)
    return x.gather(1, best[..., None].expand(B, 1, D)).squeeze(1) * lengths[:, None]


def one_hot_product(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return F.one_hot(lengths % 4, 4).float() @ WEIGHT + x.mean(1)


def token_ids(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    ids = (lengths[:, None] * 3 + torch.arange(L)[None, :]) % 20
    return TOKENS(ids) * padding_mask(lengths)[..., None] + x


def counts(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    valid = (x > 0) & padding_mask(lengths)[..., None]
    return valid.sum(1).float() / lengths[:, None].clamp(min=1)


torch.manual_seed(0)
POSITIONS = nn.Embedding(L + 1, D)
TOKENS = nn.Embedding(20, D)
WEIGHT = torch.randn(4, D)

CASES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "masked mean over valid steps": masked_mean,
    "masked softmax attention (key padding)": masked_softmax,
    "where(padding) then max over time": where_padding,
    "positions from a cumulative sum, embedded": positions,
    "the last valid step, gathered": last_valid,
    "gather by an argmax, times lengths": argmax_gather,
    "one-hot of lengths times a matrix": one_hot_product,
    "token ids from lengths, embedded and masked": token_ids,
    "count of positive valid steps / length": counts,
}


class Wrap(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn
        self.positions, self.tokens = POSITIONS, TOKENS

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.fn(x, lengths)


def cases() -> Iterator[Case]:
    for name, fn in CASES.items():
        example = (torch.randn(B, L, D), torch.tensor([7, 3, 5]))
        inputs = (torch.randn(B, L, D), torch.tensor([2, 7, 1]))
        yield name, Wrap(fn).eval(), example, inputs


def main() -> None:
    run_probe(cases(), compile_with(tuning=False), width=46)


if __name__ == "__main__":
    main()
