"""Link prediction: filtered / raw ranks (optimistic, pessimistic, realistic) and their metrics.

For a test triple ``(h, r, t)`` the tail query ranks the true ``t`` among all entities by
``score_t(h, r)``; the head query ranks ``h`` by ``score_h(r, t)``. In the *filtered* setting
(Bordes et al., 2013) every other entity that forms a known triple (train + valid + test) is
removed from the candidates first; *raw* keeps them.

Ties decide whether a metric can be gamed: with ``o`` candidates scored strictly higher than the
truth and ``k`` candidates (the truth included) scored equal,

- optimistic rank ``o + 1``, pessimistic rank ``o + k``;
- realistic (the default): the *expectation under a uniformly random order of the ties*; its
  rank is ``o + (k + 1) / 2`` (PyKEEN's realistic rank), its reciprocal rank is
  ``E[1/rank] = (H_{o+k} - H_o) / k`` and its Hits@n is ``clip(n - o, 0, k) / k``.

So a model that scores every entity the same gets exactly the chance values: MR ``(N+1)/2`` and
MRR ``H_N / N`` for ``N`` candidates. With no ties the three rank types coincide with PyKEEN's.
The adjusted mean rank index (Berrendorf et al., 2020) is ``AMRI = 1 - (MR - 1) / (E[MR] - 1)``
with ``E[MR]`` the mean of ``(N + 1) / 2`` over queries: 1 is perfect, 0 is chance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

from provenml.errors import ProvenmlError
from provenml.kge.checks import check_int, check_triples
from provenml.kge.index import KnownTriples

RankType = Literal["optimistic", "pessimistic", "realistic"]
Side = Literal["head", "tail", "both"]
_EULER = 0.5772156649015329


class Scorer(Protocol):
    """Anything with vectorised head and tail scoring (every :class:`KGEModel`)."""

    def score_t(self, h: Tensor, r: Tensor) -> Tensor: ...
    def score_h(self, r: Tensor, t: Tensor) -> Tensor: ...


def harmonic(n: Tensor) -> Tensor:
    """H_n = Σ_{i<=n} 1/i = ψ(n + 1) + γ, for tensors (float64)."""
    return torch.special.digamma(n.double() + 1) + _EULER


@dataclass
class Ranks:
    """Per-query tie counts of one side; every metric is derived from them."""

    better: Tensor  # o: candidates scored strictly higher than the truth
    tied: Tensor  # k: candidates scored equal to the truth, the truth included (>= 1)
    candidates: Tensor  # N: candidates after filtering, the truth included

    @staticmethod
    def cat(parts: Sequence[Ranks]) -> Ranks:
        return Ranks(
            *(torch.cat([getattr(p, f) for p in parts]) for f in ("better", "tied", "candidates"))
        )

    def rank(self, rank_type: RankType = "realistic") -> Tensor:
        o, k = self.better.double(), self.tied.double()
        if rank_type == "optimistic":
            return o + 1
        if rank_type == "pessimistic":
            return o + k
        if rank_type == "realistic":
            return o + (k + 1) / 2
        raise ProvenmlError(f"unknown rank type {rank_type!r}")

    def reciprocal_rank(self, rank_type: RankType = "realistic") -> Tensor:
        if rank_type == "realistic":
            o, k = self.better.double(), self.tied.double()
            return (harmonic(o + k) - harmonic(o)) / k
        return 1.0 / self.rank(rank_type)

    def hits(self, n: int, rank_type: RankType = "realistic") -> Tensor:
        if rank_type == "realistic":
            o, k = self.better.double(), self.tied.double()
            return (n - o).clamp(min=0).minimum(k) / k
        return (self.rank(rank_type) <= n).double()

    def metrics(
        self, rank_type: RankType = "realistic", ks: Iterable[int] = (1, 3, 10)
    ) -> dict[str, float]:
        """MR, MRR, Hits@k and AMRI, each the mean over queries."""
        mr = self.rank(rank_type).mean()
        expected_mr = ((self.candidates.double() + 1) / 2).mean()
        out = {
            "mr": float(mr),
            "mrr": float(self.reciprocal_rank(rank_type).mean()),
            **{f"hits@{n}": float(self.hits(n, rank_type).mean()) for n in ks},
        }
        out["amri"] = float(1 - (mr - 1) / (expected_mr - 1)) if expected_mr > 1 else float("nan")
        return out

    def chance(self, ks: Iterable[int] = (1, 3, 10)) -> dict[str, float]:
        """Expected metrics of a uniformly random ranking of the same candidates."""
        n = self.candidates.double()
        return {
            "mr": float(((n + 1) / 2).mean()),
            "mrr": float((harmonic(n) / n).mean()),
            **{f"hits@{k}": float((n.clamp(max=k) / n).mean()) for k in ks},
            "amri": 0.0,
        }


@dataclass
class LinkPredictionResult:
    """Head and tail ranks of one evaluation; ``metrics()`` averages over both by default."""

    head: Ranks
    tail: Ranks
    filtered: bool

    def ranks(self, side: Side = "both") -> Ranks:
        if side == "both":
            return Ranks.cat([self.head, self.tail])
        if side in ("head", "tail"):
            return self.head if side == "head" else self.tail
        raise ProvenmlError(f"side must be head, tail or both, got {side!r}")

    def metrics(
        self, side: Side = "both", rank_type: RankType = "realistic", ks: Iterable[int] = (1, 3, 10)
    ) -> dict[str, float]:
        return self.ranks(side).metrics(rank_type, ks)

    def chance(self, side: Side = "both") -> dict[str, float]:
        return self.ranks(side).chance()

    @property
    def mrr(self) -> float:
        return self.metrics()["mrr"]


def count_ties(scores: Tensor, target: Tensor, exclude: Tensor | None = None) -> Ranks:
    """Tie counts of the ``target`` column of each row of ``scores`` ``(B, E)``.

    ``exclude`` (``(B, E)`` bool) removes candidates (the filter); the target is never removed.
    NaN scores count as the worst possible score.
    """
    scores = torch.nan_to_num(scores.float(), nan=-torch.inf)
    rows = torch.arange(len(target), device=scores.device)
    true = scores[rows, target].unsqueeze(1)
    keep = torch.ones_like(scores, dtype=torch.bool) if exclude is None else ~exclude
    keep[rows, target] = True
    better = ((scores > true) & keep).sum(1)
    tied = ((scores == true) & keep).sum(1)
    return Ranks(better=better.cpu(), tied=tied.cpu(), candidates=keep.sum(1).cpu())


@torch.no_grad()
def evaluate_link_prediction(
    model: Scorer,
    triples: Tensor,
    filter_triples: Tensor | Sequence[Tensor] | None = None,
    num_entities: int | None = None,
    num_relations: int | None = None,
    batch_size: int = 512,
) -> LinkPredictionResult:
    """Rank every triple's head and tail among all entities.

    ``filter_triples``: the known triples to filter (pass train, valid and test for the standard
    filtered setting; ``None`` for raw ranks). The model is put in eval mode for the call.
    """
    n_ent = num_entities or getattr(model, "num_entities", None)
    n_rel = num_relations or getattr(model, "num_relations", None)
    if n_ent is None or n_rel is None:
        raise ProvenmlError("pass num_entities and num_relations for a scorer without them")
    check_int("batch_size", batch_size, 1)
    triples = check_triples(triples, "triples", n_ent, n_rel)
    device = getattr(model, "device", torch.device("cpu"))
    triples = triples.to(device)
    index = None
    if filter_triples is not None:
        parts = [filter_triples] if isinstance(filter_triples, Tensor) else list(filter_triples)
        known = torch.cat(
            [check_triples(t, "filter_triples", n_ent, n_rel, allow_empty=True) for t in parts]
            or [triples[:0]]
        )
        index = KnownTriples(known.to(device), n_ent, n_rel)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    heads, tails = [], []
    try:
        for start in range(0, len(triples), batch_size):
            h, r, t = triples[start : start + batch_size].unbind(1)
            tail_scores = model.score_t(h, r)
            tails.append(count_ties(tail_scores, t, index.tail_mask(h, r) if index else None))
            head_scores = model.score_h(r, t)
            heads.append(count_ties(head_scores, h, index.head_mask(r, t) if index else None))
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
    return LinkPredictionResult(
        head=Ranks.cat(heads), tail=Ranks.cat(tails), filtered=index is not None
    )
