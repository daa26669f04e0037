"""Static memory planning (survey Sec. 4.2.3): liveness, a best-fit arena with a coalescing
free list, in-place reuse for elementwise groups, and a checker."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    users: set[str] = field(default_factory=set)  # the kernels that read or write it


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


def liveness(
    g: Graph, inplace: bool = True, ancestors: dict[str, set[str]] | None = None
) -> tuple[dict[str, Buffer], dict[str, str]]:
    """Live ranges of the arena buffers (node outputs that are not written straight to a graph
    output; graph inputs and constants live elsewhere), plus one short-lived scratch buffer
    per node that needs one (``attrs["scratch"]``, e.g. a padded conv input). With ``inplace``,
    an elementwise node whose same-shaped input dies at it writes into that input's buffer;
    given ``ancestors`` (parallel builds, see :func:`plan_memory`), only if every node that
    used that buffer is one of the node's ancestors. Returns buffers and value -> buffer name."""
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
        for i in n.inputs if n.op not in ALIAS_OPS else ():  # a view is no kernel
            root = storage_root(g, i)
            if root in buffer_of:
                buffers[buffer_of[root]].users.add(n.name)
        extra = int(n.attrs.get("scratch", 0))
        if extra:
            key = n.name + "#scratch"
            buffers[key] = Buffer(key, _align(extra), step, step, users={n.name})
            buffer_of[key] = key
        if n.op in ALIAS_OPS or n.name in direct:
            continue
        size = _align(g.values[n.name].size * (2 if g.values[n.name].dtype == "int64" else 1))
        elementwise = n.op in ELEMENTWISE or (n.op == "fused" and n.attrs["kind"] in INPLACE_KINDS)
        if inplace and elementwise:
            cand = _inplace_candidate(g, n, step, last_use, buffer_of, producers)
            if (
                cand is not None
                and ancestors is not None
                and not buffers[cand].users - {n.name} <= ancestors[n.name]
            ):
                cand = None  # writing it in place would wait for a kernel not waited for yet
            if cand is not None:
                buffers[cand].users.add(n.name)
                buffer_of[n.name] = cand
                buffers[cand].end = max(buffers[cand].end, last_use.get(n.name, step))
                continue
        buffers[n.name] = Buffer(n.name, size, step, last_use.get(n.name, step), users={n.name})
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
            or g.values[i].dtype != g.values[n.name].dtype  # a cast: 8-byte in, 4-byte out
        ):
            continue
        if sum(1 for j in n.inputs if storage_root(g, j) == root) != 1:
            continue
        if i != first and n.op == "fused":
            continue
        return buffer_of[root]
    return None


def _ancestors(g: Graph) -> dict[str, set[str]]:
    """Every node's transitive producers: the nodes it waits for whole (the pool runtime's
    dependencies wait for a kernel's last stage, so waiting is transitive)."""
    producers = g.producers()
    ancestors: dict[str, set[str]] = {}
    for n in g.nodes:
        mine: set[str] = set()
        for i in n.inputs:
            p = producers.get(i)
            if p is not None:
                mine |= {p.name} | ancestors[p.name]
        ancestors[n.name] = mine
    return ancestors


def plan_memory(g: Graph, reuse: bool = True, parallel: bool = False) -> Graph:
    """Static memory planning (survey Sec. 4.2.3): every intermediate gets a fixed offset in
    one arena. Buffers are allocated in execution order; a buffer is freed after its last
    use and a new one takes the best-fitting free block (smallest that fits), growing the arena
    only when none fits; elementwise nodes reuse a dying input in place. With ``reuse=False``
    every buffer gets its own region (the ablation).

    ``parallel`` (builds for more than one thread): a block is reused only by a node that
    already waits for every node that used it (its readers and writer are the node's
    ancestors), so reuse adds no ordering to the parallel schedule; otherwise the arena grows.
    Without it, reusing a block orders its new writer after its last reader, which serialised
    independent kernels: ``resnet:1`` ran 12% slower at two threads planned than unplanned
    (docs/compiler_history.md, *Stop 36*). On one thread every node runs after every earlier one, so
    any reuse is free."""
    out = g.clone()
    ancestors = _ancestors(out) if parallel else None
    buffers, buffer_of = liveness(out, inplace=reuse, ancestors=ancestors)
    free: list[tuple[int, int, frozenset[str]]] = []  # (offset, size, nodes that used it)
    arena = 0
    by_start: dict[int, list[Buffer]] = {}
    by_end: dict[int, list[Buffer]] = {}
    for b in buffers.values():
        by_start.setdefault(b.start, []).append(b)
        by_end.setdefault(b.end, []).append(b)
    for step in range(len(out.nodes) + 1):
        for b in by_start.get(step, []):
            waits_for = ancestors[out.nodes[step].name] if ancestors is not None else None
            fits = [
                (size, off, used)
                for off, size, used in free
                if size >= b.size and (waits_for is None or used <= waits_for)
            ]
            if reuse and fits:
                size, off, used = min(fits, key=lambda f: (f[0], f[1]))
                free.remove((off, size, used))
                if size > b.size:
                    free.append((off + b.size, size - b.size, used))
                b.offset = off
            else:
                b.offset = arena
                arena += b.size
        if reuse:
            for b in by_end.get(step, []):
                free.append((b.offset, b.size, frozenset(b.users)))
                free.sort(key=lambda f: f[0])
                merged: list[tuple[int, int, frozenset[str]]] = []
                for off, size, used in free:
                    if merged and merged[-1][0] + merged[-1][1] == off:
                        last = merged[-1]
                        merged[-1] = (last[0], last[1] + size, last[2] | used)
                    else:
                        merged.append((off, size, used))
                free = merged
    out.memory = {v: buffers[b].offset for v, b in buffer_of.items()}
    out.arena_size = arena
    return out


def check_memory_plan(g: Graph) -> None:
    """Raise if two buffers that are live at the same time overlap in the arena. The one
    allowed overlap is an in-place write: a node writing exactly over an input that dies
    at that node."""
    buffers, buffer_of = liveness(g, inplace=False)
    spans = [(g.memory[v], buffers[b]) for v, b in buffer_of.items()]
    for i, (off1, b1) in enumerate(spans):
        for off2, b2 in spans[i + 1 :]:
            live_overlap = b1.start <= b2.end and b2.start <= b1.end
            mem_overlap = off1 < off2 + b2.size and off2 < off1 + b1.size
            if live_overlap and mem_overlap and not _in_place(g, off1, b1, off2, b2):
                raise ProvenmlError(
                    f"memory plan: {b1.name} and {b2.name} are live together and overlap"
                )


def _in_place(g: Graph, off1: int, b1: Buffer, off2: int, b2: Buffer) -> bool:
    """Whether one buffer is written in place over the other by the node where it dies."""
    first, second = (b1, b2) if b1.start <= b2.start else (b2, b1)
    if off1 != off2 or first.end != second.start or first.name.endswith("#scratch"):
        return False
    node = g.nodes[second.start]
    elementwise = node.op in ELEMENTWISE or (
        node.op == "fused" and node.attrs["kind"] in INPLACE_KINDS
    )
    return (
        elementwise
        and node.name == second.name
        and any(storage_root(g, i) == first.name for i in node.inputs)
    )
