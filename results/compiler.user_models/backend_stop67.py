"""Stop 67's new ops in three small models, through pc.compile and through
torch.compile(backend=pc.backend) at batch sizes 1, 2, 3 (dynamo's symbolic sizes). Run from
the repository root:
PYTHONPATH=src .venv/bin/python results/compiler.user_models/backend_stop67.py"""

import functools
import warnings

import torch
import torch.nn.functional as F
from torch import nn

import provenml.compiler as pc


class LlamaBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(64, eps=1e-6)
        self.gate, self.up = nn.Linear(64, 128, bias=False), nn.Linear(64, 128, bias=False)
        self.down = nn.Linear(128, 64, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class TextCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.convs = nn.ModuleList(nn.Conv1d(16, 8, k, padding=k // 2) for k in (3, 5))
        self.head = nn.Linear(16, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids).transpose(1, 2)
        pooled = [F.max_pool1d(F.selu(conv(x)), x.shape[-1]).squeeze(-1) for conv in self.convs]
        return self.head(torch.cat(pooled, dim=1))


class STN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.localise = nn.Linear(3 * 7 * 9, 6)
        with torch.no_grad():
            self.localise.weight.mul_(0.05)
            self.localise.bias.copy_(torch.tensor([1.0, 0.1, 0.05, -0.1, 0.9, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.localise(x.flatten(1)).view(-1, 2, 3)
        return F.grid_sample(x, F.affine_grid(theta, list(x.shape), False), align_corners=False)


cases = {
    "llama block": (LlamaBlock(), lambda b: (torch.randn(b, 16, 64),)),
    "text cnn": (TextCNN(), lambda b: (torch.randint(0, 50, (b, 20)),)),
    "spatial transformer": (STN(), lambda b: (torch.randn(b, 3, 7, 9),)),
}
backend = functools.partial(pc.backend, tuning=False, threads=2)
for name, (model, make) in cases.items():
    model.eval()
    direct = pc.compile(model, make(2), tuning=False, threads=2)
    inputs = make(2)
    with torch.no_grad():
        err = float((direct(*inputs) - model(*inputs)).abs().max())
    torch._dynamo.reset()
    compiled = torch.compile(model, backend=backend)
    worst = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for batch in (1, 2, 3):
            inputs = make(batch)
            with torch.no_grad():
                worst = max(worst, float((compiled(*inputs) - model(*inputs)).abs().max()))
    left = [str(w.message)[:80] for w in caught if "left to PyTorch" in str(w.message)]
    print(
        f"{name}: pc.compile max diff {err:.1e}; torch.compile batches 1-3 max diff "
        f"{worst:.1e}; warnings {left}"
    )
