"""Algebraic simplification (survey Sec. 4.2.1)."""

from __future__ import annotations

import numpy as np

from provenml.compiler.ir import Graph, Node
from provenml.compiler.passes.cleanup import dead_code_elimination
from provenml.compiler.passes.rewrite import is_const, is_scalar_const, replace_uses


def simplify(g: Graph) -> Graph:
    """Algebraic simplification (survey Sec. 4.2.1): identities ``x+0, x-0, x*1, x/1, identity``
    disappear; ``x / c`` becomes ``x * (1/c)``; reshape-of-reshape and permute-of-permute
    collapse; no-op reshapes/permutes vanish; ``a @ transpose(b)`` becomes a matmul that reads
    ``b`` transposed; back-to-back inverse layout transforms cancel."""
    out = g.clone()
    producers = {n.name: n for n in out.nodes}
    keep: list[Node] = []
    for n in out.nodes:
        x = n.inputs[0] if n.inputs else ""
        same_shape = (
            bool(n.inputs)
            and out.values[x].shape == out.values[n.name].shape
            and out.values[x].layout == out.values[n.name].layout
        )
        alias_to: str | None = None
        if (
            n.op == "identity"
            or (n.op in ("add", "sub") and same_shape and is_scalar_const(out, n.inputs[1], 0.0))
            or (n.op in ("mul", "div") and same_shape and is_scalar_const(out, n.inputs[1], 1.0))
        ):
            alias_to = x
        elif (
            n.op == "mul"
            and is_scalar_const(out, x, 1.0)
            and out.values[n.inputs[1]].shape == out.values[n.name].shape
        ):
            alias_to = n.inputs[1]
        elif (n.op == "reshape" and same_shape) or (
            n.op == "permute" and tuple(n.attrs["perm"]) == tuple(range(len(n.attrs["perm"])))
        ):
            alias_to = x
        elif (
            n.op == "layout_transform" and x in producers and producers[x].op == "layout_transform"
        ):
            src = producers[x].inputs[0]
            if out.values[src].layout == out.values[n.name].layout:
                alias_to = src
        if alias_to is not None and n.name not in out.outputs:
            replace_uses(out, n.name, alias_to)
            continue
        if n.op == "div" and is_const(out, n.inputs[1]):
            c = out.consts[n.inputs[1]]
            n = Node(
                "mul",
                n.name,
                [x, out.add_const((1.0 / c).astype(np.float32), "recip")],
                {},
                n.source,
            )
        if n.op == "reshape" and x in producers and producers[x].op == "reshape":
            n = Node("reshape", n.name, [producers[x].inputs[0]], dict(n.attrs), n.source)
        if n.op == "permute" and x in producers and producers[x].op == "permute":
            inner = producers[x].attrs["perm"]
            n = Node(
                "permute",
                n.name,
                [producers[x].inputs[0]],
                {"perm": tuple(inner[p] for p in n.attrs["perm"])},
                n.source,
            )
            if n.attrs["perm"] == tuple(range(len(inner))) and n.name not in out.outputs:
                replace_uses(out, n.name, n.inputs[0])
                continue
        if n.op == "matmul" and not n.attrs.get("trans_b") and n.inputs[1] in producers:
            p = producers[n.inputs[1]]
            r = len(out.values[p.name].shape)
            if (
                p.op == "permute"
                and r >= 2
                and tuple(p.attrs["perm"]) == (*tuple(range(r - 2)), r - 1, r - 2)
            ):
                n = Node("matmul", n.name, [x, p.inputs[0]], {"trans_b": True}, n.source)
        producers[n.name] = n
        keep.append(n)
    out.nodes = keep
    return dead_code_elimination(out)
