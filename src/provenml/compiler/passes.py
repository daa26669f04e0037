"""Graph passes (survey Sec. 4.2, "frontend optimizations"): each is a function IR -> IR that
returns a new graph and leaves its input unchanged, so the IR can be printed before and after.

Node-level: :func:`simplify` (algebraic simplification), :func:`dead_code_elimination`.
Block-level: :func:`fold_constants` (incl. batch-norm folding and weight pre-transposition),
:func:`fuse` (operator fusion by op class). Dataflow-level: :func:`common_subexpressions`,
:func:`infer_shapes`, :func:`transform_layout` (NHWC + weight pre-packing) and
:func:`plan_memory` (liveness + best-fit arena + in-place reuse).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from provenml.compiler.interp import run_node
from provenml.compiler.ir import ELEMENTWISE, ELEMENTWISE_BINARY, Graph, Node, Value
from provenml.core import ProvenmlError

Pass = Callable[[Graph], Graph]


# ----------------------------------------------------------------------------------------------
# shape inference
# ----------------------------------------------------------------------------------------------
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
    if op in ELEMENTWISE or op in ("layer_norm", "softmax", "batch_norm", "layout_transform"):
        return s[0]
    if op == "linear":
        return (*s[0][:-1], s[1][0])
    if op == "dense":
        return (*s[0][:-1], a["n"])
    if op == "matmul":
        a_s, b_s = s[0], s[1]
        if a.get("trans_b"):
            b_s = (*b_s[:-2], b_s[-1], b_s[-2])
        if a_s[-1] != b_s[-2]:
            raise ProvenmlError(f"matmul {n.name}: inner sizes {a_s} @ {b_s} differ")
        return (*_broadcast(a_s[:-2], b_s[:-2]), a_s[-2], b_s[-1])
    if op == "conv2d":
        nb, _, h, w = s[0]
        cout = a.get("cout", s[1][0])
        kh, kw = a.get("kernel", s[1][2:4])
        (sh, sw), (ph, pw) = a["stride"], a["padding"]
        return (nb, cout, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
    if op in ("max_pool2d", "avg_pool2d"):
        nb, c, h, w = s[0]
        (kh, kw), (sh, sw), (ph, pw) = a["kernel"], a["stride"], a["padding"]
        return (nb, c, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
    if op in ("mean", "sum"):
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
        out = list(s[0])
        out[a["dim"]] = sum(x[a["dim"]] for x in s)
        return tuple(out)
    if op == "embedding":
        return s[1] + (s[0][1],)
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


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _replace_uses(g: Graph, old: str, new: str) -> None:
    for n in g.nodes:
        n.inputs = [new if i == old else i for i in n.inputs]
        for inner in n.attrs.get("body", []):
            inner.inputs = [new if i == old else i for i in inner.inputs]
    g.outputs = [new if o == old else o for o in g.outputs]


def _is_const(g: Graph, name: str) -> bool:
    return name in g.consts


def _const_value(g: Graph, name: str) -> np.ndarray | None:
    return g.consts.get(name)


def _is_scalar_const(g: Graph, name: str, value: float) -> bool:
    c = g.consts.get(name)
    return c is not None and c.dtype.kind == "f" and c.size >= 1 and bool(np.all(c == value))


# ----------------------------------------------------------------------------------------------
# constant folding, batch-norm folding, weight pre-transposition
# ----------------------------------------------------------------------------------------------
def fold_constants(g: Graph) -> Graph:
    """Constant folding (survey Sec. 4.2.1): evaluate nodes whose inputs are all constants;
    fold inference batch norm into the preceding conv/linear (``w' = w * gamma / sqrt(var+eps)``,
    ``b' = (b - mean) * gamma / sqrt(var+eps) + beta``) or into a per-channel multiply-add;
    pre-transpose linear weights (``linear(x, W, b) = dense(x, W^T, b)``)."""
    out = g.clone()
    users = out.users()
    producers = out.producers()
    new_nodes: list[Node] = []
    removed: set[str] = set()
    for n in out.nodes:
        if n.name in removed:
            continue
        if (
            n.op != "fused"
            and n.inputs
            and all(_is_const(out, i) for i in n.inputs)
            and n.name not in out.outputs
        ):
            arr = run_node(n, out.consts, out.values)
            out.consts[n.name] = np.ascontiguousarray(arr)
            continue
        if n.op == "batch_norm" and all(_is_const(out, i) for i in n.inputs[1:]):
            mean, var, w, b = (out.consts[i] for i in n.inputs[1:])
            scale = (w / np.sqrt(var + n.attrs["eps"])).astype(np.float32)
            shift = (b - mean * scale).astype(np.float32)
            src = producers.get(n.inputs[0])
            folded = False
            if (
                src is not None
                and src.name in {m.name for m in new_nodes}
                and src.op in ("conv2d", "linear")
                and len(users[src.name]) == 1
                and src.name not in out.outputs
                and _is_const(out, src.inputs[1])
                and (len(src.inputs) < 3 or _is_const(out, src.inputs[2]))
                and out.values[src.name].layout == "row"
            ):
                wt = out.consts[src.inputs[1]]
                bias = (
                    out.consts[src.inputs[2]]
                    if len(src.inputs) > 2
                    else np.zeros(scale.shape, np.float32)
                )
                shape = (-1,) + (1,) * (wt.ndim - 1)
                new_w = out.add_const((wt * scale.reshape(shape)).astype(np.float32), "wf")
                new_b = out.add_const((bias * scale + shift).astype(np.float32), "bf")
                src.inputs = [src.inputs[0], new_w, new_b]
                _replace_uses(out, n.name, src.name)
                folded = True
            if not folded:
                rank = len(out.values[n.inputs[0]].shape)
                bshape = (-1,) + (1,) * (rank - 2)
                sc = out.add_const(scale.reshape(bshape), "bn_scale")
                sh = out.add_const(shift.reshape(bshape), "bn_shift")
                mul = Node("mul", out.fresh("bn_mul"), [n.inputs[0], sc], source=n.source)
                out.values[mul.name] = Value(mul.name, out.values[n.name].shape)
                new_nodes.append(mul)
                new_nodes.append(Node("add", n.name, [mul.name, sh], source=n.source))
            continue
        if n.op == "linear" and _is_const(out, n.inputs[1]):
            w = out.consts[n.inputs[1]]
            wt = out.add_const(np.ascontiguousarray(w.T), "wt")
            n2 = Node(
                "dense",
                n.name,
                [n.inputs[0], wt, *n.inputs[2:]],
                {"n": int(w.shape[0]), "k": int(w.shape[1]), "packed": 0},
                n.source,
            )
            new_nodes.append(n2)
            continue
        if n.op == "linear":  # runtime weight: a matmul against W^T, then the bias
            mm_name = n.name if len(n.inputs) == 2 else out.fresh("linear_mm")
            mm = Node("matmul", mm_name, [n.inputs[0], n.inputs[1]], {"trans_b": True}, n.source)
            out.values[mm_name] = Value(mm_name, out.values[n.name].shape)
            new_nodes.append(mm)
            if len(n.inputs) == 3:
                new_nodes.append(Node("add", n.name, [mm_name, n.inputs[2]], source=n.source))
            continue
        new_nodes.append(n)
    out.nodes = new_nodes
    for name in list(out.consts):
        if name not in out.values:
            out.values[name] = Value(name, tuple(out.consts[name].shape))
    return dead_code_elimination(out)


# ----------------------------------------------------------------------------------------------
# algebraic simplification
# ----------------------------------------------------------------------------------------------
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
            or (n.op in ("add", "sub") and same_shape and _is_scalar_const(out, n.inputs[1], 0.0))
            or (n.op in ("mul", "div") and same_shape and _is_scalar_const(out, n.inputs[1], 1.0))
        ):
            alias_to = x
        elif (
            n.op == "mul"
            and _is_scalar_const(out, x, 1.0)
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
            _replace_uses(out, n.name, alias_to)
            continue
        if n.op == "div" and _is_const(out, n.inputs[1]):
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
                _replace_uses(out, n.name, n.inputs[0])
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


# ----------------------------------------------------------------------------------------------
# CSE and DCE
# ----------------------------------------------------------------------------------------------
def _attr_key(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple(sorted((k, _attr_key(x)) for k, x in v.items()))
    if isinstance(v, list):
        return tuple(_attr_key(x) for x in v)
    return v


def common_subexpressions(g: Graph) -> Graph:
    """Common subexpression elimination (survey Sec. 4.2.3): identical constants are merged by
    content hash, then nodes with the same op, inputs and attributes are computed once."""
    out = g.clone()
    by_hash: dict[tuple[str, tuple[int, ...], str], str] = {}
    for name, arr in list(out.consts.items()):
        key = (str(arr.dtype), tuple(arr.shape), hashlib.sha1(arr.tobytes()).hexdigest())
        if key in by_hash:
            _replace_uses(out, name, by_hash[key])
        else:
            by_hash[key] = name
    seen: dict[Any, str] = {}
    keep = []
    for n in out.nodes:
        key = (n.op, tuple(n.inputs), _attr_key({k: v for k, v in n.attrs.items() if k != "body"}))
        if n.op != "fused" and key in seen and n.name not in out.outputs:
            _replace_uses(out, n.name, seen[key])
            continue
        seen.setdefault(key, n.name)
        keep.append(n)
    out.nodes = keep
    return dead_code_elimination(out)


def dead_code_elimination(g: Graph) -> Graph:
    """Dead code elimination (survey Sec. 4.2.1): drop nodes and constants no output needs."""
    out = g.clone()
    live = set(out.outputs)
    keep = []
    for n in reversed(out.nodes):
        if n.name in live:
            keep.append(n)
            live.update(n.inputs)
    out.nodes = list(reversed(keep))
    out.consts = {k: v for k, v in out.consts.items() if k in live}
    defined = set(out.inputs) | set(out.consts) | {n.name for n in out.nodes}
    inner = {i.name for n in out.nodes for i in n.attrs.get("body", [])}
    out.values = {k: v for k, v in out.values.items() if k in defined or k in inner}
    return out


# ----------------------------------------------------------------------------------------------
# layout transformation and weight pre-packing
# ----------------------------------------------------------------------------------------------
NHWC_OPS = ("conv2d", "max_pool2d", "avg_pool2d")


def pack_dense_weight(wt: np.ndarray, nr: int) -> np.ndarray:
    """Pre-pack a [K, N] weight into [ceil(N/nr), K, nr] column panels (zero padded), so the
    micro-kernel streams one contiguous panel per output tile."""
    k, n = wt.shape
    nb = -(-n // nr)
    padded = np.zeros((k, nb * nr), np.float32)
    padded[:, :n] = wt
    return np.ascontiguousarray(padded.reshape(k, nb, nr).transpose(1, 0, 2))


def pack_conv_weight(w: np.ndarray, nr: int) -> np.ndarray:
    """Pre-pack [Cout, Cin, KH, KW] into [ceil(Cout/nr), KH, KW, Cin, nr] panels."""
    cout, cin, kh, kw = w.shape
    nb = -(-cout // nr)
    padded = np.zeros((nb * nr, cin, kh, kw), np.float32)
    padded[:cout] = w
    return np.ascontiguousarray(padded.reshape(nb, nr, cin, kh, kw).transpose(0, 3, 4, 2, 1))


def transform_layout(g: Graph, nr: int = 16) -> Graph:
    """Layout transformation (survey Sec. 4.2.3): convolutions and pools run channels-last
    (NHWC) so the channel loop is contiguous and vectorizes; elementwise ops, per-channel
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
        t = _transform(out, name, "NHWC")
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
        t = _transform(out, name, "row")
        new_nodes.append(t)
        row_of[name] = t.name
        return t.name

    for n in out.nodes:
        ins = list(n.inputs)
        vals = [out.values[i] for i in ins]
        res = out.values[n.name]
        if n.op == "dense" and _is_const(out, ins[1]) and not n.attrs.get("packed"):
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
        if n.op in NHWC_OPS and len(res.shape) == 4:
            attrs = dict(n.attrs)
            new_ins = [as_nhwc(ins[0]), *ins[1:]]
            if n.op == "conv2d":
                if not _is_const(out, ins[1]):
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
                    new_ins[1] = out.add_const(pack_conv_weight(w, width), "wp")
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
            n.op in ("mean", "sum")
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
    out.outputs = [o if out.values[o].layout == "row" else _output_row(out, o) for o in out.outputs]
    return dead_code_elimination(out)


def _transform(g: Graph, name: str, to: str) -> Node:
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


def _output_row(g: Graph, name: str) -> str:
    t = _transform(g, name, "row")
    g.nodes.append(t)
    return t.name


# ----------------------------------------------------------------------------------------------
# operator fusion
# ----------------------------------------------------------------------------------------------
def _strides_over(domain: tuple[int, ...], v: Value, domain_layout: str) -> tuple[int, ...] | None:
    """Element strides of ``v`` over the physical iteration domain (0 where broadcast)."""
    shape = v.physical_shape if v.layout == domain_layout else None
    if shape is None:
        if v.layout == "NHWC" or domain_layout == "NHWC":
            if len(v.shape) == 1 and v.shape[0] == 1:
                shape = (1,)
            else:
                return None
        else:
            shape = v.shape
    if len(shape) > len(domain):
        return None
    shape = (1,) * (len(domain) - len(shape)) + tuple(shape)
    strides = []
    acc = 1
    for size, dsize in zip(reversed(shape), reversed(domain), strict=True):
        if size == dsize:
            strides.append(acc if size != 1 else 0)
        elif size == 1:
            strides.append(0)
        else:
            return None
        acc *= size
    return tuple(reversed(strides))


def collapse_strides(
    domain: tuple[int, ...], strides: tuple[int, ...], rows: int
) -> tuple[int, int] | None:
    """Strides (row, col) of an operand over a 2-D view (first ``rows`` domain dims flattened,
    the rest flattened), or None when the operand cannot be indexed that way."""

    def one(dims: tuple[int, ...], st: tuple[int, ...]) -> int | None:
        pairs = [(d, s) for d, s in zip(dims, st, strict=True) if d != 1]
        if not pairs:
            return 0
        if all(s == 0 for _, s in pairs):
            return 0
        if any(s == 0 for _, s in pairs):
            return None
        for (d1, s1), (_, s2) in zip(pairs[1:], pairs[:-1], strict=False):
            if s2 != s1 * d1:
                return None
        return pairs[-1][1]

    r = one(domain[:rows], strides[:rows])
    c = one(domain[rows:], strides[rows:])
    if r is None or c is None:
        return None
    return (r, c)


def _anchor_rows(anchor: Node, values: dict[str, Value]) -> int:
    """How many leading physical dims of the anchor's output form its row index."""
    v = values[anchor.name]
    if anchor.op == "conv2d":
        return 3 if v.layout == "NHWC" else 2
    return len(v.shape) - 1


def fuse(
    g: Graph, allow: tuple[str, ...] = ("elementwise", "epilogue", "reduction", "attention")
) -> Graph:
    """Operator fusion by op class (survey Sec. 4.2.2, following TVM's injective/reduction/
    complex-out-fusable classes): chains of elementwise ops become one loop; elementwise
    consumers of a matmul/dense/conv become its epilogue (applied to each register tile); an
    elementwise producer of a softmax/layer-norm/mean becomes its prologue and elementwise
    consumers its epilogue; ``softmax(q @ kᵀ ...) @ v`` becomes one attention group
    (:func:`fuse_attention`). A fused node holds its members in ``attrs["body"]``."""
    out = g.clone()
    users = out.users()
    groups: dict[str, dict[str, Any]] = {}  # group output name -> {"kind", "body", "anchor"}
    group_of: dict[str, str] = {}
    order: list[str] = []

    def single_use(name: str) -> bool:
        return len(users.get(name, [])) == 1 and name not in out.outputs

    for n in out.nodes:
        joined = False
        if n.op in ELEMENTWISE and out.values[n.name].dtype == "float32":
            for idx, i in enumerate(n.inputs):
                gname = group_of.get(i)
                if gname is None or gname != i or not single_use(i):
                    continue
                grp = groups[gname]
                if (
                    out.values[i].shape != out.values[n.name].shape
                    or out.values[i].layout != out.values[n.name].layout
                ):
                    continue
                others = [o for j, o in enumerate(n.inputs) if j != idx]
                if grp["kind"] == "elementwise" and "elementwise" in allow:
                    pass
                elif grp["kind"] in ("matmul", "conv2d", "dense") and "epilogue" in allow:
                    anchor = grp["anchor"]
                    dom = out.values[anchor.name].physical_shape
                    rows = _anchor_rows(anchor, out.values)
                    ok = True
                    for o in others:
                        st = _strides_over(dom, out.values[o], out.values[anchor.name].layout)
                        if (
                            st is None
                            or collapse_strides(dom, st, rows) is None
                            or (o in group_of and group_of[o] == gname)
                        ):
                            ok = False
                    if anchor.op == "matmul" and any(
                        out.values[o].size != 1 and len(out.values[o].shape) > 2 for o in others
                    ):
                        ok = False
                    if not ok:
                        continue
                elif (
                    grp["kind"] == "reduction"
                    and "reduction" in allow
                    and grp["anchor"].op in ("softmax", "layer_norm")
                ):
                    anchor = grp["anchor"]
                    if (
                        anchor.attrs.get("dim", len(out.values[anchor.name].shape) - 1)
                        != len(out.values[anchor.name].shape) - 1
                    ):
                        continue
                    dom = out.values[anchor.name].physical_shape
                    if any(
                        (st := _strides_over(dom, out.values[o], out.values[anchor.name].layout))
                        is None
                        or collapse_strides(dom, st, len(dom) - 1) is None
                        for o in others
                    ):
                        continue
                else:
                    continue
                grp["body"].append(n)
                del groups[gname]
                groups[n.name] = grp
                for member in grp["body"]:
                    group_of[member.name] = n.name
                order.remove(gname)  # the group now runs where its last member runs
                order.append(n.name)
                joined = True
                break
            if not joined:
                groups[n.name] = {"kind": "elementwise", "body": [n], "anchor": n}
                group_of[n.name] = n.name
                order.append(n.name)
            continue
        if n.op in ("softmax", "layer_norm") and "reduction" in allow:
            grp = {"kind": "reduction", "body": [n], "anchor": n, "prologue": []}
            x = n.inputs[0]
            last = len(out.values[n.name].shape) - 1
            if (
                n.attrs.get("dim", last) == last
                and group_of.get(x) == x
                and groups[x]["kind"] == "elementwise"
                and single_use(x)
                and out.values[x].shape == out.values[n.name].shape
            ):
                dom = out.values[n.name].physical_shape
                prev = groups.pop(x)
                fine = all(
                    (st := _strides_over(dom, out.values[o], "row")) is not None
                    and collapse_strides(dom, st, len(dom) - 1) is not None
                    for m in prev["body"]
                    for o in m.inputs
                    if group_of.get(o) != x
                )
                if fine:
                    grp["body"] = prev["body"] + [n]
                    order.remove(x)
                else:
                    groups[x] = prev
            groups[n.name] = grp
            for member in grp["body"]:
                group_of[member.name] = n.name
            order.append(n.name)
            continue
        kind = n.op if n.op in ("matmul", "conv2d", "dense") else "single"
        groups[n.name] = {"kind": kind, "body": [n], "anchor": n}
        group_of[n.name] = n.name
        order.append(n.name)

    new_nodes = []
    for gname in order:
        grp = groups[gname]
        body = grp["body"]
        if len(body) == 1:
            new_nodes.append(body[0])
            continue
        inside = {m.name for m in body}
        ext: list[str] = []
        for m in body:
            for i in m.inputs:
                if i not in inside and i not in ext:
                    ext.append(i)
        new_nodes.append(
            Node("fused", gname, ext, {"kind": grp["kind"], "body": body}, body[-1].source)
        )
    out.nodes = new_nodes
    return fuse_attention(out) if "attention" in allow else out


def _members(n: Node) -> list[Node]:
    return list(n.attrs["body"]) if n.op == "fused" else [n]


def _anchor_of(n: Node) -> Node:
    return _members(n)[0]


VIEW_OPS = ("reshape", "permute", "slice")


def strided_view(
    g: Graph, name: str, members: dict[str, Node]
) -> tuple[str, int, tuple[int, ...]] | None:
    """``name`` as a strided view of a materialized buffer, through the reshape / permute /
    slice ``members`` that produce it: ``(source value, offset, strides)`` in elements of the
    source (row-major), so ``name[i] = source.flat[offset + sum(i_d * strides_d)]``. ``None``
    when a reshape cannot be expressed with strides (only reshapes of a contiguous view and
    reshapes that add or drop size-1 dims are followed)."""
    shape = g.values[name].shape
    if name not in members:
        if g.values[name].layout != "row":
            return None
        return name, 0, tuple(int(np.prod(shape[d + 1 :])) for d in range(len(shape)))
    m = members[name]
    inner = strided_view(g, m.inputs[0], members)
    if inner is None:
        return None
    src, off, st = inner
    in_shape = g.values[m.inputs[0]].shape
    if m.op == "permute":
        perm = m.attrs["perm"]
        return src, off, tuple(st[p] for p in perm)
    if m.op == "slice":
        d, start, step = m.attrs["dim"], m.attrs["start"], m.attrs["step"]
        st2 = list(st)
        st2[d] = st[d] * step
        return src, off + start * st[d], tuple(st2)
    contiguous = tuple(int(np.prod(in_shape[d + 1 :])) for d in range(len(in_shape)))
    if all(s == c for s, c, n in zip(st, contiguous, in_shape, strict=True) if n > 1):
        return src, off, tuple(int(np.prod(shape[d + 1 :])) for d in range(len(shape)))
    old = [(n, s) for n, s in zip(in_shape, st, strict=True) if n > 1]
    if [n for n in shape if n > 1] != [n for n, _ in old]:
        return None
    it = iter(old)
    return src, off, tuple(next(it)[1] if n > 1 else 0 for n in shape)


def fuse_attention(g: Graph) -> Graph:
    """Block-level fusion of scaled dot-product attention: a batched ``q @ kᵀ`` (with its
    elementwise epilogue, e.g. the 1/sqrt(d) scale), a softmax over its last dim and the
    ``@ v`` that consumes it become one ``attention`` group, computed batch by batch (head by
    head): the score matrix of a head never leaves the thread that computes it, so the kernel
    needs no barrier between the three steps. Only when the intermediates have no other user
    and q, k, v, scores and output share one batch shape (no broadcasting).

    The reshape / permute / slice chains that cut q, k and v out of one buffer (a fused qkv
    projection) join the group when the group is their only user, and so does a permute of the
    output: the kernel then reads q, k, v and writes its output through strides
    (:func:`strided_view`) instead of copying them."""
    out = g.clone()
    users = out.users()
    producers = {n.name: n for n in out.nodes}

    def only_use(name: str, user: Node) -> bool:
        return name not in out.outputs and [u.name for u in users.get(name, [])] == [user.name]

    replace: dict[str, Node] = {}
    drop: set[str] = set()
    for n in out.nodes:
        pv = _anchor_of(n)
        if pv.op != "matmul" or pv.attrs.get("trans_b"):
            continue
        sm = producers.get(pv.inputs[0])
        if sm is None or sm.op != "softmax" or sm.name in drop:
            continue
        if not only_use(sm.name, n) or pv.inputs[1] == sm.name:
            continue
        shape = out.values[sm.name].shape
        if sm.attrs["dim"] != len(shape) - 1 or len(shape) < 3:
            continue
        qk = producers.get(sm.inputs[0])
        if qk is None or qk.name in drop or not only_use(qk.name, sm):
            continue
        anchor = _anchor_of(qk)
        if anchor.op != "matmul" or not anchor.attrs.get("trans_b"):
            continue
        batch = shape[:-2]
        operands = [*anchor.inputs, pv.inputs[1], n.name, qk.name]
        if any(out.values[v].shape[:-2] != batch for v in operands):
            continue
        if any(out.values[v].layout != "row" for v in operands):
            continue
        core = [*_members(qk), sm, *_members(pv)]
        views = _absorb_views(out, [*anchor.inputs, pv.inputs[1]], core, users, drop)
        name = n.name
        post = users.get(n.name, [])
        if len(post) == 1 and post[0].op == "permute" and n.name not in out.outputs:
            perm = post[0].attrs["perm"]
            if perm[-1] == len(perm) - 1 and out.values[post[0].name].layout == "row":
                core.append(post[0])
                drop.add(n.name)
                name = post[0].name
        body = [*views, *core]
        inside = {m.name for m in body}
        ext = list(dict.fromkeys(i for m in body for i in m.inputs if i not in inside))
        replace[name] = Node("fused", name, ext, {"kind": "attention", "body": body}, n.source)
        drop |= {qk.name, sm.name} | {m.name for m in views}
    out.nodes = [replace.get(n.name, n) for n in out.nodes if n.name not in drop]
    return out


def _absorb_views(
    g: Graph, operands: list[str], core: list[Node], users: dict[str, list[Node]], taken: set[str]
) -> list[Node]:
    """The reshape / permute / slice nodes producing ``operands`` that only the attention group
    uses (in graph order), provided every operand stays a strided view with unit column
    stride for q (the micro-kernel reads q rows contiguously)."""
    producers = {n.name: n for n in g.nodes}
    chosen: dict[str, Node] = {}
    frontier = list(operands)
    while frontier:
        name = frontier.pop()
        node = producers.get(name)
        if node is None or node.op not in VIEW_OPS or name in g.outputs or name in taken:
            continue
        if node.op == "slice" and node.attrs["step"] < 1:
            continue
        chosen[name] = node
        frontier.append(node.inputs[0])
    inside = {m.name for m in core}
    # keep only nodes whose every user is in the group (iterate: dropping one can orphan others)
    changed = True
    while changed:
        changed = False
        for name in list(chosen):
            if any(u.name not in inside and u.name not in chosen for u in users.get(name, [])):
                del chosen[name]
                changed = True
    # and only if the operands' views (through what is kept) satisfy the kernel's needs
    for k, o in enumerate(operands):
        view = strided_view(g, o, chosen)
        if view is None or (k == 0 and view[2][-1] != 1):
            return []
    return [n for n in g.nodes if n.name in chosen]


# ----------------------------------------------------------------------------------------------
# static memory planning
# ----------------------------------------------------------------------------------------------
ALIAS_OPS = ("reshape",)
INPLACE_KINDS = ("elementwise",)
ALIGN = 16  # floats (64 bytes)


@dataclass
class Buffer:
    """One arena allocation: the values stored in it and its live range in node steps."""

    name: str
    size: int
    start: int
    end: int
    offset: int = -1


def storage_root(g: Graph, name: str) -> str:
    """The value whose memory ``name`` lives in (reshapes are views)."""
    producers = g.producers()
    while name in producers and producers[name].op in ALIAS_OPS:
        name = producers[name].inputs[0]
    return name


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def direct_outputs(g: Graph) -> set[str]:
    """Graph outputs written straight into the caller's output tensors (non-view nodes)."""
    producers = g.producers()
    return {o for o in g.outputs if o in producers and producers[o].op not in ALIAS_OPS}


def liveness(g: Graph, inplace: bool = True) -> tuple[dict[str, Buffer], dict[str, str]]:
    """Live ranges of the arena buffers (node outputs that are not written straight to a graph
    output; graph inputs and constants live elsewhere), plus one short-lived scratch buffer
    per node that needs one (``attrs["scratch"]``, e.g. a padded conv input). With ``inplace``,
    an elementwise node whose same-shaped input dies at it writes into that input's buffer.
    Returns buffers and value -> buffer name."""
    producers = g.producers()
    buffer_of: dict[str, str] = {}
    buffers: dict[str, Buffer] = {}
    direct = direct_outputs(g)
    last_use: dict[str, int] = {}
    for step, n in enumerate(g.nodes):
        for i in n.inputs:
            last_use[storage_root(g, i)] = step
    for o in g.outputs:
        last_use[storage_root(g, o)] = len(g.nodes)
    for step, n in enumerate(g.nodes):
        extra = int(n.attrs.get("scratch", 0))
        if extra:
            key = n.name + "#scratch"
            buffers[key] = Buffer(key, _align(extra), step, step)
            buffer_of[key] = key
        if n.op in ALIAS_OPS or n.name in direct:
            continue
        size = _align(g.values[n.name].size * (2 if g.values[n.name].dtype == "int64" else 1))
        elementwise = n.op in ELEMENTWISE or (n.op == "fused" and n.attrs["kind"] in INPLACE_KINDS)
        if inplace and elementwise:
            cand = _inplace_candidate(g, n, step, last_use, buffer_of, producers)
            if cand is not None:
                buffer_of[n.name] = cand
                buffers[cand].end = max(buffers[cand].end, last_use.get(n.name, step))
                continue
        buffers[n.name] = Buffer(n.name, size, step, last_use.get(n.name, step))
        buffer_of[n.name] = n.name
    return buffers, buffer_of


def _inplace_candidate(
    g: Graph,
    n: Node,
    step: int,
    last_use: dict[str, int],
    buffer_of: dict[str, str],
    producers: dict[str, Node],
) -> str | None:
    body = n.attrs.get("body", [n])
    first = body[0].inputs[0] if body[0].inputs else None
    if g.values[n.name].dtype != "float32":
        return None
    for i in n.inputs:
        root = storage_root(g, i)
        if root not in buffer_of or last_use.get(root) != step:
            continue
        if (
            g.values[i].shape != g.values[n.name].shape
            or g.values[i].layout != g.values[n.name].layout
        ):
            continue
        if sum(1 for j in n.inputs if storage_root(g, j) == root) != 1:
            continue
        if i != first and n.op == "fused":
            continue
        return buffer_of[root]
    return None


def plan_memory(g: Graph, reuse: bool = True) -> Graph:
    """Static memory planning (survey Sec. 4.2.3): every intermediate gets a fixed offset in
    one arena. Buffers are allocated in execution order; a buffer is freed after its last
    use and a new one takes the best-fitting free block (smallest that fits), growing the arena
    only when none fits; elementwise nodes reuse a dying input in place. With ``reuse=False``
    every buffer gets its own region (the ablation)."""
    out = g.clone()
    buffers, buffer_of = liveness(out, inplace=reuse)
    free: list[tuple[int, int]] = []  # (offset, size)
    arena = 0
    by_start: dict[int, list[Buffer]] = {}
    by_end: dict[int, list[Buffer]] = {}
    for b in buffers.values():
        by_start.setdefault(b.start, []).append(b)
        by_end.setdefault(b.end, []).append(b)
    for step in range(len(out.nodes) + 1):
        for b in by_start.get(step, []):
            fits = [(size, off) for off, size in free if size >= b.size]
            if reuse and fits:
                size, off = min(fits)
                free.remove((off, size))
                if size > b.size:
                    free.append((off + b.size, size - b.size))
                b.offset = off
            else:
                b.offset = arena
                arena += b.size
        if reuse:
            for b in by_end.get(step, []):
                free.append((b.offset, b.size))
                free.sort()
                merged: list[tuple[int, int]] = []
                for off, size in free:
                    if merged and merged[-1][0] + merged[-1][1] == off:
                        merged[-1] = (merged[-1][0], merged[-1][1] + size)
                    else:
                        merged.append((off, size))
                free = merged
    out.memory = {v: buffers[b].offset for v, b in buffer_of.items()}
    out.arena_size = arena
    return out


def check_memory_plan(g: Graph) -> None:
    """Raise if two buffers that are live at the same time overlap in the arena."""
    buffers, buffer_of = liveness(g, inplace=True)
    spans = {}
    for v, b in buffer_of.items():
        spans[b] = (g.memory[v], buffers[b])
    items = list(spans.values())
    for i, (off1, b1) in enumerate(items):
        for off2, b2 in items[i + 1 :]:
            live_overlap = b1.start <= b2.end and b2.start <= b1.end
            mem_overlap = off1 < off2 + b2.size and off2 < off1 + b1.size
            if live_overlap and mem_overlap:
                raise ProvenmlError(
                    f"memory plan: {b1.name} and {b2.name} are live together and overlap"
                )
