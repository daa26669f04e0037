"""provenml.explain against torch_geometric.explain on plain PyG models.

Data: PyG's own ``ExplainerDataset`` (a BA graph with house motifs, constant features), so no
part of the comparison uses provenml's generators or classifiers. Models: plain 3-layer PyG
models (``GCNConv``, ``GraphConv``, ``GINConv``; ReLU between layers, no batch norm) trained
on 80% of the nodes. Explained: the first ``--nodes`` correctly predicted motif nodes of the
held-out 20%. Both libraries explain the same model and nodes, with the same budgets:

- GNNExplainer: 100 epochs, lr 0.01, PyG's coefficients on both sides;
- PGExplainer: PyG's training phase as its documentation prescribes (``algorithm.train(epoch,
  ...)`` for every epoch and every training node, then ``explainer(...)``), on the same
  training nodes as ours (``PGExplainer.fit``): the first ``--fit-nodes`` correctly predicted
  motif nodes of the train split, 30 epochs, lr 0.003 (PyG's trainer takes one node per
  step, so its training time grows with this number).

Scores: PyG's ``groundtruth_metrics(..., "auroc")`` against the motif edges, over the edges of
each node's computation subgraph (our ``Explanation.edge_id``; PyG's full-graph masks are read
at the same edges), pooled over nodes and per node (mean over nodes of each node's AUROC, nodes
whose subgraph holds one class only skipped). The script also checks, for every model, that our
computation subgraphs reproduce the full-graph logits exactly.

    .venv/bin/python benchmarks/bench_explain_pyg.py [--nodes 20] [--seed 0]
    .venv/bin/python benchmarks/bench_explain_pyg.py --variants   # GNNExplainer's mask variants

``--variants`` prints instead the AUROC of four GNNExplainer variants (initial logits
``N(1, .)`` from the subgraph's size, as the authors' code, or ``N(0, .)`` from the whole
graph's, as PyG; the mask symmetrised while optimising, as the authors' code, or one value per
directed edge, as PyG) on GCNConv and GraphConv, explainer seeds 0 and 1 (docs/explain.md).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.datasets import ExplainerDataset
from torch_geometric.datasets.graph_generator import BAGraph
from torch_geometric.explain import Explainer
from torch_geometric.explain import GNNExplainer as PyGGNNExplainer
from torch_geometric.explain import PGExplainer as PyGPGExplainer
from torch_geometric.explain.metric import groundtruth_metrics
from torch_geometric.nn import GCNConv, GINConv, GraphConv

from provenml.explain import GNNExplainer, PGExplainer
from provenml.explain.base import ExplainerMethod, Explanation

CONVS: dict[str, Callable[[int, int], nn.Module]] = {
    "GCNConv": lambda i, o: GCNConv(i, o),
    "GraphConv": lambda i, o: GraphConv(i, o),
    "GINConv": lambda i, o: GINConv(nn.Sequential(nn.Linear(i, o), nn.ReLU(), nn.Linear(o, o))),
}


class PlainGNN(nn.Module):
    """Three PyG layers with ReLU between them and a linear head; nothing else."""

    def __init__(self, conv: Callable[[int, int], nn.Module], in_dim: int, classes: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList([conv(in_dim, 20), conv(20, 20), conv(20, 20)])
        self.head = nn.Linear(20, classes)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        for conv in self.convs:
            x = conv(x, edge_index).relu()
        return self.head(x)


def make_data(seed: int) -> Data:
    torch.manual_seed(seed)
    data = ExplainerDataset(
        graph_generator=BAGraph(num_nodes=300, num_edges=5),
        motif_generator="house",
        num_motifs=80,
    )[0]
    data.x = torch.ones(data.num_nodes, 10)
    perm = torch.randperm(data.num_nodes)
    data.train_mask = torch.zeros(data.num_nodes, dtype=torch.bool)
    data.train_mask[perm[: int(0.8 * data.num_nodes)]] = True
    return data


def train(conv: str, data: Data, seed: int, epochs: int = 1000) -> tuple[nn.Module, float]:
    torch.manual_seed(seed)
    model = PlainGNN(CONVS[conv], data.num_features, int(data.y.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.005, weight_decay=5e-4)
    for _ in range(epochs):
        model.train()
        opt.zero_grad()
        out = model(data.x, data.edge_index)
        F.cross_entropy(out[data.train_mask], data.y[data.train_mask]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(data.x, data.edge_index).argmax(-1)
    return model, float((pred == data.y)[~data.train_mask].float().mean())


def auroc(explanations: list[Explanation], masks: list[Tensor], gt: Tensor) -> tuple[float, float]:
    """PyG's groundtruth_metrics AUROC: pooled over nodes, and the mean of per-node values."""
    preds = [m.detach().float()[e.edge_id] for e, m in zip(explanations, masks, strict=True)]
    targets = [gt[e.edge_id].long() for e in explanations]
    pooled = float(groundtruth_metrics(torch.cat(preds), torch.cat(targets), ["auroc"]))
    per = [
        float(groundtruth_metrics(p, t, ["auroc"]))
        for p, t in zip(preds, targets, strict=True)
        if 0 < int(t.sum()) < len(t)
    ]
    return pooled, sum(per) / max(len(per), 1)


def full_mask(e: Explanation, num_edges: int) -> Tensor:
    out = torch.zeros(num_edges)
    out[e.edge_id] = e.edge_mask
    return out


def run_ours(method: ExplainerMethod, model: nn.Module, data: Data, index: Tensor):
    start = time.perf_counter()
    exps = method.explain_batch(model, data, index)
    seconds = (time.perf_counter() - start) / len(index)
    return exps, [full_mask(e, data.num_edges) for e in exps], seconds


class InitVariant(GNNExplainer):
    """Our GNNExplainer with PyG's initialisation: logits ``N(0, sqrt(2 / N))``, ``N`` the
    whole graph's nodes (ours: ``N(1, sqrt(2 / n))``, ``n`` the computation subgraph's)."""

    def __init__(self, graph_nodes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.graph_nodes = graph_nodes

    def attribute(self, model, batch):
        gen = torch.Generator().manual_seed(self.seed)
        std = (2.0 / self.graph_nodes) ** 0.5
        logits = (std * torch.randn(batch.num_edges, generator=gen)).requires_grad_()
        opt = torch.optim.Adam([logits], lr=self.lr)
        for param in model.parameters():
            param.requires_grad_(False)
        try:
            relevant = self._relevant_edges(model, batch, logits)
            for _ in range(self.epochs):
                opt.zero_grad()
                self.loss(model, batch, self._shape(logits.sigmoid(), batch), relevant).backward()
                opt.step()
        finally:
            for param in model.parameters():
                param.requires_grad_(True)
        return logits.detach().sigmoid() * relevant, None


def variants(data: Data, args: argparse.Namespace) -> None:
    print("\n| model | init (mean, n) | mask while optimising | seed 0 | seed 1 |")
    print("|---|---|---|---|---|")
    for conv in ("GCNConv", "GraphConv"):
        model, _ = train(conv, data, args.seed)
        with torch.no_grad():
            pred = model(data.x, data.edge_index).argmax(-1)
        index = ((data.y > 0) & (pred == data.y) & ~data.train_mask).nonzero().view(-1)
        index = index[: args.nodes]
        for init in ("1, subgraph", "0, full graph"):
            for symmetric in (True, False):
                cells = []
                for seed in (0, 1):
                    kw = {"epochs": 100, "lr": 0.01, "seed": seed, "symmetric": symmetric}
                    method = (
                        GNNExplainer(**kw)
                        if init.startswith("1")
                        else InitVariant(data.num_nodes, **kw)
                    )
                    exps, masks, _ = run_ours(method, model, data, index)
                    pooled, per = auroc(exps, masks, data.edge_mask)
                    cells.append(f"{pooled:.3f} / {per:.3f}")
                how = "symmetric" if symmetric else "directed"
                print(f"| {conv} | {init} | {how} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit-nodes", type=int, default=40)
    parser.add_argument("--models", default=",".join(CONVS))
    parser.add_argument("--variants", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = make_data(args.seed)
    if args.variants:
        variants(data, args)
        return
    config = {"mode": "multiclass_classification", "task_level": "node", "return_type": "raw"}
    print(
        f"ExplainerDataset (BA 300 nodes + 80 houses) seed {args.seed}, {args.nodes} nodes "
        f"explained, PGExplainers fitted on {args.fit_nodes}, "
        "torch threads 1, load average " + " / ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    header = (
        "\n| model | test acc | method | ours AUROC pooled | PyG AUROC pooled | "
        "ours AUROC per node | PyG AUROC per node | ours ms | PyG ms |\n" + "|---" * 9 + "|"
    )
    print(header)
    for conv in args.models.split(","):
        model, acc = train(conv, data, args.seed)
        with torch.no_grad():
            pred = model(data.x, data.edge_index).argmax(-1)
        correct = (data.y > 0) & (pred == data.y)
        index = (correct & ~data.train_mask).nonzero().view(-1)[: args.nodes]
        fit_nodes = (correct & data.train_mask).nonzero().view(-1)[: args.fit_nodes]
        gt = data.edge_mask

        # -- GNNExplainer ------------------------------------------------------------------
        exps, ours_masks, ours_t = run_ours(
            GNNExplainer(epochs=100, lr=0.01, seed=args.seed), model, data, index
        )
        pyg = Explainer(
            model,
            PyGGNNExplainer(epochs=100, lr=0.01),
            explanation_type="model",
            edge_mask_type="object",
            model_config=config,
        )
        torch.manual_seed(args.seed)
        start = time.perf_counter()
        pyg_masks = [pyg(data.x, data.edge_index, index=int(i)).edge_mask for i in index]
        pyg_t = (time.perf_counter() - start) / len(index)
        _row(conv, acc, "GNNExplainer", exps, ours_masks, pyg_masks, gt, ours_t, pyg_t)

        # -- PGExplainer: both trained on the same nodes, then explain the held-out ones -----
        ours_pg = PGExplainer(epochs=30, lr=0.003, seed=args.seed)
        start = time.perf_counter()
        ours_pg.fit(model, data, fit_nodes)
        exps, ours_masks, _ = run_ours(ours_pg, model, data, index)
        ours_t = (time.perf_counter() - start) / len(index)
        torch.manual_seed(args.seed)
        algo = PyGPGExplainer(epochs=30, lr=0.003)
        pyg = Explainer(
            model, algo, explanation_type="phenomenon", edge_mask_type="object", model_config=config
        )
        start = time.perf_counter()
        for epoch in range(30):
            for i in fit_nodes.tolist():
                algo.train(epoch, model, data.x, data.edge_index, target=pred, index=i)
        pyg_masks = [
            pyg(data.x, data.edge_index, target=pred, index=int(i)).edge_mask for i in index
        ]
        pyg_t = (time.perf_counter() - start) / len(index)
        _row(conv, acc, "PGExplainer", exps, ours_masks, pyg_masks, gt, ours_t, pyg_t)
    print("load average at the end: " + " / ".join(f"{v:.2f}" for v in os.getloadavg()))


def _row(conv, acc, name, exps, ours_masks, pyg_masks, gt, ours_t, pyg_t) -> None:
    o_pool, o_per = auroc(exps, ours_masks, gt)
    p_pool, p_per = auroc(exps, pyg_masks, gt)
    print(
        f"| {conv} | {acc:.3f} | {name} | {o_pool:.3f} | {p_pool:.3f} | {o_per:.3f} | "
        f"{p_per:.3f} | {1000 * ours_t:.1f} | {1000 * pyg_t:.1f} |",
        flush=True,
    )


if __name__ == "__main__":
    main()
