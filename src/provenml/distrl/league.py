"""The evaluator: learnt wargame policies against scripted bots and each other.

* :func:`policy_player` turns a team policy's weights into a player with the scripted
  policies' signature, so :func:`~provenml.distrl.scripted.play` runs any pairing;
* :func:`win_rates` plays a pairing from both sides (half the games as red, half as blue);
* :func:`cross_play` fills the score matrix of a set of players and fits Elo ratings to it;
* :func:`exploitability` trains a fresh best response against a fixed policy for a fixed
  budget and reports how often it wins (a lower rate: a less exploitable policy).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import torch

from provenml.distrl.envs import TeamSpec
from provenml.distrl.learner import TeamPolicy, load_numpy_weights
from provenml.distrl.players import fit_elo
from provenml.distrl.scripted import ScriptedPolicy, play
from provenml.distrl.training import TrainSettings, train
from provenml.distrl.wargame import WargameBatch, WargameConfig

__all__ = ["cross_play", "exploitability", "policy_player", "wargame_spec", "win_rates"]


def wargame_spec(config: WargameConfig | None = None) -> TeamSpec:
    core = WargameBatch(1, config)
    return TeamSpec(tuple(f"u{i}" for i in range(core.units)), core.obs_dim, core.num_actions)


def policy_player(
    weights: Mapping[str, np.ndarray], spec: TeamSpec, hidden: int, seed: int = 0
) -> ScriptedPolicy:
    """A learnt team policy as a player ``(env, side, rng) -> actions`` (sampling actions)."""
    policy = TeamPolicy(spec, hidden, central_critic=any(k.startswith("central.") for k in weights))
    load_numpy_weights(policy, weights)
    generator = torch.Generator().manual_seed(seed)

    def act(env: WargameBatch, side: int, rng: np.random.Generator) -> np.ndarray:
        with torch.no_grad():
            logits, _ = policy.logits_and_value(torch.from_numpy(env.observe()[:, side]))
            probs = torch.softmax(logits, -1).reshape(-1, logits.shape[-1])
            return (
                torch.multinomial(probs, 1, generator=generator).reshape(logits.shape[:-1]).numpy()
            )

    return act


def win_rates(
    a: ScriptedPolicy,
    b: ScriptedPolicy,
    episodes: int,
    seed: int = 0,
    config: WargameConfig | None = None,
    batch: int = 100,
) -> dict[str, float]:
    """Player ``a`` against ``b``: ``episodes // 2`` games as red and as blue each; the rates
    of a's wins, draws and losses."""
    half = max(1, episodes // 2)
    env = WargameBatch(min(batch, half), config)
    as_red = play(env, a, b, half, seed=seed)
    as_blue = -play(env, b, a, half, seed=seed + 1)
    outcomes = np.concatenate([as_red, as_blue])
    return {
        "win": float((outcomes == 1).mean()),
        "draw": float((outcomes == 0).mean()),
        "loss": float((outcomes == -1).mean()),
    }


def cross_play(
    players: Mapping[str, ScriptedPolicy],
    episodes: int,
    seed: int = 0,
    config: WargameConfig | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, float]]:
    """Every pair plays ``episodes`` games (both sides); returns the names, the score matrix
    (points of row against column, draws 1/2), the games matrix and the fitted Elo ratings."""
    names = list(players)
    n = len(names)
    scores = np.zeros((n, n))
    games = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            r = win_rates(players[names[i]], players[names[j]], episodes, seed + 31 * i + j, config)
            played = 2 * max(1, episodes // 2)
            scores[i, j] = played * (r["win"] + 0.5 * r["draw"])
            scores[j, i] = played * (r["loss"] + 0.5 * r["draw"])
            games[i, j] = games[j, i] = played
    # fit_elo takes one direction per cell: give each pair's games once (upper triangle)
    ratings = fit_elo(names, np.triu(scores, 1), np.triu(games, 1))
    return names, scores, games, ratings


def exploitability(
    target: Mapping[str, np.ndarray],
    base: TrainSettings,
    iterations: int,
    episodes: int,
    seed: int = 0,
) -> float:
    """Train a fresh best response against the fixed ``target`` policy for ``iterations``
    (same settings otherwise) and return its win rate against it (both sides)."""
    settings = replace(
        base,
        mode="vs_fixed",
        opponent_weights=dict(target),
        iterations=iterations,
        seed=seed,
        checkpoint_path=None,
        kill_worker_at=None,
    )
    result = train(settings)
    config = WargameConfig(**base.env_kwargs)
    spec = wargame_spec(config)
    response = policy_player(result.weights["red"], spec, base.ppo.hidden, seed)
    fixed = policy_player(target, spec, base.ppo.hidden, seed + 1)
    return win_rates(response, fixed, episodes, seed, config)["win"]
