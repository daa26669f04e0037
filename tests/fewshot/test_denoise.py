"""Label denoising: the LDN and the prototype filter recover separable clean/noisy clusters."""

from __future__ import annotations

import pytest
import torch

from provenml.errors import ProvenmlError
from provenml.fewshot import LDN, PrototypeFilter, auroc, filter_quality


def _toy(classes: int = 6, clean: int = 5, relevant: int = 8, noisy: int = 8, dim: int = 12):
    """Class clusters around orthogonal directions; each class's web pool mixes samples of its
    own cluster with samples of a shared distractor cluster and of other classes."""
    g = torch.Generator().manual_seed(0)
    centres = 4.0 * torch.eye(dim)[:classes]
    distractor = -4.0 * torch.ones(dim) / dim**0.5

    def around(centre: torch.Tensor, n: int) -> torch.Tensor:
        return centre + 0.5 * torch.randn(n, dim, generator=g)

    clean_x = torch.cat([around(centres[c], clean) for c in range(classes)])
    clean_y = torch.arange(classes).repeat_interleave(clean)
    web_x, web_y, truth = [], [], []
    for c in range(classes):
        web_x += [around(centres[c], relevant), around(distractor, noisy // 2)]
        web_x.append(around(centres[(c + 1) % classes], noisy - noisy // 2))
        web_y.append(torch.full((relevant + noisy,), c))
        truth.append(torch.cat([torch.ones(relevant), torch.zeros(noisy)]).bool())
    return clean_x, clean_y, torch.cat(web_x), torch.cat(web_y), torch.cat(truth)


@pytest.mark.parametrize(("network", "min_precision"), [("adargcn", 0.95), ("gcn", 0.85)])
def test_ldn_recovers_separable_clusters(network: str, min_precision: float) -> None:
    clean_x, clean_y, web_x, web_y, relevant = _toy()
    ldn = LDN(network=network, rounds=2, unlabelled=8, negatives=8, seed=0)
    scores = ldn.scores(clean_x, clean_y, web_x, web_y)
    assert scores.shape == web_y.shape and ((scores >= 0) & (scores <= 1)).all()
    quality = filter_quality(scores, relevant)
    assert quality.auroc > 0.95  # the plain-GCN variant keeps a few other-class samples
    assert quality.precision > min_precision and quality.recall > 0.9


def test_prototype_filter_recovers_separable_clusters() -> None:
    clean_x, clean_y, web_x, web_y, relevant = _toy()
    quality = filter_quality(PrototypeFilter().scores(clean_x, clean_y, web_x, web_y), relevant)
    assert quality.auroc > 0.95 and quality.precision > 0.9 and quality.recall > 0.7


def test_ldn_same_seed_same_scores() -> None:
    clean_x, clean_y, web_x, web_y, _ = _toy()
    a = LDN(steps=5, rounds=1, seed=3).scores(clean_x, clean_y, web_x, web_y)
    b = LDN(steps=5, rounds=1, seed=3).scores(clean_x, clean_y, web_x, web_y)
    assert torch.equal(a, b)


def test_auroc_matches_pairwise_counting() -> None:
    scores = torch.tensor([0.9, 0.8, 0.8, 0.3, 0.1, 0.8])
    positive = torch.tensor([1, 1, 0, 1, 0, 0]).bool()
    pairs = [
        1.0 if s_p > s_n else 0.5 if s_p == s_n else 0.0
        for s_p in scores[positive]
        for s_n in scores[~positive]
    ]
    assert auroc(scores, positive) == pytest.approx(sum(pairs) / len(pairs))


def test_web_class_without_clean_samples_is_a_clear_error() -> None:
    clean_x, clean_y, web_x, web_y, _ = _toy()
    keep = clean_y != 2
    with pytest.raises(ProvenmlError, match=r"web classes \[2\] have no clean samples"):
        LDN(steps=1).scores(clean_x[keep], clean_y[keep], web_x, web_y)
