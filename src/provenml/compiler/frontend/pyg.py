"""PyTorch Geometric's GCN normalisation with its self loops, at a size known before the data.

``torch_geometric.nn.conv.gcn_conv.gcn_norm`` (Kipf & Welling 2017, eq. 2: ``D^-1/2 (A + I)
D^-1/2`` over an edge list) first calls ``add_remaining_self_loops``, which drops the edges that
are already loops with ``edge_index[:, edge_index[0] != edge_index[1]]`` and appends one loop
per node. How many edges survive depends on the data, so the compiler, whose shapes are static,
refused every layer built on it with its default ``add_self_loops=True``: ``GCNConv``,
``SGConv``, ``TAGConv``, ``APPNP``, ``GCN2Conv``, ``ARMAConv``, ``SSGConv``, ``MixHopConv``.

:func:`static_gcn_norm` computes the same normalised adjacency with ``E + N`` edges whatever the
data: every input edge stays where it was, an edge that is a loop gets weight 0 (where
``gcn_norm`` drops it), and the ``N`` loops follow with the weight ``gcn_norm`` gives them (its
``fill_value``, or the weight of the loop the input already had at that node). Every layer
listed above sends ``edge_weight * x_j`` along each edge and adds the messages at the target,
so a weight-0 edge adds exact zeros: the layer's output is the same (the kept edges' messages
are summed in the same order). While the compiler traces a model through TorchDynamo,
:func:`static_gcn_twins` puts it in those layers' modules in place of ``gcn_norm``.

Differences from ``gcn_norm``, in inputs no layer above is given in the examples of PyG:

* a loop edge whose source features hold an infinity or NaN: ``0 * inf`` is NaN here, where
  ``gcn_norm`` had removed the edge;
* several loops at one node with different weights: the last one in edge order here (the
  mean beyond 2^24 edges); ``gcn_norm`` writes them with ``tensor[index] = value``, which
  PyTorch documents as undefined for repeated indices (its CPU kernel, measured here, keeps
  the last).

``edge_index`` given as a ``SparseTensor``, a ``torch.sparse`` tensor, or without ``num_nodes``
goes to the original ``gcn_norm`` (and is refused as before where its sizes depend on data).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch

#: The PyG modules whose layers call ``gcn_norm`` from their own globals.
GCN_NORM_USERS = (
    "torch_geometric.nn.conv.gcn_conv",
    "torch_geometric.nn.conv.sg_conv",
    "torch_geometric.nn.conv.tag_conv",
    "torch_geometric.nn.conv.appnp",
    "torch_geometric.nn.conv.gcn2_conv",
    "torch_geometric.nn.conv.arma_conv",
    "torch_geometric.nn.conv.ssg_conv",
    "torch_geometric.nn.conv.mixhop_conv",
)


def static_gcn_norm(
    original: Callable[..., Any],
    edge_index: Any,
    edge_weight: torch.Tensor | None = None,
    num_nodes: int | None = None,
    improved: bool = False,
    add_self_loops: bool = True,
    flow: str = "source_to_target",
    dtype: torch.dtype | None = None,
) -> Any:
    """``gcn_norm``'s ``(edge_index, edge_weight)`` with ``E + N`` edges (module docstring):
    the symmetric normalisation ``w_ij / sqrt(d_i d_j)`` of Kipf & Welling (2017), eq. 2, with
    ``d`` the weighted in-degree including the loops. Inputs the fixed-size form does not
    cover go to ``original``, PyG's ``gcn_norm``."""
    plain = type(edge_index) is torch.Tensor and edge_index.layout == torch.strided
    known_flow = flow in ("source_to_target", "target_to_source")
    if not (add_self_loops and plain and num_nodes is not None and known_flow):
        return original(edge_index, edge_weight, num_nodes, improved, add_self_loops, flow, dtype)
    from torch_geometric.utils import scatter

    fill_value = 2.0 if improved else 1.0
    row, col = edge_index[0], edge_index[1]
    is_loop = row == col
    loops = torch.arange(num_nodes, device=edge_index.device).view(1, -1).repeat(2, 1)
    if edge_weight is None:
        # add_remaining_self_loops without weights; gcn_norm then weighs every edge 1 (its
        # fill_value is not used on this path)
        kept = (~is_loop).to(dtype or torch.float32)
        loop_weight = torch.ones(num_nodes, dtype=kept.dtype, device=kept.device)
        weights = torch.cat([kept, loop_weight])
    else:
        # compute_loop_attr with a number: fill_value, or the weight of a loop already there
        # (the last one in edge order where a node has several, as PyTorch's CPU index_put
        # writes them): the loops' positions + 1, their largest per node, as floats (exact
        # below 2^24 edges; beyond, the mean of a node's loops)
        if is_loop.shape[0] < 2**24:
            positions = torch.arange(1, is_loop.shape[0] + 1, dtype=edge_weight.dtype)
            last = scatter(torch.where(is_loop, positions, 0.0), row, 0, num_nodes, "max")
            existing = edge_weight[(last - 1.0).clamp(min=0.0).long()]
            found = last > 0
        else:
            loop_sum = scatter(torch.where(is_loop, edge_weight, 0.0), row, 0, num_nodes, "sum")
            count = scatter(is_loop.to(edge_weight.dtype), row, 0, num_nodes, "sum")
            existing, found = loop_sum / count.clamp(min=1.0), count > 0
        loop_weight = torch.where(found, existing, fill_value)
        weights = torch.cat([torch.where(is_loop, 0.0, edge_weight), loop_weight])
    edge_index = torch.cat([edge_index, loops], 1)
    row, col = edge_index[0], edge_index[1]
    target = col if flow == "source_to_target" else row
    degree = scatter(weights, target, dim=0, dim_size=num_nodes, reduce="sum")
    inv_sqrt = degree.pow(-0.5)
    inv_sqrt = inv_sqrt.masked_fill(inv_sqrt == float("inf"), 0.0)
    return edge_index, inv_sqrt[row] * weights * inv_sqrt[col]


@contextlib.contextmanager
def _twins(attr: str, modules: list[Any], wrap: Callable[..., Any]) -> Iterator[list[str]]:
    """While the block runs, each module's function ``attr`` is replaced by a twin that calls
    ``wrap(original, *args, **kwargs)``; yields the modules' names. Restored on exit,
    exceptions included."""
    patched: list[tuple[Any, Callable[..., Any]]] = []
    try:
        for module in modules:
            original = getattr(module, attr)

            def twin(*args: Any, _original: Callable[..., Any] = original, **kw: Any) -> Any:
                return wrap(_original, *args, **kw)

            setattr(module, attr, twin)
            patched.append((module, original))
        yield [module.__name__ for module, _ in patched]
    finally:
        for module, original in patched:
            setattr(module, attr, original)


def static_gcn_twins() -> contextlib.AbstractContextManager[list[str]]:
    """While the block runs, the PyG modules of :data:`GCN_NORM_USERS` that are imported (a
    model that uses one of their layers has imported it) call :func:`static_gcn_norm` where
    they called ``gcn_norm``; yields their names. Restored on exit, exceptions included; a
    no-op where no such module is loaded."""
    loaded = (sys.modules.get(name) for name in GCN_NORM_USERS)
    users = [m for m in loaded if getattr(m, "gcn_norm", None) is not None]
    return _twins("gcn_norm", users, static_gcn_norm)


def sized_scatter(
    original: Callable[..., Any],
    src: Any,
    index: Any,
    dim: int = 0,
    dim_size: int | None = None,
    reduce: str = "sum",
) -> Any:
    """PyG's ``scatter`` with its output size read the way it reads it, ``int(index.max()) + 1``
    when not given, and then told to TorchDynamo to be at least 1 (``torch._check``).

    The size is a number read from an input's values (the number of graphs in a batch, for
    ``global_add_pool(x, batch)``): TorchDynamo makes it a symbol it knows nothing about, so the
    first layer after the pooling that asks whether the pooled tensor is empty (``BatchNorm1d``
    does) stopped the trace (stop 71: S4's fine-tuning model was refused). An index is never
    negative (eager PyTorch raises on one), so the size is at least 1; the compiler then keeps
    the example's number and checks it after each call (:class:`~provenml.compiler.ir
    .ValueGuard`)."""
    if dim_size is None and isinstance(index, torch.Tensor) and index.numel() > 0:
        dim_size = int(index.max()) + 1
        torch._check(dim_size >= 1)
    return original(src, index, dim, dim_size, reduce)


def sized_scatter_twins() -> contextlib.AbstractContextManager[list[str]]:
    """While the block runs, the loaded ``torch_geometric`` modules that call PyG's ``scatter``
    from their globals (its pooling and aggregation modules) call :func:`sized_scatter`;
    yields their names. Restored on exit, exceptions included."""
    original = getattr(sys.modules.get("torch_geometric.utils._scatter"), "scatter", None)
    callers = [
        module
        for name, module in list(sys.modules.items())
        if original is not None
        and name.startswith("torch_geometric")
        and getattr(module, "scatter", None) is original
    ]
    return _twins("scatter", callers, sized_scatter)
