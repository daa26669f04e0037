"""Stop 70: the transformer block (batch 1, sequence 64, width 256, 4 heads, feed-forward 1024)
compiled by the provenml on ``PYTHONPATH`` (this checkout's ``src`` or a checkout of e6b2ac4,
stop 69's last commit), one thread, no tuning; the median of 15 rounds of 200 calls. Run the
two alternately: this stop changed no kernel the block uses (its sums are under 1024 long).

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/transformer_ab_stop70.py
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from torch import nn

import provenml.compiler as pc


def main() -> None:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(256, 4, 1024, dropout=0.0, batch_first=True).eval()
    x = torch.randn(1, 64, 256)
    compiled = pc.compile(layer, (x,), threads=1, tuning=False)
    rounds = []
    for _ in range(15):
        start = time.perf_counter()
        for _ in range(200):
            compiled(x)
        rounds.append((time.perf_counter() - start) / 200)
    print(
        f"{pc.__file__}: {np.median(rounds) * 1e6:.1f} us (rounds {min(rounds) * 1e6:.1f}-"
        f"{max(rounds) * 1e6:.1f}), load average {tuple(round(v, 2) for v in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
