"""Episodes: N classes, K support and Q queries each, all distinct; seeded; clear errors."""

from __future__ import annotations

import pytest
import torch

from provenml.errors import ProvenmlError
from provenml.fewshot import EpisodeSampler


def _labels(classes: int = 12, per_class: int = 9) -> torch.Tensor:
    labels = torch.arange(classes).repeat_interleave(per_class)
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(3))]


def test_episodes_have_n_classes_k_support_q_query_all_disjoint() -> None:
    labels = _labels()
    sampler = EpisodeSampler(labels, n_way=5, k_shot=3, q_query=4, seed=0)
    batch = sampler.sample(16)
    assert batch.support.shape == (16, 15) and batch.query.shape == (16, 20)
    assert batch.classes.shape == (16, 5)
    for b in range(16):
        classes = batch.classes[b]
        assert len(set(classes.tolist())) == 5
        support, query = batch.support[b], batch.query[b]
        assert len(set(support.tolist()) | set(query.tolist())) == 35  # no sample twice
        for k in range(5):  # episode label k is dataset class classes[k], K and Q of it
            s_idx = support[batch.support_labels[b] == k]
            q_idx = query[batch.query_labels[b] == k]
            assert len(s_idx) == 3 and len(q_idx) == 4
            assert (labels[s_idx] == classes[k]).all() and (labels[q_idx] == classes[k]).all()


def test_the_class_subset_is_respected() -> None:
    labels = _labels()
    sampler = EpisodeSampler(labels, 3, 1, 2, classes=[0, 2, 4, 6], seed=1)
    chosen = sampler.sample(50).classes
    assert set(chosen.unique().tolist()) <= {0, 2, 4, 6}


def test_same_seed_same_episodes_and_different_seed_different() -> None:
    labels = _labels()
    a = EpisodeSampler(labels, 5, 1, 5, seed=7).sample(4)
    b = EpisodeSampler(labels, 5, 1, 5, seed=7).sample(4)
    c = EpisodeSampler(labels, 5, 1, 5, seed=8).sample(4)
    assert torch.equal(a.support, b.support) and torch.equal(a.query, b.query)
    assert not torch.equal(a.query, c.query)


def test_gather_indexes_features() -> None:
    labels = _labels()
    features = torch.arange(len(labels), dtype=torch.float32).unsqueeze(1)
    batch = EpisodeSampler(labels, 2, 2, 1, seed=0).sample(3)
    support, query = batch.gather(features)
    assert torch.equal(support.squeeze(-1).long(), batch.support)
    assert query.shape == (3, 2, 1)


def test_n_way_larger_than_the_classes_is_one_clear_error() -> None:
    with pytest.raises(ProvenmlError, match="n_way=13 exceeds the 12 classes"):
        EpisodeSampler(_labels(), n_way=13, k_shot=1, q_query=1)


def test_k_shot_larger_than_a_class_is_one_clear_error() -> None:
    labels = torch.cat([_labels(), torch.full((3,), 99)])  # class 99 has 3 samples
    with pytest.raises(
        ProvenmlError, match=r"k_shot=3 \+ q_query=2 needs 5 .* class 99 has only 3"
    ):
        EpisodeSampler(labels, n_way=5, k_shot=3, q_query=2)
    with pytest.raises(ProvenmlError, match="k_shot=10"):
        EpisodeSampler(_labels(), n_way=5, k_shot=10, q_query=0)
    skipping = EpisodeSampler(labels, 5, 3, 2, small_classes="skip")
    assert 99 not in skipping.classes.tolist()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_way": 1}, "n_way must be an integer >= 2"),
        ({"k_shot": 0}, "k_shot must be an integer >= 1"),
        ({"q_query": -1}, "q_query must be an integer >= 0"),
    ],
)
def test_bad_sizes_are_clear_errors(kwargs: dict, message: str) -> None:
    args = {"n_way": 5, "k_shot": 1, "q_query": 1, **kwargs}
    with pytest.raises(ProvenmlError, match=message):
        EpisodeSampler(_labels(), **args)


def test_float_labels_are_refused() -> None:
    with pytest.raises(ProvenmlError, match="labels must be a 1-D integer tensor"):
        EpisodeSampler(torch.rand(20), 2, 1, 1)
