"""Stop 63: where one `metarl.reacher` part at `small` (DynaMITE-RL, seed 0, one thread, the
3.6M env steps of the preset) spends its time: cProfile over training and evaluation, then the
shares of the belief-model steps (``belief_losses`` forward and the backward passes of the
model loss), PPO (``ppo_minibatch_backward``) and collection (``collect``).

    PYTHONPATH=src .venv/bin/python results/metarl.bench_steps/reacher_part_profile_stop63.py
"""

from __future__ import annotations

import cProfile
import os
import pstats
import time

import torch

from provenml.metarl.experiments import ReacherConfig
from provenml.metarl.train import evaluate, evaluation_options, train_agent

# (file suffix, function) -> label, summed by cumulative time
PARTS = {
    ("metarl/agents.py", "model_loss"): "belief-model loss, forward",
    ("rl/native.py", "ppo_minibatch_backward"): "PPO minibatch (C kernel, gradients in .grad)",
    ("metarl/train.py", "collect"): "collection (acting, env, belief updates per step)",
    ("torch/_tensor.py", "backward"): "autograd backward (belief-model loss)",
}


def main() -> None:
    torch.set_num_threads(1)
    cfg = ReacherConfig()
    print(f"load average at the start {os.getloadavg()}")
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    trained = train_agent("dynamite", cfg.train_config(), seed=0)
    trained_at = time.perf_counter()
    options = evaluation_options(
        cfg.env, cfg.eval_episodes, cfg.session_end_prob, cfg.eval_seed, cfg.goal_layout
    )
    result = evaluate(trained.agent, cfg.env, options, cfg.session_end_prob, cfg.eval_seed + 1)
    profile.disable()
    end = time.perf_counter()
    print(
        f"training {trained_at - start:.1f} s, evaluation {end - trained_at:.1f} s "
        f"(profiled), return {result.mean_return:.2f}; load average at the end {os.getloadavg()}"
    )
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = end - start
    for (path, _, function), (calls, _, _, cumulative, _) in sorted(stats.items()):
        for (suffix, name), label in PARTS.items():
            if path.endswith(suffix) and function == name:
                print(f"{label}: {calls} calls, {cumulative:.1f} s = {cumulative / total:.0%}")


if __name__ == "__main__":
    main()
