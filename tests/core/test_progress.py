"""``progress=True`` on the components' long loops: a rich bar over the loop's steps, and
nothing else changes (same weights, same history)."""

from __future__ import annotations

from typing import Any

import pytest
import rich.progress
import torch

from provenml.core import progress


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


def test_disabled_progress_returns_the_items_themselves() -> None:
    items = range(3)
    assert progress(items, "x", enabled=False) is items
    assert list(progress(items, "x")) == [0, 1, 2]


def test_kge_training_with_a_bar_trains_the_same_weights(shown: list[tuple[str, int]]) -> None:
    from provenml.kge import TrainingConfig, get_model, train

    triples = torch.tensor([[0, 0, 1], [1, 1, 2], [2, 0, 3], [3, 1, 0]])
    weights = []
    for show in (False, True):
        torch.manual_seed(0)
        model = get_model("transe", num_entities=4, num_relations=2, dim=8)
        train(model, triples, TrainingConfig(epochs=3, batch_size=2), progress=show)
        weights.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))
    assert shown == [("training TransE", 3)]


def test_graph_pretraining_with_a_bar_gives_the_same_report(
    shown: list[tuple[str, int]],
) -> None:
    from torch_geometric.data import Data

    from provenml.graphpretrain import new_encoder, pretrain

    ring = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    graphs = [Data(edge_index=torch.cat([ring, ring.flip(0)], 1), num_nodes=4)] * 6
    losses = []
    for show in (False, True):
        torch.manual_seed(0)
        report = pretrain(
            new_encoder(hidden=8, num_layers=2),
            graphs,
            objective="graphcl",
            steps=2,
            batch_size=4,
            progress=show,
        )
        losses.append(report.losses)
    assert losses[0] == losses[1]
    assert shown == [("pre-training (graphcl)", 2)]
