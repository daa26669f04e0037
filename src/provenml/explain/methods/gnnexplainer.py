"""GNNExplainer (Ying et al., NeurIPS 2019), optimised for many instances at once."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from provenml.explain.base import (
    ExplainerMethod,
    InstanceBatch,
    binary_entropy,
    check_float,
    check_int,
    symmetrize,
)


class GNNExplainer(ExplainerMethod):
    """Learns a soft edge mask ``sigma(M)`` per instance by minimising (Ying et al. eqs. 4-5)

    ``-log P(Y = c | A ⊙ sigma(M), X) + edge_size * sum(sigma(M)) + edge_ent * H(sigma(M))``

    where ``H`` is the mean element-wise binary entropy. All instances of a batch are disjoint,
    so the sum of their losses is optimised with one Adam over one forward pass per epoch;
    each instance's gradient is exactly what optimising it alone would give. Defaults are
    PyG's (100 epochs, lr 0.01, coefficients 0.005 / 1.0).

    Like PyG's ``GNNExplainer``, each *directed* edge has its own mask value while optimising,
    and only the edges whose message can reach the prediction (nonzero gradient; PyG's
    ``hard_edge_mask``) are regularised and scored; the returned mask is then symmetrised
    (mean of the two directions) like every method's. ``symmetric=True`` instead averages
    each edge with its reverse *before* use, as the authors' code does (``(M + M^T) / 2`` on the
    dense mask). Measured on plain PyG models (``benchmarks/bench_explain_pyg.py``), the
    symmetric optimisation ranks edges within a node's subgraph barely better than chance
    (per-node AUROC 0.50-0.78), the directed one 0.93-0.98, so directed is the default.
    The initial logits are ``N(1, gain_relu * sqrt(2 / 2n))``, ``n`` the nodes of the
    instance's computation subgraph, as in the authors' code (PyG: mean 0, ``n`` the whole
    graph's nodes; the two gave the same AUROC within seed-to-seed spread).
    """

    name = "gnnexplainer"

    def __init__(
        self,
        epochs: int = 100,
        lr: float = 0.01,
        edge_size: float = 0.005,
        edge_ent: float = 1.0,
        seed: int = 0,
        symmetric: bool = False,
    ) -> None:
        self.epochs = check_int("epochs", epochs, 1)
        self.lr = check_float("lr", lr, 0.0, low_open=True)
        self.edge_size = check_float("edge_size", edge_size, 0.0)
        self.edge_ent = check_float("edge_ent", edge_ent, 0.0)
        self.seed = check_int("seed", seed, 0)
        self.symmetric = bool(symmetric)

    def _shape(self, mask: Tensor, batch: InstanceBatch) -> Tensor:
        return symmetrize(mask, batch.reverse) if self.symmetric else mask

    def attribute(self, model: torch.nn.Module, batch: InstanceBatch) -> tuple[Tensor, None]:
        gen = torch.Generator().manual_seed(self.seed)
        nodes = torch.bincount(batch.batch, minlength=batch.num_instances).float()
        # Initialisation of the reference implementation: N(1, gain_relu * sqrt(2 / 2n)), n the
        # nodes of the instance's (computation) graph.
        std = math.sqrt(2.0) * torch.sqrt(1.0 / nodes)[batch.edge_batch]
        logits = (1.0 + std * torch.randn(batch.num_edges, generator=gen)).requires_grad_()
        opt = torch.optim.Adam([logits], lr=self.lr)
        for param in model.parameters():
            param.requires_grad_(False)
        try:
            relevant = self._relevant_edges(model, batch, logits)
            for _ in range(self.epochs):
                opt.zero_grad()
                mask = self._shape(logits.sigmoid(), batch)
                loss = self.loss(model, batch, mask, relevant)
                loss.backward()
                opt.step()
        finally:
            for param in model.parameters():
                param.requires_grad_(True)
        return logits.detach().sigmoid() * relevant, None

    def _relevant_edges(
        self, model: torch.nn.Module, batch: InstanceBatch, logits: Tensor
    ) -> Tensor:
        """Edges whose mask can change the prediction (nonzero gradient of ``log p``), as PyG's
        ``hard_edge_mask``: a computation subgraph holds boundary edges whose messages never
        reach the explained node within ``L`` layers; they get no regulariser and score 0."""
        mask = self._shape(logits.sigmoid(), batch)
        (grad,) = torch.autograd.grad(batch.target_log_prob(model, mask).sum(), logits)
        return (grad != 0).float()

    def loss(
        self,
        model: torch.nn.Module,
        batch: InstanceBatch,
        mask: Tensor,
        relevant: Tensor | None = None,
    ) -> Tensor:
        """Sum over instances of the eq. 5 objective (prediction + size + entropy terms); the
        size and entropy terms run over the ``relevant`` edges (all edges when ``None``)."""
        weight = torch.ones_like(mask) if relevant is None else relevant
        count = scatter(weight, batch.edge_batch, dim_size=batch.num_instances, reduce="sum")
        log_prob = batch.target_log_prob(model, mask)
        size = scatter(mask * weight, batch.edge_batch, dim_size=batch.num_instances)
        ent = scatter(binary_entropy(mask) * weight, batch.edge_batch, dim_size=batch.num_instances)
        ent = ent / count.clamp(min=1)
        return (-log_prob + self.edge_size * size + self.edge_ent * ent).sum()
