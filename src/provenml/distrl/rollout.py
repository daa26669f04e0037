"""Rollout workers: vectorised envs, one batched policy forward per team per step.

A :class:`RolloutWorker` owns ``num_envs`` copies of one env (:mod:`provenml.distrl.envs`)
and continues their episodes across calls. ``sample(team_weights, version)`` loads the given
weights, steps every copy ``fragment`` times and returns, for each team a learner controls,
one fragment of numpy arrays (T = fragment, N = copies, A = the team's agents):

``obs`` (T, N, A, D) float32, ``actions`` / ``logp`` / ``values`` / ``rewards`` / ``dones`` /
``active`` (T, N, A), ``last_values`` (N, A), plus ``version`` (the weights' version). A
truncated episode's ``gamma V(final observation)`` is added to its last reward.

The same class runs in the driver (single-process mode) or as a Ray actor: Ray wraps it with
``ray.remote(...)``; it never imports ray itself.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from provenml.distrl.envs import make_env
from provenml.distrl.learner import NumpyTeamPolicy
from provenml.distrl.scripted import SCRIPTED
from provenml.errors import ProvenmlError

__all__ = ["RolloutWorker", "parse_controller"]


def parse_controller(spec: str) -> tuple[str, str]:
    """``"learner:red"`` -> ``("learner", "red")``; kinds: learner, snapshot, scripted."""
    kind, _, name = spec.partition(":")
    if kind not in ("learner", "snapshot", "scripted") or not name:
        raise ProvenmlError(
            f"controller {spec!r} must be 'learner:<player>', 'snapshot:<player>' or "
            "'scripted:<policy>'"
        )
    return kind, name


class RolloutWorker:
    """Collects fragments from ``num_envs`` env copies (see the module docstring)."""

    def __init__(
        self,
        env: str,
        num_envs: int,
        fragment: int,
        controllers: Mapping[str, str],
        seed: int = 0,
        hidden: int = 64,
        gamma: float = 0.99,
        env_kwargs: Mapping[str, Any] | None = None,
        threads: int | None = 1,
    ) -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        if fragment < 1:
            raise ProvenmlError(f"fragment must be >= 1, got {fragment}")
        self.env = make_env(env, num_envs, seed=seed, **dict(env_kwargs or {}))
        unknown = set(controllers) - set(self.env.teams)
        missing = set(self.env.teams) - set(controllers)
        if unknown or missing:
            raise ProvenmlError(
                f"controllers must name each team of {env!r} ({sorted(self.env.teams)}); "
                f"unknown {sorted(unknown)}, missing {sorted(missing)}"
            )
        self.controllers = {team: parse_controller(c) for team, c in controllers.items()}
        for kind, name in self.controllers.values():
            if kind == "scripted":
                if env != "wargame":
                    raise ProvenmlError("scripted controllers exist for the wargame only")
                SCRIPTED.get(name)
        self.fragment = fragment
        self.gamma = gamma
        self.policies = {
            team: NumpyTeamPolicy(len(spec.agents))
            for team, spec in self.env.teams.items()
            if self.controllers[team][0] != "scripted"
        }
        self.reseed(seed)
        self.obs = self.env.reset()
        self.episode_return = {t: np.zeros(self.env.num_envs) for t in self.env.teams}
        self.samples = 0

    def reseed(self, seed: int) -> None:
        """New random streams for action sampling (a restarted actor must not replay the
        trajectories its previous incarnation already delivered)."""
        self.seed = seed
        self.action_rng = np.random.default_rng([seed, 1])
        self.rng = np.random.default_rng(seed)
        if hasattr(self.env, "core"):
            self.env.core.seed(seed + 7919)

    def _act(self, team: str, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.policies[team].act(obs, self.action_rng)

    def _values(self, team: str, obs: np.ndarray) -> np.ndarray:
        return self.policies[team].forward(obs)[1].astype(np.float32)

    def sample(
        self, team_weights: Mapping[str, Mapping[str, np.ndarray]], version: int = 0
    ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
        """Load the weights of the non-scripted teams, collect one fragment; returns the
        learning teams' fragments and statistics (steps, seconds, finished episodes)."""
        start = time.perf_counter()
        for team, policy in self.policies.items():
            if team not in team_weights:
                raise ProvenmlError(f"no weights given for team {team!r}")
            policy.load(team_weights[team])
        learning = [t for t, (kind, _) in self.controllers.items() if kind == "learner"]
        horizon, n = self.fragment, self.env.num_envs
        buffers: dict[str, dict[str, list[np.ndarray]]] = {t: {} for t in learning}
        outcomes: list[int] = []
        returns: dict[str, list[float]] = {t: [] for t in self.env.teams}
        env_seconds = infer_seconds = 0.0
        agent_steps = 0
        for _ in range(horizon):
            t0 = time.perf_counter()
            actions, logps, values = {}, {}, {}
            for team, (kind, name) in self.controllers.items():
                if kind == "scripted":
                    core = self.env.core  # type: ignore[attr-defined]
                    side = list(self.env.teams).index(team)
                    actions[team] = SCRIPTED.get(name)(core, side, self.rng)
                else:
                    actions[team], logps[team], values[team] = self._act(team, self.obs[team])
            t1 = time.perf_counter()
            step = self.env.step(actions)
            t2 = time.perf_counter()
            truncated = np.flatnonzero(step.truncated)
            for team in learning:
                rewards = step.rewards[team].astype(np.float32)
                if len(truncated):
                    final = self._values(team, step.final_obs[team][truncated])
                    rewards[truncated] += self.gamma * final * step.active[team][truncated]
                buf = buffers[team]
                for key, value in (
                    ("obs", self.obs[team]),
                    ("actions", actions[team]),
                    ("logp", logps[team]),
                    ("values", values[team]),
                    ("rewards", rewards),
                    ("dones", step.agent_done[team]),
                    ("active", step.active[team]),
                ):
                    buf.setdefault(key, []).append(value)
                agent_steps += int(step.active[team].sum())
            done = step.terminated | step.truncated
            for team in self.env.teams:
                self.episode_return[team] += step.rewards[team].mean(1)
                returns[team].extend(self.episode_return[team][done].tolist())
                self.episode_return[team][done] = 0.0
            if step.outcome is not None:
                outcomes.extend(step.outcome[done].tolist())
            self.obs = step.obs
            t3 = time.perf_counter()
            infer_seconds += t1 - t0 + (t3 - t2)
            env_seconds += t2 - t1
        fragments: dict[str, dict[str, np.ndarray]] = {}
        for team in learning:
            frag = {k: np.stack(v) for k, v in buffers[team].items()}
            frag["last_values"] = self._values(team, self.obs[team])
            frag["version"] = np.array(version)
            fragments[team] = frag
        stats = {
            "env_steps": horizon * n,
            "agent_steps": agent_steps,
            "seconds": time.perf_counter() - start,
            "env_seconds": env_seconds,
            "inference_seconds": infer_seconds,
            "outcomes": outcomes,
            "returns": returns,
            "version": version,
            "fragment_id": f"{self.seed}/{self.samples}",
        }
        self.samples += 1
        return fragments, stats

    def ping(self) -> int:
        return self.samples
