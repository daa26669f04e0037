"""SubgraphX (Yuan et al., ICML 2021): Monte-Carlo tree search over connected subgraphs,
scored by their Shapley value, with a cap on the number of rollouts."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from provenml.explain.base import ExplainerMethod, InstanceBatch, check_float, check_int


@dataclass
class _TreeNode:
    nodes: frozenset[int]
    prior: float = 0.0  # Shapley score, the prior R in the selection rule
    visits: int = 0
    total: float = 0.0
    children: list[_TreeNode] | None = None
    parent: _TreeNode | None = field(default=None, repr=False)


class SubgraphX(ExplainerMethod):
    """Searches connected subgraphs of each instance by MCTS (Yuan et al. 2021, Alg. 1).

    - Children of a tree node prune one of its ``expand_atoms`` highest-degree nodes (the
      paper's high-to-low pruning; on subgraphs larger than ``max_nodes`` a block of
      ``(|S| - max_nodes) // 8`` nodes per child) and keep the connected component that holds
      the explained node (node tasks) or the largest one.
    - Selection (eq. 4): ``argmax_a Q(a)/N(a) + c * R(a) * sqrt(sum_b N(b)) / (1 + N(a))``.
    - The score ``R`` of a subgraph ``S`` is its Shapley value (eqs. 5-6) among the players of
      the instance, Monte-Carlo sampled over ``shapley_samples`` random permutations:
      ``phi(S) = mean_P [ v(C_P ∪ S) - v(C_P) ]``, where ``C_P`` are the players that precede
      ``S`` in permutation ``P`` and ``v(T)`` is the target probability when only the edges
      inside ``T`` are kept (edge masking, the same operation the fidelity metrics use).
      All coalitions of all children of an expansion go through the model in one batch.
    - ``rollouts`` caps the search (the paper uses 20); leaves have at most ``min_atoms`` nodes.

    The explanation is the highest-scoring explored subgraph with at most ``max_nodes`` nodes.
    To give a ranking of *all* edges (needed to compare masks at matched sparsity), an edge
    scores the depth, along the tree path from the full graph to that subgraph, of the last
    subgraph still containing both its endpoints; edges of the explanation score highest.
    Scores are divided by the instance's largest depth (so in ``[0, 1]`` for every instance).
    """

    name = "subgraphx"
    needs_grad = False

    def __init__(
        self,
        rollouts: int = 10,
        min_atoms: int = 5,
        max_nodes: int = 8,
        expand_atoms: int = 6,
        shapley_samples: int = 16,
        c_puct: float = 10.0,
        seed: int = 0,
    ) -> None:
        self.rollouts = check_int("rollouts", rollouts, 1)
        self.min_atoms = check_int("min_atoms", min_atoms, 1)
        self.max_nodes = check_int("max_nodes", max_nodes, 1)
        self.expand_atoms = check_int("expand_atoms", expand_atoms, 1)
        self.shapley_samples = check_int("shapley_samples", shapley_samples, 1)
        self.c_puct = check_float("c_puct", c_puct, 0.0)
        self.seed = check_int("seed", seed, 0)

    def attribute(self, model: torch.nn.Module, batch: InstanceBatch) -> tuple[Tensor, Tensor]:
        gen = torch.Generator().manual_seed(self.seed)
        parts = batch.split(torch.zeros(batch.num_edges), None, self.name, 0.0)
        edge_scores, node_scores = [], []
        for part in parts:
            single = InstanceBatch.from_explanations([part])
            e, n = self._search(model, single, gen)
            edge_scores.append(e)
            node_scores.append(n)
        return torch.cat(edge_scores), torch.cat(node_scores)

    # -- one instance ------------------------------------------------------------------------
    def _search(
        self, model: torch.nn.Module, inst: InstanceBatch, gen: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        n = inst.num_nodes
        adj = _Adjacency(inst.edge_index, n)
        replicas: dict[int, InstanceBatch] = {}  # the instance's copies, by count
        center = None if inst.center is None else int(inst.center[0])
        root = _TreeNode(frozenset(range(n)))
        for _ in range(self.rollouts):
            self._rollout(model, inst, adj, center, root, gen, replicas)
        best, path = self._best(root)
        depth = torch.zeros(n)
        for level, tree_node in enumerate(path):
            depth[list(tree_node.nodes)] = level + 1
        if best is not None:
            depth[list(best.nodes)] = len(path) + 1
        # Depths count tree levels, whose number differs between instances: scale each
        # instance's scores to [0, 1] so that pooled metrics (the pooled AUROC) compare
        # instances on one scale. The ranking within the instance is unchanged.
        depth = depth / depth.max().clamp(min=1.0)
        src, dst = inst.edge_index
        return torch.minimum(depth[src], depth[dst]), depth

    def _rollout(self, model, inst, adj, center, root: _TreeNode, gen, replicas) -> None:
        path, node = [root], root
        while len(node.nodes) > self.min_atoms:
            if node.children is None:
                node.children = self._expand(model, inst, adj, center, node, gen, replicas)
            if not node.children:
                break
            visits = sum(c.visits for c in node.children)
            node = max(
                node.children,
                key=lambda c: (
                    c.total / max(c.visits, 1)
                    + self.c_puct * c.prior * math.sqrt(visits) / (1 + c.visits)
                ),
            )
            path.append(node)
        for tree_node in path:
            tree_node.visits += 1
            tree_node.total += node.prior

    def _expand(self, model, inst, adj, center, node: _TreeNode, gen, replicas) -> list[_TreeNode]:
        members = sorted(node.nodes)
        degree = torch.as_tensor(adj.degrees(members))
        order = torch.argsort(degree, descending=True, stable=True).tolist()
        candidates = [members[i] for i in order if members[i] != center]
        # Large subgraphs prune a block of nodes per step (1/8 of the excess over max_nodes),
        # so a 300-node computation graph is searched in tens of levels, not hundreds.
        block = max(1, (len(members) - self.max_nodes) // 8)
        seen, children = set(), []
        for j in range(self.expand_atoms):
            drop = set(candidates[j * block : (j + 1) * block])
            if not drop:
                break
            kept = adj.component(node.nodes - drop, center)
            if kept and kept not in seen:
                seen.add(kept)
                children.append(_TreeNode(kept, parent=node))
        if children:
            scores = self.shapley(model, inst, [c.nodes for c in children], gen, replicas)
            for child, score in zip(children, scores.tolist(), strict=True):
                child.prior = score
        return children

    def shapley(
        self,
        model: torch.nn.Module,
        inst: InstanceBatch,
        subgraphs: list[frozenset[int]],
        gen: torch.Generator,
        replicas: dict[int, InstanceBatch] | None = None,
    ) -> Tensor:
        """Monte-Carlo Shapley value (eq. 6) of each subgraph, all in one batched forward.

        ``replicas`` caches the stacked copies of ``inst`` by their number: one search asks for
        the same few counts (``2 * shapley_samples`` times the number of children) again and
        again, and building them is a good part of an evaluation's cost."""
        n, samples = inst.num_nodes, self.shapley_samples
        keep_rows = []
        for nodes in subgraphs:
            in_s = torch.zeros(n, dtype=torch.bool)
            in_s[list(nodes)] = True
            # the subgraph acts as one player; its position in a random permutation of the
            # other players decides which of them come before it
            ranks = torch.rand(samples, n, generator=gen)
            s_rank = torch.rand(samples, 1, generator=gen)
            before = (ranks < s_rank) & ~in_s
            keep_rows.append(before | in_s)  # coalition with S
            keep_rows.append(before)  # coalition without S
        keep = torch.cat(keep_rows)  # [2 * samples * K, n]
        src, dst = inst.edge_index
        masks = (keep[:, src] & keep[:, dst]).float()
        count = masks.size(0)
        copies = (replicas or {}).get(count) or inst.replicate(count, share_context=True)
        if replicas is not None:
            replicas[count] = copies
        prob = copies.target_log_prob(model, masks.reshape(-1)).exp()
        prob = prob.view(len(subgraphs), 2, samples)
        return (prob[:, 0] - prob[:, 1]).mean(-1)

    def _best(self, root: _TreeNode) -> tuple[_TreeNode | None, list[_TreeNode]]:
        best, stack = None, [root]
        while stack:
            node = stack.pop()
            if len(node.nodes) <= self.max_nodes and (best is None or node.prior > best.prior):
                best = node
            stack.extend(node.children or [])
        if best is None:
            return None, [root]
        path, node = [], best.parent
        while node is not None:
            path.append(node)
            node = node.parent
        return best, path[::-1]


class _Adjacency:
    """The instance's edges as a CSR structure (``indptr``, ``indices``: the out-neighbours of
    each node, repeated edges counted once) plus undirected neighbour lists, for the induced
    degrees and connected components a search asks for thousands of times.

    The results equal those of a scipy ``csr_matrix`` of the edges indexed as
    ``adj[members][:, members]``: :meth:`degrees` is its ``getnnz(axis=1)`` and
    :meth:`component` picks the component scipy's ``connected_components(..., directed=False)``
    plus ``bincount(labels).argmax()`` picks (components are numbered by their smallest node,
    so among equally large ones the one with the smallest node wins)."""

    def __init__(self, edge_index: Tensor, num_nodes: int) -> None:
        src = edge_index[0].numpy().astype(np.int64)
        dst = edge_index[1].numpy().astype(np.int64)
        keys = np.unique(src * num_nodes + dst)  # sorted by source, then target; no repeats
        self.rows, self.cols = keys // num_nodes, keys % num_nodes
        self.num_nodes = num_nodes
        neighbours: list[set[int]] = [set() for _ in range(num_nodes)]
        for u, v in zip(self.rows.tolist(), self.cols.tolist(), strict=True):
            neighbours[u].add(v)
            neighbours[v].add(u)
        self.neighbours = [sorted(nb) for nb in neighbours]

    def degrees(self, members: list[int]) -> np.ndarray:
        """For each of the sorted ``members``, its out-neighbours among ``members``."""
        inside = np.zeros(self.num_nodes, dtype=bool)
        inside[members] = True
        both = inside[self.rows] & inside[self.cols]
        return np.bincount(self.rows[both], minlength=self.num_nodes)[members]

    def component(self, nodes: frozenset[int], center: int | None) -> frozenset[int]:
        """The connected component of ``nodes`` (induced) holding ``center``, else the
        largest (ties: the one holding the smallest node)."""
        if not nodes:
            return frozenset()
        if center is not None:
            return self._reach(center, nodes)
        best: frozenset[int] = frozenset()
        seen: set[int] = set()
        for start in sorted(nodes):
            if start in seen:
                continue
            comp = self._reach(start, nodes)
            seen |= comp
            if len(comp) > len(best):
                best = comp
        return best

    def _reach(self, start: int, nodes: frozenset[int]) -> frozenset[int]:
        found, queue = {start}, deque([start])
        while queue:
            for v in self.neighbours[queue.popleft()]:
                if v in nodes and v not in found:
                    found.add(v)
                    queue.append(v)
        return frozenset(found)


__all__ = ["SubgraphX"]
