"""Session-based environments of DynaMITE-RL (Liang et al. 2024, Sec. 3 and 5.1).

A *session* is a stretch of an episode in which the latent (which goal pays, where the target
is) stays fixed. At every step the session ends with probability ``p`` and a new latent is
drawn from a transition matrix (the paper's DLCMDP, Def. 3.1). Session boundaries are never
part of the observation: ``info`` carries them, with the true latent, for analysis and for the
training-time losses that the paper allows to use them.

Every environment comes twice:

* a batched ``gymnasium.vector.VectorEnv`` (``SessionGridWorldVec``, ``SessionReacherVec``)
  that steps ``num_envs`` copies as one numpy array operation (no Python loop over copies);
* a single-env ``gymnasium.Env`` (``SessionGridWorld``, ``SessionReacher``), a thin view of the
  batched one with ``num_envs=1``, which passes ``gymnasium.utils.env_checker.check_env``.

All copies of a batch share the horizon, so they start and end their episodes together: the
batched envs do not auto-reset; call ``reset()`` after the truncation step. The whole latent
schedule of an episode is drawn at ``reset`` (``sample_session_schedule``), so an evaluation
can replay the same fixed switch sequences for every agent through ``reset(options=...)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from provenml.errors import ProvenmlError
from provenml.rl import FixedHorizonVectorEnv, SingleEnvView

GRID_SWITCH_MATRIX = ((0.2, 0.8), (0.8, 0.2))
GOAL_LAYOUTS = ("edge", "diagonal", "random")
# stay, up, right, down, left
_MOVES = np.array([[0, 0], [0, 1], [1, 0], [0, -1], [-1, 0]], dtype=np.int64)


def sample_session_schedule(
    rng: np.random.Generator,
    num_envs: int,
    horizon: int,
    session_end_prob: float,
    switch_matrix: np.ndarray,
    initial: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the discrete latent of every step and the session-end flags (DLCMDP, Def. 3.1).

    Returns ``latents`` (num_envs, horizon): the latent in force at step t, and ``session_end``
    (num_envs, horizon): whether the session ends after step t, in which case the latent of
    step t+1 is drawn from ``switch_matrix[latents[:, t]]``. Vectorised over environments; the
    only loop is over time, because each latent depends on the previous one.
    """
    matrix = np.asarray(switch_matrix, dtype=np.float64)
    k = matrix.shape[0]
    if initial is None:
        initial = rng.integers(0, k, size=num_envs)
    latents = np.empty((num_envs, horizon), dtype=np.int64)
    session_end = rng.random((num_envs, horizon)) < session_end_prob
    cumulative = np.cumsum(matrix, axis=1)
    uniforms = rng.random((num_envs, horizon))
    latents[:, 0] = initial
    for t in range(1, horizon):
        prev = latents[:, t - 1]
        drawn = (uniforms[:, t, None] > cumulative[prev]).sum(axis=1).clip(max=k - 1)
        latents[:, t] = np.where(session_end[:, t - 1], drawn, prev)
    return latents, session_end


def _check_prob(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ProvenmlError(f"session_end_prob must be in [0, 1], got {p}")


class SessionGridWorldVec(FixedHorizonVectorEnv):
    """``num_envs`` 5x5 grid worlds with two observed goals of which one, hidden, pays.

    Reward: +1 on the paying goal, 0 on the other goal, -0.1 elsewhere; goals are not terminal.
    Observation (float32): agent (x, y) in [0, 1] and the offsets goal 0 - agent and
    goal 1 - agent in [-1, 1], all divided by ``size - 1`` (the goals' positions are observed).
    Actions: 0 stay, 1 up, 2 right, 3 down, 4 left (walls clip the move).
    The paying goal (latent in {0, 1}) switches between sessions by ``switch_matrix``.
    ``goal_layout`` places the goals: ``"edge"`` (default) in the two corners of one edge,
    (0, 0) and (size-1, 0), 4 steps apart on 5x5; ``"diagonal"`` in opposite corners, (0, 0)
    and (size-1, size-1), 8 steps apart; ``"random"``: two distinct cells drawn anew each
    episode (a harder task for PPO: the policy must learn to select between two goal offsets).
    The layout sets how much inference is worth: on the diagonal a walk between the goals
    costs 8 steps, so a policy that infers the paying goal gains little over one that sits on
    a goal (see ``docs/metarl.md``).
    ``info``: ``latent`` (the latent that produced this step's reward), ``next_latent``,
    ``session_end`` (the session ended after this step), never part of the observation.
    """

    def __init__(
        self,
        num_envs: int = 16,
        *,
        size: int = 5,
        horizon: int = 60,
        session_end_prob: float = 0.07,
        switch_matrix: tuple[tuple[float, float], ...] = GRID_SWITCH_MATRIX,
        goal_layout: str = "edge",
    ) -> None:
        _check_prob(session_end_prob)
        if goal_layout not in GOAL_LAYOUTS:
            raise ProvenmlError(
                f"unknown goal_layout {goal_layout!r}; choose one of {', '.join(GOAL_LAYOUTS)}"
            )
        self.goal_layout = goal_layout
        if size < 2 or horizon < 1 or num_envs < 1:
            raise ProvenmlError("need size >= 2, horizon >= 1 and num_envs >= 1")
        low = np.array([0, 0, -1, -1, -1, -1], dtype=np.float32)
        observations = spaces.Box(low, 1.0, shape=(6,), dtype=np.float32)
        super().__init__(num_envs, horizon, observations, spaces.Discrete(5))
        self.size, self.session_end_prob = size, session_end_prob
        self.switch_matrix = np.asarray(switch_matrix, dtype=np.float64)
        self.num_latents = 2

    def _obs(self) -> np.ndarray:
        offsets = (self.goals - self.pos[:, None, :]).reshape(self.num_envs, 4)
        cells = np.concatenate([self.pos, offsets], axis=1)
        return (cells / (self.size - 1)).astype(np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode in every copy. ``options`` may fix ``latents``/``session_end``
        (num_envs, horizon), ``goals`` (num_envs, 2, 2) and ``start`` (num_envs, 2)."""
        self._begin_reset(seed)
        options = options or {}
        n, cells = self.num_envs, self.size * self.size
        # two distinct goal cells and a start cell, drawn without replacement per copy
        order = np.argsort(self._rng.random((n, cells)), axis=1)[:, :3]
        xy = np.stack([order // self.size, order % self.size], axis=-1)
        if self.goal_layout != "random":  # fixed goal cells, start on any other cell
            last = self.size - 1
            other = [last, last] if self.goal_layout == "diagonal" else [last, 0]
            corners = np.array([[0, 0], other])
            xy[:, :2] = corners
            index = corners[:, 0] * self.size + corners[:, 1]
            free = np.setdiff1d(np.arange(cells), index)
            pick = free[self._rng.integers(0, len(free), size=n)]
            xy[:, 2] = np.stack([pick // self.size, pick % self.size], axis=-1)
        self.goals = np.asarray(options.get("goals", xy[:, :2]), dtype=np.int64).copy()
        self.pos = np.asarray(options.get("start", xy[:, 2]), dtype=np.int64).copy()
        if "latents" in options:
            self.latents = np.asarray(options["latents"], dtype=np.int64)
            self.session_end = np.asarray(options["session_end"], dtype=bool)
        else:
            self.latents, self.session_end = sample_session_schedule(
                self._rng, n, self.horizon, self.session_end_prob, self.switch_matrix
            )
        if self.latents.shape != (n, self.horizon) or self.goals.shape != (n, 2, 2):
            raise ProvenmlError("reset options have the wrong shape for this batch of envs")
        self._t = 0
        return self._obs(), {"latent": self.latents[:, 0].copy()}

    @property
    def latent(self) -> np.ndarray:
        """The latent in force for the next action (what an oracle may see)."""
        return self.latents[:, min(self._t, self.horizon - 1)]

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        t = self._begin_step()
        moves = _MOVES[np.asarray(actions, dtype=np.int64).reshape(self.num_envs)]
        self.pos = np.clip(self.pos + moves, 0, self.size - 1)
        latent = self.latents[:, t]
        at_goal = (self.pos[:, None, :] == self.goals).all(axis=-1)  # (n, 2)
        at_paying = at_goal[np.arange(self.num_envs), latent]
        reward = np.where(at_paying, 1.0, np.where(at_goal.any(axis=1), 0.0, -0.1))
        truncated = self._end_step()
        info = {
            "latent": latent.copy(),
            "next_latent": self.latents[:, min(self._t, self.horizon - 1)].copy(),
            "session_end": self.session_end[:, t].copy(),
        }
        terminated = np.zeros(self.num_envs, dtype=bool)
        return self._obs(), reward.astype(np.float32), terminated, truncated, info


class SessionReacherVec(FixedHorizonVectorEnv):
    """``num_envs`` 2D point masses that must reach a hidden target which moves between sessions.

    State: position in [-1, 1]^2 and velocity; action: a force in [-1, 1]^2;
    ``vel <- 0.7 vel + 0.15 a``, ``pos <- clip(pos + vel)``. The latent is the target's angle on
    a circle of radius 0.7, redrawn uniformly when a session ends. Reward: minus the distance to
    the target. Observation (float32): position and velocity.
    """

    def __init__(
        self,
        num_envs: int = 16,
        *,
        horizon: int = 60,
        session_end_prob: float = 0.07,
        radius: float = 0.7,
    ) -> None:
        _check_prob(session_end_prob)
        super().__init__(
            num_envs,
            horizon,
            spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32),
            spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32),
        )
        self.session_end_prob = session_end_prob
        self.radius = radius
        self.num_latents = 0  # continuous latent

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.pos, self.vel], axis=1).astype(np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode; ``options`` may fix ``angles``/``session_end`` (num_envs, horizon)
        and ``start`` (num_envs, 2)."""
        self._begin_reset(seed)
        options = options or {}
        n, h = self.num_envs, self.horizon
        if "angles" in options:
            self.angles = np.asarray(options["angles"], dtype=np.float64)
            self.session_end = np.asarray(options["session_end"], dtype=bool)
        else:
            self.session_end = self._rng.random((n, h)) < self.session_end_prob
            fresh = self._rng.uniform(0.0, 2 * np.pi, size=(n, h))
            # the angle of step t is the one drawn at the latest session start <= t
            starts = np.concatenate([np.ones((n, 1), bool), self.session_end[:, :-1]], axis=1)
            last_start = np.maximum.accumulate(np.where(starts, np.arange(h), 0), axis=1)
            self.angles = np.take_along_axis(fresh, last_start, axis=1)
        start = self._rng.uniform(-0.2, 0.2, size=(n, 2))
        self.pos = np.asarray(options.get("start", start), dtype=np.float64).copy()
        self.vel = np.zeros((n, 2))
        self._t = 0
        return self._obs(), {"latent": self.targets(0)}

    def targets(self, t: int) -> np.ndarray:
        """Target positions (num_envs, 2) at step t."""
        angle = self.angles[:, min(t, self.horizon - 1)]
        return self.radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)

    @property
    def latent(self) -> np.ndarray:
        """The target in force for the next action (what an oracle may see)."""
        return self.targets(self._t)

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        t = self._begin_step()
        force = np.clip(np.asarray(actions, dtype=np.float64).reshape(self.num_envs, 2), -1, 1)
        self.vel = 0.7 * self.vel + 0.15 * force
        self.pos = np.clip(self.pos + self.vel, -1.0, 1.0)
        target = self.targets(t)
        reward = -np.linalg.norm(self.pos - target, axis=1)
        truncated = self._end_step()
        info = {
            "latent": target,
            "next_latent": self.targets(self._t),
            "session_end": self.session_end[:, t].copy(),
        }
        terminated = np.zeros(self.num_envs, dtype=bool)
        return self._obs(), reward.astype(np.float32), terminated, truncated, info


class _SessionView(SingleEnvView):
    """A single session env: ``info["session_end"]`` as a plain ``bool``."""

    def _unbatch_info(self, info: dict[str, Any]) -> dict[str, Any]:
        info = super()._unbatch_info(info)
        if "session_end" in info:
            info["session_end"] = bool(info["session_end"])
        return info


class SessionGridWorld(_SessionView):
    """One ``SessionGridWorldVec`` as a plain ``gymnasium.Env`` (same arguments)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(SessionGridWorldVec(1, **kwargs))


class SessionReacher(_SessionView):
    """One ``SessionReacherVec`` as a plain ``gymnasium.Env`` (same arguments)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(SessionReacherVec(1, **kwargs))
