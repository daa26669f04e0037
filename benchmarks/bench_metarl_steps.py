"""Environment steps per second: the batched session grid world and PPO training with each
agent, as ratios against a single-env ``gymnasium.Env`` loop and against an earlier commit
of the package (the implementation before the belief agents' speed work), in one run.

    .venv/bin/python benchmarks/bench_metarl_steps.py [--num-envs 256] [--iterations 3]
        [--baseline 9eb247f] [--repeats 2] [--parts] [--env gridworld|reacher]

The anchor is the plain loop everyone writes first: one ``SessionGridWorld`` (a gymnasium
``Env``), ``env.step(env.action_space.sample())``, no learning. Training numbers include the
policy forward pass, the belief model, PPO and the belief-model update, with 1 torch thread,
under the settings of the ``metarl.gridworld`` small preset (8 PPO epochs, 12 belief steps of
64 episodes, 64 random-action episodes per batch for the belief agents), without the one-off
pretraining steps on the first batch (a fixed cost per run, not a rate). "belief step" is one
belief-model gradient step on 64 buffered episodes (loss, backward, clipping, Adam).

Each training figure comes from a fresh subprocess that imports either this checkout's
``src`` or the ``--baseline`` commit's ``src`` (exported with ``git archive``); old and new
alternate, ``--repeats`` times, and the best of each is kept. A third
arm runs this checkout with ``PROVENML_NATIVE=0`` (PyTorch everywhere instead of the C
kernels: the belief recurrence and input projection, ``provenml.metarl.native``; the PPO loss
and the acting step, ``provenml.rl.native``), so the kernels' own share shows in the same run. Rates
are env steps per CPU second of the measuring process (``time.process_time``), so that other
jobs on a shared machine distort them less than wall time would; the load average is printed
with them.

``--env reacher`` trains on the continuous point mass of ``metarl.reacher`` (its preset's
settings; the belief agents' reward decoder there reads the state, so the ELBO decodes every
(latent, transition) pair through a two-layer network) instead of the grid world; the anchor
and the batched-env row stay the grid world's.

``--steady K`` adds a training iteration's CPU time in the steady state, for the baseline and
this checkout alike: in one fresh process per version, ``train_agent`` for 1 iteration and for
``1 + K``, the difference over ``K`` (so the set-up and the first iteration's one-off costs,
which the rates above spread over ``--iterations`` iterations, drop out; old and new
alternate, best of ``--repeats``).

``--parts`` adds, for this checkout (with its C kernels and with ``PROVENML_NATIVE=0``), where
an iteration's CPU time goes: collection, the PPO update and the belief model, in ms per
iteration, as ``train_agent(..., timings=...)`` records them (fresh subprocesses, best of
``--repeats`` per part, over ``--iterations`` iterations after a first one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
AGENTS = ("memoryless", "oracle", "bayes_filter", "rl2", "varibad", "dynamite")
BELIEF_AGENTS = ("varibad", "dynamite")
BASELINE = "9eb247f"  # the last commit before the belief agents' speed work (issue 22)


def single_env_loop(steps: int) -> float:
    from provenml.metarl.envs import SessionGridWorld

    env = SessionGridWorld()
    env.reset(seed=0)
    env.action_space.seed(0)
    start = time.process_time()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.process_time() - start)


def batched_env(num_envs: int, episodes: int) -> float:
    from provenml.metarl.envs import SessionGridWorldVec

    env = SessionGridWorldVec(num_envs)
    rng = np.random.default_rng(0)
    start = time.process_time()
    for episode in range(episodes):
        env.reset(seed=episode)
        for _ in range(env.horizon):
            env.step(rng.integers(0, 5, size=num_envs))
    return num_envs * env.horizon * episodes / (time.process_time() - start)


# ------------------------------------------------------------------------------------------
# worker: runs inside a subprocess against whichever ``provenml`` is on PYTHONPATH
# ------------------------------------------------------------------------------------------


def _preset_class(env: str) -> Any:
    """The experiment config whose ``small`` settings the workers train with."""
    from provenml.metarl import experiments

    return experiments.ReacherConfig if env == "reacher" else experiments.GridworldConfig


def _training(agent: str, num_envs: int, iterations: int, env: str) -> float:
    from provenml.metarl.train import train_agent

    preset = _preset_class(env)(
        num_envs=num_envs, total_steps=num_envs * 60 * iterations, model_pretrain_updates=0
    )
    cfg = preset.train_config()
    start = time.process_time()
    train_agent(agent, cfg, seed=0)
    return cfg.total_steps / (time.process_time() - start)


def belief_step_setup(agent_name: str, env_name: str) -> tuple[Callable[[], None], Any, Any]:
    """One belief-model step on 64 episodes of a 256-episode buffer, as training takes it
    (the model loss, its backward, clipping, the optimizer): (step, agent, train config)."""
    import torch

    from provenml.metarl import train
    from provenml.metarl.train import EpisodeBuffer, build_agent, collect, make_vec_env

    cfg = _preset_class(env_name)(num_envs=256).train_config()
    env = make_vec_env(cfg.env, cfg.num_envs, cfg.session_end_prob, cfg.goal_layout)
    agent = build_agent(agent_name, env, cfg)
    generator = torch.Generator().manual_seed(0)
    buffer = EpisodeBuffer(cfg.model_buffer)
    buffer.add(collect(agent, env, generator, seed=0))
    # the optimizer training uses (fused Adam since stop 42; older commits: plain Adam)
    make_adam = getattr(train, "_adam", torch.optim.Adam)
    optimizer = make_adam(agent.model_parameters(), lr=cfg.model_lr)

    def step() -> None:
        out = agent.model_loss(buffer.sample(cfg.model_batch, generator), generator)
        assert out is not None
        optimizer.zero_grad()
        out[0].backward()
        torch.nn.utils.clip_grad_norm_(agent.model_parameters(), 1.0)
        optimizer.step()

    return step, agent, cfg


def _belief_step(agent_name: str, env_name: str, repeats: int = 10) -> float:
    """CPU seconds of one belief-model step (:func:`belief_step_setup`)."""
    step, _, _ = belief_step_setup(agent_name, env_name)
    for _ in range(3):
        step()
    start = time.process_time()
    for _ in range(repeats):
        step()
    return (time.process_time() - start) / repeats


def _parts(agent: str, num_envs: int, iterations: int, env: str) -> dict[str, float]:
    """CPU ms per iteration in each part of training (``train_agent``'s ``timings``), over
    ``iterations`` iterations after a first one."""
    from provenml.metarl.train import train_agent

    def run(count: int) -> dict[str, float]:
        preset = _preset_class(env)(
            num_envs=num_envs, total_steps=num_envs * 60 * count, model_pretrain_updates=0
        )
        timings: dict[str, float] = {}
        train_agent(agent, preset.train_config(), seed=0, timings=timings)
        return timings

    first, total = run(1), run(1 + iterations)
    return {k: (total[k] - first.get(k, 0.0)) / iterations * 1e3 for k in total}


def worker(
    agent: str, num_envs: int, iterations: int, parts: bool, env: str, steady: int = 0
) -> None:
    import torch

    torch.set_num_threads(1)
    _training("dynamite", 8, 1, env)  # warm-up: torch's first-call costs are not the agent's
    if steady:
        first = num_envs * 60 / _training(agent, num_envs, 1, env)  # CPU s of one iteration
        more = num_envs * 60 * (1 + steady) / _training(agent, num_envs, 1 + steady, env)
        print(json.dumps({"iteration_ms": (more - first) / steady * 1e3}))
        return
    if parts:
        print(json.dumps(_parts(agent, num_envs, iterations, env)))
        return
    out = {"rate": _training(agent, num_envs, iterations, env)}
    if agent in BELIEF_AGENTS:
        out["belief_step"] = _belief_step(agent, env)
    print(json.dumps(out))


def measure(
    src: Path,
    agent: str,
    num_envs: int,
    iterations: int,
    native: bool = True,
    parts: bool = False,
    env_name: str = "gridworld",
    steady: int = 0,
) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    env["PROVENML_NATIVE"] = "1" if native else "0"
    command = [sys.executable, __file__, "--worker", agent, "--num-envs", str(num_envs)]
    command += ["--iterations", str(iterations), "--env", env_name, "--steady", str(steady)]
    command += ["--parts"] if parts else []
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def export_baseline(rev: str, into: Path) -> Path:
    """``src/`` of commit ``rev``, exported with ``git archive`` under ``into``."""
    archive = into / "baseline.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), rev, "src"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--baseline", default=BASELINE, help="git revision to compare against")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--agents", default=",".join(AGENTS))
    parser.add_argument("--parts", action="store_true", help="also time the parts of training")
    parser.add_argument("--env", choices=("gridworld", "reacher"), default="gridworld")
    parser.add_argument(
        "--steady", type=int, default=0, help="also time K steady-state iterations per version"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.num_envs, args.iterations, args.parts, args.env, args.steady)
        return
    import torch

    torch.set_num_threads(1)
    load_start = os.getloadavg()
    anchor = single_env_loop(20_000)
    grid = batched_env(args.num_envs, 50)
    new_src = REPO / "src"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old_src = export_baseline(args.baseline, Path(tmp))
        for agent in args.agents.split(","):
            best: dict[str, dict[str, float]] = {}
            # old, this checkout with PyTorch instead of its C kernels, this checkout
            arms = [("old", old_src, True), ("torch", new_src, False), ("new", new_src, True)]
            for _ in range(args.repeats):
                for label, src, native in arms:
                    got = measure(
                        src, agent, args.num_envs, args.iterations, native, env_name=args.env
                    )
                    keep = best.setdefault(label, got)
                    keep["rate"] = max(keep["rate"], got["rate"])
                    if "belief_step" in got:
                        keep["belief_step"] = min(keep["belief_step"], got["belief_step"])
            rows.append((agent, best["old"], best["new"], best.get("torch")))
    load_end = os.getloadavg()
    print(
        f"load average {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} at the start, "
        f"{load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f} at the end; torch threads 1; "
        f"baseline {args.baseline}; {args.num_envs} envs, {args.iterations} iterations, "
        f"best of {args.repeats}; env steps per CPU second; training on {args.env}"
    )
    import torch  # the workers import their own; here only for the CPU capability

    from provenml.nn.native import hand_kernels_enabled

    capability = torch.backends.cpu.get_cpu_capability()
    default = "the C kernels" if hand_kernels_enabled() else "PyTorch"
    print(f"CPU capability {capability}: training here uses {default} (hand_kernels_enabled)")
    where = "" if args.env == "gridworld" else f", the grid world's (training is on {args.env})"
    print(f"single gymnasium.Env loop (anchor{where}): {anchor:,.0f}")
    print(f"SessionGridWorldVec, {args.num_envs} envs: {grid:,.0f} ({grid / anchor:.1f}x anchor)")
    header = f"{'PPO training':<16} {'old':>9} {'new':>9} {'old x':>7} {'new x':>7} {'new/old':>8}"
    print(header + f" {'belief step old -> new':>24}")
    for agent, old, new, _ in rows:
        line = (
            f"{agent:<16} {old['rate']:>9,.0f} {new['rate']:>9,.0f} {old['rate'] / anchor:>7.2f} "
            f"{new['rate'] / anchor:>7.2f} {new['rate'] / old['rate']:>8.2f}"
        )
        if "belief_step" in new:
            line += (
                f" {old['belief_step'] * 1e3:>9.1f} -> {new['belief_step'] * 1e3:.1f} ms "
                f"({old['belief_step'] / new['belief_step']:.2f}x)"
            )
        print(line)
    print("this checkout's C kernels against its PyTorch code (PROVENML_NATIVE=0):")
    for agent, _, new, torch_arm in rows:
        if torch_arm is None:
            continue
        line = (
            f"{agent:<16} {torch_arm['rate']:>9,.0f} -> {new['rate']:>9,.0f} env steps/s "
            f"({new['rate'] / torch_arm['rate']:.2f}x)"
        )
        if "belief_step" in new:
            line += (
                f"; belief step {torch_arm['belief_step'] * 1e3:.1f} -> "
                f"{new['belief_step'] * 1e3:.1f} ms "
                f"({torch_arm['belief_step'] / new['belief_step']:.2f}x)"
            )
        print(line)
    if args.steady:
        print_steady(new_src, args)
    if args.parts:
        print_parts(new_src, args)


def print_steady(src: Path, args: argparse.Namespace) -> None:
    """A steady-state iteration's CPU ms, the baseline against this checkout."""
    load_start = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old_src = export_baseline(args.baseline, Path(tmp))
        for agent in args.agents.split(","):
            best = {"old": np.inf, "new": np.inf}
            for _ in range(args.repeats):
                for label, where in (("old", old_src), ("new", src)):
                    got = measure(
                        where, agent, args.num_envs, 1, env_name=args.env, steady=args.steady
                    )
                    best[label] = min(best[label], got["iteration_ms"])
            rows.append((agent, best["old"], best["new"]))
    load_end = os.getloadavg()
    print(
        f"a steady-state iteration (CPU ms; 1 + {args.steady} iterations minus 1, best of "
        f"{args.repeats}; load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} "
        "at the end)"
    )
    print(f"{'agent':<16} {'old ms':>9} {'new ms':>9} {'old/new':>8}")
    for agent, old, new in rows:
        print(f"{agent:<16} {old:>9.1f} {new:>9.1f} {old / new:>8.2f}")


def print_parts(src: Path, args: argparse.Namespace) -> None:
    """Where an iteration goes, this checkout with its C kernels and without them."""
    load_start = os.getloadavg()
    rows = []
    for agent in args.agents.split(","):
        best: dict[bool, dict[str, float]] = {}
        for _ in range(args.repeats):
            for native in (True, False):
                got = measure(
                    src, agent, args.num_envs, args.iterations, native, parts=True,
                    env_name=args.env,
                )  # fmt: skip
                keep = best.setdefault(native, got)
                for k, v in got.items():
                    keep[k] = min(keep[k], v)
        rows.append((agent, best[True], best[False]))
    load_end = os.getloadavg()
    print(
        f"where an iteration goes (CPU ms per iteration, this checkout; PROVENML_NATIVE=0 in "
        f"parentheses; best of {args.repeats}; load average {load_start[0]:.2f} at the start, "
        f"{load_end[0]:.2f} at the end)"
    )
    print(f"{'agent':<16} {'collection':>16} {'PPO update':>16} {'belief model':>16} {'sum':>16}")
    for agent, native, torch_arm in rows:
        cells = []
        for part in ("collect", "ppo", "belief", None):
            a = sum(native.values()) if part is None else native.get(part, 0.0)
            b = sum(torch_arm.values()) if part is None else torch_arm.get(part, 0.0)
            cells.append(f"{a:>6.1f} ({b:>6.1f})")
        print(f"{agent:<16} " + " ".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
