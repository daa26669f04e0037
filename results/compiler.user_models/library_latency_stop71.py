"""Stop 71: how much faster the library's own models run compiled (``pc.compile``, default
options: 2 threads, tuning on) than in eager PyTorch (2 threads), at the sizes the probe
``library_models_stop71.py`` compiles them: per model, rounds that alternate 50 eager calls and
50 compiled calls on the same input, the median call of each, 15 rounds; the eager and compiled
medians over the rounds, the per-round ratio's median, and the compile time.

    PYTHONPATH=src TORCH_LOGS=-dynamo .venv/bin/python results/compiler.user_models/library_latency_stop71.py
"""
# ruff: noqa: E501

from __future__ import annotations

import os
import statistics
import time
import warnings

import torch
from library_models_stop71 import cases

import provenml.compiler as pc

warnings.simplefilter("ignore")
torch.set_num_threads(2)
ROUNDS, CALLS = 15, 50
PICK = (
    "S1 nn.mlp", "S1 small_cnn", "S1 ByteTransformer", "shared GCNEncoder", "shared GINEncoder(1, 32)",
    "S7 SmallResNet() group", "S7 FCN", "S9 Conv1dEncoder", "S9 head protonet", "S9 head adargcn",
    "S11 rotate score_t", "S11 complex score_t", "S11 PCNN", "S2/S6 ActorCritic discrete",
    "S6 TeamPolicy logits", "S2 BeliefEncoder (GRU", "S5 FLModel",
)


def median_call(fn: object, inputs: tuple[torch.Tensor, ...]) -> float:
    times = []
    for _ in range(CALLS):
        t = time.perf_counter()
        fn(*inputs)  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times)


print("load average at the start", tuple(round(v, 2) for v in os.getloadavg()))
print(f"{'model':44s} {'eager us':>9s} {'compiled us':>11s} {'compiled/eager':>14s} {'compile s':>9s}")
for name, model, example, inputs in cases():
    if not name.startswith(PICK):
        continue
    t0 = time.perf_counter()
    compiled = pc.compile(model, example)
    seconds = time.perf_counter() - t0
    eager_times, compiled_times, ratios = [], [], []
    with torch.no_grad():
        for _ in range(3):
            model(*inputs), compiled(*inputs)
        for _ in range(ROUNDS):
            e = median_call(model, inputs)
            c = median_call(compiled, inputs)
            eager_times.append(e), compiled_times.append(c), ratios.append(c / e)
    print(
        f"{name[:44]:44s} {statistics.median(eager_times) * 1e6:9.1f} "
        f"{statistics.median(compiled_times) * 1e6:11.1f} {statistics.median(ratios):14.2f} {seconds:9.1f}"
    )
print("load average at the end", tuple(round(v, 2) for v in os.getloadavg()))
