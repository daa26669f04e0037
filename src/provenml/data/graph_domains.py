"""Graphs from several domains, generated with a seed or read from RDKit's own data files.

The pre-training domains of Topology Only Pre-Training (Davies et al., arXiv 2311.03976) are
replaced here by offline stand-ins of the same kind, and three held-out families are added that
a pre-trained model never sees:

========== ======================================================================================
domain     what a graph is
========== ======================================================================================
social     a random-walk sample of a "universe": a powerlaw-cluster graph (Holme & Kim 2002) or
           a stochastic block model, 12-64 nodes
road       a 2-D grid with 10-30% of its edges deleted, or the Delaunay triangulation of random
           points with every degree capped (longest edges removed first); the largest
           connected component is kept
citation   an ego subgraph (breadth-first, up to two hops) of a large preferential-attachment
           graph (Barabasi & Albert 1999), 12-64 nodes
molecules  a molecule from RDKit's ``Data/NCI/first_5K.smi`` and
           ``Data/Pains/test_data/wehi_mols.csv`` (about 15k), by
           :func:`torch_geometric.utils.from_smiles`; split once, by a hash of the canonical
           SMILES, into a pre-training part and a task part that pre-training never sees
trees      a uniform random labelled tree (held out)
er         an Erdos-Renyi graph G(n, p), p drawn per graph (held out)
community  a planted-partition graph with 2-4 communities (held out)
========== ======================================================================================

Every graph is a :class:`torch_geometric.data.Data` with an undirected ``edge_index`` (both
directions stored, no self-loops, no duplicates) and ``num_nodes``; some carry what a target
needs: ``p`` (the ER edge probability), ``block`` (the community of every node), ``smiles``,
and the molecules' atom features ``x`` and bond features ``edge_attr`` from ``from_smiles``.
Generators draw from a ``numpy.random.Generator`` seeded with ``seed`` only, so the same seed
gives the same graphs. networkx, scipy and PyG are imported when a domain is generated::

    from provenml.data.graph_domains import generate, molecules
    social = generate("social", num_graphs=500, seed=0)      # list of Data
    trees = generate("trees", num_graphs=100, seed=1)
    task_mols = molecules("task")                           # never in pre-training
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from provenml.errors import ProvenmlError

if TYPE_CHECKING:
    import networkx as nx
    from torch_geometric.data import Data

__all__ = [
    "DOMAINS",
    "GENERATORS",
    "HELD_OUT_DOMAINS",
    "PRETRAIN_DOMAINS",
    "atom_type_one_hot",
    "cap_degree",
    "citation_graphs",
    "community_graphs",
    "er_graphs",
    "generate",
    "graph_from_networkx",
    "molecule_files",
    "molecule_smiles",
    "molecules",
    "molecules_sample",
    "road_graphs",
    "social_graphs",
    "tree_graphs",
]

PRETRAIN_DOMAINS: tuple[str, ...] = ("social", "road", "citation", "molecules")
"""The domains a ToP model is pre-trained on (all of them, by default)."""
HELD_OUT_DOMAINS: tuple[str, ...] = ("trees", "er", "community")
"""Families never pre-trained on: the "unseen domains" of the downstream tasks."""
DOMAINS: tuple[str, ...] = PRETRAIN_DOMAINS + HELD_OUT_DOMAINS

MIN_NODES, MAX_NODES = 12, 64
ROAD_DEGREE_CAP = 4
MOLECULE_MAX_ATOMS = 64
MOLECULE_MIN_ATOMS = 5
MOLECULE_TASK_SHARE = 3  # one molecule in three (by hash) is kept apart for the tasks


# --------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------


def graph_from_networkx(graph: nx.Graph, **attributes: Any) -> Data:
    """An undirected ``Data`` (both directions, no self-loops) from a networkx graph.

    Nodes are relabelled ``0..n-1`` in ``graph``'s node order; ``attributes`` are set on the
    ``Data`` (a tensor of one value per node stays aligned with that order).
    """
    from torch_geometric.data import Data

    index = {node: i for i, node in enumerate(graph.nodes)}
    pairs = [(index[u], index[v]) for u, v in graph.edges if u != v]
    if pairs:
        edges = torch.tensor(pairs, dtype=torch.long).t()
        edge_index = torch.cat([edges, edges.flip(0)], dim=1)
        n = graph.number_of_nodes()
        order = torch.argsort(edge_index[0] * n + edge_index[1])
        edge_index = edge_index[:, order]
    else:
        edge_index = torch.zeros(2, 0, dtype=torch.long)
    return Data(edge_index=edge_index, num_nodes=graph.number_of_nodes(), **attributes)


def _sizes(rng: np.random.Generator, num: int, low: int, high: int) -> np.ndarray:
    return rng.integers(low, high + 1, size=num)


def _check_count(num_graphs: int) -> None:
    if not isinstance(num_graphs, int | np.integer) or num_graphs < 1:
        raise ProvenmlError(f"num_graphs must be a positive integer, got {num_graphs!r}")


def _check_sizes(min_nodes: int, max_nodes: int) -> None:
    if not 3 <= min_nodes <= max_nodes:
        raise ProvenmlError(
            f"need 3 <= min_nodes <= max_nodes, got min_nodes={min_nodes}, max_nodes={max_nodes}"
        )


def _random_walk_nodes(
    graph: nx.Graph, start: Any, size: int, rng: np.random.Generator, restart: float = 0.15
) -> list[Any]:
    """Distinct nodes visited by a random walk with restart (Leskovec & Faloutsos 2006)."""
    visited = {start: None}
    current = start
    for _ in range(100 * size):
        if len(visited) >= size:
            break
        neighbours = list(graph.adj[current])
        if not neighbours or rng.random() < restart:
            current = start
            continue
        current = neighbours[rng.integers(len(neighbours))]
        visited.setdefault(current, None)
    return list(visited)


# --------------------------------------------------------------------------------------------
# Pre-training domains
# --------------------------------------------------------------------------------------------


def social_graphs(
    num_graphs: int,
    seed: int,
    *,
    min_nodes: int = MIN_NODES,
    max_nodes: int = MAX_NODES,
    universe_size: int = 1000,
    num_universes: int = 6,
) -> list[Data]:
    """Social-like graphs: random-walk samples of several "universes".

    Half the universes are powerlaw-cluster graphs (Holme & Kim 2002: preferential attachment
    with triad formation, ``m`` in 2-4, triangle probability 0.1-0.6), half stochastic block
    models (8-20 blocks, within-block probability 0.05-0.3, between 0.001-0.01). A graph is the
    induced subgraph on the nodes a random walk with restart visits from a random start until
    it has seen 12-64 nodes (fewer if the start's component is smaller; walks from components
    below ``min_nodes`` are redrawn).
    """
    import networkx as nx

    _check_count(num_graphs)
    _check_sizes(min_nodes, max_nodes)
    rng = np.random.default_rng(seed)
    universes: list[nx.Graph] = []
    for k in range(num_universes):
        graph_seed = int(rng.integers(2**31))
        if k % 2 == 0:
            m, p = int(rng.integers(2, 5)), float(rng.uniform(0.1, 0.6))
            universes.append(nx.powerlaw_cluster_graph(universe_size, m, p, seed=graph_seed))
        else:
            blocks = int(rng.integers(8, 21))
            sizes = rng.multinomial(universe_size - blocks, np.ones(blocks) / blocks) + 1
            p_in, p_out = float(rng.uniform(0.05, 0.3)), float(rng.uniform(0.001, 0.01))
            probs = np.full((blocks, blocks), p_out)
            np.fill_diagonal(probs, p_in)
            universes.append(
                nx.stochastic_block_model(sizes.tolist(), probs.tolist(), seed=graph_seed)
            )
    graphs: list[Data] = []
    for size in _sizes(rng, num_graphs, min_nodes, max_nodes):
        while True:
            universe = universes[int(rng.integers(num_universes))]
            start = int(rng.integers(universe.number_of_nodes()))
            nodes = _random_walk_nodes(universe, start, int(size), rng)
            sub = universe.subgraph(nodes)
            if len(nodes) >= min_nodes and sub.number_of_edges() > 0:
                break
        graphs.append(graph_from_networkx(nx.Graph(sub)))
    return graphs


def _largest_component(graph: nx.Graph) -> nx.Graph:
    import networkx as nx

    if graph.number_of_nodes() == 0:
        return graph
    return nx.Graph(graph.subgraph(max(nx.connected_components(graph), key=len)))


def cap_degree(graph: nx.Graph, cap: int, length: Callable[[Any, Any], float]) -> nx.Graph:
    """Remove each over-cap node's longest edges until every degree is at most ``cap``."""
    import networkx as nx

    graph = nx.Graph(graph)
    for node in sorted(graph.nodes):
        excess = graph.degree[node] - cap
        if excess > 0:
            longest = sorted(graph.adj[node], key=lambda v: -length(node, v))[:excess]
            graph.remove_edges_from((node, v) for v in longest)
    return graph


def road_graphs(
    num_graphs: int,
    seed: int,
    *,
    min_nodes: int = MIN_NODES,
    max_nodes: int = MAX_NODES,
    degree_cap: int = ROAD_DEGREE_CAP,
    delete: tuple[float, float] = (0.1, 0.3),
) -> list[Data]:
    """Road-like graphs: half damaged grids, half degree-capped Delaunay graphs.

    Grid: a ``rows x cols`` lattice (12-64 nodes) with a fraction in ``delete`` (10-30%) of its
    edges removed at random. Delaunay: the triangulation (scipy) of 12-64 uniform points in the
    unit square, then every node above ``degree_cap`` loses its longest edges. Both keep their
    largest connected component; graphs below ``min_nodes`` are redrawn.
    """
    import networkx as nx
    from scipy.spatial import Delaunay

    _check_count(num_graphs)
    _check_sizes(min_nodes, max_nodes)
    if degree_cap < 2:
        raise ProvenmlError(f"degree_cap must be >= 2, got {degree_cap}")
    rng = np.random.default_rng(seed)
    graphs: list[Data] = []
    for k, size in enumerate(_sizes(rng, num_graphs, min_nodes, max_nodes)):
        while True:
            if k % 2 == 0:
                rows = int(rng.integers(3, int(np.sqrt(size)) + 1))
                cols = max(int(size) // rows, 2)
                graph = nx.convert_node_labels_to_integers(nx.grid_2d_graph(rows, cols))
                edges = list(graph.edges)
                drop = rng.uniform(*delete)
                chosen = rng.choice(len(edges), size=round(drop * len(edges)), replace=False)
                graph.remove_edges_from(edges[i] for i in chosen)
            else:
                points = rng.uniform(size=(int(size), 2))
                simplices = Delaunay(points).simplices
                graph = nx.Graph()
                graph.add_nodes_from(range(int(size)))
                for a, b, c in simplices:
                    graph.add_edges_from(((a, b), (b, c), (a, c)))
                graph = cap_degree(
                    graph, degree_cap, lambda u, v, at=points: float(np.linalg.norm(at[u] - at[v]))
                )
            graph = _largest_component(graph)
            if graph.number_of_nodes() >= min_nodes:
                break
        graphs.append(graph_from_networkx(graph))
    return graphs


def citation_graphs(
    num_graphs: int,
    seed: int,
    *,
    min_nodes: int = MIN_NODES,
    max_nodes: int = MAX_NODES,
    universe_size: int = 10_000,
) -> list[Data]:
    """Citation-like graphs: ego subgraphs of preferential-attachment graphs.

    Two Barabasi-Albert universes (``m`` = 2 and 3 edges per new node, ``universe_size``
    nodes); a graph is the induced subgraph on the first 12-64 nodes of a breadth-first search
    (at most two hops) from a random centre, neighbours in random order.
    """
    import networkx as nx

    _check_count(num_graphs)
    _check_sizes(min_nodes, max_nodes)
    rng = np.random.default_rng(seed)
    universes = [
        nx.barabasi_albert_graph(universe_size, m, seed=int(rng.integers(2**31))) for m in (2, 3)
    ]
    graphs: list[Data] = []
    for size in _sizes(rng, num_graphs, min_nodes, max_nodes):
        while True:
            universe = universes[int(rng.integers(len(universes)))]
            centre = int(rng.integers(universe_size))
            order, frontier = [centre], [centre]
            seen = {centre}
            for _hop in range(2):
                nxt = []
                for node in frontier:
                    neighbours = list(universe.adj[node])
                    rng.shuffle(neighbours)
                    for v in neighbours:
                        if v not in seen:
                            seen.add(v)
                            nxt.append(v)
                order += nxt
                frontier = nxt
                if len(order) >= size:
                    break
            nodes = order[: int(size)]
            if len(nodes) >= min_nodes:
                break
        graphs.append(graph_from_networkx(nx.Graph(universe.subgraph(nodes))))
    return graphs


# --------------------------------------------------------------------------------------------
# Molecules from RDKit's data files
# --------------------------------------------------------------------------------------------


def molecule_files() -> list[str]:
    """The RDKit data files the molecules come from (an error if RDKit or a file is missing)."""
    try:
        from rdkit import RDConfig
    except ImportError:
        raise ProvenmlError(
            "the molecule domain needs RDKit (pip install 'provenml[graph]')"
        ) from None
    files = [
        os.path.join(RDConfig.RDDataDir, "NCI", "first_5K.smi"),
        os.path.join(RDConfig.RDDataDir, "Pains", "test_data", "wehi_mols.csv"),
    ]
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        raise ProvenmlError(f"RDKit's data files are missing: {', '.join(missing)}")
    return files


def _read_smiles(path: str) -> list[str]:
    smiles = []
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            if line.startswith('"'):  # wehi_mols.csv: "SMILES","ID"
                smiles.append(line.split('","')[0].strip('"'))
            else:  # first_5K.smi: SMILES<tab>id
                smiles.append(line.split()[0])
    return smiles


def _task_share(canonical: str) -> bool:
    digest = hashlib.sha256(canonical.encode()).digest()
    return int.from_bytes(digest[:4], "little") % MOLECULE_TASK_SHARE == 0


def molecule_smiles(split: Literal["pretrain", "task", "all"] = "all") -> list[str]:
    """Canonical SMILES of the usable molecules (5-64 heavy atoms, at least one bond, each
    once), in file order; ``split`` picks the pre-training or the task part (by hash)."""
    if split not in ("pretrain", "task", "all"):
        raise ProvenmlError(f"split must be 'pretrain', 'task' or 'all', got {split!r}")
    return [
        smiles for smiles, task in _molecule_smiles() if split == "all" or task == (split == "task")
    ]


@functools.cache
def _molecule_smiles() -> tuple[tuple[str, bool], ...]:
    """Every usable molecule once, in file order, with whether it belongs to the task part."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")  # some NCI records do not parse; they are skipped
    seen: set[str] = set()
    out: list[tuple[str, bool]] = []
    for path in molecule_files():
        for raw in _read_smiles(path):
            mol = Chem.MolFromSmiles(raw)
            if mol is None:
                continue
            atoms = mol.GetNumAtoms()
            if not MOLECULE_MIN_ATOMS <= atoms <= MOLECULE_MAX_ATOMS or mol.GetNumBonds() == 0:
                continue
            canonical = Chem.MolToSmiles(mol)
            if canonical in seen:
                continue
            seen.add(canonical)
            out.append((canonical, _task_share(canonical)))
    return tuple(out)


def molecules(
    split: Literal["pretrain", "task", "all"] = "all", limit: int | None = None
) -> list[Data]:
    """Molecular graphs from RDKit's data files, by ``torch_geometric.utils.from_smiles``.

    ``x`` holds PyG's nine integer atom features (atomic number first), ``edge_attr`` its bond
    features; ``smiles`` the canonical SMILES. ``split="task"`` is the third of the molecules
    (by a hash of the SMILES, the same on every machine) that pre-training never sees.
    """
    from torch_geometric.utils import from_smiles

    smiles = molecule_smiles(split)
    if limit is not None:
        smiles = smiles[:limit]
    return [from_smiles(s) for s in smiles]


def molecules_sample(num_graphs: int, seed: int) -> list[Data]:
    """``num_graphs`` pre-training molecules drawn without replacement with ``seed``."""
    _check_count(num_graphs)
    smiles = molecule_smiles("pretrain")
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(smiles))[: min(num_graphs, len(smiles))]
    from torch_geometric.utils import from_smiles

    return [from_smiles(smiles[i]) for i in sorted(chosen.tolist())]


# --------------------------------------------------------------------------------------------
# Held-out families
# --------------------------------------------------------------------------------------------


def tree_graphs(
    num_graphs: int, seed: int, *, min_nodes: int = MIN_NODES, max_nodes: int = MAX_NODES
) -> list[Data]:
    """Uniform random labelled trees (networkx's Pruefer-sequence sampler), 12-64 nodes."""
    import networkx as nx

    _check_count(num_graphs)
    _check_sizes(min_nodes, max_nodes)
    rng = np.random.default_rng(seed)
    return [
        graph_from_networkx(nx.random_labeled_tree(int(n), seed=int(rng.integers(2**31))))
        for n in _sizes(rng, num_graphs, min_nodes, max_nodes)
    ]


def er_graphs(
    num_graphs: int,
    seed: int,
    *,
    min_nodes: int = MIN_NODES,
    max_nodes: int = MAX_NODES,
    p_range: tuple[float, float] = (0.05, 0.3),
) -> list[Data]:
    """Erdos-Renyi graphs G(n, p) with ``p`` uniform in ``p_range`` (stored as ``p``); graphs
    without an edge are redrawn."""
    import networkx as nx

    _check_count(num_graphs)
    _check_sizes(min_nodes, max_nodes)
    rng = np.random.default_rng(seed)
    graphs = []
    for n in _sizes(rng, num_graphs, min_nodes, max_nodes):
        while True:
            p = float(rng.uniform(*p_range))
            graph = nx.gnp_random_graph(int(n), p, seed=int(rng.integers(2**31)))
            if graph.number_of_edges() > 0:
                break
        graphs.append(graph_from_networkx(graph, p=torch.tensor([p])))
    return graphs


def community_graphs(
    num_graphs: int,
    seed: int,
    *,
    min_nodes: int = MIN_NODES,
    max_nodes: int = MAX_NODES,
    p_in: tuple[float, float] = (0.3, 0.7),
    p_out: tuple[float, float] = (0.01, 0.15),
) -> list[Data]:
    """Planted-partition graphs: 2-4 communities of near-equal size, within-community edge
    probability in ``p_in``, between in ``p_out``; ``block`` holds every node's community."""
    import networkx as nx

    _check_count(num_graphs)
    _check_sizes(min_nodes, max_nodes)
    rng = np.random.default_rng(seed)
    graphs = []
    for n in _sizes(rng, num_graphs, min_nodes, max_nodes):
        k = int(rng.integers(2, 5))
        sizes = [int(n) // k + (1 if i < int(n) % k else 0) for i in range(k)]
        probs = np.full((k, k), rng.uniform(*p_out))
        np.fill_diagonal(probs, rng.uniform(*p_in))
        while True:
            graph = nx.stochastic_block_model(sizes, probs.tolist(), seed=int(rng.integers(2**31)))
            if graph.number_of_edges() > 0:
                break
        block = torch.tensor([graph.nodes[v]["block"] for v in graph.nodes], dtype=torch.long)
        graphs.append(graph_from_networkx(nx.Graph(graph), block=block))
    return graphs


GENERATORS: dict[str, Callable[..., list[Data]]] = {
    "social": social_graphs,
    "road": road_graphs,
    "citation": citation_graphs,
    "molecules": molecules_sample,
    "trees": tree_graphs,
    "er": er_graphs,
    "community": community_graphs,
}


def generate(domain: str, num_graphs: int, seed: int, **kwargs: Any) -> list[Data]:
    """``num_graphs`` graphs of ``domain`` (one of :data:`DOMAINS`) generated with ``seed``."""
    if domain not in GENERATORS:
        import difflib

        close = difflib.get_close_matches(domain, list(GENERATORS), n=2)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ProvenmlError(
            f"unknown graph domain {domain!r}{hint} (known: {', '.join(GENERATORS)})"
        )
    return GENERATORS[domain](num_graphs, seed, **kwargs)


def atom_type_one_hot(
    x: torch.Tensor, types: Sequence[int] = (6, 7, 8, 9, 15, 16, 17, 35, 53)
) -> torch.Tensor:
    """One-hot atom types from ``from_smiles`` features (column 0 is the atomic number):
    C, N, O, F, P, S, Cl, Br, I and "other" (10 columns)."""
    atomic = x[:, 0].long()
    table = torch.full((int(atomic.max().item()) + 1 if atomic.numel() else 1,), len(types))
    for i, z in enumerate(types):
        if z < table.numel():
            table[z] = i
    return torch.nn.functional.one_hot(table[atomic], len(types) + 1).float()
