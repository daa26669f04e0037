"""Stop 69: a third probe of pass interactions, against eager: the operands that a fused
epilogue, prologue or elementwise group reads besides its main input, in every broadcast
shape (scalar, per-channel, per-row, per-column, spatial, full; constant or run-time input)
after each anchor the fusion and layout passes treat specially (conv2d in NHWC, dense,
batched matmul, softmax, layer norm, an elementwise chain), each also with the result
reduced afterwards.

    .venv/bin/python results/compiler.user_models/broadcasts_stop69.py
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from _probe import Case, compile_with, run_probe
from torch import nn

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


def cases() -> Iterator[Case]:
    total = 0
    for anchor, (_, in_shape, out_shape) in ANCHORS.items():
        for shape_name, shape in operand_shapes(out_shape).items():
            for runtime in (False, True):
                for op in ("add", "mul", "sub", "max"):
                    total += 1
                    torch.manual_seed(total)
                    model = Anchored(anchor, shape, op, runtime).eval()
                    x, y = torch.randn(*in_shape), torch.randn(*shape)
                    example = (torch.randn(*in_shape), torch.randn(*shape))  # traced
                    kind = "input" if runtime else "const"
                    yield f"{anchor:18s} {shape_name:9s} {kind:5s} {op}", model, example, (x, y)


def main() -> None:
    run_probe(cases(), compile_with(tuning=False), width=40, show_ok=False)


if __name__ == "__main__":
    main()
