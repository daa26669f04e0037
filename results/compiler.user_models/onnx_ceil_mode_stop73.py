"""Stop 73: ONNX MaxPool / AveragePool with ceil_mode=1 (exported by torch.onnx.export from
PyTorch pools), 1-d and 2-d, partial last windows among them, against ONNX Runtime and eager::

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/onnx_ceil_mode_stop73.py
"""
# ruff: noqa: E501, E701, E702
import io
import itertools
import warnings

import onnxruntime as ort
import torch
import torch.nn as nn

import provenml.compiler as pc

warnings.filterwarnings("ignore")
torch.manual_seed(0)
worst_ort = worst_eager = 0.0; n = 0; bad = []
cases = list(itertools.product(("max", "avg"), ((7, 8), (11, 9), (8, 8)), (2, 3), (2, 3), (0, 1), (True, False), (1, 2)))
for pool, size, k, s, p, cip, dims in cases:
    if p > k // 2 or (pool == "max" and not cip): continue
    if dims == 1:
        m = nn.MaxPool1d(k, s, p, ceil_mode=True) if pool == "max" else nn.AvgPool1d(k, s, p, ceil_mode=True, count_include_pad=cip)
        x = torch.randn(2, 3, size[0])
    else:
        m = nn.MaxPool2d(k, s, p, ceil_mode=True) if pool == "max" else nn.AvgPool2d(k, s, p, ceil_mode=True, count_include_pad=cip)
        x = torch.randn(2, 3, *size)
    buf = io.BytesIO(); torch.onnx.export(m.eval(), (x,), buf, dynamo=False, input_names=["x"]); data = buf.getvalue()
    got = pc.compile_onnx(data, (x,), tuning=False, threads=1)(x)
    ref = torch.from_numpy(ort.InferenceSession(data).run(None, {"x": x.numpy()})[0])
    e = m(x)
    d_ort, d_eager = float((got - ref).abs().max()), float((got - e).abs().max())
    worst_ort, worst_eager = max(worst_ort, d_ort), max(worst_eager, d_eager); n += 1
    if d_ort > 1e-5 or d_eager > 1e-5: bad.append((pool, size, k, s, p, cip, dims, d_ort, d_eager, float((ref - e).abs().max())))
print(n, "ONNX cases; worst against ONNX Runtime", worst_ort, "against eager", worst_eager)
for b in bad: print("DIFFERS", b)
