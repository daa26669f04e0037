"""Stop 70: a ninth probe, against eager on inputs other than the traced ones: the calls models
make on the way (tensors created in forward: position ids, causal masks, eye, linspace;
promotion of masks and integers; the reductions, including std / var corrections, norms,
topk / sort / median, cumulative ones; loops over unbind and splits; einsum; the elementwise
maths of losses and heads: logit, xlogy, signbit, copysign, hypot, rounding to decimals).
A NaN the case produces on purpose is mapped to 99 so that the difference is finite.

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/calls_stop70.py [--backend | --onnx]
"""
# ruff: noqa: E501

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from _probe import (
    Case,
    compile_backend,
    compile_onnx_export,
    compile_with,
    function_cases,
    run_probe,
)

B = torch.tensor([1.0, -2.0, 0.5, 3.0])
C: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
 # creation in forward
 "arange position ids + embedding-like add": lambda x: x + torch.arange(x.shape[-1], dtype=x.dtype),
 "arange int then float": lambda x: x * torch.arange(x.size(-1)).float(),
 "ones_like / zeros_like / full_like": lambda x: x + torch.ones_like(x) * 2 - torch.full_like(x, 0.5) + torch.zeros_like(x),
 "new_zeros / new_ones / new_full": lambda x: x.new_zeros(x.shape).add(x) + x.new_ones(x.shape[-1]) + x.new_full((x.shape[-1],), 3.0),
 "torch.tensor constant in forward": lambda x: x * torch.tensor([1.0, 2.0, 3.0, 4.0]),
 "causal mask built in forward": lambda x: x.masked_fill(torch.triu(torch.ones(4, 4, dtype=torch.bool), 1), float("-inf")).softmax(-1),
 "eye": lambda x: x + torch.eye(4),
 "linspace": lambda x: x * torch.linspace(0, 1, 4),
 "empty then fill_": lambda x: x + torch.empty(4).fill_(2.0),
 # promotion
 "bool mask to float arithmetic": lambda x: (x > 0) * x + (x < 0).float(),
 "bool sum (int64) then float div": lambda x: (x > 0).sum(-1) / x.shape[-1],
 "int64 times float scalar": lambda x: (x > 0).long() * 0.5 + x,
 "int div true division": lambda x: torch.arange(4) / 3 + x,
 "comparison with python float": lambda x: torch.where(x >= 0.25, x, -x),
 "float mean of bool cast": lambda x: (x > 0).float().mean(-1, keepdim=True) * x,
 "pow with int exponent tensor": lambda x: x.abs() ** torch.tensor(2),
 "scalar tensor 0-d python op": lambda x: x * torch.tensor(3.0) + torch.tensor(1),
 # reductions
 "std unbiased / var correction=0": lambda x: x.std(-1, keepdim=True) + x.var(-1, keepdim=True, correction=0),
 "logsumexp over two dims": lambda x: torch.logsumexp(x, dim=(-1, -2)),
 "norm p=2 and p=1, dim": lambda x: x.norm(p=2, dim=-1) + x.norm(p=1, dim=-1),
 "F.normalize": lambda x: F.normalize(x, dim=-1),
 "amax keepdim minus": lambda x: x - x.amax(dim=(-1,), keepdim=True),
 "cumprod": lambda x: torch.cumprod(x, -1),
 "prod": lambda x: x.prod(-1),
 "topk values": lambda x: x.topk(2, dim=-1).values,
 "sort values": lambda x: x.sort(-1).values,
 "max with indices": lambda x: x.max(-1)[0] + x.max(-1)[1].float(),
 "median": lambda x: x.median(-1).values,
 "all / any": lambda x: (x > -5).all(-1).float() + (x > 1).any(-1).float(),
 "count_nonzero": lambda x: torch.count_nonzero(x > 0, dim=-1).float(),
 "mean over all, dim=None": lambda x: x - x.mean(),
 "sum with dtype": lambda x: x.sum(-1, dtype=torch.float32),
 "nansum / nanmean": lambda x: torch.nansum(x, -1) + torch.nanmean(x, -1),
 "aminmax": lambda x: torch.aminmax(x, dim=-1).min,
 "cummax": lambda x: torch.cummax(x, -1).values,
 # shape control flow
 "loop over unbind": lambda x: sum(t * i for i, t in enumerate(x.unbind(1))),
 "if on shape": lambda x: x * 2 if x.shape[-1] > 3 else x,
 "split list sizes": lambda x: torch.cat([t.relu() for t in x.split([1, 3], dim=-1)], -1),
 "einsum bij,bkj->bik": lambda x: torch.einsum("bij,bkj->bik", x, x.flip(0)),
 "einsum trace-like ii->i": lambda x: torch.einsum("...ii->...i", x),
 "einsum outer": lambda x: torch.einsum("i,j->ij", x[0, 0], x[0, 1]),
 "bmm + baddbmm": lambda x: torch.baddbmm(x, x, x.flip(0), beta=0.5, alpha=2.0),
 "addcmul / addcdiv / lerp": lambda x: torch.addcmul(x, x, x, value=0.5) + torch.lerp(x, x * 2, 0.3) + torch.addcdiv(x, x, x.abs() + 1),
 "clamp with tensor bounds": lambda x: x.clamp(min=-B.abs(), max=B.abs()),
 "hypot / atan2": lambda x: torch.hypot(x, x * 2) + torch.atan2(x, x + 3),
 "softplus beta / logsigmoid": lambda x: F.softplus(x, beta=2.0) + F.logsigmoid(x),
 "cosine_similarity": lambda x: F.cosine_similarity(x[0], x[1], dim=-1),
 "pairwise cdist": lambda x: torch.cdist(x[0], x[1]),
 "log_softmax + nll-like gather": lambda x: F.log_softmax(x, -1).gather(-1, torch.tensor([[[0], [1], [2], [3]]]).expand(3, 4, 1)),
 "outer via unsqueeze": lambda x: x.unsqueeze(-1) * x.unsqueeze(-2),
 "float64 internal cast back": lambda x: (x.double() * 2).float(),
 "masked_fill with scalar tensor": lambda x: x.masked_fill(x < 0, torch.tensor(0.0)),
 "flip of transposed input": lambda x: x.transpose(-1, -2).flip(0),
 "round / floor / frac": lambda x: x.round() + x.floor() + x.frac() + torch.round(x, decimals=1),
 "sign bits: copysign, signbit": lambda x: torch.copysign(x, -x) + torch.signbit(x).float(),
 "clamp_min / clamp_max methods": lambda x: x.clamp_min(0.1).clamp_max(0.9),
 "square / rsqrt / reciprocal": lambda x: x.square() + (x.abs() + 1).rsqrt() + (x.abs() + 1).reciprocal(),
 "logit / xlogy": lambda x: torch.logit(x.sigmoid(), eps=1e-6) + torch.xlogy(x.abs(), x.abs() + 1),
 "logit without eps": lambda x: torch.logit(x.sigmoid()),
 "xlogy: zeros and NaN (NaN as 99)": lambda x: torch.xlogy(x.relu(), torch.where(x > 1, torch.tensor(float("nan")), x.abs())).nan_to_num(99.0),
 "signbit of -0.0": lambda x: torch.signbit(x * 0.0).float() + torch.signbit(x).float(),
 "aminmax dim keepdim": lambda x: torch.aminmax(x, dim=1, keepdim=True).max - x.aminmax(dim=1, keepdim=True)[0],
 "aminmax whole": lambda x: x - torch.aminmax(x).min,
 "round decimals -1": lambda x: torch.round(x * 100, decimals=-1),
 "clamp_min / clamp_max tensor": lambda x: torch.clamp_min(x, x.flip(0)).clamp_max(torch.zeros(4)),
}


def cases() -> Iterable[Case]:
    return function_cases(C, (3, 4, 4))


if __name__ == "__main__":
    backend, onnx = "--backend" in sys.argv, "--onnx" in sys.argv
    compile_case = compile_with(tuning=False)
    compile_case = compile_backend if backend else compile_onnx_export if onnx else compile_case
    run_probe(cases(), compile_case, width=44, header=f"backend {backend} onnx {onnx}")
