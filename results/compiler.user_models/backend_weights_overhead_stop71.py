"""Stop 71: what the backend's per-weights compile costs a call. A model's graph through
``torch.compile(model, backend=pc.backend)`` is compiled once per set of the weights TorchDynamo
lifts to inputs (``api._PerWeights``, which reads two integers per weight on each call);
this times a transformer encoder layer (d_model 256, 4 heads, batch 1 x 64 tokens, 16 lifted
weights) and a 6-layer MLP (12 weights) through the backend with it and without it
(``api._compile_for_weights`` directly, the stop-70 behaviour), alternating three times, one
thread, median of 2000 calls each.

    PYTHONPATH=src TORCH_LOGS=-dynamo .venv/bin/python results/compiler.user_models/backend_weights_overhead_stop71.py
"""
# ruff: noqa: E501

from __future__ import annotations

import os
import statistics
import time

os.environ["PROVENML_THREADS"] = "1"

import torch
from torch import nn

import provenml.compiler as pc
import provenml.compiler.api as api

torch.manual_seed(0)
torch.set_num_threads(1)
PER_WEIGHTS = api._compile_static
MODELS = {
    "transformer layer": (nn.TransformerEncoderLayer(256, 4, 1024, batch_first=True), torch.randn(1, 64, 256)),
    "6-layer MLP": (nn.Sequential(*[m for _ in range(6) for m in (nn.Linear(64, 64), nn.ReLU())]), torch.randn(8, 64)),
}


def median_call(compiled: object, x: torch.Tensor, calls: int = 2000) -> float:
    times = []
    with torch.no_grad():
        for _ in range(200):
            compiled(x)  # type: ignore[operator]
        for _ in range(calls):
            t = time.perf_counter()
            compiled(x)  # type: ignore[operator]
            times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


print("load average at the start", os.getloadavg())
for name, (model, x) in MODELS.items():
    model.eval()
    rows = []
    for _ in range(3):
        for label, static in (("per weights", PER_WEIGHTS), ("frozen once", api._compile_for_weights)):
            api._compile_static = static  # type: ignore[assignment]
            torch._dynamo.reset()
            compiled = torch.compile(model, backend=pc.backend)
            rows.append((label, median_call(compiled, x)))
    for label in ("per weights", "frozen once"):
        print(f"{name}: {label}: " + ", ".join(f"{t:.1f}" for lab, t in rows if lab == label) + " us")
print("load average at the end", os.getloadavg())
