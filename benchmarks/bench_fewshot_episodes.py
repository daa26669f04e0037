"""Training episodes per second: a meta-batch as one tensor program vs a per-episode loop.

For AdarGCN and ProtoNet on the ``fewshot`` small-preset encoder (the 1-D CNN on 40-sample
signals), one training step on ``--meta-batch`` 5-way episodes is timed two ways:

- **batched**: the encoder sees all ``B * (S + Q)`` samples in one call and the head all ``B``
  episodes at once (how :func:`provenml.fewshot.meta_train` trains);
- **loop**: the same ``B`` episodes one at a time (forward and backward per episode, gradients
  accumulated), then one optimizer step: the same work, the usual per-episode code.

Both use the same model, data and episodes; the table prints episodes per second (median over
``--repeat`` timed steps after ``--warmup``) and batched / loop. Quote the load average printed
with the table: timings taken while other jobs run are not comparable.

    .venv/bin/python benchmarks/bench_fewshot_episodes.py [--meta-batch 16] [--shots 1,5]
        [--query 15] [--repeat 7] [--device cpu|cuda] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from provenml.fewshot import Conv1dEncoder, EpisodeSampler, FewShotClassifier, make_head


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step_batched(model: FewShotClassifier, batch, x: torch.Tensor, opt) -> None:
    support_x, query_x = batch.gather(x)
    out = model(support_x, batch.support_labels, query_x, batch.n_way)
    loss = model.head.loss(out, batch.support_labels, batch.query_labels, batch.n_way)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _step_loop(model: FewShotClassifier, batch, x: torch.Tensor, opt) -> None:
    support_x, query_x = batch.gather(x)
    opt.zero_grad(set_to_none=True)
    b = batch.batch_size
    for i in range(b):
        one = slice(i, i + 1)
        out = model(support_x[one], batch.support_labels[one], query_x[one], batch.n_way)
        loss = model.head.loss(out, batch.support_labels[one], batch.query_labels[one], batch.n_way)
        (loss / b).backward()
    opt.step()


def _episodes_per_second(
    step: Callable[..., None], model, batches, x, device: torch.device, warmup: int
) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for k, batch in enumerate(batches):
        _sync(device)
        start = time.perf_counter()
        step(model, batch, x, opt)
        _sync(device)
        if k >= warmup:
            times.append(time.perf_counter() - start)
    return batches[0].batch_size / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meta-batch", type=int, default=16)
    parser.add_argument("--shots", default="1,5")
    parser.add_argument("--query", type=int, default=15, help="queries per class")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    labels = torch.arange(64).repeat_interleave(40)
    x = torch.randn(len(labels), 40, device=device)
    rows = []
    for head_name in ("adargcn", "protonet"):
        for shot in (int(s) for s in args.shots.split(",")):
            sampler = EpisodeSampler(labels, 5, shot, args.query, seed=shot)
            batches = [
                sampler.sample(args.meta_batch).to(device) for _ in range(args.warmup + args.repeat)
            ]
            rates = {}
            for name, step in (("batched", _step_batched), ("loop", _step_loop)):
                torch.manual_seed(1)
                model = FewShotClassifier(Conv1dEncoder(out_dim=64), make_head(head_name, 64))
                model.to(device).train()
                rates[name] = _episodes_per_second(step, model, batches, x, device, args.warmup)
            rows.append((head_name, shot, rates["batched"], rates["loop"]))
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"training episodes/s, 5-way, {args.query} queries/class, meta-batch {args.meta_batch}, "
        f"device {device}, {args.threads} thread(s); load average {load}"
    )
    print(f"{'head':<10} {'shot':>4} {'batched':>10} {'loop':>10} {'batched/loop':>13}")
    for head_name, shot, batched, loop in rows:
        print(f"{head_name:<10} {shot:>4} {batched:>10.1f} {loop:>10.1f} {batched / loop:>12.2f}x")


if __name__ == "__main__":
    main()
