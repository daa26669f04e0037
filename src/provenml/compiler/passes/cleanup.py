"""Node- and dataflow-level clean-ups (survey Sec. 4.2.1, 4.2.3): common subexpression
elimination and dead code elimination."""

from __future__ import annotations

import hashlib
from typing import Any

from provenml.compiler.ir import Graph
from provenml.compiler.passes.rewrite import replace_uses


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
            replace_uses(out, name, by_hash[key])
        else:
            by_hash[key] = name
    seen: dict[Any, str] = {}
    keep = []
    for n in out.nodes:
        key = (n.op, tuple(n.inputs), _attr_key({k: v for k, v in n.attrs.items() if k != "body"}))
        if n.op != "fused" and key in seen and n.name not in out.outputs:
            replace_uses(out, n.name, seen[key])
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
