"""Operator fusion (survey Sec. 4.2.2): elementwise chains, epilogues into matmul-like anchors,
prologues/epilogues into row reductions, and whole attention blocks."""

from __future__ import annotations

from typing import Any

from provenml.compiler.ir import ELEMENTWISE, Graph, Node, Value
from provenml.compiler.passes.views import VIEW_OPS, collapse_strides, strided_view, strides_over


def anchor_rows(anchor: Node, values: dict[str, Value]) -> int:
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
                    rows = anchor_rows(anchor, out.values)
                    ok = True
                    for o in others:
                        st = strides_over(dom, out.values[o], out.values[anchor.name].layout)
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
                        (st := strides_over(dom, out.values[o], out.values[anchor.name].layout))
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
                    (st := strides_over(dom, out.values[o], "row")) is not None
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


def members(n: Node) -> list[Node]:
    return list(n.attrs["body"]) if n.op == "fused" else [n]


def anchor_of(n: Node) -> Node:
    return members(n)[0]


def fuse_attention(g: Graph) -> Graph:
    """Block-level fusion of scaled dot-product attention: a batched ``q @ kᵀ`` (with its
    elementwise epilogue, e.g. the 1/sqrt(d) scale), a softmax over its last dim and the
    ``@ v`` that consumes it become one ``attention`` group, computed batch by batch (head by
    head): the score matrix of a head never leaves the thread that computes it, so the kernel
    needs no barrier between the three steps. Only when the intermediates have no other user
    and q, k, v, scores and output share one batch shape (no broadcasting).

    An additive mask between the scores and the softmax (``softmax(q @ kᵀ · s + mask)``, e.g.
    a causal mask, broadcast over the batch dims) joins the group too, marked
    ``attention_mask``: the kernel adds it to each score row before the softmax.

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
        pv = anchor_of(n)
        if pv.op != "matmul" or pv.attrs.get("trans_b"):
            continue
        sm = producers.get(pv.inputs[0])
        if sm is None or sm.name in drop:
            continue
        add, holder = None, sm  # the mask's add, and the top-level node that holds it
        if sm.op == "fused" and sm.attrs["kind"] == "reduction":
            body = sm.attrs["body"]  # softmax(scores + mask) fused as prologue + softmax
            if [m.op for m in body] != ["add", "softmax"]:
                continue
            add, sm = body
        if (
            sm.op != "softmax"
            or sm.attrs.get("log")  # a log-softmax is no attention
            or not only_use(holder.name, n)
            or pv.inputs[1] == sm.name
        ):
            continue
        shape = out.values[sm.name].shape
        if sm.attrs["dim"] != len(shape) - 1 or len(shape) < 3:
            continue
        qk = producers.get(sm.inputs[0])
        if add is None and qk is not None and qk.op == "add" and only_use(qk.name, sm):
            add, holder, qk = qk, qk, None
        mask = None  # softmax(scores + mask): an additive mask read inside the kernel
        if add is not None:
            mask = _attention_mask(out, add, shape, producers, only_use)
            if mask is None:
                continue
            qk = producers[add.inputs[1 - mask.attrs["mask_operand"]]]
            if not only_use(qk.name, holder):
                continue
        elif qk is None or not only_use(qk.name, sm):
            continue
        if qk.name in drop:
            continue
        anchor = anchor_of(qk)
        if anchor.op != "matmul" or not anchor.attrs.get("trans_b"):
            continue
        batch = shape[:-2]
        operands = [*anchor.inputs, pv.inputs[1], n.name, qk.name]
        if any(out.values[v].shape[:-2] != batch for v in operands):
            continue
        if any(out.values[v].layout != "row" for v in operands):
            continue
        core = [*members(qk), sm, *members(n)]  # n: the `@ v` with its epilogue, if any
        # views shared with the mask stay outside (the mask is read from memory)
        views = absorb_views(out, [*anchor.inputs, pv.inputs[1]], core, users, drop)
        if mask is not None:
            core.insert(len(members(qk)), mask)
            drop.add(holder.name)
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


def _attention_mask(
    g: Graph,
    add: Node,
    shape: tuple[int, ...],
    producers: dict[str, Node],
    only_use: Any,
) -> Node | None:
    """``add`` as the mask step of an attention group: one operand is a ``q @ kᵀ`` group's
    output, the other a float32 row-layout mask that broadcasts to the scores' ``shape``.
    Returns the marked copy (``attrs["mask_operand"]`` = the mask's input position)."""
    for pos in (1, 0):
        scores, mask = add.inputs[1 - pos], add.inputs[pos]
        src = producers.get(scores)
        if src is None or scores == mask or g.values[scores].shape != shape:
            continue
        anchor = anchor_of(src)
        if anchor.op != "matmul" or not anchor.attrs.get("trans_b"):
            continue
        mv = g.values[mask]
        if mv.dtype != "float32" or mv.layout != "row" or strides_over(shape, mv, "row") is None:
            continue
        attrs = {**add.attrs, "attention_mask": True, "mask_operand": pos}
        return Node("add", add.name, list(add.inputs), attrs, add.source)
    return None


def absorb_views(
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
