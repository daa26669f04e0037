"""Stop 69: a third probe of pass interactions, against eager: the operands that a fused
epilogue, prologue or elementwise group reads besides its main input, in every broadcast
shape (scalar, per-channel, per-row, per-column, spatial, full; constant or run-time input)
after each anchor the fusion and layout passes treat specially (conv2d in NHWC, dense,
batched matmul, softmax, layer norm, an elementwise chain), each also with the result
reduced afterwards.

    .venv/bin/python results/compiler.user_models/broadcasts_stop69.py
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import torch
from torch import nn

import provenml.compiler as pc

torch.manual_seed(0)


class Anchored(nn.Module):
    """``anchor(x)`` combined with ``operand`` (a buffer, or the second input when
    ``runtime``) by ``op``."""

    def __init__(
        self,
        anchor: str,
        operand_shape: tuple[int, ...],
        op: str,
        runtime: bool,
    ) -> None:
        super().__init__()
        self.anchor, self.op, self.runtime = anchor, op, runtime
        self.conv = nn.Conv2d(4, 6, 3, padding=1)
        self.linear = nn.Linear(12, 6)
        self.norm = nn.LayerNorm(6)
        self.register_buffer("operand", torch.rand(operand_shape) + 0.5)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a = ANCHORS[self.anchor][0](self, x)
        b = y if self.runtime else self.operand
        out = {"add": a + b, "mul": a * b, "sub": b - a, "max": torch.maximum(a, b)}[self.op]
        return torch.tanh(out)


#: anchor -> (its computation, input shape, output shape)
ANCHORS: dict[
    str, tuple[Callable[[Anchored, torch.Tensor], torch.Tensor], tuple[int, ...], tuple[int, ...]]
] = {
    "conv2d (NHWC)": (lambda m, x: m.conv(x), (2, 4, 5, 7), (2, 6, 5, 7)),
    "dense": (lambda m, x: m.linear(x), (5, 12), (5, 6)),
    "dense on 3-d": (lambda m, x: m.linear(x), (2, 5, 12), (2, 5, 6)),
    "batched matmul": (lambda m, x: x @ x.transpose(-2, -1)[..., :6], (2, 6, 12), (2, 6, 6)),
    "softmax": (lambda m, x: torch.softmax(x[..., :6] * 2, -1), (2, 5, 12), (2, 5, 6)),
    "layer norm": (lambda m, x: m.norm(x[..., :6] + 1), (2, 5, 12), (2, 5, 6)),
    "elementwise chain": (lambda m, x: torch.sigmoid(x[..., :6]) * 3, (2, 5, 12), (2, 5, 6)),
}


def operand_shapes(out: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Broadcast shapes of ``out``: scalar, last dim, dim 1 (a channel or a row), the last
    two, the leading dim, full."""
    rank = len(out)
    shapes = {
        "scalar": (1,),
        "last dim": (out[-1],),
        "dim 1": (1, out[1]) + (1,) * (rank - 2),
        "last two": out[-2:],
        "leading": (out[0],) + (1,) * (rank - 1),
        "full": out,
    }
    if rank == 4:
        shapes["spatial"] = (1, 1, *out[2:])
    return shapes


def main() -> None:
    print("load average at the start", tuple(round(v, 2) for v in os.getloadavg()))
    start = time.perf_counter()
    wrong = refused = crashed = total = 0
    for anchor, (_, in_shape, out_shape) in ANCHORS.items():
        for shape_name, shape in operand_shapes(out_shape).items():
            for runtime in (False, True):
                for op in ("add", "mul", "sub", "max"):
                    total += 1
                    torch.manual_seed(total)
                    model = Anchored(anchor, shape, op, runtime).eval()
                    x, y = torch.randn(*in_shape), torch.randn(*shape)
                    example = (torch.randn(*in_shape), torch.randn(*shape))  # traced
                    label = (
                        f"{anchor:18s} {shape_name:9s} {'input' if runtime else 'const':5s} {op}"
                    )
                    try:
                        compiled = pc.compile(model, example, threads=2, tuning=False)
                    except pc.UnsupportedOp as exc:
                        refused += 1
                        print(f"{label} refused: {exc}")
                        continue
                    except Exception as exc:  # a crash inside a pass
                        crashed += 1
                        print(f"{label} CRASHED: {type(exc).__name__}: {exc}")
                        continue
                    with torch.no_grad():
                        diff = float((compiled(x, y) - model(x, y)).abs().max())
                    if diff > 1e-4:
                        wrong += 1
                        print(f"{label} max abs difference {diff:.2e} WRONG")
    print(
        f"{wrong} wrong, {crashed} crashed, {refused} refused of {total} (only those listed); "
        f"{time.perf_counter() - start:.0f} s"
    )
    print("load average at the end", tuple(round(v, 2) for v in os.getloadavg()))


if __name__ == "__main__":
    main()
