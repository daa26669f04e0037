"""Stop 70: an eleventh probe, against eager on inputs other than the traced ones: boolean
masks as attention-mask code builds them (repeated, expanded, concatenated, stacked, gathered,
split, compared with each other, counted, turned into positions) and masks mixed with integer
and float tensors.

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/mask_moves_stop70.py
"""
# ruff: noqa: E501

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from _probe import Case, compile_with, function_cases, run_probe

IDX = torch.tensor([2, 0, 1])
C: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
 "repeat_interleave mask": lambda x: x.repeat_interleave(2, 0).masked_fill((x > 0).repeat_interleave(2, 0), 0.0),
 "repeat mask": lambda x: x.repeat(1, 2, 1).masked_fill((x > 0).repeat(1, 2, 1), 0.0),
 "expand mask": lambda x: x.masked_fill((x[:, :1] > 0).expand_as(x), 0.0),
 "cat masks": lambda x: torch.cat([x, x], -1).masked_fill(torch.cat([x > 0, x < -1], -1), 1.0),
 "stack masks": lambda x: torch.stack([x, x]).masked_fill(torch.stack([x > 0, x < -1]), 1.0),
 "index_select mask": lambda x: x.index_select(1, IDX).masked_fill((x > 0).index_select(1, IDX), 0.0),
 "gather mask": lambda x: x.masked_fill((x > 0).gather(2, x.argsort(2)), 0.0),
 "chunk mask": lambda x: x[..., :2].masked_fill((x > 0).chunk(2, -1)[1], 0.0),
 "logical ops": lambda x: (torch.logical_xor(x > 0, x > 1) | ~(x < -1) & (x != 0)).float(),
 "torch.logical_and/or/not": lambda x: torch.logical_or(torch.logical_and(x > 0, x < 1), torch.logical_not(x > -1)).float(),
 "mask sum / any / all": lambda x: (x > 0).sum(-1).float() + (x > 0).any(-1).float() + (x > -2).all(-1).float(),
 "mask int cumsum (positions)": lambda x: ((x > 0).int().cumsum(-1) * (x > 0).int()).float(),
 "mask long cumsum - 1 as index": lambda x: x.gather(-1, ((x > -9).long().cumsum(-1) - 1)),
 "where mask scalars": lambda x: torch.where(x > 0, 1.0, -1.0),
 "masked_fill broadcast mask": lambda x: x.masked_fill(torch.tensor([True, False, True, False]), -5.0),
 "mask * float": lambda x: (x > 0) * 2.5,
 "mask transpose/flatten": lambda x: x.transpose(1, 2).flatten(1).masked_fill((x > 0).transpose(1, 2).flatten(1), 0.0),
 "mask to float via type_as": lambda x: (x > 0).type_as(x) * x,
 "bool tensor eq": lambda x: ((x > 0) == (x > 1)).float(),
 "mask flip / roll": lambda x: x.masked_fill((x > 0).flip(-1) & (x > 0).roll(1, -1), 9.0),
 "attention mask from lengths": lambda x: x.masked_fill(torch.arange(4)[None, None, :] >= torch.tensor([1, 2, 4])[:, None, None], float("-inf")).softmax(-1),
 "padding mask (ids == 0) unsqueezed": lambda x: x.masked_fill((x.argmax(-1) == 0)[:, None, :], 0.0),
 "mask nonzero count normalise": lambda x: (x * (x > 0)).sum(-1) / (x > 0).sum(-1).clamp(min=1),
 "mask triu diagonal=1 ~": lambda x: x.masked_fill(~torch.ones(4, 4, dtype=torch.bool).tril(), 0.0),
 "cat mask with int64": lambda x: torch.cat([x > 0, (x > 1).long()], -1).float() * 2,
 "cat mask with float": lambda x: torch.cat([x > 0, x], -1) * 2,
 "stack mask with float": lambda x: torch.stack([x > 0, x]).sum(0),
 "mask eq float tensor": lambda x: ((x > 0) == x.round().clamp(0, 1)).float(),
 "mask ne int": lambda x: ((x > 0) != 1).float(),
 "gather from a mask, then sum (int64)": lambda x: (x > 0).gather(2, x.argsort(2)).sum(-1).float(),
 "split mask, or the pieces": lambda x: (lambda a, b: (a | b).float())(*(x > 0).split(2, -1)),
 "unbind mask, and": lambda x: torch.stack([m & (x[:, 0] > -1) for m in (x > 0).unbind(1)], 1).float(),
}


def cases() -> Iterable[Case]:
    return function_cases(C, (3, 4, 4))


if __name__ == "__main__":
    run_probe(cases(), compile_with(tuning=False), width=40)
