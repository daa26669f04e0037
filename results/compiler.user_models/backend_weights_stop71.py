"""Stop 71: which fix made S9's few-shot heads right through ``torch.compile(backend=...)``.

Before stop 71 the heads' hand-kernel switch broke TorchDynamo's graph, the frames between the
breaks were compiled once and reused for every block of the same class, and the backend had
frozen the first block's weights into them. This puts the switch back as it was (no
``tracing()``), so the graph breaks again, and runs the GNN-FSL head through the backend with
the per-weights compile (stop 71) and without it (the stop-70 behaviour).

    PYTHONPATH=src TORCH_LOGS=-dynamo .venv/bin/python results/compiler.user_models/backend_weights_stop71.py
"""
# ruff: noqa: E501, E702

from __future__ import annotations

import os

import torch

import provenml.compiler as pc
import provenml.compiler.api as api
import provenml.fewshot as fs
import provenml.fewshot.graph as few_shot_graph
import provenml.nn.native as native

native.tracing = lambda: False; few_shot_graph.tracing = lambda: False  # the switch as at stop 70
os.environ["PROVENML_NATIVE"] = "1"
torch.manual_seed(0)
head = fs.make_head("gnn", 40).eval()


class FiveWay(torch.nn.Module):
    def forward(self, s: torch.Tensor, y: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return head(s, y, q, 5).log_probs


labels = torch.arange(5).expand(4, -1).contiguous()
model = FiveWay().eval()
print("load average", os.getloadavg())
for name, per_weights in (("per-weights compile (stop 71)", True), ("weights frozen once (stop 70)", False)):
    if not per_weights:
        api._compile_static = api._compile_for_weights  # type: ignore[assignment]
    torch._dynamo.reset()
    compiled = torch.compile(model, backend=pc.backend)
    with torch.no_grad():
        compiled(torch.randn(4, 5, 40), labels, torch.randn(4, 15, 40))
        x = (torch.randn(4, 5, 40), labels, torch.randn(4, 15, 40))
        print(f"{name}: max |compiled - eager| {float((compiled(*x) - model(*x)).abs().max()):.2e}")
