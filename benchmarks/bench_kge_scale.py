"""provenml.kge at scale against PyKEEN: training throughput and peak memory on a generated graph.

Generates a graph (default: 100k entities, 1M triples, 50 relations) once, then runs each
library in its own child process, so that each peak resident memory (``ru_maxrss``) is its own:

- ours: ``SparseKGE`` + ``train_sparse`` (sparse embeddings, chunk-shared negatives,
  SparseAdam), ``--ours-batches`` batches after one warm-up batch;
- PyKEEN: the same model, dimension, batch size, negatives per positive (2K), loss and learning
  rate (dense Adam, sLCWA basic sampler), one epoch over ``--pykeen-batches`` and one over twice
  as many random batches; triples/s = extra triples / extra seconds (its fixed cost per
  ``train()`` call removed);
- the chunked filtered evaluation of ``--eval-triples`` test triples against every entity.

Prints triples/s, peak memory above the process's memory after imports, and the ratios.

    flock /tmp/provenml-heavy.lock .venv/bin/python benchmarks/bench_kge_scale.py
    .venv/bin/python benchmarks/bench_kge_scale.py --entities 20000 --triples 200000  # quick
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(args: argparse.Namespace) -> dict[str, float]:
    from provenml.kge import KnownTriples
    from provenml.kge.large import LargeKG
    from provenml.kge.reference import pykeen_throughput
    from provenml.kge.sparse import SparseKGE, SparseTrainingConfig, evaluate_chunked, train_sparse

    torch.set_num_threads(args.threads)
    graph = LargeKG.load(args.graph, mmap=False)
    cfg = SparseTrainingConfig(
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        num_negatives=args.negatives,
        lr=args.lr,
    )
    base = _rss_mb()
    if args.worker == "ours":
        torch.manual_seed(0)
        model = SparseKGE(args.model, graph.num_entities, graph.num_relations, args.dim)
        train_sparse(model, graph.train, SparseTrainingConfig(**{**vars(cfg), "max_steps": 1}))
        steps = {**vars(cfg), "max_steps": args.ours_batches}
        stats = train_sparse(model, graph.train, SparseTrainingConfig(**steps))
        train_peak = _rss_mb()
        everything = torch.as_tensor(
            np.concatenate([graph.train, graph.valid, graph.test]).astype(np.int64)
        )
        known = KnownTriples(everything, graph.num_entities, graph.num_relations)
        start = time.perf_counter()
        result = evaluate_chunked(model, graph.test[: args.eval_triples], known)
        seconds = time.perf_counter() - start
        return {
            "triples_per_second": stats.triples_per_second,
            "peak_mb_above_imports": train_peak - base,
            "eval_queries_per_second": 2 * min(args.eval_triples, len(graph.test)) / seconds,
            "eval_peak_mb_above_imports": _rss_mb() - base,
            "mrr_after_batches": result.mrr,
        }
    rate, _ = pykeen_throughput(
        args.model,
        graph.train,
        graph.num_entities,
        graph.num_relations,
        args.dim,
        cfg,
        args.pykeen_batches,
    )
    return {"triples_per_second": rate, "peak_mb_above_imports": _rss_mb() - base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--triples", type=int, default=1_000_000)
    parser.add_argument("--relations", type=int, default=50)
    parser.add_argument("--model", default="complex")
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--negatives", type=int, default=64, help="K per chunk (2K per positive)")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--ours-batches", type=int, default=100)
    parser.add_argument("--pykeen-batches", type=int, default=5)
    parser.add_argument("--eval-triples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", choices=("ours", "pykeen"), help=argparse.SUPPRESS)
    parser.add_argument("--graph", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    from provenml.kge.large import generate_large_kg

    with tempfile.TemporaryDirectory(prefix="bench-kge-scale-") as tmp:
        start = time.perf_counter()
        graph = generate_large_kg(args.entities, args.triples, args.relations, seed=0)
        folder = graph.save(Path(tmp) / "graph")
        print(f"# {graph!r}, generated in {time.perf_counter() - start:.1f} s")
        print(
            f"# {args.model} dim={args.dim} batch={args.batch_size} chunk={args.chunk_size} "
            f"negatives/positive={2 * args.negatives} lr={args.lr} threads={args.threads}"
        )
        results = {}
        for who in ("ours", "pykeen"):
            cmd = [sys.executable, __file__, "--worker", who, "--graph", str(folder)]
            for key, value in vars(args).items():
                if key not in ("worker", "graph"):
                    cmd += [f"--{key.replace('_', '-')}", str(value)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results[who] = json.loads(out.strip().splitlines()[-1])
    ours, theirs = results["ours"], results["pykeen"]
    print(f"{'':8s} {'train triples/s':>16s} {'peak MB (train)':>16s}")
    for who, r in results.items():
        print(f"{who:8s} {r['triples_per_second']:16.0f} {r['peak_mb_above_imports']:16.0f}")
    speed = ours["triples_per_second"] / theirs["triples_per_second"]
    memory = ours["peak_mb_above_imports"] / max(1.0, theirs["peak_mb_above_imports"])
    print(f"ratio ours/pykeen: throughput {speed:.1f}x, peak memory {memory:.2f}x")
    print(
        f"ours: chunked filtered evaluation {ours['eval_queries_per_second']:.0f} queries/s, "
        f"peak {ours['eval_peak_mb_above_imports']:.0f} MB above imports; MRR after "
        f"{args.ours_batches} batches {ours['mrr_after_batches']:.4f}"
    )


if __name__ == "__main__":
    main()
