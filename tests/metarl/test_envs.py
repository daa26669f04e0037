"""The session environments: gymnasium API, batched stepping, switch statistics."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from scipy import stats

from provenml.core import ProvenmlError
from provenml.metarl.envs import (
    SessionGridWorld,
    SessionGridWorldVec,
    SessionReacher,
    SessionReacherVec,
)


@pytest.mark.parametrize("env_cls", [SessionGridWorld, SessionReacher])
def test_check_env(env_cls: type) -> None:
    check_env(env_cls(), skip_render_check=True)


def _rollout_flags(p: float, n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    env = SessionGridWorldVec(n, session_end_prob=p)
    env.reset(seed=seed)
    latents, ends = [], []
    for _ in range(env.horizon):
        _, _, _, _, info = env.step(np.zeros(n, dtype=np.int64))
        latents.append(info["latent"])
        ends.append(info["session_end"])
    return np.stack(latents, 1), np.stack(ends, 1)


def test_switch_statistics_match_p_and_matrix() -> None:
    latents, ends = _rollout_flags(0.07)
    # session ends are Bernoulli(p) per step
    k, total = int(ends.sum()), ends.size
    assert stats.binomtest(k, total, 0.07).pvalue > 1e-3
    before, after = latents[:, :-1], latents[:, 1:]
    boundary = ends[:, :-1]
    # inside a session the latent never changes
    assert (before[~boundary] == after[~boundary]).all()
    # at a boundary the paying goal switches with probability 0.8 from either goal
    for goal in (0, 1):
        rows = boundary & (before == goal)
        switched = int((after[rows] != goal).sum())
        assert stats.binomtest(switched, int(rows.sum()), 0.8).pvalue > 1e-3
    # a wrong matrix would be detected: 0.5 is rejected by the same test
    rows = boundary & (before == 0)
    assert stats.binomtest(int((after[rows] != 0).sum()), int(rows.sum()), 0.5).pvalue < 1e-6


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_extreme_session_rates(p: float) -> None:
    latents, ends = _rollout_flags(p, n=500)
    assert ends.all() if p == 1.0 else not ends.any()
    if p == 0.0:
        assert (latents == latents[:, :1]).all()


def test_grid_rewards_and_goals_not_terminal() -> None:
    env = SessionGridWorldVec(2, session_end_prob=0.0)
    goals = np.array([[[1, 0], [3, 3]], [[1, 0], [3, 3]]])
    latents = np.array([[0] * 60, [1] * 60])
    env.reset(
        seed=0,
        options={
            "goals": goals,
            "start": np.array([[0, 0], [0, 0]]),
            "latents": latents,
            "session_end": np.zeros((2, 60), bool),
        },
    )
    obs, reward, terminated, truncated, _ = env.step(np.array([2, 2]))  # right onto goal 0
    np.testing.assert_allclose(reward, [1.0, 0.0])
    assert not terminated.any() and not truncated.any()
    np.testing.assert_allclose(obs[0, :4], [0.25, 0.0, 0.0, 0.0])
    _, reward, *_ = env.step(np.array([1, 1]))  # up: off the goal
    np.testing.assert_allclose(reward, [-0.1, -0.1])


def test_observation_does_not_leak_latent() -> None:
    env = SessionGridWorldVec(64)
    env.reset(seed=1)
    fixed = {"goals": env.goals, "start": env.pos, "session_end": env.session_end}
    obs_a, _ = env.reset(options={**fixed, "latents": np.zeros((64, 60), int)})
    obs_b, _ = env.reset(options={**fixed, "latents": np.ones((64, 60), int)})
    np.testing.assert_array_equal(obs_a, obs_b)


def test_batched_env_seeded_and_no_autoreset() -> None:
    a, b = SessionReacherVec(8), SessionReacherVec(8)
    oa, _ = a.reset(seed=3)
    ob, _ = b.reset(seed=3)
    np.testing.assert_array_equal(oa, ob)
    np.testing.assert_array_equal(a.angles, b.angles)
    for _ in range(a.horizon):
        a.step(np.ones((8, 2)))
    with pytest.raises(ProvenmlError):
        a.step(np.ones((8, 2)))


def test_reacher_target_moves_only_at_session_ends() -> None:
    env = SessionReacherVec(2000, session_end_prob=0.07)
    env.reset(seed=0)
    moved = env.angles[:, 1:] != env.angles[:, :-1]
    np.testing.assert_array_equal(moved, env.session_end[:, :-1])


@pytest.mark.parametrize(
    ("layout", "goals"),
    [("edge", [[0, 0], [4, 0]]), ("diagonal", [[0, 0], [4, 4]])],
)
def test_fixed_goal_layouts_and_starts_off_goals(layout: str, goals: list[list[int]]) -> None:
    env = SessionGridWorldVec(500, goal_layout=layout)
    env.reset(seed=0)
    assert (env.goals == np.array(goals)).all()
    on_goal = (env.pos[:, None, :] == env.goals).all(-1).any(-1)
    assert not on_goal.any()
    # every free cell is a possible start
    assert len(np.unique(env.pos[:, 0] * 5 + env.pos[:, 1])) == 23


def test_random_goal_layout_draws_distinct_goals() -> None:
    env = SessionGridWorldVec(500, goal_layout="random")
    env.reset(seed=0)
    assert not (env.goals[:, 0] == env.goals[:, 1]).all(-1).any()
    assert len(np.unique(env.goals.reshape(500, 4), axis=0)) > 100
    with pytest.raises(ProvenmlError):
        SessionGridWorldVec(4, goal_layout="corners")
