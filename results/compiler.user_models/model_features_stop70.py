"""Stop 70: a tenth probe, against eager on inputs other than the traced ones: what a model's
structure holds besides its layers' maths: forward hooks and pre-hooks (on a leaf module, on
the model itself), a module called twice, tied weights, scalar parameters and buffers, a
no_grad block, recurrent cells stepped by the model's own loop, ModuleList / ModuleDict,
MultiheadAttention's options, a decoder layer, weight_norm / spectral_norm parametrizations,
RMSNorm, Bilinear, a rotary embedding built in forward, checkpointing, a TorchScript submodule,
a LoRA-style patch of a layer's forward, pruning and the old weight_norm (pre-hooks that set
the weight), a model class's own ``__call__``,
``forward(*inputs)``, and state kept across calls (a buffer, a counter, a running mean changed
in forward: eager's result changes from call to call, so a compiled copy that froze it is wrong).

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/model_features_stop70.py [--backend | --onnx]
"""
# ruff: noqa: E501, E702

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
import torch.nn.utils.prune as prune
import torch.utils.checkpoint
from _probe import Case, Skipped, compile_backend, compile_onnx_export, compile_with, run_probe
from torch import nn
from torch.nn.utils import parametrizations as P

torch.manual_seed(0)

class Hooked(nn.Module):
    def __init__(self):
        super().__init__(); self.a = nn.Linear(8, 8); self.b = nn.Linear(8, 4)
        self.a.register_forward_hook(lambda m, i, o: o * 2)
    def forward(self, x): return self.b(self.a(x).relu())

class PreHooked(nn.Module):
    def __init__(self):
        super().__init__(); self.a = nn.Linear(8, 8)
        self.a.register_forward_pre_hook(lambda m, i: (i[0] + 1,))
    def forward(self, x): return self.a(x)

class HookOnSelf(nn.Module):
    def __init__(self):
        super().__init__(); self.a = nn.Linear(8, 8)
    def forward(self, x): return self.a(x)

class Shared(nn.Module):
    def __init__(self):
        super().__init__(); self.a = nn.Linear(8, 8)
    def forward(self, x): return self.a(self.a(x).tanh())

class Tied(nn.Module):
    def __init__(self):
        super().__init__(); self.emb = nn.Embedding(10, 8, padding_idx=0); self.out = nn.Linear(8, 10, bias=False); self.out.weight = self.emb.weight
    def forward(self, ids): return self.out(self.emb(ids))

class Temp(nn.Module):
    def __init__(self):
        super().__init__(); self.t = nn.Parameter(torch.tensor(0.3)); self.register_buffer("shift", torch.randn(8))
    def forward(self, x): return ((x - self.shift) / self.t.exp()).softmax(-1)

class NoGrad(nn.Module):
    def __init__(self):
        super().__init__(); self.a = nn.Linear(8, 8)
    def forward(self, x):
        with torch.no_grad():
            y = self.a(x)
        return y + (F.dropout(x, 0.5, training=self.training) if not self.training else x)

class GRUCellLoop(nn.Module):
    def __init__(self):
        super().__init__(); self.c = nn.GRUCell(8, 6); self.l = nn.LSTMCell(8, 6)
    def forward(self, x):
        h = torch.zeros(x.shape[0], 6); hc = (torch.zeros(x.shape[0], 6), torch.zeros(x.shape[0], 6))
        for t in range(x.shape[1]):
            h = self.c(x[:, t], h); hc = self.l(x[:, t], hc)
        return h + hc[0]

class ParamBuf(nn.Module):
    def __init__(self):
        super().__init__(); self.w = nn.Parameter(torch.randn(8, 8)); self.register_buffer("mask", (torch.rand(8, 8) > 0.5).float())
    def forward(self, x): return x @ (self.w * self.mask)

class ListDict(nn.Module):
    def __init__(self):
        super().__init__(); self.ls = nn.ModuleList(nn.Linear(8, 8) for _ in range(3)); self.d = nn.ModuleDict({"p": nn.PReLU(), "g": nn.GELU(approximate="tanh")})
    def forward(self, x):
        for i, layer in enumerate(self.ls):
            x = self.d["p" if i % 2 else "g"](layer(x))
        return x

class Mha(nn.Module):
    def __init__(self):
        super().__init__(); self.m = nn.MultiheadAttention(8, 2, batch_first=True)
    def forward(self, x):
        o, w = self.m(x, x, x, need_weights=True, average_attn_weights=False)
        return o.sum() + w.sum(), w

class MhaKdim(nn.Module):
    def __init__(self):
        super().__init__(); self.m = nn.MultiheadAttention(8, 2, kdim=6, vdim=5, batch_first=True)
    def forward(self, x): return self.m(x, x[..., :6], x[..., :5], need_weights=False)[0]

class MhaBias(nn.Module):
    def __init__(self):
        super().__init__(); self.m = nn.MultiheadAttention(8, 2, add_bias_kv=True, add_zero_attn=True)
    def forward(self, x): return self.m(x, x, x)[0]

class Decoder(nn.Module):
    def __init__(self):
        super().__init__(); self.d = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    def forward(self, x):
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1])
        return self.d(x, x.flip(1), tgt_mask=mask, tgt_is_causal=True)

class WN(nn.Module):
    def __init__(self):
        super().__init__(); self.a = P.weight_norm(nn.Linear(8, 8)); self.c = P.weight_norm(nn.Conv1d(5, 5, 3, padding=1))
    def forward(self, x): return self.a(x) + self.c(x)

class SN(nn.Module):
    def __init__(self):
        super().__init__(); self.a = P.spectral_norm(nn.Linear(8, 8))
    def forward(self, x): return self.a(x)

class RMS(nn.Module):
    def __init__(self):
        super().__init__(); self.n = nn.RMSNorm(8)
    def forward(self, x): return self.n(x) + F.rms_norm(x, (8,), eps=1e-5)

class Bil(nn.Module):
    def __init__(self):
        super().__init__(); self.b = nn.Bilinear(8, 8, 3)
    def forward(self, x): return self.b(x, x.flip(-1))

class Rotary(nn.Module):
    def forward(self, x):
        d = x.shape[-1] // 2
        inv = 1.0 / (10000 ** (torch.arange(0, d).float() / d))
        t = torch.arange(x.shape[1]).float()
        f = torch.outer(t, inv)
        cos, sin = f.cos(), f.sin()
        x1, x2 = x[..., :d], x[..., d:]
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)

class Scaled(nn.Module):
    """ scale computed from shape """
    def forward(self, x): return x * x.shape[-1] ** -0.5 + x.size(1) / x.numel()

class Ckpt(nn.Module):
    def __init__(self):
        super().__init__(); self.a = nn.Linear(8, 8)
    def forward(self, x): return torch.utils.checkpoint.checkpoint(self.a, x, use_reentrant=False)

class HookedPositions(nn.Module):
    def __init__(self):
        super().__init__(); self.table = nn.Embedding(5, 8)
        self.table.register_forward_hook(lambda m, i, o: o * 10)
    def forward(self, x): return x + self.table(torch.arange(x.shape[1]))

class PatchedLinear(nn.Module):
    """A LoRA-style patch of one layer's forward on the instance."""
    def __init__(self):
        super().__init__(); self.a = nn.Linear(8, 8); self.low = nn.Linear(8, 2, bias=False); self.up = nn.Linear(2, 8, bias=False)
        original = self.a.forward
        self.a.forward = lambda x: original(x) + self.up(self.low(x)) * 4
    def forward(self, x): return self.a(x).relu()

class PrunedOldWeightNorm(nn.Module):
    """torch.nn.utils.prune and the old torch.nn.utils.weight_norm: the weight computed by a
    forward pre-hook that assigns it to the module."""
    def __init__(self):
        super().__init__(); self.a = nn.Linear(8, 8); prune.l1_unstructured(self.a, "weight", amount=0.5)
        self.c = nn.utils.weight_norm(nn.Conv1d(5, 5, 3, padding=1))
    def forward(self, x): return self.a(x) + self.c(x)

class OwnCall(nn.Module):
    """Pre- and post-processing in the class's own __call__."""
    def __init__(self):
        super().__init__(); self.a = nn.Linear(8, 8)
    def forward(self, x): return self.a(x)
    def __call__(self, x): return super().__call__(x * 2) + 1

class StarArgs(nn.Module):
    def __init__(self):
        super().__init__(); self.a = nn.Linear(8, 8)
    def forward(self, *xs): return self.a(xs[0]) + xs[1]

class Scripted(nn.Module):
    def __init__(self):
        super().__init__(); self.inner = torch.jit.script(nn.Sequential(nn.Linear(8, 8), nn.ReLU()))
    def forward(self, x): return self.inner(x) * 2

class BufferSteps(nn.Module):
    def __init__(self):
        super().__init__(); self.register_buffer("steps", torch.zeros(8))
    def forward(self, x):
        self.steps.add_(1.0)
        return x * self.steps

class CallCounter(nn.Module):
    def __init__(self):
        super().__init__(); self.calls = 0
    def forward(self, x):
        self.calls += 1
        return x * self.calls

class RunningMean(nn.Module):
    def __init__(self):
        super().__init__(); self.mean = torch.zeros(8)
    def forward(self, x):
        out = x - self.mean
        self.mean = 0.9 * self.mean + 0.1 * x.mean((0, 1))
        return out

def ids(): return torch.randint(0, 10, (2, 5))
def seq(): return torch.randn(2, 5, 8)
C = [("forward hook on a leaf (x2)", Hooked, seq), ("forward pre-hook on a leaf", PreHooked, seq),
     ("shared module twice", Shared, seq), ("tied embedding/output, padding_idx", Tied, ids),
     ("scalar parameter + buffer", Temp, seq), ("no_grad block + training branch", NoGrad, seq),
     ("GRUCell/LSTMCell loop", GRUCellLoop, seq), ("parameter * buffer mask", ParamBuf, seq),
     ("ModuleList/ModuleDict, PReLU, tanh GELU", ListDict, seq), ("MHA need_weights per head", Mha, seq),
     ("MHA kdim/vdim", MhaKdim, seq), ("MHA add_bias_kv add_zero_attn", MhaBias, seq),
     ("TransformerDecoderLayer causal", Decoder, seq), ("weight_norm parametrization", WN, seq),
     ("spectral_norm (eval)", SN, seq), ("RMSNorm + F.rms_norm", RMS, seq), ("Bilinear", Bil, seq),
     ("rotary embedding built in forward", Rotary, seq), ("shape-derived scales", Scaled, seq),
     ("checkpoint in forward", Ckpt, seq), ("TorchScript submodule", Scripted, seq),
     ("hook on an embedding of constant positions", HookedPositions, seq),
     ("forward replaced on an nn.Linear (LoRA-style)", PatchedLinear, seq),
     ("prune + old weight_norm (weight set by pre-hooks)", PrunedOldWeightNorm, seq),
     ("__call__ overridden by the model's class", OwnCall, seq),
     ("buffer changed in forward (state)", BufferSteps, seq),
     ("call counter (state)", CallCounter, seq), ("running mean attribute (state)", RunningMean, seq)]

def cases() -> Iterator[Case]:
    for name, cls, make in C:
        yield name, cls().eval(), (make(),), (make(),)
    hooked = HookOnSelf()
    hooked.register_forward_hook(lambda m, i, o: o + 100)
    yield "forward hook on the compiled model itself", hooked.eval(), (seq(),), (seq(),)
    yield "forward(*inputs)", StarArgs().eval(), (seq(), seq()), (seq(), seq())


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message="provenml.compiler: the forward hooks")
    backend, onnx = "--backend" in sys.argv, "--onnx" in sys.argv
    compile_case = compile_with(tuning=False)
    if backend or onnx:  # state: the eager and the compiled model share it / export froze it

        def compile_case(model: nn.Module, example: tuple[torch.Tensor, ...]) -> Any:
            if isinstance(model, (BufferSteps, CallCounter, RunningMean)):
                raise Skipped("state shared by the eager and the compiled model")
            return (compile_backend if backend else compile_onnx_export)(model, example)

    run_probe(cases(), compile_case, width=44, header=f"backend {backend} onnx {onnx}")
