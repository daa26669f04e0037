"""Downstream targets: structural properties of a graph, and RDKit descriptors of a molecule.

The structural targets follow ToP's synthetic tasks (Davies et al., arXiv 2311.03976, Sec. 4):
average clustering, 4- and 5-cycle counts, diameter / n, a node's eccentricity / n, edge
density and the probability of an edge between communities. Cycle counts come from traces of
adjacency powers (exact; checked against networkx's cycle enumeration in the tests):

* 4-cycles (Harary & Manvel 1971): ``c4 = (tr A^4 - 2 sum_i d_i^2 + 2m) / 8``, since the closed
  4-walks are the 8 traversals of each 4-cycle, plus ``d_i^2`` back-and-forth walks at each
  node and ``d_j - 1`` walks ``i-j-k-j-i`` for every edge ``i-j``;
* 5-cycles (Harary & Manvel 1971; Alon, Yuster & Zwick 1997):
  ``c5 = (tr A^5 - 5 tr A^3 - 5 sum_i (d_i - 2) (A^3)_ii) / 10``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from provenml.errors import ProvenmlError

if TYPE_CHECKING:
    import networkx as nx
    from torch_geometric.data import Data

__all__ = [
    "MOLECULAR_TARGETS",
    "adjacency",
    "average_clustering",
    "cross_edge_probability",
    "cycle_count",
    "density",
    "diameter_ratio",
    "eccentricity_ratio",
    "molecular_descriptors",
    "to_networkx",
]


def adjacency(data: Data) -> np.ndarray:
    """The dense symmetric 0/1 adjacency matrix of an undirected ``Data`` (float64)."""
    n = int(data.num_nodes)
    a = np.zeros((n, n))
    src, dst = data.edge_index.numpy()
    a[src, dst] = 1.0
    a[dst, src] = 1.0
    np.fill_diagonal(a, 0.0)
    return a


def to_networkx(data: Data) -> nx.Graph:
    """An undirected networkx graph with nodes ``0..n-1``."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(range(int(data.num_nodes)))
    graph.add_edges_from(data.edge_index.t().tolist())
    graph.remove_edges_from(nx.selfloop_edges(graph))
    return graph


def cycle_count(data: Data, length: int) -> float:
    """The number of simple cycles of ``length`` (3, 4 or 5) nodes, from traces of ``A^k``."""
    a = adjacency(data)
    degree = a.sum(1)
    a2 = a @ a
    a3 = a2 @ a
    if length == 3:
        return float(np.trace(a3) / 6)
    if length == 4:
        m = degree.sum() / 2
        return float((np.trace(a2 @ a2) - 2 * (degree**2).sum() + 2 * m) / 8)
    if length == 5:
        diag3 = np.diag(a3)
        value = np.trace(a3 @ a2) - 5 * np.trace(a3) - 5 * ((degree - 2) * diag3).sum()
        return float(value / 10)
    raise ProvenmlError(f"cycle length must be 3, 4 or 5, got {length}")


def average_clustering(data: Data) -> float:
    """Mean local clustering ``2 T_i / (d_i (d_i - 1))`` (0 where ``d_i < 2``), as networkx."""
    a = adjacency(data)
    degree = a.sum(1)
    triangles = np.diag(a @ a @ a) / 2
    possible = degree * (degree - 1) / 2
    local = np.divide(triangles, possible, out=np.zeros_like(triangles), where=possible > 0)
    return float(local.mean())


def _distances(data: Data) -> np.ndarray:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import shortest_path

    return shortest_path(csr_matrix(adjacency(data)), unweighted=True, directed=False)


def diameter_ratio(data: Data) -> float:
    """The diameter of the largest connected component, divided by the number of nodes."""
    dist = _distances(data)
    finite = np.isfinite(dist)
    component = finite.sum(1)
    largest = component == component.max()
    sub = dist[np.ix_(largest, largest)]
    return float(sub.max() / int(data.num_nodes))


def eccentricity_ratio(data: Data) -> torch.Tensor:
    """Every node's eccentricity within its component, divided by the number of nodes."""
    dist = _distances(data)
    dist[~np.isfinite(dist)] = -1
    return torch.tensor(dist.max(1) / int(data.num_nodes), dtype=torch.float)


def density(data: Data) -> float:
    """Edge density ``2m / (n (n - 1))``."""
    n = int(data.num_nodes)
    m = adjacency(data).sum() / 2
    return float(2 * m / (n * (n - 1)))


def cross_edge_probability(data: Data) -> float:
    """The fraction of node pairs in different communities (``data.block``) that are edges."""
    block = getattr(data, "block", None)
    if block is None:
        raise ProvenmlError("cross_edge_probability needs community labels (data.block)")
    block = block.numpy()
    different = block[:, None] != block[None, :]
    pairs = different.sum() / 2
    edges = (adjacency(data) * different).sum() / 2
    return float(edges / pairs) if pairs else 0.0


MOLECULAR_TARGETS: tuple[str, ...] = ("logp", "tpsa", "qed", "rings", "lipinski")


def molecular_descriptors(smiles: str) -> dict[str, float]:
    """RDKit descriptors of a molecule: Crippen logP, TPSA, QED, ring count (SSSR) and the
    Lipinski rule-of-five flag (1.0 when MW <= 500, logP <= 5, H-bond donors <= 5 and
    acceptors <= 10)."""
    from rdkit import Chem
    from rdkit.Chem import QED, Crippen, Descriptors, Lipinski, rdMolDescriptors

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ProvenmlError(f"RDKit cannot parse the SMILES {smiles!r}")
    logp = Crippen.MolLogP(mol)
    lipinski = (
        Descriptors.MolWt(mol) <= 500
        and logp <= 5
        and Lipinski.NumHDonors(mol) <= 5
        and Lipinski.NumHAcceptors(mol) <= 10
    )
    return {
        "logp": float(logp),
        "tpsa": float(rdMolDescriptors.CalcTPSA(mol)),
        "qed": float(QED.qed(mol)),
        "rings": float(rdMolDescriptors.CalcNumRings(mol)),
        "lipinski": float(lipinski),
    }
