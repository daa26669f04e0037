"""The PPO core (Schulman et al. 2017), CleanRL-style: advantages, the clipped loss, settings.

* :func:`gae`: generalised advantage estimation (Schulman et al. 2016, eq. 16);
* :func:`ppo_clip_loss`: the clipped surrogate objective (PPO, eq. 7);
* :class:`PPOConfig`: the hyper-parameters of one PPO learner.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from provenml.errors import ProvenmlError

__all__ = ["PPOConfig", "gae", "ppo_clip_loss"]


@dataclass
class PPOConfig:
    """PPO hyper-parameters (one config for every agent, so no baseline gets a weaker optimiser)."""

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
    if rewards.dim() != 2 or values.shape != rewards.shape:
        raise ProvenmlError(
            "gae needs rewards and values of one shape, (num_envs, horizon) (the value beyond "
            f"the last step is 0, not passed); got rewards {tuple(rewards.shape)} and values "
            f"{tuple(values.shape)}"
        )
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
