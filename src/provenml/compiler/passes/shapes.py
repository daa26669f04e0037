"""Static shape inference (survey Sec. 4.2.3, dataflow level): every node's logical shape from
its inputs' shapes, checked against the shapes the frontend recorded."""

from __future__ import annotations

import numpy as np

from provenml.compiler.ir import ELEMENTWISE, ELEMENTWISE_BINARY, SCANS, Graph, Node, Value
from provenml.errors import ProvenmlError


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError as exc:
        raise ProvenmlError(f"shapes {a} and {b} do not broadcast") from exc


def shape_of(n: Node, values: dict[str, Value]) -> tuple[int, ...]:
    """The logical result shape of a node from its input shapes (static shape inference)."""
    s = [values[i].shape for i in n.inputs]
    op, a = n.op, n.attrs
    if op == "fused":
        local = dict(values)
        for inner in a["body"]:
            local[inner.name] = Value(inner.name, shape_of(inner, local))
        return local[n.name].shape
    if op in ELEMENTWISE_BINARY:
        return _broadcast(s[0], s[1])
    if (
        op in ELEMENTWISE
        or op in SCANS
        or op
        in (
            "layer_norm",
            "softmax",
            "batch_norm",
            "group_norm",
            "layout_transform",
        )
    ):
        return s[0]
    if op == "linear":
        return (*s[0][:-1], s[1][0])
    if op == "dense":
        return (*s[0][:-1], a["n"])
    if op == "matmul":
        a_s, b_s = s[0], s[1]
        if len(a_s) < 2 or len(b_s) < 2:  # the frontends reshape 1-D operands first
            raise ProvenmlError(f"matmul {n.name}: operands {a_s} @ {b_s} are not both 2-D+")
        if a.get("trans_b"):
            b_s = (*b_s[:-2], b_s[-1], b_s[-2])
        if a_s[-1] != b_s[-2]:
            raise ProvenmlError(f"matmul {n.name}: inner sizes {a_s} @ {b_s} differ")
        return (*_broadcast(a_s[:-2], b_s[:-2]), a_s[-2], b_s[-1])
    if op == "conv2d":
        nb, cin, h, w = s[0]
        cout = a.get("cout", s[1][0])
        groups = int(a.get("groups", 1))
        if groups > 1 and "wlayout" not in a and (cin % groups or cout % groups):
            raise ProvenmlError(
                f"conv2d {n.name}: {cin} input and {cout} output channels are not "
                f"divisible by {groups} groups"
            )
        kh, kw = a.get("kernel", s[1][2:4])
        (sh, sw), (ph, pw) = a["stride"], a["padding"]
        return (nb, cout, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
    if op in ("max_pool2d", "avg_pool2d"):
        nb, c, h, w = s[0]
        (kh, kw), (sh, sw), (ph, pw) = a["kernel"], a["stride"], a["padding"]
        return (nb, c, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
    if op in ("argmax", "argmin"):
        dim = a["dim"]
        if a["keepdim"]:
            return tuple(1 if d == dim else x for d, x in enumerate(s[0]))
        return tuple(x for d, x in enumerate(s[0]) if d != dim)
    if op in ("mean", "sum", "amax", "amin"):
        if a["keepdim"]:
            return tuple(1 if d in a["dims"] else x for d, x in enumerate(s[0]))
        return tuple(x for d, x in enumerate(s[0]) if d not in a["dims"])
    if op == "reshape":
        if int(np.prod(a["shape"])) != int(np.prod(s[0])):
            raise ProvenmlError(f"reshape {n.name}: {s[0]} -> {a['shape']} changes the size")
        return tuple(a["shape"])
    if op == "permute":
        return tuple(s[0][p] for p in a["perm"])
    if op == "slice":
        out = list(s[0])
        out[a["dim"]] = len(range(a["start"], a["stop"], a["step"]))
        return tuple(out)
    if op == "cat":
        if any(len(x) != len(s[0]) or len(x) <= a["dim"] for x in s):
            raise ProvenmlError(f"cat {n.name}: pieces {s} differ in rank or lack dim {a['dim']}")
        out = list(s[0])
        out[a["dim"]] = sum(x[a["dim"]] for x in s)
        return tuple(out)
    if op == "embedding":
        return s[1] + (s[0][1],)
    if op in ("topk", "topk_indices"):
        out = list(s[0])
        out[a["dim"]] = int(a["k"])
        return tuple(out)
    if op == "scatter":  # base (R, W), rows (M,), src (M, W)
        if len(s[0]) != 2 or s[2] != (s[1][0], s[0][1]) or len(s[1]) != 1:
            raise ProvenmlError(f"scatter {n.name}: base {s[0]}, rows {s[1]}, src {s[2]}")
        return s[0]
    raise ProvenmlError(f"shape inference: unknown op {op} at node {n.name}")


def infer_shapes(g: Graph) -> Graph:
    """Recompute every node's shape from the graph inputs and check it against the recorded one."""
    out = g.clone()
    for n in out.nodes:
        shape = shape_of(n, out.values)
        old = out.values.get(n.name)
        if old is not None and old.shape != shape:
            raise ProvenmlError(
                f"shape inference: node {n.name} ({n.op}) has shape {shape}, recorded {old.shape}"
            )
        layout = old.layout if old is not None else "row"
        dtype = old.dtype if old is not None else "float32"
        out.values[n.name] = Value(n.name, shape, dtype, layout)
    return out
