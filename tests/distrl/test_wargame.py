"""The wargame: PettingZoo API, batched == single copies, hand-checked rules, scripted bots."""

from __future__ import annotations

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from provenml.distrl.scripted import SCRIPTED, play
from provenml.distrl.wargame import NUM_MOVES, Wargame, WargameBatch, WargameConfig
from provenml.errors import ProvenmlError


def test_parallel_api() -> None:
    parallel_api_test(Wargame(), num_cycles=200)


def test_batched_equals_single_copies() -> None:
    seeds = [11, 12, 13, 14, 15]
    batch = WargameBatch(len(seeds), seeds=seeds)
    batch_obs = batch.reset()
    singles = [Wargame() for _ in seeds]
    single_obs = [env.reset(seed=s)[0] for env, s in zip(singles, seeds, strict=True)]
    rng = np.random.default_rng(0)
    live = np.ones(len(seeds), dtype=bool)
    compared = 0
    for _ in range(60):
        for i, env in enumerate(singles):
            if live[i]:
                for agent, obs in single_obs[i].items():
                    side, unit = env._index[agent]
                    np.testing.assert_array_equal(obs, batch_obs[i, side, unit])
                    compared += 1
        actions = rng.integers(0, batch.num_actions, size=(len(seeds), 2, batch.units))
        batch_obs, reward, terminated, truncated, _ = batch.step(actions)
        for i, env in enumerate(singles):
            if not live[i]:
                continue
            joint = {a: actions[(i, *env._index[a])] for a in env.agents}
            single_obs[i], rewards, terms, truncs, _ = env.step(joint)
            for agent, r in rewards.items():
                assert r == pytest.approx(reward[i, env._index[agent][0]])
            if terminated[i] or truncated[i]:
                assert all(terms.values()) == bool(terminated[i])
                assert all(truncs.values()) == bool(truncated[i])
                assert not env.agents
                live[i] = False
    assert compared > 300


def _place(env: WargameBatch, red: list[tuple[int, int]], blue: list[tuple[int, int]]) -> None:
    env.reset()
    env.pos[0, 0] = red
    env.pos[0, 1] = blue


def _actions(red: list[int], blue: list[int]) -> np.ndarray:
    return np.array([[red, blue]])


def test_fire_range_line_of_sight_cooldown_and_damage() -> None:
    env = WargameBatch(1, WargameConfig(units=3), seeds=0)
    # red sniper (unit 2: range 4, damage 2, cool-down 2) at (1,4); blue tank (unit 0) at (5,4):
    # the objective row; (4,4) is the objective, no obstacle between -> in range 4, visible
    _place(env, [(0, 0), (0, 1), (1, 4)], [(5, 4), (8, 8), (8, 7)])
    assert env.targetable()[0, 0, 2, 0]
    env.step(_actions([0, 0, NUM_MOVES + 0], [0, 0, 0]))
    assert env.hp[0, 1, 0] == 5 - 2
    assert env.timer[0, 0, 2] == 2
    # cooling down: the next two shots do nothing
    for left in (1, 0):
        env.step(_actions([0, 0, NUM_MOVES + 0], [0, 0, 0]))
        assert env.hp[0, 1, 0] == 3
        assert env.timer[0, 0, 2] == left
    env.step(_actions([0, 0, NUM_MOVES + 0], [0, 0, 0]))
    assert env.hp[0, 1, 0] == 1
    # out of range (distance 6 > 4)
    _place(env, [(0, 0), (0, 1), (1, 4)], [(7, 4), (8, 8), (8, 7)])
    assert not env.targetable()[0, 0, 2, 0]
    # line of sight: the obstacle at (4,3) lies between (2,3) and (6,3)
    _place(env, [(0, 0), (0, 1), (2, 3)], [(6, 3), (8, 8), (8, 7)])
    assert env.board.obstacle[3, 4]
    assert not env.targetable()[0, 0, 2, 0]
    env.step(_actions([0, 0, NUM_MOVES + 0], [0, 0, 0]))
    assert env.hp[0, 1, 0] == 5


def test_moves_obstacles_and_mirrored_blue_frame() -> None:
    env = WargameBatch(1, seeds=0)
    _place(env, [(3, 3), (0, 1), (0, 2)], [(6, 6), (8, 8), (8, 7)])
    env.step(_actions([4, 0, 0], [4, 0, 0]))  # both "right" in their own frames
    assert tuple(env.pos[0, 0, 0]) == (3, 3)  # (4,3) is an obstacle: red stays
    assert tuple(env.pos[0, 1, 0]) == (5, 6)  # blue's "right" is the board's left
    env.step(_actions([1, 0, 0], [1, 0, 0]))  # "up" in own frames
    assert tuple(env.pos[0, 0, 0]) == (3, 2)
    assert tuple(env.pos[0, 1, 0]) == (5, 7)  # blue's "up" is the board's down


def test_hold_win_elimination_and_truncation() -> None:
    env = WargameBatch(1, WargameConfig(hold_steps=3, max_steps=20), seeds=0)
    _place(env, [(4, 4), (0, 1), (0, 2)], [(8, 8), (8, 7), (8, 6)])
    for _ in range(2):
        _, reward, terminated, _, _ = env.step(_actions([0, 0, 0], [0, 0, 0]))
        assert not terminated[0]
    _, reward, terminated, truncated, outcome = env.step(_actions([0, 0, 0], [0, 0, 0]))
    assert terminated[0] and not truncated[0] and outcome[0] == 1
    assert reward[0, 0] == pytest.approx(1 + 0.02) and reward[0, 1] == pytest.approx(-1 - 0.02)
    # elimination: blue's last unit dies
    env.reset()
    env.hp[0, 1] = [1, 0, 0]
    env.pos[0, 0, 1] = (2, 4)
    env.pos[0, 1, 0] = (3, 4)
    _, _, terminated, _, outcome = env.step(_actions([0, NUM_MOVES + 0, 0], [0, 0, 0]))
    assert terminated[0] and outcome[0] == 1
    # truncation: nobody does anything until max_steps
    env.reset()
    for step in range(20):
        _, _, terminated, truncated, outcome = env.step(np.zeros((1, 2, 3), dtype=int))
        assert not terminated[0]
        assert truncated[0] == (step == 19)
    assert outcome[0] == 0


def test_bad_actions_are_refused() -> None:
    env = WargameBatch(2, seeds=0)
    env.reset()
    with pytest.raises(ProvenmlError, match="actions"):
        env.step(np.zeros((2, 2, 3), dtype=int) + 99)
    with pytest.raises(ProvenmlError, match="units"):
        WargameConfig(units=0)


@pytest.mark.parametrize("opponent", ["random", "rush", "focus_fire"])
def test_hand_written_policy_beats_the_scripted_opponents(opponent: str) -> None:
    env = WargameBatch(150)
    strong, other = SCRIPTED.get("strong"), SCRIPTED.get(opponent)
    as_red = play(env, strong, other, 300, seed=1)
    as_blue = -play(env, other, strong, 300, seed=2)
    outcomes = np.concatenate([as_red, as_blue])
    wins, losses = (outcomes == 1).mean(), (outcomes == -1).mean()
    assert wins > losses + 0.15, (opponent, wins, losses)
    if opponent == "random":
        assert wins > 0.95
