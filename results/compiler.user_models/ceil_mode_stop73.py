"""Stop 73: ceil_mode=True pools with a partial last window against eager: max and average
(both divisor rules), input sizes 7 / 8 / 11 (and one wider), kernels 2-3, strides 2-3, padding 0-1;
and one 1-d average pool. Prints the cases that differ by more than 1e-5 and the worst difference::

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/ceil_mode_stop73.py
"""
# ruff: noqa: E501, E701, E702
import itertools

import torch
import torch.nn as nn

import provenml.compiler as pc

torch.manual_seed(0)
worst = 0; n = 0
for pool, size, k, s, p, cip in itertools.product(("max", "avg"), (7, 8, 11), (2, 3), (2, 3), (0, 1), (True, False)):
    if p > k // 2: continue
    if pool == "max" and not cip: continue
    m = (nn.MaxPool2d(k, s, p, ceil_mode=True) if pool == "max" else nn.AvgPool2d(k, s, p, ceil_mode=True, count_include_pad=cip)).eval()
    x = torch.randn(2, 3, size, size + 1)
    f = pc.compile(m, (x,), tuning=False, threads=1)
    d = float((f(x) - m(x)).abs().max()); worst = max(worst, d); n += 1
    if d > 1e-5: print("BAD", pool, size, k, s, p, cip, d)
m1 = nn.AvgPool1d(2, 2, ceil_mode=True).eval(); x = torch.randn(2, 4, 11)
print("1d", float((pc.compile(m1, (x,), tuning=False, threads=1)(x) - m1(x)).abs().max()))
print(n, "cases, worst", worst)
