"""Tests of the selection component: sampling law, score signs, losses, FLOPs, errors."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from provenml.core import ComputeLedger, ProvenmlError, count_flops
from provenml.selection import (
    EasyReference,
    HardLearner,
    Learnability,
    OnlineBatchSelector,
    OnlineReference,
    RhoLoss,
    ScoringPolicy,
    Uniform,
    classification_loss,
    mlp,
    per_example_losses,
    precompute_losses,
    train_reference,
)


class TableLoss(nn.Module):
    """A 'model' whose loss on example i is ``values[i]`` (batch = (x, index))."""

    def __init__(self, values: Tensor) -> None:
        super().__init__()
        self.values = nn.Parameter(values.clone().float())


def table_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    return model.values[batch[1]]  # type: ignore[index]


class FixedScores(ScoringPolicy):
    def __init__(self, scores: Tensor, **kwargs: float) -> None:
        super().__init__(**kwargs)
        self.fixed = scores

    def score(self, batch, **_):  # type: ignore[no-untyped-def]
        return self.fixed


def toy_data(n: int = 512, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
    return TensorDataset(x, y)


def test_sampling_matches_softmax() -> None:
    scores = torch.tensor([0.0, 1.0, -1.0, 2.0, 0.5, -2.0, 1.5, 0.2])
    temperature = 0.7
    policy = FixedScores(scores, temperature=temperature)
    selector = OnlineBatchSelector(
        nn.Identity(), table_loss, policy, batch_size=1, rho=1 / 8, seed=123
    )
    batch = (torch.zeros(8, 1), torch.arange(8))
    draws = 8000
    counts = torch.zeros(8)
    for _ in range(draws):
        counts[selector.select(batch).positions] += 1
    expected = torch.softmax(scores / temperature, 0) * draws
    p_value = stats.chisquare(counts.numpy(), expected.numpy()).pvalue
    assert p_value > 1e-3, (counts, expected)
    # a wrong law (plain softmax without the temperature) is rejected by the same test
    wrong = torch.softmax(scores, 0) * draws
    assert stats.chisquare(counts.numpy(), wrong.numpy()).pvalue < 1e-6


def test_sampling_without_replacement_and_topk() -> None:
    scores = torch.randn(64, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    picked = FixedScores(scores).choose(scores, 64, 32, g)
    assert picked.unique().numel() == 32
    top = FixedScores(scores, topk=True).choose(scores, 64, 32, g)
    assert set(top.tolist()) == set(scores.argsort(descending=True)[:32].tolist())


def test_score_signs_per_policy() -> None:
    learner = TableLoss(torch.tensor([3.0, 1.0, 2.0, 0.5]))
    actor = TableLoss(torch.tensor([2.0, 2.0, 1.0, 1.0]))
    reference = TableLoss(torch.tensor([0.5, 1.5, 3.0, 0.1]))
    batch = (torch.zeros(4, 1), torch.arange(4))
    kw = {"indices": None, "learner": learner, "loss_fn": table_loss, "ledger": None}
    expected = {
        "learnability": actor.values - reference.values,
        "rho": learner.values - reference.values,
        "hard": learner.values,
        "easy": -reference.values,
    }
    got = {
        "learnability": Learnability(actor, reference).score(batch, **kw),
        "rho": RhoLoss(reference).score(batch, **kw),
        "hard": HardLearner().score(batch, **kw),
        "easy": EasyReference(reference).score(batch, **kw),
    }
    for name in expected:
        torch.testing.assert_close(got[name], expected[name].detach(), msg=name)
    assert Uniform().score(batch, **kw) is None
    # top-k RHO-LOSS keeps the examples with the largest learner - reference gap
    selector = OnlineBatchSelector(learner, table_loss, RhoLoss(reference), batch_size=2, rho=0.5)
    assert set(selector.select(batch).positions.tolist()) == {0, 3}


def test_per_example_losses_match_cross_entropy_and_restore_mode() -> None:
    data = toy_data(32)
    model = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.5), nn.Linear(8, 4))
    model.train()
    batch = data.tensors
    losses = per_example_losses(model, classification_loss, batch)
    model.eval()
    expected = torch.stack(
        [F.cross_entropy(model(x[None]), y[None]) for x, y in zip(*batch, strict=True)]
    )
    torch.testing.assert_close(losses, expected.detach())
    assert not losses.requires_grad
    model.train()
    per_example_losses(model, classification_loss, batch)
    assert model.training


def test_flop_totals_equal_sum_of_parts() -> None:
    data = toy_data(512)
    torch.manual_seed(0)
    learner, actor, ref = mlp(6, [64], 4), mlp(6, [8], 4), mlp(6, [8], 4)
    ledger = ComputeLedger()
    train_reference(ref, data, classification_loss, steps=5, batch_size=32, ledger=ledger)
    policy = Learnability(actor, ref)
    selector = OnlineBatchSelector(learner, classification_loss, policy, 32, 0.5, ledger=ledger)
    steps = sum(1 for _ in selector.batches(data, epochs=1))
    assert steps == 512 // 64
    parts = ["training:reference", "scoring:actor", "scoring:reference", "training:actor"]
    assert set(ledger.flops) == set(parts)
    # each part equals an independent measurement of one call times the number of calls
    x64 = data.tensors[0][:64]
    _, fwd_actor = count_flops(lambda: actor(x64))
    _, fwd_ref = count_flops(lambda: ref(x64))
    assert ledger.flops["scoring:actor"] == steps * fwd_actor > 0
    assert ledger.flops["scoring:reference"] == steps * fwd_ref
    assert ledger.calls["training:reference"] == 5
    # the actor's step back-propagates the selected half of its scoring forward (shared)
    losses = classification_loss(actor, (x64, data.tensors[1][:64]))
    _, train_actor = count_flops(lambda: losses[:32].mean().backward())
    assert ledger.flops["training:actor"] == steps * train_actor > 0
    # without sharing: a forward and backward of the selected 32 examples
    separate = ComputeLedger()
    policy = Learnability(actor, ref, share_forward=False)
    selector = OnlineBatchSelector(learner, classification_loss, policy, 32, ledger=separate)
    assert sum(1 for _ in selector.batches(data, epochs=1)) == steps
    batch32 = (data.tensors[0][:32], data.tensors[1][:32])
    _, fwd_bwd = count_flops(lambda: classification_loss(actor, batch32).mean().backward())
    assert separate.flops["training:actor"] == steps * fwd_bwd > steps * fwd_actor // 2


def test_same_seed_same_selection() -> None:
    def run(seed: int) -> list[list[int]]:
        torch.manual_seed(0)
        learner, actor, ref = mlp(6, [16], 4), mlp(6, [8], 4), mlp(6, [8], 4)
        selector = OnlineBatchSelector(
            learner, classification_loss, Learnability(actor, ref), 16, seed=seed
        )
        return [s.indices.tolist() for s in selector.selections(toy_data(256), epochs=2)]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_reference_table_stays_aligned_with_dataset_indices() -> None:
    data = toy_data(256)
    torch.manual_seed(0)
    ref = train_reference(mlp(6, [8], 4), data, classification_loss, steps=20, batch_size=32)
    table = precompute_losses(ref, data, classification_loss, batch_size=100)
    assert table.shape == (256,)
    selector = OnlineBatchSelector(
        mlp(6, [8], 4), classification_loss, EasyReference(table), batch_size=32
    )
    for super_batch, indices in selector.super_batches(data):
        assert indices is not None
        direct = per_example_losses(ref, classification_loss, super_batch)
        looked_up = EasyReference(table).score(
            super_batch, indices=indices, learner=ref, loss_fn=classification_loss, ledger=None
        )
        torch.testing.assert_close(-looked_up, direct)
    with pytest.raises(ProvenmlError, match="indices"):
        selector.select((data.tensors[0][:64], data.tensors[1][:64]))


def test_iterable_source_is_rechunked_into_super_batches() -> None:
    data = toy_data(500)
    loader = torch.utils.data.DataLoader(data, batch_size=50)
    selector = OnlineBatchSelector(mlp(6, [8], 4), classification_loss, Uniform(), 64, rho=0.5)
    sizes = [len(b[0]) for b in selector.batches(loader)]
    assert sizes == [64] * (500 // 128)


def test_online_reference_trains_on_holdout() -> None:
    data = toy_data(256)
    torch.manual_seed(0)
    ref_model = mlp(6, [8], 4)
    before = [p.detach().clone() for p in ref_model.parameters()]
    holdout = torch.utils.data.DataLoader(data, batch_size=32)
    policy = Learnability(mlp(6, [8], 4), OnlineReference(ref_model, holdout, classification_loss))
    ledger = ComputeLedger()
    selector = OnlineBatchSelector(mlp(6, [8], 4), classification_loss, policy, 32, ledger=ledger)
    assert sum(1 for _ in selector.batches(data, epochs=3)) == 12  # > 8 holdout batches: cycles
    assert ledger.calls["training:reference"] == 12
    assert any(not torch.equal(a, b) for a, b in zip(before, ref_model.parameters(), strict=True))


@pytest.mark.parametrize("rho", [0.0, -0.5, 1.5])
def test_rho_outside_unit_interval_is_an_error(rho: float) -> None:
    with pytest.raises(ProvenmlError, match="rho"):
        OnlineBatchSelector(nn.Identity(), table_loss, Uniform(), 8, rho=rho)


def test_scalar_loss_is_an_error() -> None:
    def mean_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        return classification_loss(model, batch).mean()

    selector = OnlineBatchSelector(mlp(6, [8], 4), mean_loss, HardLearner(), 8)
    with pytest.raises(ProvenmlError, match="scalar"):
        selector.select(toy_data(16).tensors)


def test_super_batch_smaller_than_batch_size_is_an_error() -> None:
    selector = OnlineBatchSelector(mlp(6, [8], 4), classification_loss, Uniform(), 32)
    with pytest.raises(ProvenmlError, match="fewer than batch_size"):
        selector.select(toy_data(16).tensors)
    with pytest.raises(ProvenmlError, match="fewer than one super-batch"):
        next(selector.batches(toy_data(40)))


def test_shared_actor_forward_gives_the_same_update_as_a_separate_forward() -> None:
    data = toy_data(256)
    table = torch.zeros(256)
    actors = []
    for share in (True, False):
        torch.manual_seed(0)
        actor = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))
        policy = Learnability(actor, table, share_forward=share)
        assert policy.share_forward is share
        learner = nn.Linear(6, 4)
        selector = OnlineBatchSelector(learner, classification_loss, policy, 16, seed=3)
        for _ in itertools.islice(selector.batches(data, epochs=2), 5):
            pass
        actors.append(actor)
    for shared, separate in zip(actors[0].parameters(), actors[1].parameters(), strict=True):
        torch.testing.assert_close(shared, separate)


def test_shared_actor_forward_is_off_for_mode_dependent_actors() -> None:
    actor = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.5), nn.Linear(8, 4))
    assert not Learnability(actor, torch.zeros(4)).share_forward
    with pytest.raises(ProvenmlError, match="dropout"):
        Learnability(actor, torch.zeros(4), share_forward=True)
