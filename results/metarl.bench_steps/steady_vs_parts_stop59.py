"""Stop 56 reported a DynaMITE-RL iteration as 311 ms by ``--parts`` and 439 ms by
``--steady`` (docs/metarl.md, *Stop 56*), measured 15 minutes apart. Both are differences of
``train_agent`` calls (1 and 1 + K iterations); this times both in one process, twice, to see
whether the gap is in the measure or in the host's speed between the two runs.

    PYTHONPATH=src .venv/bin/python results/metarl.bench_steps/steady_vs_parts_stop59.py
"""

from __future__ import annotations

import json
import os
import time

import torch

from provenml.metarl import experiments
from provenml.metarl.train import train_agent

torch.set_num_threads(1)


def run(agent: str, iterations: int) -> tuple[float, dict[str, float]]:
    preset = experiments.GridworldConfig(
        num_envs=256, total_steps=256 * 60 * iterations, model_pretrain_updates=0
    )
    timings: dict[str, float] = {}
    start = time.process_time()
    train_agent(agent, preset.train_config(), seed=0, timings=timings)
    return time.process_time() - start, timings


if __name__ == "__main__":
    print(f"# load average {os.getloadavg()[0]:.2f} at the start")
    run("dynamite", 1)  # warm-up
    for _ in range(2):
        one, parts_one = run("dynamite", 1)
        five, parts_five = run("dynamite", 5)
        parts = {k: (parts_five[k] - parts_one.get(k, 0.0)) / 4 * 1e3 for k in parts_five}
        print(
            f"steady-state iteration {(five - one) / 4 * 1e3:.1f} CPU ms; the parts "
            f"{json.dumps({k: round(v, 1) for k, v in parts.items()})}, summed "
            f"{sum(parts.values()):.1f} ms",
            flush=True,
        )
    print(f"# load average {os.getloadavg()[0]:.2f} at the end")
