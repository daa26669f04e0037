"""One learner per player: PPO on a team-shared policy with the agent's id as an input.

The policy and critic are :class:`provenml.rl.ActorCritic` over ``[observation, one-hot agent
id]`` (parameter sharing across a team's agents, with the id to tell them apart). The update
is the shared PPO core (:func:`provenml.rl.ppo_clip_loss`, :class:`provenml.rl.PPOConfig`);
the advantages are GAE over fragments that cut across episode ends (:func:`gae_with_dones`),
optionally V-trace-corrected (:func:`vtrace`) for samples a lagging policy collected.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from provenml.distrl.envs import TeamSpec
from provenml.nn import mlp
from provenml.rl import ActorCritic, PPOConfig, ppo_clip_loss

__all__ = ["Learner", "NumpyTeamPolicy", "TeamPolicy", "gae_with_dones", "vtrace"]


class TeamPolicy(torch.nn.Module):
    """A team-shared :class:`ActorCritic` whose input is the observation and the agent's id.

    With ``central_critic`` the value comes from a separate critic that also sees every
    teammate's observation (``[obs_i, id_i, obs_1 .. obs_A]``, centralised training with
    decentralised execution, as in MAPPO); the actor still sees only its own.
    """

    def __init__(self, spec: TeamSpec, hidden: int = 64, central_critic: bool = False) -> None:
        super().__init__()
        self.num_agents = len(spec.agents)
        self.net = ActorCritic(spec.obs_dim + self.num_agents, spec.num_actions, True, hidden)
        self.register_buffer("agent_ids", torch.eye(self.num_agents), persistent=False)
        self.central = (
            mlp(
                spec.obs_dim * (1 + self.num_agents) + self.num_agents,
                [hidden, hidden],
                1,
                activation=torch.nn.Tanh,
            )
            if central_critic
            else None
        )

    def inputs(self, obs: torch.Tensor) -> torch.Tensor:
        """(..., A, D) observations -> (..., A, D + A) with each agent's one-hot id appended."""
        ids = self.agent_ids.expand(*obs.shape[:-1], self.num_agents)
        return torch.cat([obs, ids], -1)

    def critic_inputs(self, obs: torch.Tensor) -> torch.Tensor:
        """The critic's input: the actor's, plus (central critic) the whole team's obs."""
        x = self.inputs(obs)
        if self.central is None:
            return x
        team = obs.flatten(-2).unsqueeze(-2).expand(*obs.shape[:-1], -1)
        return torch.cat([x, team], -1)

    def value_from_inputs(self, critic_inputs: torch.Tensor) -> torch.Tensor:
        if self.central is None:
            return self.net.value(critic_inputs)
        return self.central(critic_inputs).squeeze(-1)

    def logits_and_value(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.actor(self.inputs(obs)), self.value_from_inputs(self.critic_inputs(obs))


def gae_with_dones(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_values: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE (Schulman et al. 2016, eq. 16) over a (T, B) fragment that may cross episode ends.

    ``dones[t]`` marks that the trajectory ended after step t (no bootstrap from ``t + 1``;
    a truncated end has its ``gamma V(final observation)`` already added to ``rewards[t]``);
    ``last_values`` (B,) bootstraps the fragment's end. ``provenml.rl.gae`` is the
    fixed-horizon special case (all episodes end with the fragment).
    """
    horizon = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(last_values)
    next_value = last_values
    for t in reversed(range(horizon)):
        keep = 1.0 - dones[t].float()
        delta = rewards[t] + gamma * next_value * keep - values[t]
        running = delta + gamma * lam * keep * running
        advantages[t] = running
        next_value = values[t]
    return advantages, advantages + values


def vtrace(
    log_rhos: torch.Tensor,
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_values: torch.Tensor,
    gamma: float,
    rho_bar: float = 1.0,
    c_bar: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """V-trace targets and policy-gradient advantages (Espeholt et al. 2018, IMPALA, eq. 1).

    ``v_s = V(x_s) + sum_t gamma^(t-s) (prod_{i<t} c_i) rho_t delta_t`` with
    ``delta_t = r_t + gamma V(x_{t+1}) - V(x_t)``, ``rho_t = min(rho_bar, pi/mu)``,
    ``c_i = min(c_bar, pi/mu)``, computed backwards as ``v_s - V(x_s) = rho_s delta_s +
    gamma c_s (v_{s+1} - V(x_{s+1}))``. Advantages: ``rho_s (r_s + gamma v_{s+1} - V(x_s))``.
    Trajectory ends (``dones``) stop the recursion. All tensors (T, B); ``last_values`` (B,).
    """
    rhos = torch.exp(log_rhos)
    clipped_rhos = torch.clamp(rhos, max=rho_bar)
    cs = torch.clamp(rhos, max=c_bar)
    horizon = rewards.shape[0]
    vs_minus_v = torch.zeros_like(values)
    running = torch.zeros_like(last_values)
    next_values = torch.cat([values[1:], last_values[None]], 0)
    keep = 1.0 - dones.float()
    deltas = clipped_rhos * (rewards + gamma * next_values * keep - values)
    for t in reversed(range(horizon)):
        running = deltas[t] + gamma * cs[t] * keep[t] * running
        vs_minus_v[t] = running
    vs = vs_minus_v + values
    next_vs = torch.cat([vs[1:], last_values[None]], 0)
    advantages = clipped_rhos * (rewards + gamma * next_vs * keep - values)
    return advantages, vs


class NumpyTeamPolicy:
    """The forward pass of a :class:`TeamPolicy` in numpy, for the rollout workers.

    For the small MLPs of these games a numpy forward costs a fraction of torch's per-op
    overhead. The one-hot agent id only adds a column of the first layer's weights, so it is
    folded into a per-agent bias; the actor's and critic's first layers are one matmul.
    """

    def __init__(self, num_agents: int) -> None:
        self.num_agents = num_agents

    def load(self, weights: Mapping[str, np.ndarray]) -> None:
        def layers(prefix: str) -> list[tuple[np.ndarray, np.ndarray]]:
            names = [k for k in weights if k.startswith(prefix) and k.endswith("weight")]
            index = sorted(int(k[len(prefix) :].split(".")[0]) for k in names)
            return [
                (
                    np.asarray(weights[f"{prefix}{i}.weight"], dtype=np.float32),
                    np.asarray(weights[f"{prefix}{i}.bias"], dtype=np.float32),
                )
                for i in index
            ]

        a = self.num_agents
        actor = layers("net.actor.")
        self.central = any(k.startswith("central.") for k in weights)
        critic = layers("central." if self.central else "net.critic.")
        (wa, ba), (wc, bc) = actor[0], critic[0]
        self.hidden = wa.shape[0]
        dim = wa.shape[1] - a
        if self.central:  # the team's observations enter the critic's first layer only
            self.team_w = np.ascontiguousarray(wc[:, dim + a :].T)  # (A*D, H)
            wc = wc[:, : dim + a]
        first = np.concatenate([wa, wc], 0)  # (2H, D + A)
        self.first_w = np.ascontiguousarray(first[:, :dim].T)  # (D, 2H)
        self.first_b = (np.concatenate([ba, bc])[None, :] + first[:, dim:].T).astype(np.float32)
        self.actor_rest = [(np.ascontiguousarray(w.T), b) for w, b in actor[1:]]
        self.critic_rest = [(np.ascontiguousarray(w.T), b) for w, b in critic[1:]]

    def forward(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(..., A, D) observations -> logits (..., A, actions), values (..., A)."""
        pre = obs @ self.first_w + self.first_b
        if self.central:
            team = obs.reshape(*obs.shape[:-2], 1, -1) @ self.team_w  # (..., 1, H)
            pre[..., self.hidden :] += team
        h = np.tanh(pre)
        x, v = h[..., : self.hidden], h[..., self.hidden :]
        for i, (w, b) in enumerate(self.actor_rest):
            x = x @ w + b
            if i < len(self.actor_rest) - 1:
                x = np.tanh(x)
        for i, (w, b) in enumerate(self.critic_rest):
            v = v @ w + b
            if i < len(self.critic_rest) - 1:
                v = np.tanh(v)
        return x, v[..., 0]

    def act(
        self, obs: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sampled actions, their log-probabilities and the values (inverse-CDF sampling)."""
        logits, values = self.forward(obs)
        logits = logits - logits.max(-1, keepdims=True)
        logp_all = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        cdf = np.cumsum(np.exp(logp_all), -1)
        u = rng.random((*cdf.shape[:-1], 1), dtype=np.float32) * cdf[..., -1:]
        actions = np.minimum((cdf < u).sum(-1), cdf.shape[-1] - 1)
        logp = np.take_along_axis(logp_all, actions[..., None], -1)[..., 0]
        return actions.astype(np.int64), logp.astype(np.float32), values.astype(np.float32)


def numpy_weights(module: torch.nn.Module) -> dict[str, np.ndarray]:
    """The state dict as numpy arrays (Ray puts them in its shared-memory object store)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_numpy_weights(module: torch.nn.Module, weights: Mapping[str, np.ndarray]) -> None:
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})


class Learner:
    """PPO for one player's team-shared policy (CPU, or ``device`` for a GPU learner).

    ``update(batches)`` takes the rollout workers' fragments for this player's team
    (dicts of numpy arrays, see :mod:`provenml.distrl.rollout`) and returns statistics;
    ``weights()`` gives the numpy weights the workers load. ``minibatch_size`` (samples)
    overrides ``ppo.minibatches`` (a count) when given. ``correction="vtrace"`` replaces
    GAE by V-trace targets computed with the learner's current policy (for stale samples).
    """

    def __init__(
        self,
        spec: TeamSpec,
        ppo: PPOConfig,
        seed: int = 0,
        correction: str = "none",
        central_critic: bool = False,
        device: str = "cpu",
        threads: int | None = None,
        minibatch_size: int | None = None,
    ) -> None:
        from provenml.errors import ProvenmlError

        if correction not in ("none", "vtrace"):
            raise ProvenmlError(f"correction must be 'none' or 'vtrace', got {correction!r}")
        if threads is not None:
            torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.spec = spec
        self.ppo = ppo
        self.correction = correction
        self.minibatch_size = minibatch_size
        self.device = torch.device(device)
        self.policy = TeamPolicy(spec, ppo.hidden, central_critic).to(self.device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=ppo.lr, eps=1e-5)
        self.version = 0
        self.busy_seconds = 0.0

    def weights(self) -> dict[str, np.ndarray]:
        return numpy_weights(self.policy)

    def update(self, batches: Sequence[Mapping[str, np.ndarray]]) -> dict[str, float]:
        start = time.perf_counter()
        dev = self.device

        def cat(key: str) -> torch.Tensor:
            return torch.as_tensor(np.concatenate([b[key] for b in batches], 1), device=dev)

        obs = cat("obs")  # (T, N, A, D)
        actions, old_logp, values = cat("actions"), cat("logp"), cat("values")
        rewards, dones, active = cat("rewards").float(), cat("dones"), cat("active")
        last_values = torch.as_tensor(np.concatenate([b["last_values"] for b in batches], 0))
        horizon = obs.shape[0]
        flat = (horizon, -1)
        if self.correction == "vtrace":
            with torch.no_grad():
                logits, _ = self.policy.logits_and_value(obs)
                new_logp = torch.distributions.Categorical(logits=logits).log_prob(actions)
            advantages, returns = vtrace(
                (new_logp - old_logp).reshape(flat),
                rewards.reshape(flat),
                values.reshape(flat),
                dones.reshape(flat),
                last_values.reshape(-1).to(dev),
                self.ppo.gamma,
            )
        else:
            advantages, returns = gae_with_dones(
                rewards.reshape(flat),
                values.reshape(flat),
                dones.reshape(flat),
                last_values.reshape(-1).to(dev),
                self.ppo.gamma,
                self.ppo.gae_lambda,
            )
        mask = active.reshape(-1)
        obs_f = obs.reshape(-1, *obs.shape[2:])  # (T*N, A, D): agent ids need the A axis
        inputs = self.policy.inputs(obs_f).reshape(-1, obs.shape[-1] + obs.shape[2])[mask]
        critic_in = self.policy.critic_inputs(obs_f)
        critic_in = critic_in.reshape(-1, critic_in.shape[-1])[mask]
        act_f = actions.reshape(-1)[mask]
        old_f = old_logp.reshape(-1)[mask]
        adv_f = advantages.reshape(-1)[mask]
        ret_f = returns.reshape(-1)[mask]
        num = inputs.shape[0]
        size = self.minibatch_size or max(1, num // self.ppo.minibatches)
        size = min(size, num)
        stats = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0}
        steps = 0
        for _ in range(self.ppo.epochs):
            order = torch.randperm(num, generator=self.generator).to(dev)
            for begin in range(0, num - size + 1, size):
                idx = order[begin : begin + size]
                dist = self.policy.net.distribution(inputs[idx])
                adv = adv_f[idx]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                policy_loss = ppo_clip_loss(
                    dist.log_prob(act_f[idx]), old_f[idx], adv, self.ppo.clip
                )
                value = self.policy.value_from_inputs(critic_in[idx])
                value_loss = 0.5 * (value - ret_f[idx]).pow(2).mean()
                entropy = dist.entropy().mean()
                loss = (
                    policy_loss + self.ppo.value_coef * value_loss - self.ppo.entropy_coef * entropy
                )
                self.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.ppo.max_grad_norm)
                self.optimizer.step()
                stats["policy_loss"] += policy_loss.item()
                stats["value_loss"] += value_loss.item()
                stats["entropy"] += entropy.item()
                steps += 1
        self.version += 1
        seconds = time.perf_counter() - start
        self.busy_seconds += seconds
        out = {k: v / max(steps, 1) for k, v in stats.items()}
        out.update(samples=float(num), seconds=seconds, version=float(self.version))
        return out

    # ---------------------------------------------------------------- checkpoints
    def state(self) -> bytes:
        """Everything needed to resume: weights, optimiser, version, sampling generator."""
        buffer = io.BytesIO()
        torch.save(
            {
                "policy": self.policy.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "version": self.version,
                "generator": self.generator.get_state(),
            },
            buffer,
        )
        return buffer.getvalue()

    def load_state(self, blob: bytes) -> None:
        state: dict[str, Any] = torch.load(io.BytesIO(blob), weights_only=False)
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.version = int(state["version"])
        self.generator.set_state(state["generator"])
