"""provenml.kge side by side with PyKEEN on the same data, model and hyperparameters.

Prints, for TransE, DistMult, ComplEx and RotatE:
  1. training throughput (positive triples / s, sLCWA) and evaluation throughput (filtered
     ranking queries / s), each with the ratio provenml / PyKEEN measured in this run;
  2. test MRR after training both to convergence at matched hyperparameters (mean ± std over
     seeds);
  3. one PyKEEN-trained model scored by PyKEEN's evaluator and by provenml's: ranks and MRR.

    .venv/bin/python benchmarks/bench_kge_pykeen.py [--dataset kinships] [--threads 2]
    .venv/bin/python benchmarks/bench_kge_pykeen.py --skip-timing --quality-epochs 50 --seeds 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
from pykeen.evaluation import RankBasedEvaluator
from pykeen.models import ComplEx, DistMult, RotatE, TransE
from pykeen.training import SLCWATrainingLoop
from pykeen.triples import CoreTriplesFactory
from torch import Tensor

from provenml.kge import TrainingConfig, evaluate_link_prediction, get_model, load_dataset, train

#: per model: PyKEEN class + kwargs, loss + kwargs, our model kwargs and loss name
SETUPS: dict[str, dict[str, Any]] = {
    "transe": {
        "cls": TransE,
        "kw": {"scoring_fct_norm": 1},
        "loss": "marginranking",
        "loss_kw": {"margin": 1.0},
        "ours_kw": {"p": 1},
        "ours_loss": "margin",
    },
    "distmult": {
        "cls": DistMult,
        "kw": {"regularizer": None, "entity_constrainer": None},
        "loss": "softplus",
        "loss_kw": {},
        "ours_kw": {},
        "ours_loss": "softplus",
    },
    "complex": {
        "cls": ComplEx,
        "kw": {},
        "loss": "softplus",
        "loss_kw": {},
        "ours_kw": {},
        "ours_loss": "softplus",
    },
    "rotate": {
        "cls": RotatE,
        "kw": {},
        "loss": "nssa",
        "loss_kw": {"margin": 3.0, "adversarial_temperature": 1.0},
        "ours_kw": {"p": 2},
        "ours_loss": "nssa",
    },
}


def pykeen_model(name: str, tf: CoreTriplesFactory, dim: int, seed: int) -> Any:
    s = SETUPS[name]
    return s["cls"](
        triples_factory=tf,
        embedding_dim=dim,
        loss=s["loss"],
        loss_kwargs=s["loss_kw"],
        random_seed=seed,
        **s["kw"],
    )


def pykeen_train(
    model: Any, tf: CoreTriplesFactory, epochs: int, args: argparse.Namespace
) -> float:
    loop = SLCWATrainingLoop(
        model=model,
        triples_factory=tf,
        optimizer=torch.optim.Adam(model.get_grad_params(), lr=args.lr),
        negative_sampler="basic",
        negative_sampler_kwargs={"num_negs_per_pos": args.negatives},
    )
    start = time.perf_counter()
    loop.train(
        triples_factory=tf,
        num_epochs=epochs,
        batch_size=args.batch_size,
        use_tqdm=False,
        use_tqdm_batch=False,
    )
    return time.perf_counter() - start


def ours_model(name: str, ds: Any, dim: int, seed: int) -> Any:
    torch.manual_seed(seed)
    return get_model(name, ds.num_entities, ds.num_relations, dim, **SETUPS[name]["ours_kw"])


def ours_train(
    model: Any, ds: Any, name: str, epochs: int, seed: int, args: argparse.Namespace
) -> float:
    cfg = TrainingConfig(
        loss=SETUPS[name]["ours_loss"],
        margin=SETUPS[name]["loss_kw"].get("margin", 1.0),
        num_negatives=args.negatives,
        epochs=epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=seed,
    )
    start = time.perf_counter()
    train(model, ds.train, cfg)
    return time.perf_counter() - start


class PyKEENScorer:
    """Adapter: a PyKEEN model seen through provenml's ``score_t`` / ``score_h`` interface."""

    def __init__(self, model: Any, num_entities: int, num_relations: int) -> None:
        self.model, self.num_entities, self.num_relations = model, num_entities, num_relations

    def score_t(self, h: Tensor, r: Tensor) -> Tensor:
        return self.model.score_t(torch.stack([h, r], 1))

    def score_h(self, r: Tensor, t: Tensor) -> Tensor:
        return self.model.score_h(torch.stack([r, t], 1))


def pykeen_evaluate(model: Any, ds: Any, batch: int) -> tuple[Any, RankBasedEvaluator, float]:
    evaluator = RankBasedEvaluator(filtered=True, clear_on_finalize=False)
    model.eval()
    start = time.perf_counter()
    result = evaluator.evaluate(
        model,
        ds.test,
        batch_size=batch,
        use_tqdm=False,
        additional_filter_triples=[ds.train, ds.valid],
    )
    return result, evaluator, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="kinships")
    parser.add_argument("--quality-dataset", default="nations")
    parser.add_argument("--models", default="transe,distmult,complex,rotate")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--negatives", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--timing-epochs", type=int, default=3)
    parser.add_argument("--quality-epochs", type=int, default=100)
    parser.add_argument("--quality-model", default="complex")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-timing", action="store_true", help="only the quality checks")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.dataset)
    tf = CoreTriplesFactory.create(ds.train, ds.num_entities, ds.num_relations)
    n_queries = 2 * len(ds.test)
    print(
        f"# {args.dataset}: {len(ds.train)} train triples, {n_queries} ranking queries; "
        f"dim={args.dim} batch={args.batch_size} negatives={args.negatives} "
        f"threads={args.threads}"
    )
    print(
        f"{'model':9s} {'train ours':>11s} {'train pykeen':>13s} {'ratio':>6s} "
        f"{'eval ours':>10s} {'eval pykeen':>12s} {'ratio':>6s}   (triples/s, queries/s)"
    )
    for name in [] if args.skip_timing else args.models.split(","):
        ours, theirs = ours_model(name, ds, args.dim, 0), pykeen_model(name, tf, args.dim, 0)
        ours_train(ours, ds, name, 1, 0, args)  # warm-up
        pykeen_train(theirs, tf, 1, args)
        t_ours = ours_train(ours, ds, name, args.timing_epochs, 0, args)
        t_pk = pykeen_train(theirs, tf, args.timing_epochs, args)
        start = time.perf_counter()
        evaluate_link_prediction(ours, ds.test, [ds.all_triples], batch_size=args.batch_size)
        e_ours = time.perf_counter() - start
        _, _, e_pk = pykeen_evaluate(theirs, ds, args.batch_size)
        n = args.timing_epochs * len(ds.train)
        print(
            f"{name:9s} {n / t_ours:11.0f} {n / t_pk:13.0f} {t_pk / t_ours:6.2f} "
            f"{n_queries / e_ours:10.0f} {n_queries / e_pk:12.0f} {e_pk / e_ours:6.2f}",
            flush=True,
        )

    # quality at matched hyperparameters
    qds = load_dataset(args.quality_dataset)
    qtf = CoreTriplesFactory.create(qds.train, qds.num_entities, qds.num_relations)
    name = args.quality_model
    ours_mrr, pk_mrr, last_pk = [], [], None
    for seed in range(args.seeds):
        m = ours_model(name, qds, args.dim, seed)
        ours_train(m, qds, name, args.quality_epochs, seed, args)
        ours_mrr.append(evaluate_link_prediction(m, qds.test, [qds.all_triples]).mrr)
        last_pk = pykeen_model(name, qtf, args.dim, seed)
        pykeen_train(last_pk, qtf, args.quality_epochs, args)
        res, _, _ = pykeen_evaluate(last_pk, qds, args.batch_size)
        pk_mrr.append(float(res.get_metric("both.realistic.inverse_harmonic_mean_rank")))
    mean_o, mean_p = statistics.mean(ours_mrr), statistics.mean(pk_mrr)
    sd_p = statistics.stdev(pk_mrr) if len(pk_mrr) > 1 else float("nan")
    print(
        f"\n# quality: {name} on {args.quality_dataset}, {args.quality_epochs} epochs, "
        f"{args.seeds} seeds, filtered realistic MRR"
    )
    print(
        f"provenml {mean_o:.4f} ± {statistics.pstdev(ours_mrr):.4f}   "
        f"pykeen {mean_p:.4f} ± {sd_p:.4f}   "
        f"within 2 sd or better: {mean_o >= mean_p - 2 * sd_p}"
    )

    # one PyKEEN-trained model, both evaluators
    assert last_pk is not None
    res, evaluator, _ = pykeen_evaluate(last_pk, qds, args.batch_size)
    ours_res = evaluate_link_prediction(
        PyKEENScorer(last_pk, qds.num_entities, qds.num_relations), qds.test, [qds.all_triples]
    )
    print("\n# the last PyKEEN model, ranked by both evaluators (realistic, filtered)")
    worst = 0.0
    for side in ("head", "tail"):
        pk_ranks = torch.cat(
            [
                torch.as_tensor(a, dtype=torch.float64).flatten()
                for a in evaluator.ranks[(side, "realistic")]
            ]
        )
        ours_ranks = ours_res.ranks(side).rank("realistic")  # type: ignore[arg-type]
        diff = float((pk_ranks - ours_ranks).abs().max())
        worst = max(worst, diff)
        pk = float(res.get_metric(f"{side}.realistic.inverse_harmonic_mean_rank"))
        ours_m = float((1 / ours_ranks).mean())
        print(
            f"{side}: max |rank diff| = {diff:.2e}; MRR(1/realistic rank) pykeen {pk:.6f} "
            f"provenml {ours_m:.6f} diff {abs(pk - ours_m):.1e}; provenml tie-aware MRR "
            f"{ours_res.metrics(side)['mrr']:.6f}"
        )  # type: ignore[arg-type]
    print(f"identical ranks: {worst == 0.0}")


if __name__ == "__main__":
    main()
