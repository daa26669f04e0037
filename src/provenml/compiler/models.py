"""The models of the end-to-end experiment: an MLP, a ResNet-style CNN on 32x32 inputs, a
MobileNet-style depthwise CNN and a pre-norm transformer block (small: every intermediate fits
in L2), and larger ones whose intermediates do not (a 2048-wide MLP, the transformer block at
sequence 256, a ResNet-18 stage at 56x56)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from provenml.core.registry import Registry


class MLP(nn.Module):
    """784 -> 256 -> 256 -> 10 with ReLU."""

    def __init__(self, sizes: tuple[int, ...] = (784, 256, 256, 10)) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class BasicBlock(nn.Module):
    """conv-bn-relu-conv-bn + (projected) shortcut, relu."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.short(x))


class ResNetSmall(nn.Module):
    """A ResNet-style CNN for 32x32 images: 16-32-64 channels, one block per stage."""

    def __init__(self, width: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.blocks = nn.Sequential(
            BasicBlock(width, width),
            BasicBlock(width, 2 * width, 2),
            BasicBlock(2 * width, 4 * width, 2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


def _separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class MobileNetSmall(nn.Module):
    """A MobileNet-style CNN: a strided stem, then depthwise-separable blocks."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU()
        )
        self.features = nn.Sequential(
            _separable(32, 64, 1),
            _separable(64, 128, 2),
            _separable(128, 128, 1),
            _separable(128, 256, 2),
        )
        self.fc = nn.Linear(256, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(self.stem(x)).mean((2, 3)))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: x + MHA(LN(x)), then x + MLP(LN(x)) (GELU, 4x width)."""

    def __init__(self, d: int = 256, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        h = self.heads
        qkv = self.qkv(self.ln1(x)).reshape(b, s, 3, h, d // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(q @ k.transpose(-2, -1) * (1.0 / math.sqrt(d // h)), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, s, d)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


def _randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            with torch.no_grad():
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=gen) * 0.1)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=gen) + 0.5)
                mod.weight.copy_(torch.rand(mod.num_features, generator=gen) + 0.5)
                mod.bias.copy_(torch.randn(mod.num_features, generator=gen) * 0.1)
    return model


class ResNetStage(nn.Module):
    """The first stage of a ResNet-18 at 56x56: two 64-channel basic blocks."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.blocks = nn.Sequential(BasicBlock(width, width), BasicBlock(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


ModelEntry = tuple[Callable[[], nn.Module], Callable[[int], tuple[int, ...]]]

#: The benchmark models by name: (factory, input shape for a batch size).
MODELS: Registry[ModelEntry] = Registry("model", normalize=str)
for _name, _entry in {
    "mlp": (MLP, lambda b: (b, 784)),
    "resnet": (ResNetSmall, lambda b: (b, 3, 32, 32)),
    "mobilenet": (MobileNetSmall, lambda b: (b, 3, 32, 32)),
    "transformer": (TransformerBlock, lambda b: (b, 64, 256)),
    # larger cases, whose intermediates do not fit in a 1 MiB L2 (issue 23, item 2)
    "mlp_wide": (lambda: MLP((784, 2048, 2048, 10)), lambda b: (b, 784)),
    "transformer_long": (TransformerBlock, lambda b: (b, 256, 256)),
    "resnet_stage": (ResNetStage, lambda b: (b, 64, 56, 56)),
}.items():
    MODELS.register(_name, _entry)
del _name, _entry
SMALL_MODELS = ("mlp", "resnet", "mobilenet", "transformer")


def build_model(name: str, batch: int = 1, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """A model in eval mode (random batch-norm statistics, so folding matters) and an input."""
    factory, shape = MODELS.get(name)  # an unknown name: one error with suggestions
    torch.manual_seed(seed)
    model = _randomize_bn(factory(), seed).eval()
    return model, torch.randn(shape(batch), generator=torch.Generator().manual_seed(seed + 1))
