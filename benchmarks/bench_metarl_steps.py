"""Environment steps per second: the batched session grid world and PPO training with each
agent, as ratios against a single-env ``gymnasium.Env`` loop measured in the same run.

    .venv/bin/python benchmarks/bench_metarl_steps.py [--num-envs 256] [--iterations 3]

The anchor is the plain loop everyone writes first: one ``SessionGridWorld`` (a gymnasium
``Env``), ``env.step(env.action_space.sample())``, no learning. Training numbers include the
policy forward pass, the belief model, PPO and the belief-model update, with 1 torch thread,
under the settings of the ``metarl.gridworld`` small preset (8 PPO epochs, 12 belief steps of
64 episodes, 64 random-action episodes per batch for the belief agents), without the one-off
pretraining steps on the first batch (a fixed cost per run, not a rate).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from provenml.metarl.envs import SessionGridWorld, SessionGridWorldVec
from provenml.metarl.experiments import GridworldConfig
from provenml.metarl.train import train_agent


def single_env_loop(steps: int) -> float:
    env = SessionGridWorld()
    env.reset(seed=0)
    env.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def batched_env(num_envs: int, episodes: int) -> float:
    env = SessionGridWorldVec(num_envs)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for episode in range(episodes):
        env.reset(seed=episode)
        for _ in range(env.horizon):
            env.step(rng.integers(0, 5, size=num_envs))
    return num_envs * env.horizon * episodes / (time.perf_counter() - start)


def training(agent: str, num_envs: int, iterations: int) -> float:
    preset = GridworldConfig(
        num_envs=num_envs, total_steps=num_envs * 60 * iterations, model_pretrain_updates=0
    )
    cfg = preset.train_config()
    start = time.perf_counter()
    train_agent(agent, cfg, seed=0, threads=1)
    return cfg.total_steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    anchor = single_env_loop(20_000)
    rows = [("single gymnasium.Env loop (anchor)", anchor)]
    rows.append((f"SessionGridWorldVec, {args.num_envs} envs", batched_env(args.num_envs, 50)))
    training("dynamite", 8, 1)  # warm-up: torch's first-call costs are not the agent's
    for agent in ("memoryless", "oracle", "bayes_filter", "rl2", "varibad", "dynamite"):
        rows.append(
            (
                f"PPO training: {agent}, {args.num_envs} envs",
                training(agent, args.num_envs, args.iterations),
            )
        )
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; torch threads 1")
    print(f"{'what':<45} {'env steps/s':>12} {'x anchor':>9}")
    for name, rate in rows:
        print(f"{name:<45} {rate:>12,.0f} {rate / anchor:>9.2f}")


if __name__ == "__main__":
    main()
