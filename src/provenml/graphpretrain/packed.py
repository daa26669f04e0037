"""Graphs packed into flat tensors, so that a mini-batch is chosen and augmented without a
Python loop over graphs.

:class:`PackedGraphs` is a disjoint union of undirected graphs, as PyG's ``Batch`` stores it
(global node ids, a ``batch`` vector), plus what the vectorised operations need: node and edge
offsets per graph (``node_ptr``, ``edge_ptr``) and, for every stored edge, the index of its
reverse (``reverse``), so that an undirected edge is kept or dropped in both directions at
once. Edges are sorted by source node, hence grouped by graph.

``PackedGraphs.from_data_list`` is where a user's graphs come in: it checks them (one clear
:class:`~provenml.errors.ProvenmlError` for a graph without ``edge_index``, with no edges, or
with an index out of range), makes them undirected and drops self-loops and duplicate edges.
Only the topology (and, when asked for, one node-feature and one target attribute) is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from provenml.errors import ProvenmlError

if TYPE_CHECKING:
    from torch_geometric.data import Data

__all__ = ["Level", "PackedGraphs", "check_packed", "segment_ranges"]

Level = Literal["graph", "node"]


def segment_ranges(starts: Tensor, counts: Tensor) -> Tensor:
    """``cat([arange(s, s + c) for s, c in zip(starts, counts)])`` without a Python loop."""
    total = int(counts.sum().item())
    if total == 0:
        return torch.zeros(0, dtype=torch.long, device=starts.device)
    offsets = torch.cumsum(counts, 0) - counts
    local = torch.arange(total, device=starts.device) - torch.repeat_interleave(offsets, counts)
    return torch.repeat_interleave(starts, counts) + local


def _ptr(counts: Tensor) -> Tensor:
    return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])


@dataclass
class PackedGraphs:
    """A disjoint union of undirected graphs in flat tensors (see the module docstring).

    ``x`` (node features) and ``y`` (targets: one row per graph when ``level == "graph"``, one
    per node when ``"node"``) are optional. ``batch`` (the graph of every node) is computed on
    first use.
    """

    edge_index: Tensor
    node_ptr: Tensor
    edge_ptr: Tensor
    reverse: Tensor
    x: Tensor | None = None
    y: Tensor | None = None
    level: Level = "graph"
    _batch: Tensor | None = field(default=None, repr=False, compare=False)

    # -- sizes --------------------------------------------------------------------------------
    @property
    def num_graphs(self) -> int:
        return self.node_ptr.numel() - 1

    def __len__(self) -> int:
        return self.num_graphs

    @property
    def num_nodes(self) -> int:
        return int(self.node_ptr[-1].item())

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.size(1))

    @property
    def nodes_per_graph(self) -> Tensor:
        return self.node_ptr[1:] - self.node_ptr[:-1]

    @property
    def edges_per_graph(self) -> Tensor:
        return self.edge_ptr[1:] - self.edge_ptr[:-1]

    @property
    def batch(self) -> Tensor:
        """The graph id of every node (PyG's ``batch`` vector)."""
        if self._batch is None:
            ids = torch.arange(self.num_graphs, device=self.node_ptr.device)
            self._batch = torch.repeat_interleave(ids, self.nodes_per_graph)
        return self._batch

    @property
    def device(self) -> torch.device:
        return self.edge_index.device

    @property
    def feature_dim(self) -> int:
        return 0 if self.x is None else int(self.x.size(1))

    # -- building -----------------------------------------------------------------------------
    @classmethod
    def from_data_list(
        cls,
        graphs: Sequence[Data],
        *,
        features: str | None = None,
        target: str | None = None,
        level: Level = "graph",
    ) -> PackedGraphs:
        """Pack ``graphs`` (PyG ``Data``). Only ``edge_index`` and ``num_nodes`` are read, plus
        the node-feature attribute ``features`` and the target attribute ``target`` when
        given (``level`` says whether the target is per graph or per node)."""
        if isinstance(graphs, PackedGraphs):
            return graphs
        if not isinstance(graphs, Sequence) or isinstance(graphs, str) or len(graphs) == 0:
            raise ProvenmlError("graphs must be a non-empty list of torch_geometric Data objects")
        if level not in ("graph", "node"):
            raise ProvenmlError(f"level must be 'graph' or 'node', got {level!r}")
        edges, counts, xs, ys = [], [], [], []
        for i, data in enumerate(graphs):
            edge_index = getattr(data, "edge_index", None)
            if edge_index is None:
                raise ProvenmlError(
                    f"graphs[{i}] has no edge_index: every graph needs its edges as a "
                    "(2, num_edges) integer tensor"
                )
            if (
                not isinstance(edge_index, Tensor)
                or edge_index.dim() != 2
                or (edge_index.size(0) != 2)
            ):
                raise ProvenmlError(
                    f"graphs[{i}].edge_index must be a (2, num_edges) tensor, got "
                    f"{getattr(edge_index, 'shape', type(edge_index).__name__)}"
                )
            if edge_index.dtype.is_floating_point or edge_index.dtype == torch.bool:
                raise ProvenmlError(f"graphs[{i}].edge_index must hold integers")
            n = data.num_nodes
            if n is None or n < 1:
                raise ProvenmlError(f"graphs[{i}] has no nodes")
            edge_index = edge_index.long().cpu()
            if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= n):
                raise ProvenmlError(f"graphs[{i}].edge_index has a node index outside 0..{n - 1}")
            edge_index = edge_index[:, edge_index[0] != edge_index[1]]
            if edge_index.size(1) == 0:
                raise ProvenmlError(
                    f"graphs[{i}] has no edges (self-loops aside): topology-only models need "
                    "at least one edge per graph"
                )
            edges.append(edge_index)
            counts.append(int(n))
            if features is not None:
                value = getattr(data, features, None)
                if value is None:
                    raise ProvenmlError(f"graphs[{i}] has no node features {features!r}")
                if value.dim() == 1:
                    value = value.unsqueeze(1)
                if value.size(0) != n:
                    raise ProvenmlError(
                        f"graphs[{i}].{features} has {value.size(0)} rows for {n} nodes"
                    )
                xs.append(value.float().cpu())
            if target is not None:
                value = getattr(data, target, None)
                if value is None:
                    raise ProvenmlError(f"graphs[{i}] has no target {target!r}")
                value = torch.as_tensor(value).float().cpu()
                value = value.reshape(1, -1) if level == "graph" else value.reshape(n, -1)
                ys.append(value)
        node_counts = torch.tensor(counts, dtype=torch.long)
        node_ptr = _ptr(node_counts)
        offsets = [edges[i] + node_ptr[i] for i in range(len(edges))]
        packed = cls._from_edges(torch.cat(offsets, 1), node_ptr)
        if xs:
            widths = {x.size(1) for x in xs}
            if len(widths) > 1:
                raise ProvenmlError(f"node features {features!r} differ in width: {widths}")
            packed.x = torch.cat(xs)
        if ys:
            widths = {y.size(1) for y in ys}
            if len(widths) > 1:
                raise ProvenmlError(f"target {target!r} differs in size: {widths}")
            y = torch.cat(ys)
            packed.y = y.squeeze(1) if y.size(1) == 1 else y
            packed.level = level
        return packed

    @classmethod
    def _from_edges(cls, edge_index: Tensor, node_ptr: Tensor) -> PackedGraphs:
        """Undirected, deduplicated, sorted edges with their reverse index (all vectorised)."""
        num_nodes = int(node_ptr[-1].item())
        both = torch.cat([edge_index, edge_index.flip(0)], 1)
        keys = torch.unique(both[0] * num_nodes + both[1])  # sorted: by source, then target
        edge_index = torch.stack([keys // num_nodes, keys % num_nodes])
        reverse = torch.searchsorted(keys, edge_index[1] * num_nodes + edge_index[0])
        graph_of_node = torch.repeat_interleave(
            torch.arange(node_ptr.numel() - 1), node_ptr[1:] - node_ptr[:-1]
        )
        edge_counts = torch.bincount(graph_of_node[edge_index[0]], minlength=node_ptr.numel() - 1)
        return cls(edge_index, node_ptr, _ptr(edge_counts), reverse)

    # -- operations ---------------------------------------------------------------------------
    def select(self, index: Tensor | Sequence[int]) -> PackedGraphs:
        """The graphs ``index`` (in that order), renumbered, as a new :class:`PackedGraphs`."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.node_ptr.device)
        if index.numel() and (index.min() < 0 or index.max() >= self.num_graphs):
            raise ProvenmlError(f"graph index out of range 0..{self.num_graphs - 1}")
        node_counts = self.node_ptr[index + 1] - self.node_ptr[index]
        edge_counts = self.edge_ptr[index + 1] - self.edge_ptr[index]
        node_ptr, edge_ptr = _ptr(node_counts), _ptr(edge_counts)
        node_ids = segment_ranges(self.node_ptr[index], node_counts)
        edge_ids = segment_ranges(self.edge_ptr[index], edge_counts)
        node_shift = torch.repeat_interleave(node_ptr[:-1] - self.node_ptr[index], edge_counts)
        edge_shift = torch.repeat_interleave(edge_ptr[:-1] - self.edge_ptr[index], edge_counts)
        y = self.y
        if y is not None:
            y = y[index] if self.level == "graph" else y[node_ids]
        return PackedGraphs(
            edge_index=self.edge_index[:, edge_ids] + node_shift,
            node_ptr=node_ptr,
            edge_ptr=edge_ptr,
            reverse=self.reverse[edge_ids] + edge_shift,
            x=None if self.x is None else self.x[node_ids],
            y=y,
            level=self.level,
        )

    def keep_edges(self, mask: Tensor) -> PackedGraphs:
        """Only the edges where ``mask`` is True (``mask`` must agree on an edge and its
        reverse, as the augmentations' masks do)."""
        new_id = torch.cumsum(mask.long(), 0) - 1
        kept = mask.nonzero().view(-1)
        graph_of_edge = self.batch[self.edge_index[0, kept]]
        counts = torch.bincount(graph_of_edge, minlength=self.num_graphs)
        return replace(
            self,
            edge_index=self.edge_index[:, kept],
            edge_ptr=_ptr(counts),
            reverse=new_id[self.reverse[kept]],
            _batch=self._batch,
        )

    def keep_nodes(self, mask: Tensor) -> PackedGraphs:
        """The subgraphs induced by the nodes where ``mask`` is True, renumbered."""
        new_id = torch.cumsum(mask.long(), 0) - 1
        edge_mask = mask[self.edge_index[0]] & mask[self.edge_index[1]]
        edges = self.keep_edges(edge_mask)
        node_counts = torch.bincount(self.batch[mask], minlength=self.num_graphs)
        y = self.y
        if y is not None and self.level == "node":
            y = y[mask]
        return PackedGraphs(
            edge_index=new_id[edges.edge_index],
            node_ptr=_ptr(node_counts),
            edge_ptr=edges.edge_ptr,
            reverse=edges.reverse,
            x=None if self.x is None else self.x[mask],
            y=y,
            level=self.level,
        )

    def topology(self) -> PackedGraphs:
        """The same graphs with no features and no targets (what pre-training sees)."""
        return PackedGraphs(self.edge_index, self.node_ptr, self.edge_ptr, self.reverse)

    def with_targets(self, y: Tensor, level: Level = "graph") -> PackedGraphs:
        return replace(self, y=y, level=level)

    def to(self, device: torch.device | str) -> PackedGraphs:
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)

        return PackedGraphs(
            self.edge_index.to(device),
            self.node_ptr.to(device),
            self.edge_ptr.to(device),
            self.reverse.to(device),
            move(self.x),
            move(self.y),
            self.level,
        )

    def canonical_edges(self) -> Tensor:
        """For every stored edge, the index of its undirected pair's first copy."""
        return torch.minimum(torch.arange(self.num_edges, device=self.device), self.reverse)

    # -- conversion and files -----------------------------------------------------------------
    def to_data_list(self) -> list[Data]:
        """One ``Data`` per graph (``edge_index``, ``num_nodes``, and ``x`` / ``y`` if held)."""
        from torch_geometric.data import Data

        out = []
        for g in range(self.num_graphs):
            n0, n1 = int(self.node_ptr[g]), int(self.node_ptr[g + 1])
            e0, e1 = int(self.edge_ptr[g]), int(self.edge_ptr[g + 1])
            data = Data(edge_index=self.edge_index[:, e0:e1] - n0, num_nodes=n1 - n0)
            if self.x is not None:
                data.x = self.x[n0:n1]
            if self.y is not None:
                data.y = self.y[g : g + 1] if self.level == "graph" else self.y[n0:n1]
            out.append(data)
        return out

    def state(self) -> dict[str, object]:
        return {
            "edge_index": self.edge_index,
            "node_ptr": self.node_ptr,
            "edge_ptr": self.edge_ptr,
            "reverse": self.reverse,
            "x": self.x,
            "y": self.y,
            "level": self.level,
        }

    @classmethod
    def from_state(cls, state: dict[str, object]) -> PackedGraphs:
        return cls(**state)  # type: ignore[arg-type]

    def save(self, path: Path) -> None:
        torch.save(self.state(), path)

    @classmethod
    def load(cls, path: Path) -> PackedGraphs:
        return cls.from_state(torch.load(path, weights_only=True))


def check_packed(packed: PackedGraphs) -> None:
    """Raise ``AssertionError`` unless ``packed`` is a valid disjoint union of undirected graphs:
    pointers consistent, every edge inside one graph and in range, no self-loops, every edge's
    reverse present, targets and features aligned."""
    n, e = packed.num_nodes, packed.num_edges
    assert packed.node_ptr[0] == 0 and packed.edge_ptr[0] == 0
    assert bool((packed.nodes_per_graph >= 0).all()) and bool((packed.edges_per_graph >= 0).all())
    assert int(packed.edge_ptr[-1]) == e
    if e:
        src, dst = packed.edge_index
        assert int(packed.edge_index.min()) >= 0 and int(packed.edge_index.max()) < n
        assert bool((src != dst).all()), "self-loop"
        batch = packed.batch
        assert bool((batch[src] == batch[dst]).all()), "edge across graphs"
        edge_graph = torch.repeat_interleave(
            torch.arange(packed.num_graphs, device=packed.device), packed.edges_per_graph
        )
        assert bool((batch[src] == edge_graph).all()), "edge outside its graph's block"
        rev = packed.reverse
        assert int(rev.min()) >= 0 and int(rev.max()) < e
        assert bool((packed.edge_index[:, rev] == packed.edge_index.flip(0)).all()), "reverse"
    if packed.x is not None:
        assert packed.x.size(0) == n
    if packed.y is not None:
        expected = packed.num_graphs if packed.level == "graph" else n
        assert packed.y.size(0) == expected
