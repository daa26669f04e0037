"""The RLlib baseline: PPO (new API stack) on the same mpe2 game, the same cores, the same
batch sizes, measured end to end like our driver (env steps sampled per second of training,
the first iteration excluded as start-up).

RLlib is the baseline, not a dependency of the toolbox: it is imported only here, inside the
function, and a missing RLlib is reported as such so the caller can mark the comparison
inconclusive instead of failing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from provenml.errors import ProvenmlError

__all__ = ["RLlibThroughput", "rllib_available", "rllib_ppo_throughput"]


@dataclass
class RLlibThroughput:
    env_steps: int  # steady iterations only
    agent_steps: int
    seconds: float
    build_seconds: float
    iterations: int

    @property
    def env_steps_per_s(self) -> float:
        return self.env_steps / self.seconds if self.seconds > 0 else 0.0

    @property
    def agent_steps_per_s(self) -> float:
        return self.agent_steps / self.seconds if self.seconds > 0 else 0.0


def rllib_available() -> str | None:
    """None if RLlib imports, else the reason it does not."""
    try:
        from ray.rllib.algorithms.ppo import PPOConfig  # noqa: F401
        from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv  # noqa: F401
    except ImportError as exc:
        return f"RLlib does not import ({exc})"
    return None


def _lifetime(result: dict[str, Any], key: str) -> int:
    runners = result.get("env_runners", {})
    value = runners.get(key, result.get(key, 0)) or 0
    if isinstance(value, dict):  # per agent
        return int(sum(value.values()))
    return int(value)


def rllib_ppo_throughput(
    env: str = "simple_tag",
    num_env_runners: int = 2,
    envs_per_runner: int = 4,
    fragment: int = 125,
    iterations: int = 5,
    epochs: int = 4,
    minibatch_size: int = 250,
    hidden: int = 64,
    lr: float = 7e-4,
    gamma: float = 0.95,
    seed: int = 0,
) -> RLlibThroughput:
    """Train RLlib PPO (one module per team, the same MLP as ours) for ``iterations`` and
    time every iteration after the first. Needs ``ray.init`` done by the caller."""
    reason = rllib_available()
    if reason is not None:
        raise ProvenmlError(reason)
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
    from ray.tune.registry import register_env

    if env == "simple_tag":
        from mpe2 import simple_tag_v3 as module

        teams = ("adversary", "agent")
    elif env == "simple_adversary":
        from mpe2 import simple_adversary_v3 as module

        teams = ("adversary", "agent")
    else:
        raise ProvenmlError(f"the RLlib baseline runs simple_tag or simple_adversary, not {env!r}")
    name = f"provenml_{env}"
    register_env(name, lambda _cfg: ParallelPettingZooEnv(module.parallel_env(max_cycles=25)))
    batch = num_env_runners * envs_per_runner * fragment
    config = (
        PPOConfig()
        .environment(name)
        .env_runners(
            num_env_runners=num_env_runners,
            num_envs_per_env_runner=envs_per_runner,
            rollout_fragment_length=fragment,
            num_cpus_per_env_runner=1,
        )
        .multi_agent(
            policies=set(teams),
            policy_mapping_fn=lambda agent_id, *args, **kwargs: agent_id.rpartition("_")[0],
        )
        .training(
            train_batch_size_per_learner=batch,
            minibatch_size=minibatch_size,
            num_epochs=epochs,
            lr=lr,
            gamma=gamma,
        )
        .rl_module(
            model_config=DefaultModelConfig(
                fcnet_hiddens=[hidden, hidden], fcnet_activation="tanh", vf_share_layers=False
            )
        )
        .learners(num_learners=0)
        .debugging(seed=seed)
    )
    start = time.perf_counter()
    algo = config.build_algo()
    build_seconds = time.perf_counter() - start
    try:
        first = algo.train()
        env0 = _lifetime(first, "num_env_steps_sampled_lifetime")
        agent0 = _lifetime(first, "num_agent_steps_sampled_lifetime")
        t0 = time.perf_counter()
        result = first
        for _ in range(iterations - 1):
            result = algo.train()
        seconds = time.perf_counter() - t0
        env_steps = _lifetime(result, "num_env_steps_sampled_lifetime") - env0
        agent_steps = _lifetime(result, "num_agent_steps_sampled_lifetime") - agent0
    finally:
        algo.stop()
    return RLlibThroughput(env_steps, agent_steps, seconds, build_seconds, iterations - 1)
