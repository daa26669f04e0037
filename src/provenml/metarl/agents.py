"""The agents, all trained by the same PPO core (``provenml.rl``).

Every agent is a PPO actor-critic over ``[observation, features]``; they differ only in the
features, i.e. in what the agent knows about the hidden latent:

* ``oracle``: the true current latent (upper bound; it cheats, by design);
* ``memoryless``: nothing (lower bound);
* ``bayes_filter`` (grid world only, a diagnostic): the exact posterior of the paying goal
  from the HMM forward filter, i.e. a perfect belief; it tells "PPO cannot act on a belief"
  apart from "the learned belief is not good enough";
* ``rl2`` (Duan et al. 2016): a GRU over ``(a, r, s')`` trained end to end by the PPO loss;
* ``varibad`` (Zintgraf et al. 2020): the mean and log-variance of the VariBAD posterior,
  with the encoder trained by the ELBO only (the RL loss does not reach it, as in VariBAD);
* ``dynamite`` (Liang et al. 2024): the same with the session-aware encoder and losses;
* ``dynamite_no_consistency`` / ``dynamite_no_masking`` / ``dynamite_no_prior``: ablations,
  each without one of the three changes.

All recurrent models run over all environments at once (one batched GRU step per time step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from provenml.core.registry import Registry
from provenml.errors import ProvenmlError
from provenml.metarl.belief import (
    BeliefEncoder,
    BeliefLossConfig,
    CellRewardDecoder,
    RewardDecoder,
    belief_losses,
    gru_states,
    gru_stepper,
)
from provenml.metarl.envs import GRID_SWITCH_MATRIX
from provenml.rl import ActorCritic


@dataclass
class Rollout:
    """One batch of fixed-horizon episodes, every tensor (num_envs, horizon, ...)."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    transitions: torch.Tensor  # encoder inputs [action, reward, next_obs]
    features: torch.Tensor  # policy features at each step (as computed while acting)
    logp: torch.Tensor
    values: torch.Tensor
    session_end: torch.Tensor  # env flags: training losses only, never the forward pass
    extras: dict[str, Any] = field(default_factory=dict)

    def select(self, envs: torch.Tensor) -> Rollout:
        """The episodes of the environments ``envs`` (a PPO minibatch)."""
        return Rollout(
            *(getattr(self, n)[envs] for n in _ROLLOUT_TENSORS),
            extras=self.extras,
        )


_ROLLOUT_TENSORS = (
    "obs",
    "actions",
    "rewards",
    "next_obs",
    "transitions",
    "features",
    "logp",
    "values",
    "session_end",
)


class Agent(nn.Module):
    """Base agent: an actor-critic over ``[obs, time, features]`` plus a feature model
    (``time`` = fraction of the fixed horizon elapsed, given to every agent alike)."""

    feature_dim: int = 0

    def __init__(self, obs_dim: int, action_dim: int, discrete: bool, hidden: int) -> None:
        super().__init__()
        self.obs_dim, self.action_dim, self.discrete = obs_dim, action_dim, discrete
        # +1: the time left in the episode (a fixed horizon), which the critic needs
        # plain ``nn.Tanh`` (stop 36): on the AVX-512 Xeon the project runs on, ``SigmoidTanh``
        # made an iteration 8-10% slower (it was faster on the EPYC of round 4)
        self.policy = ActorCritic(obs_dim + 1 + self.feature_dim, action_dim, discrete, hidden)

    def begin(self, num_envs: int, latent: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """State and features before the first action of an episode."""
        return None, torch.zeros(num_envs, self.feature_dim)

    def observe(
        self, state: Any, transition: torch.Tensor, next_latent: torch.Tensor
    ) -> tuple[Any, torch.Tensor]:
        """Update the state with one transition of every env; return (state, features)."""
        return state, torch.zeros(transition.shape[0], self.feature_dim)

    def policy_features(self, batch: Rollout) -> torch.Tensor:
        """Features for the PPO loss (recomputed with gradients where the RL loss trains them)."""
        return batch.features

    @property
    def rl_trains_features(self) -> bool:
        """Whether the PPO loss trains the feature model (agents that override
        ``policy_features``, i.e. RL2): the PPO update then recomputes the features of every
        minibatch; otherwise it reads the features stored while acting."""
        return type(self).policy_features is not Agent.policy_features

    def end_rollout(self) -> None:
        """Called after each training rollout (belief agents update feature statistics)."""

    def model_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by a separate model loss (none for model-free agents)."""
        return []

    def model_loss(
        self, episodes: dict[str, torch.Tensor], generator: torch.Generator | None
    ) -> tuple[torch.Tensor, dict[str, float]] | None:
        """The belief-model loss on ``episodes`` (``transitions``, ``next_obs``, ``rewards``,
        ``session_end``, each (N, H, ...)); None for agents without a belief model."""
        return None


class MemorylessAgent(Agent):
    """PPO on the observation alone."""


class OracleAgent(Agent):
    """PPO that sees the true current latent (an encoding of it: one-hot goal / target xy)."""

    def __init__(self, obs_dim: int, action_dim: int, discrete: bool, hidden: int, latent_dim: int):
        self.feature_dim = latent_dim
        super().__init__(obs_dim, action_dim, discrete, hidden)

    def begin(self, num_envs: int, latent: torch.Tensor) -> tuple[Any, torch.Tensor]:
        return None, latent

    def observe(
        self, state: Any, transition: torch.Tensor, next_latent: torch.Tensor
    ) -> tuple[Any, torch.Tensor]:
        return None, next_latent


class BayesFilterAgent(Agent):
    """PPO on the exact belief over the grid world's paying goal (a diagnostic upper bound for
    belief agents): the HMM forward filter (Rabiner 1989, eqs. 19-20) with the environment's
    known session-end probability ``p`` and switch matrix ``M``.

    Correction: standing on goal k, reward 1 means goal k pays and 0 means the other does;
    elsewhere the reward carries no evidence. Prediction: ``b <- b ((1 - p) I + p M)``.
    Feature: ``P(goal 0 pays) - P(goal 1 pays)`` for the next step.
    """

    feature_dim = 1

    def __init__(self, obs_dim: int, action_dim: int, hidden: int, session_end_prob: float) -> None:
        if obs_dim != 6 or action_dim != 5:
            raise ProvenmlError("bayes_filter is defined for the session grid world only")
        super().__init__(obs_dim, action_dim, True, hidden)
        matrix = torch.tensor(GRID_SWITCH_MATRIX, dtype=torch.float32)
        self.register_buffer(
            "transition", (1 - session_end_prob) * torch.eye(2) + session_end_prob * matrix
        )

    def begin(self, num_envs: int, latent: torch.Tensor) -> tuple[Any, torch.Tensor]:
        belief = torch.full((num_envs, 2), 0.5)
        return belief, belief[:, :1] - belief[:, 1:]

    def observe(
        self, state: Any, transition: torch.Tensor, next_latent: torch.Tensor
    ) -> tuple[Any, torch.Tensor]:
        reward = transition[:, self.action_dim]
        offsets = transition[:, self.action_dim + 3 :].reshape(-1, 2, 2)  # goal k - agent
        on_goal = (offsets.abs() < 1e-6).all(-1)  # (N, 2)
        paid = reward > 0.5
        # likelihood of the reward under "goal k pays", k = 0, 1
        likelihood = torch.where(
            on_goal.any(-1, keepdim=True),
            (on_goal == paid[:, None]).float(),
            torch.ones_like(state),
        )
        posterior = state * likelihood
        posterior = posterior / posterior.sum(-1, keepdim=True).clamp_min(1e-12)
        belief = posterior @ self.transition
        return belief, belief[:, :1] - belief[:, 1:]


class RL2Agent(Agent):
    """RL^2: a GRU over ``(a_j, r_j, s_{j+1})`` whose state is the policy's feature; trained
    by backpropagating the PPO loss through the whole episode.

    The GRU runs as :func:`~provenml.metarl.belief.gru_states` (one C recurrence over the
    episode, forward and backward, on float32 CPU tensors; ``torch.nn.GRU`` elsewhere or with
    ``native = False``) and acts by :func:`~provenml.metarl.belief.gru_stepper` (one kernel
    step, the weights copied once per rollout), the same recurrence VariBAD's encoder runs.
    """

    # False keeps torch.nn.GRU where the C recurrence could run (tests compare the two)
    native: bool = True

    def __init__(self, obs_dim: int, action_dim: int, discrete: bool, hidden: int, gru: int = 64):
        self.feature_dim = gru
        super().__init__(obs_dim, action_dim, discrete, hidden)
        self.embed = nn.Sequential(nn.Linear(action_dim + 1 + obs_dim, 32), nn.ReLU())
        self.gru = nn.GRU(32, gru, batch_first=True)

    def begin(self, num_envs: int, latent: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """The state is ``(h, step)``: the GRU state and this rollout's ``gru_stepper``."""
        h = torch.zeros(num_envs, self.feature_dim)
        return (h, gru_stepper(self.embed, self.gru, self.native)), h

    def observe(
        self, state: Any, transition: torch.Tensor, next_latent: torch.Tensor
    ) -> tuple[Any, torch.Tensor]:
        h_prev, step = state
        h = step(h_prev, transition)
        return (h, step), h

    def policy_features(self, batch: Rollout) -> torch.Tensor:
        transitions = batch.transitions
        h0 = transitions.new_zeros(len(transitions), self.feature_dim)
        out = gru_states(self.embed, self.gru, transitions, h0, self.native)
        return torch.cat([h0[:, None], out[:, :-1]], 1)  # features for acting at step j: after j-1


class RunningNorm(nn.Module):
    """Standardises features by running mean and variance (the observation normalisation of
    common PPO implementations), here for the belief features ``[mu, logvar]`` whose scale
    and offset drift while the encoder trains. Statistics are buffers: they move only in
    ``update`` (once per collected batch), so the features stored with a batch are exactly
    those the PPO update sees. The old statistics weigh at most ``window`` samples, so they
    follow the encoder's drift instead of freezing at its early values."""

    def __init__(self, dim: int, clip: float = 5.0, window: float = 100_000.0) -> None:
        super().__init__()
        self.clip, self.window = clip, window
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.tensor(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + 1e-8)).clamp(-self.clip, self.clip)

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge the statistics of ``x`` (..., dim) (parallel-variance formula)."""
        x = x.reshape(-1, x.shape[-1])
        n, mean, var = float(len(x)), x.mean(0), x.var(0, unbiased=False)
        old = torch.clamp(self.count, max=self.window)
        total = old + n
        delta = mean - self.mean
        self.var.copy_((self.var * old + var * n + delta**2 * old * n / total) / total)
        self.mean.add_(delta * n / total)
        self.count.fill_(total)


class BeliefAgent(Agent):
    """VariBAD / DynaMITE-RL: the policy sees ``[mu, logvar]`` of the current belief,
    standardised by running statistics (``RunningNorm``, updated after each batch)."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        discrete: bool,
        hidden: int,
        latent_dim: int,
        loss_cfg: BeliefLossConfig,
        session_aware: bool,
        prior_conditioning: bool,
        grid_size: int | None = None,
    ):
        self.feature_dim = 2 * latent_dim
        super().__init__(obs_dim, action_dim, discrete, hidden)
        self.loss_cfg = loss_cfg
        self.encoder = BeliefEncoder(
            obs_dim,
            action_dim,
            latent_dim,
            session_aware=session_aware,
            prior_conditioning=prior_conditioning,
        )
        # a fixed grid: VariBAD's one-head-per-cell decoder; otherwise decode from the state
        self.decoder: RewardDecoder | CellRewardDecoder = (
            CellRewardDecoder(grid_size, latent_dim)
            if grid_size is not None
            else RewardDecoder(obs_dim, latent_dim)
        )
        self.feature_norm = RunningNorm(self.feature_dim)
        self._raw: list[torch.Tensor] = []  # raw features of the current rollout

    def _features(self, h: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.encoder.gaussian(h)
        raw = torch.cat([mu, logvar], -1)
        if self.training:
            self._raw.append(raw)
        return self.feature_norm(raw)

    def end_rollout(self) -> None:
        """Fold the raw features of the rollout just collected into the running statistics."""
        if self._raw:
            self.feature_norm.update(torch.stack(self._raw))
        self._raw = []

    def begin(self, num_envs: int, latent: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """The state is ``(h, step)``: the encoder's hidden state and its
        ``BeliefEncoder.stepper()`` for this rollout (the weights as of ``begin``)."""
        h = self.encoder.initial(num_envs)
        return (h, self.encoder.stepper()), self._features(h)

    def observe(
        self, state: Any, transition: torch.Tensor, next_latent: torch.Tensor
    ) -> tuple[Any, torch.Tensor]:
        h_prev, step = state
        h = step(h_prev, transition)
        return (h, step), self._features(h)

    def model_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def model_loss(
        self, episodes: dict[str, torch.Tensor], generator: torch.Generator | None
    ) -> tuple[torch.Tensor, dict[str, float]] | None:
        return belief_losses(
            self.encoder,
            self.decoder,
            episodes["transitions"],
            episodes["next_obs"],
            episodes["rewards"],
            episodes["session_end"],
            self.loss_cfg,
            generator,
        )


@dataclass(frozen=True)
class AgentShape:
    """What every agent builder receives: the env's sizes and the shared settings."""

    obs_dim: int
    action_dim: int
    discrete: bool
    oracle_dim: int
    hidden: int
    latent_dim: int
    loss_cfg: BeliefLossConfig
    session_end_prob: float
    grid_size: int | None


AGENT_BUILDERS: Registry[Callable[[AgentShape], Agent]] = Registry("agent")
AGENT_BUILDERS.register(
    "oracle",
    lambda s: OracleAgent(s.obs_dim, s.action_dim, s.discrete, s.hidden, s.oracle_dim),
)
AGENT_BUILDERS.register(
    "bayes_filter",
    lambda s: BayesFilterAgent(s.obs_dim, s.action_dim, s.hidden, s.session_end_prob),
)
AGENT_BUILDERS.register(
    "memoryless", lambda s: MemorylessAgent(s.obs_dim, s.action_dim, s.discrete, s.hidden)
)
AGENT_BUILDERS.register("rl2", lambda s: RL2Agent(s.obs_dim, s.action_dim, s.discrete, s.hidden))


def _belief_builder(
    session_aware: bool, consistency: bool, masking: bool, prior: bool
) -> Callable[[AgentShape], Agent]:
    """A VariBAD (``session_aware=False``) or DynaMITE-RL-family builder with these changes."""

    def build(s: AgentShape) -> Agent:
        cfg = BeliefLossConfig(
            **{**s.loss_cfg.__dict__, "consistency": consistency, "session_masking": masking}
        )
        return BeliefAgent(
            s.obs_dim,
            s.action_dim,
            s.discrete,
            s.hidden,
            s.latent_dim,
            cfg,
            session_aware,
            prior,
            s.grid_size,
        )

    return build


# (session-aware, consistency, session masking, prior conditioning)
for _name, _flags in {
    "varibad": (False, False, False, False),
    "dynamite": (True, True, True, True),
    "dynamite_no_consistency": (True, False, True, True),
    "dynamite_no_masking": (True, True, False, True),
    "dynamite_no_prior": (True, True, True, False),
}.items():
    AGENT_BUILDERS.register(_name, _belief_builder(*_flags))

AGENTS: tuple[str, ...] = tuple(AGENT_BUILDERS.names())


def make_agent(
    name: str,
    obs_dim: int,
    action_dim: int,
    discrete: bool,
    *,
    oracle_dim: int,
    hidden: int = 64,
    latent_dim: int = 5,
    loss_cfg: BeliefLossConfig | None = None,
    session_end_prob: float = 0.07,
    grid_size: int | None = None,
) -> Agent:
    """Build an agent by name (``AGENT_BUILDERS``, see ``AGENTS``; an unknown name is a
    ``ProvenmlError`` that suggests the closest); ``session_end_prob`` is used by
    ``bayes_filter`` only (it knows the environment's dynamics); ``grid_size`` (a grid world
    whose goals sit in fixed cells) gives the belief agents VariBAD's per-cell reward decoder
    (``CellRewardDecoder``) instead of the state-conditioned one."""
    shape = AgentShape(
        obs_dim,
        action_dim,
        discrete,
        oracle_dim,
        hidden,
        latent_dim,
        loss_cfg or BeliefLossConfig(),
        session_end_prob,
        grid_size,
    )
    return AGENT_BUILDERS.get(name)(shape)


def encode_action(actions: torch.Tensor, action_dim: int, discrete: bool) -> torch.Tensor:
    """One-hot for discrete actions, the (clipped) vector for continuous ones."""
    if discrete:
        return F.one_hot(actions.long(), action_dim).float()
    return actions.clamp(-1.0, 1.0).float()
