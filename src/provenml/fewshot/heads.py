"""Few-shot heads behind one interface: ProtoNet, MatchingNet, GNN-FSL, EGNN and AdarGCN.

Every head maps a meta-batch of episodes, already encoded, to class log-probabilities of the
queries::

    out = head(support, support_labels, query, n_way)   # support [B, S, d], query [B, Q, d]
    out.log_probs                                       # [B, Q, n_way]
    loss = head.loss(out, support_labels, query_labels, n_way)

``support_labels`` hold episode labels ``0 .. n_way - 1``. All heads work on the whole
meta-batch at once (one tensor program, no loop over episodes or nodes) on any device. The graph
heads are inductive by default: the support nodes see the support only and each query sees the
support and itself, so a query's prediction never depends on the other queries.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from provenml.errors import ProvenmlError
from provenml.fewshot.adargcn import AdarGCN, layer_weights
from provenml.fewshot.graph import (
    LEAKY_SLOPE,
    EdgeMLP,
    same_label_edges,
    smooth_edge_labels,
)

_EPS = 1e-8


@dataclass
class HeadOutput:
    """Query class log-probabilities ``[B, Q, n_way]``, plus the graph heads' per-layer edge
    probabilities (``[B, S + Q, C]``, ``C`` the nodes with edges: the support, or all nodes
    in a transductive graph) and AdarGCN's node-wise gates (``[B, S + Q, heads]``)."""

    log_probs: Tensor
    edges: list[Tensor] = field(default_factory=list)
    gates: list[Tensor] = field(default_factory=list)

    def predictions(self) -> Tensor:
        return self.log_probs.argmax(-1)


class FewShotHead(nn.Module):
    """Base class of the heads: ``forward(support, support_labels, query, n_way)``."""

    name: ClassVar[str] = ""

    def forward(
        self, support: Tensor, support_labels: Tensor, query: Tensor, n_way: int
    ) -> HeadOutput:
        raise NotImplementedError

    def loss(
        self, output: HeadOutput, support_labels: Tensor, query_labels: Tensor, n_way: int
    ) -> Tensor:
        """Cross-entropy of the queries' predicted classes (edge heads override this)."""
        return F.nll_loss(output.log_probs.flatten(0, 1), query_labels.flatten())


def _check_episode(support: Tensor, support_labels: Tensor, query: Tensor, n_way: int) -> None:
    if support.dim() != 3 or query.dim() != 3:
        raise ProvenmlError(
            f"support and query must be [episodes, nodes, dim], got {list(support.shape)} "
            f"and {list(query.shape)}"
        )
    if support.shape[0] != query.shape[0] or support.shape[-1] != query.shape[-1]:
        raise ProvenmlError(
            f"support {list(support.shape)} and query {list(query.shape)} disagree in "
            "episodes or feature dim"
        )
    if support_labels.shape != support.shape[:2]:
        raise ProvenmlError(
            f"support_labels must be {list(support.shape[:2])}, got {list(support_labels.shape)}"
        )
    if n_way < 2:
        raise ProvenmlError(f"n_way must be >= 2, got {n_way}")


def _class_means(features: Tensor, labels: Tensor, n_way: int) -> Tensor:
    """Per-episode class means ``[B, n_way, d]`` (one batched matmul)."""
    onehot = F.one_hot(labels, n_way).to(features.dtype)  # [B, S, N]
    counts = onehot.sum(1).clamp_min(1).unsqueeze(-1)
    return onehot.transpose(1, 2) @ features / counts


class ProtoNet(FewShotHead):
    """Prototypical networks (Snell et al. 2017, eqs. 1-2): ``p(k|q) ∝ exp(-||q - c_k||²)``
    with ``c_k`` the mean of class ``k``'s support features."""

    name = "protonet"

    def __init__(self, d_in: int | None = None) -> None:
        super().__init__()

    def forward(
        self, support: Tensor, support_labels: Tensor, query: Tensor, n_way: int
    ) -> HeadOutput:
        _check_episode(support, support_labels, query, n_way)
        prototypes = _class_means(support, support_labels, n_way)
        return HeadOutput(F.log_softmax(-torch.cdist(query, prototypes).pow(2), dim=-1))


class MatchingNet(FewShotHead):
    """Matching networks (Vinyals et al. 2016, eqs. 1-2) without full-context embeddings:
    ``p(k|q) = sum_j a(q, s_j) 1[y_j = k]``, ``a`` a softmax of scaled cosine similarities."""

    name = "matchingnet"

    def __init__(self, d_in: int | None = None, temperature: float = 10.0) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(float(temperature)).log())

    def forward(
        self, support: Tensor, support_labels: Tensor, query: Tensor, n_way: int
    ) -> HeadOutput:
        _check_episode(support, support_labels, query, n_way)
        cosine = F.normalize(query, dim=-1) @ F.normalize(support, dim=-1).transpose(1, 2)
        attention = torch.softmax(self.log_scale.exp() * cosine, dim=-1)  # [B, Q, S]
        probs = attention @ F.one_hot(support_labels, n_way).to(attention.dtype)
        return HeadOutput(probs.clamp_min(_EPS).log())


def _graph_nodes(support: Tensor, query: Tensor) -> Tensor:
    return torch.cat([support, query], dim=1)


def _projection(d_in: int, d_hidden: int | None) -> nn.Module:
    """The graph heads' input map: linear to ``d_hidden`` then layer norm, so that the edge
    MLPs see features of a fixed scale whatever the encoder (the official code batch-norms)."""
    if not d_hidden:
        return nn.LayerNorm(d_in)
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.LayerNorm(d_hidden))


def _edge_columns(num_support: int, num_nodes: int, transductive: bool) -> int:
    return num_nodes if transductive else num_support


def _offdiagonal(num_rows: int, num_cols: int, device: torch.device) -> Tensor:
    return 1.0 - torch.eye(num_rows, num_cols, device=device)


def _edge_class_scores(edges: Tensor, support_labels: Tensor, n_way: int) -> Tensor:
    """Query log-probabilities from query-to-support edges: ``p(k|q) ∝ sum_{j: y_j=k} e_qj``."""
    num_support = support_labels.shape[1]
    query_to_support = edges[:, num_support:, :num_support]
    scores = query_to_support @ F.one_hot(support_labels, n_way).to(edges.dtype)
    return (scores / scores.sum(-1, keepdim=True).clamp_min(_EPS)).clamp_min(_EPS).log()


def edge_loss(
    edges: Sequence[Tensor],
    support_labels: Tensor,
    query_labels: Tensor,
    n_way: int,
    label_smoothing: float,
    intermediate_weight: float,
) -> Tensor:
    """Weighted binary cross-entropy of every layer's edges against ``1[y_i == y_j]``.

    The edge loss of EGNN (Kim et al. 2019) as AdarGCN trains it: targets smoothed to
    ``1 - eps`` and ``eps / (N - 1)``, self-edges left out, layer ``l < L`` weighted by
    ``intermediate_weight`` and the last layer by 1.
    """
    labels = torch.cat([support_labels, query_labels], dim=1)
    num_cols = edges[-1].shape[-1]
    target = smooth_edge_labels(
        same_label_edges(labels, labels[:, :num_cols]), label_smoothing, n_way
    )
    mask = _offdiagonal(labels.shape[1], num_cols, labels.device).expand_as(target)
    weights = layer_weights(len(edges), intermediate_weight).to(target.device)
    total = target.new_zeros(())
    for weight, layer_edges in zip(weights, edges, strict=True):
        bce = F.binary_cross_entropy(layer_edges.clamp(_EPS, 1 - _EPS), target, reduction="none")
        total = total + weight * (bce * mask).sum() / mask.sum()
    return total


class AdarGCNHead(FewShotHead):
    """AdarGCN for few-shot learning (Zhang et al., WACV 2021, Sec. 3).

    Nodes: the encoded support and queries (optionally projected to ``d_hidden``). Initial
    adjacency: 1 between support nodes of the same class, 0 between different classes, and
    ``initial_query_edge`` on query edges. The :class:`~provenml.fewshot.adargcn.AdarGCN` stack
    relearns the adjacency after each block; the prediction for query ``q`` is
    ``p(k|q) ∝ sum_{j in support, y_j = k} A_qj`` from the last block's edges, and training
    minimises :func:`edge_loss` over all blocks (label smoothing ``label_smoothing``,
    intermediate blocks weighted ``intermediate_weight``).

    ``steps=(1,), gated=False`` gives the plain-GCN ablation (:class:`GCNHead`).
    """

    name = "adargcn"

    def __init__(
        self,
        d_in: int,
        d_hidden: int | None = 32,
        d_head: int = 16,
        blocks: int = 3,
        steps: Sequence[int] = (0, 1, 2),
        gated: bool = True,
        edge_hidden: Sequence[int] = (16,),
        label_smoothing: float = 0.1,
        intermediate_weight: float = 0.5,
        initial_query_edge: float = 0.0,
        transductive: bool = False,
    ) -> None:
        super().__init__()
        self.project = _projection(d_in, d_hidden)
        self.network = AdarGCN(
            d_hidden or d_in, d_head, blocks, steps, gated, edge_hidden, groups=1
        )
        self.label_smoothing, self.intermediate_weight = label_smoothing, intermediate_weight
        self.initial_query_edge, self.transductive = initial_query_edge, transductive

    def initial_adjacency(self, support_labels: Tensor, num_query: int) -> Tensor:
        """``[B, S + Q, S + Q]``: support-support edges from the labels, query edges set to
        ``initial_query_edge`` (query rows to the support only, unless transductive)."""
        b, s = support_labels.shape
        n = s + num_query
        adjacency = support_labels.new_zeros((b, n, n), dtype=torch.float32)
        adjacency[:, :s, :s] = same_label_edges(support_labels, support_labels)
        if self.transductive:
            adjacency[:, s:, :] = self.initial_query_edge
            adjacency[:, :, s:] = self.initial_query_edge
        else:
            adjacency[:, s:, :s] = self.initial_query_edge
        return adjacency

    def forward(
        self, support: Tensor, support_labels: Tensor, query: Tensor, n_way: int
    ) -> HeadOutput:
        _check_episode(support, support_labels, query, n_way)
        nodes = self.project(_graph_nodes(support, query))
        adjacency = self.initial_adjacency(support_labels, query.shape[1]).to(nodes.dtype)
        cols = _edge_columns(support.shape[1], nodes.shape[1], self.transductive)
        graph = self.network(nodes, adjacency, num_columns=cols)
        return HeadOutput(
            _edge_class_scores(graph.edges[-1], support_labels, n_way),
            edges=graph.edges,
            gates=graph.gates,
        )

    def loss(
        self, output: HeadOutput, support_labels: Tensor, query_labels: Tensor, n_way: int
    ) -> Tensor:
        return edge_loss(
            output.edges,
            support_labels,
            query_labels,
            n_way,
            self.label_smoothing,
            self.intermediate_weight,
        )


class GCNHead(AdarGCNHead):
    """The ablation of AdarGCN without adaptive aggregation: every block is one one-hop graph
    convolution with no gate (same residual, adjacency updates, edge loss and prediction)."""

    name = "gcn"

    def __init__(self, d_in: int, **kwargs: Any) -> None:
        kwargs.setdefault("steps", (1,))
        kwargs.setdefault("gated", False)
        kwargs.setdefault("d_head", 64)  # as wide as the first AdarGCN block
        super().__init__(d_in, **kwargs)


class GNNFSL(FewShotHead):
    """The few-shot GNN of Garcia & Bruna (ICLR 2018).

    Node ``i`` starts as ``[phi(x_i) | h(l_i)]`` with ``h`` the one-hot label for the support
    and the uniform distribution for queries. Each layer learns an adjacency
    ``Ã = softmax_j(MLP(|x_i - x_j|))`` (self excluded; the identity is a separate operator),
    applies ``x' = LeakyReLU([x | Ã x] W)`` and concatenates ``x'`` to ``x`` (dense
    connections); a last graph layer maps each query node to ``n_way`` logits.
    """

    name = "gnn"

    def __init__(
        self,
        d_in: int,
        d_hidden: int | None = 32,
        d_layer: int = 24,
        layers: int = 2,
        n_way: int = 5,
        edge_hidden: Sequence[int] = (16,),
        transductive: bool = False,
    ) -> None:
        super().__init__()
        self.n_way, self.transductive = n_way, transductive
        self.project = _projection(d_in, d_hidden)
        dim = (d_hidden or d_in) + n_way
        self.edge_nets = nn.ModuleList()
        self.convs = nn.ModuleList()
        for _ in range(layers):
            self.edge_nets.append(EdgeMLP(dim, edge_hidden))
            self.convs.append(nn.Linear(2 * dim, d_layer))
            dim += d_layer
        self.last_edges = EdgeMLP(dim, edge_hidden)
        self.last_conv = nn.Linear(2 * dim, n_way)

    def _aggregate(self, edge_net: EdgeMLP, x: Tensor, cols: int) -> Tensor:
        logits = edge_net.logits(x, x[:, :cols])
        logits = logits.masked_fill(_offdiagonal(x.shape[1], cols, x.device) == 0, float("-inf"))
        return torch.softmax(logits, dim=-1) @ x[:, :cols]

    def forward(
        self, support: Tensor, support_labels: Tensor, query: Tensor, n_way: int
    ) -> HeadOutput:
        _check_episode(support, support_labels, query, n_way)
        if n_way != self.n_way:
            raise ProvenmlError(f"this GNN head was built for n_way={self.n_way}, got {n_way}")
        labels = torch.cat(
            [
                F.one_hot(support_labels, n_way).to(support.dtype),
                support.new_full((query.shape[0], query.shape[1], n_way), 1.0 / n_way),
            ],
            dim=1,
        )
        x = torch.cat([self.project(_graph_nodes(support, query)), labels], dim=-1)
        cols = _edge_columns(support.shape[1], x.shape[1], self.transductive)
        for edge_net, conv in zip(self.edge_nets, self.convs, strict=True):
            out = F.leaky_relu(conv(torch.cat([x, self._aggregate(edge_net, x, cols)], -1)))
            x = torch.cat([x, out], dim=-1)
        logits = self.last_conv(torch.cat([x, self._aggregate(self.last_edges, x, cols)], -1))
        return HeadOutput(F.log_softmax(logits[:, support.shape[1] :], dim=-1))


class EGNN(FewShotHead):
    """An edge-labelling GNN after Kim et al. (CVPR 2019).

    Edges carry a similarity and a dissimilarity ``(e^s, e^d)``, initialised from the support
    labels (``(1, 0)`` same class, ``(0, 1)`` different, ``(0.5, 0.5)`` for query edges). Node
    update: ``v_i' = MLP([v_i | sum_j ẽ^s_ij v_j | sum_j ẽ^d_ij v_j])`` with row-normalised
    edges; edge update: ``f_ij = sigmoid(MLP(|v_i' - v_j'|))``,
    ``e^s_ij ∝ f_ij e^s_ij / sum_k f_ik e^s_ik * sum_k e^s_ik`` (and ``1 - f`` for ``e^d``),
    renormalised so that ``e^s + e^d = 1``. Prediction and loss as AdarGCN: query-to-support
    similarities, edge BCE over layers.
    """

    name = "egnn"

    def __init__(
        self,
        d_in: int,
        d_hidden: int | None = 32,
        layers: int = 3,
        edge_hidden: Sequence[int] = (16,),
        label_smoothing: float = 0.1,
        intermediate_weight: float = 0.5,
        transductive: bool = False,
    ) -> None:
        super().__init__()
        dim = d_hidden or d_in
        self.project = _projection(d_in, d_hidden)
        self.node_nets = nn.ModuleList(
            nn.Sequential(nn.Linear(3 * dim, dim), nn.LeakyReLU(LEAKY_SLOPE)) for _ in range(layers)
        )
        self.edge_nets = nn.ModuleList(EdgeMLP(dim, edge_hidden) for _ in range(layers))
        self.label_smoothing, self.intermediate_weight = label_smoothing, intermediate_weight
        self.transductive = transductive

    def forward(
        self, support: Tensor, support_labels: Tensor, query: Tensor, n_way: int
    ) -> HeadOutput:
        _check_episode(support, support_labels, query, n_way)
        v = self.project(_graph_nodes(support, query))
        s, n = support.shape[1], v.shape[1]
        cols = _edge_columns(s, n, self.transductive)
        similar = v.new_full((v.shape[0], n, cols), 0.5)
        similar[:, :s, :s] = same_label_edges(support_labels, support_labels)
        offdiag = _offdiagonal(n, cols, v.device)
        dissimilar = 1.0 - similar
        edges = []
        for node_net, edge_net in zip(self.node_nets, self.edge_nets, strict=True):
            ws, wd = similar * offdiag, dissimilar * offdiag
            ws = ws / ws.sum(-1, keepdim=True).clamp_min(_EPS)
            wd = wd / wd.sum(-1, keepdim=True).clamp_min(_EPS)
            v = node_net(torch.cat([v, ws @ v[:, :cols], wd @ v[:, :cols]], dim=-1))
            f = edge_net(v, v[:, :cols])
            similar = _reweight(f, similar * offdiag)
            dissimilar = _reweight(1 - f, dissimilar * offdiag)
            total = (similar + dissimilar).clamp_min(_EPS)
            similar, dissimilar = similar / total, dissimilar / total
            edges.append(similar)
        return HeadOutput(_edge_class_scores(similar, support_labels, n_way), edges=edges)

    def loss(
        self, output: HeadOutput, support_labels: Tensor, query_labels: Tensor, n_way: int
    ) -> Tensor:
        return edge_loss(
            output.edges,
            support_labels,
            query_labels,
            n_way,
            self.label_smoothing,
            self.intermediate_weight,
        )


def _reweight(f: Tensor, e: Tensor) -> Tensor:
    """EGNN's edge update: ``f e / sum_k f e * sum_k e`` along the last dim."""
    fe = f * e
    return fe / fe.sum(-1, keepdim=True).clamp_min(_EPS) * e.sum(-1, keepdim=True)


HEADS: dict[str, type[FewShotHead]] = {
    cls.name: cls for cls in (ProtoNet, MatchingNet, GNNFSL, EGNN, GCNHead, AdarGCNHead)
}


def make_head(name: str, d_in: int, **hyperparameters: Any) -> FewShotHead:
    """Build a head by name (``"protonet"``, ``"matchingnet"``, ``"gnn"``, ``"egnn"``,
    ``"gcn"``, ``"adargcn"``) for encoder features of width ``d_in``."""
    key = name.lower()
    if key not in HEADS:
        close = difflib.get_close_matches(key, HEADS, n=2)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ProvenmlError(f"unknown few-shot head {name!r}{hint} (known: {', '.join(HEADS)})")
    try:
        return HEADS[key](d_in, **hyperparameters)
    except TypeError as exc:
        raise ProvenmlError(f"bad hyperparameters for head {key}: {exc}") from None
