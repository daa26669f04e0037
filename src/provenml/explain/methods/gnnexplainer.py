"""GNNExplainer (Ying et al., NeurIPS 2019), optimised for many instances at once."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from provenml.explain.base import ExplainerMethod, InstanceBatch, binary_entropy, symmetrize


class GNNExplainer(ExplainerMethod):
    """Learns a soft edge mask ``sigma(M)`` per instance by minimising (Ying et al. eqs. 4-5)

    ``-log P(Y = c | A ⊙ sigma(M), X) + edge_size * sum(sigma(M)) + edge_ent * H(sigma(M))``

    where ``H`` is the mean element-wise binary entropy. All instances of a batch are disjoint,
    so the sum of their losses is optimised with one Adam over one forward pass per epoch;
    each instance's gradient is exactly what optimising it alone would give. The mask is kept
    symmetric on undirected graphs by averaging each edge with its reverse before use.
    Defaults are PyG's (100 epochs, lr 0.01, coefficients 0.005 / 1.0).
    """

    name = "gnnexplainer"

    def __init__(
        self,
        epochs: int = 100,
        lr: float = 0.01,
        edge_size: float = 0.005,
        edge_ent: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.epochs, self.lr = epochs, lr
        self.edge_size, self.edge_ent = edge_size, edge_ent
        self.seed = seed

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
                mask = symmetrize(logits.sigmoid(), batch.reverse)
                loss = self.loss(model, batch, mask, relevant)
                loss.backward()
                opt.step()
        finally:
            for param in model.parameters():
                param.requires_grad_(True)
        return logits.detach().sigmoid() * relevant, None

    @staticmethod
    def _relevant_edges(model: torch.nn.Module, batch: InstanceBatch, logits: Tensor) -> Tensor:
        """Edges whose mask can change the prediction (nonzero gradient of ``log p``), as PyG's
        ``hard_edge_mask``: a computation subgraph holds boundary edges whose messages never
        reach the explained node within ``L`` layers; they get no regulariser and score 0."""
        mask = symmetrize(logits.sigmoid(), batch.reverse)
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
