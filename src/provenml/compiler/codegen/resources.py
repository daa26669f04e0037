"""What each kernel needs before it is generated: its operation count (which decides whether it
is split over the threads), its scratch space in the arena (padded conv input, packed B panels,
attention score matrices) and the default micro-kernel schedule."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from provenml.compiler.ir import Graph, Node, Value

DEFAULT_SCHEDULE = {"mr": 4, "nr": 16, "ku": 2, "vec": 8}  # vec: floats per vector

PARALLEL_WORK = 1 << 16  # operations below which a kernel runs on thread 0 alone


def work_estimate(n: Node, values: dict[str, Value]) -> int:
    """Rough operation count of a node (2*M*N*K for matmul-like anchors, else elements)."""
    anchor = n.attrs["body"][0] if n.op == "fused" else n
    out = values[n.name].size
    if anchor.op == "dense":
        return 2 * values[anchor.name].size * int(anchor.attrs["k"])
    if anchor.op == "conv2d":
        cin = values[anchor.inputs[0]].shape[1]
        kh, kw = anchor.attrs.get("kernel") or values[anchor.inputs[1]].shape[2:4]
        per = (
            kh * kw * (1 if anchor.attrs.get("depthwise") else cin // anchor.attrs.get("groups", 1))
        )
        return 2 * values[anchor.name].size * per
    if n.op == "fused" and n.attrs["kind"] == "attention":
        mms = [m for m in n.attrs["body"] if m.op == "matmul"]
        return sum(2 * values[m.name].size * values[m.inputs[0]].shape[-1] for m in mms)
    if anchor.op == "matmul":
        return 2 * values[anchor.name].size * values[anchor.inputs[0]].shape[-1]
    body = n.attrs.get("body", [n])
    return out * 4 * len(body)


def align16(n: int) -> int:
    return -(-n // 16) * 16


def scratch_floats(n: Node, values: dict[str, Value]) -> int:
    """Extra arena space a node needs next to its output (padded conv input, packed B)."""
    anchor = n.attrs["body"][0] if n.op == "fused" else n
    if anchor.op == "conv2d":
        ph, pw = anchor.attrs["padding"]
        if ph or pw:
            nb_, c, h, w = values[anchor.inputs[0]].shape
            return nb_ * c * (h + 2 * ph) * (w + 2 * pw)
    if n.op == "fused" and n.attrs["kind"] == "attention":
        parts = attention_parts(n.attrs["body"])
        qk, pv = parts.qk, parts.pv
        nbatch = int(np.prod(values[qk.inputs[0]].shape[:-2]))
        return nbatch * sum(attention_scratch(qk, pv, values))
    if anchor.op == "matmul":
        sched = {**DEFAULT_SCHEDULE, **anchor.attrs.get("schedule", {})}
        ov = values[anchor.name]
        kk = values[anchor.inputs[0]].shape[-1]
        nn_ = ov.shape[-1]
        nr = int(sched["nr"])
        nbatch = int(np.prod(ov.shape[:-2])) if len(ov.shape) > 2 else 1
        return nbatch * (-(-nn_ // nr)) * nr * kk
    return 0


class AttentionParts(NamedTuple):
    """The members of a fused attention body, in order."""

    views: list[Node]  # absorbed reshape / permute / slice views of q, k, v
    qk: Node  # q @ kᵀ
    qk_epi: list[Node]  # its elementwise epilogue (e.g. the scale)
    mask: Node | None  # scores + mask (``attrs["mask_operand"]`` names the mask's position)
    softmax: Node
    pv: Node  # softmax @ v
    pv_epi: list[Node]
    post: Node | None  # the output permute


def attention_parts(body: list[Node]) -> AttentionParts:
    """Split a fused attention body into its :class:`AttentionParts`."""
    i_qk = next(i for i, m in enumerate(body) if m.op == "matmul")
    i_sm = next(i for i, m in enumerate(body) if m.op == "softmax")
    mask = body[i_sm - 1] if body[i_sm - 1].attrs.get("attention_mask") else None
    rest = body[i_sm + 2 :]
    post = rest[-1] if rest and rest[-1].op == "permute" else None
    epi = rest[:-1] if post is not None else rest
    return AttentionParts(
        body[:i_qk],
        body[i_qk],
        body[i_qk + 1 : i_sm - (mask is not None)],
        mask,
        body[i_sm],
        body[i_sm + 1],
        epi,
        post,
    )


def attention_scratch(qk: Node, pv: Node, values: dict[str, Value]) -> tuple[int, int, int]:
    """Floats per head of a fused attention kernel: packed kᵀ panels, the score matrix, packed
    v panels (each a multiple of 16 floats, so every block stays 64-byte aligned)."""
    s1 = {**DEFAULT_SCHEDULE, **qk.attrs.get("schedule", {})}
    s2 = {**DEFAULT_SCHEDULE, **pv.attrs.get("schedule", {})}
    qv, kv, vv = values[qk.inputs[0]], values[qk.inputs[1]], values[pv.inputs[1]]
    m, d, n1, n2 = qv.shape[-2], qv.shape[-1], kv.shape[-2], vv.shape[-1]
    nr1, nr2 = int(s1["nr"]), int(s2["nr"])
    pk1 = -(-n1 // nr1) * nr1 * d
    pk2 = -(-n2 // nr2) * nr2 * n1
    return align16(pk1), align16(m * n1), align16(pk2)


def annotate_scratch(g: Graph) -> Graph:
    """Record each node's scratch need (``attrs["scratch"]``) for the memory planner."""
    out = g.clone()
    for n in out.nodes:
        extra = scratch_floats(n, out.values)
        if extra:
            n.attrs["scratch"] = extra
    return out
