"""Synthetic graphs with ground-truth motifs, generated with a seed (GNNExplainer's benchmarks).

BA-Shapes, BA-Community, Tree-Cycles, Tree-Grid (node classification) and BA-2Motifs (graph
classification): a base graph with small motifs attached, where the class of a node (or graph)
is decided by the motif, and the motif's edges and nodes are stored as the ground truth that an
explanation should recover. Built on PyG's generators
(:class:`~torch_geometric.datasets.ExplainerDataset` with ``BAGraph`` / ``TreeGraph`` bases and
``HouseMotif`` / ``CycleMotif`` / ``GridMotif`` motifs); added here: the random noise edges
(ground truth 0), BA-Community's two communities with Gaussian features, Tree-Grid's binary
labels and BA-2Motifs' graph-level labels.

Every node dataset is one :class:`~torch_geometric.data.Data` with ``x``, ``edge_index``
(undirected, both directions stored), ``y``, ``edge_gt`` (1.0 on motif edges),
``node_gt`` (1.0 on motif nodes) and ``train_mask`` / ``val_mask`` / ``test_mask``. BA-2Motifs
is a list of such graphs with a graph label ``y`` of shape ``[1]``.

References: Ying et al., "GNNExplainer" (NeurIPS 2019), Sec. 4.1 (BA-Shapes, BA-Community,
Tree-Cycles, Tree-Grid); Luo et al., "PGExplainer" (NeurIPS 2020), Sec. 5.1 (BA-2Motifs).

PyG is imported when a graph is generated, so importing this module does not load it::

    from provenml.data.graphs import ba_shapes, load_dataset
    ds = ba_shapes(seed=0)                 # a GroundTruthDataset with one Data graph
    ds.data.edge_gt                        # 1.0 on the house motifs' edges
    ds = load_dataset("ba_2motifs", seed=0, num_graphs=200)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from provenml.errors import ProvenmlError

if TYPE_CHECKING:
    from torch_geometric.data import Data

__all__ = [
    "DATASETS",
    "GroundTruthDataset",
    "add_noise_edges",
    "ba_2motifs",
    "ba_community",
    "ba_shapes",
    "load_dataset",
    "tree_cycles",
    "tree_grid",
]


@dataclass
class GroundTruthDataset:
    """A benchmark: its graphs, task, class count and the train/test split of graphs."""

    name: str
    task: str  # "node" or "graph"
    graphs: list[Data]
    num_classes: int
    train_index: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    test_index: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    @property
    def num_features(self) -> int:
        return int(self.graphs[0].x.size(1))

    @property
    def data(self) -> Data:
        """The single graph of a node-classification dataset."""
        return self.graphs[0]


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch and numpy (PyG's BA generator draws from both), then restore their states."""
    state = np.random.get_state()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(state)


def _motif_graph(base: Any, motif: Any, num_motifs: int) -> Data:
    """One PyG ``ExplainerDataset`` graph, as an undirected Data with its ground truth."""
    from torch_geometric.data import Data
    from torch_geometric.datasets import ExplainerDataset
    from torch_geometric.utils import to_undirected

    exp = ExplainerDataset(base, motif, num_motifs=num_motifs)[0]
    edge_index, edge_gt = to_undirected(exp.edge_index, exp.edge_mask, reduce="max")
    return Data(
        edge_index=edge_index,
        edge_gt=edge_gt,
        y=exp.y,
        node_gt=exp.node_mask,
        num_nodes=int(exp.y.numel()),
    )


def add_noise_edges(data: Data, num_noise: int, generator: torch.Generator) -> Data:
    """Add ``num_noise`` random undirected edges between uniform node pairs (ground truth 0).

    GNNExplainer perturbs its synthetic graphs with random edges so that the motif is not the
    only structure a node sees; a pair that is already an edge keeps its ground-truth label.
    """
    from torch_geometric.utils import coalesce, to_undirected

    n = int(data.num_nodes)
    pairs = torch.randint(0, n, (2, num_noise), generator=generator)
    pairs = pairs[:, pairs[0] != pairs[1]]
    noise = to_undirected(pairs, num_nodes=n)
    edge_index = torch.cat([data.edge_index, noise], 1)
    edge_gt = torch.cat([data.edge_gt, torch.zeros(noise.size(1))])
    edge_index, edge_gt = coalesce(edge_index, edge_gt, num_nodes=n, reduce="max")
    data.edge_index, data.edge_gt = edge_index, edge_gt
    return data


def _num_noise(data: Data, ratio: float) -> int:
    return round(ratio * data.edge_index.size(1) / 2)


def _split(num: int, generator: torch.Generator, train: float = 0.8) -> tuple[Tensor, Tensor]:
    perm = torch.randperm(num, generator=generator)
    cut = int(train * num)
    return perm[:cut].sort().values, perm[cut:].sort().values


def _node_dataset(
    name: str, data: Data, num_classes: int, gen: torch.Generator
) -> GroundTruthDataset:
    train, test = _split(int(data.num_nodes), gen)
    data.train_mask = torch.zeros(int(data.num_nodes), dtype=torch.bool)
    data.train_mask[train] = True
    data.test_mask = ~data.train_mask
    return GroundTruthDataset(name, "node", [data], num_classes, train, test)


def ba_shapes(
    seed: int = 0,
    num_base: int = 300,
    base_edges: int = 5,
    num_motifs: int = 80,
    noise_ratio: float = 0.01,
    num_features: int = 10,
) -> GroundTruthDataset:
    """BA-Shapes: a BA graph with ``num_motifs`` houses; 4 classes (base, house top/mid/bottom).

    ``noise_ratio`` times the number of undirected edges are added as random edges (GNNExplainer's
    reference code perturbs with ``p = 0.01``); features are constant, so the label is decided by
    structure only.
    """
    from torch_geometric.datasets.graph_generator import BAGraph
    from torch_geometric.datasets.motif_generator import HouseMotif

    with _seeded(seed):
        gen = torch.Generator().manual_seed(seed)
        data = _motif_graph(BAGraph(num_base, base_edges), HouseMotif(), num_motifs)
        data = add_noise_edges(data, _num_noise(data, noise_ratio), gen)
        data.x = torch.ones(int(data.num_nodes), num_features)
        return _node_dataset("ba_shapes", data, 4, gen)


def ba_community(
    seed: int = 0,
    num_base: int = 300,
    base_edges: int = 5,
    num_motifs: int = 80,
    noise_ratio: float = 0.01,
    inter_edges: int = 50,
    num_features: int = 10,
    feature_shift: float = 1.0,
    feature_std: float = 1.0,
) -> GroundTruthDataset:
    """BA-Community: two BA-Shapes graphs joined by ``inter_edges`` random edges; 8 classes.

    Node features are Gaussian, ``N(mu_c, feature_std^2)`` with ``mu_c = -/+ feature_shift`` in
    every dimension (community 0 / 1), so a node's community is read off its features and its role
    off the structure (GNNExplainer Sec. 4.1).
    """
    from torch_geometric.data import Data
    from torch_geometric.datasets.graph_generator import BAGraph
    from torch_geometric.datasets.motif_generator import HouseMotif
    from torch_geometric.utils import coalesce, to_undirected

    with _seeded(seed):
        gen = torch.Generator().manual_seed(seed)
        parts = []
        for _ in range(2):
            g = _motif_graph(BAGraph(num_base, base_edges), HouseMotif(), num_motifs)
            parts.append(add_noise_edges(g, _num_noise(g, noise_ratio), gen))
        n0 = int(parts[0].num_nodes)
        n = n0 + int(parts[1].num_nodes)
        src = torch.randint(0, n0, (inter_edges,), generator=gen)
        dst = torch.randint(n0, n, (inter_edges,), generator=gen)
        bridge = to_undirected(torch.stack([src, dst]), num_nodes=n)
        edge_index = torch.cat([parts[0].edge_index, parts[1].edge_index + n0, bridge], 1)
        edge_gt = torch.cat([parts[0].edge_gt, parts[1].edge_gt, torch.zeros(bridge.size(1))])
        edge_index, edge_gt = coalesce(edge_index, edge_gt, num_nodes=n, reduce="max")
        community = torch.cat([torch.zeros(n0), torch.ones(n - n0)])
        x = torch.randn(n, num_features, generator=gen) * feature_std
        x += (2 * community.view(-1, 1) - 1) * feature_shift
        data = Data(
            x=x,
            edge_index=edge_index,
            edge_gt=edge_gt,
            y=torch.cat([parts[0].y, parts[1].y + 4]),
            node_gt=torch.cat([parts[0].node_gt, parts[1].node_gt]),
            num_nodes=n,
        )
        return _node_dataset("ba_community", data, 8, gen)


def tree_cycles(
    seed: int = 0,
    depth: int = 8,
    num_motifs: int = 60,
    cycle_size: int = 6,
    noise_ratio: float = 0.01,
    num_features: int = 10,
) -> GroundTruthDataset:
    """Tree-Cycles: a balanced binary tree of ``depth`` with 6-cycles attached; 2 classes."""
    from torch_geometric.datasets.graph_generator import TreeGraph
    from torch_geometric.datasets.motif_generator import CycleMotif

    with _seeded(seed):
        gen = torch.Generator().manual_seed(seed)
        base = TreeGraph(depth, branch=2, undirected=True)
        data = _motif_graph(base, CycleMotif(cycle_size), num_motifs)
        data = add_noise_edges(data, _num_noise(data, noise_ratio), gen)
        data.y = (data.y > 0).long()
        data.x = torch.ones(int(data.num_nodes), num_features)
        return _node_dataset("tree_cycles", data, 2, gen)


def tree_grid(
    seed: int = 0,
    depth: int = 8,
    num_motifs: int = 80,
    noise_ratio: float = 0.01,
    num_features: int = 10,
) -> GroundTruthDataset:
    """Tree-Grid: a balanced binary tree of ``depth`` with 3x3 grids attached; 2 classes."""
    from torch_geometric.datasets.graph_generator import TreeGraph
    from torch_geometric.datasets.motif_generator import GridMotif

    with _seeded(seed):
        gen = torch.Generator().manual_seed(seed)
        base = TreeGraph(depth, branch=2, undirected=True)
        data = _motif_graph(base, GridMotif(), num_motifs)
        data = add_noise_edges(data, _num_noise(data, noise_ratio), gen)
        data.y = (data.y > 0).long()
        data.x = torch.ones(int(data.num_nodes), num_features)
        return _node_dataset("tree_grid", data, 2, gen)


def ba_2motifs(
    seed: int = 0,
    num_graphs: int = 1000,
    num_base: int = 20,
    num_features: int = 10,
) -> GroundTruthDataset:
    """BA-2Motifs: ``num_graphs`` BA graphs (20 nodes, m=1), each with one house (class 0) or
    one 5-cycle (class 1) attached; the motif's edges are the ground truth (PGExplainer)."""
    from torch_geometric.data import Data
    from torch_geometric.datasets import ExplainerDataset
    from torch_geometric.datasets.graph_generator import BAGraph
    from torch_geometric.datasets.motif_generator import CycleMotif, HouseMotif
    from torch_geometric.utils import to_undirected

    with _seeded(seed):
        gen = torch.Generator().manual_seed(seed)
        half = num_graphs // 2
        graphs: list[Data] = []
        for label, motif, count in ((0, HouseMotif(), half), (1, CycleMotif(5), num_graphs - half)):
            ds = ExplainerDataset(BAGraph(num_base, 1), motif, num_motifs=1, num_graphs=count)
            for g in ds:
                edge_index, edge_gt = to_undirected(g.edge_index, g.edge_mask, reduce="max")
                n = int(g.node_mask.numel())
                graphs.append(
                    Data(
                        x=torch.ones(n, num_features),
                        edge_index=edge_index,
                        edge_gt=edge_gt,
                        node_gt=g.node_mask,
                        y=torch.tensor([label]),
                        num_nodes=n,
                    )
                )
        train, test = _split(len(graphs), gen)
        return GroundTruthDataset("ba_2motifs", "graph", graphs, 2, train, test)


DATASETS: dict[str, Callable[..., GroundTruthDataset]] = {
    "ba_shapes": ba_shapes,
    "ba_community": ba_community,
    "tree_cycles": tree_cycles,
    "tree_grid": tree_grid,
    "ba_2motifs": ba_2motifs,
}


def load_dataset(name: str, seed: int = 0, **kwargs: object) -> GroundTruthDataset:
    """Generate the ground-truth graph dataset ``name`` (one of :data:`DATASETS`) with ``seed``."""
    if name not in DATASETS:
        raise ProvenmlError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name](seed=seed, **kwargs)
