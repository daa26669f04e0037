"""Stop 73: habits in a model's ``forward`` (value-dependent branches and loops, ``.item()``,
``.tolist()``, ``.numpy()``, decorators, printing and logging, asserts, partial and lambda
activations, recursion, early exits), each compiled once and called on other inputs, some of
which take the other branch: ``ok`` with the largest difference to eager, ``WRONG``, or the
refusal (its first 700 characters)::

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/forward_habits_stop73.py
"""
# ruff: noqa: E501, E701, E702, E741
import functools
import logging
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

import provenml.compiler as pc

OPTS = {"tuning": False, "threads": 1}
def run(name, model, ex, others):
    model = model.eval()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fast = pc.compile(model, ex, **OPTS)
        worst = 0.0
        for o in others:
            with torch.no_grad():
                worst = max(worst, float((fast(*o) - model(*o)).abs().max()))
        w = [str(c.message)[:80] for c in caught if "provenml" in str(c.message)]
        print(f"{name:40s} {'ok' if worst < 1e-4 else 'WRONG'} {worst:.1e} {w}")
    except Exception as e:
        print(f"{name:40s} {type(e).__name__}: {str(e)[:700] if str(e) else ''}")
torch.manual_seed(0)
x = torch.randn(4, 8); pos = torch.rand(4, 8) + 0.1; neg = -pos
class Branch(nn.Module):
    def __init__(s): super().__init__(); s.l = nn.Linear(8, 8)
    def forward(s, x):
        if x.sum() > 0: return s.l(x)
        return -s.l(x)
run("if x.sum() > 0 (data-dependent branch)", Branch(), (pos,), [(neg,), (pos,)])
class ItemLoop(nn.Module):
    def __init__(s): super().__init__(); s.l = nn.Linear(8, 8)
    def forward(s, x):
        n = int(x.abs().max().item() * 2) + 1
        for _ in range(n): x = torch.tanh(s.l(x))
        return x
run("loop count from .item()", ItemLoop(), (pos,), [(pos * 3,), (pos,)])
class ToList(nn.Module):
    def forward(s, x):
        vals = x[:, 0].tolist()
        return x * max(vals)
run(".tolist() in forward", ToList(), (pos,), [(pos * 2,)])
class Numpy(nn.Module):
    def forward(s, x):
        return x * float(x.detach().numpy().mean())
run(".numpy() in forward", Numpy(), (pos,), [(pos * 2,)])
class Decorated(nn.Module):
    def __init__(s): super().__init__(); s.l = nn.Linear(8, 8)
    @torch.inference_mode()
    def forward(s, x): return s.l(x)
run("@torch.inference_mode() forward", Decorated(), (x,), [(pos,)])
class NoGrad(nn.Module):
    def __init__(s): super().__init__(); s.l = nn.Linear(8, 8)
    @torch.no_grad()
    def forward(s, x): return s.l(x)
run("@torch.no_grad() forward", NoGrad(), (x,), [(pos,)])
class Printing(nn.Module):
    def __init__(s): super().__init__(); s.l = nn.Linear(8, 8)
    def forward(s, x):
        print("shape", x.shape); logging.getLogger("m").info("hi"); return s.l(x)
run("print / logging in forward", Printing(), (x,), [(pos,)])
class Asserting(nn.Module):
    def __init__(s): super().__init__(); s.l = nn.Linear(8, 8)
    def forward(s, x):
        assert (x > -100).all(), "bad"; torch._assert(x.shape[1] == 8, "width"); return s.l(x)
run("assert on values / torch._assert", Asserting(), (x,), [(pos,)])
class Partial(nn.Module):
    def __init__(s): super().__init__(); s.l = nn.Linear(8, 8); s.act = functools.partial(F.leaky_relu, negative_slope=0.2)
    def forward(s, x): return s.act(s.l(x))
run("functools.partial activation", Partial(), (x,), [(pos,), (neg,)])
class Lambda(nn.Module):
    def __init__(s): super().__init__(); s.l = nn.Linear(8, 8); s.act = lambda t: t * torch.sigmoid(t)
    def forward(s, x): return s.act(s.l(x))
run("lambda attribute", Lambda(), (x,), [(pos,)])
class WhereMask(nn.Module):
    def forward(s, x):
        if (x < 0).any(): x = x.clamp(min=0)
        return x * 2
run("if (x < 0).any(): clamp", WhereMask(), (pos,), [(neg,), (x,)])
class Recursion(nn.Module):
    def __init__(s): super().__init__(); s.l = nn.Linear(8, 8)
    def forward(s, x, depth: int = 3):
        return x if depth == 0 else s.forward(torch.tanh(s.l(x)), depth - 1)
run("recursive forward", Recursion(), (x,), [(pos,)])
class NormCheck(nn.Module):
    def __init__(s): super().__init__(); s.l = nn.Linear(8, 8)
    def forward(s, x):
        n = x.norm()
        return s.l(x / n) if n > 1 else s.l(x)
run("if x.norm() > 1 (normalise)", NormCheck(), (pos * 3,), [(pos * 0.01,), (pos * 3,)])
class EarlyExit(nn.Module):
    def __init__(s): super().__init__(); s.ls = nn.ModuleList(nn.Linear(8, 8) for _ in range(3))
    def forward(s, x):
        for l in s.ls:
            x = torch.tanh(l(x))
            if x.abs().max() < 0.05: break
        return x
run("early exit on confidence", EarlyExit(), (pos,), [(pos * 1e-3,), (pos,)])
