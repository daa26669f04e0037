"""Three ways to cut the transformer block's two-thread time, each timed against the standard
build in one process (stop 38, docs/compiler.md): none helped, which is why none is built.

* ``head-major``: the QKV product's output columns placed head by head (``[q_h k_h v_h]``
  per head, ``reshape(b, s, h, 3, d)``), emulated exactly at the model level (the QKV weight
  rows permuted): each thread's attention heads then read only the columns it wrote.
* ``chunks``: each parallel stage cut into ``4, 8, 16 x threads`` chunks (the default is 4):
  finer claiming to even out the threads' shares. The standard build's planned graph is
  lowered again with each count.
* ``pinning``: the caller on CPU 0 and every other thread of the process (the pool's worker)
  on CPU 1 (``os.sched_setaffinity``), against no affinity; per-stage work from
  ``profile()``, with the one-thread build's as the reference.

    .venv/bin/python benchmarks/bench_compiler_levers.py [--check head-major,chunks,pinning]

Latency: median of ``--rounds`` interleaved rounds with eager PyTorch (2 threads) in the same
rounds as the anchor; ratios are medians of the per-round ratios. Quote the load average
printed at the end.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import threading
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from provenml.compiler import compile as pm_compile
from provenml.compiler.build import build
from provenml.compiler.codegen import lower
from provenml.compiler.experiments import interleaved_samples
from provenml.compiler.models import TransformerBlock, build_model
from provenml.compiler.runtime import CompiledGraph


class HeadMajorBlock(torch.nn.Module):
    """``TransformerBlock`` with the QKV output columns in head-major order: the same maths
    (the weight rows permuted, the reshape changed to match)."""

    def __init__(self, base: TransformerBlock) -> None:
        super().__init__()
        self.base = copy.deepcopy(base)
        d = base.qkv.in_features
        h, dh = base.heads, d // base.heads
        perm = [w * d + head * dh + j for head in range(h) for w in range(3) for j in range(dh)]
        with torch.no_grad():
            self.base.qkv.weight.copy_(base.qkv.weight[perm])
            self.base.qkv.bias.copy_(base.qkv.bias[perm])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.base
        b, s, d = x.shape
        h = m.heads
        qkv = m.qkv(m.ln1(x)).reshape(b, s, h, 3, d // h).permute(3, 0, 2, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(q @ k.transpose(-2, -1) * (1.0 / math.sqrt(d // h)), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, s, d)
        x = x + m.proj(y)
        return x + m.fc2(F.gelu(m.fc1(m.ln2(x))))


def timed(arms: dict[str, Any], model: torch.nn.Module, x: torch.Tensor, rounds: int) -> None:
    """Interleaved latency of ``arms`` (callables of x) with eager as the anchor; the first
    arm is the reference of the last column."""
    calls = {"eager (anchor)": lambda: model(x)}
    calls.update({k: (lambda f=f: f(x)) for k, f in arms.items()})
    torch.set_num_threads(2)
    with torch.no_grad():
        samples = interleaved_samples(calls, rounds, 0.02)
    eager = np.array(samples["eager (anchor)"])
    ref = np.array(samples[next(iter(arms))])
    print(f"{'arm':28s} {'median us':>10s} {'/ eager':>8s} {'/ first arm':>12s}")
    for key, vals in samples.items():
        arr = np.array(vals)
        print(
            f"{key:28s} {np.median(arr) * 1e6:10.1f} {np.median(arr / eager):8.3f}"
            f" {np.median(arr / ref):12.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", default="head-major,chunks,pinning")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--profile-calls", type=int, default=400)
    args = parser.parse_args()
    model, x = build_model("transformer", 1)
    model.eval()
    standard = pm_compile(model, (x,), threads=2, tune_threads=False)
    checks = args.check.split(",")
    if "head-major" in checks:
        head_major = HeadMajorBlock(model).eval()
        other = pm_compile(head_major, (x,), threads=2, tune_threads=False)
        with torch.no_grad():
            err = float((other(x) - model(x)).abs().max())
        print(f"== head-major QKV columns (max abs difference to eager {err:.1e})")
        timed({"standard": standard, "head-major": other}, model, x, args.rounds)
        for key, build_ in (("standard", standard), ("head-major", other)):
            prof = build_.profile(x, calls=args.profile_calls)
            att = [s.work_us for s in prof.stages if "attention" in s.function]
            print(f"{key}: attention stage work {att[0]:.1f} us, all stages {prof.work_us:.1f}")
    if "chunks" in checks:
        final = standard.graph.graph
        arms: dict[str, Any] = {}
        for per_thread in (4, 8, 16):
            program = lower(final, runtime="pool", chunks=per_thread * 2)
            path, _ = build(program.source)
            arms[f"{per_thread} x threads chunks"] = CompiledGraph(final, program, path, 2)
        print("\n== chunks per parallel stage")
        timed(arms, model, x, args.rounds)
    if "pinning" in checks:
        graph = standard.graph
        graph.set_adaptive(False)  # every call by the team, as profiled
        for _ in range(50):
            standard(x)
        me = threading.get_native_id()
        tids = [int(t) for t in os.listdir("/proc/self/task")]
        print("\n== threads pinned to cores (work per stage, us; median of the profiled calls)")

        def show(tag: str) -> None:
            prof = standard.profile(x, calls=args.profile_calls)
            cells = " ".join(f"{s.function.split('_')[2]} {s.work_us:.1f}" for s in prof.stages)
            print(f"{tag:8s} work {prof.work_us:6.1f} call {prof.call_us:6.1f}: {cells}")

        for _ in range(2):
            for t in tids:
                os.sched_setaffinity(t, {0, 1})
            show("free")
            for t in tids:
                os.sched_setaffinity(t, {0} if t == me else {1})
            show("pinned")
        for t in tids:
            os.sched_setaffinity(t, {0, 1})
        graph.set_threads(1)
        show("1 thread")
        graph.set_adaptive(True)
    print("load average", tuple(round(v, 2) for v in os.getloadavg()))


if __name__ == "__main__":
    main()
