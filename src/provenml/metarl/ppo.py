"""The PPO core shared by every agent (Schulman et al. 2017), CleanRL-style.

* ``gae``: generalised advantage estimation (Schulman et al. 2016, eq. 16).
* ``ppo_clip_loss``: the clipped surrogate objective (PPO, eq. 7), value loss and entropy.
* ``ActorCritic``: an MLP policy/value head over ``[observation, belief features]`` with a
  categorical (discrete actions) or diagonal Gaussian (continuous actions) policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal


@dataclass
class PPOConfig:
    """PPO hyper-parameters (shared by all agents, so no baseline gets a weaker optimiser)."""

    lr: float = 7e-4
    gamma: float = 0.95
    gae_lambda: float = 0.95
    clip: float = 0.2
    epochs: int = 4
    minibatches: int = 4
    entropy_coef: float = 0.01
    entropy_final: float | None = None  # linear anneal of entropy_coef to this value
    value_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 64


def gae(
    rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns by GAE (Schulman et al. 2016, eq. 16) for fixed-horizon episodes.

    ``rewards`` and ``values`` are (num_envs, horizon); the episode ends after the last step
    (value 0 beyond it). ``A_t = sum_l (gamma lam)^l delta_{t+l}``,
    ``delta_t = r_t + gamma V(s_{t+1}) - V(s_t)``. Returns ``(advantages, advantages + values)``.
    """
    horizon = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(horizon)):
        next_value = values[:, t + 1] if t + 1 < horizon else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    return advantages, advantages + values


def ppo_clip_loss(
    new_logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    clip: float,
) -> torch.Tensor:
    """The clipped surrogate (PPO, eq. 7), as a loss to minimise:
    ``-mean(min(rho A, clip(rho, 1 - eps, 1 + eps) A))`` with ``rho = exp(new_logp - old_logp)``.
    """
    ratio = torch.exp(new_logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * advantages
    return -torch.min(unclipped, clipped).mean()


class ActorCritic(nn.Module):
    """Policy and value MLPs over ``[obs, features]``; discrete or Gaussian actions."""

    def __init__(self, in_dim: int, action_dim: int, discrete: bool, hidden: int = 64) -> None:
        super().__init__()
        self.discrete = discrete

        def mlp(out: int, gain: float) -> nn.Sequential:
            net = nn.Sequential(
                nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
            )
            head = nn.Linear(hidden, out)
            nn.init.orthogonal_(head.weight, gain)
            nn.init.zeros_(head.bias)
            return nn.Sequential(*net, head)

        self.actor = mlp(action_dim, 0.01)
        self.critic = mlp(1, 1.0)
        self.log_std = nn.Parameter(torch.full((action_dim,), -0.5)) if not discrete else None

    def distribution(self, x: torch.Tensor) -> Distribution:
        out = self.actor(x)
        if self.discrete:
            return Categorical(logits=out)
        assert self.log_std is not None
        return Independent(Normal(out, self.log_std.exp().expand_as(out)), 1)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).squeeze(-1)
