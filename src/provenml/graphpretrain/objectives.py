"""Contrastive pre-training objectives: NT-Xent, GraphCL and AD-GCL (swappable by name).

An objective owns whatever it trains besides the encoder (a projection head, AD-GCL's view
learner and its optimiser) and performs one optimisation step on a packed mini-batch with
:meth:`PretrainObjective.step`. The encoder only ever sees the constant topology input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from provenml.errors import ProvenmlError
from provenml.graphpretrain.augment import AUGMENTATIONS, augment
from provenml.graphpretrain.model import adam, encode, encoder_config, new_encoder
from provenml.graphpretrain.packed import PackedGraphs
from provenml.nn import GINEncoder, mlp

__all__ = ["ADGCL", "OBJECTIVES", "GraphCL", "PretrainObjective", "gumbel_sigmoid", "nt_xent"]


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.2) -> Tensor:
    """GraphCL's contrastive loss (You et al., NeurIPS 2020, eq. 3), AD-GCL's InfoNCE.

    ``l_n = -log( exp(s(z1_n, z2_n)/t) / sum_{n' != n} exp(s(z1_n, z2_n')/t) )`` averaged over
    the batch, with ``s`` the cosine similarity: the positive pair is the two views of one
    graph, the negatives the other graphs' second views.
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ProvenmlError(f"nt_xent needs two (batch, dim) tensors, got {z1.shape}, {z2.shape}")
    if z1.size(0) < 2:
        raise ProvenmlError("nt_xent needs at least two graphs per batch (one negative)")
    sim = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).t() / temperature
    positive = sim.diagonal()
    eye = torch.eye(sim.size(0), dtype=torch.bool, device=sim.device)
    negatives = torch.logsumexp(sim.masked_fill(eye, float("-inf")), dim=1)
    return (negatives - positive).mean()


def gumbel_sigmoid(logits: Tensor, uniform: Tensor, temperature: float = 1.0) -> Tensor:
    """The binary concrete relaxation (Maddison et al. 2017; Jang et al. 2017) that AD-GCL's
    augmenter samples edge weights with: ``sigmoid((log u - log(1 - u) + logit) / t)``."""
    u = uniform.clamp(1e-4, 1 - 1e-4)
    return torch.sigmoid((torch.log(u) - torch.log1p(-u) + logits) / temperature)


class PretrainObjective:
    """Base class: ``setup(encoder)`` builds the extra modules, ``step`` trains on a batch."""

    name: ClassVar[str] = ""

    def setup(self, encoder: GINEncoder, device: torch.device, lr: float) -> list[nn.Parameter]:
        """Build the objective's modules; return the parameters the encoder's optimiser also
        updates (a projection head)."""
        raise NotImplementedError

    def step(
        self,
        encoder: GINEncoder,
        batch: PackedGraphs,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
    ) -> dict[str, float]:
        raise NotImplementedError

    def _projection(self, encoder: GINEncoder, device: torch.device) -> nn.Module:
        if encoder.projection is not None:
            return encoder.projection
        return mlp(encoder.out_dim, [encoder.out_dim], encoder.out_dim).to(device)


class GraphCL(PretrainObjective):
    """GraphCL (You et al., NeurIPS 2020): two augmented views of each graph, NT-Xent.

    Each step draws one augmentation per view from ``augmentations`` (GraphCL's "random"
    mode) with ``strength`` 0.2 (GraphCL's default) and applies it to the whole batch.
    """

    name = "graphcl"

    def __init__(
        self,
        augmentations: Sequence[str] = ("edge_drop", "node_drop", "subgraph"),
        strength: float = 0.2,
        temperature: float = 0.2,
    ) -> None:
        unknown = [a for a in augmentations if a not in AUGMENTATIONS]
        if unknown or not augmentations:
            raise ProvenmlError(
                f"augmentations must be among {', '.join(AUGMENTATIONS)}, got {list(augmentations)}"
            )
        self.augmentations = tuple(augmentations)
        self.strength = strength
        self.temperature = temperature

    def setup(self, encoder: GINEncoder, device: torch.device, lr: float) -> list[nn.Parameter]:
        self.projection = self._projection(encoder, device)
        return [] if encoder.projection is not None else list(self.projection.parameters())

    def step(
        self,
        encoder: GINEncoder,
        batch: PackedGraphs,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
    ) -> dict[str, float]:
        picks = torch.randint(len(self.augmentations), (2,), generator=generator).tolist()
        view1 = augment(batch, self.augmentations[picks[0]], self.strength, generator)
        view2 = augment(batch, self.augmentations[picks[1]], self.strength, generator)
        z1 = self.projection(encode(encoder, view1))
        z2 = self.projection(encode(encoder, view2))
        loss = nt_xent(z1, z2, self.temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": float(loss.detach())}


class EdgeViewLearner(nn.Module):
    """AD-GCL's augmenter: a GIN over the graph, then an MLP on every edge's two end-node
    embeddings ``MLP([h_u, h_v])`` giving the edge's keep logit (Suresh et al. 2021, Sec. 3.2).

    The logit is made symmetric (the mean over both orders), so an undirected edge gets one;
    it is computed once per undirected edge. The MLP's first layer ``W [h_u, h_v]`` is split
    into ``W_1 h_u + W_2 h_v`` and applied per node, then gathered per edge.
    """

    def __init__(self, hidden: int, num_layers: int) -> None:
        super().__init__()
        self.encoder = new_encoder(hidden, num_layers)
        self.first = nn.Linear(2 * hidden, hidden)
        self.out = nn.Linear(hidden, 1)
        self.hidden = hidden

    def forward(self, batch: PackedGraphs) -> Tensor:
        h = self.encoder.layer_embeddings(
            torch.ones(batch.num_nodes, 1, device=batch.device), batch.edge_index
        )[-1]
        w_src, w_dst = self.first.weight[:, : self.hidden], self.first.weight[:, self.hidden :]
        a, b = h @ w_src.t(), h @ w_dst.t()
        edges = torch.arange(batch.num_edges, device=batch.device)
        canonical = (edges < batch.reverse).nonzero().view(-1)
        u, v = batch.edge_index[:, canonical]
        bias = self.first.bias
        score = 0.5 * (
            self.out(F.relu(a[u] + b[v] + bias)) + self.out(F.relu(a[v] + b[u] + bias))
        ).view(-1)
        logits = torch.empty(batch.num_edges, device=batch.device, dtype=score.dtype)
        logits[canonical] = score
        logits[batch.reverse[canonical]] = score
        return logits


class ADGCL(PretrainObjective):
    """AD-GCL (Suresh, Li, Hao, Neville, NeurIPS 2021): a learned edge-dropping view, min-max.

    The augmenter ``T`` (:class:`EdgeViewLearner`) gives every undirected edge a keep weight
    ``w_e = gumbel_sigmoid(logit_e)`` (Sec. 3.2); the view is the graph with messages scaled by
    ``w``. The encoder ``f`` minimises the InfoNCE loss ``L(f(G), f(t(G)))``; the augmenter
    maximises ``L - reg * mean_G mean_{e in G} (1 - w_e)`` (Sec. 3.3: without the penalty on
    the expected drop ratio it would drop every edge). One step = one augmenter step (encoder
    in eval mode, as the reference code) then one encoder step on a fresh view sample.
    ``reg = 5.0`` is AD-GCL-FIX's fixed value.
    """

    name = "adgcl"

    def __init__(
        self, reg: float = 5.0, temperature: float = 0.2, view_lr: float | None = None
    ) -> None:
        if reg < 0:
            raise ProvenmlError(f"reg must be >= 0, got {reg}")
        self.reg = reg
        self.temperature = temperature
        self.view_lr = view_lr

    def setup(self, encoder: GINEncoder, device: torch.device, lr: float) -> list[nn.Parameter]:
        config = encoder_config(encoder)
        self.projection = self._projection(encoder, device)
        self.view = EdgeViewLearner(config["hidden"], config["num_layers"]).to(device)
        self.view_optimizer = adam(self.view.parameters(), self.view_lr or lr, device)
        return [] if encoder.projection is not None else list(self.projection.parameters())

    def _weights(self, batch: PackedGraphs, generator: torch.Generator) -> Tensor:
        logits = self.view(batch)
        noise = torch.rand(batch.num_edges, generator=generator).to(batch.device)
        return gumbel_sigmoid(logits, noise[batch.canonical_edges()])

    def _drop_ratio(self, batch: PackedGraphs, weights: Tensor) -> Tensor:
        graph_of_edge = batch.batch[batch.edge_index[0]]
        drop = torch.zeros(batch.num_graphs, device=batch.device)
        drop.index_add_(0, graph_of_edge, 1.0 - weights)
        counts = batch.edges_per_graph
        has = counts > 0
        return (drop[has] / counts[has].float()).mean()

    def step(
        self,
        encoder: GINEncoder,
        batch: PackedGraphs,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
    ) -> dict[str, float]:
        # the augmenter: maximise the contrastive loss, minus the drop penalty. Only the
        # augmenter's parameters move here, and its gradient reaches them through the view's
        # edge weights alone: the anchor ``z`` has no path to them (computed without a graph),
        # and the backward pass is asked for the augmenter's gradients only, so autograd skips
        # the encoder's and projection's weight gradients (the encoder step below starts from
        # zero grads anyway)
        encoder.eval()
        self.view.train()
        weights = self._weights(batch, generator)
        with torch.no_grad():
            z = self.projection(encode(encoder, batch))
        z_view = self.projection(encode(encoder, batch, edge_weight=weights))
        drop_ratio = self._drop_ratio(batch, weights)
        view_objective = nt_xent(z, z_view, self.temperature) - self.reg * drop_ratio
        self.view_optimizer.zero_grad(set_to_none=True)
        (-view_objective).backward(inputs=list(self.view.parameters()))
        self.view_optimizer.step()
        # the encoder: minimise the contrastive loss against a fresh view
        encoder.train()
        self.view.eval()
        with torch.no_grad():
            weights = self._weights(batch, generator)
        z = self.projection(encode(encoder, batch))
        z_view = self.projection(encode(encoder, batch, edge_weight=weights))
        loss = nt_xent(z, z_view, self.temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": float(loss.detach()), "drop_ratio": float(drop_ratio.detach())}


OBJECTIVES: dict[str, type[PretrainObjective]] = {"graphcl": GraphCL, "adgcl": ADGCL}
