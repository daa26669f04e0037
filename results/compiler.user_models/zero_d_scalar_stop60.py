"""Stop 60: a 0-d tensor (a full reduction) with a Python number, as in ``x.sum() * 0.5``.
At 129f9fc (stop 59) each case failed to compile ("shape inference: node mul_3 (mul) has
shape (1,), recorded ()": ``Graph.add_const`` stored the 0-d constant as 1-d); since stop 60
a 0-d constant stays 0-d. Prints, per case, whether the compiled result equals eager's.

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/zero_d_scalar_stop60.py
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

import provenml.compiler as pc


class Call(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


CASES: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]] = {
    "x.sum() * 0.5 (float)": (lambda x: x.sum() * 0.5, torch.randn(6)),
    "x.mean() - 1.0 (float)": (lambda x: x.mean() - 1.0, torch.randn(6)),
    "ids.sum() * 3 (int)": (lambda i: i.sum() * 3, torch.arange(6)),
    "ids.sum() // 2 (int)": (lambda i: i.sum() // 2, torch.arange(6)),
}

for name, (fn, x) in CASES.items():
    try:
        compiled = pc.compile(Call(fn).eval(), (x,), tuning=False, threads=1)
        print(f"{name}: equal to eager: {torch.equal(compiled(x), fn(x))}")
    except Exception as exc:  # the point of the script: what each version does
        print(f"{name}: {type(exc).__name__}: {exc}")
