"""Data-parallel training of :class:`~provenml.kge.sparse.SparseKGE` over processes with
``torch.distributed`` (gloo on CPU, NCCL on GPUs), with a sparse all-reduce of the gradients.

Why data-parallel rather than PyTorch-BigGraph's entity partitions: every process holds the
whole embedding table (a 1M-entity, 64-dim ComplEx table is 0.5 GB in float32, which one
machine holds), so no bucket schedule is needed and training is exactly the single-process
algorithm on a larger batch: each of ``W`` processes takes every ``W``-th positive of the same
shuffled batch, computes its chunk-shared loss, and the processes average their gradients.
Embedding gradients are sparse (only the touched rows), so the all-reduce exchanges
``(row ids, row gradients)`` with ``all_gather`` instead of a dense table: its volume grows
with the batch, not with the number of entities. After the exchange every process holds the
same averaged sparse gradient and takes the same optimiser step, so the replicas stay
identical (the test checks it bit for bit). Partitioned tables are what to add when one
machine cannot hold the table.

Launch on one machine (``W`` processes)::

    python -m provenml.kge.distributed --graph GRAPH_DIR --workers 2 --out model.pt

or with ``torchrun`` (one machine or several; on each machine)::

    torchrun --nnodes 2 --nproc-per-node 4 --node-rank 0 --master-addr HOST --master-port 29500 \\
        -m provenml.kge.distributed --graph GRAPH_DIR --out model.pt

where ``GRAPH_DIR`` was written by :meth:`~provenml.kge.large.LargeKG.save` (every machine
needs a copy) and the processes rendezvous through ``env://`` (torchrun's variables).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from provenml.errors import ProvenmlError
from provenml.kge.checks import check_int
from provenml.kge.sparse import SparseKGE, SparseTrainingConfig, chunk_loss, make_sparse_optimizer


def allreduce_sparse_grads(model: torch.nn.Module) -> int:
    """Average every parameter's sparse gradient over the process group; return the number of
    rows this process sent. Dense gradients are averaged with ``all_reduce``."""
    world = dist.get_world_size()
    sent = 0
    for param in model.parameters():
        if param.grad is None:
            continue
        if not param.grad.is_sparse:
            dist.all_reduce(param.grad)
            param.grad /= world
            continue
        grad = param.grad.coalesce()
        rows, values = grad.indices()[0], grad.values()
        device = grad.device  # NCCL exchanges GPU tensors, gloo CPU ones
        count = torch.tensor([len(rows)], dtype=torch.long, device=device)
        counts = [torch.zeros_like(count) for _ in range(world)]
        dist.all_gather(counts, count)
        most = int(max(int(c) for c in counts))
        padded_rows = torch.zeros(most, dtype=rows.dtype, device=device)
        padded_rows[: len(rows)] = rows
        padded_values = torch.zeros(most, values.shape[1], dtype=values.dtype, device=device)
        padded_values[: len(rows)] = values
        all_rows = [torch.empty_like(padded_rows) for _ in range(world)]
        all_values = [torch.empty_like(padded_values) for _ in range(world)]
        dist.all_gather(all_rows, padded_rows)
        dist.all_gather(all_values, padded_values)
        merged_rows = torch.cat([r[: int(c)] for r, c in zip(all_rows, counts, strict=True)])
        merged_values = torch.cat([v[: int(c)] for v, c in zip(all_values, counts, strict=True)])
        param.grad = torch.sparse_coo_tensor(
            merged_rows[None], merged_values / world, grad.shape, check_invariants=False
        ).coalesce()
        sent += len(rows)
    return sent


def train_data_parallel(
    model: SparseKGE, triples: np.ndarray | torch.Tensor, config: SparseTrainingConfig
) -> dict[str, float]:
    """Train this process's replica in an initialised process group (see the module docstring).

    ``config.batch_size`` is the global batch (split over the processes) and must be a multiple
    of ``world_size * chunk_size``; every process must pass the same triples and config.
    """
    if not dist.is_initialized():
        raise ProvenmlError("train_data_parallel needs torch.distributed.init_process_group first")
    rank, world = dist.get_rank(), dist.get_world_size()
    if config.batch_size % (world * config.chunk_size):
        raise ProvenmlError(
            f"batch_size ({config.batch_size}) must be a multiple of workers x chunk_size "
            f"({world} x {config.chunk_size})"
        )
    data = torch.as_tensor(np.array(triples, copy=True)).to(model.device)
    order_gen = torch.Generator().manual_seed(config.seed)  # the same shuffle everywhere
    neg_gen = torch.Generator(device=model.device).manual_seed(config.seed * 1000 + rank + 1)
    optimizer = make_sparse_optimizer(model, config.optimizer, config.lr)
    local = dataclasses.replace(config, batch_size=config.batch_size // world)
    steps, positives, sent, losses = 0, 0, 0, []
    start = time.perf_counter()
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(data), generator=order_gen)
        usable = len(order) - len(order) % config.batch_size  # whole global batches only
        for first in range(0, usable, config.batch_size):
            batch = data[order[first : first + config.batch_size][rank::world]]
            optimizer.zero_grad(set_to_none=True)
            loss = chunk_loss(model, batch, local, neg_gen)
            loss.backward()
            sent += allreduce_sparse_grads(model)
            optimizer.step()
            losses.append(float(loss.detach()))
            positives += config.batch_size
            steps += 1
            if config.max_steps and steps >= config.max_steps:
                break
        if config.max_steps and steps >= config.max_steps:
            break
    seconds = time.perf_counter() - start
    model.eval()
    return {
        "steps": steps,
        "positives": positives,
        "seconds": seconds,
        "triples_per_second": positives / seconds if seconds > 0 else float("nan"),
        "rows_sent": sent,
        "first_loss": losses[0] if losses else float("nan"),
        "last_loss": losses[-1] if losses else float("nan"),
    }


def _worker(
    rank: int,
    world: int,
    init_file: str,
    graph_dir: str,
    name: str,
    dim: int,
    config: SparseTrainingConfig,
    out: str,
    threads: int,
) -> None:
    from provenml.kge.large import LargeKG

    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        graph = LargeKG.load(graph_dir)
        torch.manual_seed(config.seed)  # identical initial replicas
        model = SparseKGE(name, graph.num_entities, graph.num_relations, dim)
        stats = train_data_parallel(model, graph.train, config)
        checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
        torch.save(
            {"state": model.state_dict(), "stats": stats, "checksum": checksum},
            Path(out) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def run_local(
    graph_dir: str | Path,
    workers: int,
    name: str,
    dim: int,
    config: SparseTrainingConfig,
    threads_per_worker: int = 1,
) -> list[dict[str, Any]]:
    """Train with ``workers`` processes on this machine (``torch.multiprocessing.spawn``, gloo);
    return each rank's ``{"state", "stats", "checksum"}``. Every process is joined before this
    returns; if one fails, spawn terminates the others and the error is raised here."""
    import torch.multiprocessing as mp

    check_int("workers", workers, 1)
    with tempfile.TemporaryDirectory(prefix="provenml-ddp-") as tmp:
        init_file = os.path.join(tmp, "rendezvous")
        mp.spawn(
            _worker,
            args=(
                workers,
                init_file,
                str(graph_dir),
                name,
                dim,
                config,
                tmp,
                threads_per_worker,
            ),
            nprocs=workers,
            join=True,
        )
        return [torch.load(Path(tmp) / f"rank{r}.pt", weights_only=False) for r in range(workers)]


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--workers N`` spawns N local processes; under ``torchrun`` (``RANK`` set)
    each process joins the ``env://`` group instead."""
    parser = argparse.ArgumentParser(description="data-parallel sparse KGE training")
    parser.add_argument("--graph", required=True, help="folder written by LargeKG.save")
    parser.add_argument("--model", default="complex")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--negatives", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="model.pt")
    args = parser.parse_args(argv)
    config = SparseTrainingConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        num_negatives=args.negatives,
        lr=args.lr,
    )
    if "RANK" in os.environ:  # torchrun
        from provenml.kge.large import LargeKG

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, init_method="env://")
        try:
            graph = LargeKG.load(args.graph)
            torch.manual_seed(config.seed)
            model = SparseKGE(args.model, graph.num_entities, graph.num_relations, args.dim)
            stats = train_data_parallel(model, graph.train, config)
            if dist.get_rank() == 0:
                torch.save(model.state_dict(), args.out)
                print(stats)
        finally:
            dist.destroy_process_group()
        return
    results = run_local(args.graph, args.workers, args.model, args.dim, config)
    torch.save(results[0]["state"], args.out)
    print(results[0]["stats"])


if __name__ == "__main__":
    main()
