"""Why DynaMITE-RL trails VariBAD at p = 0 (issue 22, item 2): controlled single-change runs.

    flock /tmp/provenml-heavy.lock .venv/bin/python benchmarks/bench_metarl_p0.py \\
        [--seeds 0,1,2] [--variants dynamite,varibad,...] [--jobs 2] [--out p0.jsonl]

Every run trains one agent at session-end probability p = 0 (one session per episode) with
the ``metarl.session_rate`` small settings (300k env steps, 150 belief pretraining steps) and
evaluates it on that experiment's fixed p = 0 episodes. Variants (each one change to
DynaMITE-RL, except ``varibad``):

* ``dynamite``: the method as shipped; ``varibad``: VariBAD;
* ``detached``: the termination head reads a detached GRU state (its loss no longer trains
  the recurrence; ``BeliefEncoder.termination_into_gru = False``);
* ``gate_closed``: the termination head's bias starts at -10 (gate 5e-5 instead of ~0.5),
  so the gated update starts as the plain GRU;
* ``varibad_init``: every parameter DynaMITE-RL shares with VariBAD (policy, embedding, GRU,
  belief head, decoder) starts from VariBAD's initial values for the same seed;
* ``no_consistency``: ``dynamite_no_consistency`` (the latent-consistency loss off);
* ``gate_closed_no_consistency``: both of the two changes above.

Prints one JSON line per run (return, training-return curve at four checkpoints, belief
probe, final mean gate on the evaluation episodes) and a table of means per variant.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from typing import Any

VARIANTS = (
    "dynamite",
    "varibad",
    "detached",
    "gate_closed",
    "varibad_init",
    "no_consistency",
    "gate_closed_no_consistency",
)


def run(variant: str, seed: int) -> dict[str, Any]:
    import torch
    from torch import nn

    import provenml.metarl.train as train
    from provenml.metarl.agents import BeliefAgent
    from provenml.metarl.experiments import SessionRateConfig

    torch.set_num_threads(1)
    cfg = SessionRateConfig()
    p = 0.0
    train_cfg = cfg.train_config(p)
    agent_name = {"varibad": "varibad", "no_consistency": "dynamite_no_consistency"}.get(
        variant, "dynamite"
    )
    if variant == "gate_closed_no_consistency":
        agent_name = "dynamite_no_consistency"
    build = train.build_agent

    def patched(name: str, env: Any, tcfg: Any) -> Any:
        if variant == "varibad_init":
            state = torch.get_rng_state()
            reference = build("varibad", env, tcfg)
            torch.set_rng_state(state)
            agent = build(name, env, tcfg)
            shared = {k: v for k, v in reference.state_dict().items()}
            own = agent.state_dict()
            copied = {k: v for k, v in shared.items() if k in own and own[k].shape == v.shape}
            assert len(copied) == len(shared), "VariBAD's parameters are all in DynaMITE-RL"
            agent.load_state_dict(copied, strict=False)
            return agent
        agent = build(name, env, tcfg)
        assert isinstance(agent, BeliefAgent)
        if variant == "detached":
            agent.encoder.termination_into_gru = False
        if variant.startswith("gate_closed"):
            nn.init.constant_(agent.encoder.termination.bias, -10.0)
        return agent

    train.build_agent = patched
    start = time.process_time()
    trained = train.train_agent(agent_name, train_cfg, seed=seed)
    seconds = time.process_time() - start
    train.build_agent = build
    options = train.evaluation_options(cfg.env, cfg.eval_episodes, p, cfg.eval_seed)
    ev = train.evaluate(trained.agent, cfg.env, options, p, seed=cfg.eval_seed + 1)
    gate = float("nan")
    agent = trained.agent
    if isinstance(agent, BeliefAgent) and agent.encoder.session_aware:
        inputs, _ = train.scripted_gridworld_rollout(options, p, "infer_and_switch")
        with torch.no_grad():
            logits = agent.encoder(inputs).termination_logit
        assert logits is not None
        gate = float(torch.sigmoid(logits).mean())
    curve = trained.curve_returns
    marks = [len(curve) * k // 4 - 1 for k in (1, 2, 3, 4)]
    return {
        "variant": variant,
        "seed": seed,
        "return": ev.mean_return,
        "belief_probe": ev.belief_accuracy,
        "train_return": [round(curve[m], 2) for m in marks],
        "gate_on_infer_and_switch": gate,
        "cpu_seconds": round(seconds, 1),
    }


def _run(args: tuple[str, int]) -> dict[str, Any]:
    return run(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=None, help="append the JSON lines to this file")
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    tasks = [(v, int(s)) for s in args.seeds.split(",") for v in variants]
    rows = []
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for row in pool.imap_unordered(_run, tasks):
            print(json.dumps(row), flush=True)
            rows.append(row)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
    print(f"{'variant':<28} {'return (per seed)':<40} {'mean':>6}")
    for variant in variants:
        mine = sorted((r for r in rows if r["variant"] == variant), key=lambda r: r["seed"])
        per_seed = " / ".join(f"{r['return']:.1f}" for r in mine)
        mean = sum(r["return"] for r in mine) / len(mine)
        print(f"{variant:<28} {per_seed:<40} {mean:>6.2f}")


if __name__ == "__main__":
    main()
