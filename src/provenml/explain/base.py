"""The explanation interface: ``Explanation``, ``InstanceBatch`` and ``ExplainerMethod``.

Every method explains a *prediction instance*: one node of a graph (node classification) or one
whole graph (graph classification). An instance is the graph the model actually sees for that
prediction: the ``L``-hop computation subgraph around a node (``L`` = number of message-passing
layers), or the whole graph. Many instances are collated into one disjoint graph, an
:class:`InstanceBatch`, so that a method optimises or differentiates all of them in one forward
pass (their outputs do not interact, because the graphs are disjoint).

**Exactness.** The ``L``-hop subgraph alone does not reproduce the model's output for
degree-normalised layers: PyG's ``GCNConv`` scales the message ``u -> v`` by
``1/sqrt(deg(u) deg(v))`` (Kipf & Welling, eq. 2), and a node ``u`` at distance ``L`` loses its
edges to distance ``L + 1`` in the cut, so its degree, its messages and finally the explained
node's logits change. So a node instance also carries *context*: every in-edge of its ``L``-hop
nodes whose source lies outside (the sources are the ``(L + 1)``-hop ring). Those edges restore
every receiver's true in-degree (and a mean or attention aggregator's true neighbourhood), and
their messages reach the explained node only after ``L + 1`` layers, so they never change what
is explained: explainers score, and metrics mask, only the ``L``-hop edges; the context edges
are always kept (mask 1). :meth:`ExplainerMethod.prepare` checks the result: the subgraph's
logits must equal the full graph's for every explained node (else a :class:`ProvenmlError`,
e.g. for APPNP-style layers that propagate more than one hop: pass ``num_hops=``), and every
:class:`Explanation` records the full-graph logits it explains.

Edge masks are applied with PyG's own mechanism (``torch_geometric.explain.algorithm.utils
.set_masks``): each message along edge ``e`` is multiplied by ``mask[e]`` in every
``MessagePassing`` layer, which is what ``torch_geometric.explain`` does, so any PyG model works.

Conventions for the model: a node classifier is called ``model(x, edge_index) -> [N, C]``, a
graph classifier ``model(x, edge_index, batch) -> [B, C]``; both return logits.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
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

    ``logits`` are the model's logits for the instance on the *full* graph (the prediction
    explained; ``target`` is their argmax). ``context_x`` / ``context_edge_index`` are the
    context nodes and edges (row 0 indexes ``context_x``, row 1 indexes ``x``) that keep the
    subgraph's output equal to the full graph's; they are never scored or masked.
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
    logits: Tensor | None = None
    context_x: Tensor | None = None
    context_edge_index: Tensor | None = None

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

    Attributes: ``x`` [N, F], ``edge_index`` [2, E] (the edges explained), ``batch`` [N]
    (instance of each node), ``edge_batch`` [E], ``center`` [B] (global position of each
    explained node; ``None`` for graph tasks), ``target`` [B] (class explained), ``node_id`` /
    ``edge_id`` (ids in the original graph), ``graph_id`` [B], ``reverse`` [E] (reverse edge
    ids, -1 where absent), ``logits`` [B, C] (full-graph logits, once :meth:`ExplainerMethod
    .prepare` has checked them). Node instances also hold their context (see the module
    docstring): ``context_x`` [Nc, F], ``context_batch`` [Nc] and ``context_edge_index``
    [2, Ec] (row 0 indexes ``context_x``, row 1 indexes ``x``), grouped by instance.
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
        context_x: Tensor | None = None,
        context_batch: Tensor | None = None,
        context_edge_index: Tensor | None = None,
    ) -> None:
        self.x, self.edge_index, self.batch, self.edge_batch = x, edge_index, batch, edge_batch
        self.num_instances, self.center = num_instances, center
        self.node_id, self.edge_id, self.graph_id = node_id, edge_id, graph_id
        self.reverse = reverse_edge_ids(edge_index, x.size(0))
        self.target = target if target is not None else torch.zeros(0, dtype=torch.long)
        self.logits_full: Tensor | None = None
        self._context_cache: tuple[Tensor, Tensor, Tensor, Tensor, Tensor] | None = None
        self._norms: tuple[Tensor, dict[tuple[object, ...], tuple[Tensor, Tensor]]] | None = None
        empty = torch.zeros(0, dtype=torch.long)
        self.context_x = x[:0] if context_x is None else context_x
        self.context_batch = empty if context_batch is None else context_batch
        self.context_edge_index = (
            torch.zeros(2, 0, dtype=torch.long)
            if context_edge_index is None
            else context_edge_index
        )

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

    @property
    def num_context_edges(self) -> int:
        return int(self.context_edge_index.size(1))

    @classmethod
    def from_nodes(cls, data: Data, index: Tensor, num_hops: int) -> InstanceBatch:
        """The ``num_hops``-hop computation subgraphs of the nodes ``index``, all at once, each
        with its context (the in-edges of its nodes that come from outside; module docstring).

        Reachability is one boolean ``[B, N]`` matrix grown by ``num_hops`` sparse products,
        so no per-node Python loop builds the subgraphs.
        """
        _check_graph(data)
        num_nodes = int(data.num_nodes)
        src, dst = data.edge_index
        rows = torch.arange(len(index))
        reach = torch.zeros(len(index), num_nodes, dtype=torch.bool)
        reach[rows, index] = True
        for _ in range(num_hops):  # messages flow src -> dst: a node hears its in-neighbours
            grown = reach.clone()
            hit = reach[:, dst]
            r, cols = hit.nonzero(as_tuple=True)
            grown[r, src[cols]] = True
            reach = grown
        inst, nodes = reach.nonzero(as_tuple=True)  # sorted by instance, then node
        local = torch.full((len(index), num_nodes), -1, dtype=torch.long)
        local[inst, nodes] = torch.arange(len(nodes))
        into = reach[:, dst]
        edge_in = into & reach[:, src]
        e_inst, edges = edge_in.nonzero(as_tuple=True)
        edge_index = torch.stack([local[e_inst, src[edges]], local[e_inst, dst[edges]]])
        # context: in-edges of the subgraph's nodes from outside it, and their sources
        c_inst, c_edges = (into & ~reach[:, src]).nonzero(as_tuple=True)
        outside = torch.zeros(len(index), num_nodes, dtype=torch.bool)
        outside[c_inst, src[c_edges]] = True
        o_inst, o_nodes = outside.nonzero(as_tuple=True)
        o_local = torch.full((len(index), num_nodes), -1, dtype=torch.long)
        o_local[o_inst, o_nodes] = torch.arange(len(o_nodes))
        context_edge_index = torch.stack(
            [o_local[c_inst, src[c_edges]], local[c_inst, dst[c_edges]]]
        )
        return cls(
            x=data.x[nodes],
            edge_index=edge_index,
            batch=inst,
            edge_batch=e_inst,
            num_instances=len(index),
            center=local[rows, index],
            node_id=nodes,
            edge_id=edges,
            graph_id=torch.zeros(len(index), dtype=torch.long),
            context_x=data.x[o_nodes],
            context_batch=o_inst,
            context_edge_index=context_edge_index,
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
        """Re-collate explanations (each already a small graph, with its context) for batched
        metrics."""
        if len(explanations) == 0:
            raise ProvenmlError("no explanations given")
        graphs = [Data(x=e.x, edge_index=e.edge_index) for e in explanations]
        out = cls.from_graphs(graphs, [e.graph_id for e in explanations])
        if explanations[0].index is not None:
            big_ptr = torch.tensor([0] + [g.num_nodes for g in graphs]).cumsum(0)[:-1]
            out.center = big_ptr + torch.tensor([int(e.index or 0) for e in explanations])
            ctx_x, ctx_batch, ctx_edges = [], [], []
            ctx_start = 0
            for i, e in enumerate(explanations):
                if e.context_x is None or e.context_edge_index is None:
                    continue
                shift = torch.tensor([[ctx_start], [int(big_ptr[i])]])
                ctx_x.append(e.context_x)
                ctx_batch.append(torch.full((e.context_x.size(0),), i, dtype=torch.long))
                ctx_edges.append(e.context_edge_index + shift)
                ctx_start += e.context_x.size(0)
            if ctx_x:
                out.context_x = torch.cat(ctx_x)
                out.context_batch = torch.cat(ctx_batch)
                out.context_edge_index = torch.cat(ctx_edges, dim=1)
        out.target = torch.tensor([e.target for e in explanations])
        out.node_id = torch.cat([e.node_id for e in explanations])
        out.edge_id = torch.cat([e.edge_id for e in explanations])
        return out

    def replicate(self, copies: int, share_context: bool = False) -> InstanceBatch:
        """``copies`` stacked copies of this batch (copy-major), for many masks in one pass.

        With ``share_context`` the copies share one set of context nodes (each copy keeps its
        own context edges, into its own nodes). A context node has no in-edges (module
        docstring), so a message-passing layer gives it the same state in every copy, and it
        gives each copy's nodes the same messages and in-degrees as a context node of its own
        would: the logits are the same, and the forward pass skips the (often most numerous)
        context nodes of all copies but one. Such a batch is for forward passes (``logits`` and
        the like): its ``context_batch`` refers to the first copy's instances, so it is not
        for :meth:`split`.
        """
        n, e, b = self.num_nodes, self.num_edges, self.num_instances
        nc, ec = self.context_x.size(0), self.num_context_edges
        shift = torch.arange(copies).repeat_interleave(e) * n
        ctx_shift = torch.stack(
            [
                torch.arange(copies).repeat_interleave(ec) * (0 if share_context else nc),
                torch.arange(copies).repeat_interleave(ec) * n,
            ]
        )
        ctx_copies = 1 if share_context else copies
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
            context_x=self.context_x.repeat(ctx_copies, 1),
            context_batch=self.context_batch.repeat(ctx_copies)
            + torch.arange(ctx_copies).repeat_interleave(nc) * b,
            context_edge_index=self.context_edge_index.repeat(1, copies) + ctx_shift,
        )
        return out

    # -- model calls -------------------------------------------------------------------------
    def model_graph(self, x: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The graph the model runs on: ``(x, edge_index)`` with the context appended (context
        nodes after the ``N`` instance nodes, context edges after the ``E`` explained ones).

        Node tasks merge context nodes with equal features into one: a context node has no
        in-edges, so in every layer its state is a function of its own features, and two of
        them with equal features send equal messages (the in-degrees the receivers see do not
        change either). The logits are the same, and the forward pass skips most context nodes
        (which outnumber the instance nodes on BA graphs; on constant features they all become
        one). The merged context is computed once per batch."""
        x = self.x if x is None else x
        if self.num_context_edges == 0:
            return x, self.edge_index
        ctx_x, edges = self._model_context()
        return torch.cat([x, ctx_x]), edges

    def _model_context(self) -> tuple[Tensor, Tensor]:
        """The context nodes :meth:`model_graph` appends and the whole graph's edges (cached
        until ``edge_index``, ``context_x`` or ``context_edge_index`` is replaced)."""
        cached = self._context_cache
        if (
            cached is None
            or cached[0] is not self.context_x
            or cached[1] is not self.context_edge_index
            or cached[2] is not self.edge_index
        ):
            src = self.context_edge_index[0]
            if self.center is None:  # graph tasks: context nodes would count in the pooling
                ctx_x = self.context_x
            else:
                ctx_x, inverse = torch.unique(self.context_x, dim=0, return_inverse=True)
                src = inverse.view(-1)[src]
            ctx_edges = torch.stack([src + self.num_nodes, self.context_edge_index[1]])
            edges = torch.cat([self.edge_index, ctx_edges], dim=1)
            cached = (self.context_x, self.context_edge_index, self.edge_index, ctx_x, edges)
            self._context_cache = cached
        return cached[3], cached[4]

    def logits(
        self, model: torch.nn.Module, edge_mask: Tensor | None = None, x: Tensor | None = None
    ) -> Tensor:
        """The model's logits ``[B, C]`` for every instance, messages scaled by ``edge_mask``
        (one value per explained edge; context edges keep their messages)."""
        full_x, full_edges = self.model_graph(x)
        if edge_mask is not None and self.num_context_edges:
            edge_mask = torch.cat([edge_mask, edge_mask.new_ones(self.num_context_edges)])
        kept = _kept_edges(model, edge_mask)
        if kept is not None:  # a 0/1 mask on sum-aggregating layers: drop the zeroed edges
            edge_mask = None
        elif edge_mask is not None:
            set_masks(model, edge_mask, full_edges, apply_sigmoid=False)
        if self._norms is None or self._norms[0] is not full_edges:
            self._norms = (full_edges, {})
        try:
            with _gcn_norm_reused(model, full_edges, full_x, self._norms[1], kept):
                edges = full_edges if kept is None else full_edges[:, kept]
                if self.center is None:
                    batch = torch.cat([self.batch, self.context_batch])
                    return model(full_x, edges, batch)
                return model(full_x, edges)[self.center]
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
        b = self.num_instances
        edge_counts = torch.bincount(self.edge_batch, minlength=b).tolist()
        node_counts = torch.bincount(self.batch, minlength=b).tolist()
        node_starts = torch.tensor([0, *node_counts]).cumsum(0)
        ctx_counts = torch.bincount(self.context_batch, minlength=b).tolist()
        ctx_starts = torch.tensor([0, *ctx_counts]).cumsum(0)
        ctx_edge_batch = self.context_batch[self.context_edge_index[0]]
        ctx_edge_counts = torch.bincount(ctx_edge_batch, minlength=b).tolist()
        per = seconds / max(b, 1)
        xs = self.x.split(node_counts)
        eis = self.edge_index.split(edge_counts, dim=1)
        ems = edge_mask.detach().split(edge_counts)
        nms = node_mask.detach().split(node_counts) if node_mask is not None else None
        nids, eids = self.node_id.split(node_counts), self.edge_id.split(edge_counts)
        cxs = self.context_x.split(ctx_counts)
        ceis = self.context_edge_index.split(ctx_edge_counts, dim=1)
        out = []
        for i in range(b):
            start = int(node_starts[i])
            shift = torch.tensor([[int(ctx_starts[i])], [start]])
            node_task = self.center is not None
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
                    logits=None if self.logits_full is None else self.logits_full[i],
                    context_x=cxs[i] if node_task else None,
                    context_edge_index=ceis[i] - shift if node_task else None,
                )
            )
        return out


def _reusable_gcn_norm(module: torch.nn.Module) -> bool:
    """Whether :func:`_gcn_norm_reused` supplies this layer's normalised graph."""
    from torch_geometric.nn import GCNConv

    return (
        isinstance(module, GCNConv)
        and module.normalize
        and not module.cached
        and module._cached_edge_index is None
    )


def _kept_edges(model: torch.nn.Module, edge_mask: Tensor | None) -> Tensor | None:
    """The edges to keep, when a mask can be applied by dropping edges instead of scaling
    messages; else ``None`` (PyG's ``set_masks`` then scales every message).

    PyG's explain hook multiplies each message by its edge's mask before the aggregation. For
    a mask of zeros and ones that needs no gradient, on layers that *sum* their messages, a
    zeroed message adds nothing: dropping its edge gives the same sums (the same additions of
    the same kept terms; a mean or attention aggregator would change, so any other layer keeps
    the hook). ``GCNConv``'s degree normalisation must still come from the whole graph; the
    layers whose normalisation :func:`_gcn_norm_reused` supplies get it from there, filtered.
    SubgraphX's coalitions and the fidelity metrics' hard masks are such masks: most of their
    forward passes then move a third to a half of the messages."""
    if edge_mask is None or edge_mask.requires_grad or not edge_mask.is_floating_point():
        return None
    from torch_geometric.nn import GCNConv, GINConv

    for layer in message_passing_layers(model):
        summing = getattr(layer, "aggr", None) in ("add", "sum")
        if not summing or not (
            (type(layer) is GCNConv and _reusable_gcn_norm(layer)) or type(layer) is GINConv
        ):
            return None
    kept = edge_mask != 0
    if not bool((edge_mask[kept] == 1).all()):
        return None
    return kept


@contextmanager
def _gcn_norm_reused(
    model: torch.nn.Module,
    edge_index: Tensor,
    x: Tensor,
    store: dict[tuple[object, ...], tuple[Tensor, Tensor]],
    kept: Tensor | None = None,
) -> Iterator[None]:
    """Within the block, the model's ``GCNConv`` layers take their normalised graph (self
    loops and ``1/sqrt(d_u d_v)`` weights, which depend on the edges only, never on a mask)
    from ``store``, computed by PyG's own ``gcn_norm`` with each layer's settings the first
    time a batch's graph is seen: explainers run one graph through the model hundreds of times
    with different masks, and the normalisation is a fifth of each forward's cost. The
    tensors are the ones the layer would compute, so the outputs are the same. Layers that
    cache on their own (``cached=True``) or do not normalise are left alone; the layers'
    state is restored on exit.

    ``kept`` (from :func:`_kept_edges`) keeps only those edges of ``edge_index``, with the
    whole graph's weights. PyG's ``gcn_norm`` lists the graph's edges that are not self loops,
    then one self loop per node (``add_remaining_self_loops``); its explain hook gives those
    loops a mask of one, so they are always kept."""
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    convs = [m for m in model.modules() if _reusable_gcn_norm(m)]
    not_loop = edge_index[0] != edge_index[1] if kept is not None and convs else None
    for conv in convs:
        key = (conv.improved, conv.add_self_loops, conv.flow, x.dtype, x.size(0))
        if key not in store:
            store[key] = gcn_norm(
                edge_index, None, x.size(0), conv.improved, conv.add_self_loops, conv.flow, x.dtype
            )
        norm_edges, norm_weight = store[key]
        if kept is not None and not_loop is not None:
            keep = kept
            if conv.add_self_loops:
                keep = kept[not_loop]
                keep = torch.cat([keep, keep.new_ones(norm_edges.size(1) - keep.numel())])
            norm_edges, norm_weight = norm_edges[:, keep], norm_weight[keep]
        conv._cached_edge_index = (norm_edges, norm_weight)
        conv.cached = True
    try:
        yield
    finally:
        for conv in convs:
            conv.cached = False
            conv._cached_edge_index = None


def _check_graph(data: Data) -> None:
    x = getattr(data, "x", None)
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise ProvenmlError("the graph needs node features `x` as a [num_nodes, F] tensor")
    edge_index = getattr(data, "edge_index", None)
    if not isinstance(edge_index, Tensor) or edge_index.numel() == 0:
        raise ProvenmlError("the graph has no edges; there is nothing for an edge mask to explain")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ProvenmlError(
            f"edge_index must have shape [2, num_edges], got {list(edge_index.shape)}"
        )
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise ProvenmlError(f"edge_index must hold integer node ids, got {edge_index.dtype}")
    low, high = int(edge_index.min()), int(edge_index.max())
    if low < 0 or high >= x.size(0):
        bad = low if low < 0 else high
        raise ProvenmlError(
            f"edge_index refers to node {bad}, outside the graph's {x.size(0)} nodes (rows of x)"
        )


def _as_index(index: object, num_nodes: int) -> Tensor:
    """Node ids as a 1-d long tensor: an int (Python, numpy or a 0-d tensor), or a sequence
    / 1-d tensor / array of them; anything else is a :class:`ProvenmlError`."""
    if isinstance(index, bool | np.bool_):
        raise ProvenmlError(f"index must be a node id (an integer), got {index!r}")
    if isinstance(index, Integral | np.integer):
        idx = torch.tensor([int(index)], dtype=torch.long)
    else:
        try:
            raw = torch.as_tensor(index)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ProvenmlError(f"index must be node ids (integers), got {index!r}") from err
        if raw.dtype == torch.bool or raw.is_floating_point() or raw.is_complex():
            raise ProvenmlError(f"index must be integer node ids, got dtype {raw.dtype}")
        if raw.dim() > 1:
            raise ProvenmlError(f"index must be one id or a 1-d list of ids, got {list(raw.shape)}")
        idx = raw.long().view(-1)
    if idx.numel() == 0:
        raise ProvenmlError("index is empty; give at least one node to explain")
    bad = (idx < 0) | (idx >= num_nodes)
    if bool(bad.any()):
        raise ProvenmlError(
            f"node index {int(idx[bad][0])} is out of range for a graph of {num_nodes} nodes"
        )
    return idx


def _is_single_index(index: object) -> bool:
    if isinstance(index, bool | np.bool_):
        return False
    if isinstance(index, Integral | np.integer):
        return True
    return isinstance(index, Tensor | np.ndarray) and index.ndim == 0


# -- argument checks for the methods' constructors -------------------------------------------------
def check_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum``, else a :class:`ProvenmlError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral | np.integer):
        raise ProvenmlError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ProvenmlError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(
    name: str,
    value: object,
    low: float = 0.0,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float in the interval (``low_open`` / ``high_open`` exclude the
    ends), else a :class:`ProvenmlError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Real | np.floating | np.integer):
        raise ProvenmlError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ProvenmlError(f"{name} must be finite, got {v}")
    if v < low or v > high or (low_open and v == low) or (high_open and v == high):
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        raise ProvenmlError(f"{name} must be in {left}{low:g}, {high:g}{right}, got {v:g}")
    return v


#: how far (relative to the logits' scale) the subgraph's output may drift from the full graph's
EXACTNESS_TOLERANCE = 1e-4


class ExplainerMethod(ABC):
    """Base class of every explainer: ``explain(model, data, index=None) -> Explanation``.

    Subclasses implement :meth:`attribute`, which scores every edge (and optionally node) of an
    :class:`InstanceBatch` at once. ``index=None`` explains a graph-level prediction; an int
    index explains that node. :meth:`explain_batch` explains many nodes or graphs in one call.
    ``num_hops`` (default: the number of message-passing layers) sets the computation
    subgraph's radius, for models whose layers propagate more than one hop.
    """

    name: ClassVar[str] = "method"
    #: whether attribution needs gradients through the model (else runs under no_grad)
    needs_grad: ClassVar[bool] = True

    @abstractmethod
    def attribute(
        self, model: torch.nn.Module, batch: InstanceBatch
    ) -> tuple[Tensor, Tensor | None]:
        """Edge scores ``[E]`` (and node scores ``[N]`` or ``None``) for the whole batch."""

    def explain(
        self,
        model: torch.nn.Module,
        data: Data,
        index: int | None = None,
        num_hops: int | None = None,
    ) -> Explanation:
        """Explain one node (``index``: an int, numpy integer or 0-d tensor) or, with
        ``index=None``, the graph-level prediction."""
        if index is None:
            return self.explain_batch(model, [data], num_hops=num_hops)[0]
        if not _is_single_index(index):
            raise ProvenmlError("explain() takes one integer index; use explain_batch for many")
        return self.explain_batch(model, data, index=[int(index)], num_hops=num_hops)[0]

    def explain_batch(
        self,
        model: torch.nn.Module,
        data: Data | Sequence[Data],
        index: IndexLike | None = None,
        num_hops: int | None = None,
    ) -> list[Explanation]:
        """Explain many nodes of one graph (``index``) or many graphs (``data`` a list)."""
        batch = self.prepare(model, data, index, num_hops)
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
        """Validate inputs, build the instance batch, check that it reproduces the model's
        full-graph output and fix each target (the model's prediction on the full graph)."""
        check_model(model)
        model.eval()
        if index is None:
            if isinstance(data, Data):
                graphs = [data]
            elif isinstance(data, Sequence) and all(isinstance(g, Data) for g in data):
                graphs = list(data)
            else:
                raise ProvenmlError("data must be a torch_geometric Data or a list of them")
            batch = InstanceBatch.from_graphs(graphs)
            with torch.no_grad():
                full = batch.logits(model)  # whole graphs: the instance is the full graph
        else:
            if not isinstance(data, Data):
                raise ProvenmlError("node explanations take one graph (a torch_geometric Data)")
            _check_graph(data)
            idx = _as_index(index, int(data.x.size(0)))
            layers = len(message_passing_layers(model))
            hops = layers if num_hops is None else check_int("num_hops", num_hops, 1)
            batch = InstanceBatch.from_nodes(data, idx, hops)
            with torch.no_grad():
                full = model(data.x, data.edge_index)[idx]
                sub = batch.logits(model)
            _check_exact(full, sub, idx, hops)
        batch.logits_full = full.detach()
        batch.target = full.argmax(-1)
        return batch


def _check_exact(full: Tensor, sub: Tensor, index: Tensor, hops: int) -> None:
    """Raise unless the subgraph logits equal the full-graph logits (module docstring)."""
    if full.shape != sub.shape:
        raise ProvenmlError(
            f"the model returned {list(full.shape)} on the full graph and {list(sub.shape)} on "
            "the computation subgraphs; a node classifier must return [num_nodes, C] logits"
        )
    gap = (full - sub).abs().amax(-1)
    tol = EXACTNESS_TOLERANCE * (1.0 + full.abs().amax(-1))
    bad = (gap > tol) | ~torch.isfinite(gap)
    if bool(bad.any()):
        worst = int(torch.argmax(torch.where(torch.isfinite(gap), gap, torch.inf)))
        raise ProvenmlError(
            f"the model's output for node {int(index[worst])} on its {hops}-hop computation "
            f"subgraph differs from its output on the full graph by {float(gap[worst]):.3g} "
            f"({int(bad.sum())} of {len(index)} nodes): the model reads beyond {hops} hops "
            "(e.g. a layer that propagates several hops, or a global operation); pass "
            "num_hops= to explain a wider subgraph"
        )
