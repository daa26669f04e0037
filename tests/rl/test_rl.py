"""The shared RL parts: GAE and PPO against hand-computed cases, ActorCritic, the env base."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from torch.distributions import Categorical, Independent

from provenml.errors import ProvenmlError
from provenml.rl import (
    ActorCritic,
    FixedHorizonVectorEnv,
    SingleEnvView,
    gae,
    ppo_clip_loss,
)


def test_gae_limits_are_td_error_and_monte_carlo() -> None:
    rewards = torch.tensor([[1.0, 0.0, 2.0]])
    values = torch.tensor([[0.5, -1.0, 1.0]])
    gamma = 0.9
    # lambda = 0: one-step TD errors r_t + gamma V(s_t+1) - V(s_t), V = 0 after the horizon
    adv, returns = gae(rewards, values, gamma, 0.0)
    assert torch.allclose(adv, torch.tensor([[1.0 - 0.9 - 0.5, 0.9 + 1.0, 2.0 - 1.0]]))
    # lambda = 1: discounted return minus V
    adv, returns = gae(rewards, values, gamma, 1.0)
    mc = torch.tensor([[1.0 + 0.81 * 2.0, 0.9 * 2.0, 2.0]])
    assert torch.allclose(returns, mc) and torch.allclose(adv, mc - values)


def test_ppo_clip_loss_clips_only_beyond_the_trust_region() -> None:
    old = torch.zeros(2)
    new = torch.log(torch.tensor([1.5, 0.5]))  # ratios 1.5 and 0.5
    # positive advantage: 1.5 clipped to 1.2; negative: 0.5 clipped to 0.8 (min picks -0.8)
    loss = ppo_clip_loss(new, old, torch.tensor([1.0, -1.0]), clip=0.2)
    assert torch.isclose(loss, -torch.tensor((1.2 - 0.8) / 2))


def test_actor_critic_heads() -> None:
    torch.manual_seed(0)
    discrete = ActorCritic(6, 4, discrete=True, hidden=16)
    x = torch.randn(3, 6)
    assert isinstance(discrete.distribution(x), Categorical)
    assert discrete.value(x).shape == (3,) and discrete.log_std is None
    head = discrete.actor[-1].weight  # orthogonal rows with gain 0.01
    assert torch.allclose(head @ head.T, 1e-4 * torch.eye(4), atol=1e-7)
    assert torch.equal(discrete.actor[-1].bias, torch.zeros(4))
    continuous = ActorCritic(6, 2, discrete=False)
    dist = continuous.distribution(x)
    assert isinstance(dist, Independent) and dist.sample().shape == (3, 2)
    assert torch.allclose(dist.stddev, torch.full((3, 2), np.exp(-0.5)))


class _CountingEnv(FixedHorizonVectorEnv):
    """Observation: the step index and a random number; reward 1 per step."""

    def __init__(self, num_envs: int = 3, horizon: int = 4) -> None:
        box = spaces.Box(0.0, 10.0, shape=(2,), dtype=np.float32)
        super().__init__(num_envs, horizon, box, spaces.Discrete(2))

    def _obs(self) -> np.ndarray:
        noise = self._rng.random(self.num_envs)
        return np.stack([np.full(self.num_envs, self._t), noise], 1).astype(np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        self._begin_reset(seed)
        self._t = 0
        return self._obs(), {"t": np.zeros(self.num_envs, dtype=np.int64)}

    def step(self, actions: np.ndarray) -> tuple:
        t = self._begin_step()
        truncated = self._end_step()
        info = {"t": np.full(self.num_envs, t)}
        terminated = np.zeros(self.num_envs, dtype=bool)
        return self._obs(), np.ones(self.num_envs, np.float32), terminated, truncated, info


def test_fixed_horizon_env_truncates_together_and_never_autoresets() -> None:
    env = _CountingEnv()
    assert env.observation_space.shape == (3, 2) and not env.was_reset
    with pytest.raises(ProvenmlError, match="episode is over"):
        env.step(np.zeros(3))  # before the first reset
    first, _ = env.reset(seed=7)
    flags = [env.step(np.zeros(3))[3] for _ in range(4)]
    assert [f.all() for f in flags] == [False, False, False, True]
    with pytest.raises(ProvenmlError, match="episode is over"):
        env.step(np.zeros(3))
    again, _ = env.reset(seed=7)
    assert np.array_equal(first, again)  # the seed replaces the generator
    with pytest.raises(ProvenmlError):
        _CountingEnv(num_envs=0)


def test_single_env_view() -> None:
    view = SingleEnvView(_CountingEnv(num_envs=1))
    check_env(view, skip_render_check=True)
    a, _ = view.reset(seed=3)
    obs, reward, terminated, truncated, info = view.step(0)
    assert obs.shape == (2,) and reward == 1.0 and info["t"] == 0
    assert isinstance(terminated, bool) and isinstance(truncated, bool)
    b, _ = view.reset(seed=3)
    assert np.array_equal(a, b)
    with pytest.raises(ProvenmlError, match="num_envs=1"):
        SingleEnvView(_CountingEnv(num_envs=2))


def test_gae_refuses_values_with_a_bootstrap_column() -> None:
    """A common slip: values with the horizon + 1 bootstrap column; gae has none (V = 0
    after the horizon), so the shapes must match, said before any arithmetic."""
    from provenml.errors import ProvenmlError

    with pytest.raises(ProvenmlError, match=r"rewards \(4, 16\) and values \(4, 17\)"):
        gae(torch.zeros(4, 16), torch.zeros(4, 17), 0.99, 0.95)
    with pytest.raises(ProvenmlError, match="one shape"):
        gae(torch.zeros(16), torch.zeros(16), 0.99, 0.95)
