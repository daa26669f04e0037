"""Stop 69: a seventh probe, against eager on inputs other than the traced ones: normalisation
variants (layer norm over several dims, without affine, before a permute; group norm with 1,
some and C groups; instance norm; F.normalize; softmax / log-softmax over inner dims; RMSNorm;
functional batch norm; local response norm; a random op inside forward).

    .venv/bin/python results/compiler.user_models/norms_stop69.py
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from _probe import compile_with, run_probe
from torch import nn


class W(nn.Module):
    def __init__(s, f, mods=None):
        super().__init__()
        s.f = f
        s.m = nn.ModuleList(mods or [])

    def forward(s, x):
        return s.f(s, x)


torch.manual_seed(0)


def ln(shape, affine=True):
    m = nn.LayerNorm(shape, elementwise_affine=affine)
    if affine:
        with torch.no_grad():
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.5, 0.5)
    return m


def gn(g, c):
    m = nn.GroupNorm(g, c)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.5, 0.5)
    return m


def inorm(affine, track):
    m = nn.InstanceNorm2d(6, affine=affine, track_running_stats=track)
    if track:
        m.running_mean.uniform_(-1, 1)
        m.running_var.uniform_(0.5, 2)
    if affine:
        with torch.no_grad():
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.5, 0.5)
    return m


X = (2, 6, 5, 7)
STATS = torch.rand(4, 6)
cases = {
    "LayerNorm over 2 dims": (lambda s, x: s.m[0](x), [ln((5, 7))]),
    "LayerNorm over 3 dims": (lambda s, x: s.m[0](x), [ln((6, 5, 7))]),
    "LayerNorm no affine + relu": (lambda s, x: s.m[0](x).relu(), [ln(7, False)]),
    "LayerNorm then permute then linear": (
        lambda s, x: s.m[1](s.m[0](x).permute(0, 2, 3, 1)[..., :6]),
        [ln(7), nn.Linear(6, 3)],
    ),
    "GroupNorm 1 group": (lambda s, x: s.m[0](x), [gn(1, 6)]),
    "GroupNorm 3 groups + silu": (lambda s, x: F.silu(s.m[0](x)), [gn(3, 6)]),
    "GroupNorm C groups": (lambda s, x: s.m[0](x), [gn(6, 6)]),
    "InstanceNorm2d": (lambda s, x: s.m[0](x), [inorm(False, False)]),
    "InstanceNorm2d affine": (lambda s, x: s.m[0](x), [inorm(True, False)]),
    "InstanceNorm2d running stats": (lambda s, x: s.m[0](x), [inorm(True, True)]),
    "F.normalize dim 1": (lambda s, x: F.normalize(x, dim=1), []),
    "softmax dim 1 of 4-d": (lambda s, x: torch.softmax(x, 1), []),
    "log_softmax dim 0": (lambda s, x: torch.log_softmax(x, 0), []),
    "softmax dim 2 then sum": (lambda s, x: torch.softmax(x * 2, 2).sum(-1), []),
    "conv + GroupNorm + residual": (
        lambda s, x: s.m[1](s.m[0](x)) + x,
        [nn.Conv2d(6, 6, 3, padding=1), gn(2, 6)],
    ),
    "RMSNorm": (lambda s, x: s.m[0](x), [nn.RMSNorm(7)]),
    "batch_norm functional with running stats": (
        lambda s, x: F.batch_norm(x, STATS[0], STATS[1] + 0.5, STATS[2], STATS[3]),
        [],
    ),
    "torch.rand in forward": (lambda s, x: x + torch.rand(6)[:, None, None] * 0, []),
    "local_response_norm": (lambda s, x: F.local_response_norm(x, 3), []),
}


def gen():
    for name, (f, mods) in cases.items():
        yield name, W(f, mods).eval(), (torch.randn(*X),), (torch.randn(*X) * 3 + 1,)


if __name__ == "__main__":
    run_probe(gen(), compile_with(tuning=False), width=42)
