"""Scripted wargame policies: fixed opponents to measure learning against, and a hand-written
strong policy that shows they are beatable (the issue's regime check).

Each policy maps a :class:`~provenml.distrl.wargame.WargameBatch` and a side to (N, k)
actions in that side's frame, for every copy at once:

* ``random``: uniform over all actions;
* ``rush``: every unit walks the shortest path to the objective; once on it, fires at the
  first enemy it can hit;
* ``focus_fire``: the side picks the live enemy with the fewest hit points; units that can
  hit it fire at it, units that can hit another enemy fire at that one, the rest close in;
* ``mixture``: copy ``i`` of the batch plays the ``i mod 3``-th of the three above;
* ``strong`` (hand-written): fire at the weakest enemy in reach whenever the cool-down
  allows, otherwise take and hold the objective; the tank leads the way.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from provenml.core.registry import Registry
from provenml.distrl.wargame import NUM_MOVES, WargameBatch

__all__ = ["SCRIPTED", "ScriptedPolicy", "play"]

ScriptedPolicy = Callable[[WargameBatch, int, np.random.Generator], np.ndarray]
SCRIPTED = Registry[ScriptedPolicy]("scripted policy")


def _weakest(hp: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the allowed enemy with the fewest hit points (first on ties), and whether any
    is allowed; ``allowed`` (..., k) bool, ``hp`` broadcastable to it."""
    masked = np.where(allowed, hp, np.iinfo(np.int64).max)
    return np.argmin(masked, -1), allowed.any(-1)


@SCRIPTED.register("random")
def random_policy(env: WargameBatch, side: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, env.num_actions, size=(env.num_envs, env.units))


@SCRIPTED.register("rush")
def rush_policy(env: WargameBatch, side: int, rng: np.random.Generator) -> np.ndarray:
    target = np.broadcast_to(env.board.objective, (env.num_envs, env.units, 2))
    moves = env.moves_toward(side, target)
    on_objective = (env.pos[:, side] == env.board.objective).all(-1)
    hittable = env.targetable()[:, side] & (env.timer[:, side] == 0)[..., None]
    first = np.argmax(hittable, -1)
    fire = on_objective & hittable.any(-1)
    return np.where(fire, NUM_MOVES + first, moves)


@SCRIPTED.register("focus_fire")
def focus_fire_policy(env: WargameBatch, side: int, rng: np.random.Generator) -> np.ndarray:
    enemy = 1 - side
    enemy_hp = env.hp[:, enemy]  # (N, k)
    focus, _ = _weakest(enemy_hp, enemy_hp > 0)  # (N,)
    hittable = env.targetable()[:, side] & (env.timer[:, side] == 0)[..., None]  # (N, k, k)
    can_hit_focus = np.take_along_axis(hittable, focus[:, None, None].repeat(env.units, 1), -1)[
        ..., 0
    ]
    other, any_other = _weakest(enemy_hp[:, None, :], hittable)
    focus_cell = np.take_along_axis(env.pos[:, enemy], focus[:, None, None], 1)  # (N, 1, 2)
    chase = env.moves_toward(side, np.broadcast_to(focus_cell, (env.num_envs, env.units, 2)))
    return np.where(
        can_hit_focus,
        NUM_MOVES + focus[:, None],
        np.where(any_other, NUM_MOVES + other, chase),
    )


@SCRIPTED.register("strong")
def strong_policy(env: WargameBatch, side: int, rng: np.random.Generator) -> np.ndarray:
    enemy_hp = env.hp[:, 1 - side]
    hittable = env.targetable()[:, side] & (env.timer[:, side] == 0)[..., None]
    weakest, any_hit = _weakest(enemy_hp[:, None, :], hittable)
    target = np.broadcast_to(env.board.objective, (env.num_envs, env.units, 2))
    moves = env.moves_toward(side, target)
    return np.where(any_hit, NUM_MOVES + weakest, moves)


@SCRIPTED.register("mixture")
def mixture_policy(env: WargameBatch, side: int, rng: np.random.Generator) -> np.ndarray:
    """Copy ``i`` plays ``random``, ``rush`` or ``focus_fire`` by ``i mod 3`` (a fixed mix to
    train against all three at once)."""
    pick = np.arange(env.num_envs) % 3
    actions = [policy(env, side, rng) for policy in (random_policy, rush_policy, focus_fire_policy)]
    return np.choose(pick[:, None], actions)


def play(
    env: WargameBatch,
    red: ScriptedPolicy,
    blue: ScriptedPolicy,
    episodes: int,
    seed: int = 0,
) -> np.ndarray:
    """Play ``episodes`` games (``env.num_envs`` at a time) of two scripted policies; returns
    the outcomes (+1 red won, -1 blue won, 0 draw) of the first ``episodes`` games finished."""
    rng = np.random.default_rng(seed)
    env.seed(seed)
    env.reset()
    outcomes: list[int] = []
    while len(outcomes) < episodes:
        actions = np.stack([red(env, 0, rng), blue(env, 1, rng)], 1)
        _, _, terminated, truncated, outcome = env.step(actions)
        done = np.flatnonzero(terminated | truncated)
        outcomes.extend(outcome[done].tolist())
        env.reset_envs(done)
    return np.array(outcomes[:episodes])
