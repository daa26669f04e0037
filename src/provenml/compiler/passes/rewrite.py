"""Small graph-rewriting helpers shared by the passes."""

from __future__ import annotations

import numpy as np

from provenml.compiler.ir import Graph


def replace_uses(g: Graph, old: str, new: str) -> None:
    for n in g.nodes:
        n.inputs = [new if i == old else i for i in n.inputs]
        for inner in n.attrs.get("body", []):
            inner.inputs = [new if i == old else i for i in inner.inputs]
    g.outputs = [new if o == old else o for o in g.outputs]


def is_const(g: Graph, name: str) -> bool:
    return name in g.consts


def _const_value(g: Graph, name: str) -> np.ndarray | None:
    return g.consts.get(name)


def is_scalar_const(g: Graph, name: str, value: float) -> bool:
    c = g.consts.get(name)
    return c is not None and c.dtype.kind == "f" and c.size >= 1 and bool(np.all(c == value))
