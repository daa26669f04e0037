"""Stop 70: the accuracy of reductions over long runs, compiled and eager, against float64.

Rows of 2^16, 2^20 and 2^23 values from U(1, 2); each reduction compiled (``tuning=False``, two
threads) and run on the traced input; printed: the largest error divided by the largest
magnitude of the float64 result, for eager PyTorch and for the compiled model.

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/long_reductions_stop70.py
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _probe import Apply

import provenml.compiler as pc

REDUCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sum of everything": lambda x: x.sum(),
    "sum of each row": lambda x: x.sum(-1),
    "var of each row": lambda x: x.var(-1),
    "softmax (first 8)": lambda x: x.softmax(-1)[..., :8],
    "layer norm (first 8)": lambda x: F.layer_norm(x, x.shape[-1:])[..., :8],
    "logsumexp": lambda x: torch.logsumexp(x, -1),
    "2-norm of each row": lambda x: x.norm(dim=-1),
}


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.double() - want).abs().max() / want.abs().max())


def main() -> None:
    print("load average at the start", tuple(round(v, 2) for v in os.getloadavg()))
    generator = torch.Generator().manual_seed(0)
    for length in (2**16, 2**20, 2**23):
        x = torch.rand(2, length, generator=generator) + 1.0
        for name, fn in REDUCTIONS.items():
            model = Apply(fn).eval()
            compiled = pc.compile(model, (x,), tuning=False, threads=2)
            want = fn(x.double())
            eager, ours = relative_error(fn(x), want), relative_error(compiled(x), want)
            print(f"{length:>9} {name:22s} eager {eager:.1e}  compiled {ours:.1e}")
    print("load average at the end", tuple(round(v, 2) for v in os.getloadavg()))


if __name__ == "__main__":
    main()
