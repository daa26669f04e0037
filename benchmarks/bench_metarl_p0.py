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
* ``gate_closed_no_consistency``: both of the two changes above;
* ``all_off``: every change above at once (no consistency loss, gate shut from the start, head
  detached, VariBAD's initial values): what is left of DynaMITE-RL at p = 0 is then only the
  session-aware code path itself (the gated recurrence with a gate of ~5e-5, the inert
  masking and prior-KL target) and the termination head's own gradient in the belief model's
  clipped gradient norm. A control: if it still trails VariBAD, the gap is an artefact of
  that path; if it does not, the removed parts explain it between them.

Prints one JSON line per run (return, training-return curve at four checkpoints, belief
probe, final mean gate on the evaluation episodes) and a table of means per variant.

``--gradients`` instead prints, for DynaMITE-RL at p = 0, the norm of the gradient that each
loss term sends into the GRU's weights (ELBO, termination head, consistency) on the first
batch (256 episodes of the initial policy, 64 of them random) and after 50 and 150
belief-model steps (a few seconds; no policy training).
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
    "all_off",
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
    if variant in ("gate_closed_no_consistency", "all_off"):
        agent_name = "dynamite_no_consistency"
    build = train.build_agent

    def patched(name: str, env: Any, tcfg: Any) -> Any:
        if variant in ("varibad_init", "all_off"):
            state = torch.get_rng_state()
            reference = build("varibad", env, tcfg)
            torch.set_rng_state(state)
            agent = build(name, env, tcfg)
            shared = {k: v for k, v in reference.state_dict().items()}
            own = agent.state_dict()
            copied = {k: v for k, v in shared.items() if k in own and own[k].shape == v.shape}
            assert len(copied) == len(shared), "VariBAD's parameters are all in DynaMITE-RL"
            agent.load_state_dict(copied, strict=False)
        else:
            agent = build(name, env, tcfg)
        assert isinstance(agent, BeliefAgent)
        if variant in ("detached", "all_off"):
            agent.encoder.termination_into_gru = False
        if variant.startswith("gate_closed") or variant == "all_off":
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


def gradient_shares(seed: int = 0) -> list[dict[str, float]]:
    """Norms of the gradients of each belief-loss term on the GRU weights, DynaMITE-RL, p = 0."""
    import torch
    from torch.nn import functional as F

    from provenml.metarl import train
    from provenml.metarl.agents import BeliefAgent
    from provenml.metarl.belief import consistency_loss, session_starts
    from provenml.metarl.experiments import SessionRateConfig

    torch.set_num_threads(1)
    cfg = SessionRateConfig().train_config(0.0)
    env = train.make_vec_env("gridworld", cfg.num_envs, 0.0)
    torch.manual_seed(seed)
    agent = train.build_agent("dynamite", env, cfg)
    assert isinstance(agent, BeliefAgent)
    generator = torch.Generator().manual_seed(seed)
    buffer = train.EpisodeBuffer(cfg.model_buffer)
    explore = torch.arange(cfg.num_envs) >= cfg.num_envs - cfg.explore_envs
    buffer.add(train.collect(agent, env, generator, seed=seed, random_envs=explore))
    optimizer = torch.optim.Adam(agent.model_parameters(), lr=cfg.model_lr)
    enc = agent.encoder
    weights = [enc.gru.weight_ih_l0, enc.gru.weight_hh_l0, enc.gru.bias_ih_l0, enc.gru.bias_hh_l0]
    rows = []
    for step in range(151):
        episodes = buffer.sample(cfg.model_batch, generator)
        if step in (0, 50, 150):
            with_elbo = agent.model_loss(episodes, torch.Generator().manual_seed(step))
            assert with_elbo is not None
            beliefs = enc(episodes["transitions"])
            assert beliefs.termination_logit is not None
            ends = episodes["session_end"]
            terms = {
                "termination": F.binary_cross_entropy_with_logits(
                    beliefs.termination_logit, session_starts(ends).float()
                ),
                "consistency": consistency_loss(beliefs.mu, beliefs.logvar, ends) / ends.shape[1],
                "total_belief_loss": with_elbo[0],
            }
            row: dict[str, float] = {"step": step}
            for name, term in terms.items():
                grads = torch.autograd.grad(term, weights, retain_graph=True)
                row[name] = float(torch.sqrt(sum((g**2).sum() for g in grads)))
            row["gate"] = float(torch.sigmoid(beliefs.termination_logit.detach()).mean())
            rows.append(row)
        out = agent.model_loss(episodes, generator)
        assert out is not None
        optimizer.zero_grad()
        out[0].backward()
        torch.nn.utils.clip_grad_norm_(agent.model_parameters(), 1.0)
        optimizer.step()
    return rows


def _run(args: tuple[str, int]) -> dict[str, Any]:
    return run(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=None, help="append the JSON lines to this file")
    parser.add_argument("--gradients", action="store_true", help="gradient norms only")
    parser.add_argument("--summarize", help="print the table of a JSON-lines file and exit")
    args = parser.parse_args()
    if args.summarize:
        with open(args.summarize) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        summarize(rows, list(dict.fromkeys(r["variant"] for r in rows)))
        return
    if args.gradients:
        for row in gradient_shares():
            print(json.dumps({k: round(v, 5) for k, v in row.items()}))
        return
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
    summarize(rows, variants)


def summarize(rows: list[dict[str, Any]], variants: list[str]) -> None:
    """Per variant: returns per seed, mean and sd, and Welch's two-sided p against VariBAD
    and against DynaMITE-RL as shipped (where those ran)."""
    import numpy as np
    from scipy.stats import ttest_ind

    returns = {
        v: [r["return"] for r in sorted(rows, key=lambda r: r["seed"]) if r["variant"] == v]
        for v in variants
    }

    def welch(a: list[float], b: list[float] | None) -> str:
        if not b or len(a) < 2 or len(b) < 2 or a is b:
            return "-"
        return f"{ttest_ind(a, b, equal_var=False).pvalue:.3f}"

    header = f"{'variant':<28} {'mean':>6} {'sd':>6} {'p vs varibad':>13} {'p vs dynamite':>14}"
    print(header + "  per seed")
    for v in variants:
        got = returns[v]
        per_seed = " / ".join(f"{x:.1f}" for x in got)
        sd = float(np.std(got, ddof=1)) if len(got) > 1 else float("nan")
        print(
            f"{v:<28} {np.mean(got):>6.2f} {sd:>6.2f} {welch(got, returns.get('varibad')):>13} "
            f"{welch(got, returns.get('dynamite')):>14}  {per_seed}"
        )


if __name__ == "__main__":
    main()
