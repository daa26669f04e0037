"""PGM-Explainer (Vu & Thai, NeurIPS 2020): perturb nodes, select the variables the prediction
depends on, and learn a Bayesian network over them."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import torch
from torch import Tensor

from provenml.explain.base import ExplainerMethod, InstanceBatch, check_float, check_int


class PGMExplainer(ExplainerMethod):
    """Random node-feature perturbations, chi-square variable selection and a Bayesian network.

    Data generation (Vu & Thai, Sec. 4.1): in each of ``num_samples`` samples, every node of
    the instance is perturbed with probability ``perturb_prob`` (its features set to zero);
    the sample's outcome is ``1`` when the target probability drops by more than
    ``drop_threshold`` times the largest drop seen for that instance. All samples of all
    instances go through the model as one replicated batch (``max_edges`` bounds its size).

    Variable selection (Sec. 4.2): each node gets the Pearson chi-square statistic of
    independence between "node perturbed" and the outcome (2 x 2 table) and the p-value of
    scipy's chi-square tail; the nodes with ``p < alpha`` (at most ``max_selected``, the most
    dependent first) are the candidates for the target's Markov blanket.

    Structure learning (Sec. 4.3; the paper runs pgmpy's hill climbing with the BIC score):
    :func:`hill_climb_bic` learns a DAG over the selected nodes and the outcome from the same
    samples. The explanation is the outcome's Markov blanket in that DAG (parents, children,
    the children's other parents). Node score: ``-log10 p``, plus a constant that ranks every
    blanket node above every other node; an edge scores the mean of its endpoints.
    """

    name = "pgm_explainer"
    needs_grad = False

    def __init__(
        self,
        num_samples: int = 100,
        perturb_prob: float = 0.5,
        drop_threshold: float = 0.1,
        alpha: float = 0.05,
        max_selected: int = 10,
        max_parents: int = 3,
        max_edges: int = 2_000_000,
        seed: int = 0,
    ) -> None:
        self.num_samples = check_int("num_samples", num_samples, 2)
        self.perturb_prob = check_float("perturb_prob", perturb_prob, 0.0, 1.0, True, True)
        self.drop_threshold = check_float("drop_threshold", drop_threshold, 0.0, 1.0)
        self.alpha = check_float("alpha", alpha, 0.0, 1.0, True, True)
        self.max_selected = check_int("max_selected", max_selected, 1)
        self.max_parents = check_int("max_parents", max_parents, 0)
        self.max_edges = check_int("max_edges", max_edges, 1)
        self.seed = check_int("seed", seed, 0)

    def attribute(self, model: torch.nn.Module, batch: InstanceBatch) -> tuple[Tensor, Tensor]:
        gen = torch.Generator().manual_seed(self.seed)
        s, n = self.num_samples, batch.num_nodes
        perturbed = torch.rand(s, n, generator=gen) < self.perturb_prob  # [S, N]
        full = batch.target_log_prob(model).exp()  # [B]
        chunk = max(1, min(s, self.max_edges // max(batch.num_edges, 1)))
        probs = []
        for start in range(0, s, chunk):
            rows = perturbed[start : start + chunk]
            copies = batch.replicate(rows.size(0), share_context=True)
            x = copies.x * (~rows).reshape(-1, 1).float()
            probs.append(copies.target_log_prob(model, x=x).exp().view(rows.size(0), -1))
        drop = full.view(1, -1) - torch.cat(probs)  # [S, B]
        threshold = self.drop_threshold * drop.max(0).values.clamp(min=1e-6)
        outcome = drop > threshold  # [S, B]
        stat = _chi_square_2x2(perturbed, outcome[:, batch.batch])
        from scipy.stats import chi2  # imported here: scipy.stats is slow to import

        log_p = torch.as_tensor(chi2.logsf(stat.numpy(), df=1), dtype=torch.float32)
        score = -log_p / math.log(10.0)
        score = score + self._blanket(perturbed, outcome, batch.batch, log_p) * (
            float(score.max()) + 1.0
        )
        src, dst = batch.edge_index
        return (score[src] + score[dst]) / 2, score

    def _blanket(
        self, perturbed: Tensor, outcome: Tensor, node_batch: Tensor, log_p: Tensor
    ) -> Tensor:
        """1.0 on the nodes in the outcome's Markov blanket of each instance's learned DAG.

        One structure search per instance (a combinatorial search over at most
        ``max_selected + 1`` variables; its family scores are vectorised counts)."""
        in_blanket = torch.zeros(len(node_batch))
        significant = log_p < math.log(self.alpha)
        for b in range(outcome.size(1)):
            nodes = ((node_batch == b) & significant).nonzero().view(-1)
            if len(nodes) == 0:
                continue
            nodes = nodes[torch.argsort(log_p[nodes])[: self.max_selected]]
            columns = torch.cat([perturbed[:, nodes], outcome[:, b : b + 1]], 1).numpy()
            dag = hill_climb_bic(columns, self.max_parents)
            target = len(nodes)
            blanket = set(dag.predecessors(target)) | set(dag.successors(target))
            for child in dag.successors(target):
                blanket |= set(dag.predecessors(child))
            blanket.discard(target)
            in_blanket[nodes[sorted(blanket)]] = 1.0
        return in_blanket


def bic_family_score(data: np.ndarray, child: int, parents: tuple[int, ...]) -> float:
    """BIC score of one family of a binary Bayesian network (Schwarz 1978; the decomposable
    score pgmpy's ``BicScore`` computes): ``sum_{x, pa} N(x, pa) log(N(x, pa) / N(pa))
    - 0.5 log(S) * 2^|pa| * (2 - 1)`` over the ``S`` samples (rows of ``data``)."""
    samples = data.shape[0]
    config = np.zeros(samples, dtype=np.int64)
    for p in parents:
        config = config * 2 + data[:, p]
    counts = np.bincount(config * 2 + data[:, child], minlength=2 ** (len(parents) + 1))
    joint = counts.reshape(-1, 2).astype(float)
    marginal = joint.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        loglik = np.where(joint > 0, joint * np.log(joint / marginal), 0.0).sum()
    return float(loglik - 0.5 * math.log(samples) * 2 ** len(parents))


def hill_climb_bic(data: np.ndarray, max_parents: int = 3, max_moves: int = 100) -> nx.DiGraph:
    """Greedy hill climbing over DAGs on the binary columns of ``data`` with the BIC score:
    from the empty graph, apply the best of all single-edge additions, removals and reversals
    that keeps the graph acyclic (and at most ``max_parents`` parents per node) while it raises
    the score (pgmpy's ``HillClimbSearch`` with ``BicScore``, no tabu list)."""
    data = data.astype(np.int64)
    num_vars = data.shape[1]
    dag = nx.DiGraph()
    dag.add_nodes_from(range(num_vars))
    cache: dict[tuple[int, tuple[int, ...]], float] = {}

    def family(child: int, parents: set[int]) -> float:
        key = (child, tuple(sorted(parents)))
        if key not in cache:
            cache[key] = bic_family_score(data, child, key[1])
        return cache[key]

    for _ in range(max_moves):
        best_gain, best_move = 1e-9, None
        for u in range(num_vars):
            for v in range(num_vars):
                if u == v:
                    continue
                pa_v = set(dag.predecessors(v))
                if dag.has_edge(u, v):
                    removal = family(v, pa_v - {u}) - family(v, pa_v)
                    if removal > best_gain:
                        best_gain, best_move = removal, ("remove", u, v)
                    pa_u = set(dag.predecessors(u))
                    if len(pa_u) < max_parents:
                        dag.remove_edge(u, v)
                        acyclic = not nx.has_path(dag, u, v)
                        dag.add_edge(u, v)
                        reverse = removal + family(u, pa_u | {v}) - family(u, pa_u)
                        if acyclic and reverse > best_gain:
                            best_gain, best_move = reverse, ("reverse", u, v)
                elif not dag.has_edge(v, u) and len(pa_v) < max_parents:
                    addition = family(v, pa_v | {u}) - family(v, pa_v)
                    if addition > best_gain and not nx.has_path(dag, v, u):
                        best_gain, best_move = addition, ("add", u, v)
        if best_move is None:
            break
        kind, u, v = best_move
        if kind == "add":
            dag.add_edge(u, v)
        else:
            dag.remove_edge(u, v)
            if kind == "reverse":
                dag.add_edge(v, u)
    return dag


def _chi_square_2x2(a: Tensor, b: Tensor) -> Tensor:
    """Pearson's chi-square statistic of independence of two binary variables, column-wise
    over samples: ``sum (O - E)^2 / E`` over the 2 x 2 contingency table (cells with E = 0
    contribute nothing)."""
    a, b = a.float(), b.float()
    s = a.size(0)
    table = torch.stack(
        [
            ((1 - a) * (1 - b)).sum(0),
            ((1 - a) * b).sum(0),
            (a * (1 - b)).sum(0),
            (a * b).sum(0),
        ]
    )  # [4, N]: (a=0,b=0), (0,1), (1,0), (1,1)
    row = torch.stack(
        [table[0] + table[1], table[0] + table[1], table[2] + table[3], table[2] + table[3]]
    )
    col = torch.stack(
        [table[0] + table[2], table[1] + table[3], table[0] + table[2], table[1] + table[3]]
    )
    expected = row * col / s
    terms = torch.where(expected > 0, (table - expected) ** 2 / expected.clamp(min=1e-12), 0.0)
    return terms.sum(0)
