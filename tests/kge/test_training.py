"""Negative sampling, losses, regularisers, early stopping, determinism and learning."""

from __future__ import annotations

import pytest
import torch

from provenml.core import ProvenmlError
from provenml.kge import (
    KnownTriples,
    NegativeSampler,
    TrainingConfig,
    evaluate_link_prediction,
    get_model,
    load_dataset,
    margin_ranking_loss,
    self_adversarial_loss,
    softplus_loss,
    train,
)
from provenml.kge.training import regularization


@pytest.fixture(scope="module")
def nations():
    return load_dataset("nations")


def test_bern_probabilities_by_hand() -> None:
    # relation 0 is 1-N (head 0 -> tails 1, 2, 3): tph = 3, hpt = 1 -> P(head) = 3/4
    # relation 1 is N-1 (heads 1, 2 -> tail 0): tph = 1, hpt = 2 -> P(head) = 1/3
    train_ = torch.tensor([[0, 0, 1], [0, 0, 2], [0, 0, 3], [1, 1, 0], [2, 1, 0]])
    prob = NegativeSampler.bern_probabilities(train_, 2)
    assert prob.tolist() == pytest.approx([0.75, 1 / 3])


def test_negatives_corrupt_one_side_and_filtered_avoid_known() -> None:
    gen = torch.Generator().manual_seed(0)
    n_ent = 6
    known = torch.tensor([[h, 0, t] for h in range(n_ent) for t in range(n_ent) if (h + t) % 2])
    sampler = NegativeSampler(known, n_ent, 1, "uniform", num_negatives=20, filtered=True)
    negatives, valid = sampler.sample(known, gen)
    changed = (negatives != known.unsqueeze(1)).sum(-1)
    assert (changed <= 1).all()  # only the head or the tail changes
    assert (negatives[..., 1] == 0).all()
    index = KnownTriples(known, n_ent, 1)
    assert not index.contains(*negatives[valid].unbind(-1)).any()
    assert valid.float().mean() > 0.9  # redraws find true negatives
    unfiltered = NegativeSampler(known, n_ent, 1, "uniform", 20, filtered=False)
    neg2, _ = unfiltered.sample(known, gen)
    assert index.contains(*neg2.unbind(-1)).any()  # without filtering, positives slip in


def test_losses_by_hand() -> None:
    pos = torch.tensor([1.0])
    neg = torch.tensor([[0.5, 2.0]])
    mask = torch.ones(1, 2)
    # [1 - 1 + 0.5]+ = 0.5 and [1 - 1 + 2]+ = 2
    assert margin_ranking_loss(pos, neg, mask, 1.0).item() == pytest.approx(1.25)
    sp = torch.nn.functional.softplus
    expected = (sp(-pos).sum() + sp(neg).sum()) / 3
    assert softplus_loss(pos, neg, mask).item() == pytest.approx(expected.item())
    # self-adversarial with α = 0: uniform weights ½ each
    ls = torch.nn.functional.logsigmoid
    by_hand = -ls(torch.tensor(2.0 + 1.0)) - 0.5 * (
        ls(torch.tensor(-2.0 - 0.5)) + ls(torch.tensor(-2.0 - 2.0))
    )
    got = self_adversarial_loss(pos, neg, mask.bool(), margin=2.0, temperature=0.0)
    assert got.item() == pytest.approx(by_hand.item())
    # masked negatives do not count
    half = torch.tensor([[1.0, 0.0]])
    assert margin_ranking_loss(pos, neg, half, 1.0).item() == pytest.approx(0.5)


def test_regularizers_by_hand() -> None:
    factors = [torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0, 0.0]])]
    assert regularization(factors, "l2", 0.1).item() == pytest.approx(0.1 * (1 + 4 + 9))
    assert regularization(factors, "n3", 0.1).item() == pytest.approx(0.1 * (1 + 8 + 27))


def test_bad_configs_are_clear() -> None:
    with pytest.raises(ProvenmlError, match="kvsall"):
        TrainingConfig(loop="kvsall", loss="margin")
    with pytest.raises(ProvenmlError, match="optimizer"):
        m = get_model("distmult", 3, 1, 2)
        train(m, torch.tensor([[0, 0, 1]]), TrainingConfig(optimizer="rmsprop", epochs=1))  # type: ignore[arg-type]
    with pytest.raises(ProvenmlError, match="beyond"):
        train(get_model("distmult", 3, 1, 2), torch.tensor([[0, 0, 7]]), TrainingConfig(epochs=1))


def _fit(nations, seed: int, **kw) -> float:
    torch.manual_seed(seed)
    model = get_model(kw.pop("model", "distmult"), nations.num_entities, nations.num_relations, 16)
    cfg = TrainingConfig(epochs=kw.pop("epochs", 8), batch_size=256, seed=seed, **kw)
    train(model, nations.train, cfg)
    return evaluate_link_prediction(model, nations.test, [nations.all_triples]).mrr


def test_same_seed_same_mrr(nations) -> None:
    assert _fit(nations, 3, loss="softplus") == _fit(nations, 3, loss="softplus")
    assert _fit(nations, 3, loss="softplus") != _fit(nations, 4, loss="softplus")


@pytest.mark.parametrize(
    "kw",
    [
        {
            "model": "distmult",
            "loop": "kvsall",
            "loss": "bce",
            "optimizer": "adagrad",
            "lr": 0.1,
            "regularizer": "n3",
            "reg_weight": 1e-3,
        },
        {"model": "transe", "loss": "margin", "sampler": "bern", "filter_negatives": True},
        {"model": "rotate", "loss": "nssa", "margin": 3.0, "optimizer": "adam"},
        {
            "model": "complex",
            "loss": "softplus",
            "optimizer": "sgd",
            "lr": 5.0,
            "regularizer": "l2",
            "reg_weight": 1e-4,
        },
    ],
)
def test_training_beats_chance_on_nations(nations, kw) -> None:
    torch.manual_seed(0)
    model = get_model(kw.pop("model"), nations.num_entities, nations.num_relations, 16)
    cfg = TrainingConfig(epochs=15, batch_size=128, **kw)
    untrained = evaluate_link_prediction(model, nations.test, [nations.all_triples])
    history = train(model, nations.train, cfg)
    result = evaluate_link_prediction(model, nations.test, [nations.all_triples])
    assert history.losses[-1] < history.losses[0]
    assert result.mrr > result.chance()["mrr"] + 0.03
    assert result.mrr > untrained.mrr


def test_early_stopping_uses_validation_and_restores_best(nations) -> None:
    torch.manual_seed(0)
    model = get_model("distmult", nations.num_entities, nations.num_relations, 16)
    cfg = TrainingConfig(epochs=60, eval_every=2, patience=2, lr=0.05, loss="softplus")
    history = train(model, nations.train, cfg, valid=nations.valid)
    assert history.valid_mrr and history.best_epoch is not None
    best = max(m for _, m in history.valid_mrr)
    again = evaluate_link_prediction(model, nations.valid, [nations.train, nations.valid]).mrr
    assert again == pytest.approx(best)  # the best weights are the ones kept
    with pytest.raises(ProvenmlError, match="valid"):
        train(model, nations.train, cfg)
