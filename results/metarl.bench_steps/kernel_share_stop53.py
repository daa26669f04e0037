"""Stop 53: how much of a grid-world DynaMITE-RL training iteration runs inside the C kernels
(cProfile's own time of the calls into them, over 4 iterations after a first one); and, in
one belief step (``torch.profiler`` over 10 steps after 5), the recurrence kernels' time, their
rate in GFLOP/s (their matrix products counted by hand: per step, the prior's N x H @ H x H
and the two GRU branches' 2N x H @ H x 3H; the backward twice the forward) and the rest.

    PYTHONPATH=src .venv/bin/python results/metarl.bench_steps/kernel_share_stop53.py
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
from pathlib import Path

import torch

from provenml.metarl.experiments import GridworldConfig
from provenml.metarl.train import keep_freed_memory, train_agent

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_metarl_steps import belief_step_setup

# (file suffix, function) of the Python frames whose own time is a C kernel call
KERNEL_FRAMES = {
    ("rl/native.py", "_run_ppo_kernel"): "PPO minibatch",
    ("metarl/native.py", "forward"): "recurrence forward (acting steps included), projection",
    ("metarl/native.py", "backward"): "recurrence and projection backward",
    ("rl/native.py", "__call__"): "acting MLP",
}


def run(iterations: int) -> None:
    preset = GridworldConfig(
        num_envs=256, total_steps=256 * 60 * iterations, model_pretrain_updates=0
    )
    train_agent("dynamite", preset.train_config(), seed=0)


def belief_step_profile() -> None:
    step, agent, cfg = belief_step_setup("dynamite", "gridworld")
    for _ in range(5):
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(10):
            step()
    own = {e.key: e.self_cpu_time_total / 10 / 1e3 for e in prof.key_averages()}  # ms per step
    total = sum(own.values())
    steps, episodes, hidden = 60, cfg.model_batch, agent.encoder.hidden
    forward_flop = steps * (2 * 2 * episodes * hidden * 3 * hidden + 2 * episodes * hidden**2)
    kernels = {
        "NativeRecurrence": forward_flop,
        "NativeRecurrenceBackward": 2 * forward_flop,
        "NativeInputProjection": 0,
        "NativeInputProjectionBackward": 0,
    }
    for name, flop in kernels.items():
        rate = f", {flop / (own[name] * 1e-3) / 1e9:.0f} GFLOP/s" if flop else ""
        print(f"belief step: {name} {own[name]:.1f} ms{rate}")
    rest = total - sum(own[name] for name in kernels)
    print(f"belief step: {total:.1f} ms profiled, {rest:.1f} ms outside the kernels")


def main() -> None:
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.2f} at the start")
    run(1)
    profile = cProfile.Profile()
    profile.enable()
    run(4)
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = max(entry[3] for entry in stats.values())  # the outermost frame's cumulative time
    parts: dict[str, float] = {}
    for (path, _, function), (_, _, own, _, _) in stats.items():
        for (suffix, name), label in KERNEL_FRAMES.items():
            if path.endswith(suffix) and function == name:
                parts[label] = parts.get(label, 0.0) + own
    for label, seconds in parts.items():
        print(f"{label}: {seconds / 4 * 1e3:.0f} ms per iteration")
    inside = sum(parts.values())
    print(f"inside the kernels: {inside / 4 * 1e3:.0f} of {total / 4 * 1e3:.0f} ms per iteration")
    keep_freed_memory()
    belief_step_profile()
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
