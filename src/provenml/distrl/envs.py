"""Vectorised multi-team environments for the rollout workers, found by name.

A :class:`TeamVecEnv` steps ``num_envs`` copies of a PettingZoo-style game whose agents form
teams (a team is what one player controls: ``red`` / ``blue`` in the wargame, ``adversary``
/ ``agent`` in mpe2's ``simple_tag_v3``). Everything is an array per team:

* ``reset() -> {team: obs (N, A, D)}``;
* ``step({team: actions (N, A)}) -> TeamStep``: the next observations (finished copies are
  already reset), rewards (N, A), ``active`` (N, A: the agent acted this step), ``agent_done``
  (N, A: the agent's trajectory ended after this step), ``terminated`` / ``truncated`` (N,),
  the final observations of truncated copies (for bootstrapping) and the outcomes.

Registered envs (:data:`ENVS`): ``wargame`` (the numpy batch, one op for all copies),
``simple_tag`` and ``simple_adversary`` (mpe2's parallel envs, one Python object per copy,
exactly what RLlib's PettingZoo wrapper steps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from provenml.core.registry import Registry
from provenml.distrl.wargame import SIDES, WargameBatch, WargameConfig
from provenml.errors import ProvenmlError

__all__ = ["ENVS", "TeamSpec", "TeamStep", "TeamVecEnv", "make_env"]


@dataclass(frozen=True)
class TeamSpec:
    """One team: its agents (names in the PettingZoo env), observation size, action count."""

    agents: tuple[str, ...]
    obs_dim: int
    num_actions: int


@dataclass
class TeamStep:
    obs: dict[str, np.ndarray]
    rewards: dict[str, np.ndarray]
    active: dict[str, np.ndarray]
    agent_done: dict[str, np.ndarray]
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: dict[str, np.ndarray]  # observations before the reset (valid where truncated)
    outcome: np.ndarray | None = None  # wargame: +1 first team won, -1 lost, 0 draw
    info: dict[str, Any] = field(default_factory=dict)


class TeamVecEnv:
    """Base of the vectorised team envs (see the module docstring)."""

    teams: dict[str, TeamSpec]
    num_envs: int
    zero_sum = False

    def reset(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def step(self, actions: dict[str, np.ndarray]) -> TeamStep:
        raise NotImplementedError


ENVS = Registry[Callable[..., TeamVecEnv]]("env")


@ENVS.register("wargame")
class WargameVecEnv(TeamVecEnv):
    """The numpy wargame batch as teams ``red`` and ``blue`` (auto-reset of finished copies)."""

    zero_sum = True

    def __init__(self, num_envs: int, seed: int = 0, **config: Any) -> None:
        self.core = WargameBatch(num_envs, WargameConfig(**config), seeds=seed)
        self.num_envs = num_envs
        k = self.core.units
        self.teams = {
            s: TeamSpec(
                tuple(f"{s}_{i}" for i in range(k)), self.core.obs_dim, self.core.num_actions
            )
            for s in SIDES
        }

    def reset(self) -> dict[str, np.ndarray]:
        obs = self.core.reset()
        return {s: obs[:, i] for i, s in enumerate(SIDES)}

    def step(self, actions: dict[str, np.ndarray]) -> TeamStep:
        active = self.core.alive()
        joint = np.stack([actions[s] for s in SIDES], 1)
        obs, reward, terminated, truncated, outcome = self.core.step(joint)
        alive_after = self.core.alive()
        done = terminated | truncated
        final = {s: obs[:, i] for i, s in enumerate(SIDES)}
        index = np.flatnonzero(done)
        if len(index):
            self.core.reset_envs(index)
            obs = obs.copy()
            obs[index] = self.core.observe()[index]
        k = self.core.units
        return TeamStep(
            obs={s: obs[:, i] for i, s in enumerate(SIDES)},
            rewards={s: np.repeat(reward[:, i : i + 1], k, 1) for i, s in enumerate(SIDES)},
            active={s: active[:, i] for i, s in enumerate(SIDES)},
            agent_done={
                s: done[:, None] | (active[:, i] & ~alive_after[:, i]) for i, s in enumerate(SIDES)
            },
            terminated=terminated,
            truncated=truncated,
            final_obs=final,
            outcome=outcome,
        )


class PettingZooVecEnv(TeamVecEnv):
    """``num_envs`` PettingZoo parallel envs stepped one after the other, agents grouped into
    teams by ``team_of(agent name)``. Assumes every agent lives for the whole episode (true
    of the mpe2 games)."""

    def __init__(
        self,
        make: Callable[[], Any],
        num_envs: int,
        seed: int,
        team_of: Callable[[str], str],
    ) -> None:
        self.envs = [make() for _ in range(num_envs)]
        self.num_envs = num_envs
        self.seed = seed
        self._episodes = 0
        env = self.envs[0]
        groups: dict[str, list[str]] = {}
        for agent in env.possible_agents:
            groups.setdefault(team_of(agent), []).append(agent)
        self.teams = {}
        for team, agents in groups.items():
            dims = {env.observation_space(a).shape[0] for a in agents}
            if len(dims) != 1:
                raise ProvenmlError(f"team {team!r} mixes observation sizes {dims}")
            self.teams[team] = TeamSpec(
                tuple(agents), dims.pop(), int(env.action_space(agents[0]).n)
            )

    def _reset_one(self, i: int) -> dict[str, np.ndarray]:
        obs, _ = self.envs[i].reset(seed=self.seed * 1_000_003 + self._episodes)
        self._episodes += 1
        return obs

    def _stack(self, per_env: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {
            team: np.array([[o[a] for a in spec.agents] for o in per_env], dtype=np.float32)
            for team, spec in self.teams.items()
        }

    def reset(self) -> dict[str, np.ndarray]:
        return self._stack([self._reset_one(i) for i in range(self.num_envs)])

    def step(self, actions: dict[str, np.ndarray]) -> TeamStep:
        n = self.num_envs
        next_obs, final_obs = [], []
        rewards = {t: np.zeros((n, len(s.agents))) for t, s in self.teams.items()}
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        for i, env in enumerate(self.envs):
            joint = {
                a: int(actions[t][i, j])
                for t, s in self.teams.items()
                for j, a in enumerate(s.agents)
            }
            obs, rew, term, trunc, _ = env.step(joint)
            for t, s in self.teams.items():
                rewards[t][i] = [rew[a] for a in s.agents]
            terminated[i] = any(term.values())
            truncated[i] = not terminated[i] and any(trunc.values())
            final_obs.append(obs)
            next_obs.append(self._reset_one(i) if terminated[i] or truncated[i] else obs)
        done = terminated | truncated
        ones = {t: np.ones((n, len(s.agents)), dtype=bool) for t, s in self.teams.items()}
        return TeamStep(
            obs=self._stack(next_obs),
            rewards=rewards,
            active=ones,
            agent_done={
                t: np.repeat(done[:, None], len(s.agents), 1) for t, s in self.teams.items()
            },
            terminated=terminated,
            truncated=truncated,
            final_obs=self._stack(final_obs),
        )


def _mpe_team(agent: str) -> str:
    return agent.rpartition("_")[0]


@ENVS.register("simple_tag")
def simple_tag(num_envs: int, seed: int = 0, max_cycles: int = 25) -> TeamVecEnv:
    """mpe2 ``simple_tag_v3`` (3 adversaries chase 1 agent around 2 obstacles), discrete."""
    from mpe2 import simple_tag_v3

    return PettingZooVecEnv(
        lambda: simple_tag_v3.parallel_env(max_cycles=max_cycles), num_envs, seed, _mpe_team
    )


@ENVS.register("simple_adversary")
def simple_adversary(num_envs: int, seed: int = 0, max_cycles: int = 25) -> TeamVecEnv:
    """mpe2 ``simple_adversary_v3`` (1 adversary, 2 good agents, 2 landmarks), discrete."""
    from mpe2 import simple_adversary_v3

    return PettingZooVecEnv(
        lambda: simple_adversary_v3.parallel_env(max_cycles=max_cycles), num_envs, seed, _mpe_team
    )


def make_env(name: str, num_envs: int, seed: int = 0, **kwargs: Any) -> TeamVecEnv:
    """Build the registered env ``name`` (an unknown name is a :class:`ProvenmlError`)."""
    if num_envs < 1:
        raise ProvenmlError(f"num_envs must be >= 1, got {num_envs}")
    return ENVS.build(name, num_envs, seed=seed, **kwargs)
