"""The encoder side of ToP: constant inputs, edge-weighted encoding, feature input layers, the
fine-tuning model, and saving / loading a pre-trained encoder.

The encoder is :class:`provenml.nn.GINEncoder` (GIN, not GCN: with constant inputs a GCN's
normalised mean aggregation cannot see degrees, GIN's sum can). In ToP (Davies et al., arXiv
2311.03976, Sec. 3) the model is pre-trained on structure alone: :class:`TopologyOnly` strips a
graph to its edges and the encoder's input is a constant column of ones.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from provenml.errors import ProvenmlError
from provenml.graphpretrain.packed import Level, PackedGraphs
from provenml.nn import GINEncoder, mlp, sum_pool

if TYPE_CHECKING:
    from torch_geometric.data import Data

__all__ = [
    "FineTuneModel",
    "TopologyOnly",
    "adam",
    "edge_weights",
    "encode",
    "encoder_config",
    "load_encoder",
    "new_encoder",
    "save_encoder",
    "topology_inputs",
    "with_feature_input",
]


class TopologyOnly:
    """Strip a PyG ``Data`` to its topology: ``edge_index`` and ``num_nodes``, with a constant
    node input ``x = ones(num_nodes, 1)``; node features, edge features and targets are gone.

    ``TopologyOnly()(data)`` returns the stripped copy (use it as a PyG-style transform);
    :func:`~provenml.graphpretrain.pretrain` reads nothing but the topology of the graphs it is
    given, and feeds the encoder :func:`topology_inputs`.
    """

    def __call__(self, data: Data) -> Data:
        from torch_geometric.data import Data

        if getattr(data, "edge_index", None) is None:
            raise ProvenmlError("TopologyOnly needs a Data with edge_index")
        n = int(data.num_nodes)
        return Data(edge_index=data.edge_index.clone(), num_nodes=n, x=torch.ones(n, 1))

    def __repr__(self) -> str:
        return "TopologyOnly()"


def topology_inputs(batch: PackedGraphs) -> Tensor:
    """The constant node input of topology-only encoding: a column of ones."""
    return torch.ones(batch.num_nodes, 1, device=batch.device)


@contextmanager
def edge_weights(module: nn.Module, batch: PackedGraphs, edge_weight: Tensor) -> Iterator[None]:
    """Scale every message ``h_u -> v`` of ``module``'s PyG layers by its edge's weight.

    PyG's own edge-mask mechanism (``torch_geometric.explain``'s ``set_masks``: each
    ``MessagePassing`` layer multiplies its messages by the mask), removed on exit. Gradients
    flow into ``edge_weight``.
    """
    from torch_geometric.explain.algorithm.utils import clear_masks, set_masks

    set_masks(module, edge_weight, batch.edge_index, apply_sigmoid=False)
    try:
        yield
    finally:
        clear_masks(module)


def encode(
    encoder: GINEncoder,
    batch: PackedGraphs,
    *,
    x: Tensor | None = None,
    edge_weight: Tensor | None = None,
    level: Level = "graph",
) -> Tensor:
    """Graph (or node) embeddings of ``batch``; ``x`` defaults to the constant input.

    With ``edge_weight`` (one weight per stored edge) each message ``h_u`` is scaled by its
    edge's weight, as AD-GCL's augmented view needs (Suresh et al., NeurIPS 2021, Sec. 3.2).
    """
    inputs = topology_inputs(batch) if x is None else x
    if edge_weight is not None:
        with edge_weights(encoder, batch, edge_weight):
            return encode(encoder, batch, x=inputs, level=level)
    if level == "node":
        return encoder.node_embeddings(inputs, batch.edge_index)
    return encoder(inputs, batch.edge_index, batch.batch)


def encoder_config(encoder: GINEncoder) -> dict[str, Any]:
    """The constructor arguments that rebuild ``encoder`` (read from its layers)."""
    if not isinstance(encoder, GINEncoder):
        raise ProvenmlError(f"expected a provenml.nn.GINEncoder, got {type(encoder).__name__}")
    first = encoder.convs[0].nn
    return {
        "in_dim": int(first[0].in_features),
        "hidden": int(first[-1].out_features),
        "num_layers": len(encoder.convs),
        "batch_norm": isinstance(encoder.norms[0], nn.BatchNorm1d),
        "dropout": float(encoder.dropout),
        "train_eps": bool(getattr(encoder.convs[0], "eps", torch.zeros(1)).requires_grad),
        "pool": encoder.pool,
        "projection_dim": (
            None if encoder.projection is None else int(encoder.projection[-1].out_features)
        ),
    }


def adam(
    params: Iterable[nn.Parameter], lr: float, device: torch.device | str = "cpu"
) -> torch.optim.Adam:
    """Adam, fused into one kernel per step where torch has one (CPU, CUDA): on these small
    models the per-parameter loop of the default implementation costs more than the maths."""
    fused = torch.device(device).type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=lr, fused=fused)


def new_encoder(hidden: int = 64, num_layers: int = 3, *, in_dim: int = 1) -> GINEncoder:
    """ToP's encoder: a GIN with batch norm and sum readout over constant (``in_dim=1``)
    inputs."""
    return GINEncoder(in_dim, hidden, num_layers, batch_norm=True)


def save_encoder(encoder: GINEncoder, path: str | Path) -> Path:
    """Write the encoder's weights and its constructor arguments to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": encoder_config(encoder), "state": encoder.state_dict()}, path)
    return path


def load_encoder(path: str | Path, map_location: str | torch.device = "cpu") -> GINEncoder:
    """The encoder saved at ``path`` by :func:`save_encoder`."""
    path = Path(path)
    if not path.exists():
        raise ProvenmlError(f"no saved encoder at {path}")
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or "config" not in payload or "state" not in payload:
        raise ProvenmlError(f"{path} is not an encoder written by save_encoder")
    encoder = GINEncoder(**payload["config"])
    encoder.load_state_dict(payload["state"])
    return encoder


def with_feature_input(encoder: GINEncoder, feature_dim: int) -> GINEncoder:
    """A copy of a topology-only encoder that also reads ``feature_dim`` node features.

    The input becomes ``[1, x_v]``: the first GIN layer's first linear map gains
    ``feature_dim`` input columns, initialised to zero, so the copy computes exactly the
    pre-trained function until fine-tuning moves the new weights (ToP's feature-aware
    fine-tuning adds an input layer in front of the pre-trained model; this is the linear
    input layer folded into the first layer, which GIN's sum aggregation commutes with).
    """
    if feature_dim < 1:
        raise ProvenmlError(f"feature_dim must be >= 1, got {feature_dim}")
    config = encoder_config(encoder)
    if config["in_dim"] != 1:
        raise ProvenmlError("with_feature_input expects a topology-only encoder (in_dim=1)")
    widened = copy.deepcopy(encoder)
    old = widened.convs[0].nn[0]
    new = nn.Linear(1 + feature_dim, old.out_features, device=old.weight.device)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, :1] = old.weight
        new.bias.copy_(old.bias)
    widened.convs[0].nn[0] = new
    return widened


class FineTuneModel(nn.Module):
    """An encoder and a fresh head: ``head(encode(batch))`` per graph or per node.

    For node-level targets the head reads ``[h_v, h_G]`` (the node's embedding and its
    graph's). The head is batch norm then ``Linear - ReLU - Linear``: the batch norm
    standardises the sum-pooled embeddings, whose scale grows with graph size, as a linear
    probe's standardisation does.

    ``feature_dim > 0`` feeds ``[1, x]`` (the constant channel and the node features) to an
    encoder built for ``1 + feature_dim`` inputs (see :func:`with_feature_input`).
    """

    def __init__(
        self, encoder: GINEncoder, out_dim: int, *, level: Level = "graph", feature_dim: int = 0
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.level: Level = level
        self.feature_dim = feature_dim
        # a node-level head also reads its graph's embedding (the sum of its nodes'), so a
        # target relative to the whole graph (eccentricity / n) is within its reach
        width = encoder.out_dim * (2 if level == "node" else 1)
        # sum-pooled embeddings grow with graph size: the head standardises them first
        self.head = nn.Sequential(
            nn.BatchNorm1d(width), mlp(width, [width // 2 if width >= 4 else width], out_dim)
        )

    def forward(self, batch: PackedGraphs) -> Tensor:
        x = None
        if self.feature_dim:
            if batch.x is None:
                raise ProvenmlError("this model reads node features, but the batch has none")
            x = torch.cat([topology_inputs(batch), batch.x], dim=1)
        embeddings = encode(self.encoder, batch, x=x, level=self.level)
        if self.level == "node":
            graphs = sum_pool(embeddings, batch.batch, batch.num_graphs)
            embeddings = torch.cat([embeddings, graphs[batch.batch]], dim=1)
        return self.head(embeddings)
