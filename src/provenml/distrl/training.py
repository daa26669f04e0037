"""The training driver: rollout workers, one learner per player, the players manager.

One loop serves every mode and placement:

* **single-process** (``num_workers=0``): one :class:`~provenml.distrl.rollout.RolloutWorker`
  and the learners are plain objects in this process (deterministic for a seed);
* **Ray** (``num_workers >= 1``): the workers are Ray actors (``num_cpus=worker_cpus``,
  restarted by Ray up to ``max_restarts`` times), each learner is a Ray actor
  (``num_cpus=learner_cpus``, ``num_gpus=learner_gpus``), weights travel through Ray's
  shared-memory object store (one ``ray.put`` per iteration, every worker reads the same
  object). ``address=None`` starts Ray on this machine; ``address="auto"`` or
  ``"ray://host:10001"`` joins a cluster, where Ray places the actors on any node with the
  resources they ask for.

Modes (``mode``): ``multi_player`` (every team its own learning player, e.g. simple_tag's
adversaries and agent), ``vs_scripted`` (the first team learns against a scripted wargame
policy; ``units=1`` is the single-player single-agent case), ``self_play`` (the first team
learns; the second plays a snapshot from the player's pool, sampled ``latest`` / ``uniform`` /
``pfsp`` by the players manager), ``vs_fixed`` (the first team learns against a fixed
policy, ``opponent_weights``: a best response, to measure exploitability).

``async_sampling=True`` submits the next fragments before the learner updates, so sampling
overlaps learning and every fragment is one version stale (policy lag 1); with
``correction="vtrace"`` the learner corrects for it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from provenml.distrl.envs import ENVS, make_env
from provenml.distrl.learner import Learner
from provenml.distrl.players import OPPONENT_SAMPLING, PlayersManager
from provenml.distrl.rollout import RolloutWorker
from provenml.errors import ProvenmlError
from provenml.rl import PPOConfig

__all__ = ["MODES", "TrainResult", "TrainSettings", "train"]

MODES = ("multi_player", "vs_scripted", "self_play", "vs_fixed")


@dataclass
class TrainSettings:
    """Everything one training run needs (the experiments build it from their config)."""

    env: str = "wargame"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    mode: str = "multi_player"
    opponent: str = "focus_fire"  # vs_scripted: the scripted policy of the other team
    opponent_weights: dict[str, Any] | None = None  # vs_fixed: the other team's fixed policy
    num_workers: int = 0  # 0: single-process mode
    envs_per_worker: int = 8
    fragment: int = 64
    iterations: int = 10
    async_sampling: bool = False
    correction: str = "none"  # "vtrace" for stale samples
    minibatch_size: int | None = None  # samples per PPO minibatch (else ppo.minibatches)
    central_critic: bool = False  # the critic sees the whole team's observations
    ppo: PPOConfig = field(default_factory=PPOConfig)
    seed: int = 0
    # players manager (self_play)
    pool_size: int = 8
    opponent_sampling: str = "pfsp"
    snapshot_every: int = 5
    # placement
    address: str | None = None
    worker_cpus: float = 1.0
    learner_cpus: float = 0.0
    learner_gpus: float = 0.0
    max_restarts: int = 2
    # faults and checkpoints
    kill_worker_at: int | None = None  # iteration at which worker 0 is killed (Ray mode)
    checkpoint_path: str | None = None  # learner states written here every iteration
    resume: bool = False

    def validate(self) -> None:
        ENVS.get(self.env)
        if self.mode not in MODES:
            raise ProvenmlError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.opponent_sampling not in OPPONENT_SAMPLING:
            raise ProvenmlError(
                f"opponent_sampling must be one of {OPPONENT_SAMPLING}, got "
                f"{self.opponent_sampling!r}"
            )
        for name in ("envs_per_worker", "fragment", "iterations"):
            if getattr(self, name) < 1:
                raise ProvenmlError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise ProvenmlError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.mode == "vs_fixed" and self.opponent_weights is None:
            raise ProvenmlError("mode 'vs_fixed' needs opponent_weights")
        if self.mode in ("vs_scripted", "self_play", "vs_fixed") and self.env != "wargame":
            raise ProvenmlError(f"mode {self.mode!r} needs env 'wargame', got {self.env!r}")
        if self.mode == "vs_scripted":
            from provenml.distrl.scripted import SCRIPTED

            SCRIPTED.get(self.opponent)  # in the driver: a clear error, not a dead actor
        if self.kill_worker_at is not None and self.num_workers == 0:
            raise ProvenmlError("kill_worker_at needs Ray mode (num_workers >= 1)")


@dataclass
class TrainResult:
    """Per-iteration records and the run's totals."""

    iterations: list[dict[str, Any]]
    env_steps: int
    agent_steps: int
    seconds: float
    steady_env_steps_per_s: float  # iterations after the first (no start-up)
    steady_agent_steps_per_s: float
    learner_utilisation: float  # learner busy time / steady wall time
    policy_lag: float  # mean learner version - fragment version
    restarts: int
    lost_fragments: int
    weights: dict[str, dict[str, np.ndarray]]
    manager: PlayersManager | None
    outcomes: list[int]
    fragment_ids: list[str]  # (worker seed, sample index) of every fragment learnt from


class _Done:
    """What a Ray ObjectRef is to ``ray.get``, for the single-process mode."""

    def __init__(self, value: Any) -> None:
        self.value = value


def controllers_for(settings: TrainSettings, teams: list[str]) -> dict[str, str]:
    first, others = teams[0], teams[1:]
    if settings.mode == "multi_player":
        return {t: f"learner:{t}" for t in teams}
    if settings.mode == "vs_scripted":
        return {first: f"learner:{first}", **{t: f"scripted:{settings.opponent}" for t in others}}
    if settings.mode == "vs_fixed":
        return {first: f"learner:{first}", **{t: "snapshot:fixed" for t in others}}
    return {first: f"learner:{first}", **{t: f"snapshot:{first}" for t in others}}


def train(
    settings: TrainSettings,
    on_iteration: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Run ``settings.iterations`` sample-then-learn iterations (see the module docstring)."""
    settings.validate()
    local = settings.num_workers == 0
    probe = make_env(settings.env, 1, seed=settings.seed, **settings.env_kwargs)
    teams = list(probe.teams)
    controllers = controllers_for(settings, teams)
    players = [c.split(":")[1] for c in controllers.values() if c.startswith("learner:")]
    ray = None
    started_ray = False
    if not local:
        import ray

        if not ray.is_initialized():
            ray.init(
                address=settings.address,
                num_cpus=None if settings.address else os.cpu_count(),
                include_dashboard=False,
                log_to_driver=False,
            )
            started_ray = True
    try:
        return _run(settings, controllers, players, probe.teams, ray, on_iteration)
    finally:
        if started_ray and ray is not None:
            ray.shutdown()


def _run(
    settings: TrainSettings,
    controllers: dict[str, str],
    players: list[str],
    specs: Mapping[str, Any],
    ray: Any,
    on_iteration: Callable[[dict[str, Any]], None] | None,
) -> TrainResult:
    local = ray is None
    s = settings
    worker_args = dict(
        env=s.env,
        num_envs=s.envs_per_worker,
        fragment=s.fragment,
        controllers=controllers,
        hidden=s.ppo.hidden,
        gamma=s.ppo.gamma,
        env_kwargs=s.env_kwargs,
    )
    if local:
        workers: list[Any] = [RolloutWorker(seed=s.seed * 1000 + 1, threads=None, **worker_args)]
        learners: dict[str, Any] = {
            p: Learner(
                specs[p],
                s.ppo,
                seed=s.seed * 1000 + 500 + i,
                correction=s.correction,
                central_critic=s.central_critic,
                minibatch_size=s.minibatch_size,
            )
            for i, p in enumerate(players)
        }
    else:
        need = s.num_workers * s.worker_cpus + len(players) * s.learner_cpus
        have = ray.cluster_resources().get("CPU", 0.0)
        if need > have:
            raise ProvenmlError(
                f"num_workers={s.num_workers} rollout actors ({s.worker_cpus} CPU each) and "
                f"{len(players)} learners ({s.learner_cpus} CPU each) need {need:g} CPUs; the "
                f"Ray cluster has {have:g}. Lower num_workers or worker_cpus."
            )
        remote_worker = ray.remote(
            num_cpus=s.worker_cpus, max_restarts=s.max_restarts, max_task_retries=0
        )(RolloutWorker)
        workers = [
            remote_worker.remote(seed=s.seed * 1000 + 1 + i, threads=1, **worker_args)
            for i in range(s.num_workers)
        ]
        remote_learner = ray.remote(num_cpus=s.learner_cpus, num_gpus=s.learner_gpus)(Learner)
        device = "cuda" if s.learner_gpus > 0 else "cpu"
        learners = {
            p: remote_learner.remote(
                specs[p],
                s.ppo,
                seed=s.seed * 1000 + 500 + i,
                correction=s.correction,
                central_critic=s.central_critic,
                device=device,
                threads=1,
                minibatch_size=s.minibatch_size,
            )
            for i, p in enumerate(players)
        }

    def call(handle: Any, method: str, *args: Any) -> Any:
        if local:
            return _Done(getattr(handle, method)(*args))
        return getattr(handle, method).remote(*args)

    def get(ref: Any) -> Any:
        return ref.value if local else ray.get(ref)

    def put(value: Any) -> Any:
        return value if local else ray.put(value)

    manager: PlayersManager | None = None
    rng = np.random.default_rng(s.seed + 17)
    versions = {p: 0 for p in players}
    weights = {p: get(call(learners[p], "weights")) for p in players}
    start_iteration = 0
    if s.resume and s.checkpoint_path and Path(s.checkpoint_path).exists():
        checkpoint = pickle.loads(Path(s.checkpoint_path).read_bytes())
        for p in players:
            get(call(learners[p], "load_state", checkpoint["learners"][p]))
            weights[p] = get(call(learners[p], "weights"))
        versions = dict(checkpoint["versions"])
        start_iteration = int(checkpoint["iteration"])
    if s.mode == "self_play":
        manager = PlayersManager(pool_size=s.pool_size)
        manager.add_player(players[0])
        manager.snapshot(players[0], weights[players[0]], versions[players[0]])

    def submit(worker_index: int) -> tuple[Any, str | None]:
        team_weights = {}
        opponent_id = None
        for team, c in controllers.items():
            kind, name = c.split(":")
            if kind == "learner":
                team_weights[team] = weights[name]
            elif kind == "snapshot" and name == "fixed":
                team_weights[team] = s.opponent_weights
            elif kind == "snapshot":
                assert manager is not None
                snap = manager.sample_opponent(name, s.opponent_sampling, rng)
                team_weights[team] = snap.weights
                opponent_id = snap.snapshot_id
        version = min(versions.values())
        return call(workers[worker_index], "sample", put(team_weights), version), opponent_id

    records: list[dict[str, Any]] = []
    fragment_ids: list[str] = []
    all_outcomes: list[int] = []
    restarts = lost = 0
    total_env = total_agent = 0
    steady_env = steady_agent = 0
    steady_start = None
    busy_steady = 0.0
    lags: list[float] = []
    run_start = time.perf_counter()
    pending = [submit(i) for i in range(len(workers))]
    for iteration in range(start_iteration, s.iterations):
        it_start = time.perf_counter()
        if s.kill_worker_at is not None and iteration == s.kill_worker_at:
            ray.kill(workers[0], no_restart=False)
        results: list[tuple[dict[str, Any], dict[str, Any], str | None]] = []
        for i, (ref, opponent_id) in enumerate(pending):
            try:
                fragments, stats = get(ref)
                results.append((fragments, stats, opponent_id))
            except Exception as exc:  # a dead actor: Ray restarts it, its fragment is lost
                if local or not isinstance(exc, ray.exceptions.RayActorError):
                    raise
                lost += 1
                restarts += 1
                _wait_alive(ray, workers[i])
                ray.get(workers[i].reseed.remote(s.seed * 1000 + 1 + i + 7777 * restarts))
        last = iteration + 1 == s.iterations
        if iteration == start_iteration:  # the steady window opens when the fragments of
            steady_start = time.perf_counter()  # the next iteration are requested
        if s.async_sampling and not last:
            pending = [submit(i) for i in range(len(workers))]
        learn_start = time.perf_counter()
        update_refs = {
            p: call(
                learners[p],
                "update",
                [frag[team] for frag, _, _ in results for team in _teams_of(controllers, p)],
            )
            for p in players
            if results
        }
        updates = {p: get(r) for p, r in update_refs.items()}
        for p in updates:
            versions[p] += 1
            weights[p] = get(call(learners[p], "weights"))
        learn_seconds = time.perf_counter() - learn_start
        if not s.async_sampling and not last:
            if iteration == start_iteration:
                steady_start = time.perf_counter()
            pending = [submit(i) for i in range(len(workers))]
        elif last:
            pending = []
        fragment_ids.extend(st["fragment_id"] for _, st, _ in results)
        env_steps = sum(st["env_steps"] for _, st, _ in results)
        agent_steps = sum(st["agent_steps"] for _, st, _ in results)
        outcomes = [o for _, st, _ in results for o in st["outcomes"]]
        all_outcomes.extend(outcomes)
        lag = [versions[players[0]] - 1 - st["version"] for _, st, _ in results]
        lags.extend(lag)
        if manager is not None:
            for _, st, opponent_id in results:
                for o in st["outcomes"]:
                    if opponent_id is not None:
                        with contextlib.suppress(ProvenmlError):  # evicted meanwhile
                            manager.record(opponent_id, (o + 1) / 2)
            if (iteration + 1) % s.snapshot_every == 0:
                manager.snapshot(players[0], weights[players[0]], versions[players[0]])
        total_env += env_steps
        total_agent += agent_steps
        now = time.perf_counter()
        if iteration != start_iteration:
            steady_env += env_steps
            steady_agent += agent_steps
            busy_steady += sum(u["seconds"] for u in updates.values())
        record = {
            "iteration": iteration,
            "env_steps": total_env,
            "seconds": now - run_start,
            "iteration_seconds": now - it_start,
            "learn_seconds": learn_seconds,
            "sample_seconds": float(np.mean([st["seconds"] for _, st, _ in results] or [0])),
            "win_rate": float(np.mean(np.array(outcomes) == 1)) if outcomes else float("nan"),
            "episodes": len(outcomes),
            "returns": {
                t: float(np.mean(v))
                if (v := [r for _, st, _ in results for r in st["returns"][t]])
                else float("nan")
                for t in specs
            },
            "lag": float(np.mean(lag)) if lag else 0.0,
            "updates": updates,
        }
        records.append(record)
        if s.checkpoint_path:
            _save_checkpoint(s.checkpoint_path, learners, call, get, versions, iteration + 1)
        if on_iteration is not None:  # the callback also sees the new weights (not stored)
            on_iteration({**record, "weights": weights})
    steady_seconds = time.perf_counter() - steady_start if steady_start else 0.0
    for ref, _ in pending:  # let in-flight fragments finish before the actors go
        with contextlib.suppress(Exception):  # a dying actor at shutdown changes nothing
            get(ref)
    final_weights = {p: get(call(learners[p], "weights")) for p in players}
    if not local:
        for handle in [*workers, *learners.values()]:
            ray.kill(handle)
    return TrainResult(
        iterations=records,
        env_steps=total_env,
        agent_steps=total_agent,
        seconds=time.perf_counter() - run_start,
        steady_env_steps_per_s=steady_env / steady_seconds if steady_seconds > 0 else 0.0,
        steady_agent_steps_per_s=steady_agent / steady_seconds if steady_seconds > 0 else 0.0,
        learner_utilisation=busy_steady / steady_seconds if steady_seconds > 0 else 0.0,
        policy_lag=float(np.mean(lags)) if lags else 0.0,
        restarts=restarts,
        lost_fragments=lost,
        weights=final_weights,
        manager=manager,
        outcomes=all_outcomes,
        fragment_ids=fragment_ids,
    )


def _teams_of(controllers: Mapping[str, str], player: str) -> list[str]:
    return [t for t, c in controllers.items() if c == f"learner:{player}"]


def _wait_alive(ray: Any, worker: Any, timeout: float = 300.0) -> None:
    """Wait for a restarted actor (a fresh process importing torch: slow on a busy machine)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ray.get(worker.ping.remote(), timeout=10)
            return
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            if time.monotonic() > deadline:
                raise ProvenmlError("a killed rollout actor was not restarted in time") from None
            time.sleep(0.2)


def _save_checkpoint(
    path: str,
    learners: Mapping[str, Any],
    call: Callable[..., Any],
    get: Callable[[Any], Any],
    versions: Mapping[str, int],
    iteration: int,
) -> None:
    blob = {
        "learners": {p: get(call(h, "state")) for p, h in learners.items()},
        "versions": dict(versions),
        "iteration": iteration,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_bytes(pickle.dumps(blob))
    tmp.replace(target)
