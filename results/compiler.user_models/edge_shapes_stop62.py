"""Stop 62: shapes at the edges (empty slices and dims, a zero batch, a 0-d input, a full
topk, a 2,048-token attention), each compiled at two threads and called in a fresh process
(so that a crash shows as an exit status); prints the exit status and whether the result
matches eager, or what raised.

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/edge_shapes_stop62.py
"""

from __future__ import annotations

import subprocess
import sys

CASES = {
    "empty slice": ("x[:, :0].sum(-1) + x[:, 0]", "torch.randn(4, 8)"),
    "zero batch": ("torch.relu(x) * 2", "torch.randn(0, 8)"),
    "zero batch linear": ("torch.nn.functional.linear(x, torch.ones(3, 8))", "torch.randn(0, 8)"),
    "softmax zero rows": ("torch.softmax(x, -1)", "torch.randn(0, 8)"),
    "sum over empty dim": ("x.sum(1)", "torch.randn(4, 0)"),
    "cumsum empty": ("torch.cumsum(x, 1)", "torch.randn(4, 0)"),
    "amax over empty": ("x.amax(1)", "torch.randn(4, 0)"),
    "scalar input": ("x * 3 + 1", "torch.tensor(2.0)"),
    "topk full": ("torch.topk(x, 8, -1).values", "torch.randn(4, 8)"),
    "long sdpa": (
        "torch.nn.functional.scaled_dot_product_attention(x, x, x)",
        "torch.randn(1, 2, 2048, 32)",
    ),
}
PROGRAM = """
import torch, provenml.compiler as pc
class M(torch.nn.Module):
    def forward(self, x): return {expr}
x = {inp}
try:
    ref = M()(x)
except Exception as e:
    print('eager raises', type(e).__name__); raise SystemExit(0)
try:
    c = pc.compile(M().eval(), (x,), threads=2, tuning=False)
except Exception as e:
    print('compile raises', type(e).__name__, str(e)[:150]); raise SystemExit(0)
y = c(x)
print('ok', tuple(y.shape), (y - ref).abs().max().item() if y.numel() else 'empty')
"""
for name, (expr, inp) in CASES.items():
    program = PROGRAM.format(expr=expr, inp=inp)
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=300
    )
    crash = done.stderr.strip()[-200:] if done.returncode else ""
    print(f"{name}: exit {done.returncode} {done.stdout.strip()[:200]} {crash}", flush=True)
