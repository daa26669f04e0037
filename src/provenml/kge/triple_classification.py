"""Triple classification (Socher et al., 2013): is ``(h, r, t)`` true?

Negatives for valid and test are made by corrupting the head or the tail of each positive with
an entity that gives no known triple. A threshold ``δ_r`` per relation is fitted on the
*validation* set only (the one that maximises validation accuracy; relations absent from
validation use one global threshold), and a test triple is classified true when
``f(h, r, t) >= δ_r``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from provenml.errors import ProvenmlError
from provenml.kge.checks import check_triples
from provenml.kge.index import KnownTriples
from provenml.kge.models import KGEModel


def corrupt_triples(
    positives: Tensor, known: KnownTriples, generator: torch.Generator, max_redraws: int = 50
) -> Tensor:
    """One negative per positive: head or tail (½ each) replaced so the triple is not known."""
    n = len(positives)
    negatives = positives.clone()
    column = torch.where(torch.rand(n, generator=generator) < 0.5, 0, 2)
    todo = torch.ones(n, dtype=torch.bool)
    for _ in range(max_redraws):
        draw = torch.randint(known.num_entities, (n,), generator=generator)
        rows = todo.nonzero().squeeze(1)
        negatives[rows, column[rows]] = draw[rows]
        todo = known.contains(*negatives.unbind(1))
        if not todo.any():
            break
    return negatives[~todo]  # the rare positive without a free corruption is dropped


def fit_thresholds(scores: Tensor, labels: Tensor, relations: Tensor, num_relations: int) -> Tensor:
    """``(R,)`` thresholds maximising accuracy of ``score >= δ_r`` per relation.

    Candidates are the observed scores plus ``+inf`` (everything negative); the loop runs over
    relations, each one a vectorised (n_r × candidates) comparison.
    """
    labels = labels.bool()

    def best(s: Tensor, y: Tensor) -> float:
        cands = torch.cat([torch.unique(s), torch.tensor([torch.inf], dtype=s.dtype)])
        correct = ((s[:, None] >= cands[None, :]) == y[:, None]).sum(0)
        return float(cands[int(torch.argmax(correct))])

    if len(scores) == 0:
        raise ProvenmlError("cannot fit thresholds without validation triples")
    fallback = best(scores, labels)
    thresholds = torch.full((num_relations,), fallback, dtype=scores.dtype)
    for r in torch.unique(relations).tolist():
        sel = relations == r
        thresholds[r] = best(scores[sel], labels[sel])
    return thresholds


@dataclass
class TripleClassifier:
    """Per-relation thresholds over a model's scores, fitted on validation only."""

    model: KGEModel
    thresholds: Tensor | None = None

    @torch.no_grad()
    def _scores(self, triples: Tensor) -> Tensor:
        self.model.eval()
        return self.model.score_hrt(*triples.to(self.model.device).unbind(1)).float().cpu()

    def _checked(self, triples: Tensor, name: str, allow_empty: bool = False) -> Tensor:
        n_ent, n_rel = self.model.num_entities, self.model.num_relations
        return check_triples(triples, name, n_ent, n_rel, allow_empty=allow_empty)

    def fit(self, valid_pos: Tensor, valid_neg: Tensor) -> TripleClassifier:
        valid_pos = self._checked(valid_pos, "valid_pos")
        valid_neg = self._checked(valid_neg, "valid_neg")
        triples = torch.cat([valid_pos, valid_neg])
        labels = torch.cat([torch.ones(len(valid_pos)), torch.zeros(len(valid_neg))])
        self.thresholds = fit_thresholds(
            self._scores(triples), labels, triples[:, 1].cpu(), self.model.num_relations
        )
        return self

    def predict(self, triples: Tensor) -> Tensor:
        if self.thresholds is None:
            raise ProvenmlError("call fit(valid_pos, valid_neg) before predict")
        triples = self._checked(triples, "triples", allow_empty=True)
        return self._scores(triples) >= self.thresholds[triples[:, 1].cpu()]

    def accuracy(self, pos: Tensor, neg: Tensor) -> float:
        pos = self._checked(pos, "pos", allow_empty=True)
        neg = self._checked(neg, "neg", allow_empty=True)
        if len(pos) + len(neg) == 0:
            raise ProvenmlError("accuracy needs at least one test triple (pos and neg are empty)")
        correct = self.predict(pos).sum() + (~self.predict(neg)).sum()
        return float(correct) / (len(pos) + len(neg))
