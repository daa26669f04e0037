"""GraphCL's topology augmentations, applied to a whole mini-batch at once.

You, Chen, Sui, Chen, Wang, Shen, "Graph Contrastive Learning with Augmentations" (NeurIPS
2020), Sec. 3.1 / Table 1: **node dropping** (each node removed with probability ``p``, with its
edges), **edge perturbation** (here: each undirected edge removed with probability ``p``) and
**subgraph** (a connected node set grown by random steps from a random node). GraphCL's
reference code augments one graph at a time in a Python loop; here each augmentation is a
handful of tensor operations on the packed batch
(:class:`~provenml.graphpretrain.packed.PackedGraphs`): one random draw per node, edge or
graph, masks, and index arithmetic. The subgraph loops over growth *rounds*, never over graphs.
Every augmentation returns a valid packed batch with the same number of graphs (each keeps at
least one node); attribute masking is left out, as topology-only graphs have no attributes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from provenml.errors import ProvenmlError
from provenml.graphpretrain.packed import PackedGraphs

__all__ = ["AUGMENTATIONS", "Augmentation", "augment", "drop_edges", "drop_nodes", "subgraph"]

Augmentation = Callable[[PackedGraphs, float, torch.Generator], PackedGraphs]


def _check_ratio(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ProvenmlError(f"{name} must be in [0, 1), got {value}")


def _uniform(n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    # drawn on the CPU from a CPU generator, so that a seed gives the same views on any device
    return torch.rand(n, generator=generator).to(device)


def drop_edges(batch: PackedGraphs, p: float, generator: torch.Generator) -> PackedGraphs:
    """Remove each undirected edge with probability ``p`` (both directions together)."""
    _check_ratio("edge drop probability", p)
    keep = _uniform(batch.num_edges, generator, batch.device) >= p
    return batch.keep_edges(keep[batch.canonical_edges()])


def drop_nodes(batch: PackedGraphs, p: float, generator: torch.Generator) -> PackedGraphs:
    """Remove each node with probability ``p`` (and its edges); a graph that would lose every
    node keeps its first one."""
    _check_ratio("node drop probability", p)
    keep = _uniform(batch.num_nodes, generator, batch.device) >= p
    kept_per_graph = torch.zeros(batch.num_graphs, dtype=torch.long, device=batch.device)
    kept_per_graph.index_add_(0, batch.batch, keep.long())
    empty = (kept_per_graph == 0).nonzero().view(-1)
    keep[batch.node_ptr[empty]] = True
    return batch.keep_nodes(keep)


def subgraph(batch: PackedGraphs, p: float, generator: torch.Generator) -> PackedGraphs:
    """Keep a connected subgraph of ``ceil((1 - p) n)`` nodes grown by random steps.

    GraphCL's subgraph augmentation: start at a uniform node, then repeatedly step from the
    current node set to a random neighbour outside it (a uniformly chosen edge leaving the
    set) until the set holds ``ceil((1 - p) n)`` of the graph's ``n`` nodes (fewer if the start
    node's component is smaller). All graphs grow together: one round draws one random score
    per edge and keeps, per graph, the best-scoring edge leaving its set, so the loop runs over
    rounds (at most the largest target), never over graphs. (A plain random walk would need
    of the order of its cover time, hundreds of steps, to visit 80% of a 60-node road graph.)
    """
    _check_ratio("subgraph drop ratio", p)
    device = batch.device
    n_per_graph = batch.nodes_per_graph
    target = torch.clamp(torch.ceil((1.0 - p) * n_per_graph.float()).long(), min=1)
    offset = torch.floor(_uniform(batch.num_graphs, generator, device) * n_per_graph.float())
    start = batch.node_ptr[:-1] + torch.minimum(offset.long(), torch.clamp(n_per_graph - 1, min=0))
    in_set = torch.zeros(batch.num_nodes, dtype=torch.bool, device=device)
    in_set[start] = True
    src, dst = batch.edge_index
    graph_of_edge = batch.batch[src]
    rounds = int(target.max().item()) - 1 if batch.num_graphs else 0
    for _ in range(rounds):
        count = torch.zeros(batch.num_graphs, dtype=torch.long, device=device)
        count.index_add_(0, batch.batch, in_set.long())
        leaving = in_set[src] & ~in_set[dst] & (count < target)[graph_of_edge]
        if not bool(leaving.any()):
            break
        score = torch.where(leaving, _uniform(batch.num_edges, generator, device), -1.0)
        best = torch.full((batch.num_graphs,), -1.0, device=device)
        best = best.scatter_reduce(0, graph_of_edge, score, reduce="amax")
        chosen = leaving & (score == best[graph_of_edge])
        in_set[dst[chosen]] = True
    return batch.keep_nodes(in_set)


AUGMENTATIONS: dict[str, Augmentation] = {
    "edge_drop": drop_edges,
    "node_drop": drop_nodes,
    "subgraph": subgraph,
}


def augment(
    batch: PackedGraphs, name: str, strength: float, generator: torch.Generator
) -> PackedGraphs:
    """Apply the augmentation ``name`` (one of :data:`AUGMENTATIONS`) with ``strength``."""
    if name not in AUGMENTATIONS:
        raise ProvenmlError(
            f"unknown augmentation {name!r}; choose among {', '.join(AUGMENTATIONS)}"
        )
    return AUGMENTATIONS[name](batch, strength, generator)
