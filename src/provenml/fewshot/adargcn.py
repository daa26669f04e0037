"""The AdarGCN network: adaptive-aggregation blocks with the adjacency relearned after each.

Shared by the few-shot head (:class:`provenml.fewshot.heads.AdarGCNHead`) and the label
denoiser (:class:`provenml.fewshot.denoise.LDN`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from provenml.errors import ProvenmlError
from provenml.fewshot.graph import (
    AdaptiveAggregationBlock,
    EdgeMLP,
    column_pad,
    normalized_adjacency,
)


@dataclass
class GraphPass:
    """What one pass of :class:`AdarGCN` produced.

    ``edges[l]`` holds the edge probabilities recomputed after block ``l`` for every row node
    and the first ``S`` (column) nodes, ``[..., N, S]``; ``gates[l]`` is ``[..., N, heads]``.
    """

    nodes: Tensor
    edges: list[Tensor] = field(default_factory=list)
    gates: list[Tensor] = field(default_factory=list)


class AdarGCN(nn.Module):
    """A stack of :class:`AdaptiveAggregationBlock` s (AdarGCN, Zhang et al. 2021, Fig. 2).

    Block ``l`` propagates with ``Â_l = D^-1/2 (A_l + I) D^-1/2``; after it, the adjacency is
    recomputed from the block's concatenated gated heads ``Z_l`` by an edge MLP on
    ``|z_i - z_j|``: ``A_{l+1} = sigmoid(MLP_l(|z_i - z_j|))``. Only columns ``< S``
    (``num_columns``) get edges, so in the inductive few-shot graph the support nodes see the
    support only and each query sees the support and itself; ``num_columns=None`` connects
    every pair (a transductive graph, or the denoiser's class graphs).
    """

    def __init__(
        self,
        d_in: int,
        d_head: int = 16,
        blocks: int = 3,
        steps: Sequence[int] = (0, 1, 2),
        gated: bool = True,
        edge_hidden: Sequence[int] = (16,),
        groups: int = 1,
    ) -> None:
        super().__init__()
        if blocks < 1:
            raise ProvenmlError(f"blocks must be >= 1, got {blocks}")
        self.blocks = nn.ModuleList()
        self.edge_nets = nn.ModuleList()
        dim = d_in
        for _ in range(blocks):
            block = AdaptiveAggregationBlock(dim, d_head, steps, gated, groups)
            self.blocks.append(block)
            self.edge_nets.append(EdgeMLP(block.out_dim, edge_hidden, groups))
            dim = block.out_dim
        self.out_dim = dim

    def forward(
        self,
        x: Tensor,
        adjacency: Tensor,
        num_columns: int | None = None,
        edge_mask: Tensor | None = None,
    ) -> GraphPass:
        """``x`` ``[..., N, d_in]``; ``adjacency`` ``[..., N, N]`` (unnormalised, in [0, 1]);
        ``edge_mask`` (``[..., N, S]``, 0 or 1), if given, removes edges from every relearned
        adjacency (the denoiser never links positives to negatives)."""
        n = x.shape[-2]
        cols = n if num_columns is None else num_columns
        out = GraphPass(nodes=x)
        normalised = normalized_adjacency(adjacency)
        h = x
        for block, edge_net in zip(self.blocks, self.edge_nets, strict=True):
            h, z, gates = block(h, normalised)
            edges = edge_net(z, z[..., :cols, :])
            if edge_mask is not None:
                edges = edges * edge_mask
            out.edges.append(edges)
            if gates is not None:
                out.gates.append(gates)
            normalised = normalized_adjacency(column_pad(edges, n))
        out.nodes = h
        return out


def layer_weights(num_layers: int, intermediate: float) -> Tensor:
    """Loss weights per layer: ``intermediate`` for all but the last, 1 for the last."""
    weights = torch.full((num_layers,), float(intermediate))
    weights[-1] = 1.0
    return weights
