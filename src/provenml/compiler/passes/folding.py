"""Block-level constant folding (survey Sec. 4.2.1): constant subgraphs evaluated at compile
time, inference batch norm folded into the preceding conv/linear, linear weights
pre-transposed."""

from __future__ import annotations

import numpy as np

from provenml.compiler.interp import run_node
from provenml.compiler.ir import Graph, Node, Value
from provenml.compiler.passes.cleanup import dead_code_elimination
from provenml.compiler.passes.rewrite import is_const, replace_uses


def _axis_through_reshape(before: tuple[int, ...], after: tuple[int, ...], axis: int) -> int | None:
    """The axis of ``before`` that a reshape to ``after`` keeps whole as ``after``'s ``axis``
    (same extent, same number of elements before it), or None when the reshape splits or
    merges it."""
    leading = int(np.prod(after[:axis]))
    for candidate, extent in enumerate(before):
        if extent == after[axis] and int(np.prod(before[:candidate])) == leading:
            return candidate
    return None


def channel_producer(
    g: Graph, users: dict[str, list[Node]], made: dict[str, Node], name: str
) -> Node | None:
    """The node whose output channels are ``name``'s axis 1 and can take a per-channel scale
    and shift into its constant weight and bias: a row-layout ``conv2d`` (its axis 1) or a
    ``dense`` (a linear, its last axis), reached from ``name`` back through reshapes and
    permutes that keep the channel axis whole (stop 69: the 3-d convolution's and Conv1d's
    lowerings end in such reshapes, so a following batch norm folds). Every value on the way
    must have ``name``'s chain as its only use and not be a graph output; ``made``: the nodes
    rewritten so far (the ones to change), by name. None when no such node."""
    axis = 1
    while True:
        node = made.get(name)
        if node is None or name in g.outputs or len(users.get(name, [])) != 1:
            return None
        if node.op in ("reshape", "permute"):
            source = node.inputs[0]
            if node.op == "permute":
                traced: int | None = int(node.attrs["perm"][axis])
            else:
                traced = _axis_through_reshape(g.values[source].shape, g.values[name].shape, axis)
            if traced is None:
                return None
            name, axis = source, traced
            continue
        weights_known = is_const(g, node.inputs[1]) and (
            len(node.inputs) < 3 or is_const(g, node.inputs[2])
        )
        if node.op == "conv2d" and axis == 1 and g.values[name].layout == "row":
            return node if weights_known else None
        if node.op == "dense" and axis == len(g.values[name].shape) - 1:
            return node if weights_known else None
        return None


def fold_constants(g: Graph) -> Graph:
    """Constant folding (survey Sec. 4.2.1): evaluate nodes whose inputs are all constants;
    fold inference batch norm into the preceding conv/linear (``w' = w * gamma / sqrt(var+eps)``,
    ``b' = (b - mean) * gamma / sqrt(var+eps) + beta``; through channel-keeping reshapes and
    permutes, :func:`channel_producer`) or into a per-channel multiply-add;
    pre-transpose linear weights (``linear(x, W, b) = dense(x, W^T, b)``)."""
    out = g.clone()
    users = out.users()
    # the rewritten nodes in order, by name (a batch norm folds into one of them)
    made: dict[str, Node] = {}
    for n in out.nodes:
        if (
            n.op != "fused"
            and n.inputs
            and all(is_const(out, i) for i in n.inputs)
            and n.name not in out.outputs
        ):
            arr = run_node(n, out.consts, out.values)
            out.consts[n.name] = np.ascontiguousarray(arr)
            continue
        if n.op == "batch_norm" and all(is_const(out, i) for i in n.inputs[1:]):
            mean, var, w, b = (out.consts[i] for i in n.inputs[1:])
            scale = (w / np.sqrt(var + n.attrs["eps"])).astype(np.float32)
            shift = (b - mean * scale).astype(np.float32)
            src = channel_producer(out, users, made, n.inputs[0])
            if src is not None:
                wt = out.consts[src.inputs[1]]
                bias = (
                    out.consts[src.inputs[2]]
                    if len(src.inputs) > 2
                    else np.zeros(scale.shape, np.float32)
                )
                # conv2d's weight is [Cout, ...]; dense's (a linear pre-transposed) [K, N]
                shape = (1, -1) if src.op == "dense" else (-1,) + (1,) * (wt.ndim - 1)
                new_w = out.add_const((wt * scale.reshape(shape)).astype(np.float32), "wf")
                new_b = out.add_const((bias * scale + shift).astype(np.float32), "bf")
                src.inputs = [src.inputs[0], new_w, new_b]
                replace_uses(out, n.name, n.inputs[0])
            else:
                rank = len(out.values[n.inputs[0]].shape)
                bshape = (-1,) + (1,) * (rank - 2)
                sc = out.add_const(scale.reshape(bshape), "bn_scale")
                sh = out.add_const(shift.reshape(bshape), "bn_shift")
                mul = Node("mul", out.fresh("bn_mul"), [n.inputs[0], sc], source=n.source)
                out.values[mul.name] = Value(mul.name, out.values[n.name].shape)
                made[mul.name] = mul
                made[n.name] = Node("add", n.name, [mul.name, sh], source=n.source)
            continue
        if n.op == "linear" and is_const(out, n.inputs[1]):
            w = out.consts[n.inputs[1]]
            wt = out.add_const(np.ascontiguousarray(w.T), "wt")
            n2 = Node(
                "dense",
                n.name,
                [n.inputs[0], wt, *n.inputs[2:]],
                {"n": int(w.shape[0]), "k": int(w.shape[1]), "packed": 0},
                n.source,
            )
            made[n2.name] = n2
            continue
        if n.op == "linear":  # runtime weight: a matmul against W^T, then the bias
            mm_name = n.name if len(n.inputs) == 2 else out.fresh("linear_mm")
            mm = Node("matmul", mm_name, [n.inputs[0], n.inputs[1]], {"trans_b": True}, n.source)
            out.values[mm_name] = Value(mm_name, out.values[n.name].shape)
            made[mm_name] = mm
            if len(n.inputs) == 3:
                made[n.name] = Node("add", n.name, [mm_name, n.inputs[2]], source=n.source)
            continue
        made[n.name] = n
    out.nodes = list(made.values())
    for name in list(out.consts):
        if name not in out.values:
            out.values[name] = Value(name, tuple(out.consts[name].shape))
    return dead_code_elimination(out)
