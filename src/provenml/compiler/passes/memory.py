"""Static memory planning (survey Sec. 4.2.3): liveness, a best-fit arena with a coalescing
free list, in-place reuse for elementwise groups, and a checker."""

from __future__ import annotations

from dataclasses import dataclass

from provenml.compiler.ir import ELEMENTWISE, Graph, Node
from provenml.errors import ProvenmlError

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
