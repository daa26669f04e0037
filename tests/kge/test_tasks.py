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
    # relation 2 never occurs in validation: the global threshold
    assert thresholds[2].item() == pytest.approx(
        fit_thresholds(scores, labels, relations * 0, 1)[0].item()
    )


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
    acc_a = clf.accuracy(test_a, test_b)
    clf.predict(test_b)
    assert torch.equal(clf.thresholds, before)  # evaluating never refits
    assert 0.0 <= acc_a <= 1.0
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
        if pattern == "antisymmetric":
            continue
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
    assert not any((t, h) in set(anti) for h, t in anti)


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
