"""A small numpy wargame: red against blue on a grid with obstacles (the M2RL validation task).

Each side has ``k`` heterogeneous units (:data:`UNIT_TYPES`: hit points, ranged fire with a
range, damage and cool-down). A unit moves one cell a step (up, down, left, right) or fires at
one enemy it can see (line of sight not blocked by an obstacle cell) within its range
(Chebyshev distance). A side wins by eliminating the other side or by holding the objective
cell (a live unit of its own on it and none of the enemy's) for ``hold_steps`` steps in a row;
both sides eliminated at once is a draw (terminated); reaching ``max_steps`` is a draw by
truncation, kept apart from termination.

The game is symmetric: the map is invariant under a 180-degree rotation and each side sees the
board (and moves) in its own frame, with its spawn zone on the left, so one policy can play
either side. Rewards are zero-sum team rewards: ``+1 / -1 / 0`` at the end, plus
``shaping * (damage dealt - damage taken)`` and ``hold_bonus`` for each step the objective is
held.

:class:`WargameBatch` steps ``num_envs`` copies as numpy array operations (the form the
rollout workers use); :class:`Wargame` is one copy behind the PettingZoo ``ParallelEnv`` API
(it wraps a batch of one and removes a unit's agent when the unit is destroyed).
"""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from provenml.errors import ProvenmlError

__all__ = [
    "DEFAULT_MAP",
    "NUM_MOVES",
    "SIDES",
    "UNIT_TYPES",
    "UnitType",
    "Wargame",
    "WargameBatch",
    "WargameConfig",
]

SIDES = ("red", "blue")
NUM_MOVES = 5  # stay, up, down, left, right; then one fire action per enemy unit


@dataclass(frozen=True)
class UnitType:
    """A unit's rules: hit points, fire range (Chebyshev cells), damage per hit, cool-down
    (steps it must wait after firing before it may fire again)."""

    name: str
    hp: int
    fire_range: int
    damage: int
    cooldown: int


UNIT_TYPES = (
    UnitType("tank", hp=5, fire_range=1, damage=2, cooldown=1),
    UnitType("infantry", hp=3, fire_range=2, damage=1, cooldown=0),
    UnitType("sniper", hp=2, fire_range=4, damage=2, cooldown=2),
)

# '#' obstacle, 'O' objective, 'R' red spawn zone ('B', blue's, is its 180-degree rotation)
DEFAULT_MAP = (
    "R...#....",
    "R.......B",
    "R.#...#.B",
    "R...#...B",
    "R...O...B",
    "R...#...B",
    "R.#...#.B",
    "R.......B",
    "....#...B",
)

# moves in a side's own frame: (dx, dy) for stay, up, down, left, right
_MOVE_DELTAS = np.array([[0, 0], [0, -1], [0, 1], [-1, 0], [1, 0]], dtype=np.int64)


@dataclass(frozen=True)
class WargameConfig:
    """The game's settings: units per side (types cycle through :data:`UNIT_TYPES`), limits
    and reward shaping."""

    units: int = 3
    max_steps: int = 60
    hold_steps: int = 5
    shaping: float = 0.05
    hold_bonus: float = 0.02
    layout: tuple[str, ...] = DEFAULT_MAP

    def __post_init__(self) -> None:
        if self.units < 1:
            raise ProvenmlError(f"units must be >= 1, got {self.units}")
        if self.max_steps < 1 or self.hold_steps < 1:
            raise ProvenmlError(
                f"max_steps and hold_steps must be >= 1, got {self.max_steps}, {self.hold_steps}"
            )


@functools.cache
def _board(layout: tuple[str, ...]) -> _Board:
    return _Board(layout)


class _Board:
    """Static tables of a map: obstacles, spawn cells, line of sight and path distances."""

    def __init__(self, layout: tuple[str, ...]) -> None:
        rows = [list(r) for r in layout]
        self.height = len(rows)
        self.width = len(rows[0]) if rows else 0
        if self.height == 0 or any(len(r) != self.width for r in rows):
            raise ProvenmlError("layout must be a non-empty list of equal-length rows")
        grid = np.array(rows)
        rotated = grid[::-1, ::-1]
        swapped = np.where(rotated == "R", "B", np.where(rotated == "B", "R", rotated))
        if not (grid == swapped).all():
            raise ProvenmlError("layout must be symmetric under a 180-degree rotation (R <-> B)")
        self.obstacle = grid == "#"
        objective = np.argwhere(grid == "O")
        if len(objective) != 1:
            raise ProvenmlError("layout needs exactly one objective cell 'O'")
        self.objective = np.array([objective[0][1], objective[0][0]])  # (x, y)
        self.spawn = [
            np.array([[x, y] for y, x in np.argwhere(grid == s)], dtype=np.int64) for s in "RB"
        ]
        self.cells = self.width * self.height
        self.los = self._line_of_sight()
        self.dist = self._distances()

    def cell(self, xy: np.ndarray) -> np.ndarray:
        return xy[..., 1] * self.width + xy[..., 0]

    def _line_of_sight(self) -> np.ndarray:
        """``los[a, b]``: no obstacle cell on the segment between the centres of cells a and b
        (sampled at 8 points per cell of length; the end cells do not block)."""
        w, h = self.width, self.height
        los = np.ones((self.cells, self.cells), dtype=bool)
        for a in range(self.cells):
            ax, ay = a % w, a // w
            for b in range(self.cells):
                bx, by = b % w, b // w
                n = 8 * max(abs(bx - ax), abs(by - ay)) + 1
                ts = np.linspace(0.0, 1.0, n)
                xs = np.floor(ax + 0.5 + ts * (bx - ax)).astype(int)
                ys = np.floor(ay + 0.5 + ts * (by - ay)).astype(int)
                xs, ys = np.clip(xs, 0, w - 1), np.clip(ys, 0, h - 1)
                inner = ~(((xs == ax) & (ys == ay)) | ((xs == bx) & (ys == by)))
                los[a, b] = not self.obstacle[ys[inner], xs[inner]].any()
        return los

    def _distances(self) -> np.ndarray:
        """All-pairs shortest path lengths in moves (breadth-first search; inf if cut off)."""
        w, h = self.width, self.height
        dist = np.full((self.cells, self.cells), np.inf)
        for source in range(self.cells):
            if self.obstacle[source // w, source % w]:
                continue
            dist[source, source] = 0
            queue = deque([source])
            while queue:
                c = queue.popleft()
                x, y = c % w, c // w
                for dx, dy in _MOVE_DELTAS[1:]:
                    nx, ny = x + dx, y + dy
                    if 0 <= nx < w and 0 <= ny < h and not self.obstacle[ny, nx]:
                        n = ny * w + nx
                        if dist[source, n] == np.inf:
                            dist[source, n] = dist[source, c] + 1
                            queue.append(n)
        return dist


class WargameBatch:
    """``num_envs`` copies of the wargame stepped together as numpy array operations.

    State arrays (absolute board frame): ``pos`` (N, 2, k, 2) cell coordinates ``(x, y)``,
    ``hp`` (N, 2, k), ``timer`` (N, 2, k) fire cool-down left, ``hold`` (N, 2) consecutive
    steps each side has held the objective, ``t`` (N,) step index. Side 0 is red, 1 blue.
    Copy ``i`` draws its spawn positions from its own generator seeded with ``seeds[i]``, so a
    batch equals ``num_envs`` single games with those seeds.

    ``step(actions)`` takes (N, 2, k) actions in each side's own frame and returns
    ``(obs, rewards, terminated, truncated, outcome)``: obs (N, 2, k, obs_dim) float32,
    rewards (N, 2) team rewards, terminated / truncated (N,) bool and outcome (N,) (+1 red
    won, -1 blue won, 0 draw or not over). It does not reset finished copies: call
    :meth:`reset_envs` with their indices.
    """

    def __init__(
        self, num_envs: int, config: WargameConfig | None = None, seeds: Any = None
    ) -> None:
        if num_envs < 1:
            raise ProvenmlError(f"num_envs must be >= 1, got {num_envs}")
        self.config = config or WargameConfig()
        self.board = _board(tuple(self.config.layout))
        self.num_envs = num_envs
        k = self.config.units
        self.units = k
        types = [UNIT_TYPES[i % len(UNIT_TYPES)] for i in range(k)]
        self.unit_types = types
        self.max_hp = np.array([t.hp for t in types])
        self.fire_range = np.array([t.fire_range for t in types])
        self.damage = np.array([t.damage for t in types])
        self.cooldown = np.array([t.cooldown for t in types])
        self.type_index = np.array([i % len(UNIT_TYPES) for i in range(k)])
        self.num_actions = NUM_MOVES + k
        self.obs_dim = 8 + 4 * (k - 1) + 6 * k + 5
        for side in range(2):
            if len(self.board.spawn[side]) < k:
                raise ProvenmlError(f"the layout has fewer spawn cells than units ({k})")
        self.pos = np.zeros((num_envs, 2, k, 2), dtype=np.int64)
        self.hp = np.zeros((num_envs, 2, k), dtype=np.int64)
        self.timer = np.zeros((num_envs, 2, k), dtype=np.int64)
        self.hold = np.zeros((num_envs, 2), dtype=np.int64)
        self.t = np.zeros(num_envs, dtype=np.int64)
        self.seed(seeds)

    def seed(self, seeds: Any = None) -> None:
        """One generator per copy: ``seeds`` is an int (copy i gets ``[seeds, i]``), a list of
        ints (one per copy) or None (fresh entropy)."""
        if seeds is None or isinstance(seeds, (int, np.integer)):
            base = np.random.SeedSequence(seeds)
            self.rngs = [np.random.default_rng(s) for s in base.spawn(self.num_envs)]
        else:
            seeds = list(seeds)
            if len(seeds) != self.num_envs:
                raise ProvenmlError(f"need {self.num_envs} seeds, got {len(seeds)}")
            self.rngs = [np.random.default_rng(s) for s in seeds]

    # ---------------------------------------------------------------- reset
    def reset(self) -> np.ndarray:
        """Reset every copy; returns the observations (N, 2, k, obs_dim)."""
        self.reset_envs(np.arange(self.num_envs))
        return self.observe()

    def reset_envs(self, index: np.ndarray) -> None:
        """Start new episodes in the copies ``index`` (spawn cells drawn without replacement
        from each side's zone by the copy's own generator)."""
        spawn = self.board.spawn
        for i in np.asarray(index, dtype=np.int64).tolist():
            rng = self.rngs[i]
            for side in range(2):
                cells = rng.choice(len(spawn[side]), size=self.units, replace=False)
                self.pos[i, side] = spawn[side][cells]
            self.hp[i] = self.max_hp
            self.timer[i] = 0
            self.hold[i] = 0
            self.t[i] = 0

    # ---------------------------------------------------------------- frames
    def _to_side_frame(self, xy: np.ndarray, side: np.ndarray | int) -> np.ndarray:
        """Blue (side 1) sees the board rotated by 180 degrees."""
        flip = (np.asarray(side) == 1)[..., None]
        mirrored = np.stack(
            [self.board.width - 1 - xy[..., 0], self.board.height - 1 - xy[..., 1]], -1
        )
        return np.where(flip, mirrored, xy)

    def alive(self) -> np.ndarray:
        return self.hp > 0

    def targetable(self) -> np.ndarray:
        """(N, 2, k, k) bool: unit i of a side may hit enemy unit j now (both alive, j within
        i's range, line of sight clear). Cool-down is not included."""
        cells = self.board.cell(self.pos)  # (N, 2, k)
        enemy_cells = cells[:, ::-1]
        los = self.board.los[cells[..., :, None], enemy_cells[..., None, :]]
        delta = np.abs(self.pos[:, :, :, None, :] - self.pos[:, ::-1, None, :, :]).max(-1)
        in_range = delta <= self.fire_range[None, None, :, None]
        alive = self.alive()
        return los & in_range & alive[..., :, None] & alive[:, ::-1, None, :]

    def moves_toward(self, side: int, target: np.ndarray) -> np.ndarray:
        """(N, k) move actions (in ``side``'s frame) that bring each unit of ``side`` one step
        along a shortest path to the absolute cells ``target`` (N, k, 2); stay if none does."""
        sign = 1 if side == 0 else -1
        pos = self.pos[:, side]  # (N, k, 2)
        candidates = pos[:, :, None, :] + sign * _MOVE_DELTAS[None, None]  # (N, k, 5, 2)
        w, h = self.board.width, self.board.height
        inside = (
            (candidates[..., 0] >= 0)
            & (candidates[..., 0] < w)
            & (candidates[..., 1] >= 0)
            & (candidates[..., 1] < h)
        )
        cx = np.clip(candidates[..., 0], 0, w - 1)
        cy = np.clip(candidates[..., 1], 0, h - 1)
        free = inside & ~self.board.obstacle[cy, cx]
        dist = self.board.dist[cy * w + cx, self.board.cell(target)[:, :, None]]
        dist = np.where(free, dist, np.inf)
        return np.argmin(dist, -1)

    # ---------------------------------------------------------------- observation
    def observe(self) -> np.ndarray:
        """(N, 2, k, obs_dim) float32, each unit in its side's frame (values in [-1, 1]):
        own [x, y, hp, timer, alive, type one-hot(3)], each ally [dx, dy, hp, alive], each
        enemy [dx, dy, hp, alive, line of sight, targetable], objective [dx, dy],
        [own hold, enemy hold, time] fractions."""
        n, k = self.num_envs, self.units
        w1, h1 = self.board.width - 1, self.board.height - 1
        side = np.arange(2)[None, :, None]
        xy = self._to_side_frame(self.pos, np.broadcast_to(side, (n, 2, k))).astype(np.float64)
        scale = np.array([w1, h1], dtype=np.float64)
        alive = self.alive()
        hp = self.hp / self.max_hp
        timer = self.timer / (self.cooldown + 1)
        type_onehot = np.eye(len(UNIT_TYPES))[self.type_index]  # (k, 3)
        own = np.concatenate(
            [
                xy / scale,
                hp[..., None],
                timer[..., None],
                alive[..., None],
                np.broadcast_to(type_onehot, (n, 2, k, len(UNIT_TYPES))),
            ],
            -1,
        )
        rel = (xy[:, :, None, :, :] - xy[:, :, :, None, :]) / scale  # (N, 2, i, j, 2) j-i
        ally = np.concatenate(
            [
                rel,
                np.broadcast_to(hp[:, :, None, :, None], (n, 2, k, k, 1)),
                np.broadcast_to(alive[:, :, None, :, None], (n, 2, k, k, 1)),
            ],
            -1,
        )
        off_diag = ~np.eye(k, dtype=bool)
        ally = ally[:, :, off_diag].reshape(n, 2, k, (k - 1) * 4)
        enemy_xy = xy[:, ::-1]
        # enemies in my frame: rotate the enemy's own-frame position back into mine
        enemy_xy = np.stack([w1 - enemy_xy[..., 0], h1 - enemy_xy[..., 1]], -1)
        erel = (enemy_xy[:, :, None, :, :] - xy[:, :, :, None, :]) / scale
        cells = self.board.cell(self.pos)
        los = self.board.los[cells[..., :, None], cells[:, ::-1][..., None, :]]
        enemy = np.concatenate(
            [
                erel,
                np.broadcast_to(hp[:, ::-1, None, :, None], (n, 2, k, k, 1)),
                np.broadcast_to(alive[:, ::-1, None, :, None], (n, 2, k, k, 1)),
                los[..., None],
                self.targetable()[..., None],
            ],
            -1,
        ).reshape(n, 2, k, 6 * k)
        objective = self._to_side_frame(
            np.broadcast_to(self.board.objective, (n, 2, k, 2)),
            np.broadcast_to(side, (n, 2, k)),
        )
        obj_rel = (objective - xy) / scale
        hs = self.config.hold_steps
        glob = np.stack(
            [
                np.broadcast_to(self.hold[:, :, None] / hs, (n, 2, k)),
                np.broadcast_to(self.hold[:, ::-1, None] / hs, (n, 2, k)),
                np.broadcast_to(self.t[:, None, None] / self.config.max_steps, (n, 2, k)),
            ],
            -1,
        )
        obs = np.concatenate([own, ally, enemy, obj_rel, np.minimum(glob, 1.0)], -1)
        return obs.astype(np.float32)

    # ---------------------------------------------------------------- dynamics
    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One simultaneous step of every copy (fire, then damage, then moves of survivors)."""
        n, k = self.num_envs, self.units
        actions = np.asarray(actions, dtype=np.int64)
        if actions.shape != (n, 2, k):
            raise ProvenmlError(f"actions must have shape {(n, 2, k)}, got {actions.shape}")
        if (actions < 0).any() or (actions >= self.num_actions).any():
            raise ProvenmlError(f"actions must lie in [0, {self.num_actions})")
        alive = self.alive()
        # fire: resolved from the state before anyone moves
        target = np.clip(actions - NUM_MOVES, 0, k - 1)
        wants_fire = (actions >= NUM_MOVES) & alive & (self.timer == 0)
        can_hit = np.take_along_axis(self.targetable(), target[..., None], -1)[..., 0]
        fired = wants_fire & can_hit
        hits = (
            fired[..., None] * self.damage[None, None, :, None] * np.eye(k, dtype=np.int64)[target]
        )  # (N, side, shooter, target)
        damage_to = hits.sum(2)[:, ::-1]  # damage received by (N, side, unit)
        damage_to = np.minimum(damage_to, self.hp)
        self.hp = self.hp - damage_to
        self.timer = np.where(fired, self.cooldown, np.maximum(self.timer - 1, 0))
        # moves: survivors only; the blue side's moves are in its rotated frame
        survivors = self.alive()
        move = np.where(actions < NUM_MOVES, actions, 0)
        delta = _MOVE_DELTAS[move]
        delta[:, 1] *= -1
        new = self.pos + delta
        w, h = self.board.width, self.board.height
        inside = (new[..., 0] >= 0) & (new[..., 0] < w) & (new[..., 1] >= 0) & (new[..., 1] < h)
        clipped = np.stack([np.clip(new[..., 0], 0, w - 1), np.clip(new[..., 1], 0, h - 1)], -1)
        free = inside & ~self.board.obstacle[clipped[..., 1], clipped[..., 0]]
        self.pos = np.where((free & survivors)[..., None], new, self.pos)
        # objective
        on_objective = (survivors & (self.pos == self.board.objective).all(-1)).any(-1)  # (N, 2)
        holds = on_objective & ~on_objective[:, ::-1]
        self.hold = np.where(holds, self.hold + 1, 0)
        self.t = self.t + 1
        # outcome
        eliminated = ~survivors.any(-1)  # (N, 2)
        held = self.hold >= self.config.hold_steps
        wins = (eliminated[:, ::-1] & ~eliminated) | held
        terminated = wins.any(-1) | eliminated.all(-1)
        truncated = ~terminated & (self.t >= self.config.max_steps)
        outcome = wins[:, 0].astype(np.int64) - wins[:, 1].astype(np.int64)
        dealt = damage_to[:, ::-1].sum(-1)  # (N, side) damage each side dealt
        reward = self.config.shaping * (dealt - dealt[:, ::-1]) + self.config.hold_bonus * (
            holds.astype(np.float64) - holds[:, ::-1]
        )
        reward = reward + np.stack([outcome, -outcome], -1) * terminated[:, None]
        return self.observe(), reward, terminated, truncated, outcome


class Wargame(ParallelEnv):
    """One wargame behind the PettingZoo parallel API; agents ``red_0 .. blue_{k-1}``.

    A unit's agent is terminated on the step its unit is destroyed and leaves ``agents``;
    when the game ends every remaining agent is terminated (win, loss, or both eliminated) or
    truncated (``max_steps``). ``infos[agent]["outcome"]`` is ``"win"``, ``"loss"`` or
    ``"draw"`` for the agent's side at the end. Agents whose action is missing stay put.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": [], "name": "wargame_v0"}

    def __init__(self, config: WargameConfig | None = None) -> None:
        self.core = WargameBatch(1, config)
        k = self.core.units
        self.possible_agents = [f"{s}_{i}" for s in SIDES for i in range(k)]
        self.agents: list[str] = []
        self._index = {a: (j // k, j % k) for j, a in enumerate(self.possible_agents)}
        self._obs_space = spaces.Box(-1.0, 1.0, (self.core.obs_dim,), dtype=np.float32)
        self._act_space = spaces.Discrete(self.core.num_actions)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_space

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        if seed is not None:
            self.core.seed([seed])
        obs = self.core.reset()
        self.agents = list(self.possible_agents)
        return self._obs_dict(obs), {a: {} for a in self.agents}

    def _obs_dict(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return {a: obs[0][self._index[a]] for a in self.agents}

    def state(self) -> np.ndarray:
        return self.core.observe()[0].reshape(-1)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        batch = np.zeros((1, 2, self.core.units), dtype=np.int64)
        for agent, action in actions.items():
            if agent in self.agents:
                batch[(0, *self._index[agent])] = int(action)
        obs, reward, terminated, truncated, outcome = self.core.step(batch)
        alive = self.core.alive()[0]
        agents = self.agents
        rewards = {a: float(reward[0, self._index[a][0]]) for a in agents}
        done_all = bool(terminated[0] or truncated[0])
        terms = {a: bool(terminated[0]) or not alive[self._index[a]] for a in agents}
        truncs = {a: bool(truncated[0]) and not terms[a] for a in agents}
        infos: dict[str, dict[str, Any]] = {a: {} for a in agents}
        if done_all:
            for a in agents:
                sign = 1 if self._index[a][0] == 0 else -1
                infos[a]["outcome"] = {1: "win", -1: "loss", 0: "draw"}[int(outcome[0]) * sign]
        observations = self._obs_dict(obs)
        self.agents = [a for a in agents if not (terms[a] or truncs[a])]
        return observations, rewards, terms, truncs, infos
