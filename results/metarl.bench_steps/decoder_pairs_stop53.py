"""Stop 53: the ELBO's reward decoder on the reacher's belief-step shapes (64 episodes x 12
sampled latents x 60 transitions, width 32), forward and backward, C kernel against PyTorch's
layers (one thread, best of 30 after 5 warm-ups); and, on a real reacher batch, the belief
loss and its gradients with either decoder path.

    PYTHONPATH=src .venv/bin/python results/metarl.bench_steps/decoder_pairs_stop53.py
"""

from __future__ import annotations

import os
import time

import torch

from provenml.metarl.belief import RewardDecoder
from provenml.metarl.experiments import ReacherConfig
from provenml.metarl.train import (
    EpisodeBuffer,
    build_agent,
    collect,
    keep_freed_memory,
    make_vec_env,
)


def decoder_ms(decoder: RewardDecoder, native: bool, repeats: int = 30) -> float:
    torch.manual_seed(0)
    latent = torch.randn(64, 12, 1, 4, requires_grad=True)
    next_obs = torch.randn(64, 1, 60, decoder.net[0].in_features - 4)
    rewards = torch.randn(64, 1, 60)
    decoder.native = native

    def step() -> None:
        out = decoder(latent, next_obs)
        ((out - rewards) ** 2).sum(-1).mean().backward()

    for _ in range(5):
        step()
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        step()
        best = min(best, time.process_time() - start)
    return best * 1e3


def real_batch_agreement(name: str) -> tuple[float, float, float]:
    """(loss with the C decoder, with PyTorch's, largest relative gradient difference)."""
    cfg = ReacherConfig(num_envs=256).train_config()
    env = make_vec_env(cfg.env, cfg.num_envs, cfg.session_end_prob, cfg.goal_layout)
    agent = build_agent(name, env, cfg)
    generator = torch.Generator().manual_seed(0)
    buffer = EpisodeBuffer(cfg.model_buffer)
    buffer.add(collect(agent, env, generator, seed=0))
    batch = buffer.sample(cfg.model_batch, generator)
    out = {}
    for native in (True, False):
        agent.decoder.native = native
        for p in agent.model_parameters():
            p.grad = None
        loss, _ = agent.model_loss(batch, torch.Generator().manual_seed(5))
        loss.backward()
        out[native] = (loss.item(), [p.grad.clone() for p in agent.model_parameters()])
    worst = max(
        ((a - b).abs().max() / (b.abs().max() + 1e-12)).item()
        for a, b in zip(out[True][1], out[False][1], strict=True)
    )
    return out[True][0], out[False][0], worst


def main() -> None:
    torch.set_num_threads(1)
    keep_freed_memory()  # as training does: large tensors reuse the heap
    print(f"load average {os.getloadavg()[0]:.2f} at the start")
    decoder = RewardDecoder(obs_dim=6, latent_dim=4)
    c_ms, torch_ms = decoder_ms(decoder, True), decoder_ms(decoder, False)
    print(f"decoder forward+backward, best of 30: C {c_ms:.2f} ms, PyTorch {torch_ms:.2f} ms")
    for name in ("varibad", "dynamite"):
        fast, ref, worst = real_batch_agreement(name)
        print(f"{name}: loss {fast:.6f} (C) against {ref:.6f}; gradients within {worst:.1e}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
