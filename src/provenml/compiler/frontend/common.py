"""What every frontend shares: the unsupported-op error."""

from __future__ import annotations

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
