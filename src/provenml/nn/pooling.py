"""Graph readouts: pool node embeddings into one vector per graph of a PyG mini-batch.

Thin wrappers over ``torch_geometric.nn.global_add_pool`` / ``global_mean_pool`` (imported when
called, so ``import provenml.nn`` does not load PyG), with a ``batch=None`` default meaning "one
graph" and a pool chosen by name.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from provenml.errors import ProvenmlError

__all__ = ["POOLS", "Pool", "mean_pool", "pool", "sum_pool"]

Pool = Literal["sum", "mean"]
POOLS: tuple[str, ...] = ("sum", "mean")


def _graph_ids(x: Tensor, batch: Tensor | None) -> Tensor:
    if batch is None:
        return torch.zeros(x.size(0), dtype=torch.long, device=x.device)
    return batch


def sum_pool(x: Tensor, batch: Tensor | None = None, size: int | None = None) -> Tensor:
    """``h_G = sum_{v in G} h_v`` per graph (GIN's injective readout, Xu et al. 2019, eq. 4.2).

    ``x`` is (num_nodes, dim), ``batch`` the graph id of every node (``None``: one graph);
    returns (num_graphs, dim). ``size`` fixes the number of graphs (trailing empty graphs).
    """
    from torch_geometric.nn import global_add_pool

    return global_add_pool(x, _graph_ids(x, batch), size)


def mean_pool(x: Tensor, batch: Tensor | None = None, size: int | None = None) -> Tensor:
    """``h_G = mean_{v in G} h_v`` per graph; same shapes as :func:`sum_pool`."""
    from torch_geometric.nn import global_mean_pool

    return global_mean_pool(x, _graph_ids(x, batch), size)


def pool(
    x: Tensor, batch: Tensor | None = None, how: Pool = "sum", size: int | None = None
) -> Tensor:
    """The readout named ``how`` (one of :data:`POOLS`)."""
    if how == "sum":
        return sum_pool(x, batch, size)
    if how == "mean":
        return mean_pool(x, batch, size)
    raise ProvenmlError(f"unknown pool {how!r}; choose one of {', '.join(POOLS)}")
