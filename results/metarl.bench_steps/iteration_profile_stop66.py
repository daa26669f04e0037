"""Stop 66: where a DynaMITE-RL and a VariBAD training iteration's CPU time goes now, and the
belief step's largest operators (why issue 22's 4x was not tried again).

    PYTHONPATH=src .venv/bin/python results/metarl.bench_steps/iteration_profile_stop66.py

Per agent, on the grid world's ``small`` settings (256 envs, 12 belief steps of 64 episodes,
8 PPO epochs; one thread): the steady-state parts of an iteration (``train_agent``'s
``timings`` for 7 iterations less those for 1, over 6), then one belief step's CPU time
(20 steps after 5) and its ten costliest operators by self time (``torch.profiler``, 10
steps). The load average is printed at the start and the end.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_metarl_steps import belief_step_setup
from provenml.metarl.experiments import GridworldConfig
from provenml.metarl.train import train_agent


def parts(name: str) -> dict[str, float]:
    def run(iterations: int) -> dict[str, float]:
        cfg = GridworldConfig(total_steps=256 * 60 * iterations, model_pretrain_updates=0)
        timings: dict[str, float] = {}
        train_agent(name, cfg.train_config(), seed=0, timings=timings)
        return timings

    first, total = run(1), run(7)
    return {k: (total[k] - first.get(k, 0.0)) / 6 * 1e3 for k in total}


def belief_step(name: str) -> None:
    step, _, _ = belief_step_setup(name, "gridworld")
    for _ in range(5):
        step()
    start = time.process_time()
    for _ in range(20):
        step()
    print(f"{name}: one belief step {(time.process_time() - start) / 20 * 1e3:.1f} ms")
    with torch.profiler.profile() as prof:
        for _ in range(10):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(f"# {time.strftime('%H:%M:%SZ', time.gmtime())}, load average {os.getloadavg()}")
    for agent in ("dynamite", "varibad"):
        ms = parts(agent)
        cells = ", ".join(f"{k} {v:.1f}" for k, v in ms.items())
        print(f"{agent}: steady iteration {sum(ms.values()):.1f} ms CPU ({cells})")
        belief_step(agent)
    print(f"# end {time.strftime('%H:%M:%SZ', time.gmtime())}, load average {os.getloadavg()}")
