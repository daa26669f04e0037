"""Stop 60: an int64 index spread by ``repeat`` before a gather. At 129f9fc (stop 59) the
frontend moved the repeated int64 bits as float32, the gather's flat positions were garbage,
and the process died with a segmentation fault (exit 139) on the first call; since stop 60
the repeat stays int64 and an index out of range raises instead of reading out of bounds.

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/repeat_gather_stop60.py
"""

import torch
from torch import nn

import provenml.compiler as pc


class C(nn.Module):
    def forward(s, x, i):
        return torch.gather(x, 0, i[:, None].repeat(1, 3))


X = torch.randn(6, 20)
G = torch.tensor([0, 5, 2, 5])
f = pc.compile(C().eval(), (X, G), tuning=False, threads=1)
print("gather after repeat equals eager:", torch.equal(f(X, G), C()(X, G)))


class R(nn.Module):
    def forward(s, i):
        return (i * 100_000_007 + 1).repeat(2)


try:
    f = pc.compile(R().eval(), (G,), tuning=False, threads=1)
    print("int repeat equals eager:", torch.equal(f(G), R()(G)), f(G), R()(G))
except Exception as e:
    print("int repeat:", type(e).__name__, e)
