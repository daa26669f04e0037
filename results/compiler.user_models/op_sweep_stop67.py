"""Stop 67's sweep: about 100 calls a model's forward commonly makes, each compiled alone at one
thread against eager; prints the refused ones and any that differ from eager (rtol 1e-4,
NaN where eager has NaN). Run from the repository root:
PYTHONPATH=src .venv/bin/python results/compiler.user_models/op_sweep_stop67.py"""

import os
import warnings

import torch
import torch.nn.functional as F
from torch import nn

import provenml.compiler as pc

warnings.simplefilter("ignore")
torch.manual_seed(0)
x = torch.randn(4, 6, 8)
TRANSPOSED_WEIGHT = torch.randn(6, 3, 3)
pos = x.abs() + 0.1
cases = {
    "rms_norm F": lambda x: F.rms_norm(x, (8,), torch.ones(8), 1e-6),
    "nn.RMSNorm": nn.RMSNorm(8),
    "normalize": lambda x: F.normalize(x, dim=-1),
    "logsigmoid": lambda x: F.logsigmoid(x),
    "softsign": lambda x: F.softsign(x),
    "tanhshrink": lambda x: F.tanhshrink(x),
    "threshold": lambda x: F.threshold(x, 0.1, 2.0),
    "selu": lambda x: F.selu(x),
    "celu": lambda x: F.celu(x),
    "softmin": lambda x: F.softmin(x, -1),
    "hardshrink": lambda x: F.hardshrink(x),
    "softshrink": lambda x: F.softshrink(x),
    "rrelu eval": nn.RReLU().eval(),
    "lerp": lambda x: torch.lerp(x, x.flip(-1), 0.3),
    "addcmul": lambda x: torch.addcmul(x, x, x, value=0.5),
    "addcdiv": lambda x: torch.addcdiv(x, x, x.abs() + 1, value=0.5),
    "square": lambda x: torch.square(x),
    "pow tensor": lambda x: torch.pow(x.abs() + 1, x),
    "prod": lambda x: x.prod(-1),
    "logical_and": lambda x: torch.logical_and(x > 0, x < 1).float(),
    "logical_not": lambda x: torch.logical_not(x > 0).float(),
    "any": lambda x: (x > 2).any(-1).float(),
    "all": lambda x: (x > -5).all(-1).float(),
    "count_nonzero": lambda x: torch.count_nonzero(x > 0, -1).float(),
    "arange in forward": lambda x: x + torch.arange(x.shape[-1]),
    "eye": lambda x: x @ torch.eye(8),
    "diagonal": lambda x: torch.diagonal(x[..., :6], dim1=-2, dim2=-1),
    "diff": lambda x: torch.diff(x, dim=-1),
    "outer": lambda x: torch.outer(x[0, 0], x[0, 1]),
    "repeat_interleave": lambda x: x.repeat_interleave(2, dim=1),
    "repeat": lambda x: x.repeat(1, 2, 1),
    "expand": lambda x: x[:, :1].expand(4, 6, 8) * 1,
    "baddbmm": lambda x: torch.baddbmm(x[:, :, :6], x, x.transpose(1, 2)),
    "bmm": lambda x: torch.bmm(x, x.transpose(1, 2)),
    "conv_transpose1d": lambda x: F.conv_transpose1d(x, TRANSPOSED_WEIGHT),
    "pairwise_distance": lambda x: F.pairwise_distance(x[0], x[1]),
    "local_response_norm": lambda x: F.local_response_norm(x[None], 3)[0],
    "glu": lambda x: F.glu(x),
    "silu": lambda x: F.silu(x),
    "log_softmax": lambda x: F.log_softmax(x, 1),
    "masked_fill scalar": lambda x: x.masked_fill(x > 0, 0.0),
    "where scalar": lambda x: torch.where(x > 0, x, 0.0),
    "clamp tensor": lambda x: x.clamp(min=x.flip(-1)),
    "amax 2 dims": lambda x: x.amax((0, 2)),
    "std": lambda x: x.std(-1),
    "max_pool3d": lambda x: F.max_pool3d(x[None], 2)[0],
    "grid_sample": lambda x: F.grid_sample(x[None], torch.zeros(1, 2, 2, 2))[0],
    "searchsorted": lambda x: torch.searchsorted(torch.linspace(-2, 2, 5), x).float(),
    "bucketize": lambda x: torch.bucketize(x, torch.linspace(-2, 2, 5)).float(),
    "einsum": lambda x: torch.einsum("bij,bkj->bik", x, x),
    "cumsum": lambda x: x.cumsum(1),
    "cummax": lambda x: x.cummax(1).values,
    "sort": lambda x: x.sort(-1).values,
    "median": lambda x: x.median(-1).values,
    "nanmean": lambda x: x.nanmean(-1),
    "logaddexp": lambda x: torch.logaddexp(x, x.flip(-1)),
    "hypot": lambda x: torch.hypot(x, x.flip(-1)),
    "copysign": lambda x: torch.copysign(x, x.flip(-1)),
    "frac": lambda x: torch.frac(x),
    "sigmoid_": lambda x: x.clone().sigmoid_(),
    "dropout eval": nn.Dropout(0.5).eval(),
    "alpha_dropout eval": nn.AlphaDropout(0.5).eval(),
    "Identity": nn.Identity(),
    "Flatten/Unflatten": nn.Sequential(nn.Flatten(1), nn.Unflatten(1, (6, 8))),
    "ChannelShuffle": nn.ChannelShuffle(2),
    "LPPool1d": nn.LPPool1d(2, 2),
    "CosineSimilarity": lambda x: F.cosine_similarity(x, x.flip(-1), -1),
    "nn.Softmax2d": lambda x: F.softmax(x[None], -3)[0],
    "new_tensor ops": lambda x: x + x.new_ones(8),
    "type_as": lambda x: x.type_as(x) * 2,
    "to dtype float": lambda x: x.to(torch.float32) * 2,
    "float64": lambda x: (x.double() * 2).float(),
    "half": lambda x: x.half().float(),
    "stack": lambda x: torch.stack([x, x], 1),
    "narrow": lambda x: x.narrow(2, 1, 3),
    "index_select": lambda x: x.index_select(2, torch.tensor([0, 3])),
    "masked_select": lambda x: torch.masked_select(x, x > 0),
    "nonzero": lambda x: torch.nonzero(x > 0).float(),
    "rot90": lambda x: torch.rot90(x, 1, (1, 2)),
    "movedim": lambda x: torch.movedim(x, 0, -1),
    "swapaxes": lambda x: x.swapaxes(0, 1),
    "view_as": lambda x: x.view(-1).view_as(x),
    "contiguous": lambda x: x.transpose(1, 2).contiguous(),
    "matrix_exp": lambda x: torch.matrix_exp(x[:, :6, :6]),
    "inverse": lambda x: torch.inverse(x[:, :6, :6] + 6 * torch.eye(6)),
    "det": lambda x: torch.det(x[:, :6, :6]),
    "triu_": lambda x: x.triu(1),
    "erfinv": lambda x: torch.erfinv(x.tanh() * 0.9),
    "sinc": lambda x: torch.sinc(x),
    "xlogy": lambda x: torch.xlogy(pos, pos),
    "log_sigmoid module": nn.LogSigmoid(),
    "Softplus module": nn.Softplus(2.0),
    "GELU tanh module": nn.GELU("tanh"),
    "Hardshrink module": nn.Hardshrink(),
    "PixelShuffle": lambda x: F.pixel_shuffle(x[None, :4], 2)[0],
}


class M(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


refused, wrong = [], []
for name, f in cases.items():
    m = M(f).eval()
    try:
        want = m(x)
    except Exception as e:
        print(f"{name:22s} eager fails: {e}"[:120])
        continue
    try:
        got = pc.compile(m, (x,), threads=1, tuning=False)(x)
    except Exception as e:
        refused.append(name)
        print(f"{name:22s} REFUSED {type(e).__name__}: {str(e)[:90]}")
        continue
    ok = (
        torch.allclose(got.float(), want.float(), rtol=1e-4, atol=1e-5, equal_nan=True)
        and got.dtype == want.dtype
    )
    if not ok:
        wrong.append(name)
        print(f"{name:22s} WRONG dtype {got.dtype} vs {want.dtype}")
print("refused", len(refused), refused)
print("wrong", wrong)
print("load average", os.getloadavg())
