"""Training and evaluation loop, CleanRL-style: read ``train_agent`` top to bottom.

One iteration = one batch of ``num_envs`` fixed-horizon episodes stepped together (the env is a
batched array, every model runs over all envs at once), then PPO epochs over env minibatches,
then (belief agents) one gradient step on the belief-model loss.
"""

from __future__ import annotations

import ctypes
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import torch
from torch import nn

from provenml.core.context import progress as with_progress
from provenml.errors import ProvenmlError
from provenml.metarl.agents import Agent, Rollout, encode_action, make_agent
from provenml.metarl.belief import BeliefLossConfig
from provenml.metarl.envs import SessionGridWorldVec, SessionReacherVec
from provenml.rl import PolicyActor, PPOConfig, gae, ppo_minibatch_backward

VecEnv = SessionGridWorldVec | SessionReacherVec

# glibc ``mallopt`` parameters (malloc.h) and the values ``keep_freed_memory`` sets
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 << 20  # allocations up to 32 MiB come from the heap, not fresh mmaps
_TRIM_THRESHOLD = 128 << 20  # return the heap's free top to the OS only beyond 128 MiB


@cache
def keep_freed_memory() -> bool:
    """Let glibc's malloc reuse freed memory for large tensors instead of returning it to the
    OS and mapping fresh, zero-filled pages for the next one (once per process; True if set).

    The belief-model step allocates a dozen 2-6 MB tensors (the reward decoder's
    (64 episodes x 12 latents x 60 steps x 32) activations and their gradients). Above
    glibc's mmap threshold each is a fresh ``mmap``; every step then page-faults ~2,500 times
    and the kernel zero-fills ~10 MB: 7-13% of a ``metarl.reacher`` part's CPU time
    (docs/metarl.md, round 5). With the thresholds raised, those allocations are served from
    the heap. Only where memory comes from changes: every computation, and so every number,
    is the same. A no-op off Linux/glibc. The setting lasts for the process (glibc has no way
    back to its dynamic threshold); freed memory at the top of the heap goes back to the OS
    only beyond 128 MiB.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )


@dataclass
class TrainConfig:
    """What one agent is trained with (the same for every agent of an experiment)."""

    env: str = "gridworld"
    session_end_prob: float = 0.07
    goal_layout: str = "edge"  # grid world: where the two goals sit (see SessionGridWorldVec)
    num_envs: int = 32
    total_steps: int = 200_000
    model_lr: float = 3e-3
    model_updates: int = 4  # belief-model gradient steps per batch (fresh ELBO subsample each)
    model_buffer: int = 2048  # episodes kept for the belief model (VariBAD's VAE buffer)
    model_batch: int = 64  # episodes drawn from the buffer for each belief-model step
    # extra belief-model steps on the first batch (the initial policy's episodes, counted in
    # ``total_steps``) before the second batch is collected: VariBAD's ``pretrain_len``. The
    # policy then learns on informative beliefs instead of locking in a belief-blind
    # behaviour while the model catches up.
    model_pretrain_updates: int = 0
    # belief agents only: this many of the ``num_envs`` episodes of every batch act uniformly
    # at random (counted in ``total_steps``); they feed the belief model's buffer, never the
    # PPO update, so the model also sees the walks between goals a settled policy stops making
    explore_envs: int = 0
    # grid world with fixed goal cells: VariBAD's one-reward-head-per-cell decoder
    cell_decoder: bool = True
    latent_dim: int = 5
    ppo: PPOConfig = field(default_factory=PPOConfig)
    belief: BeliefLossConfig = field(default_factory=BeliefLossConfig)


def make_vec_env(
    kind: str, num_envs: int, session_end_prob: float, goal_layout: str = "edge"
) -> VecEnv:
    """The batched env by name; ``goal_layout``: the grid world's goal placement."""
    if kind == "gridworld":
        return SessionGridWorldVec(
            num_envs, session_end_prob=session_end_prob, goal_layout=goal_layout
        )
    if kind == "reacher":
        return SessionReacherVec(num_envs, session_end_prob=session_end_prob)
    raise ProvenmlError(f"unknown env {kind!r}; choose gridworld or reacher")


def latent_features(env: VecEnv, latent: np.ndarray) -> torch.Tensor:
    """What the oracle sees: one-hot paying goal (grid) or the target position (reacher)."""
    if isinstance(env, SessionGridWorldVec):
        return torch.nn.functional.one_hot(torch.as_tensor(latent), env.num_latents).float()
    return torch.as_tensor(latent, dtype=torch.float32)


def build_agent(name: str, env: VecEnv, cfg: TrainConfig) -> Agent:
    discrete = isinstance(env, SessionGridWorldVec)
    obs_dim = env.single_observation_space.shape[0]  # type: ignore[index]
    action_dim = int(env.single_action_space.n) if discrete else 2  # type: ignore[attr-defined]
    oracle_dim = env.num_latents if discrete else 2
    fixed_grid = discrete and cfg.cell_decoder and env.goal_layout != "random"  # type: ignore[union-attr]
    return make_agent(
        name,
        obs_dim,
        action_dim,
        discrete,
        oracle_dim=oracle_dim,
        hidden=cfg.ppo.hidden,
        latent_dim=cfg.latent_dim,
        loss_cfg=cfg.belief,
        session_end_prob=cfg.session_end_prob,
        grid_size=env.size if fixed_grid else None,  # type: ignore[union-attr]
    )


@torch.no_grad()
def collect(
    agent: Agent,
    env: VecEnv,
    generator: torch.Generator,
    *,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    random_envs: torch.Tensor | None = None,
) -> Rollout:
    """Run one episode in every env at once; the policy samples its actions, except in the
    envs flagged by ``random_envs`` (bool, (num_envs,)), which act uniformly at random."""
    obs_np, info = env.reset(seed=seed, options=options)
    n, horizon = env.num_envs, env.horizon
    state, features = agent.begin(n, latent_features(env, info["latent"]))
    records: dict[str, list[torch.Tensor]] = {k: [] for k in ("obs", "act", "rew", "next", "x")}
    feats, logps, values, ends, latents = [], [], [], [], []
    obs = torch.as_tensor(obs_np)
    actor = PolicyActor(agent.policy, obs)  # the kernel's weight copies, once per rollout
    for t in range(horizon):
        clock = torch.full((n, 1), t / horizon)
        policy_in = torch.cat([obs, clock, features], -1)
        u = torch.rand(n, generator=generator)
        noise = None if agent.discrete else torch.randn(n, agent.action_dim, generator=generator)
        uniform = None
        if random_envs is not None:
            if agent.discrete:
                uniform = (u * agent.action_dim).long().clamp(max=agent.action_dim - 1)
            else:
                uniform = torch.rand(n, agent.action_dim, generator=generator) * 2 - 1
        # inverse-CDF sampling from the seeded generator (one C call where it runs)
        action, logp, value = actor(policy_in, u, noise, random_envs, uniform)
        feats.append(features)
        logps.append(logp)
        values.append(value)
        next_np, reward_np, _, _, info = env.step(action.numpy())
        next_obs, reward = torch.as_tensor(next_np), torch.as_tensor(reward_np)
        x = torch.cat(
            [encode_action(action, agent.action_dim, agent.discrete), reward[:, None], next_obs], -1
        )
        state, features = agent.observe(state, x, latent_features(env, info["next_latent"]))
        for key, value in zip(records, (obs, action, reward, next_obs, x), strict=True):
            records[key].append(value)
        ends.append(torch.as_tensor(info["session_end"]))
        latents.append(np.asarray(info["latent"]))
        obs = next_obs

    def stack(items: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(items, 1)

    return Rollout(
        obs=stack(records["obs"]),
        actions=stack(records["act"]),
        rewards=stack(records["rew"]),
        next_obs=stack(records["next"]),
        transitions=stack(records["x"]),
        features=stack(feats),
        logp=stack(logps),
        values=stack(values),
        session_end=stack(ends),
        extras={"latents": np.stack(latents, 1)},
    )


class EpisodeBuffer:
    """A FIFO buffer of the most recent episodes for training the belief model.

    VariBAD (Zintgraf et al. 2020, Sec. 4 and App. C) trains its VAE on trajectories drawn
    from a buffer of recent episodes rather than only the current policy batch: the decoder
    sees more, and more varied, data per update. Tensors are preallocated,
    ``(capacity, horizon, ...)``; ``add`` overwrites the oldest episodes.
    """

    FIELDS = ("transitions", "next_obs", "rewards", "session_end")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ProvenmlError(f"the episode buffer needs capacity >= 1, got {capacity}")
        self.capacity = capacity
        self.size = 0
        self._next = 0
        self._data: dict[str, torch.Tensor] = {}

    def add(self, batch: Rollout) -> None:
        """Store every episode of ``batch`` (the oldest are overwritten when full)."""
        n = batch.rewards.shape[0]
        if not self._data:
            self._data = {
                k: torch.zeros(
                    (self.capacity, *getattr(batch, k).shape[1:]), dtype=getattr(batch, k).dtype
                )
                for k in self.FIELDS
            }
        slots = (self._next + torch.arange(n)) % self.capacity
        if n > self.capacity:  # only the last `capacity` episodes survive
            slots, keep = slots[-self.capacity :], torch.arange(n)[-self.capacity :]
        else:
            keep = torch.arange(n)
        for k in self.FIELDS:
            self._data[k][slots] = getattr(batch, k)[keep]
        self._next = int((self._next + n) % self.capacity)
        self.size = min(self.capacity, self.size + n)

    def sample(self, count: int, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """``count`` stored episodes drawn uniformly without replacement (all if fewer)."""
        if self.size == 0:
            raise ProvenmlError("the episode buffer is empty: add a batch first")
        index = torch.randperm(self.size, generator=generator)[: min(count, self.size)]
        return {k: v[index] for k, v in self._data.items()}


@dataclass
class TrainResult:
    agent: Agent
    curve_steps: list[int]
    curve_returns: list[float]
    model_losses: list[dict[str, float]]


def _adam(params: Any, **kwargs: float) -> torch.optim.Adam:
    """Adam; its fused kernel (the same update in one pass, 3x faster at these sizes) on the
    float32 CPU parameters of every agent here."""
    params = list(params)
    fused = all(p.dtype == torch.float32 and p.device.type == "cpu" for p in params)
    return torch.optim.Adam(params, fused=fused or None, **kwargs)


def train_agent(
    name: str,
    cfg: TrainConfig,
    seed: int,
    on_iteration: Callable[[int, float], None] | None = None,
    timings: dict[str, float] | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train agent ``name`` for ``cfg.total_steps`` env steps with PPO (and its belief loss).

    Runs with the process's torch threads: the experiments declare ``threads=1`` on
    ``@experiment`` (one thread is fastest for these small models) and the runner applies it.
    Calls ``keep_freed_memory`` (malloc reuses freed memory; the numbers do not change).
    ``timings``, if given, receives the CPU seconds (``time.process_time``) spent in each
    part of the iterations, summed: ``collect``, ``ppo`` (advantages and the PPO epochs) and
    ``belief`` (the belief-model steps); ``benchmarks/bench_metarl_steps.py --parts`` reads it.
    ``progress=True`` shows a progress bar over the PPO iterations.
    """
    keep_freed_memory()
    torch.manual_seed(seed)
    env = make_vec_env(cfg.env, cfg.num_envs, cfg.session_end_prob, cfg.goal_layout)
    agent = build_agent(name, env, cfg)
    model_params = {id(p) for p in agent.model_parameters()}
    rl_params = [p for p in agent.parameters() if id(p) not in model_params]
    rl_opt = _adam(rl_params, lr=cfg.ppo.lr, eps=1e-5)
    model_opt = _adam(agent.model_parameters(), lr=cfg.model_lr) if model_params else None
    generator = torch.Generator().manual_seed(seed)
    env_rng = np.random.default_rng(seed)
    buffer = EpisodeBuffer(cfg.model_buffer) if model_opt is not None else None
    explore = cfg.explore_envs if model_opt is not None else 0
    if not 0 <= explore < cfg.num_envs:
        raise ProvenmlError(f"explore_envs must be in [0, num_envs), got {cfg.explore_envs}")
    num_policy = cfg.num_envs - explore  # PPO learns from envs [0, num_policy), the rest explore
    random_envs = torch.arange(cfg.num_envs) >= num_policy if explore else None
    steps_per_iter = cfg.num_envs * env.horizon
    iterations = max(1, cfg.total_steps // steps_per_iter)
    p = cfg.ppo
    curve_steps, curve_returns, model_losses = [], [], []
    clock_at = time.process_time()

    def lap(part: str) -> None:  # CPU time since the last lap into timings[part]
        nonlocal clock_at
        if timings is not None:
            now = time.process_time()
            timings[part] = timings.get(part, 0.0) + now - clock_at
            clock_at = now

    for it in with_progress(range(iterations), f"training {name}", progress):
        final = p.entropy_coef if p.entropy_final is None else p.entropy_final
        entropy_coef = p.entropy_coef + (final - p.entropy_coef) * it / max(1, iterations - 1)
        # 1. act: one episode in every env
        batch = collect(
            agent, env, generator, seed=int(env_rng.integers(2**31)), random_envs=random_envs
        )
        agent.end_rollout()  # statistics move after the batch: its stored features stay valid
        curve_steps.append((it + 1) * steps_per_iter)
        curve_returns.append(float(batch.rewards[:num_policy].sum(1).mean()))
        if on_iteration is not None:
            on_iteration(curve_steps[-1], curve_returns[-1])
        lap("collect")
        # 2. advantages by GAE on the stored values
        advantages, returns = gae(
            batch.rewards[:num_policy], batch.values[:num_policy], p.gamma, p.gae_lambda
        )
        # 3. PPO epochs over minibatches of whole episodes (keeps recurrence intact)
        per_mb = max(1, num_policy // p.minibatches)
        clock = (torch.arange(env.horizon) / env.horizon)[None, :, None]
        # agents whose features the RL loss does not train: the inputs of every episode once
        fixed_in = (
            None
            if agent.rl_trains_features
            else torch.cat([batch.obs, clock.expand(len(batch.obs), -1, 1), batch.features], -1)
        )
        for _ in range(p.epochs):
            order = torch.randperm(num_policy, generator=generator)
            for start in range(0, num_policy, per_mb):
                envs = order[start : start + per_mb]
                if fixed_in is None:
                    mb = batch.select(envs)
                    features = agent.policy_features(mb)
                    policy_in = torch.cat([mb.obs, clock.expand(len(envs), -1, 1), features], -1)
                else:
                    policy_in = fixed_in[envs]
                adv = advantages[envs]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                rl_opt.zero_grad()
                ppo_minibatch_backward(
                    agent.policy,
                    policy_in,
                    batch.actions[envs],
                    batch.logp[envs],
                    adv,
                    returns[envs],
                    p.clip,
                    p.value_coef,
                    entropy_coef,
                )
                nn.utils.clip_grad_norm_(rl_params, p.max_grad_norm)
                rl_opt.step()
        lap("ppo")
        # 4. belief model (VariBAD / DynaMITE-RL): a few steps on episodes from the buffer
        if buffer is not None:
            buffer.add(batch)
        updates = cfg.model_updates + (cfg.model_pretrain_updates if it == 0 else 0)
        for _ in range(updates if model_opt is not None else 0):
            assert model_opt is not None and buffer is not None
            out = agent.model_loss(buffer.sample(cfg.model_batch, generator), generator)
            assert out is not None
            model_loss, parts = out
            model_opt.zero_grad()
            model_loss.backward()
            nn.utils.clip_grad_norm_(agent.model_parameters(), 1.0)
            model_opt.step()
            model_losses.append(parts)
        lap("belief")
    return TrainResult(agent, curve_steps, curve_returns, model_losses)


# ----------------------------------------------------------------------------------------------
# Evaluation on fixed latent schedules
# ----------------------------------------------------------------------------------------------


def evaluation_options(
    kind: str, episodes: int, session_end_prob: float, seed: int, goal_layout: str = "edge"
) -> dict:
    """A fixed set of episodes (latent switch sequences, goals, starts) to replay for every
    agent: drawn once from ``seed`` by the environment's own sampler."""
    env = make_vec_env(kind, episodes, session_end_prob, goal_layout)
    env.reset(seed=seed)
    if isinstance(env, SessionGridWorldVec):
        return {
            "goals": env.goals.copy(),
            "start": env.pos.copy(),
            "latents": env.latents.copy(),
            "session_end": env.session_end.copy(),
        }
    return {"angles": env.angles.copy(), "session_end": env.session_end.copy(), "start": env.pos}


def first_at_or_after(flags: np.ndarray) -> np.ndarray:
    """``out[n, t]`` = the first index ``>= t`` where ``flags[n]`` is True (horizon if none)."""
    horizon = flags.shape[1]
    idx = np.where(flags, np.arange(horizon), horizon)
    return np.flip(np.minimum.accumulate(np.flip(idx, 1), axis=1), 1)


def steps_to_goal_after_switch(
    rewards: np.ndarray,
    switched: np.ndarray,
    session_start: np.ndarray,
    reached: np.ndarray,
    min_window: int = 8,
) -> tuple[float, float, int]:
    """Steps from a latent switch until the agent first collects the new goal's reward.

    Over switches followed by at least ``min_window`` steps of the new session; a goal not
    found before the session ends counts as the session's length (a lower bound). Returns
    (mean steps, fraction found, number of switches).
    """
    horizon = rewards.shape[1]
    next_reach = first_at_or_after(reached)
    # first session start strictly after t (horizon if none)
    next_start = np.full_like(next_reach, horizon)
    next_start[:, :-1] = first_at_or_after(session_start)[:, 1:]
    env_idx, step_idx = np.nonzero(switched)
    window = next_start[env_idx, step_idx] - step_idx
    keep = window >= min_window
    env_idx, step_idx, window = env_idx[keep], step_idx[keep], window[keep]
    if len(step_idx) == 0:
        return float("nan"), float("nan"), 0
    found_at = next_reach[env_idx, step_idx]
    found = found_at < step_idx + window
    steps = np.where(found, found_at - step_idx + 1, window)
    return float(steps.mean()), float(found.mean()), len(step_idx)


def belief_probe_accuracy(features: np.ndarray, latents: np.ndarray) -> float:
    """How well a linear probe reads the current discrete latent off the policy's features.

    Logistic regression (scikit-learn) fitted on the first half of the episodes, scored on
    the second half; ``features`` (N, H, F) are what the policy saw when acting at each step.
    NaN for agents without features.
    """
    from sklearn.linear_model import LogisticRegression

    if features.shape[-1] == 0 or len(np.unique(latents)) < 2:
        return float("nan")
    half = len(features) // 2
    x = features.reshape(len(features), -1, features.shape[-1])
    train_x, test_x = x[:half].reshape(-1, x.shape[-1]), x[half:].reshape(-1, x.shape[-1])
    train_y, test_y = latents[:half].reshape(-1), latents[half:].reshape(-1)
    probe = LogisticRegression(max_iter=1000).fit(train_x, train_y)
    return float(probe.score(test_x, test_y))


@dataclass
class Evaluation:
    mean_return: float
    returns: np.ndarray
    steps_to_goal: float
    found_fraction: float
    switches: int
    reward_by_step: np.ndarray = field(default_factory=lambda: np.zeros(0))
    belief_accuracy: float = float("nan")


def evaluate(
    agent: Agent, kind: str, options: dict, session_end_prob: float, seed: int
) -> Evaluation:
    """Replay the fixed episodes in ``options`` (one batched env) with the agent's policy."""
    episodes = len(options["session_end"])
    env = make_vec_env(kind, episodes, session_end_prob)
    generator = torch.Generator().manual_seed(seed)
    was_training = agent.training
    agent.eval()  # evaluation rollouts leave the feature statistics alone
    try:
        batch = collect(agent, env, generator, seed=seed, options=options)
    finally:
        agent.train(was_training)
    rewards = batch.rewards.numpy()
    latents = batch.extras["latents"]
    ends = batch.session_end.numpy()
    starts = np.zeros_like(ends)
    starts[:, 1:] = ends[:, :-1]
    accuracy = float("nan")
    if kind == "gridworld":
        switched = starts & (latents != np.roll(latents, 1, axis=1))
        reached = rewards >= 1.0
        accuracy = belief_probe_accuracy(batch.features.numpy(), latents)
    else:
        switched = starts
        reached = rewards >= -0.15
    steps, found, count = steps_to_goal_after_switch(rewards, switched, starts, reached)
    returns = rewards.sum(1)
    return Evaluation(
        float(returns.mean()), returns, steps, found, count, rewards.mean(0), accuracy
    )


def _step_towards(pos: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """Grid action that moves ``pos`` one cell towards ``goal`` (x first, then y; 0 = stay)."""
    dx, dy = (goal - pos).T
    return np.select([dx > 0, dx < 0, dy > 0, dy < 0], [2, 4, 1, 3], default=0)


SCRIPTED_POLICIES = ("walk_to_latent", "sit_nearest", "infer_and_switch")


def scripted_gridworld_rollout(
    options: dict, session_end_prob: float, policy: str
) -> tuple[torch.Tensor, np.ndarray]:
    """Play the hand-written grid-world ``policy`` (see ``scripted_gridworld_returns``) on the
    fixed episodes ``options``. Returns the encoder inputs ``[one_hot(a_t), r_t, s_{t+1}]``
    (N, H, 12), as ``collect`` records them, and the latent in force at each step (N, H):
    enough to score any belief model on the trajectories of a policy that acts on inference.
    """
    if policy not in SCRIPTED_POLICIES:
        raise ProvenmlError(f"unknown policy {policy!r}; choose one of {SCRIPTED_POLICIES}")
    episodes = len(options["session_end"])
    env = SessionGridWorldVec(episodes, session_end_prob=session_end_prob)
    rows = np.arange(episodes)
    env.reset(seed=0, options=options)
    target = np.abs(env.goals - env.pos[:, None]).sum(-1).argmin(1)
    inputs, latents = [], []
    for _ in range(env.horizon):
        if policy == "walk_to_latent":
            target = env.latent
        action = _step_towards(env.pos, env.goals[rows, target])
        obs, reward, _, _, info = env.step(action)
        latents.append(info["latent"])
        inputs.append(
            torch.cat(
                [
                    encode_action(torch.as_tensor(action), 5, True),
                    torch.as_tensor(reward)[:, None],
                    torch.as_tensor(obs),
                ],
                -1,
            )
        )
        if policy == "infer_and_switch":
            on_target = (env.pos == env.goals[rows, target]).all(-1)
            target = np.where(on_target & (reward == 0.0), 1 - target, target)
    return torch.stack(inputs, 1), np.stack(latents, 1)


def scripted_gridworld_returns(options: dict, session_end_prob: float) -> dict[str, float]:
    """Mean return of three hand-written grid-world policies on the fixed episodes ``options``
    (references for reading the agents' returns, not agents):

    * ``walk_to_latent``: walks straight to the paying goal, knowing it (the oracle's optimum);
    * ``sit_nearest``: walks to the nearest goal and stays (the memoryless optimum);
    * ``infer_and_switch``: walks to the nearest goal, stays while paid and walks to the other
      goal when standing on one pays 0 (acts on the 1-bit inference the task asks for).
    """
    out = {}
    for policy in SCRIPTED_POLICIES:
        inputs, _ = scripted_gridworld_rollout(options, session_end_prob, policy)
        out[policy] = float(inputs[..., 5].sum(1).mean())  # rewards sit after the 5 actions
    return out
