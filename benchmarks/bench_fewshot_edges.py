"""EdgeMLP (the learnt adjacency of AdarGCN, the few-shot GNN and the label denoiser) with its
first layer in C (``provenml.fewshot.native``, stop 55) against PyTorch's layers, in one run.

The cases are the shapes ``fewshot.scarce_source`` runs at ``small`` (recorded from a run):
meta-training batches of 8 episodes (forward and backward), the test batches of 100 episodes
of 5-way queries against 5 or 25 support columns (forward only, no gradient), and the label
denoiser's 64 grouped class graphs (forward and backward, 8 hidden units). Each case
alternates the two paths (``PROVENML_NATIVE=1`` / ``0``) for ``--rounds`` rounds of
``--repeats`` calls, one thread; prints the median milliseconds per call of each path, the
median of the per-round ratios (C / PyTorch) and the load average.

    .venv/bin/python benchmarks/bench_fewshot_edges.py [--rounds 5] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from provenml.fewshot import EdgeMLP
from provenml.fewshot.native import native_edge_layer_available

# (name, leading dims, rows, columns, width, hidden, groups, backward)
CASES = [
    ("meta-train 5-shot, block 1", (8,), 40, 25, 64, (16,), 1, True),
    ("meta-train 5-shot, block 3", (8,), 40, 25, 128, (16,), 1, True),
    ("meta-train 1-shot, block 2", (8,), 20, 5, 96, (16,), 1, True),
    ("test 5-shot, block 3", (100,), 100, 25, 128, (16,), 1, False),
    ("test 1-shot, block 3", (100,), 80, 5, 128, (16,), 1, False),
    ("denoiser, 64 classes", (64, 2), 30, 30, 48, (8,), 64, True),
]


def _time(net: EdgeMLP, nodes: torch.Tensor, cols: int, backward: bool, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        x = nodes.clone().requires_grad_(backward)
        with torch.set_grad_enabled(backward):
            scores = net(x, x[..., :cols, :])
            if backward:
                scores.sum().backward()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not native_edge_layer_available(torch.zeros(1)):
        raise SystemExit("the C edge layer is not available here (no gcc, or no AVX2)")
    print(f"load average at the start: {os.getloadavg()}")
    print(f"{'case':32s} {'PyTorch ms':>11s} {'C ms':>8s} {'C / PyTorch':>12s}")
    for name, lead, rows, cols, width, hidden, groups, backward in CASES:
        torch.manual_seed(0)
        net = EdgeMLP(width, hidden, groups)
        nodes = torch.randn(*lead, rows, width)
        times: dict[str, list[float]] = {"0": [], "1": []}
        for _ in range(args.rounds):
            for flag in ("1", "0"):
                os.environ["PROVENML_NATIVE"] = flag
                _time(net, nodes, cols, backward, 1)  # warm-up
                times[flag].append(_time(net, nodes, cols, backward, args.repeats))
        ratios = np.array(times["1"]) / np.array(times["0"])
        print(
            f"{name:32s} {np.median(times['0']):11.2f} {np.median(times['1']):8.2f} "
            f"{np.median(ratios):12.2f}"
        )
    os.environ.pop("PROVENML_NATIVE", None)
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
