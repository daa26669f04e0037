"""Triple classification, the pattern graph and the relation-extraction pieces."""

from __future__ import annotations

import pytest
import torch

from provenml.kge import KnownTriples, get_model
from provenml.kge.relation_extraction import (
    E1,
    E2,
    PCNN,
    CorpusSpec,
    bag_logits,
    held_out_metrics,
    make_corpus,
    pair_labels,
)
from provenml.kge.synthetic import PATTERNS, direction_accuracy, pattern_graph
from provenml.kge.triple_classification import (
    TripleClassifier,
    corrupt_triples,
    fit_thresholds,
)


def test_fit_thresholds_by_hand() -> None:
    scores = torch.tensor([0.9, 0.8, 0.3, 0.1, 5.0, 4.0, 6.0])
    labels = torch.tensor([1, 1, 0, 0, 0, 0, 1])
    relations = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    thresholds = fit_thresholds(scores, labels, relations, num_relations=3)
    assert thresholds[0].item() == pytest.approx(0.8)  # >= 0.8 separates relation 0
    assert thresholds[1].item() == pytest.approx(6.0)  # only 6.0 is a positive
    # relation 2 never occurs in validation: the global threshold over all seven scores. By
    # hand: >= 0.8 gets 0.9, 0.8, 0.3, 0.1, 6.0 right (5 of 7), >= 6.0 gets the four negatives
    # and 6.0 right (5 of 7), every other candidate at most 4 of 7; ties go to the lowest.
    assert thresholds[2].item() == pytest.approx(0.8)


class _HeadScorer(torch.nn.Module):
    """A stand-in model whose score is the head id plus 100 x the relation id: f = h + 100 r."""

    num_entities, num_relations = 10, 2

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def score_hrt(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (h + 100 * r).float()


def test_triple_classifier_accuracy_by_hand() -> None:
    clf = TripleClassifier(_HeadScorer())  # type: ignore[arg-type]
    # relation 0: positives have heads 6, 7, negatives 2, 3 -> threshold 6 (the lowest of the
    # perfect candidates 6); relation 1: positives 104, 105, negatives 108 -> threshold 104
    valid_pos = torch.tensor([[6, 0, 0], [7, 0, 0], [4, 1, 0], [5, 1, 0]])
    valid_neg = torch.tensor([[2, 0, 0], [3, 0, 0], [8, 1, 0]])
    clf.fit(valid_pos, valid_neg)
    assert clf.thresholds is not None
    assert clf.thresholds.tolist() == [6.0, 104.0]
    # test: positives (9, 0) right, (5, 0) wrong; negatives (1, 0) right, (4, 1) wrong, (3, 1)
    # right -> 3 of 5
    test_pos = torch.tensor([[9, 0, 1], [5, 0, 1]])
    test_neg = torch.tensor([[1, 0, 1], [4, 1, 1], [3, 1, 1]])
    assert clf.accuracy(test_pos, test_neg) == pytest.approx(3 / 5)


def test_thresholds_come_from_validation_only() -> None:
    torch.manual_seed(0)
    model = get_model("distmult", 10, 2, 4)
    gen = torch.Generator().manual_seed(0)
    valid = torch.tensor([[0, 0, 1], [2, 1, 3], [4, 0, 5], [6, 1, 7]])
    known = KnownTriples(valid, 10, 2)
    clf = TripleClassifier(model).fit(valid, corrupt_triples(valid, known, gen))
    before = clf.thresholds.clone()
    test_a = torch.tensor([[1, 0, 2], [3, 1, 4]])
    test_b = torch.tensor([[8, 0, 9], [9, 1, 8], [5, 0, 5]])
    clf.accuracy(test_a, test_b)
    clf.predict(test_b)
    assert torch.equal(clf.thresholds, before)  # evaluating never refits
    refit = TripleClassifier(model).fit(
        valid, corrupt_triples(valid, known, torch.Generator().manual_seed(0))
    )
    assert torch.equal(refit.thresholds, before)


def test_corrupted_triples_are_unknown() -> None:
    triples = torch.tensor([[h, 0, t] for h in range(5) for t in range(5) if h != t])
    known = KnownTriples(triples, 6, 1)
    neg = corrupt_triples(triples, known, torch.Generator().manual_seed(1))
    assert len(neg) == len(triples)
    assert not known.contains(*neg.unbind(1)).any()


def test_pattern_graph_tests_need_their_pattern() -> None:
    graph = pattern_graph(pool=20, seed=0)
    train = {tuple(x) for x in graph.dataset.train.tolist()}
    rel = {n: i for i, n in enumerate(graph.dataset.relation_labels)}
    for pattern in PATTERNS:
        test = graph.test_by_pattern[pattern]
        assert len(test) > 0
        assert not any(tuple(x) in train for x in test.tolist())
    for h, _, t in graph.test_by_pattern["symmetric"].tolist():
        assert (t, rel["sym"], h) in train
    for h, _, t in graph.test_by_pattern["inverse"].tolist():
        assert (t, rel["fwd"], h) in train
    r1 = {h: t for h, r, t in train if r == rel["r1"]}
    r2 = {h: t for h, r, t in train if r == rel["r2"]}
    for a, _, c in graph.test_by_pattern["composition"].tolist():
        assert r2[r1[a]] == c
    anti = [(h, t) for h, r, t in train if r == rel["anti"]]
    held_out = [(h, t) for h, _, t in graph.test_by_pattern["antisymmetric"].tolist()]
    edges = set(anti) | set(held_out)
    assert not any((t, h) in edges for h, t in edges)  # never both directions
    # a hidden order explains every edge: the graph (train + held-out) has no cycle
    import networkx as nx

    assert nx.is_directed_acyclic_graph(nx.DiGraph(list(edges)))
    # every held-out edge joins two entities that also occur in training edges
    seen = {e for pair in anti for e in pair}
    assert all(h in seen and t in seen for h, t in held_out)


def test_direction_accuracy_distmult_always_ties() -> None:
    model = get_model("distmult", 6, 1, 4)
    triples = torch.tensor([[0, 0, 1], [2, 0, 3]])
    assert direction_accuracy(model, triples) == 0.5


def test_corpus_and_pcnn_shapes() -> None:
    gen = torch.Generator().manual_seed(0)
    spec = CorpusSpec(num_relations=3)
    triples = torch.tensor([[0, 0, 1], [0, 2, 1], [2, 1, 3]])
    corpus = make_corpus(triples, torch.tensor([[4, 5]]), spec, gen, sentences_per_bag=3)
    assert corpus.pairs.tolist() == [[0, 1], [2, 3], [4, 5]]
    assert len(corpus.tokens) == 9
    rows = torch.arange(9)
    assert (corpus.tokens[rows, corpus.e1] == E1).all() and (
        corpus.tokens[rows, corpus.e2] == E2
    ).all()
    assert (corpus.label[corpus.bag == 2] == 0).all()  # NA bag
    assert set(corpus.label[corpus.bag == 0].tolist()) <= {1, 3}  # relations 0 and 2 of (0, 1)
    enc = PCNN(spec.vocab_size, 4, corpus.tokens.shape[1])
    assert enc(corpus.tokens, corpus.e1, corpus.e2).shape == (9, 4)
    assert bag_logits(enc, corpus).shape == (3, 3)
    known = KnownTriples(triples, 6, 3)
    assert pair_labels(corpus.pairs, known).tolist() == [
        [True, False, True],
        [False, True, False],
        [False, False, False],
    ]


def test_held_out_metrics_by_hand() -> None:
    labels = torch.tensor([[True, False], [False, True]])
    perfect = held_out_metrics(torch.tensor([[0.9, 0.1], [0.2, 0.8]]), labels, ns=(1, 2))
    assert perfect["p@2"] == 1.0 and perfect["pr_auc"] == pytest.approx(1.0)
    worst = held_out_metrics(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), labels, ns=(2,))
    assert worst["p@2"] == 0.0 and worst["pr_auc"] < 0.7
