"""Stop 57 ad-hoc check: a grouped convolution as one IR conv2d (per-group weight panels)
against the lowering it replaces (a slice of the input and the weights per group, one conv
each, concatenated), and against eager, on a ResNeXt bottleneck (32 groups of 4 channels) and
a ShuffleNet-style grouped 1x1 pair, batch 1. The old lowering is rebuilt in PyTorch
(``PerGroup``: the same slices, convs and concatenation), so both run in one process.

    PYTHONPATH=src .venv/bin/python results/compiler.bench_latency/grouped_conv_stop57.py
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from torch import nn

import provenml.compiler as pc


class PerGroup(nn.Module):
    """A grouped conv written as stop 56's lowering emitted it: per-group slices and a cat."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.groups, self.conv = conv.groups, conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, w, b = self.conv, self.conv.weight, self.conv.bias
        per_in, per_out = x.shape[1] // self.groups, w.shape[0] // self.groups
        pieces = [
            nn.functional.conv2d(
                x[:, g * per_in : (g + 1) * per_in],
                w[g * per_out : (g + 1) * per_out],
                None if b is None else b[g * per_out : (g + 1) * per_out],
                c.stride,
                c.padding,
            )
            for g in range(self.groups)
        ]
        return torch.cat(pieces, 1)


class ResNeXtBlock(nn.Module):
    def __init__(self, per_group: bool = False) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(256, 128, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(128)
        grouped = nn.Conv2d(128, 128, 3, padding=1, groups=32, bias=False)
        self.grouped = PerGroup(grouped) if per_group else grouped
        self.bn2 = nn.BatchNorm2d(128)
        self.expand = nn.Conv2d(128, 256, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.reduce(x)))
        h = torch.relu(self.bn2(self.grouped(h)))
        return torch.relu(x + self.bn3(self.expand(h)))


class ShuffleUnit(nn.Module):
    def __init__(self, per_group: bool = False) -> None:
        super().__init__()
        one = nn.Conv2d(240, 60, 1, groups=3)
        two = nn.Conv2d(60, 240, 1, groups=3)
        self.one = PerGroup(one) if per_group else one
        self.depthwise = nn.Conv2d(60, 60, 3, padding=1, groups=60)
        self.two = PerGroup(two) if per_group else two

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.one(x))
        n, c, hh, ww = h.shape  # channel shuffle
        h = h.view(n, 3, c // 3, hh, ww).transpose(1, 2).reshape(n, c, hh, ww)
        return torch.relu(x + self.two(self.depthwise(h)))


def median_us(fn, rounds: int = 15, calls: int = 200) -> float:
    for _ in range(20):
        fn()
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - t) / calls * 1e6)
    return float(np.median(samples))


def main() -> None:
    torch.set_num_threads(1)
    print(f"load average at start: {os.getloadavg()}")
    for name, make, shape in (
        ("resnext_block 14x14", ResNeXtBlock, (1, 256, 14, 14)),
        ("shuffle_unit 28x28", ShuffleUnit, (1, 240, 28, 28)),
    ):
        torch.manual_seed(0)
        model = make().eval()
        slow = make(per_group=True).eval()
        slow.load_state_dict(
            {
                k.replace("grouped.", "grouped.conv.")
                .replace("one.", "one.conv.")
                .replace("two.", "two.conv."): v
                for k, v in model.state_dict().items()
            }
        )
        x = torch.randn(*shape)
        with torch.no_grad():
            ref = model(x)
            assert torch.allclose(slow(x), ref, atol=1e-5)
        built = {}
        for arm, m in (("grouped kernel", model), ("per-group slices", slow)):
            t = time.perf_counter()
            compiled = pc.compile(m, (x,), threads=1)
            seconds = time.perf_counter() - t
            err = float((compiled(x) - ref).abs().max())
            convs = compiled.dump("frontend").count("= conv2d(")
            built[arm] = compiled
            print(
                f"{name}: {arm}: compile {seconds:.1f} s, {convs} conv2d nodes, max err {err:.1e}"
            )
        with torch.no_grad():
            arms = {"eager": (lambda m=model, x=x: m(x))}
            arms |= {a: (lambda c=c, x=x: c(x)) for a, c in built.items()}
            # interleaved: three passes over the arms, the median of each arm's medians
            runs = {a: [] for a in arms}
            for _ in range(3):
                for a, fn in arms.items():
                    runs[a].append(median_us(fn))
        for a, r in runs.items():
            print(f"{name}: {a}: {np.median(r):.1f} us per call (1 thread; passes {r})")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
