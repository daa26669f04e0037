"""The players manager: each player's bounded pool of policy snapshots, opponent sampling,
and the evaluator's Elo ratings (M2RL's "players manager" and "evaluator").

Snapshots are deep copies: a later update of the learner never changes a stored snapshot
(RLlib users lose self-play snapshots to aliasing, ray #35393), and the pool is bounded
(an unbounded policy map grows without limit, ray #21459). Opponents are sampled

* ``latest``: the newest snapshot (plain self-play);
* ``uniform``: any snapshot in the pool, equally likely (fictitious self-play);
* ``pfsp``: prioritised fictitious self-play (Vinyals et al. 2019, AlphaStar): snapshot ``j``
  with probability proportional to ``f(P[learner beats j])``, ``f_hard(x) = (1 - x)^p``,
  so the snapshots the learner still loses to are played most.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from provenml.errors import ProvenmlError

__all__ = [
    "OPPONENT_SAMPLING",
    "EloTable",
    "PlayersManager",
    "Snapshot",
    "elo_expected",
    "elo_update",
    "fit_elo",
]

OPPONENT_SAMPLING = ("latest", "uniform", "pfsp")


def _deep_copy_state(state: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v.detach().clone() if isinstance(v, torch.Tensor) else np.array(v, copy=True)
        for k, v in state.items()
    }


@dataclass
class Snapshot:
    """A frozen copy of a player's policy weights, taken after ``step`` learner updates."""

    snapshot_id: str
    player: str
    step: int
    weights: dict[str, Any]
    wins: float = 0.0  # results of the player's learner against this snapshot
    games: int = 0

    def win_rate(self, prior: float = 0.5) -> float:
        """The learner's win rate against this snapshot (draws count 1/2; ``prior`` if unplayed)."""
        return self.wins / self.games if self.games else prior


@dataclass
class _Player:
    pool: deque[Snapshot]
    counter: itertools.count = field(default_factory=itertools.count)


class PlayersManager:
    """Holds each player's bounded snapshot pool and samples opponents from it."""

    def __init__(self, pool_size: int = 8, pfsp_power: float = 2.0) -> None:
        if pool_size < 1:
            raise ProvenmlError(f"pool_size must be >= 1, got {pool_size}")
        self.pool_size = pool_size
        self.pfsp_power = pfsp_power
        self._players: dict[str, _Player] = {}

    def add_player(self, player: str) -> None:
        if player in self._players:
            raise ProvenmlError(f"player {player!r} is already registered")
        self._players[player] = _Player(pool=deque(maxlen=self.pool_size))

    @property
    def players(self) -> list[str]:
        return list(self._players)

    def _get(self, player: str) -> _Player:
        try:
            return self._players[player]
        except KeyError:
            known = ", ".join(self._players) or "none"
            raise ProvenmlError(f"unknown player id {player!r} (known players: {known})") from None

    def snapshot(self, player: str, weights: Mapping[str, Any], step: int) -> Snapshot:
        """Store a deep copy of ``weights``; the oldest snapshot leaves a full pool."""
        entry = self._get(player)
        snap = Snapshot(f"{player}@{next(entry.counter)}", player, step, _deep_copy_state(weights))
        entry.pool.append(snap)
        return snap

    def pool(self, player: str) -> list[Snapshot]:
        return list(self._get(player).pool)

    def latest(self, player: str) -> Snapshot:
        pool = self._get(player).pool
        if not pool:
            raise ProvenmlError(f"player {player!r} has no snapshot yet")
        return pool[-1]

    def find(self, snapshot_id: str) -> Snapshot:
        player = snapshot_id.rpartition("@")[0]
        for snap in self._get(player).pool:
            if snap.snapshot_id == snapshot_id:
                return snap
        raise ProvenmlError(f"snapshot {snapshot_id!r} is not in {player!r}'s pool (evicted?)")

    def record(self, snapshot_id: str, score: float) -> None:
        """The learner scored ``score`` (1 win, 1/2 draw, 0 loss) against a pool snapshot."""
        snap = self.find(snapshot_id)
        snap.wins += score
        snap.games += 1

    def opponent_probabilities(self, opponent: str, strategy: str) -> np.ndarray:
        """The sampling distribution over ``opponent``'s pool (oldest first)."""
        pool = self._get(opponent).pool
        if not pool:
            raise ProvenmlError(f"player {opponent!r} has no snapshot yet")
        if strategy == "latest":
            probs = np.zeros(len(pool))
            probs[-1] = 1.0
        elif strategy == "uniform":
            probs = np.full(len(pool), 1.0 / len(pool))
        elif strategy == "pfsp":
            weights = np.array([(1.0 - s.win_rate()) ** self.pfsp_power for s in pool])
            if weights.sum() <= 0:  # the learner beats every snapshot: fall back to uniform
                weights = np.ones(len(pool))
            probs = weights / weights.sum()
        else:
            raise ProvenmlError(
                f"unknown opponent sampling {strategy!r}; choose one of {OPPONENT_SAMPLING}"
            )
        return probs

    def sample_opponent(self, opponent: str, strategy: str, rng: np.random.Generator) -> Snapshot:
        probs = self.opponent_probabilities(opponent, strategy)
        return self._get(opponent).pool[int(rng.choice(len(probs), p=probs))]


# --------------------------------------------------------------------------------------------
# Elo
# --------------------------------------------------------------------------------------------


def elo_expected(rating_a: float, rating_b: float) -> float:
    """Elo's expected score of A against B: ``1 / (1 + 10^((R_B - R_A) / 400))``."""
    return 1.0 / (1.0 + 10.0 ** ((rating_b - rating_a) / 400.0))


def elo_update(
    rating_a: float, rating_b: float, score_a: float, k: float = 32.0
) -> tuple[float, float]:
    """One game: ``R_A' = R_A + K (S_A - E_A)``, ``R_B' = R_B - K (S_A - E_A)``."""
    delta = k * (score_a - elo_expected(rating_a, rating_b))
    return rating_a + delta, rating_b - delta


class EloTable:
    """Elo ratings updated game by game (every new name starts at ``initial``)."""

    def __init__(self, initial: float = 1000.0, k: float = 32.0) -> None:
        self.initial = initial
        self.k = k
        self.ratings: dict[str, float] = {}

    def record(self, a: str, b: str, score_a: float) -> None:
        ra = self.ratings.setdefault(a, self.initial)
        rb = self.ratings.setdefault(b, self.initial)
        self.ratings[a], self.ratings[b] = elo_update(ra, rb, score_a, self.k)


def fit_elo(
    names: Sequence[str], scores: np.ndarray, games: np.ndarray, iterations: int = 2000
) -> dict[str, float]:
    """Order-independent Elo ratings from a cross-play matrix: the Bradley-Terry maximum-
    likelihood fit (minorise-maximise updates, Hunter 2004) of ``scores[i, j]`` (points of i
    against j, draws 1/2) over ``games[i, j]`` games, on the Elo scale with mean 1000. A small
    prior (one draw against every other player) keeps unbeaten players finite."""
    n = len(names)
    scores = np.asarray(scores, dtype=float) + 0.5 * (1 - np.eye(n))
    games = np.asarray(games, dtype=float) + (1 - np.eye(n))
    total = games + games.T
    wins = scores.sum(1) + (games.T - scores.T).sum(1)
    strength = np.ones(n)
    for _ in range(iterations):
        denom = (total / (strength[:, None] + strength[None, :])).sum(1)
        strength = wins / denom
        strength /= np.exp(np.log(strength).mean())
    ratings = 400.0 * np.log10(strength)
    ratings += 1000.0 - ratings.mean()
    return dict(zip(names, ratings.tolist(), strict=True))
