"""Stop 66: PyG's layers on ``gcn_norm`` with their default self loops, compiled (the fixed-size
twin of ``provenml.compiler.frontend.pyg``), against eager, and their latency.

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/gcn_self_loops_stop66.py

1. Exactness: each layer (one at a time, 2,000 nodes, 20,000 random edges of which 200 are
   self loops, 64 features) compiled at one thread and compared with eager on the compiled
   edge set and on a second one with 500 loops; largest difference printed.
2. Latency, as stop 59's probe timed GCN with ``add_self_loops=False``: two GCN layers (64 ->
   64 -> 16) with their loops, the compiled model and eager alternating for ``ROUNDS`` rounds
   of ``CALLS`` calls, one torch thread, three runs; medians and the per-round ratio.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import torch
import torch_geometric.nn as gnn
from torch import nn

import provenml.compiler as pc

NODES, EDGES, ROUNDS, CALLS = 2000, 20_000, 15, 20


def edges(seed: int, loops: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    index = torch.randint(0, NODES, (2, EDGES), generator=g)
    index[1, :loops] = index[0, :loops]
    return index


class Layer(nn.Module):
    def __init__(self, conv: nn.Module, with_x0: bool = False) -> None:
        super().__init__()
        self.conv, self.with_x0 = conv, with_x0

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        if self.with_x0:
            return self.conv(x, x, edge_index)  # type: ignore[no-any-return]
        return self.conv(x, edge_index)  # type: ignore[no-any-return]


def exactness() -> None:
    layers: dict[str, Callable[[], nn.Module]] = {
        "GCNConv": lambda: Layer(gnn.GCNConv(64, 64)),
        "GCNConv(improved=True)": lambda: Layer(gnn.GCNConv(64, 64, improved=True)),
        "SGConv(K=2)": lambda: Layer(gnn.SGConv(64, 64, K=2)),
        "APPNP(K=5)": lambda: Layer(gnn.APPNP(K=5, alpha=0.1)),
        "GCN2Conv": lambda: Layer(gnn.GCN2Conv(64, alpha=0.1, theta=0.5, layer=2), True),
        "SSGConv(K=2)": lambda: Layer(gnn.SSGConv(64, 64, alpha=0.1, K=2)),
        "MixHopConv": lambda: Layer(gnn.MixHopConv(64, 16, powers=[0, 1, 2])),
    }
    torch.manual_seed(0)
    x = torch.randn(NODES, 64)
    compiled_edges, other_edges = edges(1, 200), edges(2, 500)
    for name, make in layers.items():
        model = make().eval()
        start = time.perf_counter()
        compiled = pc.compile(model, (x, compiled_edges), threads=1, tuning=False)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            diff = max(
                (compiled(x, e) - model(x, e)).abs().max().item()
                for e in (compiled_edges, other_edges)
            )
        print(f"{name}: max |compiled - eager| {diff:.1e} (compile {seconds:.1f} s)", flush=True)


def latency() -> None:
    class TwoLayers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first, self.second = gnn.GCNConv(64, 64), gnn.GCNConv(64, 16)

        def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
            return self.second(self.first(x, edge_index).relu(), edge_index)  # type: ignore[no-any-return]

    torch.manual_seed(0)
    x, edge_index = torch.randn(NODES, 64), edges(1, 200)
    model = TwoLayers().eval()
    compiled = pc.compile(model, (x, edge_index), threads=1)
    with torch.no_grad():
        rounds: dict[str, list[float]] = {"provenml": [], "eager": []}
        for _ in range(ROUNDS):
            for arm, fn in (("provenml", compiled), ("eager", model)):
                t0 = time.perf_counter()
                for _ in range(CALLS):
                    fn(x, edge_index)
                rounds[arm].append((time.perf_counter() - t0) / CALLS * 1e6)
    p, e = (statistics.median(rounds[a]) for a in ("provenml", "eager"))
    ratios = sorted(a / b for a, b in zip(rounds["provenml"], rounds["eager"], strict=True))
    print(
        f"latency two GCN layers with self loops: provenml {p:,.0f} us, eager {e:,.0f} us "
        f"(medians); per-round provenml/eager median {statistics.median(ratios):.2f}, range "
        f"{ratios[0]:.2f}-{ratios[-1]:.2f}",
        flush=True,
    )


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    torch.set_num_threads(1)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"# {stamp}, load average {load()}")
    exactness()
    for _ in range(3):
        latency()
    print(f"# end {time.strftime('%H:%M:%SZ', time.gmtime())}, load average {load()}")
