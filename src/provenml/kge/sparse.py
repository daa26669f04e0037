"""Training and evaluation at scale on one process: sparse embedding tables, negatives shared
within a chunk, filtered ranking in bounded memory, and a sampled evaluator.

**Chunk-shared negatives** (Lerer et al., 2019, PyTorch-BigGraph, Sec. 4.2): a batch of ``B``
positives is cut into chunks of ``C``; each chunk draws ``K`` entities once and every positive
of the chunk is scored against all of them, as tails (``(h, r, e)``) and as heads
(``(e, r, t)``). With the query vector ``q`` of each positive (``h ∘ r`` for DistMult, the
complex product for ComplEx, ``h + r`` for TransE) the ``C x K`` scores of a chunk are one
matrix product ``q Eᵀ`` (TransE: ``||q - e||² = ||q||² - 2 q·e + ||e||²``), so the cost per
negative is a multiply-add, not a gathered triple.

The loss is the logistic loss of ComplEx (Trouillon et al., 2016, eq. 12), averaged over the
positives and over the negatives: ``mean softplus(-f(pos)) + mean softplus(f(neg))``. Embedding
tables are ``nn.Embedding(sparse=True)``: a step touches (and the optimiser updates) only the
rows of the batch and its negatives (``torch.optim.SparseAdam`` or sparse Adagrad). Indices
stay int32 until the embedding gather.

**Evaluation**: :func:`evaluate_chunked` ranks every test triple against all entities, filtered,
scoring ``batch x entity_chunk`` blocks so memory never holds a ``(queries, entities)``
matrix; it gives the same ranks as :func:`~provenml.kge.evaluation.evaluate_link_prediction`.
:func:`evaluate_sampled` ranks the truth against ``K`` sampled entities, as large-graph papers
report; it is biased upwards against the full ranking, which :func:`sampled_bias` measures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from provenml.errors import ProvenmlError
from provenml.kge.checks import check_choice, check_float, check_int, check_triples
from provenml.kge.evaluation import LinkPredictionResult, Ranks
from provenml.kge.index import KnownTriples

SCORERS = ("transe", "distmult", "complex")


def init_bound(name: str, dim: int) -> float:
    """The half-width of :class:`SparseKGE`'s uniform initialisation per real coordinate:
    TransE's ``6 / sqrt(dim)`` (Bordes et al., 2013), 0.1 for DistMult and ComplEx."""
    return 6 / math.sqrt(dim) if name == "transe" else 0.1


class SparseKGE(nn.Module):
    """TransE (L2), DistMult or ComplEx over two sparse-gradient embedding tables.

    Scores match the dense models of :mod:`provenml.kge.models` with the same weights
    (ComplEx stores ``[Re | Im]`` halves; TransE here is the L2 distance).
    """

    def __init__(self, name: str, num_entities: int, num_relations: int, dim: int) -> None:
        super().__init__()
        self.name = check_choice("name", name, SCORERS)
        check_int("num_entities", num_entities, 1)
        check_int("num_relations", num_relations, 1)
        check_int("dim", dim, 1)
        self.num_entities, self.num_relations, self.dim = num_entities, num_relations, dim
        width = 2 * dim if name == "complex" else dim
        self.entity = nn.Embedding(num_entities, width, sparse=True)
        self.relation = nn.Embedding(num_relations, width, sparse=True)
        scale = init_bound(name, width)
        nn.init.uniform_(self.entity.weight, -scale, scale)
        nn.init.uniform_(self.relation.weight, -scale, scale)

    @property
    def device(self) -> torch.device:
        return self.entity.weight.device

    # -- query vectors: score(h, r, t) = <q_tail(h, r), t> = <h, q_head(r, t)> (bilinear) ------
    def tail_query(self, h: Tensor, r: Tensor) -> Tensor:
        hv, rv = self.entity(h), self.relation(r)
        if self.name == "transe":
            return hv + rv
        if self.name == "distmult":
            return hv * rv
        d = self.dim
        h_re, h_im, r_re, r_im = hv[..., :d], hv[..., d:], rv[..., :d], rv[..., d:]
        return torch.cat([h_re * r_re - h_im * r_im, h_re * r_im + h_im * r_re], -1)

    def head_query(self, r: Tensor, t: Tensor) -> Tensor:
        rv, tv = self.relation(r), self.entity(t)
        if self.name == "transe":
            return tv - rv
        if self.name == "distmult":
            return rv * tv
        d = self.dim
        r_re, r_im, t_re, t_im = rv[..., :d], rv[..., d:], tv[..., :d], tv[..., d:]
        # Re(<h, r, conj t>) = h_re (r_re t_re + r_im t_im) + h_im (r_re t_im - r_im t_re)
        return torch.cat([r_re * t_re + r_im * t_im, r_re * t_im - r_im * t_re], -1)

    def against(self, query: Tensor, candidates: Tensor) -> Tensor:
        """Scores ``(..., Q, K)`` of ``query`` ``(..., Q, w)`` against ``candidates``
        ``(..., K, w)``: one (batched) matrix product."""
        dots = query @ candidates.transpose(-1, -2)
        if self.name != "transe":
            return dots
        sq = (query * query).sum(-1, keepdim=True) - 2 * dots
        sq = sq + (candidates * candidates).sum(-1).unsqueeze(-2)
        return -sq.clamp(min=0).sqrt()

    def score_hrt(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        q, tv = self.tail_query(h, r), self.entity(t)
        if self.name == "transe":
            return -(q - tv).norm(dim=-1)
        return (q * tv).sum(-1)

    def _all_entities(self, query: Tensor, chunk: int) -> Tensor:
        return torch.cat(
            [
                self.against(query, self.entity.weight[start : start + chunk])
                for start in range(0, self.num_entities, chunk)
            ],
            dim=1,
        )

    def score_t(self, h: Tensor, r: Tensor) -> Tensor:
        """``(B, E)`` scores of every tail (the :class:`~provenml.kge.evaluation.Scorer` API)."""
        return self._all_entities(self.tail_query(h, r), 1 << 16)

    def score_h(self, r: Tensor, t: Tensor) -> Tensor:
        return self._all_entities(self.head_query(r, t), 1 << 16)


@dataclass
class SparseTrainingConfig:
    """Hyperparameters of :func:`train_sparse`."""

    epochs: int = 1
    batch_size: int = 4096
    chunk_size: int = 256  # positives that share one draw of negatives
    num_negatives: int = 64  # K entities drawn per chunk, used as heads and as tails
    lr: float = 0.01
    optimizer: Literal["sparse_adam", "adagrad"] = "sparse_adam"
    seed: int = 0
    max_steps: int = 0  # stop after this many batches (0: run every epoch in full)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "chunk_size", "num_negatives"):
            check_int(name, getattr(self, name), 1)
        check_int("max_steps", self.max_steps, 0)
        check_int("seed", self.seed, 0)
        check_float("lr", self.lr, minimum=0.0, exclusive=True)
        check_choice("optimizer", self.optimizer, ("sparse_adam", "adagrad"))
        if self.batch_size % self.chunk_size:
            raise ProvenmlError(
                f"batch_size ({self.batch_size}) must be a multiple of chunk_size "
                f"({self.chunk_size})"
            )


@dataclass
class SparseTrainingStats:
    """What :func:`train_sparse` measured."""

    losses: list[float] = field(default_factory=list)
    positives: int = 0
    seconds: float = 0.0

    @property
    def triples_per_second(self) -> float:
        return self.positives / self.seconds if self.seconds > 0 else float("nan")


def make_sparse_optimizer(model: nn.Module, name: str, lr: float) -> torch.optim.Optimizer:
    """SparseAdam (lazy Adam on the touched rows) or Adagrad (supports sparse gradients)."""
    if name == "sparse_adam":
        return torch.optim.SparseAdam(list(model.parameters()), lr=lr)
    return torch.optim.Adagrad(model.parameters(), lr=lr)


def chunk_loss(
    model: SparseKGE, batch: Tensor, cfg: SparseTrainingConfig, gen: torch.Generator
) -> Tensor:
    """Logistic loss of one batch against chunk-shared negatives (both sides)."""
    b = len(batch)
    c = min(cfg.chunk_size, b)
    n_chunks = -(-b // c)
    pad = n_chunks * c - b
    if pad:  # the last, short batch: repeat rows so every chunk is full (weights stay equal)
        batch = torch.cat([batch, batch[:pad]])
    h, r, t = batch[:, 0], batch[:, 1], batch[:, 2]
    negatives = torch.randint(
        model.num_entities, (n_chunks, cfg.num_negatives), generator=gen, device=batch.device
    )
    neg = model.entity(negatives)  # (n_chunks, K, w)
    q_tail = model.tail_query(h, r)
    q_head = model.head_query(r, t)
    tv = model.entity(t)
    pos = -(q_tail - tv).norm(dim=-1) if model.name == "transe" else (q_tail * tv).sum(-1)
    width = q_tail.shape[-1]
    neg_tail = model.against(q_tail.view(n_chunks, c, width), neg)  # (n_chunks, C, K)
    neg_head = model.against(q_head.view(n_chunks, c, width), neg)
    return F.softplus(-pos).mean() + 0.5 * (
        F.softplus(neg_tail).mean() + F.softplus(neg_head).mean()
    )


def train_sparse(
    model: SparseKGE,
    triples: Tensor | np.ndarray,
    config: SparseTrainingConfig | None = None,
    on_step: Callable[[int, float], None] | None = None,
    on_epoch: Callable[[int], bool] | None = None,
) -> SparseTrainingStats:
    """Train ``model`` in place on int32/int64 ``(n, 3)`` triples; return loss and throughput.

    ``on_epoch(epoch)`` (1-based) runs after each epoch, e.g. to evaluate; returning ``True``
    stops training. Its time is not counted in ``stats.seconds`` (training time only)."""
    cfg = config or SparseTrainingConfig()
    data = torch.as_tensor(np.asarray(triples)) if isinstance(triples, np.ndarray) else triples
    check_triples(data, "triples", model.num_entities, model.num_relations)
    data = data.to(model.device)
    if data.dtype not in (torch.int32, torch.int64):
        data = data.long()
    gen = torch.Generator(device=model.device).manual_seed(cfg.seed)
    optimizer = make_sparse_optimizer(model, cfg.optimizer, cfg.lr)
    stats = SparseTrainingStats()
    step = 0
    model.train()
    start = time.perf_counter()
    outside = 0.0  # seconds spent in on_epoch, not training
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(len(data), generator=gen, device=model.device)
        for first in range(0, len(order), cfg.batch_size):
            batch = data[order[first : first + cfg.batch_size]]
            optimizer.zero_grad(set_to_none=True)
            loss = chunk_loss(model, batch, cfg, gen)
            loss.backward()
            optimizer.step()
            stats.positives += len(batch)
            step += 1
            value = float(loss.detach())
            stats.losses.append(value)
            if on_step is not None:
                on_step(step, value)
            if cfg.max_steps and step >= cfg.max_steps:
                break
        if cfg.max_steps and step >= cfg.max_steps:
            break
        if on_epoch is not None:
            paused = time.perf_counter()
            model.eval()
            stop = on_epoch(epoch)
            model.train()
            outside += time.perf_counter() - paused
            if stop:
                break
    stats.seconds = time.perf_counter() - start - outside
    model.eval()
    return stats


# =============================================================================================
# Evaluation at scale
# =============================================================================================


def _block_counts(
    scores: Tensor, true: Tensor, rows: Tensor, cols: Tensor, start: int
) -> tuple[Tensor, Tensor]:
    """Candidates scored above and equal to the truth in one ``(B, chunk)`` block, after
    removing the entities ``(rows, cols)`` that fall inside it (known triples and the truth)."""
    inside = (cols >= start) & (cols < start + scores.shape[1])
    scores = scores.clone()
    scores[rows[inside], cols[inside] - start] = -torch.inf
    return (scores > true[:, None]).sum(1), (scores == true[:, None]).sum(1)


@torch.no_grad()
def evaluate_chunked(
    model: SparseKGE,
    triples: Tensor | np.ndarray,
    known: KnownTriples | None = None,
    batch_size: int = 256,
    entity_chunk: int = 65536,
) -> LinkPredictionResult:
    """Filtered (``known`` given) or raw ranks of every triple's head and tail among all
    entities, in ``batch_size x entity_chunk`` blocks: peak memory is one block, whatever the
    number of entities. Ranks equal those of the dense evaluator (realistic, tie-aware)."""
    data = torch.as_tensor(np.asarray(triples)) if isinstance(triples, np.ndarray) else triples
    data = check_triples(data, "triples", model.num_entities, model.num_relations)
    check_int("batch_size", batch_size, 1)
    check_int("entity_chunk", entity_chunk, 1)
    data = data.to(model.device)
    sides: dict[str, list[Ranks]] = {"head": [], "tail": []}
    model.eval()
    for first in range(0, len(data), batch_size):
        h, r, t = data[first : first + batch_size].unbind(1)
        for side in ("tail", "head"):
            query = model.tail_query(h, r) if side == "tail" else model.head_query(r, t)
            target = t if side == "tail" else h
            # the truth's score through the same product as the blocks (one row each)
            true = model.against(query[:, None, :], model.entity(target)[:, None, :])[:, 0, 0]
            rows = torch.arange(len(h), device=data.device)
            cols = target
            if known is not None:
                k_rows, k_cols = (
                    known.tail_pairs(h, r) if side == "tail" else known.head_pairs(r, t)
                )
                other = k_cols != target[k_rows]
                rows = torch.cat([rows, k_rows[other]])
                cols = torch.cat([cols, k_cols[other]])
            removed = torch.bincount(rows, minlength=len(h))  # the truth + known others
            better = torch.zeros(len(h), dtype=torch.long, device=data.device)
            tied = torch.ones_like(better)  # the truth ties with itself
            for start in range(0, model.num_entities, entity_chunk):
                block = model.against(query, model.entity.weight[start : start + entity_chunk])
                b, k = _block_counts(block, true, rows, cols, start)
                better += b
                tied += k
            sides[side].append(
                Ranks(
                    better=better.cpu(),
                    tied=tied.cpu(),
                    candidates=(model.num_entities - removed + 1).cpu(),
                )
            )
    return LinkPredictionResult(
        head=Ranks.cat(sides["head"]), tail=Ranks.cat(sides["tail"]), filtered=known is not None
    )


@torch.no_grad()
def evaluate_sampled(
    model: SparseKGE,
    triples: Tensor | np.ndarray,
    num_samples: int,
    known: KnownTriples | None = None,
    seed: int = 0,
    batch_size: int = 1024,
) -> LinkPredictionResult:
    """Ranks of the truth among ``num_samples`` uniformly drawn entities per query (drawn with
    replacement; known triples among them are removed when ``known`` is given)."""
    data = torch.as_tensor(np.asarray(triples)) if isinstance(triples, np.ndarray) else triples
    data = check_triples(data, "triples", model.num_entities, model.num_relations)
    check_int("num_samples", num_samples, 1)
    data = data.to(model.device)
    gen = torch.Generator(device=model.device).manual_seed(seed)
    sides: dict[str, list[Ranks]] = {"head": [], "tail": []}
    for first in range(0, len(data), batch_size):
        h, r, t = data[first : first + batch_size].unbind(1)
        true = model.score_hrt(h, r, t).float()
        for side in ("tail", "head"):
            cand = torch.randint(
                model.num_entities, (len(h), num_samples), generator=gen, device=data.device
            )
            if side == "tail":
                scores = model.score_hrt(
                    h[:, None].expand_as(cand), r[:, None].expand_as(cand), cand
                )
                target = t
                drop = cand == target[:, None]
                if known is not None:
                    drop |= known.contains(
                        h[:, None].expand_as(cand), r[:, None].expand_as(cand), cand
                    )
            else:
                scores = model.score_hrt(
                    cand, r[:, None].expand_as(cand), t[:, None].expand_as(cand)
                )
                target = h
                drop = cand == target[:, None]
                if known is not None:
                    drop |= known.contains(
                        cand, r[:, None].expand_as(cand), t[:, None].expand_as(cand)
                    )
            scores = scores.float().masked_fill(drop, -torch.inf)
            better = (scores > true[:, None]).sum(1)
            tied = (scores == true[:, None]).sum(1) + 1
            sides[side].append(
                Ranks(
                    better=better.cpu(),
                    tied=tied.cpu(),
                    candidates=(num_samples + 1 - drop.sum(1)).cpu(),
                )
            )
    return LinkPredictionResult(
        head=Ranks.cat(sides["head"]), tail=Ranks.cat(sides["tail"]), filtered=known is not None
    )


def sampled_bias(full: LinkPredictionResult, sampled: LinkPredictionResult) -> dict[str, float]:
    """Sampled minus full metric (MRR, Hits@1, Hits@10) on the same test triples: the bias of
    reporting a sampled ranking instead of the full one."""
    f, s = full.metrics(), sampled.metrics()
    return {k: s[k] - f[k] for k in ("mrr", "hits@1", "hits@10")}
