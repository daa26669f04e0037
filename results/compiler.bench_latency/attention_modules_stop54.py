"""Stop 54: PyTorch's own attention modules compiled (``frontend/torch_attention.py``) against
eager PyTorch (which runs ``nn.TransformerEncoderLayer`` and ``nn.MultiheadAttention`` through
its fused native fast path in inference), at the transformer-block size of
``compiler.end_to_end`` (batch 1, sequence 64, width 256, 4 heads, feed-forward 1024), both at
2 threads, in 15 interleaved rounds (``compiler.experiments.interleaved_samples``; a 40 ms gap
before each sample). Prints the medians, the median per-round ratio and the load average.

    PYTHONPATH=src .venv/bin/python results/compiler.bench_latency/attention_modules_stop54.py
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch
from torch import nn

import provenml.compiler as pc
from provenml.compiler.experiments import interleaved_samples


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    x = torch.randn(1, 64, 256)
    cases = {
        "TransformerEncoderLayer": (
            nn.TransformerEncoderLayer(256, 4, 1024, batch_first=True).eval(),
            (x,),
        ),
        "MultiheadAttention (need_weights=False)": (
            _SelfAttention(nn.MultiheadAttention(256, 4, batch_first=True)).eval(),
            (x,),
        ),
    }
    print("load average", tuple(round(v, 2) for v in os.getloadavg()))
    for name, (model, inputs) in cases.items():
        compiled = pc.compile(model, inputs, threads=2)
        with torch.no_grad():
            err = float((compiled(*inputs) - model(*inputs)).abs().max())
            arms = {"eager": functools.partial(model, *inputs)}
            arms["provenml"] = functools.partial(compiled, *inputs)
            rounds = interleaved_samples(arms, 15, 0.02, gap=0.04)
        ratio = np.array(rounds["provenml"]) / np.array(rounds["eager"])
        print(
            f"{name}: eager {np.median(rounds['eager']) * 1e6:.0f} us, provenml "
            f"{np.median(rounds['provenml']) * 1e6:.0f} us (threads {compiled.graph.threads}), "
            f"provenml/eager median {np.median(ratio):.2f} (rounds {ratio.min():.2f}-"
            f"{ratio.max():.2f}); max error {err:.1e}"
        )
    print("load average", tuple(round(v, 2) for v in os.getloadavg()))


class _SelfAttention(nn.Module):
    def __init__(self, attention: nn.MultiheadAttention) -> None:
        super().__init__()
        self.attention = attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x, x, x, need_weights=False)[0]


if __name__ == "__main__":
    main()
