"""The method's pieces against hand-computed cases and independent references."""

from __future__ import annotations

import math

import pytest
import torch

from provenml.errors import ProvenmlError
from provenml.federated.data import ShapeImages, make_federated_data
from provenml.federated.methods import (
    LocalSettings,
    add_prox_grad,
    alignment_loss,
    distill_weight,
    evaluate,
    fedavg,
    kl_teacher,
    local_train,
    logit_adjusted,
)
from provenml.federated.models import FLModel
from provenml.federated.teacher import Annotator, check_teacher_classes, soft_clip_loss


def test_alignment_loss_matches_a_hand_computed_case() -> None:
    # one example, 2 classes: logits (0, ln 3) -> p = (1/4, 3/4); label 0; q = (1/2, 1/2)
    logits = torch.tensor([[0.0, math.log(3.0)]])
    q = torch.tensor([[0.5, 0.5]])
    ce = -math.log(0.25)
    kl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    got = alignment_loss(logits, torch.tensor([0]), q, beta=2.0)
    assert got.item() == pytest.approx(ce + 2.0 * kl, rel=1e-6)
    assert kl_teacher(q, logits).item() == pytest.approx(kl, rel=1e-6)


def test_alignment_kl_is_zero_when_the_model_agrees_with_the_teacher() -> None:
    logits = torch.randn(5, 4)
    q = logits.softmax(-1)
    assert kl_teacher(q, logits).item() == pytest.approx(0.0, abs=1e-6)


def test_fedavg_is_the_example_weighted_mean() -> None:
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.0])}
    b = {"w": torch.tensor([3.0, 6.0]), "b": torch.tensor([4.0])}
    out = fedavg([a, b], [1, 3])  # weights 1/4 and 3/4
    assert torch.allclose(out["w"], torch.tensor([2.5, 5.0]))
    assert torch.allclose(out["b"], torch.tensor([3.0]))
    with pytest.raises(ProvenmlError):
        fedavg([], [])


def test_fedavg_equals_flowers_own_aggregation() -> None:
    from flwr.app import ArrayRecord, MetricRecord, RecordDict
    from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

    gen = torch.Generator().manual_seed(0)
    states = [{"w": torch.randn(3, 2, generator=gen), "b": torch.randn(2, generator=gen)}]
    states += [{k: torch.randn(v.shape, generator=gen) for k, v in states[0].items()}]
    weights = [7, 2]
    records = [
        RecordDict({"arrays": ArrayRecord(s), "metrics": MetricRecord({"num-examples": n})})
        for s, n in zip(states, weights, strict=True)
    ]
    theirs = aggregate_arrayrecords(records, "num-examples").to_torch_state_dict()
    ours = fedavg(states, weights)
    for key in ours:
        assert torch.allclose(ours[key], theirs[key], atol=1e-6)


def test_logit_adjustment_subtracts_the_log_prior() -> None:
    logits = torch.zeros(1, 2)
    prior = torch.tensor([0.8, 0.2])
    adjusted = logit_adjusted(logits, prior, tau=1.0)
    assert adjusted.argmax().item() == 1  # the rare class wins a tie after adjustment
    assert torch.allclose(adjusted, -prior.log()[None])


def test_distill_weight_decays_linearly_to_zero() -> None:
    assert distill_weight(0, 10, 0.9) == pytest.approx(0.9)
    assert distill_weight(5, 10, 0.9) == pytest.approx(0.45)
    assert distill_weight(10, 10, 0.9) == 0.0


def test_evaluate_balanced_accuracy_and_splits() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    preds = torch.tensor([0, 0, 1, 0, 0, 0])  # per class: 1.0, 0.5, 0.0
    logits = torch.nn.functional.one_hot(preds, 3).float()
    out = evaluate(logits, labels, {"many": [0], "medium": [1], "few": [2]}, 3)
    assert out["balanced"] == pytest.approx(0.5)
    assert (out["many"], out["medium"], out["few"]) == (1.0, 0.5, 0.0)


def test_soft_clip_loss_is_lower_for_matched_pairs() -> None:
    gen = torch.Generator().manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(8, 16, generator=gen), dim=-1)
    same = torch.eye(8)
    matched = soft_clip_loss(text, text, same, 0.1)
    shuffled = soft_clip_loss(text[torch.randperm(8, generator=gen)], text, same, 0.1)
    assert matched < shuffled


def test_annotator_error_rate_is_measured_against_labels() -> None:
    from provenml.federated.data import render_shapes

    images = render_shapes(torch.arange(10).repeat(100), torch.Generator().manual_seed(0))
    captions = Annotator(confusion=0.12).caption(images, torch.Generator().manual_seed(1))
    wrong = (captions.shape_words != images.labels).float().mean().item()
    assert captions.error_rate == pytest.approx(wrong)
    assert 0.09 < captions.error_rate < 0.15  # 1000 draws around the asked-for 12%
    assert Annotator(confusion=0.0).caption(images, torch.Generator()).error_rate == 0.0


def test_teacher_with_other_classes_is_refused() -> None:
    class Wrong:
        classes = ("cat", "dog")

    with pytest.raises(ProvenmlError, match="teacher classes"):
        check_teacher_classes(Wrong(), ("circle", "square"))  # type: ignore[arg-type]


def test_prox_gradient_has_the_bits_of_differentiating_the_proximal_term() -> None:
    torch.manual_seed(0)
    model = FLModel(10, (8, 8, 8))
    anchor = [p.detach().clone() + 0.01 * torch.randn_like(p) for p in model.parameters()]
    x, y = torch.rand(6, 3, 32, 32), torch.randint(10, (6,))
    mu = 0.01
    prox = sum(((p - g) ** 2).sum() for p, g in zip(model.parameters(), anchor, strict=True))
    (torch.nn.functional.cross_entropy(model(x), y) + mu / 2 * prox).backward()
    by_autograd = [p.grad.clone() for p in model.parameters()]  # type: ignore[union-attr]
    model.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    add_prox_grad(list(model.parameters()), anchor, mu)
    for p, ref in zip(model.parameters(), by_autograd, strict=True):
        assert torch.equal(p.grad, ref)


def _reference_local_train(
    model: FLModel, data: ShapeImages, settings: LocalSettings, gen: torch.Generator
) -> None:
    """local_train as first written: the proximal term in the loss, a per-tensor SGD."""
    global_params = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(
        model.parameters(),
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
        foreach=False,
    )
    model.train()
    for _ in range(settings.epochs):
        order = torch.randperm(len(data), generator=gen)
        for start in range(0, len(data), settings.batch_size):
            idx = order[start : start + settings.batch_size]
            loss = torch.nn.functional.cross_entropy(model(data.images[idx]), data.labels[idx])
            prox = sum(
                ((p - g) ** 2).sum() for p, g in zip(model.parameters(), global_params, strict=True)
            )
            loss = loss + settings.prox_mu / 2 * prox
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_fedprox_local_training_equals_the_loss_with_the_proximal_term(momentum: float) -> None:
    data = make_federated_data(n_max=20, imbalance=2, num_clients=1, web_size=8, seed=0)
    client = data.clients[0]
    settings = LocalSettings(epochs=2, batch_size=8, prox_mu=0.01, momentum=momentum)
    torch.manual_seed(0)
    ours, reference = FLModel(10, (8, 8, 8)), FLModel(10, (8, 8, 8))
    reference.load_state_dict(ours.state_dict())
    local_train(ours, client, settings, torch.Generator().manual_seed(1))
    _reference_local_train(reference, client, settings, torch.Generator().manual_seed(1))
    for key, value in ours.state_dict().items():
        assert torch.equal(value, reference.state_dict()[key]), key
