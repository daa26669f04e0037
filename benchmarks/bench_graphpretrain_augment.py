"""GraphCL pre-training throughput: batched augmentations vs. the naive per-graph loop.

The naive recipe is GraphCL's reference code re-implemented: every graph of a mini-batch is
augmented on its own in a Python loop (node dropping, edge dropping or subgraph), the views are
collated with PyG's ``Batch.from_data_list``, then encoded. provenml augments the packed
mini-batch with a few tensor operations (``provenml.graphpretrain.augment``). Same encoder, same
loss, same batch size and the same augmentation pairs per step; prints graphs per second of
both, and their ratio, for whole pre-training steps and for the augmentation alone.

    .venv/bin/python benchmarks/bench_graphpretrain_augment.py [--steps 30] [--batch 128]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import subgraph as pyg_subgraph

from provenml.graphpretrain import PackedGraphs, augment, new_encoder, nt_xent
from provenml.graphpretrain.model import encode
from provenml.graphpretrain.tasks import pretraining_corpus
from provenml.nn import mlp

AUGS = ("edge_drop", "node_drop", "subgraph")


# -- the naive recipe: one graph at a time ------------------------------------------------------


def naive_drop_nodes(data: Data, p: float, rng: np.random.Generator) -> Data:
    keep = torch.from_numpy(rng.random(data.num_nodes) >= p)
    if not keep.any():
        keep[0] = True
    edge_index, _ = pyg_subgraph(
        keep, data.edge_index, relabel_nodes=True, num_nodes=data.num_nodes
    )
    return Data(edge_index=edge_index, num_nodes=int(keep.sum()))


def naive_drop_edges(data: Data, p: float, rng: np.random.Generator) -> Data:
    src, dst = data.edge_index
    forward = src < dst
    pairs = data.edge_index[:, forward]
    pairs = pairs[:, torch.from_numpy(rng.random(pairs.size(1)) >= p)]
    return Data(edge_index=torch.cat([pairs, pairs.flip(0)], 1), num_nodes=data.num_nodes)


def naive_subgraph(data: Data, p: float, rng: np.random.Generator) -> Data:
    n = data.num_nodes
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for u, v in data.edge_index.t().tolist():
        neighbours[u].append(v)
    target = int(np.ceil((1 - p) * n))
    chosen = {int(rng.integers(n))}
    while len(chosen) < target:
        frontier = [(u, v) for u in chosen for v in neighbours[u] if v not in chosen]
        if not frontier:
            break
        chosen.add(frontier[int(rng.integers(len(frontier)))][1])
    keep = torch.zeros(n, dtype=torch.bool)
    keep[list(chosen)] = True
    edge_index, _ = pyg_subgraph(keep, data.edge_index, relabel_nodes=True, num_nodes=n)
    return Data(edge_index=edge_index, num_nodes=len(chosen))


NAIVE = {"edge_drop": naive_drop_edges, "node_drop": naive_drop_nodes, "subgraph": naive_subgraph}


def naive_view(graphs: list[Data], name: str, rng: np.random.Generator) -> Batch:
    return Batch.from_data_list([NAIVE[name](g, 0.2, rng) for g in graphs])


def encode_batch(encoder: torch.nn.Module, batch: Batch) -> torch.Tensor:
    x = torch.ones(batch.num_nodes, 1)
    return encoder(x, batch.edge_index, batch.batch)


# -- timing -------------------------------------------------------------------------------------


def run(
    corpus: PackedGraphs, steps: int, batch_size: int, naive: bool, augment_only: bool
) -> float:
    torch.manual_seed(0)
    encoder = new_encoder(32, 3)
    projection = mlp(encoder.out_dim, [encoder.out_dim], encoder.out_dim)
    optimizer = torch.optim.Adam([*encoder.parameters(), *projection.parameters()], lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    graphs = corpus.to_data_list() if naive else None
    picks = torch.randint(len(AUGS), (steps, 2), generator=torch.Generator().manual_seed(1))
    start = time.perf_counter()
    for step in range(steps):
        index = torch.randperm(corpus.num_graphs, generator=generator)[:batch_size]
        a, b = AUGS[int(picks[step, 0])], AUGS[int(picks[step, 1])]
        if naive:
            chosen = [graphs[i] for i in index.tolist()]
            view1, view2 = naive_view(chosen, a, rng), naive_view(chosen, b, rng)
            if augment_only:
                continue
            z1, z2 = encode_batch(encoder, view1), encode_batch(encoder, view2)
        else:
            batch = corpus.select(index)
            v1, v2 = augment(batch, a, 0.2, generator), augment(batch, b, 0.2, generator)
            if augment_only:
                continue
            z1, z2 = encode(encoder, v1), encode(encoder, v2)
        loss = nt_xent(projection(z1), projection(z2))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--per-domain", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    corpus = pretraining_corpus(("social", "road", "citation", "molecules"), args.per_domain)
    print(
        f"GraphCL pre-training on {corpus.num_graphs} graphs "
        f"({corpus.num_nodes / corpus.num_graphs:.1f} nodes, "
        f"{corpus.num_edges / corpus.num_graphs / 2:.1f} edges per graph), batch {args.batch}, "
        f"{args.steps} steps, 1 thread, load average "
        + " / ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    print(f"{'':36s}{'naive loop':>14s}{'batched':>14s}{'ratio':>8s}")
    for label, augment_only in (("augmentation only", True), ("whole pre-training step", False)):
        naive = run(corpus, args.steps, args.batch, naive=True, augment_only=augment_only)
        batched = run(corpus, args.steps, args.batch, naive=False, augment_only=augment_only)
        print(f"{label + ' (graphs/s)':36s}{naive:14.0f}{batched:14.0f}{batched / naive:7.1f}x")


if __name__ == "__main__":
    main()
