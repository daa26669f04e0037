"""Stop 70: what the blocked long sums cost. Compiles a layer norm over 4096, a softmax over
2048, a mean over 2^16 and a group norm with 4 x 4096 values per group in the process's
provenml (run once with this checkout's ``src``, once with a checkout of e6b2ac4, stop 69's
last commit, on ``PYTHONPATH``), one thread, and prints the median of 15 rounds of 50 calls.

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/long_sums_speed_stop70.py
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from _probe import Apply

import provenml.compiler as pc

CASES: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], tuple[int, ...]]] = {
    "layer norm (64, 4096)": (lambda x: F.layer_norm(x, (4096,)), (64, 4096)),
    "softmax (64, 2048)": (lambda x: x.softmax(-1), (64, 2048)),
    "mean (8, 65536)": (lambda x: x.mean(-1), (8, 65536)),
    "group norm (4, 16, 4096), 4 groups": (lambda x: F.group_norm(x, 4), (4, 16, 4096)),
}


def main() -> None:
    print("provenml from", pc.__file__, "load average", os.getloadavg())
    for name, (fn, shape) in CASES.items():
        x = torch.randn(*shape)
        compiled = pc.compile(Apply(fn).eval(), (x,), threads=1, tuning=False)
        rounds = []
        for _ in range(15):
            start = time.perf_counter()
            for _ in range(50):
                compiled(x)
            rounds.append((time.perf_counter() - start) / 50)
        print(f"{name:36s} {np.median(rounds) * 1e6:9.1f} us")
    print("load average at the end", os.getloadavg())


if __name__ == "__main__":
    main()
