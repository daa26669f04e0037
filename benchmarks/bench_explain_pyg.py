"""GNNExplainer and PGExplainer: provenml.explain against torch_geometric.explain.

Same model (our trained GCN on BA-Shapes, seed 0), same nodes (correctly predicted motif
nodes), same epochs and learning rates. Prints the wall time per explanation of each and their
ratio (goal <= 0.5), and the ground-truth AUROC of both, pooled over the nodes' computation
subgraph edges (goal: ours >= PyG's).

    .venv/bin/python benchmarks/bench_explain_pyg.py [--nodes 20]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch_geometric.explain import Explainer
from torch_geometric.explain import GNNExplainer as PyGGNNExplainer
from torch_geometric.explain import PGExplainer as PyGPGExplainer

from provenml.explain import GNNExplainer, PGExplainer, metrics
from provenml.explain.benchmark import make_task


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = make_task("ba_shapes", args.seed, args.nodes)
    model, data, index = task.model, task.data, task.index
    assert index is not None
    print(
        f"BA-Shapes seed {args.seed}: GCN test accuracy {task.test_acc:.3f}, "
        f"{len(index)} nodes explained, torch threads 1, load average "
        + " / ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    config = {"mode": "multiclass_classification", "task_level": "node", "return_type": "raw"}
    rows = []

    # -- GNNExplainer: 100 epochs, lr 0.01, PyG's coefficients on both sides -------------------
    start = time.perf_counter()
    ours = GNNExplainer(epochs=100, lr=0.01, seed=args.seed).explain_batch(model, data, index)
    ours_t = (time.perf_counter() - start) / len(index)
    pyg = Explainer(
        model,
        PyGGNNExplainer(epochs=100, lr=0.01),
        explanation_type="model",
        edge_mask_type="object",
        model_config=config,
    )
    start = time.perf_counter()
    pyg_masks = [pyg(data.x, data.edge_index, index=int(i)).edge_mask for i in index]
    pyg_t = (time.perf_counter() - start) / len(index)
    rows.append(("GNNExplainer", ours_t, pyg_t, ours, pyg_masks))

    # -- PGExplainer: 30 epochs, lr 0.003, trained on the explained nodes on both sides -------
    start = time.perf_counter()
    ours = PGExplainer(epochs=30, lr=0.003, seed=args.seed).explain_batch(model, data, index)
    ours_t = (time.perf_counter() - start) / len(index)
    algo = PyGPGExplainer(epochs=30, lr=0.003)
    pyg = Explainer(
        model, algo, explanation_type="phenomenon", edge_mask_type="object", model_config=config
    )
    with torch.no_grad():
        target = model(data.x, data.edge_index).argmax(-1)
    start = time.perf_counter()
    for epoch in range(30):
        for i in index.tolist():
            algo.train(epoch, model, data.x, data.edge_index, target=target, index=i)
    pyg_masks = [pyg(data.x, data.edge_index, target=target, index=int(i)).edge_mask for i in index]
    pyg_t = (time.perf_counter() - start) / len(index)
    rows.append(("PGExplainer", ours_t, pyg_t, ours, pyg_masks))

    print(
        "\n| method | ours ms/expl | PyG ms/expl | ratio (goal <= 0.5) | ours AUROC | "
        "PyG AUROC |\n|---|---|---|---|---|---|"
    )
    for name, ours_t, pyg_t, ours_exps, pyg_masks in rows:
        ours_auc = metrics.groundtruth_auroc(ours_exps, data.edge_gt)
        # PyG's masks cover the whole graph: score them on the same computation-subgraph edges
        pyg_exps = []
        for e, m in zip(ours_exps, pyg_masks, strict=True):
            clone = type(e)(**{**e.__dict__})
            clone.edge_mask = m.detach()[e.edge_id]
            pyg_exps.append(clone)
        pyg_auc = metrics.groundtruth_auroc(pyg_exps, data.edge_gt)
        print(
            f"| {name} | {1000 * ours_t:.1f} | {1000 * pyg_t:.1f} | {ours_t / pyg_t:.3f} | "
            f"{ours_auc:.3f} | {pyg_auc:.3f} |"
        )
    print("load average at the end: " + " / ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
