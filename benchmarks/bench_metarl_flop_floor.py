"""How far the belief agents' training iteration is from its arithmetic floor (issue 22).

    .venv/bin/python benchmarks/bench_metarl_flop_floor.py [--agents varibad,dynamite]
        [--baseline 9eb247f]

Issue 22 asks for a training iteration 4x faster than the baseline commit, "with the same
maths". This prints, per belief agent under the ``metarl.gridworld`` small preset (256 envs,
8 PPO epochs x 4 minibatches, 12 belief-model steps of 64 episodes, one torch thread):

* the floating-point work of one iteration, counted by ``torch.utils.flop_counter`` (matrix
  products, forward and backward): collection, the PPO update and the belief-model update;
* the single-thread matrix-product rate of this machine at the iteration's shapes (the best
  of a few ``torch.mm`` shapes it uses), and the floor it implies: the iteration's FLOPs at
  that rate, with every other operation free;
* the measured iteration time (CPU seconds, best of ``--repeats``) of this checkout and of the
  baseline, and the share of the matrix-product peak each reaches; the 4x target is the
  baseline's time / 4, and the share of peak it would need.

``--compile-check`` (stop 39) times instead, per agent, the two parts that dominate an
iteration, eagerly and through ``torch.compile`` (inductor, C++ code for the CPU, one thread):
one belief-model step (``agent.model_loss`` compiled; its backward and the Adam step as they
are) and one PPO minibatch (the clipped surrogate, value and entropy loss of ``train.py``
compiled, its backward and the Adam step as they are), with the compile time; round 7's
remark was that a compiled training loop is what a 4x would take.

The floor is a lower bound, not an estimate: elementwise work, the environment and Python
are counted as free. Measure on an idle machine (the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_metarl_steps import BASELINE, REPO, export_baseline  # noqa: E402

SHAPES = ((2880, 64, 64), (2880, 17, 64), (64, 64, 192), (128, 64, 192), (3840, 32, 192))


def iteration_flops(agent_name: str) -> dict[str, float]:
    """FLOPs of one training iteration's parts (matrix products, forward and backward)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from provenml.metarl.experiments import GridworldConfig
    from provenml.metarl.train import EpisodeBuffer, build_agent, collect, make_vec_env

    cfg = GridworldConfig(num_envs=256).train_config()
    env = make_vec_env(cfg.env, cfg.num_envs, cfg.session_end_prob, cfg.goal_layout)
    agent = build_agent(agent_name, env, cfg)
    generator = torch.Generator().manual_seed(0)
    counter = FlopCounterMode(display=False)
    with counter:
        batch = collect(agent, env, generator, seed=0)
    collection = counter.get_total_flops()
    buffer = EpisodeBuffer(cfg.model_buffer)
    buffer.add(batch)
    counter = FlopCounterMode(display=False)
    with counter:
        out = agent.model_loss(buffer.sample(cfg.model_batch, generator), generator)
        assert out is not None
        out[0].backward()
    belief_step = counter.get_total_flops()
    p = cfg.ppo
    per_mb = (cfg.num_envs - cfg.explore_envs) // p.minibatches
    mb = batch.select(torch.arange(per_mb))
    clock = (torch.arange(env.horizon) / env.horizon)[None, :, None].expand(per_mb, -1, 1)
    counter = FlopCounterMode(display=False)
    with counter:  # the PPO minibatch's matrix products: actor and critic, forward and backward
        policy_in = torch.cat([mb.obs, clock, agent.policy_features(mb)], -1)
        dist = agent.policy.distribution(policy_in)
        loss = -dist.log_prob(mb.actions).mean() + agent.policy.value(policy_in).pow(2).mean()
        loss.backward()
    ppo_step = counter.get_total_flops()
    return {
        "collection": float(collection),
        "ppo": float(ppo_step * p.epochs * p.minibatches),
        "belief": float(belief_step * cfg.model_updates),
    }


def matmul_rate() -> tuple[float, str]:
    """The best single-thread ``torch.mm`` rate (FLOP/s) over the iteration's shapes."""
    import torch

    best, where = 0.0, ""
    for m, k, n in SHAPES:
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(50):
            a @ b
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < 0.3:
            for _ in range(50):
                a @ b
            calls += 50
        rate = 2 * m * k * n * calls / (time.perf_counter() - start)
        if rate > best:
            best, where = rate, f"{m}x{k} @ {k}x{n}"
    return best, where


def worker(agent: str) -> None:
    import torch

    torch.set_num_threads(1)
    from bench_metarl_steps import _training

    _training("dynamite", 8, 1)  # warm-up
    iterations = 3
    rate = _training(agent, 256, iterations)  # env steps per CPU second
    print(json.dumps({"seconds": 256 * 60 / rate}))


def iteration_seconds(src: Path, agent: str) -> float:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{HERE}", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--worker", agent]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def _step_ms(step: Any, calls: int = 12) -> float:
    """Best-of-3 CPU milliseconds per call of ``step`` (after two warm-up calls)."""
    for _ in range(2):
        step()
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(calls):
            step()
        best = min(best, (time.process_time() - start) / calls * 1e3)
    return best


def compile_check(agent_name: str) -> None:
    """A belief-model step and a PPO minibatch, eager against ``torch.compile``."""
    import torch

    from provenml.metarl.experiments import GridworldConfig
    from provenml.metarl.train import EpisodeBuffer, build_agent, collect, make_vec_env
    from provenml.rl.ppo import gae, ppo_clip_loss

    cfg = GridworldConfig(num_envs=256).train_config()
    env = make_vec_env(cfg.env, cfg.num_envs, cfg.session_end_prob, cfg.goal_layout)
    agent = build_agent(agent_name, env, cfg)
    generator = torch.Generator().manual_seed(0)
    batch = collect(agent, env, generator, seed=0)
    buffer = EpisodeBuffer(cfg.model_buffer)
    buffer.add(batch)
    sample = buffer.sample(cfg.model_batch, generator)
    model_opt = torch.optim.Adam(agent.model_parameters(), lr=cfg.model_lr)

    def belief_step(loss_fn: Any) -> Any:
        def step() -> None:
            out = loss_fn(sample, generator)
            model_opt.zero_grad()
            out[0].backward()
            model_opt.step()

        return step

    p = cfg.ppo
    per_mb = (cfg.num_envs - cfg.explore_envs) // p.minibatches
    mb = batch.select(torch.arange(per_mb))
    advantages, returns = gae(batch.rewards[:per_mb], batch.values[:per_mb], p.gamma, p.gae_lambda)
    clock = (torch.arange(env.horizon) / env.horizon)[None, :, None].expand(per_mb, -1, 1)
    model_ids = {id(q) for q in agent.model_parameters()}
    rl_opt = torch.optim.Adam([q for q in agent.parameters() if id(q) not in model_ids], lr=p.lr)

    def ppo_loss() -> torch.Tensor:  # train.py's minibatch loss
        policy_in = torch.cat([mb.obs, clock, agent.policy_features(mb)], -1)
        dist = agent.policy.distribution(policy_in)
        adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        pg_loss = ppo_clip_loss(dist.log_prob(mb.actions), mb.logp, adv, p.clip)
        value_loss = 0.5 * ((agent.policy.value(policy_in) - returns) ** 2).mean()
        return pg_loss + p.value_coef * value_loss - p.entropy_coef * dist.entropy().mean()

    def ppo_step(loss_fn: Any) -> Any:
        def step() -> None:
            loss = loss_fn()
            rl_opt.zero_grad()
            loss.backward()
            rl_opt.step()

        return step

    for part, make, fn in (
        ("belief-model step", belief_step, agent.model_loss),
        ("PPO minibatch", ppo_step, ppo_loss),
    ):
        eager = _step_ms(make(fn))
        compiled = torch.compile(fn)
        start = time.perf_counter()
        make(compiled)()
        seconds = time.perf_counter() - start
        fast = _step_ms(make(compiled))
        print(
            f"{agent_name} {part}: eager {eager:.1f} ms, torch.compile {fast:.1f} ms "
            f"({eager / fast:.2f}x), first compiled call {seconds:.1f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="varibad,dynamite")
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--compile-check", action="store_true")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    if args.compile_check:
        import torch

        torch.set_num_threads(1)
        print("load average at the start", tuple(round(v, 2) for v in os.getloadavg()))
        for agent in args.agents.split(","):
            compile_check(agent)
        print("load average at the end", tuple(round(v, 2) for v in os.getloadavg()))
        return
    import torch

    torch.set_num_threads(1)
    load_start = os.getloadavg()
    peak, shape = matmul_rate()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old_src = export_baseline(args.baseline, Path(tmp))
        for agent in args.agents.split(","):
            flops = iteration_flops(agent)
            old = min(iteration_seconds(old_src, agent) for _ in range(args.repeats))
            new = min(iteration_seconds(REPO / "src", agent) for _ in range(args.repeats))
            rows.append((agent, flops, old, new))
    load_end = os.getloadavg()
    print(
        f"load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end; 1 torch "
        f"thread; matrix-product peak {peak / 1e9:.0f} GFLOP/s ({shape}); baseline "
        f"{args.baseline}; CPU seconds per iteration (256 episodes of 60 steps), best of "
        f"{args.repeats}"
    )
    for agent, flops, old, new in rows:
        total = sum(flops.values())
        floor = total / peak
        parts = ", ".join(f"{k} {v / 1e9:.2f}" for k, v in flops.items())
        print(f"{agent}: {total / 1e9:.2f} GFLOP per iteration ({parts})")
        print(
            f"  floor at the peak {floor:.3f} s; baseline {old:.3f} s ({total / old / peak:.0%} "
            f"of peak), this checkout {new:.3f} s ({total / new / peak:.0%} of peak, "
            f"{old / new:.2f}x the baseline); 4x target {old / 4:.3f} s needs "
            f"{total / (old / 4) / peak:.0%} of peak; the floor allows at most "
            f"{old / floor:.1f}x"
        )


if __name__ == "__main__":
    main()
