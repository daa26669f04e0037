"""Message-passing encoders shared by the graph systems: a GCN node encoder and a GIN encoder.

Both stack ``num_layers`` PyG convolutions and keep every layer's node embeddings
(``layer_embeddings``), so a head can read the concatenation of all layers (the "jumping
knowledge" readout that GNNExplainer's GCN and GIN's graph readout use). PyG is imported when an
encoder is built, so ``import provenml.nn`` stays free of it.

    from provenml.nn import GINEncoder
    encoder = GINEncoder(in_dim=1, hidden=64, num_layers=3, batch_norm=True, projection_dim=64)
    z = encoder(batch.x, batch.edge_index, batch.batch)   # (num_graphs, 3 * 64)
    p = encoder.project(z)                                # contrastive-loss space
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from provenml.errors import ProvenmlError
from provenml.nn.mlp import mlp
from provenml.nn.pooling import POOLS, Pool, pool

__all__ = ["GCNEncoder", "GINEncoder"]


def _check_shape(in_dim: int, hidden: int, num_layers: int) -> None:
    if in_dim < 1 or hidden < 1 or num_layers < 1:
        raise ProvenmlError(
            f"in_dim, hidden and num_layers must be >= 1, got {in_dim}, {hidden}, {num_layers}"
        )


class GCNEncoder(nn.Module):
    """``num_layers`` GCN layers, each ``ReLU(BatchNorm(GCNConv(h)))``; node embeddings out.

    A layer is Kipf & Welling (ICLR 2017), eq. 2: ``H' = D^-1/2 (A + I) D^-1/2 H W`` (PyG's
    ``GCNConv``), followed by batch norm (``batch_norm=True``, as GNNExplainer's
    ``GcnEncoderNode``: without it a GCN on constant features stalls at 50-80% on Tree-Cycles)
    and a ReLU. ``forward`` returns the concatenation of all layers' embeddings,
    ``(num_nodes, num_layers * hidden)`` (:attr:`out_dim`).
    """

    def __init__(
        self, in_dim: int, hidden: int, num_layers: int = 3, *, batch_norm: bool = True
    ) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv

        _check_shape(in_dim, hidden, num_layers)
        dims = [in_dim] + [hidden] * num_layers
        self.convs = nn.ModuleList(GCNConv(a, b) for a, b in itertools.pairwise(dims))
        self.norms = nn.ModuleList(
            nn.BatchNorm1d(b) if batch_norm else nn.Identity() for b in dims[1:]
        )
        self.out_dim = hidden * num_layers

    def layer_embeddings(self, x: Tensor, edge_index: Tensor) -> list[Tensor]:
        """Every layer's node embeddings ``[H^(1), ..., H^(num_layers)]``."""
        layers = []
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = F.relu(norm(conv(x, edge_index)))
            layers.append(x)
        return layers

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return torch.cat(self.layer_embeddings(x, edge_index), dim=-1)


class GINEncoder(nn.Module):
    """``num_layers`` GIN layers with a per-layer graph readout; optional projection head.

    A layer is Xu et al., "How Powerful are Graph Neural Networks?" (ICLR 2019), eq. 4.1:
    ``h_v' = MLP((1 + eps) h_v + sum_{u in N(v)} h_u)`` with a two-layer MLP
    ``Linear - ReLU - Linear`` (PyG's ``GINConv``; ``eps`` learnt when ``train_eps``), followed
    by batch norm (when ``batch_norm``), a ReLU and dropout (when ``dropout > 0``, training only).
    Sum aggregation sees node degrees even on constant inputs, where GCN's normalised mean
    cannot.

    ``forward(x, edge_index, batch)`` is the graph embedding of eq. 4.2:
    ``h_G = concat_k POOL({h_v^(k) : v in G})``, ``(num_graphs, num_layers * hidden)``
    (:attr:`out_dim`), with ``pool`` ``"sum"`` (injective, the paper's choice) or ``"mean"``;
    :meth:`node_embeddings` gives the per-node concatenation instead. ``projection_dim`` adds
    a ``Linear - ReLU - Linear`` head (:meth:`project`) mapping a graph embedding to the space
    of a contrastive loss, as in SimCLR / GraphCL; it is built after the GIN layers, so the
    layers' initialisation does not depend on it.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        num_layers: int = 3,
        *,
        batch_norm: bool = False,
        dropout: float = 0.0,
        train_eps: bool = False,
        pool: Pool = "sum",
        projection_dim: int | None = None,
    ) -> None:
        super().__init__()
        from torch_geometric.nn import GINConv

        _check_shape(in_dim, hidden, num_layers)
        if pool not in POOLS:
            raise ProvenmlError(f"unknown pool {pool!r}; choose one of {', '.join(POOLS)}")
        if not 0.0 <= dropout < 1.0:
            raise ProvenmlError(f"dropout must be in [0, 1), got {dropout}")
        dims = [in_dim] + [hidden] * num_layers
        self.convs = nn.ModuleList(
            GINConv(mlp(a, [b], b), train_eps=train_eps) for a, b in itertools.pairwise(dims)
        )
        self.norms = nn.ModuleList(
            nn.BatchNorm1d(b) if batch_norm else nn.Identity() for b in dims[1:]
        )
        self.dropout = dropout
        self.pool: Pool = pool
        self.out_dim = hidden * num_layers
        self.projection = (
            mlp(self.out_dim, [self.out_dim], projection_dim) if projection_dim else None
        )

    def _layer(self, k: int, x: Tensor, edge_index: Tensor) -> Tensor:
        x = F.relu(self.norms[k](self.convs[k](x, edge_index)))
        if self.dropout > 0:
            x = F.dropout(x, self.dropout, self.training)
        return x

    def layer_embeddings(self, x: Tensor, edge_index: Tensor) -> list[Tensor]:
        """Every layer's node embeddings ``[h^(1), ..., h^(num_layers)]`` (eq. 4.1)."""
        layers = []
        for k in range(len(self.convs)):
            x = self._layer(k, x, edge_index)
            layers.append(x)
        return layers

    def node_embeddings(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """``concat_k h_v^(k)`` for every node, ``(num_nodes, out_dim)``."""
        return torch.cat(self.layer_embeddings(x, edge_index), dim=-1)

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor | None = None) -> Tensor:
        """Graph embeddings (eq. 4.2); ``batch=None`` means all nodes form one graph."""
        # each layer is pooled as soon as it is computed: the order in which autograd then
        # accumulates a layer's gradients (pool, next layer) is fixed, so results are
        # bit-for-bit those of the interleaved loop explain's classifier always used
        pooled = []
        for k in range(len(self.convs)):
            x = self._layer(k, x, edge_index)
            pooled.append(pool(x, batch, self.pool))
        return torch.cat(pooled, dim=-1)

    def project(self, z: Tensor) -> Tensor:
        """The projection head applied to graph embeddings ``z`` (needs ``projection_dim``)."""
        if self.projection is None:
            raise ProvenmlError("this GINEncoder has no projection head: pass projection_dim")
        return self.projection(z)
