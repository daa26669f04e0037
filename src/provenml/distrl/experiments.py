"""S6 reproductions: ``distrl.throughput`` (headline).

Config, wiring and claims only: the measurement is :mod:`provenml.distrl.throughput`, the
driver :mod:`provenml.distrl.training`, the RLlib baseline :mod:`provenml.distrl.baselines`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from provenml.core import (
    Claim,
    Config,
    Precondition,
    Result,
    RunContext,
    Table,
    experiment,
    flatten_summary,
)
from provenml.distrl.throughput import measure_throughput
from provenml.distrl.training import TrainSettings
from provenml.rl import PPOConfig

# the target: at least 1.5x RLlib's end-to-end env steps/s on simple_tag_v3, 2 cores
RLLIB_FACTOR = 1.5


@dataclass
class ThroughputConfig(Config):
    """Defaults are the ``small`` preset: RLlib's setting of the issue's anchor (2 samplers x
    4 envs), 1000 env steps per iteration, 4 PPO epochs of 250-sample minibatches."""

    env: str = "simple_tag"
    envs_per_worker: int = 4
    fragment: int = 125
    iterations: int = 12
    actors: tuple[int, ...] = (1, 2)
    async_actors: tuple[int, ...] = (2,)
    claim_actors: int = 2
    ray: bool = True  # False: the single-process loop only (no Ray start)
    rllib: bool = True
    rllib_iterations: int = 8
    epochs: int = 4
    minibatch_size: int = 250
    hidden: int = 64
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "iterations": 3,
            "fragment": 10,
            "ray": False,
            "rllib": False,
        },
        "paper": {"iterations": 60, "actors": (1, 2, 3), "rllib_iterations": 40},
    }


def _slug(label: str) -> str:
    return label.split(" (")[0].replace(", ", "_").replace(" ", "_")


@experiment(
    "distrl.throughput",
    system="S6",
    claim="End-to-end env steps/s on mpe2 simple_tag_v3 with 2 rollout actors is at least 1.5x "
    "RLlib PPO's (new API stack, 2 env runners x 4 envs, same batch, same cores, same run)",
    config=ThroughputConfig,
    time={"smoke": "5 s", "small": "2.5 min", "paper": "15 min"},
    headline=True,
    devices=("cpu",),
    threads=1,
    claims=("vs_rllib",),
)
def throughput(cfg: ThroughputConfig, ctx: RunContext) -> Result:
    base = TrainSettings(
        env=cfg.env,
        mode="multi_player",
        envs_per_worker=cfg.envs_per_worker,
        fragment=cfg.fragment,
        iterations=cfg.iterations,
        seed=ctx.seed,
        minibatch_size=cfg.minibatch_size,
        ppo=PPOConfig(epochs=cfg.epochs, hidden=cfg.hidden),
    )
    rows, facts = measure_throughput(
        base,
        cfg.actors if cfg.ray else (),
        cfg.async_actors if cfg.ray else (),
        rllib=cfg.rllib and cfg.ray,
        rllib_iterations=cfg.rllib_iterations,
        log=lambda row: ctx.log(**row),
    )
    single = rows[0]
    rllib_row = next((r for r in rows if r.label.startswith("RLlib")), None)
    claimed = next(
        (r for r in rows if r.num_workers == cfg.claim_actors and "async" not in r.label), single
    )
    rates = {_slug(r.label): r.env_steps_per_s for r in rows}
    summary: dict[str, Any] = {
        "env_steps_per_s": rates,
        "agent_steps_per_s": {_slug(r.label): r.agent_steps_per_s for r in rows},
        "learner_utilisation": {
            _slug(r.label): r.learner_utilisation for r in rows if r.learner_utilisation is not None
        },
        "policy_lag": {_slug(r.label): r.policy_lag for r in rows if r.policy_lag is not None},
        "load_before": facts["load_before"],
    }
    if rllib_row is not None:
        summary["ratio_vs_rllib"] = {
            _slug(r.label): r.env_steps_per_s / rllib_row.env_steps_per_s
            for r in rows
            if r is not rllib_row
        }
    summary["ratio_vs_single_process"] = {
        _slug(r.label): r.env_steps_per_s / single.env_steps_per_s for r in rows[1:]
    }
    one = next((r for r in rows if r.label == "1 actor"), None)
    two = next((r for r in rows if r.label == "2 actors"), None)
    if one is not None and two is not None:
        summary["scaling_efficiency_1_to_2"] = two.env_steps_per_s / (2 * one.env_steps_per_s)
    cpus = float(facts["cpus"] or 1)
    busy = facts["load_before"] > cpus
    if rllib_row is None:
        reason = f"RLlib PPO was not measured in this run ({facts['rllib']})"
    elif busy:
        reason = (
            f"the machine was busy: 1-min load average {facts['load_before']:.2f} on "
            f"{cpus:g} cores before timing"
        )
    else:
        reason = "RLlib measured on an idle machine"
    claim = Claim(
        key="vs_rllib",
        statement=f"provenml.distrl with {cfg.claim_actors} rollout actors reaches at least "
        f"{RLLIB_FACTOR}x RLlib PPO's end-to-end env steps/s on {cfg.env} "
        f"({cfg.envs_per_worker} envs per sampler, {cfg.fragment}-step fragments, "
        f"{cfg.epochs} epochs of {cfg.minibatch_size}-sample minibatches per iteration)",
        metric="env steps/s (first iteration excluded)",
        ours_label=claimed.label,
        ours=[claimed.env_steps_per_s],
        baselines={
            f"{RLLIB_FACTOR} x RLlib PPO": []
            if rllib_row is None
            else [RLLIB_FACTOR * rllib_row.env_steps_per_s]
        },
        comparison=">=",
        precondition=Precondition(reason, holds=[rllib_row is not None and not busy]),
    )
    table = Table(
        f"Throughput on {cfg.env} (load average {facts['load_before']:.2f} before timing)",
        ["arm", "env steps/s", "agent steps/s", "learner utilisation", "policy lag", "x RLlib"],
        [
            [
                r.label,
                round(r.env_steps_per_s, 1),
                round(r.agent_steps_per_s, 1),
                None if r.learner_utilisation is None else round(r.learner_utilisation, 3),
                None if r.policy_lag is None else round(r.policy_lag, 2),
                None
                if rllib_row is None
                else round(r.env_steps_per_s / rllib_row.env_steps_per_s, 2),
            ]
            for r in rows
        ],
    )
    return Result(
        claims=[claim],
        summary=flatten_summary(summary),
        tables=[table],
        data={"rows": [vars(r) for r in rows], "facts": facts},
    )
