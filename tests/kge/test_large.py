"""Large-graph pieces: the generator, the streaming loader, sparse training with chunk-shared
negatives, chunked and sampled evaluation (issue 26)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from provenml.errors import ProvenmlError
from provenml.kge import KnownTriples, evaluate_link_prediction, get_model
from provenml.kge.large import LargeKG, generate_large_kg, stream_tsv
from provenml.kge.sparse import (
    SparseKGE,
    SparseTrainingConfig,
    chunk_loss,
    evaluate_chunked,
    evaluate_sampled,
    train_sparse,
)


@pytest.fixture(scope="module")
def graph() -> LargeKG:
    return generate_large_kg(600, 12_000, 10, num_clusters=12, seed=3)


def test_generator_is_seeded_int32_and_split_cleanly(graph: LargeKG, tmp_path: Path) -> None:
    again = generate_large_kg(600, 12_000, 10, num_clusters=12, seed=3)
    assert np.array_equal(graph.train, again.train) and np.array_equal(graph.test, again.test)
    assert graph.train.dtype == np.int32 and graph.train.shape[1] == 3
    total = len(graph.train) + len(graph.valid) + len(graph.test)
    assert 0.9 * 12_000 <= total <= 12_000
    everything = np.concatenate([graph.train, graph.valid, graph.test]).astype(np.int64)
    keys = (everything[:, 0] * 10 + everything[:, 1]) * 600 + everything[:, 2]
    assert len(np.unique(keys)) == len(keys)  # no duplicates across splits
    seen = np.zeros(600, bool)
    seen[graph.train[:, [0, 2]].ravel()] = True
    assert seen[graph.test[:, [0, 2]].ravel()].all()  # test entities all have an embedding
    # power law: the busiest entity has far more triples than the median one
    degree = np.bincount(graph.train[:, [0, 2]].ravel(), minlength=600)
    assert degree.max() > 10 * max(1, np.median(degree))
    loaded = LargeKG.load(graph.save(tmp_path / "g"))
    assert np.array_equal(np.asarray(loaded.train), graph.train)
    assert loaded.relation_family == graph.relation_family


def test_generator_patterns(graph: LargeKG) -> None:
    fam = graph.relation_family
    triples = {tuple(x) for x in np.concatenate([graph.train, graph.valid, graph.test]).tolist()}
    sym = fam.index("symmetric")
    pairs = [(h, t) for h, r, t in triples if r == sym]
    assert sum((t, sym, h) in triples for h, t in pairs) > 0.8 * len(pairs)
    anti = fam.index("antisymmetric")
    assert not any((t, anti, h) in triples for h, r, t in triples if r == anti)
    inv = fam.index("inverse")
    fwd = [(h, t) for h, r, t in triples if r == inv]
    assert sum((t, inv + 1, h) in triples for h, t in fwd) > 0.8 * len(fwd)


def test_stream_tsv_matches_a_plain_read(tmp_path: Path) -> None:
    rows = [("a", "likes", "b"), ("b", "likes", "c"), ("c", "hates", "a"), ("a", "hates", "b")]
    path = tmp_path / "train.tsv"
    path.write_text("".join("\t".join(r) + "\n" for r in rows))
    triples, ents, rels = stream_tsv(path, chunk_lines=3)  # two chunks
    assert triples.dtype == np.int32
    assert ents == {"a": 0, "b": 1, "c": 2} and rels == {"likes": 0, "hates": 1}
    assert triples.tolist() == [[0, 0, 1], [1, 0, 2], [2, 1, 0], [0, 1, 1]]
    test = tmp_path / "test.tsv"
    test.write_text("c\tlikes\tb\n")
    more, ents2, _ = stream_tsv(test, ents, rels)
    assert more.tolist() == [[2, 0, 1]] and ents2 == ents
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\n")
    with pytest.raises(ProvenmlError, match="3 tab-separated columns"):
        stream_tsv(bad)


@pytest.mark.parametrize("name", ["distmult", "complex"])
def test_sparse_scores_equal_the_dense_model(name: str) -> None:
    torch.manual_seed(0)
    dense = get_model(name, 7, 3, 4)
    sparse = SparseKGE(name, 7, 3, 4)
    with torch.no_grad():
        sparse.entity.weight.copy_(dense.entity)
        sparse.relation.weight.copy_(dense.relation)
    h, r = torch.tensor([0, 3, 6]), torch.tensor([2, 0, 1])
    t = torch.tensor([1, 1, 5])
    assert torch.allclose(sparse.score_hrt(h, r, t), dense.score_hrt(h, r, t), atol=1e-6)
    assert torch.allclose(sparse.score_t(h, r), dense.score_t(h, r), atol=1e-6)
    assert torch.allclose(sparse.score_h(r, t), dense.score_h(r, t), atol=1e-6)


def test_transe_block_scores_are_l2_distances() -> None:
    torch.manual_seed(0)
    model = SparseKGE("transe", 5, 2, 3)
    h, r = torch.tensor([0, 4]), torch.tensor([1, 0])
    by_hand = -torch.cdist(model.entity(h) + model.relation(r), model.entity.weight)
    assert torch.allclose(model.score_t(h, r), by_hand, atol=1e-5)


def test_chunk_loss_shares_negatives_and_gives_sparse_gradients() -> None:
    torch.manual_seed(0)
    model = SparseKGE("distmult", 50, 2, 4)
    cfg = SparseTrainingConfig(batch_size=8, chunk_size=4, num_negatives=3)
    batch = torch.tensor([[i, i % 2, i + 1] for i in range(8)], dtype=torch.int32)
    loss = chunk_loss(model, batch, cfg, torch.Generator().manual_seed(0))
    loss.backward()
    grad = model.entity.weight.grad
    assert grad is not None and grad.is_sparse
    touched = torch.unique(grad.coalesce().indices())
    assert len(touched) <= 9 + 2 * 3  # 9 batch entities + 3 negatives per chunk, 2 chunks
    # at initialisation (tiny scores) the logistic loss is near log 2 + log 2
    assert loss.item() == pytest.approx(2 * np.log(2), abs=0.05)


def test_sparse_training_learns(graph: LargeKG) -> None:
    torch.manual_seed(0)
    model = SparseKGE("complex", graph.num_entities, graph.num_relations, 16)
    known = KnownTriples(
        torch.as_tensor(np.concatenate([graph.train, graph.valid, graph.test])),
        graph.num_entities,
        graph.num_relations,
    )
    before = evaluate_chunked(model, graph.test, known).mrr
    stats = train_sparse(
        model, graph.train, SparseTrainingConfig(epochs=4, batch_size=512, chunk_size=64, lr=0.02)
    )
    after = evaluate_chunked(model, graph.test, known)
    assert stats.losses[-1] < stats.losses[0] and stats.positives == 4 * len(graph.train)
    assert after.mrr > 3 * before and after.mrr > 2 * after.chance()["mrr"]


def test_on_epoch_runs_after_each_epoch_and_can_stop(graph: LargeKG) -> None:
    """Stopping after epoch 2 of 5 trains exactly two epochs, with the same weights as a
    plain 2-epoch run from the same seed (the callback's evaluation changes nothing)."""
    cfg = SparseTrainingConfig(epochs=5, batch_size=512, chunk_size=64, lr=0.02)
    seen: list[int] = []

    def stop_after_two(epoch: int) -> bool:
        seen.append(epoch)
        return epoch == 2

    torch.manual_seed(0)
    stopped = SparseKGE("distmult", graph.num_entities, graph.num_relations, 8)
    stats = train_sparse(stopped, graph.train, cfg, on_epoch=stop_after_two)
    torch.manual_seed(0)
    plain = SparseKGE("distmult", graph.num_entities, graph.num_relations, 8)
    train_sparse(plain, graph.train, SparseTrainingConfig(**{**cfg.__dict__, "epochs": 2}))
    assert seen == [1, 2] and stats.positives == 2 * len(graph.train)
    assert torch.equal(stopped.entity.weight, plain.entity.weight)


def test_chunked_evaluation_equals_the_dense_evaluator(graph: LargeKG) -> None:
    torch.manual_seed(1)
    model = SparseKGE("distmult", graph.num_entities, graph.num_relations, 8)
    everything = torch.as_tensor(np.concatenate([graph.train, graph.valid, graph.test])).long()
    known = KnownTriples(everything, graph.num_entities, graph.num_relations)
    test = torch.as_tensor(graph.test).long()
    dense = evaluate_link_prediction(model, test, [everything])
    for chunk in (37, 600, 10_000):
        ours = evaluate_chunked(model, graph.test, known, batch_size=50, entity_chunk=chunk)
        for side in ("head", "tail"):
            for f in ("better", "tied", "candidates"):
                assert torch.equal(getattr(dense.ranks(side), f), getattr(ours.ranks(side), f))
    raw = evaluate_chunked(model, test, None, entity_chunk=100)
    assert torch.equal(raw.tail.better, evaluate_link_prediction(model, test).tail.better)


def test_sampled_ranks_by_hand() -> None:
    # a stand-in model where the score of (h, r, t) is t for tails and h for heads
    model = SparseKGE("distmult", 10, 1, 1)
    with torch.no_grad():
        model.entity.weight.copy_(torch.arange(10.0)[:, None])
        model.relation.weight.fill_(1.0)
    # score(h, r, t) = h * t; query (5, 0, 5): truth 25; all 9 other tails 0..9 (not 5)
    triples = torch.tensor([[5, 0, 5]])
    full = evaluate_chunked(model, triples)
    assert full.tail.better.tolist() == [4]  # tails 6, 7, 8, 9 beat 5
    sampled = evaluate_sampled(model, triples, num_samples=2000, seed=0)
    # 2000 uniform draws: about 4/10 of them beat the truth, 1/10 are the truth (dropped)
    frac = sampled.tail.better.item() / (sampled.tail.candidates.item() - 1)
    assert frac == pytest.approx(4 / 9, abs=0.04)
