"""Ours against PyKEEN per epoch on a small generated graph, with PyKEEN matched and with its
defaults: the check behind ``kge.scale``'s baseline (docs/kge.md, "Large graphs").

Trains :class:`~provenml.kge.sparse.SparseKGE` with :func:`~provenml.kge.sparse.train_sparse`
and PyKEEN's ComplEx at the same dimension, batch, negatives per positive and learning rate, for
1 and ``--epochs`` epochs, and prints the filtered MRR of each on the same test triples:

- PyKEEN matched (:func:`provenml.kge.reference.pykeen_model`: our initial distribution and
  loss weighting);
- PyKEEN with its own defaults for both (``normal_`` initialisation, ``softplus`` loss over the
  positive and its negatives), the straw man ``kge.scale`` used before.

    .venv/bin/python benchmarks/bench_kge_pykeen_matched.py          # about 2 min on 1 core
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=2000)
    parser.add_argument("--triples", type=int, default=50_000)
    parser.add_argument("--relations", type=int, default=10)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--eval-triples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import pykeen.models

    from provenml.kge import KnownTriples, evaluate_link_prediction
    from provenml.kge.large import generate_large_kg
    from provenml.kge.reference import PyKEENScorer, pykeen_factory, pykeen_model, pykeen_train
    from provenml.kge.sparse import (
        SparseKGE,
        SparseTrainingConfig,
        evaluate_chunked,
        train_sparse,
    )

    torch.set_num_threads(1)
    g = generate_large_kg(args.entities, args.triples, args.relations, seed=args.seed)
    everything = torch.as_tensor(np.concatenate([g.train, g.valid, g.test]).astype(np.int64))
    known = KnownTriples(everything, g.num_entities, g.num_relations)
    test = torch.as_tensor(np.asarray(g.test[: args.eval_triples], dtype=np.int64))
    cfg = SparseTrainingConfig(
        batch_size=1024, chunk_size=128, num_negatives=32, lr=0.01, seed=args.seed
    )
    factory = pykeen_factory(g.train, g.num_entities, g.num_relations)

    def pykeen_mrr(model: object) -> float:
        scorer = PyKEENScorer(model, g.num_entities, g.num_relations)
        return evaluate_link_prediction(scorer, test, [everything], batch_size=64).mrr

    print(f"# {g!r}, complex dim {args.dim}, batch 1024, 64 negatives per positive, lr 0.01")
    print(f"# filtered MRR on {len(test)} test triples; chance {1 / g.num_entities:.4f}")
    print(f"{'epochs':>6} {'ours':>8} {'pykeen matched':>15} {'pykeen defaults':>16} {'s':>6}")
    for epochs in (1, args.epochs):
        start = time.perf_counter()
        torch.manual_seed(args.seed)
        ours = SparseKGE("complex", g.num_entities, g.num_relations, args.dim)
        train_sparse(ours, g.train, dataclasses.replace(cfg, epochs=epochs))
        matched = pykeen_model("complex", factory, args.dim, args.seed)
        pykeen_train(matched, factory, cfg, epochs=epochs)
        defaults = pykeen.models.ComplEx(
            triples_factory=factory,
            embedding_dim=args.dim,
            loss="softplus",
            regularizer=None,
            random_seed=args.seed,
        )
        pykeen_train(defaults, factory, cfg, epochs=epochs)
        print(
            f"{epochs:>6} {evaluate_chunked(ours, test, known).mrr:>8.4f} "
            f"{pykeen_mrr(matched):>15.4f} {pykeen_mrr(defaults):>16.4f} "
            f"{time.perf_counter() - start:>6.0f}"
        )


if __name__ == "__main__":
    main()
