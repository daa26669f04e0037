"""Training loops on a user's own tensors: the heads learn a separable toy, the same seed gives
the same numbers, and the batched meta-batch matches the per-episode loop."""

from __future__ import annotations

import pytest
import torch

from provenml.fewshot import (
    FewShotClassifier,
    MLPEncoder,
    TrainSettings,
    evaluate_episodes,
    make_head,
    mean_and_ci,
    meta_train,
    pretrain_encoder,
)


def _toy(classes: int = 20, per_class: int = 30, seed: int = 0):
    """Class centres in 8 dims, buried under 16 dims of large nuisance noise: an untrained
    encoder mixes the two and does poorly; a trained one learns to ignore the nuisance."""
    g = torch.Generator().manual_seed(seed)
    n = classes * per_class
    centres = 2 * torch.randn(classes, 8, generator=g)
    signal = centres.repeat_interleave(per_class, 0) + 0.5 * torch.randn(n, 8, generator=g)
    nuisance = 2 * torch.randn(n, 16, generator=g)
    return torch.cat([signal, nuisance], 1), torch.arange(classes).repeat_interleave(per_class)


SETTINGS = TrainSettings(
    pretrain_steps=200, pretrain_batch=32, meta_steps=40, meta_batch=4, train_query=2
)


def _run(head_name: str, seed: int = 0, train: bool = True) -> torch.Tensor:
    torch.manual_seed(seed)
    x, y = _toy()
    source, test = y < 14, y >= 14  # disjoint classes
    encoder = MLPEncoder(24, hidden=(32,), out_dim=16)
    model = FewShotClassifier(encoder, make_head(head_name, 16))
    if train:
        generator = torch.Generator().manual_seed(seed)
        pretrain_encoder(encoder, x[source], y[source], SETTINGS, generator)
        meta_train(model, x[source], y[source], SETTINGS, seed=seed)
    return evaluate_episodes(model, x[test], y[test], 5, 1, 5, episodes=40, seed=1)


@pytest.mark.parametrize("head", ["protonet", "adargcn"])
def test_heads_learn_a_separable_toy(head: str) -> None:
    accuracy, half_width = mean_and_ci(_run(head))
    untrained, _ = mean_and_ci(_run(head, train=False))
    assert accuracy > 0.7 and untrained < 0.45, (accuracy, half_width, untrained)


def test_same_seed_same_numbers() -> None:
    assert torch.equal(_run("adargcn", seed=3), _run("adargcn", seed=3))


def test_mean_and_ci_is_the_normal_interval() -> None:
    mean, half = mean_and_ci([0.0, 1.0, 0.0, 1.0])
    assert mean == 0.5
    assert half == pytest.approx(1.96 * (1 / 3) ** 0.5 / 2)
