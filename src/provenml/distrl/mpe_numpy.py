"""mpe2's ``simple_tag_v3`` as array operations over N copies (same rules, same numbers).

A port of mpe2's ``World.step`` (action forces, soft-contact collision forces between every
pair of entities, damped integration with a speed cap) and of the ``simple_tag`` scenario's
reset, rewards and observations, for the default game (3 adversaries, 1 good agent, 2
obstacles, discrete actions, 25 steps). Copy ``i`` draws its reset from gymnasium's
``np_random(seed_i)`` exactly as ``simple_tag_v3.parallel_env().reset(seed=seed_i)`` does, so a
batch reproduces N mpe2 envs step for step (tested to 1e-6). It is registered as
``simple_tag_np``; ``simple_tag`` steps mpe2's own objects.
"""

from __future__ import annotations

import numpy as np
from gymnasium.utils import seeding

from provenml.distrl.envs import ENVS, TeamSpec, TeamStep, TeamVecEnv

__all__ = ["SimpleTagNumpy"]

NUM_ADV, NUM_GOOD, NUM_OBST = 3, 1, 2
NUM_AGENTS = NUM_ADV + NUM_GOOD
SIZE = np.array([0.075] * NUM_ADV + [0.05] * NUM_GOOD + [0.2] * NUM_OBST)
ACCEL = np.array([3.0] * NUM_ADV + [4.0] * NUM_GOOD)
MAX_SPEED = np.array([1.0] * NUM_ADV + [1.3] * NUM_GOOD)
DT, DAMPING, CONTACT_FORCE, CONTACT_MARGIN = 0.1, 0.25, 1e2, 1e-3
# discrete action -> unit direction (mpe2 SimpleEnv._set_action)
DIRECTIONS = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.float64)


def _bound_penalty(x: np.ndarray) -> np.ndarray:
    """simple_tag's penalty for leaving the screen, per coordinate ``x = |p|``."""
    return np.where(
        x < 0.9, 0.0, np.where(x < 1.0, (x - 0.9) * 10, np.minimum(np.exp(2 * x - 2), 10))
    )


@ENVS.register("simple_tag_np")
class SimpleTagNumpy(TeamVecEnv):
    """N copies of ``simple_tag_v3`` (teams ``adversary`` and ``agent``), auto-resetting."""

    def __init__(self, num_envs: int, seed: int = 0, max_cycles: int = 25) -> None:
        self.num_envs = num_envs
        self.max_cycles = max_cycles
        self.seed = seed
        self._episodes = 0
        self.teams = {
            "adversary": TeamSpec(tuple(f"adversary_{i}" for i in range(NUM_ADV)), 16, 5),
            "agent": TeamSpec(tuple(f"agent_{i}" for i in range(NUM_GOOD)), 14, 5),
        }
        self.pos = np.zeros((num_envs, NUM_AGENTS + NUM_OBST, 2))
        self.vel = np.zeros((num_envs, NUM_AGENTS, 2))
        self.t = np.zeros(num_envs, dtype=np.int64)
        i, j = np.triu_indices(NUM_AGENTS + NUM_OBST, 1)
        self._pairs = (i, j)
        self._dist_min = SIZE[i] + SIZE[j]

    # ---------------------------------------------------------------- reset
    def reset_envs(self, index: np.ndarray, seeds: list[int] | None = None) -> None:
        """New episodes in copies ``index``; each draws from ``np_random(seed)`` like mpe2."""
        for n, i in enumerate(np.asarray(index).tolist()):
            if seeds is not None:
                seed = seeds[n]
            else:
                seed = self.seed * 1_000_003 + self._episodes
                self._episodes += 1
            rng, _ = seeding.np_random(seed)
            for a in range(NUM_AGENTS):
                self.pos[i, a] = rng.uniform(-1, +1, 2)
            for b in range(NUM_OBST):
                self.pos[i, NUM_AGENTS + b] = rng.uniform(-0.9, +0.9, 2)
            self.vel[i] = 0.0
            self.t[i] = 0

    def reset(self) -> dict[str, np.ndarray]:
        self.reset_envs(np.arange(self.num_envs))
        return self.observe()

    # ---------------------------------------------------------------- observations
    def observe(self) -> dict[str, np.ndarray]:
        """Per agent: own velocity, own position, obstacles relative, other agents relative
        (world order), then the velocities of the other good agents."""
        agents = self.pos[:, :NUM_AGENTS]
        landmarks = self.pos[:, NUM_AGENTS:]
        obs = []
        for a in range(NUM_AGENTS):
            others = [o for o in range(NUM_AGENTS) if o != a]
            good_others = [o for o in others if o >= NUM_ADV]
            parts = [
                self.vel[:, a],
                agents[:, a],
                *(landmarks[:, b] - agents[:, a] for b in range(NUM_OBST)),
                *(agents[:, o] - agents[:, a] for o in others),
                *(self.vel[:, o] for o in good_others),
            ]
            obs.append(np.concatenate(parts, -1))
        return {
            "adversary": np.stack(obs[:NUM_ADV], 1).astype(np.float32),
            "agent": np.stack(obs[NUM_ADV:], 1).astype(np.float32),
        }

    # ---------------------------------------------------------------- dynamics
    def _world_step(self, actions: np.ndarray) -> None:
        """mpe2 ``World.step``: forces, then ``p += v dt; v = v (1 - damping) + F dt`` with
        the speed capped (mass 1)."""
        force = np.zeros_like(self.pos)
        force[:, :NUM_AGENTS] = DIRECTIONS[actions] * ACCEL[None, :, None]
        i, j = self._pairs
        delta = self.pos[:, i] - self.pos[:, j]  # (N, pairs, 2)
        dist = np.sqrt((delta**2).sum(-1))
        penetration = np.logaddexp(0, -(dist - self._dist_min) / CONTACT_MARGIN) * CONTACT_MARGIN
        pair_force = CONTACT_FORCE * delta / dist[..., None] * penetration[..., None]
        np.add.at(force, (slice(None), i), pair_force)
        np.add.at(force, (slice(None), j), -pair_force)
        self.pos[:, :NUM_AGENTS] += self.vel * DT
        self.vel = self.vel * (1 - DAMPING) + force[:, :NUM_AGENTS] * DT
        speed = np.sqrt(self.vel[..., 0] ** 2 + self.vel[..., 1] ** 2)
        over = speed > MAX_SPEED[None]
        scale = np.where(over, MAX_SPEED[None] / np.where(over, speed, 1.0), 1.0)
        self.vel = self.vel * scale[..., None]

    def _rewards(self) -> tuple[np.ndarray, np.ndarray]:
        adv = self.pos[:, :NUM_ADV]
        good = self.pos[:, NUM_ADV:NUM_AGENTS]
        dist = np.sqrt(((good[:, :, None] - adv[:, None]) ** 2).sum(-1))  # (N, good, adv)
        caught = dist < (SIZE[NUM_ADV:NUM_AGENTS, None] + SIZE[None, :NUM_ADV])
        adversary = np.repeat(10.0 * caught.sum((1, 2))[:, None], NUM_ADV, 1)
        agent = -10.0 * caught.sum(2) - _bound_penalty(np.abs(good)).sum(-1)
        return adversary, agent

    def step(self, actions: dict[str, np.ndarray]) -> TeamStep:
        joint = np.concatenate([actions["adversary"], actions["agent"]], 1).astype(np.int64)
        self._world_step(joint)
        adversary_reward, agent_reward = self._rewards()
        self.t += 1
        truncated = self.t >= self.max_cycles
        terminated = np.zeros(self.num_envs, dtype=bool)
        final = self.observe()
        index = np.flatnonzero(truncated)
        if len(index):
            self.reset_envs(index)
            obs = self.observe()
        else:
            obs = final
        ones = {
            t: np.ones((self.num_envs, len(s.agents)), dtype=bool) for t, s in self.teams.items()
        }
        return TeamStep(
            obs=obs,
            rewards={"adversary": adversary_reward, "agent": agent_reward},
            active=ones,
            agent_done={
                t: np.repeat(truncated[:, None], len(s.agents), 1) for t, s in self.teams.items()
            },
            terminated=terminated,
            truncated=truncated,
            final_obs=final,
        )
