"""``progress=True`` on the components' long loops: a rich bar over the loop's steps, and
nothing else changes (same weights, same history)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import rich.progress
import torch

from provenml.core import progress

T = TypeVar("T")


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every bar rich is asked for, as (description, number of items)."""
    bars: list[tuple[str, int]] = []
    original = rich.progress.track

    def track(items: Any, description: str, total: Any = None, **kwargs: Any) -> Any:
        items = list(items)
        bars.append((description, len(items)))
        return original(items, description=description, total=total, **kwargs)

    monkeypatch.setattr(rich.progress, "track", track)
    return bars


def without_and_with_a_bar(run: Callable[[bool], T]) -> tuple[T, T]:
    """``run(progress)`` once without the bar and once with it, each from torch seed 0."""
    outputs = []
    for show in (False, True):
        torch.manual_seed(0)
        outputs.append(run(show))
    return outputs[0], outputs[1]


def test_disabled_progress_returns_the_items_themselves() -> None:
    items = range(3)
    assert progress(items, "x", enabled=False) is items
    assert list(progress(items, "x")) == [0, 1, 2]


def test_kge_training_with_a_bar_trains_the_same_weights(shown: list[tuple[str, int]]) -> None:
    from provenml.kge import TrainingConfig, get_model, train

    triples = torch.tensor([[0, 0, 1], [1, 1, 2], [2, 0, 3], [3, 1, 0]])

    def run(show: bool) -> list[torch.Tensor]:
        model = get_model("transe", num_entities=4, num_relations=2, dim=8)
        train(model, triples, TrainingConfig(epochs=3, batch_size=2), progress=show)
        return [p.detach().clone() for p in model.parameters()]

    weights = without_and_with_a_bar(run)
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))
    assert shown == [("training TransE", 3)]


def test_graph_pretraining_with_a_bar_gives_the_same_report(
    shown: list[tuple[str, int]],
) -> None:
    from torch_geometric.data import Data

    from provenml.graphpretrain import new_encoder, pretrain

    ring = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    graphs = [Data(edge_index=torch.cat([ring, ring.flip(0)], 1), num_nodes=4)] * 6

    def run(show: bool) -> list[float]:
        encoder = new_encoder(hidden=8, num_layers=2)
        return pretrain(
            encoder, graphs, objective="graphcl", steps=2, batch_size=4, progress=show
        ).losses

    losses = without_and_with_a_bar(run)
    assert losses[0] == losses[1]
    assert shown == [("pre-training (graphcl)", 2)]


def test_reference_training_with_a_bar_draws_the_same_batches(
    shown: list[tuple[str, int]],
) -> None:
    """Each epoch is a fresh permutation of the holdout cut to full batches (10 examples, batch
    4: 2 batches, 2 examples left out), drawn from the seeded generator only when the epoch
    starts, with or without the bar."""
    from torch.utils.data import TensorDataset

    from provenml.selection import train_reference

    holdout = TensorDataset(torch.arange(10.0)[:, None], torch.zeros(10, dtype=torch.long))

    def run(show: bool) -> list[list[int]]:
        batches: list[list[int]] = []

        def loss_fn(model: torch.nn.Module, batch: Any) -> Any:
            batches.append(batch[0][:, 0].long().tolist())
            return model(batch[0]).sum(1) * 0.0 + batch[0][:, 0]

        model = torch.nn.Linear(1, 1)
        train_reference(model, holdout, loss_fn, steps=5, batch_size=4, seed=3, progress=show)
        return batches

    seen = without_and_with_a_bar(run)
    assert seen[0] == seen[1]
    generator = torch.Generator().manual_seed(3)
    expected = []
    for _ in range(3):
        order = torch.randperm(10, generator=generator)[:8].tolist()
        expected += [order[:4], order[4:]]
    assert seen[0] == expected[:5]
    assert shown == [("training reference Linear", 5)]


def test_graph_finetuning_with_a_bar_gives_the_same_result(shown: list[tuple[str, int]]) -> None:
    from torch_geometric.data import Data

    from provenml.graphpretrain import DownstreamTask, finetune, new_encoder

    def ring(n: int) -> Data:
        edges = torch.stack([torch.arange(n), (torch.arange(n) + 1) % n])
        return Data(
            edge_index=torch.cat([edges, edges.flip(0)], 1), num_nodes=n, y=torch.tensor([n / 10])
        )

    graphs = [ring(3 + i % 5) for i in range(12)]
    task = DownstreamTask.from_graphs(graphs[:8], graphs[8:10], graphs[10:], name="rings")

    def run(show: bool) -> tuple[float, list[float]]:
        encoder = new_encoder(hidden=8, num_layers=2)
        result = finetune(encoder, task, epochs=2, batch_size=4, seed=1, progress=show)
        return result.test_error, result.val_curve

    results = without_and_with_a_bar(run)
    assert results[0] == results[1]
    assert shown == [("fine-tuning on rings", 2)]


def test_densecl_pretraining_with_a_bar_gives_the_same_losses(
    shown: list[tuple[str, int]],
) -> None:
    from provenml.ssl import DenseCL, SmallResNet, TwoViewAugment, multi_object_scenes, pretrain

    images = multi_object_scenes(16, seed=0).images

    def run(show: bool) -> list[float]:
        model = DenseCL(SmallResNet((8, 8)), image_size=16, queue_size=16, dim=8, warmup_steps=1)
        augment = TwoViewAugment(16)
        return pretrain(model, images, steps=2, batch_size=8, augment=augment, progress=show).loss

    losses = without_and_with_a_bar(run)
    assert losses[0] == losses[1]
    assert shown == [("pre-training DenseCL", 2)]


def test_fewshot_training_with_a_bar_gives_the_same_numbers(
    shown: list[tuple[str, int]],
) -> None:
    from provenml.fewshot import (
        FewShotClassifier,
        MLPEncoder,
        TrainSettings,
        make_head,
        meta_train,
        pretrain_encoder,
    )

    settings = TrainSettings(
        pretrain_steps=3, pretrain_batch=8, meta_steps=2, meta_batch=2, train_query=2
    )
    x = torch.randn(10 * 8, 6, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(10).repeat_interleave(8)

    def run(show: bool) -> tuple[dict[str, float], dict[str, float]]:
        encoder = MLPEncoder(6, hidden=(8,), out_dim=4)
        model = FewShotClassifier(encoder, make_head("protonet", 4))
        generator = torch.Generator().manual_seed(0)
        pre = pretrain_encoder(encoder, x, labels, settings, generator, progress=show)
        return pre, meta_train(model, x, labels, settings, seed=0, progress=show)

    numbers = without_and_with_a_bar(run)
    assert numbers[0] == numbers[1]
    assert shown == [("pre-training the encoder", 3), ("meta-training", 2)]


def test_meta_rl_training_with_a_bar_gives_the_same_returns(
    shown: list[tuple[str, int]],
) -> None:
    from provenml.metarl import TrainConfig, train_agent

    cfg = TrainConfig(num_envs=8, total_steps=8 * 60 * 2)
    returns = without_and_with_a_bar(
        lambda show: train_agent("varibad", cfg, seed=3, progress=show).curve_returns
    )
    assert returns[0] == returns[1]
    assert len(shown) == 1 and shown[0][0] == "training varibad" and shown[0][1] >= 1
