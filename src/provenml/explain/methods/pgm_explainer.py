"""PGM-Explainer (Vu & Thai, NeurIPS 2020): perturb nodes, keep those the prediction depends on."""

from __future__ import annotations

import torch
from scipy.stats import chi2
from torch import Tensor

from provenml.explain.base import ExplainerMethod, InstanceBatch


class PGMExplainer(ExplainerMethod):
    """Random node-feature perturbations and a chi-square dependence test per node.

    Data generation (Vu & Thai, Sec. 4.1): in each of ``num_samples`` samples, every node of
    the instance is perturbed with probability ``perturb_prob`` (its features set to zero);
    the sample's outcome is ``1`` when the target probability drops by more than
    ``drop_threshold`` times the largest drop seen for that instance. Variable selection
    (Sec. 4.2): each node gets the Pearson chi-square statistic of independence between "node
    perturbed" and the outcome (2 x 2 table); its score is ``-log10 p`` (scipy's chi-square
    tail). An edge scores the mean of its endpoints. All samples of all instances go through
    the model as one replicated batch (``max_edges`` bounds its size, chunks otherwise).

    Not implemented: the final Bayesian-network structure learning over the selected nodes
    (the paper uses pgmpy, not a dependency here); the node ranking it starts from is exact.
    """

    name = "pgm_explainer"
    needs_grad = False

    def __init__(
        self,
        num_samples: int = 100,
        perturb_prob: float = 0.5,
        drop_threshold: float = 0.1,
        max_edges: int = 2_000_000,
        seed: int = 0,
    ) -> None:
        self.num_samples, self.perturb_prob = num_samples, perturb_prob
        self.drop_threshold, self.max_edges, self.seed = drop_threshold, max_edges, seed

    def attribute(self, model: torch.nn.Module, batch: InstanceBatch) -> tuple[Tensor, Tensor]:
        gen = torch.Generator().manual_seed(self.seed)
        s, n = self.num_samples, batch.num_nodes
        perturbed = torch.rand(s, n, generator=gen) < self.perturb_prob  # [S, N]
        full = batch.target_log_prob(model).exp()  # [B]
        chunk = max(1, min(s, self.max_edges // max(batch.num_edges, 1)))
        probs = []
        for start in range(0, s, chunk):
            rows = perturbed[start : start + chunk]
            copies = batch.replicate(rows.size(0))
            x = copies.x * (~rows).reshape(-1, 1).float()
            probs.append(copies.target_log_prob(model, x=x).exp().view(rows.size(0), -1))
        drop = full.view(1, -1) - torch.cat(probs)  # [S, B]
        threshold = self.drop_threshold * drop.max(0).values.clamp(min=1e-6)
        outcome = (drop > threshold)[:, batch.batch]  # [S, N], each node's instance outcome
        stat = _chi_square_2x2(perturbed, outcome)
        score = torch.as_tensor(
            -chi2.logsf(stat.numpy(), df=1) / torch.log(torch.tensor(10.0)).item(),
            dtype=torch.float32,
        )
        src, dst = batch.edge_index
        return (score[src] + score[dst]) / 2, score


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
