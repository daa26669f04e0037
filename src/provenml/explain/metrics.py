"""Explanation metrics, one module: fidelity (probability and accuracy forms), sparsity,
ground-truth AUROC, stability and wall time.

Masks are compared at *matched sparsity*: :func:`hard_mask` keeps the top ``1 - sparsity``
fraction of each instance's edges (pairs of reverse edges count, and are kept, as one), so every
method is scored on explanations of the same size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from provenml.errors import ProvenmlError
from provenml.explain.base import ExplainerMethod, Explanation, IndexLike, InstanceBatch


def hard_mask(batch: InstanceBatch, scores: Tensor, sparsity: float, seed: int = 0) -> Tensor:
    """Boolean mask keeping the ``round((1 - sparsity) * E_i)`` top-scored edges of instance i.

    Undirected pairs are ranked as one edge and kept together (symmetric mask); ties are broken
    by a seeded random order, never by edge position.
    """
    if not 0.0 <= sparsity <= 1.0:
        raise ProvenmlError(f"sparsity must be in [0, 1], got {sparsity}")
    src, dst = batch.edge_index
    canonical = (batch.reverse < 0) | (src <= dst)
    ids = canonical.nonzero().view(-1)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(ids), generator=gen)
    order = order[torch.argsort(-scores[ids][order].float(), stable=True)]
    order = order[torch.argsort(batch.edge_batch[ids][order], stable=True)]
    ranked = ids[order]
    groups = batch.edge_batch[ranked]
    counts = torch.bincount(groups, minlength=batch.num_instances)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(ranked)) - starts[groups]
    keep_n = torch.round((1.0 - sparsity) * counts.float()).long()
    chosen = ranked[rank < keep_n[groups]]
    mask = torch.zeros(batch.num_edges, dtype=torch.bool)
    mask[chosen] = True
    partner = batch.reverse[chosen]
    mask[partner[partner >= 0]] = True
    return mask


@dataclass
class FidelityScores:
    """Per-instance fidelities (tensors of shape ``[B]``)."""

    prob_plus: Tensor
    prob_minus: Tensor
    acc_plus: Tensor
    acc_minus: Tensor


@torch.no_grad()
def fidelity(
    model: torch.nn.Module, batch: InstanceBatch, mask: Tensor, full: Tensor | None = None
) -> FidelityScores:
    """Fidelity of the explanation subgraph ``G_S`` given by ``mask`` (1 = in ``S``).

    Probability form (DIG; Yuan et al. survey, Sec. 6.2): ``Fid+ = p_c(G) - p_c(G \\ S)``,
    ``Fid- = p_c(G) - p_c(G_S)``. Accuracy form (GraphFramEx / PyG, model explanations):
    ``Fid+ = 1 - 1[yhat(G \\ S) = c]``, ``Fid- = 1 - 1[yhat(G_S) = c]``, with ``c`` the
    model's prediction on ``G``. Edges are removed by zeroing their messages, as PyG does.
    ``full`` is the unmasked class distribution ``[B, C]`` when the caller already has it
    (:func:`fidelity_curve` computes it once for every sparsity).
    """
    m = mask.float()
    if full is None:
        full = batch.logits(model).softmax(-1)
    keep = batch.logits(model, m).softmax(-1)
    drop = batch.logits(model, 1.0 - m).softmax(-1)
    c = batch.target.view(-1, 1)
    p_full, p_keep, p_drop = (t.gather(1, c).squeeze(1) for t in (full, keep, drop))
    return FidelityScores(
        prob_plus=p_full - p_drop,
        prob_minus=p_full - p_keep,
        acc_plus=1.0 - (drop.argmax(-1) == batch.target).float(),
        acc_minus=1.0 - (keep.argmax(-1) == batch.target).float(),
    )


def fidelity_at(
    model: torch.nn.Module, explanations: Sequence[Explanation], sparsity: float
) -> FidelityScores:
    """:func:`fidelity` of the explanations' top edges at the given sparsity."""
    batch = InstanceBatch.from_explanations(explanations)
    scores = torch.cat([e.edge_mask for e in explanations])
    return fidelity(model, batch, hard_mask(batch, scores, sparsity))


@torch.no_grad()
def fidelity_curve(
    model: torch.nn.Module, explanations: Sequence[Explanation], sparsities: Sequence[float]
) -> list[FidelityScores]:
    """:func:`fidelity_at` at each of ``sparsities``, the same numbers with the explanations
    collated once and the unmasked forward pass run once (not once per sparsity)."""
    batch = InstanceBatch.from_explanations(explanations)
    scores = torch.cat([e.edge_mask for e in explanations])
    full = batch.logits(model).softmax(-1)
    return [fidelity(model, batch, hard_mask(batch, scores, s), full) for s in sparsities]


def sparsity(explanations: Sequence[Explanation]) -> float:
    """Mean soft sparsity ``1 - mean_e m_e'``, ``m'`` the mask min-max scaled per instance
    (1 = all weight on one edge, 0 = a flat mask). For a hard mask it is ``1 - |S| / |E|``."""
    values = []
    for e in explanations:
        m = e.edge_mask.float()
        span = m.max() - m.min()
        scaled = (m - m.min()) / span if span > 0 else torch.ones_like(m)
        values.append(1.0 - float(scaled.mean()))
    return float(sum(values) / len(values))


def groundtruth_auroc(
    explanations: Sequence[Explanation], edge_gt: Tensor | Sequence[Tensor]
) -> float:
    """AUROC of the edge scores against the ground-truth edges, pooled over instances (as in
    GNNExplainer's and PGExplainer's evaluation). ``edge_gt`` is the graph's 0/1 edge labels,
    or one tensor per graph (graph tasks, indexed by ``Explanation.graph_id``)."""
    labels, scores = [], []
    for e in explanations:
        gt = edge_gt if isinstance(edge_gt, Tensor) else edge_gt[e.graph_id]
        labels.append(gt[e.edge_id])
        scores.append(e.edge_mask)
    y = torch.cat(labels).numpy()
    if y.min() == y.max():
        raise ProvenmlError("ground truth has a single class over these edges; AUROC undefined")
    from sklearn.metrics import roc_auc_score  # imported here: sklearn loads scipy.stats, rich

    return float(roc_auc_score(y, torch.cat(scores).numpy()))


def groundtruth_auroc_per_instance(
    explanations: Sequence[Explanation], edge_gt: Tensor | Sequence[Tensor]
) -> float:
    """Mean over instances of each instance's own AUROC (instances whose edges are all of one
    class are skipped; NaN when none is left). Unlike the pooled AUROC it does not depend on
    how the masks' scales compare between instances."""
    values = []
    for e in explanations:
        gt = edge_gt if isinstance(edge_gt, Tensor) else edge_gt[e.graph_id]
        y = gt[e.edge_id].numpy()
        if y.min() != y.max():
            values.append(binary_auroc(y, e.edge_mask.numpy()))
    return float(sum(values) / len(values)) if values else float("nan")


def binary_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUROC of ``scores`` against 0/1 ``labels`` (both classes present): the Mann-Whitney
    statistic ``(sum of the positives' ranks - P (P + 1) / 2) / (P N)`` with tied scores given
    their mean rank, which is the area under the ROC curve with ties as diagonal segments,
    what ``sklearn.metrics.roc_auc_score`` integrates (equal up to floating-point rounding;
    tested). One sort, no input validation: per-instance AUROCs are thousands of small calls."""
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    mean_rank = (ends - (counts - 1) / 2.0)[inverse.ravel()]  # ranks from 1
    pos = int(y.sum())
    neg = y.size - pos
    return float((mean_rank[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def stability(
    method: ExplainerMethod,
    model: torch.nn.Module,
    data: Data | Sequence[Data],
    index: IndexLike | None,
    explanations: Sequence[Explanation],
    noise: float = 0.05,
    sparsity_level: float = 0.7,
    seed: int = 0,
) -> float:
    """Mean Jaccard overlap of the top edges (at ``sparsity_level``) before and after adding
    ``N(0, noise^2)`` to the node features; instances whose prediction changes are skipped."""
    gen = torch.Generator().manual_seed(seed)
    if isinstance(data, Data):
        noisy: Data | list[Data] = data.clone()
        noisy.x = data.x + noise * torch.randn(data.x.shape, generator=gen)
    else:
        noisy = []
        for g in data:
            h = g.clone()
            h.x = g.x + noise * torch.randn(g.x.shape, generator=gen)
            noisy.append(h)
    again = method.explain_batch(model, noisy, index)
    a = InstanceBatch.from_explanations(explanations)
    b = InstanceBatch.from_explanations(again)
    ma = hard_mask(a, torch.cat([e.edge_mask for e in explanations]), sparsity_level)
    mb = hard_mask(b, torch.cat([e.edge_mask for e in again]), sparsity_level)
    inter = torch.zeros(a.num_instances).index_add_(0, a.edge_batch, (ma & mb).float())
    union = torch.zeros(a.num_instances).index_add_(0, a.edge_batch, (ma | mb).float())
    same = a.target == b.target
    jac = inter / union.clamp(min=1)
    return float(jac[same].mean()) if bool(same.any()) else float("nan")


def seconds_per_explanation(explanations: Sequence[Explanation]) -> float:
    """Mean wall time per explanation (a batch's time is shared among its instances)."""
    return float(sum(e.seconds for e in explanations) / len(explanations))
