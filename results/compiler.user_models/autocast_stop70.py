"""Stop 70: ``torch.autocast`` inside a model's forward (a known gap). torch.fx runs the context
manager while tracing and records nothing, so the compiled region computes in float32: printed,
the largest difference of the compiled model and of a float32 run (autocast off) from eager's
bfloat16 result, and between the compiled and the float32 run.

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/autocast_stop70.py
"""

from __future__ import annotations

import torch
from torch import nn

import provenml.compiler as pc


class AutocastLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 64)
        self.autocast = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            y = self.linear(x)
        return y.float() * 2


def main() -> None:
    torch.manual_seed(0)
    model = AutocastLinear().eval()
    example, x = torch.randn(2, 64), torch.randn(2, 64)
    compiled = pc.compile(model, (example,), threads=1, tuning=False)
    with torch.no_grad():
        eager = model(x)
        model.autocast = False
        plain = model(x)
    got = compiled(x)
    print(f"compiled - eager (bfloat16 region): {float((got - eager).abs().max()):.3e}")
    print(f"float32 run - eager:                {float((plain - eager).abs().max()):.3e}")
    print(f"compiled - float32 run:             {float((got - plain).abs().max()):.3e}")


if __name__ == "__main__":
    main()
