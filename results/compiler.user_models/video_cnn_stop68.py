"""Stop 68: a small C3D-style video classifier (Conv3d + BatchNorm3d + ReLU + MaxPool3d, twice,
then AdaptiveAvgPool3d and a linear head) compiled by provenml against eager PyTorch, both on
the machine's threads, batch 1, a 16-frame 112x112 clip; interleaved rounds, median per arm.

    .venv/bin/python results/compiler.user_models/video_cnn_stop68.py
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from torch import nn

import provenml.compiler as pc


class VideoCNN(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(),
                nn.MaxPool3d(2),
            )  # fmt: skip

        self.features = nn.Sequential(block(3, 16), block(16, 32), block(32, 64))
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.head = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


def main() -> None:
    torch.manual_seed(0)
    model = VideoCNN().eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 3, 16, 112, 112)
    print("load average at the start", tuple(round(v, 2) for v in os.getloadavg()))
    t0 = time.perf_counter()
    compiled = pc.compile(model, (x,))
    print(f"compile {time.perf_counter() - t0:.1f} s, threads {compiled.graph.threads}")
    with torch.no_grad():
        want = model(x)
    err = float((compiled(x) - want).abs().max())
    print(f"max abs difference to eager {err:.2e} (output scale {float(want.abs().max()):.2f})")
    arms = {"eager": lambda: model(x), "provenml": lambda: compiled(x)}
    times: dict[str, list[float]] = {k: [] for k in arms}
    with torch.no_grad():
        for f in arms.values():
            for _ in range(3):
                f()
        for _ in range(15):
            for k, f in arms.items():
                t = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    ratio = np.array(times["provenml"]) / np.array(times["eager"])
    print(f"eager {med['eager']:.1f} ms, provenml {med['provenml']:.1f} ms; "
          f"provenml / eager per round: median {np.median(ratio):.2f} "
          f"(range {ratio.min():.2f}-{ratio.max():.2f})")  # fmt: skip
    prof = compiled.profile(x, calls=5)
    print(prof.table())
    print("load average at the end", tuple(round(v, 2) for v in os.getloadavg()))


if __name__ == "__main__":
    main()
