"""A base for batched environments stepped as numpy array operations, and a single-env view.

:class:`FixedHorizonVectorEnv` is a ``gymnasium.vector.VectorEnv`` whose ``num_envs`` copies
share one horizon: they start and end their episodes together and never auto-reset (call
``reset()`` after the truncation step). A subclass sets its single spaces through the base's
constructor and writes ``reset`` / ``step`` as array operations over all copies, drawing every
random number from ``self._rng``; the base holds the step counter, the seeding and the
"episode is over" check. :class:`SingleEnvView` turns such an env with ``num_envs=1`` into a
plain ``gymnasium.Env`` (gymnasium has the opposite adapter, not this one).

    class MyVecEnv(FixedHorizonVectorEnv):
        def __init__(self, num_envs: int = 16) -> None:
            super().__init__(num_envs, 50, spaces.Box(-1, 1, (3,)), spaces.Discrete(2))

        def reset(self, *, seed=None, options=None):
            self._begin_reset(seed)
            ...  # draw the episode from self._rng
            self._t = 0
            return obs, info

        def step(self, actions):
            t = self._begin_step()
            ...
            return obs, reward, terminated, self._end_step(), info
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space

from provenml.errors import ProvenmlError

__all__ = ["FixedHorizonVectorEnv", "SingleEnvView"]


class FixedHorizonVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` copies of an environment with a shared ``horizon``, without auto-reset.

    Attributes for subclasses: ``_rng`` (the env's ``numpy`` generator; ``reset(seed=s)``
    replaces it by ``default_rng(s)``) and ``_t`` (the step index within the episode; equal to
    ``horizon`` before the first reset and after the last step).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        num_envs: int,
        horizon: int,
        single_observation_space: gym.Space,
        single_action_space: gym.Space,
    ) -> None:
        if num_envs < 1 or horizon < 1:
            raise ProvenmlError(
                f"need num_envs >= 1 and horizon >= 1, got {num_envs} and {horizon}"
            )
        self.num_envs, self.horizon = num_envs, horizon
        self.single_observation_space = single_observation_space
        self.single_action_space = single_action_space
        self.observation_space = batch_space(single_observation_space, num_envs)
        self.action_space = batch_space(single_action_space, num_envs)
        self._rng = np.random.default_rng()
        self._t = horizon  # must reset first
        self._was_reset = False

    @property
    def was_reset(self) -> bool:
        """Whether ``reset`` has been called at least once."""
        return self._was_reset

    def _begin_reset(self, seed: int | None) -> None:
        """Start of ``reset``: reseed ``_rng`` when ``seed`` is given."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._was_reset = True

    def _begin_step(self) -> int:
        """Start of ``step``: the current step index; refuses a step after the horizon."""
        if self._t >= self.horizon:
            raise ProvenmlError(
                "episode is over: call reset() (the batched env does not auto-reset)"
            )
        return self._t

    def _end_step(self) -> np.ndarray:
        """End of ``step``: advance the step counter; the ``truncated`` flags of all copies."""
        self._t += 1
        return np.full(self.num_envs, self._t >= self.horizon)


class SingleEnvView(gym.Env):
    """A plain ``gymnasium.Env`` over a :class:`FixedHorizonVectorEnv` with ``num_envs=1``.

    Seeding follows gymnasium: ``reset(seed=s)`` seeds ``self.np_random`` and the batched env
    draws from that same generator (also on the first reset without a seed), so one seed gives
    one stream of episodes. Observations, rewards and ``info`` values lose the batch axis;
    override :meth:`_unbatch_info` to convert ``info`` values further.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}
    vec: FixedHorizonVectorEnv

    def __init__(self, vec: FixedHorizonVectorEnv) -> None:
        if vec.num_envs != 1:
            raise ProvenmlError(f"SingleEnvView needs num_envs=1, got {vec.num_envs}")
        self.vec = vec
        self.observation_space = vec.single_observation_space
        self.action_space = vec.single_action_space

    def _unbatch_info(self, info: dict[str, Any]) -> dict[str, Any]:
        return {k: v[0] for k, v in info.items()}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None or not self.vec.was_reset:
            self.vec._rng = self.np_random  # one generator, seeded by gymnasium
        obs, info = self.vec.reset(options=options)
        return obs[0], self._unbatch_info(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.vec.step(np.asarray(action)[None])
        return (
            obs[0],
            float(reward[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            self._unbatch_info(info),
        )
