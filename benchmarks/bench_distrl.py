"""Where the time of one distrl iteration goes, per component, in one process (no Ray).

For one rollout worker's fragment (``--envs`` copies x ``--fragment`` steps) on each env, it
times: the env steps alone (random actions), the policy forward (torch ``TeamPolicy`` and the
numpy ``NumpyTeamPolicy`` the workers use), a whole ``RolloutWorker.sample``, and one
``Learner.update`` on that fragment. The ratio of learner time to sample time says whether
the learner or the samplers bound a synchronous iteration (``distrl.throughput`` reports the
same as learner utilisation). Quote the load average printed with the run.

    .venv/bin/python benchmarks/bench_distrl.py [--envs 4] [--fragment 125] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from provenml.distrl.envs import make_env
from provenml.distrl.learner import Learner, NumpyTeamPolicy, TeamPolicy, numpy_weights
from provenml.distrl.rollout import RolloutWorker
from provenml.rl import PPOConfig


def _best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench(env_name: str, envs: int, fragment: int, repeat: int) -> None:
    env = make_env(env_name, envs, seed=0)
    obs = env.reset()
    rng = np.random.default_rng(0)

    def env_only() -> None:
        nonlocal obs
        for _ in range(fragment):
            actions = {
                t: rng.integers(0, s.num_actions, (envs, len(s.agents)))
                for t, s in env.teams.items()
            }
            obs = env.step(actions).obs

    policies = {t: TeamPolicy(s) for t, s in env.teams.items()}
    fast = {t: NumpyTeamPolicy(len(s.agents)) for t, s in env.teams.items()}
    for t in fast:
        fast[t].load(numpy_weights(policies[t]))

    def torch_forward() -> None:
        with torch.no_grad():
            for _ in range(fragment):
                for t, p in policies.items():
                    p.logits_and_value(torch.from_numpy(obs[t]))

    def numpy_forward() -> None:
        for _ in range(fragment):
            for t, p in fast.items():
                p.act(obs[t], rng)

    controllers = (
        {t: f"learner:{t}" for t in env.teams}
        if env_name != "wargame"
        else {
            "red": "learner:red",
            "blue": "scripted:rush",
        }
    )
    worker = RolloutWorker(env_name, envs, fragment, controllers, threads=None)
    weights = {t: numpy_weights(policies[t]) for t in worker.policies}
    fragments, _ = worker.sample(weights)
    learners = {t: Learner(env.teams[t], PPOConfig(), minibatch_size=250) for t in fragments}
    steps = envs * fragment
    rows = {
        "env only": _best(env_only, repeat),
        "torch forward": _best(torch_forward, repeat),
        "numpy forward + sampling": _best(numpy_forward, repeat),
        "RolloutWorker.sample": _best(lambda: worker.sample(weights), repeat),
        "Learner.update (all players)": _best(
            lambda: [learners[t].update([fragments[t]]) for t in learners], repeat
        ),
    }
    print(f"\n{env_name}: {envs} envs x {fragment} steps = {steps} env steps")
    for name, seconds in rows.items():
        print(f"  {name:30s} {seconds * 1e3:9.1f} ms   {steps / seconds:10.0f} env steps/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--fragment", type=int, default=125)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--env", default="simple_tag,simple_tag_np,wargame")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for name in args.env.split(","):
        bench(name, args.envs, args.fragment, args.repeat)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    import provenml.distrl  # noqa: F401 - registers simple_tag_np

    main()
