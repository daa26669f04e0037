"""Stop 68: 76 reductions, normalisations and elementwise ops on rows holding infinities,
NaN, a row of -inf and (row 8) an overflowing sum, compiled by provenml against eager.

    .venv/bin/python results/compiler.user_models/special_values_stop68.py          # 8 rows
    ROWS=7 .venv/bin/python results/compiler.user_models/special_values_stop68.py   # no row 8
"""

import os

import torch
import torch.nn.functional as F

import provenml.compiler as pc

NAN, INF = float("nan"), float("inf")
rows = [
    [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
    [-INF] * 8,
    [INF, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
    [-INF, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
    [NAN, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
    [INF, -INF, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
    [INF] * 8,
    [1e38, 1e38, 1e38, 1e38, -1e38, 0.0, 1.0, 2.0],
]
x = torch.tensor(rows[: int(os.environ.get("ROWS", 8))])
CASES = {
    "softmax": lambda x: torch.softmax(x, -1),
    "log_softmax": lambda x: torch.log_softmax(x, -1),
    "softmax dim0": lambda x: torch.softmax(x, 0),
    "log_softmax dim0": lambda x: torch.log_softmax(x, 0),
    "logsumexp": lambda x: torch.logsumexp(x, -1),
    "logsumexp dim0": lambda x: torch.logsumexp(x, 0),
    "layer_norm": lambda x: F.layer_norm(x, (8,)),
    "rms_norm": lambda x: F.rms_norm(x, (8,)),
    "sum": lambda x: x.sum(-1),
    "mean": lambda x: x.mean(-1),
    "var": lambda x: x.var(-1),
    "std": lambda x: x.std(-1),
    "amax": lambda x: x.amax(-1),
    "amin": lambda x: x.amin(-1),
    "max": lambda x: x.max(-1).values,
    "argmax": lambda x: x.argmax(-1).float(),
    "argmin": lambda x: x.argmin(-1).float(),
    "norm": lambda x: x.norm(dim=-1),
    "normalize": lambda x: F.normalize(x, dim=-1),
    "cumsum": lambda x: x.cumsum(-1),
    "cumprod": lambda x: x.cumprod(-1),
    "logcumsumexp": lambda x: torch.logcumsumexp(x, -1),
    "prod": lambda x: x.prod(-1),
    "nansum": lambda x: torch.nansum(x, -1),
    "nanmean": lambda x: torch.nanmean(x, -1),
    "sort": lambda x: x.sort(-1).values,
    "topk": lambda x: x.topk(3, -1).values,
    "median": lambda x: x.median(-1).values,
    "max_pool1d": lambda x: F.max_pool1d(x[None], 2)[0],
    "avg_pool1d": lambda x: F.avg_pool1d(x[None], 2)[0],
    "group_norm": lambda x: F.group_norm(x[None], 1)[0],
    "instance_norm": lambda x: F.instance_norm(x[None])[0],
    "batch_norm": lambda x: F.batch_norm(x, torch.zeros(8), torch.ones(8)),
    "cosine_sim": lambda x: F.cosine_similarity(x, x.flip(0), -1),
    "softmin": lambda x: F.softmin(x, -1),
    "glu": lambda x: F.glu(x, -1),
    "mish": F.mish,
    "logsigmoid": F.logsigmoid,
    "softplus": F.softplus,
    "silu": F.silu,
    "elu": F.elu,
    "celu": F.celu,
    "selu": F.selu,
    "tanhshrink": F.tanhshrink,
    "hardtanh": F.hardtanh,
    "leaky": F.leaky_relu,
    "prelu": lambda x: F.prelu(x, torch.tensor([0.25])),
    "nan_to_num": torch.nan_to_num,
    "clamp": lambda x: x.clamp(-2, 2),
    "where": lambda x: torch.where(x > 2, x, -x),
    "matmul": lambda x: x @ torch.ones(8, 3),
    "linear": lambda x: F.linear(x, torch.ones(3, 8), torch.ones(3)),
    "lerp": lambda x: torch.lerp(x, x.flip(0), 0.3),
    "pow": lambda x: x**2.5,
    "atan2": lambda x: torch.atan2(x, x.flip(0)),
    "remainder": lambda x: torch.remainder(x, 3.0),
    "fmod": lambda x: torch.fmod(x, 3.0),
    "floor_div": lambda x: x // 3.0,
    "reciprocal": torch.reciprocal,
    "rsqrt": torch.rsqrt,
    "log1p": torch.log1p,
    "expm1": torch.expm1,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "asinh": torch.asinh,
    "sinh": torch.sinh,
    "cosh": torch.cosh,
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "atan": torch.atan,
    "erfc": torch.erfc,
    "lgamma": torch.lgamma,
    "interp": lambda x: F.interpolate(x[None], scale_factor=2, mode="linear")[0],
    "pairwise": lambda x: F.pairwise_distance(x, x.flip(0)),
    "cross_entropy-like": lambda x: -torch.log_softmax(x, -1)[:, 0],
}


class M(torch.nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


bad = []
for name, f in CASES.items():
    m = M(f).eval()
    ref = m(x)
    try:
        got = pc.compile(m, x)(x)
    except Exception as e:
        print(f"{name:18s} ERROR {type(e).__name__}: {str(e)[:90]}")
        continue
    same = got.shape == ref.shape and torch.allclose(got, ref, rtol=1e-4, atol=1e-5, equal_nan=True)
    if not same:
        bad.append(name)
        if got.shape != ref.shape:
            print(f"{name:18s} SHAPE {tuple(got.shape)} vs {tuple(ref.shape)}")
            continue
        diff = ~torch.isclose(got, ref, rtol=1e-4, atol=1e-5, equal_nan=True)
        idx = diff.nonzero()[:3].tolist()
        print(
            f"{name:18s} DIFFERS at {int(diff.sum())}: "
            + "; ".join(
                f"{tuple(i)} eager={ref[tuple(i)].item():.4g} pm={got[tuple(i)].item():.4g}"
                for i in idx
            )
        )
print("differs:", len(bad), "of", len(CASES), bad)
