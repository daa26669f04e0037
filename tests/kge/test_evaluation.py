"""Filtered ranks against a brute-force reference; chance values for a constant scorer."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor

from provenml.kge import count_ties, evaluate_link_prediction


class TableScorer:
    """A scorer defined by a fixed score table s[h, r, t] (ties on purpose)."""

    def __init__(self, table: Tensor) -> None:
        self.table = table
        self.num_entities, self.num_relations = table.shape[0], table.shape[1]

    def score_t(self, h: Tensor, r: Tensor) -> Tensor:
        return self.table[h, r, :]

    def score_h(self, r: Tensor, t: Tensor) -> Tensor:
        return self.table[:, r, t].T


def test_hand_computed_ranks() -> None:
    scores = torch.tensor([[0.5, 0.9, 0.9, 0.1]])
    target = torch.tensor([2])
    raw = count_ties(scores, target)
    assert (raw.better.item(), raw.tied.item(), raw.candidates.item()) == (0, 2, 4)
    assert raw.rank("optimistic").item() == 1
    assert raw.rank("pessimistic").item() == 2
    assert raw.rank("realistic").item() == 1.5
    assert raw.reciprocal_rank().item() == pytest.approx((1 + 1 / 2) / 2)
    assert raw.hits(1).item() == pytest.approx(0.5)
    filtered = count_ties(scores, target, exclude=torch.tensor([[False, True, True, False]]))
    assert filtered.rank("realistic").item() == 1  # the target itself is never filtered
    assert filtered.candidates.item() == 3
    lower = count_ties(scores, torch.tensor([3]))
    assert lower.rank("realistic").item() == 4


def _brute_force(table: Tensor, test: Tensor, known: set) -> dict[str, list[float]]:
    """Loops over every candidate: realistic ranks and reciprocal ranks, tails then heads."""
    n_ent = table.shape[0]
    ranks, rrs = [], []
    for side in ("tail", "head"):
        for h, r, t in test.tolist():
            target = t if side == "tail" else h
            true = table[h, r, t].item()
            better = tied = 0
            for e in range(n_ent):
                triple = (h, r, e) if side == "tail" else (e, r, t)
                if e != target and triple in known:
                    continue
                s = table[triple].item()
                better += s > true
                tied += s == true
            ranks.append(better + (tied + 1) / 2)
            rrs.append(sum(1 / (better + j) for j in range(1, tied + 1)) / tied)
    return {"rank": ranks, "rr": rrs}


def test_filtered_ranks_match_brute_force() -> None:
    gen = torch.Generator().manual_seed(0)
    n_ent, n_rel = 7, 3
    table = torch.randint(0, 4, (n_ent, n_rel, n_ent), generator=gen).float()  # many ties
    all_triples = torch.tensor(list(itertools.product(range(n_ent), range(n_rel), range(n_ent))))
    pick = torch.randperm(len(all_triples), generator=gen)
    train, test = all_triples[pick[:60]], all_triples[pick[60:80]]
    scorer = TableScorer(table)
    result = evaluate_link_prediction(scorer, test, [train, test], batch_size=6)
    known = {tuple(x) for x in torch.cat([train, test]).tolist()}
    ref = _brute_force(table, test, known)
    ours_rank = torch.cat([result.tail.rank(), result.head.rank()]).tolist()
    ours_rr = torch.cat([result.tail.reciprocal_rank(), result.head.reciprocal_rank()]).tolist()
    assert ours_rank == pytest.approx(ref["rank"])
    assert ours_rr == pytest.approx(ref["rr"])
    raw = evaluate_link_prediction(scorer, test, None)
    assert _brute_force(table, test, set())["rank"] == pytest.approx(
        torch.cat([raw.tail.rank(), raw.head.rank()]).tolist()
    )


def test_constant_scores_get_chance_not_perfect() -> None:
    n_ent, n_rel = 14, 2
    scorer = TableScorer(torch.zeros(n_ent, n_rel, n_ent))
    test = torch.tensor([[0, 0, 1], [2, 1, 3], [5, 0, 5]])
    result = evaluate_link_prediction(scorer, test, None)
    m = result.metrics()
    chance_mrr = sum(1 / i for i in range(1, n_ent + 1)) / n_ent  # H_14 / 14 = .232
    assert m["mrr"] == pytest.approx(chance_mrr)
    assert m["mrr"] == pytest.approx(0.2323, abs=1e-3)
    assert m["mr"] == pytest.approx((n_ent + 1) / 2)
    assert m["hits@10"] == pytest.approx(10 / n_ent)
    assert m["amri"] == pytest.approx(0.0)
    assert result.metrics(rank_type="optimistic")["mrr"] == 1.0  # why realistic is the default
    assert result.chance()["mrr"] == pytest.approx(chance_mrr)


def test_filtered_chance_uses_remaining_candidates() -> None:
    scorer = TableScorer(torch.zeros(5, 1, 5))
    test = torch.tensor([[0, 0, 1]])
    known = torch.tensor([[0, 0, 2], [0, 0, 3], [0, 0, 1]])
    result = evaluate_link_prediction(scorer, test, [known])
    assert result.tail.candidates.item() == 3
    assert result.tail.reciprocal_rank().item() == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert math.isclose(result.chance("tail")["mrr"], (1 + 1 / 2 + 1 / 3) / 3)
