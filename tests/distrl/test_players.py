"""Players manager: snapshot isolation, bounded pools, opponent sampling; Elo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from provenml.distrl.players import EloTable, PlayersManager, elo_update, fit_elo
from provenml.errors import ProvenmlError


def test_snapshot_is_isolated_from_later_updates() -> None:
    net = torch.nn.Linear(3, 2)
    manager = PlayersManager(pool_size=4)
    manager.add_player("red")
    snap = manager.snapshot("red", net.state_dict(), step=0)
    before = snap.weights["weight"].clone()
    optimizer = torch.optim.SGD(net.parameters(), lr=1.0)
    net(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    assert not torch.equal(net.weight.detach(), before)  # the learner moved on
    assert torch.equal(manager.latest("red").weights["weight"], before)  # the snapshot did not
    weights = {"w": np.zeros(3)}
    snap = manager.snapshot("red", weights, step=1)
    weights["w"] += 1.0
    assert (manager.latest("red").weights["w"] == 0).all()


def test_pool_is_bounded_oldest_leave_first() -> None:
    manager = PlayersManager(pool_size=3)
    manager.add_player("red")
    for step in range(5):
        manager.snapshot("red", {"w": np.full(1, step)}, step)
    assert [s.snapshot_id for s in manager.pool("red")] == ["red@2", "red@3", "red@4"]
    with pytest.raises(ProvenmlError, match="evicted"):
        manager.record("red@0", 1.0)


def test_opponent_sampling_distributions() -> None:
    manager = PlayersManager(pool_size=3, pfsp_power=2.0)
    manager.add_player("red")
    for step in range(3):
        manager.snapshot("red", {"w": np.zeros(1)}, step)
    np.testing.assert_allclose(manager.opponent_probabilities("red", "latest"), [0, 0, 1])
    np.testing.assert_allclose(manager.opponent_probabilities("red", "uniform"), [1 / 3] * 3)
    # learner's results: 1 win in 4 against red@0, 1/2 against red@1 (a draw), all won vs red@2
    for score in (1, 0, 0, 0):
        manager.record("red@0", score)
    manager.record("red@1", 0.5)
    manager.record("red@2", 1.0)
    expected = np.array([0.75**2, 0.5**2, 0.0]) / (0.75**2 + 0.5**2)
    np.testing.assert_allclose(manager.opponent_probabilities("red", "pfsp"), expected)
    rng = np.random.default_rng(0)
    draws = [manager.sample_opponent("red", "pfsp", rng).snapshot_id for _ in range(20_000)]
    freq = [draws.count(f"red@{i}") / len(draws) for i in range(3)]
    np.testing.assert_allclose(freq, expected, atol=0.01)


def test_unknown_player_and_strategy_are_clear_errors() -> None:
    manager = PlayersManager()
    manager.add_player("red")
    with pytest.raises(ProvenmlError, match=r"unknown player id 'blue'.*red"):
        manager.snapshot("blue", {}, 0)
    with pytest.raises(ProvenmlError, match="no snapshot"):
        manager.sample_opponent("red", "latest", np.random.default_rng(0))
    manager.snapshot("red", {"w": np.zeros(1)}, 0)
    with pytest.raises(ProvenmlError, match="opponent sampling"):
        manager.opponent_probabilities("red", "best")


def test_elo_update_hand_computed() -> None:
    # E_A = 1 / (1 + 10^(-200/400)) = 0.759747; A (1200) loses to B (1000), K = 32
    a, b = elo_update(1200.0, 1000.0, 0.0, k=32.0)
    assert a == pytest.approx(1200 - 32 * 0.7597469, abs=1e-4)
    assert b == pytest.approx(1000 + 32 * 0.7597469, abs=1e-4)
    table = EloTable()
    table.record("x", "y", 0.5)  # equal ratings, a draw: nothing moves
    assert table.ratings == {"x": 1000.0, "y": 1000.0}


def test_fit_elo_recovers_known_rating_gaps() -> None:
    true = np.array([1000.0, 1200.0, 1400.0])
    expected = 1 / (1 + 10 ** ((true[None, :] - true[:, None]) / 400))
    games = np.full((3, 3), 20_000.0) * (1 - np.eye(3))
    ratings = fit_elo(["a", "b", "c"], expected * games, games)
    assert ratings["b"] - ratings["a"] == pytest.approx(200, abs=2)
    assert ratings["c"] - ratings["b"] == pytest.approx(200, abs=2)
