"""Layout transformation and weight pre-packing (survey Sec. 4.2.3): NHWC for conv/pool chains,
weights packed into the micro-kernels' panels."""

from __future__ import annotations

import numpy as np

from provenml.compiler.ir import ELEMENTWISE, Graph, Node, Value
from provenml.compiler.passes.cleanup import dead_code_elimination
from provenml.compiler.passes.rewrite import is_const

NHWC_OPS = ("conv2d", "max_pool2d", "avg_pool2d", "group_norm")


def pack_dense_weight(wt: np.ndarray, nr: int) -> np.ndarray:
    """Pre-pack a [K, N] weight into [ceil(N/nr), K, nr] column panels (zero padded), so the
    micro-kernel streams one contiguous panel per output tile."""
    k, n = wt.shape
    nb = -(-n // nr)
    padded = np.zeros((k, nb * nr), np.float32)
    padded[:, :n] = wt
    return np.ascontiguousarray(padded.reshape(k, nb, nr).transpose(1, 0, 2))


def pack_conv_weight(w: np.ndarray, nr: int, groups: int = 1) -> np.ndarray:
    """Pre-pack ``[Cout, Cin_g, KH, KW]`` into ``[groups * ceil(Cout_g / nr), KH, KW, Cin_g,
    nr]`` panels: each group's ``Cout_g = Cout / groups`` output channels padded with zeros to
    whole panels of ``nr``, so that no panel straddles two groups (``groups = 1``: a full
    convolution's ``[ceil(Cout / nr), KH, KW, Cin, nr]``)."""
    cout, cin, kh, kw = w.shape
    per_out = cout // groups
    nb = -(-per_out // nr)
    padded = np.zeros((groups, nb * nr, cin, kh, kw), np.float32)
    padded[:, :per_out] = w.reshape(groups, per_out, cin, kh, kw)
    panels = padded.reshape(groups * nb, nr, cin, kh, kw)
    return np.ascontiguousarray(panels.transpose(0, 3, 4, 2, 1))


def transform_layout(g: Graph, nr: int = 16) -> Graph:
    """Layout transformation (survey Sec. 4.2.3): convolutions and group norms run
    channels-last (NHWC) so the channel loop is contiguous and vectorizes, and so do pools
    whose input is channels-last already (:func:`_stays_in_rows`); elementwise ops, per-channel
    constants and spatial means follow the layout; ``layout_transform`` nodes are inserted only
    at the boundaries. Weights are pre-packed for the micro-kernels: dense ``[K,N]`` into
    ``[N/nr, K, nr]`` panels, convolutions into ``[Cout/nr, KH, KW, Cin, nr]``, depthwise into
    ``[KH, KW, C]``. ``nr`` (or a node's tuned ``schedule["nr"]``) is the panel width."""
    out = g.clone()
    new_nodes: list[Node] = []
    nhwc_of: dict[str, str] = {}  # row value -> its NHWC copy

    def as_nhwc(name: str) -> str:
        v = out.values[name]
        if v.layout == "NHWC":
            return name
        if name in nhwc_of:
            return nhwc_of[name]
        t = layout_change(out, name, "NHWC")
        new_nodes.append(t)
        nhwc_of[name] = t.name
        return t.name

    row_of: dict[str, str] = {}

    def as_row(name: str) -> str:
        v = out.values[name]
        if v.layout == "row":
            return name
        if name in row_of:
            return row_of[name]
        t = layout_change(out, name, "row")
        new_nodes.append(t)
        row_of[name] = t.name
        return t.name

    for n in out.nodes:
        ins = list(n.inputs)
        vals = [out.values[i] for i in ins]
        res = out.values[n.name]
        if n.op == "dense" and is_const(out, ins[1]) and not n.attrs.get("packed"):
            width = int(n.attrs.get("schedule", {}).get("nr", nr))
            packed = out.add_const(pack_dense_weight(out.consts[ins[1]], width), "wp")
            new_nodes.append(
                Node(
                    "dense",
                    n.name,
                    [as_row(ins[0]), packed, *ins[2:]],
                    {**n.attrs, "packed": width},
                    n.source,
                )
            )
            continue
        if n.op in NHWC_OPS and len(res.shape) == 4 and not _stays_in_rows(n, vals[0]):
            attrs = dict(n.attrs)
            new_ins = [as_nhwc(ins[0]), *ins[1:]]
            if n.op == "conv2d":
                if not is_const(out, ins[1]):
                    new_nodes.append(
                        Node(n.op, n.name, [as_row(i) for i in ins], n.attrs, n.source)
                    )
                    continue
                w = out.consts[ins[1]]
                attrs["kernel"] = (int(w.shape[2]), int(w.shape[3]))
                attrs["cout"] = int(w.shape[0])
                if n.attrs["depthwise"]:
                    new_ins[1] = out.add_const(
                        np.ascontiguousarray(w[:, 0].transpose(1, 2, 0)), "wdw"
                    )
                    attrs["wlayout"] = "dw"
                else:
                    width = int(n.attrs.get("schedule", {}).get("nr", nr))
                    new_ins[1] = out.add_const(
                        pack_conv_weight(w, width, int(n.attrs.get("groups", 1))), "wp"
                    )
                    attrs["wlayout"] = "packed"
                    attrs["packed"] = width
            out.values[n.name] = Value(n.name, res.shape, res.dtype, "NHWC")
            new_nodes.append(Node(n.op, n.name, new_ins, attrs, n.source))
            continue
        if n.op in ELEMENTWISE and len(res.shape) == 4 and any(v.layout == "NHWC" for v in vals):
            new_ins = []
            ok = True
            for i, v in zip(ins, vals, strict=True):
                if v.layout == "NHWC" or (v.shape == res.shape and i not in out.consts):
                    new_ins.append(as_nhwc(i))
                elif i in out.consts:
                    c = np.broadcast_to(
                        out.consts[i], np.broadcast_shapes(out.consts[i].shape, (1, 1, 1, 1))
                    )
                    if c.shape[0] != 1 and c.shape[0] != res.shape[0]:
                        ok = False
                    new_ins.append(
                        out.add_const(np.ascontiguousarray(c.transpose(0, 2, 3, 1)), "cl")
                    )
                else:
                    ok = False
            if ok:
                # NHWC consts are stored physically; record them as logical-shaped NHWC values
                for _j, i in enumerate(new_ins):
                    if (
                        i in out.consts
                        and out.values[i].layout == "row"
                        and out.consts[i].ndim == 4
                        and i not in ins
                    ):
                        p = out.consts[i].shape
                        out.values[i] = Value(i, (p[0], p[3], p[1], p[2]), "float32", "NHWC")
                out.values[n.name] = Value(n.name, res.shape, res.dtype, "NHWC")
                new_nodes.append(Node(n.op, n.name, new_ins, n.attrs, n.source))
                continue
        if (
            n.op in ("mean", "sum", "amax", "amin")
            and vals
            and vals[0].layout == "NHWC"
            and tuple(n.attrs["dims"]) == (2, 3)
        ):
            if n.attrs["keepdim"]:
                out.values[n.name] = Value(n.name, res.shape, res.dtype, "NHWC")
            new_nodes.append(Node(n.op, n.name, ins, n.attrs, n.source))
            continue
        new_nodes.append(Node(n.op, n.name, [as_row(i) for i in ins], n.attrs, n.source))
    out.nodes = new_nodes
    out.outputs = [
        o if out.values[o].layout == "row" else output_in_row_layout(out, o) for o in out.outputs
    ]
    return dead_code_elimination(out)


def _stays_in_rows(n: Node, x: Value) -> bool:
    """Whether a pool keeps the row (NCHW) layout: when its input is not channels-last already
    (stop 69). A pool reads each input once, so two layout transforms around it (each a full
    read and write of a tensor) cost more than its channel-vectorized NHWC loop saves; the row
    kernel is vectorized along the output row. A pool after a convolution (or an elementwise
    op that follows one) runs NHWC as before."""
    return n.op in ("max_pool2d", "avg_pool2d") and x.layout != "NHWC"


def layout_change(g: Graph, name: str, to: str) -> Node:
    """A layout change of ``name``; a free view (reshape) when H*W == 1 or C == 1, where both
    layouts have the same memory order."""
    v = g.values[name]
    stem = "to_nhwc" if to == "NHWC" else "to_row"
    _, c, h, w = v.shape
    if h * w == 1 or c == 1:
        t = Node("reshape", g.fresh(stem), [name], {"shape": v.shape})
    else:
        t = Node("layout_transform", g.fresh(stem), [name], {"to": to})
    g.values[t.name] = Value(t.name, v.shape, v.dtype, to)
    return t


def output_in_row_layout(g: Graph, name: str) -> str:
    t = layout_change(g, name, "row")
    g.nodes.append(t)
    return t.name
