"""Stop 69: a fifth probe, against eager on inputs other than the traced ones: the building
blocks of well-known architectures, written as their papers and torchvision-style code write
them, with batch norms whose statistics are not the identity (so a fold that goes wrong
shows): a ResNet basic block with a strided 1x1 downsample, a MobileNetV2 inverted residual,
a squeeze-and-excitation gate, a ConvNeXt block (depthwise 7x7, channels-last LayerNorm via
permutes, linear layers on a 4-d tensor, layer scale), a U-Net up step (ConvTranspose2d, skip
concatenation), ``nn.TransformerEncoderLayer`` (post- and pre-norm, GELU), a GRU and a
bidirectional two-layer LSTM classifier, a TCN block (dilated causal Conv1d with BatchNorm1d),
an MLP with BatchNorm1d and dropout, and a PointNet-style shared MLP with a max over points.

    .venv/bin/python results/compiler.user_models/blocks_stop69.py [--tuning] [--onnx | --backend]

``--backend``: each block through ``torch.compile(model, backend=pc.backend)`` (dynamo's
graph). ``--onnx``: each block exported by the TorchScript ONNX exporter and compiled from the file
(``pc.compile_onnx``), the same two inputs.
"""

from __future__ import annotations

import io
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from _probe import Case, Skipped, run_probe
from torch import nn

import provenml.compiler as pc

TUNING = "--tuning" in sys.argv
ONNX = "--onnx" in sys.argv
BACKEND = "--backend" in sys.argv


def exported(model: nn.Module, example: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buffer, dynamo=False, input_names=["x"])
    return buffer.getvalue()


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)
    )


class BasicBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = conv_bn(8, 16, 3, 2), conv_bn(16, 16, 3)
        self.down = conv_bn(8, 16, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.b(F.relu(self.a(x))) + self.down(x))


class InvertedResidual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.expand, self.dw, self.project = (
            conv_bn(8, 48, 1),
            conv_bn(48, 48, 3, groups=48),
            conv_bn(48, 8, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(F.relu6(self.dw(F.relu6(self.expand(x)))))


class SqueezeExcite(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = conv_bn(8, 16, 3)
        self.fc1, self.fc2 = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv(x))
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(y, 1)))))
        return y * gate


class ConvNeXtBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dw = nn.Conv2d(8, 8, 7, padding=3, groups=8)
        self.norm = nn.LayerNorm(8, eps=1e-6)
        self.up, self.down = nn.Linear(8, 32), nn.Linear(32, 8)
        self.gamma = nn.Parameter(torch.rand(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.down(F.gelu(self.up(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class UNetUp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(8, 4, 2, 2)
        self.conv = conv_bn(8, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = F.interpolate(x[:, :4], scale_factor=2.0, mode="nearest")
        return F.relu(self.conv(torch.cat([self.up(x), skip], 1)))


class TCNBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 8, 3, dilation=2)
        self.norm = nn.BatchNorm1d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.pad(x.flatten(2), (4, 0)))
        return F.relu(self.norm(y)) + x.flatten(2)


class PointNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Conv1d(3, 16, 1),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.Conv1d(16, 32, 1),
            nn.BatchNorm1d(32),
        )
        self.head = nn.Sequential(
            nn.Linear(32, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4)
        )

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.head(self.mlp(points).max(dim=2).values)


class Recurrent(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        if kind == "gru":
            self.rnn: nn.Module = nn.GRU(12, 16, batch_first=True)
            self.head = nn.Linear(16, 3)
        else:
            self.rnn = nn.LSTM(12, 16, num_layers=2, bidirectional=True)
            self.head = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "gru":
            out, _ = self.rnn(x)
            return self.head(out[:, -1])
        out, _ = self.rnn(x.transpose(0, 1))
        return self.head(out.mean(0))


def encoder(norm_first: bool) -> nn.Module:
    return nn.TransformerEncoderLayer(
        32, 4, 64, dropout=0.1, activation="gelu", batch_first=True, norm_first=norm_first
    )


BLOCKS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "ResNet basic block, strided 1x1 downsample": (BasicBlock, (2, 8, 16, 16)),
    "MobileNetV2 inverted residual": (InvertedResidual, (1, 8, 14, 14)),
    "squeeze-and-excitation": (SqueezeExcite, (2, 8, 10, 10)),
    "ConvNeXt block (layer scale)": (ConvNeXtBlock, (1, 8, 14, 14)),
    "U-Net up step": (UNetUp, (1, 8, 8, 8)),
    "TransformerEncoderLayer post-norm": (lambda: encoder(False), (2, 10, 32)),
    "TransformerEncoderLayer pre-norm": (lambda: encoder(True), (2, 10, 32)),
    "GRU classifier (last step)": (lambda: Recurrent("gru"), (3, 7, 12)),
    "bidirectional 2-layer LSTM (mean)": (lambda: Recurrent("lstm"), (3, 7, 12)),
    "TCN block (dilated causal Conv1d + BN1d)": (TCNBlock, (2, 8, 1, 20)),
    "MLP with BatchNorm1d and dropout": (
        lambda: nn.Sequential(
            nn.Linear(12, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3)
        ),
        (6, 12),
    ),
    "PointNet shared MLP + max over points": (PointNet, (4, 3, 50)),
}


def _statistics(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return model.eval()


def cases() -> Iterator[Case]:
    for name, (factory, shape) in BLOCKS.items():
        torch.manual_seed(0)
        model = _statistics(factory())
        yield name, model, (torch.randn(*shape),), (torch.randn(*shape),)


def compile_case(model: nn.Module, example: tuple[torch.Tensor, ...]) -> Any:
    if ONNX:
        try:
            onnx_file = exported(model, example[0])
        except Exception as exc:  # PyTorch's exporter, before provenml sees the model
            raise Skipped(f"torch.onnx.export failed: {str(exc).splitlines()[0]}") from exc
        return pc.compile_onnx(onnx_file, example, threads=2, tuning=TUNING)
    if BACKEND:
        torch._dynamo.reset()
        compiled = torch.compile(model, backend=pc.backend)
        with torch.no_grad():
            compiled(*example)  # dynamo compiles on the first call
        return compiled
    return pc.compile(model, example, threads=2, tuning=TUNING)


def main() -> None:
    header = f"tuning {TUNING} onnx {ONNX} backend {BACKEND}"
    run_probe(cases(), compile_case, width=44, relative=True, header=header)


if __name__ == "__main__":
    main()
