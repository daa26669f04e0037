"""Stop 59's probe of what users' models contain, as run for docs/compiler_history.md (*Stop 59*).

Three parts, each line "name: OK <max |compiled - eager|>" or the error the compiler raised:

1. common torch functions and layers, each inside a small module (``compile``);
2. PyTorch Geometric message-passing layers, two layers on a random graph (12 nodes, 40
   edges), checked on a second edge set of the same size;
3. a latency comparison on a larger graph: a two-layer GCN (``add_self_loops=False``) and a
   two-layer GraphSAGE (mean) on 2,000 nodes, 20,000 edges, 64 features, one thread, the
   compiled model and eager alternating for ``ROUNDS`` rounds of ``CALLS`` calls each
   (medians of the per-round means, and the per-round ratios). ``--latency N`` runs only
   this part, N times (the host's speed moves between minutes).

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/ops_probe_stop59.py
"""

from __future__ import annotations

import os
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

import provenml.compiler as pc

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
ROUNDS, CALLS = 15, 20


class Wrap(nn.Module):
    def __init__(self, fn: Callable[..., torch.Tensor] | nn.Module, arity: int) -> None:
        super().__init__()
        self.fn, self.arity = fn, arity

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        return self.fn(a) if self.arity == 1 else self.fn(a, b)  # type: ignore[operator, no-any-return]


def torch_cases() -> dict[
    str, tuple[Callable[..., torch.Tensor] | nn.Module, tuple[torch.Tensor, ...]]
]:
    x, idx, src = torch.randn(4, 16), torch.randint(0, 4, (10,)), torch.randn(10, 16)
    img = torch.randn(2, 8, 4, 6)
    return {
        "index_add": (lambda a, i: a.index_add(0, i, src), (x, idx)),
        "scatter_add": (lambda a, i: a.scatter_add(0, i[:, None].expand(-1, 16), src), (x, idx)),
        "scatter_reduce mean": (
            lambda a, i: a.scatter_reduce(0, i[:, None].expand(-1, 16), src, "mean"),
            (x, idx),
        ),
        "index_select": (lambda a, i: a.index_select(0, i), (x, idx)),
        "floordiv int": (lambda i: i // 3 + i % 3, (idx,)),
        "one_hot": (lambda i: F.one_hot(i, 4).float(), (idx,)),
        "logsumexp": (lambda a: torch.logsumexp(a, 1), (x,)),
        "var_mean": (lambda a: torch.var_mean(a, 1)[0], (x,)),
        "flip": (lambda a: a.flip(1), (x,)),
        "roll": (lambda a: a.roll(2, 1), (x,)),
        "tril": (lambda a: a.tril(), (x,)),
        "pixel_shuffle": (nn.PixelShuffle(2), (img,)),
        "instance_norm": (nn.InstanceNorm2d(8), (img,)),
        "glu": (nn.GLU(), (x,)),
        "mish": (nn.Mish(), (x,)),
        "softplus beta": (nn.Softplus(beta=2.0), (x,)),
        "prelu": (nn.PReLU(16), (x,)),
        "bilinear": (nn.Bilinear(16, 16, 5), (x, x)),
        "embedding_bag": (nn.EmbeddingBag(20, 8), (torch.randint(0, 20, (3, 5)),)),
        "cosine_similarity": (lambda a, b: F.cosine_similarity(a, b), (x, x + 1)),
        "matrix_norm": (lambda a: torch.linalg.matrix_norm(a[None]), (x,)),
        "adaptive max pool 2x2": (nn.AdaptiveMaxPool2d(2), (img,)),
        "round / sign": (lambda a: torch.round(a * 3) + a.sign(), (x,)),
        "clamp by a tensor": (lambda a: torch.clamp(a, min=torch.zeros(16)), (x,)),
        "TransformerDecoderLayer": (
            nn.TransformerDecoderLayer(16, 2, 32, batch_first=True, dropout=0.0),
            (torch.randn(2, 5, 16), torch.randn(2, 6, 16)),
        ),
        "Transformer": (
            nn.Transformer(16, 2, 1, 1, 32, batch_first=True, dropout=0.0),
            (torch.randn(2, 6, 16), torch.randn(2, 5, 16)),
        ),
        "topk": (lambda a: torch.topk(a, 3, dim=1).values, (x,)),
        "sort": (lambda a: torch.sort(a, dim=1).values, (x,)),
        "cumprod": (lambda a: a.cumprod(1), (x,)),
        "cdist": (lambda a: torch.cdist(a, a), (x,)),
        "atan2": (lambda a: torch.atan2(a, a + 1), (x,)),
        "unfold": (lambda a: F.unfold(a, 2), (img,)),
        "fold": (lambda a: F.fold(a, (4, 4), 2), (torch.randn(1, 12, 9),)),
        "kthvalue": (lambda a: torch.kthvalue(a, 2, dim=1).values, (x,)),
        # still refused
        "logcumsumexp": (lambda a: torch.logcumsumexp(a, 1), (x,)),
        "scatter_reduce prod": (
            lambda a, i: a.scatter_reduce(0, i[:, None].expand(-1, 16), src, "prod"),
            (x, idx),
        ),
        "histc": (lambda a: torch.histc(a, 4), (x,)),
    }


def check(name: str, model: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
    model.eval()
    try:
        compiled = pc.compile(model, args, tuning=False, threads=1)
        with torch.no_grad():
            diff = (compiled(*args) - model(*args)).abs().max().item()
        print(f"{name}: OK {diff:.1e}", flush=True)
    except Exception as exc:  # the probe reports what the compiler says
        print(f"{name}: {type(exc).__name__}: {str(exc)[:160]}", flush=True)


def pyg_cases() -> None:
    import torch_geometric.nn as gnn

    class Net(nn.Module):
        def __init__(self, first: nn.Module, second: nn.Module | None = None) -> None:
            super().__init__()
            self.first, self.second = first, second

        def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
            h = self.first(x, edge_index).relu()
            return h if self.second is None else self.second(h, edge_index)

    makers: dict[str, Callable[[], nn.Module]] = {
        "GCNConv": lambda: Net(gnn.GCNConv(8, 16), gnn.GCNConv(16, 4)),
        "GCNConv add_self_loops=False": lambda: Net(
            gnn.GCNConv(8, 16, add_self_loops=False), gnn.GCNConv(16, 4, add_self_loops=False)
        ),
        "SAGEConv mean": lambda: Net(gnn.SAGEConv(8, 16), gnn.SAGEConv(16, 4)),
        "SAGEConv max": lambda: Net(gnn.SAGEConv(8, 16, aggr="max")),
        "GATConv add_self_loops=False": lambda: Net(
            gnn.GATConv(8, 8, heads=2, add_self_loops=False)
        ),
        "GATv2Conv add_self_loops=False": lambda: Net(
            gnn.GATv2Conv(8, 8, heads=2, add_self_loops=False)
        ),
        "GINConv": lambda: Net(gnn.GINConv(nn.Sequential(nn.Linear(8, 16), nn.ReLU()))),
        "GraphConv": lambda: Net(gnn.GraphConv(8, 16)),
        "TransformerConv": lambda: Net(gnn.TransformerConv(8, 8, heads=2)),
        "EdgeConv": lambda: Net(gnn.EdgeConv(nn.Sequential(nn.Linear(16, 16)))),
        "ChebConv": lambda: Net(gnn.ChebConv(8, 16, K=2)),
    }
    torch.manual_seed(0)
    x, edges = torch.randn(12, 8), torch.randint(0, 12, (2, 40))
    for name, make in makers.items():
        model = make().eval()
        try:
            compiled = pc.compile(model, (x, edges), tuning=False, threads=1)
            other = torch.randint(0, 12, (2, 40))
            with torch.no_grad():
                diff = max(
                    (compiled(x, e) - model(x, e)).abs().max().item() for e in (edges, other)
                )
            print(f"PyG {name}: OK {diff:.1e}", flush=True)
        except Exception as exc:
            print(f"PyG {name}: {type(exc).__name__}: {str(exc)[:160]}", flush=True)


def latency() -> None:
    import torch_geometric.nn as gnn

    class TwoLayers(nn.Module):
        def __init__(self, conv: Callable[[int, int], nn.Module]) -> None:
            super().__init__()
            self.first, self.second = conv(64, 64), conv(64, 16)

        def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
            return self.second(self.first(x, edge_index).relu(), edge_index)  # type: ignore[no-any-return]

    torch.manual_seed(0)
    x, edges = torch.randn(2000, 64), torch.randint(0, 2000, (2, 20_000))
    for name, conv in (
        ("GCN (add_self_loops=False)", lambda i, o: gnn.GCNConv(i, o, add_self_loops=False)),
        ("GraphSAGE (mean)", lambda i, o: gnn.SAGEConv(i, o)),
    ):
        model = TwoLayers(conv).eval()
        start = time.perf_counter()
        compiled = pc.compile(model, (x, edges), threads=1)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            diff = (compiled(x, edges) - model(x, edges)).abs().max().item()
            rounds: dict[str, list[float]] = {"provenml": [], "eager": []}
            for _ in range(ROUNDS):
                for arm, fn in (("provenml", compiled), ("eager", model)):
                    t0 = time.perf_counter()
                    for _ in range(CALLS):
                        fn(x, edges)
                    rounds[arm].append((time.perf_counter() - t0) / CALLS * 1e6)
        p, e = (statistics.median(rounds[a]) for a in ("provenml", "eager"))
        ratios = sorted(a / b for a, b in zip(rounds["provenml"], rounds["eager"], strict=True))
        print(
            f"latency {name}: provenml {p:,.0f} us, eager {e:,.0f} us (medians); per-round "
            f"provenml/eager median {statistics.median(ratios):.2f}, range {ratios[0]:.2f}-"
            f"{ratios[-1]:.2f} (compile {seconds:.1f} s, max diff {diff:.1e})",
            flush=True,
        )


if __name__ == "__main__":
    import sys

    if "--latency" in sys.argv:
        print(f"# latency only, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        for _ in range(int(sys.argv[sys.argv.index("--latency") + 1])):
            latency()
        print(f"# end, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        sys.exit(0)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"# {stamp}, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for name, (fn, args) in torch_cases().items():
        check(name, Wrap(fn, len(args)), args)
    pyg_cases()
    latency()
    print(f"# end, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
