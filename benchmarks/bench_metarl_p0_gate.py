"""Does DynaMITE-RL's termination gate fire at p = 0, where no session ever ends? (issue 22)

    .venv/bin/python benchmarks/bench_metarl_p0_gate.py [--seeds 0,2] [--jobs 2]

Trains DynaMITE-RL at session-end probability p = 0 with the ``metarl.session_rate`` small
settings (so each run reproduces that experiment's p = 0 DynaMITE-RL part, seed for seed),
then evaluates the trained agent on the experiment's fixed p = 0 episodes twice, changing one
thing: as trained (the gate ``c = sigmoid(termination_logit)`` mixes the session-reset branch
into the belief at every step), and with the gate held shut at test time (``c = 0``: the
belief is the plain GRU branch; same weights, same policy). On the first evaluation it also
reports how often the gate opens: the mean gate, the share of steps with ``c > 0.5`` and the
share of episodes with at least one such step. One JSON line per seed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from typing import Any


def run(seed: int, total_steps: int | None = None) -> dict[str, Any]:
    import torch

    from provenml.metarl import train
    from provenml.metarl.agents import BeliefAgent
    from provenml.metarl.experiments import SessionRateConfig

    torch.set_num_threads(1)
    cfg = SessionRateConfig()
    if total_steps is not None:  # a quick check of the script, not the experiment's setting
        cfg = SessionRateConfig(total_steps=total_steps, model_pretrain_updates=2)
    p = 0.0
    start = time.process_time()
    trained = train.train_agent("dynamite", cfg.train_config(p), seed=seed)
    seconds = time.process_time() - start
    agent = trained.agent
    assert isinstance(agent, BeliefAgent)
    options = train.evaluation_options(cfg.env, cfg.eval_episodes, p, cfg.eval_seed)
    as_trained = train.evaluate(agent, cfg.env, options, p, seed=cfg.eval_seed + 1)

    # how often the gate opens on the evaluation episodes the agent itself played
    env = train.make_vec_env(cfg.env, cfg.eval_episodes, p)
    agent.eval()
    batch = train.collect(
        agent,
        env,
        torch.Generator().manual_seed(cfg.eval_seed + 1),
        seed=cfg.eval_seed + 1,
        options=options,
    )
    with torch.no_grad():
        logits = agent.encoder(batch.transitions).termination_logit
    assert logits is not None
    gate = torch.sigmoid(logits)
    opened = gate > 0.5

    agent.encoder.gate_while_acting = False
    try:
        shut = train.evaluate(agent, cfg.env, options, p, seed=cfg.eval_seed + 1)
    finally:
        agent.encoder.gate_while_acting = True
    curve = trained.curve_returns
    return {
        "seed": seed,
        "return_as_trained": as_trained.mean_return,
        "return_gate_shut_at_test": shut.mean_return,
        "mean_gate": float(gate.mean()),
        "steps_gate_open": float(opened.float().mean()),
        "episodes_gate_open": float(opened.any(1).float().mean()),
        "train_return_last": round(curve[-1], 2),
        "train_return_min_last_40": round(min(curve[-40:]), 2),
        "cpu_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,2")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--total-steps", type=int, default=None, help="quick check only")
    args = parser.parse_args()
    tasks = [(int(s), args.total_steps) for s in args.seeds.split(",")]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for row in pool.starmap(run, tasks):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
