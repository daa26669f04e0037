"""The explanation interface: ``Explanation``, ``InstanceBatch`` and ``ExplainerMethod``.

Every method explains a *prediction instance*: one node of a graph (node classification) or one
whole graph (graph classification). An instance is the graph the model actually sees for that
prediction: the ``L``-hop computation subgraph around a node (``L`` = number of message-passing
layers), or the whole graph. Many instances are collated into one disjoint graph, an
:class:`InstanceBatch`, so that a method optimises or differentiates all of them in one forward
pass (their outputs do not interact, because the graphs are disjoint).

Edge masks are applied with PyG's own mechanism (``torch_geometric.explain.algorithm.utils
.set_masks``): each message along edge ``e`` is multiplied by ``mask[e]`` in every
``MessagePassing`` layer, which is what ``torch_geometric.explain`` does, so any PyG model works.

Conventions for the model: a node classifier is called ``model(x, edge_index) -> [N, C]``, a
graph classifier ``model(x, edge_index, batch) -> [B, C]``; both return logits.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data
from torch_geometric.explain.algorithm.utils import clear_masks, set_masks
from torch_geometric.nn import MessagePassing

from provenml.errors import ProvenmlError

IndexLike = int | Sequence[int] | Tensor


@dataclass
class Explanation:
    """One explained prediction.

    ``x`` / ``edge_index`` are the instance's graph (the computation subgraph for a node),
    ``edge_mask[e]`` the importance of edge ``e`` (higher = more important; symmetric on
    undirected graphs), ``node_mask`` the importance of each node where the method gives one.
    ``index`` is the explained node's position in this subgraph (``None`` for a graph),
    ``node_id`` / ``edge_id`` map back to the original graph, ``target`` is the class explained
    (the model's prediction) and ``seconds`` the wall time spent on this explanation (a batch's
    time divided by its size).
    """

    x: Tensor
    edge_index: Tensor
    edge_mask: Tensor
    target: int
    node_id: Tensor
    edge_id: Tensor
    index: int | None = None
    node_mask: Tensor | None = None
    method: str = ""
    seconds: float = 0.0
    graph_id: int = 0

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.size(1))


def message_passing_layers(model: torch.nn.Module) -> list[MessagePassing]:
    """The model's PyG message-passing layers, in registration order."""
    return [m for m in model.modules() if isinstance(m, MessagePassing)]


def check_model(model: object) -> torch.nn.Module:
    """Raise a one-line :class:`ProvenmlError` unless ``model`` is a PyG model."""
    if not isinstance(model, torch.nn.Module):
        raise ProvenmlError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not message_passing_layers(model):
        raise ProvenmlError(
            f"model {type(model).__name__} has no torch_geometric MessagePassing layer; "
            "explainers need a PyG model (GCNConv, GINConv, ...)"
        )
    return model


def reverse_edge_ids(edge_index: Tensor, num_nodes: int) -> Tensor:
    """For each edge ``(u, v)`` the id of edge ``(v, u)``, or -1 where the graph lacks it."""
    src, dst = edge_index
    keys = src * num_nodes + dst
    order = torch.argsort(keys)
    sorted_keys = keys[order]
    rev_keys = dst * num_nodes + src
    pos = torch.searchsorted(sorted_keys, rev_keys).clamp(max=max(len(keys) - 1, 0))
    found = sorted_keys[pos] == rev_keys if len(keys) else torch.zeros(0, dtype=torch.bool)
    return torch.where(found, order[pos], torch.full_like(pos, -1))


def binary_entropy(mask: Tensor, eps: float = 1e-15) -> Tensor:
    """Element-wise ``-m log m - (1 - m) log(1 - m)``, finite (and with finite gradients) at
    ``m`` in ``{0, 1}``: the ``eps`` is added inside the logs, not by clamping ``m``."""
    return -(mask * (mask + eps).log() + (1 - mask) * (1 - mask + eps).log())


def symmetrize(mask: Tensor, reverse: Tensor) -> Tensor:
    """Average each edge's score with its reverse edge's (undirected graphs); shape ``[..., E]``."""
    has_rev = reverse >= 0
    if not bool(has_rev.any()):
        return mask
    partner = torch.where(has_rev, reverse, torch.arange(len(reverse), device=reverse.device))
    return (mask + mask[..., partner]) / 2


class InstanceBatch:
    """Many prediction instances collated into one disjoint graph.

    Attributes: ``x`` [N, F], ``edge_index`` [2, E], ``batch`` [N] (instance of each node),
    ``edge_batch`` [E], ``center`` [B] (global position of each explained node; ``None`` for
    graph tasks), ``target`` [B] (class explained), ``node_id`` / ``edge_id`` (ids in the
    original graph), ``graph_id`` [B], ``reverse`` [E] (reverse edge ids, -1 where absent).
    """

    def __init__(
        self,
        x: Tensor,
        edge_index: Tensor,
        batch: Tensor,
        edge_batch: Tensor,
        num_instances: int,
        center: Tensor | None,
        node_id: Tensor,
        edge_id: Tensor,
        graph_id: Tensor,
        target: Tensor | None = None,
    ) -> None:
        self.x, self.edge_index, self.batch, self.edge_batch = x, edge_index, batch, edge_batch
        self.num_instances, self.center = num_instances, center
        self.node_id, self.edge_id, self.graph_id = node_id, edge_id, graph_id
        self.reverse = reverse_edge_ids(edge_index, x.size(0))
        self.target = target if target is not None else torch.zeros(0, dtype=torch.long)

    # -- construction -----------------------------------------------------------------------
    @property
    def task(self) -> str:
        return "graph" if self.center is None else "node"

    @property
    def num_nodes(self) -> int:
        return int(self.x.size(0))

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.size(1))

    @classmethod
    def from_nodes(cls, data: Data, index: Tensor, num_hops: int) -> InstanceBatch:
        """The ``num_hops``-hop computation subgraphs of the nodes ``index``, all at once.

        Reachability is one boolean ``[B, N]`` matrix grown by ``num_hops`` sparse products,
        so no per-node Python loop builds the subgraphs.
        """
        _check_graph(data)
        num_nodes = int(data.num_nodes)
        src, dst = data.edge_index
        reach = torch.zeros(len(index), num_nodes, dtype=torch.bool)
        reach[torch.arange(len(index)), index] = True
        for _ in range(num_hops):  # messages flow src -> dst: a node hears its in-neighbours
            grown = reach.clone()
            hit = reach[:, dst]
            rows, cols = hit.nonzero(as_tuple=True)
            grown[rows, src[cols]] = True
            reach = grown
        inst, nodes = reach.nonzero(as_tuple=True)  # sorted by instance, then node
        local = torch.full((len(index), num_nodes), -1, dtype=torch.long)
        local[inst, nodes] = torch.arange(len(nodes))
        edge_in = reach[:, src] & reach[:, dst]
        e_inst, edges = edge_in.nonzero(as_tuple=True)
        edge_index = torch.stack([local[e_inst, src[edges]], local[e_inst, dst[edges]]])
        return cls(
            x=data.x[nodes],
            edge_index=edge_index,
            batch=inst,
            edge_batch=e_inst,
            num_instances=len(index),
            center=local[torch.arange(len(index)), index],
            node_id=nodes,
            edge_id=edges,
            graph_id=torch.zeros(len(index), dtype=torch.long),
        )

    @classmethod
    def from_graphs(cls, graphs: Sequence[Data], graph_ids: Sequence[int] | None = None):
        """Whole graphs (graph classification), collated with PyG's :class:`Batch`."""
        if len(graphs) == 0:
            raise ProvenmlError("no graphs to explain")
        for g in graphs:
            _check_graph(g)
        big = Batch.from_data_list([Data(x=g.x, edge_index=g.edge_index) for g in graphs])
        edge_batch = big.batch[big.edge_index[0]]
        ptr = big.ptr
        ids = torch.arange(len(graphs)) if graph_ids is None else torch.as_tensor(graph_ids)
        return cls(
            x=big.x,
            edge_index=big.edge_index,
            batch=big.batch,
            edge_batch=edge_batch,
            num_instances=len(graphs),
            center=None,
            node_id=torch.arange(big.num_nodes) - ptr[big.batch],
            edge_id=torch.cat([torch.arange(g.edge_index.size(1)) for g in graphs]),
            graph_id=ids.long(),
        )

    @classmethod
    def from_explanations(cls, explanations: Sequence[Explanation]) -> InstanceBatch:
        """Re-collate explanations (each already a small graph) for batched metrics."""
        if len(explanations) == 0:
            raise ProvenmlError("no explanations given")
        graphs = [Data(x=e.x, edge_index=e.edge_index) for e in explanations]
        out = cls.from_graphs(graphs, [e.graph_id for e in explanations])
        if explanations[0].index is not None:
            big_ptr = torch.tensor([0] + [g.num_nodes for g in graphs]).cumsum(0)[:-1]
            out.center = big_ptr + torch.tensor([int(e.index or 0) for e in explanations])
        out.target = torch.tensor([e.target for e in explanations])
        out.node_id = torch.cat([e.node_id for e in explanations])
        out.edge_id = torch.cat([e.edge_id for e in explanations])
        return out

    def replicate(self, copies: int) -> InstanceBatch:
        """``copies`` stacked copies of this batch (copy-major), for many masks in one pass."""
        n, e, b = self.num_nodes, self.num_edges, self.num_instances
        shift = torch.arange(copies).repeat_interleave(e) * n
        out = InstanceBatch(
            x=self.x.repeat(copies, 1),
            edge_index=self.edge_index.repeat(1, copies) + shift,
            batch=(self.batch.repeat(copies) + torch.arange(copies).repeat_interleave(n) * b),
            edge_batch=self.edge_batch.repeat(copies)
            + torch.arange(copies).repeat_interleave(e) * b,
            num_instances=b * copies,
            center=None
            if self.center is None
            else self.center.repeat(copies) + torch.arange(copies).repeat_interleave(b) * n,
            node_id=self.node_id.repeat(copies),
            edge_id=self.edge_id.repeat(copies),
            graph_id=self.graph_id.repeat(copies),
            target=self.target.repeat(copies) if len(self.target) else None,
        )
        return out

    # -- model calls -------------------------------------------------------------------------
    def logits(
        self, model: torch.nn.Module, edge_mask: Tensor | None = None, x: Tensor | None = None
    ) -> Tensor:
        """The model's logits ``[B, C]`` for every instance, messages scaled by ``edge_mask``."""
        x = self.x if x is None else x
        if edge_mask is not None:
            set_masks(model, edge_mask, self.edge_index, apply_sigmoid=False)
        try:
            if self.center is None:
                return model(x, self.edge_index, self.batch)
            return model(x, self.edge_index)[self.center]
        finally:
            if edge_mask is not None:
                clear_masks(model)

    def target_logit(
        self, model: torch.nn.Module, edge_mask: Tensor | None = None, x: Tensor | None = None
    ) -> Tensor:
        """The raw logit of each instance's target class, shape ``[B]``."""
        return self.logits(model, edge_mask, x).gather(1, self.target.view(-1, 1)).squeeze(1)

    def target_log_prob(
        self, model: torch.nn.Module, edge_mask: Tensor | None = None, x: Tensor | None = None
    ) -> Tensor:
        """``log p(target | masked instance)`` per instance, shape ``[B]``."""
        logp = self.logits(model, edge_mask, x).log_softmax(-1)
        return logp.gather(1, self.target.view(-1, 1)).squeeze(1)

    def split(
        self,
        edge_mask: Tensor,
        node_mask: Tensor | None,
        method: str,
        seconds: float,
    ) -> list[Explanation]:
        """Cut per-edge / per-node scores back into one :class:`Explanation` per instance."""
        edge_counts = torch.bincount(self.edge_batch, minlength=self.num_instances).tolist()
        node_counts = torch.bincount(self.batch, minlength=self.num_instances).tolist()
        node_starts = torch.tensor([0, *node_counts]).cumsum(0)
        per = seconds / max(self.num_instances, 1)
        xs = self.x.split(node_counts)
        eis = self.edge_index.split(edge_counts, dim=1)
        ems = edge_mask.detach().split(edge_counts)
        nms = node_mask.detach().split(node_counts) if node_mask is not None else None
        nids, eids = self.node_id.split(node_counts), self.edge_id.split(edge_counts)
        out = []
        for i in range(self.num_instances):
            start = int(node_starts[i])
            out.append(
                Explanation(
                    x=xs[i],
                    edge_index=eis[i] - start,
                    edge_mask=ems[i],
                    node_mask=None if nms is None else nms[i],
                    target=int(self.target[i]),
                    node_id=nids[i],
                    edge_id=eids[i],
                    index=None if self.center is None else int(self.center[i]) - start,
                    method=method,
                    seconds=per,
                    graph_id=int(self.graph_id[i]),
                )
            )
        return out


def _check_graph(data: Data) -> None:
    if getattr(data, "x", None) is None:
        raise ProvenmlError("the graph has no node features `x`")
    if data.edge_index is None or data.edge_index.numel() == 0:
        raise ProvenmlError("the graph has no edges; there is nothing for an edge mask to explain")


def _as_index(index: IndexLike, num_nodes: int) -> Tensor:
    idx = torch.as_tensor(index, dtype=torch.long).view(-1)
    if idx.numel() == 0:
        raise ProvenmlError("index is empty; give at least one node to explain")
    bad = (idx < 0) | (idx >= num_nodes)
    if bool(bad.any()):
        raise ProvenmlError(
            f"node index {int(idx[bad][0])} is out of range for a graph of {num_nodes} nodes"
        )
    return idx


class ExplainerMethod(ABC):
    """Base class of every explainer: ``explain(model, data, index=None) -> Explanation``.

    Subclasses implement :meth:`attribute`, which scores every edge (and optionally node) of an
    :class:`InstanceBatch` at once. ``index=None`` explains a graph-level prediction; an int
    index explains that node. :meth:`explain_batch` explains many nodes or graphs in one call.
    """

    name: ClassVar[str] = "method"
    #: whether attribution needs gradients through the model (else runs under no_grad)
    needs_grad: ClassVar[bool] = True

    @abstractmethod
    def attribute(
        self, model: torch.nn.Module, batch: InstanceBatch
    ) -> tuple[Tensor, Tensor | None]:
        """Edge scores ``[E]`` (and node scores ``[N]`` or ``None``) for the whole batch."""

    def explain(self, model: torch.nn.Module, data: Data, index: int | None = None):
        """Explain one node (``index``) or, with ``index=None``, the graph-level prediction."""
        if index is None:
            return self.explain_batch(model, [data])[0]
        if not isinstance(index, int):
            raise ProvenmlError("explain() takes one int index; use explain_batch for many")
        return self.explain_batch(model, data, index=[index])[0]

    def explain_batch(
        self,
        model: torch.nn.Module,
        data: Data | Sequence[Data],
        index: IndexLike | None = None,
    ) -> list[Explanation]:
        """Explain many nodes of one graph (``index``) or many graphs (``data`` a list)."""
        batch = self.prepare(model, data, index)
        start = time.perf_counter()
        edge_mask, node_mask = self._run(model, batch)
        return batch.split(edge_mask, node_mask, self.name, time.perf_counter() - start)

    def _run(self, model: torch.nn.Module, batch: InstanceBatch) -> tuple[Tensor, Tensor | None]:
        if self.needs_grad:
            edge_mask, node_mask = self.attribute(model, batch)
        else:
            with torch.no_grad():
                edge_mask, node_mask = self.attribute(model, batch)
        return symmetrize(edge_mask.detach().float(), batch.reverse), node_mask

    @staticmethod
    def prepare(
        model: torch.nn.Module,
        data: Data | Sequence[Data],
        index: IndexLike | None = None,
        num_hops: int | None = None,
    ) -> InstanceBatch:
        """Validate inputs, build the instance batch and fix each target (model's prediction)."""
        check_model(model)
        model.eval()
        if index is None:
            graphs = [data] if isinstance(data, Data) else list(data)
            batch = InstanceBatch.from_graphs(graphs)
        else:
            if not isinstance(data, Data):
                raise ProvenmlError("node explanations take one graph (a torch_geometric Data)")
            _check_graph(data)
            idx = _as_index(index, int(data.num_nodes))
            hops = num_hops or len(message_passing_layers(model))
            batch = InstanceBatch.from_nodes(data, idx, hops)
        with torch.no_grad():
            batch.target = batch.logits(model).argmax(-1)
        return batch
