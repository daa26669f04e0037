"""End-to-end throughput: our driver in its placements against RLlib PPO, in one process tree.

:func:`measure_throughput` starts Ray once (this machine's cores), then times, one after the
other and with the same PPO work per iteration (same envs per sampler, fragment length,
epochs and minibatch size): the single-process loop (``num_workers=0``, every env in one
vectorised worker), our driver with each requested number of rollout actors (synchronous),
RLlib PPO (new API stack, 2 env runners) right after them so that the compared arms run
closest in time, then the asynchronous arms (policy lag 1) and, if asked, our driver on the
numpy port of the game (``simple_tag_np``: the same rules as array operations, a separate
row that shows what the env implementation costs; the RLlib comparison uses mpe2's own
objects). Each row records the load average when it started. Every figure is env steps
sampled and learnt from per second of wall time, the first iteration (start-up) excluded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from provenml.distrl.baselines import rllib_available, rllib_ppo_throughput
from provenml.distrl.training import TrainSettings, train

__all__ = ["ThroughputRow", "measure_throughput"]


@dataclass
class ThroughputRow:
    label: str
    env_steps_per_s: float
    agent_steps_per_s: float
    learner_utilisation: float | None
    policy_lag: float | None
    num_workers: int
    seconds: float
    load_before: float = 0.0  # 1-min load average when the arm started


def measure_throughput(
    base: TrainSettings,
    actors: Sequence[int],
    async_actors: Sequence[int] = (),
    rllib: bool = True,
    rllib_iterations: int = 6,
    numpy_env: str | None = None,
    numpy_actors: Sequence[int] = (),
    log: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[list[ThroughputRow], dict[str, Any]]:
    """The rows (see the module docstring) and facts about the run (load, RLlib status)."""
    facts: dict[str, Any] = {"load_before": os.getloadavg()[0], "cpus": os.cpu_count()}
    rows: list[ThroughputRow] = []
    total_envs = max([*actors, *async_actors, 1]) * base.envs_per_worker

    def add(label: str, settings: TrainSettings) -> None:
        load = os.getloadavg()[0]
        start = time.perf_counter()
        result = train(settings)
        rows.append(
            ThroughputRow(
                label,
                result.steady_env_steps_per_s,
                result.steady_agent_steps_per_s,
                result.learner_utilisation,
                result.policy_lag,
                settings.num_workers,
                time.perf_counter() - start,
                load,
            )
        )
        if log is not None:
            log(vars(rows[-1]))

    add(
        f"single process ({total_envs} envs)",
        replace(base, num_workers=0, envs_per_worker=total_envs),
    )
    needs_ray = bool(actors or async_actors or rllib)
    reason = rllib_available() if rllib else "not requested at this scale"
    facts["rllib"] = reason or "measured"
    if not needs_ray:
        return rows, facts
    import ray

    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        started = True
    try:
        for n in actors:
            add(f"{n} actor{'s' if n > 1 else ''}", replace(base, num_workers=n))
        if rllib and reason is None:  # right after the actor arms the claim compares it with
            load = os.getloadavg()[0]
            start = time.perf_counter()
            measured = rllib_ppo_throughput(
                env=base.env,
                num_env_runners=2,
                envs_per_runner=base.envs_per_worker,
                fragment=base.fragment,
                iterations=rllib_iterations,
                epochs=base.ppo.epochs,
                minibatch_size=base.minibatch_size or 250,
                hidden=base.ppo.hidden,
                lr=base.ppo.lr,
                gamma=base.ppo.gamma,
                seed=base.seed,
            )
            rows.append(
                ThroughputRow(
                    "RLlib PPO (2 env runners)",
                    measured.env_steps_per_s,
                    measured.agent_steps_per_s,
                    None,
                    None,
                    2,
                    time.perf_counter() - start,
                    load,
                )
            )
            facts["rllib_build_seconds"] = measured.build_seconds
            if log is not None:
                log(vars(rows[-1]))
        for n in async_actors:
            add(
                f"{n} actor{'s' if n > 1 else ''}, async (lag 1)",
                replace(base, num_workers=n, async_sampling=True),
            )
        for n in numpy_actors if numpy_env else ():
            add(
                f"{n} actor{'s' if n > 1 else ''}, {numpy_env} (numpy port)",
                replace(base, num_workers=n, env=numpy_env),
            )
    finally:
        if started:
            ray.shutdown()
    facts["load_after"] = os.getloadavg()[0]
    return rows, facts
