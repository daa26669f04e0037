"""What every frontend shares: the unsupported-op error."""

from __future__ import annotations

from collections.abc import Sequence

from provenml.errors import ProvenmlError


class UnsupportedOp(ProvenmlError):
    """An op the compiler cannot lower; ``op`` and ``node`` name it."""

    def __init__(self, op: str, node: str, why: str = "") -> None:
        self.op = op
        self.node = node
        extra = f" ({why})" if why else ""
        super().__init__(f"provenml.compiler: unsupported op '{op}' at node '{node}'{extra}")


# integer tensors: ops that may move them, and the operand positions that may be integers
INTEGER_OPS = ("reshape", "permute", "slice", "cat")
INTEGER_OPERANDS = {"embedding": [1]}


def check_integer_operands(op: str, dtypes: list[str], node: str) -> None:
    """Integer tensors may only index an embedding or be moved (the kernels compute in
    float32): anything else is refused rather than silently computed in floats."""
    ints = [k for k, d in enumerate(dtypes) if d == "int64"]
    moves_integers = op in INTEGER_OPS and len(ints) == len(dtypes)
    if ints and not moves_integers and ints != INTEGER_OPERANDS.get(op, []):
        raise UnsupportedOp(
            op,
            node,
            "integer tensor operand: integer tensors may only index an embedding or be "
            "reshaped, permuted or sliced (eager PyTorch raises or keeps integers here, "
            "the compiler computes in float32)",
        )


def constant_pad_steps(
    shape: Sequence[int], dim: int, before: int, after: int
) -> tuple[tuple[int, int] | None, list[tuple[int, ...] | None]]:
    """How both frontends pad ``dim`` of a tensor of ``shape`` by ``before`` / ``after``
    (negative values crop): the crop first, ``(start, stop)`` of a slice or ``None``; then the
    pieces to concatenate along ``dim``, in order: ``None`` for the (cropped) tensor, else the
    shape of a constant block of the padding value."""
    shape = list(shape)
    crop = None
    if before < 0 or after < 0:
        crop = (max(0, -before), shape[dim] - max(0, -after))
        shape[dim] = crop[1] - crop[0]
    pieces: list[tuple[int, ...] | None] = []
    for size in (max(0, before), None, max(0, after)):
        if size is None:
            pieces.append(None)
        elif size:
            pieces.append((*shape[:dim], size, *shape[dim + 1 :]))
    return crop, pieces
