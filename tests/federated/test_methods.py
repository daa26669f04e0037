"""The method's pieces against hand-computed cases and independent references."""

from __future__ import annotations

import math

import pytest
import torch

from provenml.errors import ProvenmlError
from provenml.federated.methods import (
    alignment_loss,
    distill_weight,
    evaluate,
    fedavg,
    kl_teacher,
    logit_adjusted,
)
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
