"""provenml.kge side by side with PyKEEN on the same data, model and hyperparameters.

Prints, for TransE, DistMult, ComplEx and RotatE:
  1. training throughput (positive triples / s, sLCWA) and evaluation throughput (filtered
     ranking queries / s), each with the ratio provenml / PyKEEN measured in this run;
  2. test MRR at matched hyperparameters (mean ± sd over seeds) of ours against two PyKEEN
     variants of the same model: *matched* (no regulariser, and, for ComplEx, our initial
     weights copied in, so both start from the same model) and *default* (PyKEEN's defaults,
     ComplEx with its L2 regulariser, weight 0.01, and its N(0, 1) initialisation); the check
     is two-sided: is the difference of means within 2 standard errors of 0?
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


def pykeen_model(
    name: str, tf: CoreTriplesFactory, dim: int, seed: int, extra: dict[str, Any] | None = None
) -> Any:
    s = SETUPS[name]
    return s["cls"](
        triples_factory=tf,
        embedding_dim=dim,
        loss=s["loss"],
        loss_kwargs=s["loss_kw"],
        random_seed=seed,
        **{**s["kw"], **(extra or {})},
    )


def copy_complex_weights(ours: Any, theirs: Any) -> None:
    """Give a PyKEEN ComplEx our initial weights and check both score every triple alike.

    Ours stores ``[Re | Im]`` halves, PyKEEN interleaved ``(re, im)`` pairs of the same
    ``Re <h, r, conj(t)>`` model.
    """
    d = ours.dim

    def interleave(w: Tensor) -> Tensor:
        return torch.stack([w[:, :d], w[:, d:]], -1).reshape(len(w), 2 * d)

    with torch.no_grad():
        theirs.entity_representations[0]._embeddings.weight.copy_(interleave(ours.entity))
        theirs.relation_representations[0]._embeddings.weight.copy_(interleave(ours.relation))
        probe = torch.stack(
            [
                torch.arange(ours.num_entities).repeat_interleave(ours.num_relations),
                torch.arange(ours.num_relations).repeat(ours.num_entities),
                torch.arange(ours.num_entities).flip(0).repeat_interleave(ours.num_relations),
            ],
            1,
        )
        diff = (ours.score_hrt(*probe.unbind(1)) - theirs.score_hrt(probe).squeeze(-1)).abs()
    if float(diff.max()) > 1e-5:
        raise RuntimeError(f"the copied ComplEx scores differ by {float(diff.max()):.2e}")


def two_sided(ours: list[float], theirs: list[float]) -> str:
    """Difference of means, its standard error (Welch), and the two-sided verdict."""
    n_o, n_t = len(ours), len(theirs)
    diff = statistics.mean(ours) - statistics.mean(theirs)
    if min(n_o, n_t) < 2:
        return f"diff {diff:+.4f} (one seed: no standard error)"
    se = (statistics.variance(ours) / n_o + statistics.variance(theirs) / n_t) ** 0.5
    if abs(diff) <= 2 * se:
        verdict = "no difference detected (|diff| <= 2 SE)"
    else:
        verdict = "ours higher" if diff > 0 else "ours LOWER"
    return f"diff {diff:+.4f} ± {se:.4f} (SE): {verdict}"


def pykeen_train(
    model: Any,
    tf: CoreTriplesFactory,
    epochs: int,
    args: argparse.Namespace,
    keep_weights: bool = False,
) -> float:
    """Train with PyKEEN's sLCWA loop. Its ``train()`` re-initialises the model's parameters
    (``reset_parameters_``) unless it continues a run; ``keep_weights`` makes that reset a
    no-op so that weights copied in before training are where training starts."""
    if keep_weights:
        model.reset_parameters_ = lambda: model
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
    parser.add_argument(
        "--variants", default="matched,default", help="PyKEEN variants of the quality check"
    )
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

    # quality at matched hyperparameters: ours vs PyKEEN matched and PyKEEN default
    qds = load_dataset(args.quality_dataset)
    qtf = CoreTriplesFactory.create(qds.train, qds.num_entities, qds.num_relations)
    name = args.quality_model
    variants: dict[str, dict[str, Any]] = {
        "pykeen matched": {"regularizer": None},
        "pykeen default": {},
    }
    variants = {k: v for k, v in variants.items() if k.split()[1] in args.variants.split(",")}
    mrr: dict[str, list[float]] = {"provenml": [], **{v: [] for v in variants}}
    last_pk = None
    for seed in range(args.seeds):
        m = ours_model(name, qds, args.dim, seed)
        initial = ours_model(name, qds, args.dim, seed)  # the same draw: our initial weights
        ours_train(m, qds, name, args.quality_epochs, seed, args)
        mrr["provenml"].append(evaluate_link_prediction(m, qds.test, [qds.all_triples]).mrr)
        for variant, extra in variants.items():
            last_pk = pykeen_model(name, qtf, args.dim, seed, extra)
            matched = variant == "pykeen matched" and name == "complex"
            if matched:
                copy_complex_weights(initial, last_pk)
            pykeen_train(last_pk, qtf, args.quality_epochs, args, keep_weights=matched)
            res, _, _ = pykeen_evaluate(last_pk, qds, args.batch_size)
            mrr[variant].append(float(res.get_metric("both.realistic.inverse_harmonic_mean_rank")))
    print(
        f"\n# quality: {name} on {args.quality_dataset}, {args.quality_epochs} epochs, "
        f"{args.seeds} seeds, filtered realistic MRR (mean ± sd)"
    )
    for label, values in mrr.items():
        sd = statistics.stdev(values) if len(values) > 1 else float("nan")
        print(f"{label:15s} {statistics.mean(values):.4f} ± {sd:.4f}   {values}")
    for variant in variants:
        print(f"provenml - {variant}: {two_sided(mrr['provenml'], mrr[variant])}")

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
