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
