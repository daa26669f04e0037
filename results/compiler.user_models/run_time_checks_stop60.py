"""Stop 60: what the run-time index check costs a call. A token-embedding model (ids -> an
embedding -> LayerNorm -> Linear, batch 8 x 32 tokens) compiled once; its calls timed with the
check on (the library asked for an error after each call) and off (the same build, the check
skipped), alternating in interleaved rounds. Prints the median per-call times and the ratio.

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/run_time_checks_stop60.py
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from torch import nn

import provenml.compiler as pc


class TokenModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(1000, 64)
        self.norm = nn.LayerNorm(64)
        self.proj = nn.Linear(64, 64)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(self.embed(ids)))


def per_call(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def main() -> None:
    torch.manual_seed(0)
    ids = torch.randint(0, 1000, (8, 32))
    compiled = pc.compile(TokenModel().eval(), (ids,), tuning=False, threads=1)
    graph = compiled.graph
    assert graph.program.checks_errors
    on, off = [], []
    for _ in range(3):
        compiled(ids)
    for _ in range(41):
        for state, store in ((True, on), (False, off)):
            graph._checks_errors = state
            store.append(per_call(lambda: compiled(ids), 2000))
    graph._checks_errors = True
    load = os.getloadavg()[0]
    print(f"load average {load:.2f}; 41 interleaved rounds of 2000 calls, one thread")
    print(f"check on : {np.median(on) * 1e6:.2f} us per call (median)")
    print(f"check off: {np.median(off) * 1e6:.2f} us per call (median)")
    ratio = np.median(np.asarray(on) / np.asarray(off))
    print(f"on / off, per-round median: {ratio:.4f}")
    print(f"on - off: {(np.median(on) - np.median(off)) * 1e9:.0f} ns per call")


if __name__ == "__main__":
    main()
