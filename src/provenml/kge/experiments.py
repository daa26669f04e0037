"""The S11 reproductions: link prediction, triple classification, relation patterns, relation
extraction (Lin et al., 2018, "Knowledge Representation Learning: A Quantitative Review")."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from provenml.core import Claim, Config, Result, RunContext, experiment, flatten_summary
from provenml.errors import ProvenmlError
from provenml.kge.checks import check_choice, check_float, check_int
from provenml.kge.data import BUNDLED, TriplesDataset, load_dataset
from provenml.kge.evaluation import evaluate_link_prediction
from provenml.kge.index import KnownTriples
from provenml.kge.models import MODELS, KGEModel, get_model
from provenml.kge.training import TrainingConfig, train
from provenml.kge.triple_classification import TripleClassifier, corrupt_triples

ALL_MODELS = tuple(MODELS)
BILINEAR = ("rescal", "distmult", "hole", "complex", "analogy", "simple")

#: PyKEEN ablation (Ali et al., 2021), best-configuration Hits@10 on Kinships, quoted by issue 4
PYKEEN_KINSHIPS_HITS10 = {
    "complex": 0.978,
    "simple": 0.978,
    "distmult": 0.922,
    "transe": 0.878,
    "transh": 0.512,
    "transd": 0.461,
}


def _check_names(field: str, names: tuple[str, ...], known: tuple[str, ...]) -> None:
    """A non-empty tuple of known names (did-you-mean on the first unknown one)."""
    if not isinstance(names, tuple) or not names:
        raise ProvenmlError(f"{field} must list at least one of {', '.join(known)}, got {names!r}")
    for name in names:
        check_choice(f"each of {field}", name, known)
    if len(set(names)) != len(names):
        raise ProvenmlError(f"{field} lists a name twice: {names!r}")


def recipe(model: str, epochs: int, batch_size: int, lr: float, seed: int) -> TrainingConfig:
    """One training recipe per model family (the same for every dataset, never tuned on test).

    Bilinear models: KvsAll with BCE (Dettmers et al., 2018); translational models: sLCWA with
    the margin ranking loss (their papers); RotatE: sLCWA with self-adversarial negatives.
    """
    if model in BILINEAR:
        return TrainingConfig(
            loop="kvsall", loss="bce", epochs=epochs, batch_size=batch_size, lr=lr, seed=seed
        )
    if model == "rotate":
        return TrainingConfig(
            loss="nssa",
            margin=3.0,
            num_negatives=8,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
        )
    return TrainingConfig(
        loss="margin",
        margin=1.0,
        num_negatives=8,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
    )


def dataset(ctx: RunContext, name: str) -> TriplesDataset:
    """A bundled dataset, read once per process (``ctx.memo``)."""
    return ctx.memo.cached(("kge.dataset", name), lambda: load_dataset(name))


def trained_model(
    ctx: RunContext,
    ds: TriplesDataset,
    name: str,
    dim: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: torch.device,
) -> KGEModel:
    """Train (or reuse, within this process, the identical earlier run of) one model.

    The memo key holds every input of the run, so a remembered model is exactly the one this
    call would train; link prediction and triple classification then share their embeddings.
    """
    key = ("kge.trained", ds.name, name, dim, epochs, batch_size, lr, seed, str(device))
    torch.manual_seed(seed)
    model = get_model(name, ds.num_entities, ds.num_relations, dim).to(device)
    if key in ctx.memo:
        model.load_state_dict(ctx.memo[key])
    else:
        train(model, ds.train.to(device), recipe(name, epochs, batch_size, lr, seed))
        ctx.memo[key] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.eval()
    return model


# =============================================================================================
# 1. Link prediction
# =============================================================================================


@dataclass
class LinkPredictionConfig(Config):
    datasets: tuple[str, ...] = ("nations", "kinships", "umls")
    models: tuple[str, ...] = ALL_MODELS
    dim: int = 32
    epochs: int = 25
    batch_size: int = 512
    lr: float = 0.02
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"datasets": ("nations",), "models": ("transe", "distmult"), "epochs": 2},
        "paper": {"dim": 200, "epochs": 500},
    }

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Every field in range, before anything runs (``--set`` values included)."""
        _check_names("datasets", self.datasets, BUNDLED)
        _check_names("models", self.models, ALL_MODELS)
        for name in ("dim", "epochs", "batch_size"):
            check_int(name, getattr(self, name), 1)
        check_float("lr", self.lr, minimum=0.0, exclusive=True)


def _bar_chart(
    ctx: RunContext,
    table: dict[str, dict[str, float]],
    metric: str,
    name: str,
    chance: dict[str, float] | None = None,
) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(table), figsize=(4.5 * len(table), 3.4), squeeze=False)
    for ax, (ds_name, values) in zip(axes[0], table.items(), strict=True):
        ax.bar(list(values), list(values.values()), color="tab:blue")
        if chance and ds_name in chance:
            ax.axhline(chance[ds_name], color="tab:red", ls="--", label="chance")
            ax.legend()
        ax.set_title(ds_name)
        ax.set_ylabel(metric)
        ax.tick_params(axis="x", rotation=60)
    ctx.savefig(fig, name)


@experiment(
    "kge.link_prediction",
    system="S11",
    headline=True,
    claim="every KGE model beats chance filtered MRR; on Kinships ComplEx/SimplE/DistMult beat "
    "TransE, which beats TransH and TransD (Hits@10)",
    config=LinkPredictionConfig,
    time={
        "smoke": "5s",
        "small": "51 s measured (make demo, idle, load 0.9-2.2; 3 seeds, --jobs 2)",
        "paper": "GPU hours",
    },
    threads=1,
    claims=(
        "beats_chance/*",
        "kinships/bilinear_beat_transe",
        "kinships/transe_beats_transh_transd",
    ),
)
def link_prediction(cfg: LinkPredictionConfig, ctx: RunContext) -> Result:
    """Train every model on every dataset; filtered realistic MRR / Hits@k on test."""
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    chance: dict[str, dict[str, float]] = {}
    jobs = [(d, m) for d in cfg.datasets for m in cfg.models]
    for step, (ds_name, model_name) in enumerate(ctx.track(jobs, "link prediction")):
        ds = dataset(ctx, ds_name)
        start = time.perf_counter()
        with ctx.compute.timed("training"):
            model = trained_model(
                ctx,
                ds,
                model_name,
                cfg.dim,
                cfg.epochs,
                cfg.batch_size,
                cfg.lr,
                ctx.seed,
                ctx.device,
            )
        with ctx.compute.timed("evaluation"):
            result = evaluate_link_prediction(model, ds.test, [ds.all_triples])
        m = result.metrics()
        metrics.setdefault(ds_name, {})[model_name] = m
        chance[ds_name] = {
            "filtered": result.chance()["mrr"],
            "raw": _raw_chance_mrr(ds.num_entities),
        }
        ctx.log(
            step=step,
            dataset=ds_name,
            model=model_name,
            seconds=time.perf_counter() - start,
            **m,
        )
    claims = []
    for ds_name, per_model in metrics.items():
        worst = min(per_model, key=lambda name: per_model[name]["mrr"])
        claims.append(
            Claim(
                key=f"beats_chance/{ds_name}",
                statement=f"every model beats random ranking on {ds_name} (worst: {worst})",
                metric="filtered realistic MRR of the worst model",
                ours_label=f"worst model ({worst})",
                ours=per_model[worst]["mrr"],
                baselines={
                    "random (filtered candidates)": chance[ds_name]["filtered"],
                    "random (all entities)": chance[ds_name]["raw"],
                },
                comparison=">",
            )
        )
    kin = metrics.get("kinships", {})
    if all(m in kin for m in ("complex", "simple", "distmult", "transe")):
        weakest = min(("complex", "simple", "distmult"), key=lambda n: kin[n]["hits@10"])
        claims.append(
            Claim(
                key="kinships/bilinear_beat_transe",
                statement="on Kinships ComplEx, SimplE and DistMult beat TransE (PyKEEN ablation)",
                metric="filtered Hits@10 (weakest of ComplEx/SimplE/DistMult)",
                ours_label=f"weakest bilinear ({weakest})",
                ours=kin[weakest]["hits@10"],
                baselines={"transe": kin["transe"]["hits@10"]},
                comparison=">",
            )
        )
    if all(m in kin for m in ("transe", "transh", "transd")):
        claims.append(
            Claim(
                key="kinships/transe_beats_transh_transd",
                statement="on Kinships TransE beats TransH and TransD (PyKEEN ablation)",
                metric="filtered Hits@10",
                ours_label="transe",
                ours=kin["transe"]["hits@10"],
                baselines={"transh": kin["transh"]["hits@10"], "transd": kin["transd"]["hits@10"]},
                comparison=">",
            )
        )
    _bar_chart(
        ctx,
        {d: {m: v["mrr"] for m, v in pm.items()} for d, pm in metrics.items()},
        "filtered MRR",
        "mrr",
        {d: c["filtered"] for d, c in chance.items()},
    )
    return Result(
        claims=claims,
        summary=flatten_summary(metrics),
        data={
            "metrics": metrics,
            "chance_mrr": chance,
            "pykeen_kinships_hits10": PYKEEN_KINSHIPS_HITS10,
        },
        notes=[
            "Ranks are realistic (expected over random tie order), filtered by train+valid+test.",
            "The issue's chance MRRs (.232/.050/.041) rank among all entities; filtering leaves "
            "fewer candidates, so the filtered chance MRR is higher and is the stricter baseline.",
            f"One recipe per model family (bilinear: KvsAll+BCE; trans*: sLCWA+margin; RotatE: "
            f"self-adversarial), dim={cfg.dim}, {cfg.epochs} epochs, no tuning on test; PyKEEN's "
            "ablation used each model's best configuration out of a large search.",
        ],
    )


def _raw_chance_mrr(num_entities: int) -> float:
    return sum(1 / i for i in range(1, num_entities + 1)) / num_entities


# =============================================================================================
# 2. Triple classification
# =============================================================================================


@dataclass
class TripleClassificationConfig(LinkPredictionConfig):
    presets: ClassVar[dict[str, dict[str, Any]]] = LinkPredictionConfig.presets


@experiment(
    "kge.triple_classification",
    system="S11",
    claim="every KGE model classifies held-out triples above chance (50%) with per-relation "
    "thresholds fitted on validation",
    config=TripleClassificationConfig,
    time={
        "smoke": "5s",
        "small": "54 s measured, idle (3 seeds, --jobs 2, load 1.0-1.2; stop 64); seconds after "
        "link_prediction in one process (shared models)",
        "paper": "GPU hours",
    },
    threads=1,
    claims=("above_chance/*",),
)
def triple_classification(cfg: TripleClassificationConfig, ctx: RunContext) -> Result:
    """Accuracy on test positives + generated negatives, thresholds from validation only."""
    accuracy: dict[str, dict[str, float]] = {}
    jobs = [(d, m) for d in cfg.datasets for m in cfg.models]
    negatives: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for step, (ds_name, model_name) in enumerate(ctx.track(jobs, "triple classification")):
        ds = dataset(ctx, ds_name)
        if ds_name not in negatives:
            gen = torch.Generator().manual_seed(ctx.seed)
            known = KnownTriples(ds.all_triples, ds.num_entities, ds.num_relations)
            negatives[ds_name] = (
                corrupt_triples(ds.valid, known, gen),
                corrupt_triples(ds.test, known, gen),
            )
        valid_neg, test_neg = negatives[ds_name]
        with ctx.compute.timed("training"):
            model = trained_model(
                ctx,
                ds,
                model_name,
                cfg.dim,
                cfg.epochs,
                cfg.batch_size,
                cfg.lr,
                ctx.seed,
                ctx.device,
            )
        clf = TripleClassifier(model).fit(ds.valid.to(ctx.device), valid_neg.to(ctx.device))
        acc = clf.accuracy(ds.test.to(ctx.device), test_neg.to(ctx.device))
        accuracy.setdefault(ds_name, {})[model_name] = acc
        ctx.log(step=step, dataset=ds_name, model=model_name, accuracy=acc)
    claims = []
    for ds_name, per_model in accuracy.items():
        worst = min(per_model, key=per_model.__getitem__)
        claims.append(
            Claim(
                key=f"above_chance/{ds_name}",
                statement=f"every model classifies {ds_name} test triples above chance",
                metric="test accuracy of the worst model (balanced positives / negatives)",
                ours_label=f"worst model ({worst})",
                ours=per_model[worst],
                baselines={"chance": 0.5},
                comparison=">",
            )
        )
    _bar_chart(ctx, accuracy, "accuracy", "accuracy", {d: 0.5 for d in accuracy})
    summary = flatten_summary(
        {d: {m: {"accuracy": a} for m, a in per_model.items()} for d, per_model in accuracy.items()}
    )
    return Result(
        claims=claims,
        summary=summary,
        data={"accuracy": accuracy},
        notes=[
            "Negatives corrupt head or tail with an entity that forms no known triple; test "
            "negatives are drawn independently of validation ones. Thresholds never see test.",
        ],
    )


# =============================================================================================
# 3. Relation patterns
# =============================================================================================


@dataclass
class RelationPatternsConfig(Config):
    models: tuple[str, ...] = ("transe", "distmult", "complex", "rotate")
    pool: int = 30
    dim: int = 32
    epochs: int = 150
    batch_size: int = 64
    lr: float = 0.02
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"pool": 12, "epochs": 3},
        "paper": {"pool": 200, "dim": 200, "epochs": 1000},
    }

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Every field in range, before anything runs (``--set`` values included)."""
        _check_names("models", self.models, tuple(CAN_MODEL))
        check_int("pool", self.pool, 6)  # the smallest pool that holds out test triples
        for name in ("dim", "epochs", "batch_size"):
            check_int(name, getattr(self, name), 1)
        check_float("lr", self.lr, minimum=0.0, exclusive=True)


#: the RotatE paper's Table 2: which model can express which pattern
CAN_MODEL = {
    "transe": {"symmetric": False, "antisymmetric": True, "inverse": True, "composition": True},
    "distmult": {"symmetric": True, "antisymmetric": False, "inverse": False, "composition": False},
    "complex": {"symmetric": True, "antisymmetric": True, "inverse": True, "composition": False},
    "rotate": {"symmetric": True, "antisymmetric": True, "inverse": True, "composition": True},
}
#: (pattern, model that cannot express it) pairs the claims test against RotatE
FAILURES = (
    ("symmetric", "transe"),
    ("antisymmetric", "distmult"),
    ("inverse", "distmult"),
    ("composition", "complex"),
)


@experiment(
    "kge.relation_patterns",
    system="S11",
    claim="TransE fails symmetry, DistMult fails antisymmetry and inversion, ComplEx fails "
    "composition; RotatE handles all four (RotatE paper, Table 2)",
    config=RelationPatternsConfig,
    time={
        "smoke": "5s",
        "small": "18 s measured, idle (3 seeds, --jobs 2, load 0.4-0.8; stop 64)",
        "paper": "30 min",
    },
    threads=1,
    claims=("*_fails_*", "rotate_handles_*"),
)
def relation_patterns(cfg: RelationPatternsConfig, ctx: RunContext) -> Result:
    """Per-pattern test MRR (direction accuracy for antisymmetry) on the synthetic graph."""
    from provenml.kge.synthetic import PATTERNS, direction_accuracy, pattern_graph

    graph = pattern_graph(pool=cfg.pool, seed=ctx.seed)
    ds = graph.dataset
    table: dict[str, dict[str, float]] = {}
    chance: dict[str, float] = {"antisymmetric": 0.5}
    memorised: dict[str, float] = {}  # direction accuracy on the training edges (reference)
    for step, name in enumerate(ctx.track(cfg.models, "relation patterns")):
        torch.manual_seed(ctx.seed)
        model = get_model(name, ds.num_entities, ds.num_relations, cfg.dim).to(ctx.device)
        train(
            model,
            ds.train.to(ctx.device),
            recipe(name, cfg.epochs, cfg.batch_size, cfg.lr, ctx.seed),
        )
        row: dict[str, float] = {}
        anti_train = ds.train[ds.train[:, 1] == graph.relation_of["antisymmetric"]]
        memorised[name] = direction_accuracy(model, anti_train.to(ctx.device))
        for pattern in PATTERNS:
            if pattern == "antisymmetric":  # held-out edges: the direction must be inferred
                held_out = graph.test_by_pattern[pattern]
                row[pattern] = direction_accuracy(model, held_out.to(ctx.device))
                continue
            res = evaluate_link_prediction(
                model, graph.test_by_pattern[pattern], [ds.train, ds.test]
            )
            row[pattern] = res.mrr
            chance[pattern] = res.chance()["mrr"]
        table[name] = row
        ctx.log(step=step, model=name, antisymmetric_train=memorised[name], **row)
    claims = []
    if "rotate" in table:
        for pattern, weak in FAILURES:
            if weak not in table:
                continue
            metric = (
                "direction accuracy on held-out edges" if pattern == "antisymmetric" else "test MRR"
            )
            claims.append(
                Claim(
                    key=f"{weak}_fails_{pattern}",
                    statement=f"{weak} cannot model {pattern} relations; RotatE can",
                    metric=f"{metric} on the {pattern} relation (RotatE must lead by 0.1)",
                    ours_label="rotate",
                    ours=table["rotate"][pattern],
                    baselines={weak: table[weak][pattern]},
                    comparison=">",
                    margin=0.1,
                )
            )
        for pattern in ("symmetric", "antisymmetric", "inverse", "composition"):
            halfway = chance[pattern] + 0.5 * (1 - chance[pattern])
            claims.append(
                Claim(
                    key=f"rotate_handles_{pattern}",
                    statement=f"RotatE handles {pattern} relations",
                    metric="test MRR (direction accuracy on held-out edges for antisymmetry)",
                    ours_label="rotate",
                    ours=table["rotate"][pattern],
                    baselines={"halfway from chance to perfect": halfway},
                    comparison=">",
                )
            )
    summary = flatten_summary(table)
    summary.update(flatten_summary({m: {"antisymmetric_train": v} for m, v in memorised.items()}))
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / max(1, len(table))
    for i, (name, row) in enumerate(table.items()):
        ax.bar([j + i * width for j in range(len(PATTERNS))], list(row.values()), width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(PATTERNS))], PATTERNS, rotation=20)
    ax.set_ylabel("test MRR / direction acc.")
    ax.legend(fontsize=7)
    ctx.savefig(fig, "patterns")
    return Result(
        claims=claims,
        summary=summary,
        data={
            "table": table,
            "chance": chance,
            "can_model": CAN_MODEL,
            "antisymmetric_train_direction_accuracy": memorised,
        },
        notes=[
            "Antisymmetry is measured on held-out edges of a random DAG (never trained on, "
            "reverse never a triple) as the share scored above their reversal (ties count "
            "1/2); the same share on the training edges is in the summary "
            "(<model>/antisymmetric_train) for reference: it can be memorised."
        ],
    )


# =============================================================================================
# 4. Relation extraction
# =============================================================================================


@dataclass
class RelationExtractionConfig(Config):
    dataset: str = "kinships"
    kg_model: str = "complex"
    dim: int = 32
    kg_epochs: int = 25
    batch_size: int = 512
    lr: float = 0.02
    sentences_per_bag: int = 2
    encoder_epochs: int = 3
    wrong_label: float = 0.35
    paraphrase: float = 0.3
    distractor: float = 0.15
    na_ratio: float = 0.5  # NA bags per KG bag
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "dataset": "umls",
            "kg_model": "distmult",
            "kg_epochs": 1,
            "encoder_epochs": 1,
            "sentences_per_bag": 1,
            "na_ratio": 0.2,
        },
        "paper": {"dim": 200, "kg_epochs": 500, "encoder_epochs": 20, "sentences_per_bag": 8},
    }

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Every field in range, before anything runs (``--set`` values included)."""
        check_choice("dataset", self.dataset, BUNDLED)
        check_choice("kg_model", self.kg_model, ALL_MODELS)
        for name in ("dim", "kg_epochs", "batch_size", "sentences_per_bag", "encoder_epochs"):
            check_int(name, getattr(self, name), 1)
        check_float("lr", self.lr, minimum=0.0, exclusive=True)
        for name in ("wrong_label", "paraphrase", "distractor"):
            check_float(name, getattr(self, name), minimum=0.0, maximum=1.0)
        check_float("na_ratio", self.na_ratio, minimum=0.0)


def _pair_keys(pairs: torch.Tensor, num_entities: int) -> torch.Tensor:
    return pairs[:, 0] * num_entities + pairs[:, 1]


@experiment(
    "kge.relation_extraction",
    system="S11",
    claim="adding KG-embedding scores to a PCNN text encoder improves the precision-recall AUC "
    "of distantly supervised relation extraction",
    config=RelationExtractionConfig,
    time={
        "smoke": "5s",
        "small": "16 s measured, idle (3 seeds, --jobs 2, load 0.8-1.0; stop 64)",
        "paper": "GPU 1 h",
    },
    threads=1,
    devices=("cpu",),
    claims=("kg_improves_pr_auc",),
)
def relation_extraction(cfg: RelationExtractionConfig, ctx: RunContext) -> Result:
    """PCNN alone vs PCNN + KG embeddings on a generated distant-supervision corpus."""
    from provenml.kge.relation_extraction import (
        PCNN,
        CorpusSpec,
        bag_logits,
        combine_with_kg,
        combined_scores,
        held_out_metrics,
        kg_scores,
        make_corpus,
        pair_labels,
        train_encoder,
    )

    ds = dataset(ctx, cfg.dataset)
    gen = torch.Generator().manual_seed(ctx.seed)
    known = KnownTriples(ds.all_triples, ds.num_entities, ds.num_relations)
    # NA pairs: entity pairs with no relation at all, split like the KG
    cand = torch.randint(ds.num_entities, (len(ds.all_triples) * 4, 2), generator=gen)
    cand = torch.unique(cand[cand[:, 0] != cand[:, 1]], dim=0)
    cand = cand[~pair_labels(cand, known).any(1)]
    cand = cand[torch.randperm(len(cand), generator=gen)]
    splits: dict[str, torch.Tensor] = {}
    seen = torch.empty(0, dtype=torch.long)
    for split, triples in (("train", ds.train), ("valid", ds.valid), ("test", ds.test)):
        keys = _pair_keys(triples[:, [0, 2]], ds.num_entities)
        fresh = triples[~torch.isin(keys, seen)]  # a pair's text is seen in one split only
        splits[split] = fresh
        seen = torch.cat([seen, _pair_keys(fresh[:, [0, 2]], ds.num_entities)])
    n_na = {
        s: int(cfg.na_ratio * len(torch.unique(t[:, [0, 2]], dim=0))) for s, t in splits.items()
    }
    scale = min(1.0, len(cand) / max(1, sum(n_na.values())))  # dense graphs have few NA pairs
    n_na = {s: int(n * scale) for s, n in n_na.items()}
    na = dict(
        zip(
            ("train", "valid", "test"),
            torch.split(cand[: sum(n_na.values())], [n_na["train"], n_na["valid"], n_na["test"]]),
            strict=True,
        )
    )
    spec = CorpusSpec(num_relations=ds.num_relations)
    corpora = {
        s: make_corpus(
            splits[s],
            na[s],
            spec,
            gen,
            cfg.sentences_per_bag,
            wrong_label=cfg.wrong_label,
            paraphrase=cfg.paraphrase,
            distractor=cfg.distractor,
        )
        for s in splits
    }
    encoder = PCNN(spec.vocab_size, ds.num_relations + 1, corpora["train"].tokens.shape[1])
    with ctx.compute.timed("text encoder"):
        losses = train_encoder(encoder, corpora["train"], cfg.encoder_epochs, gen)
    with ctx.compute.timed("kg embedding"):
        kg = trained_model(
            ctx,
            ds,
            cfg.kg_model,
            cfg.dim,
            cfg.kg_epochs,
            cfg.batch_size,
            cfg.lr,
            ctx.seed,
            torch.device("cpu"),  # the text side runs on the CPU: so does its KG model
        )
    feats = {}
    for s in ("valid", "test"):
        c = corpora[s]
        feats[s] = (
            bag_logits(encoder, c),
            kg_scores(kg, c.pairs, ds.num_relations),
            pair_labels(c.pairs, known),
        )
    layer = combine_with_kg(*feats["valid"])
    text, kgs, labels = feats["test"]
    text_only = held_out_metrics(text, labels)
    kg_only = held_out_metrics(kgs, labels)
    joint = held_out_metrics(combined_scores(layer, text, kgs), labels)
    ctx.log(step=0, encoder_losses=losses, text=text_only, kg=kg_only, joint=joint)
    summary = flatten_summary({"text": text_only, "kg": kg_only, "text+kg": joint})
    return Result(
        claims=[
            Claim(
                key="kg_improves_pr_auc",
                statement="PCNN + KG embeddings has a larger PR AUC than the PCNN alone",
                metric="area under the held-out precision-recall curve",
                ours_label=f"PCNN + {cfg.kg_model}",
                ours=joint["pr_auc"],
                baselines={"PCNN alone": text_only["pr_auc"]},
                comparison=">",
            )
        ],
        summary=summary,
        data={
            "text": text_only,
            "kg": kg_only,
            "text+kg": joint,
            "combination_weights": layer.weight.detach().flatten().tolist(),
            "test_bags": len(corpora["test"].pairs),
        },
        notes=[
            f"Generated corpus over {cfg.dataset}: {cfg.sentences_per_bag} sentences per pair, "
            f"{cfg.wrong_label:.0%} wrongly labelled, {cfg.paraphrase:.0%} paraphrased cue "
            f"words, {cfg.distractor:.0%} distractor cues; test pairs never occur in training "
            "text, and the KG model is trained on the KG's training split only.",
            "The text/KG weights are fitted on validation bags; KG-alone numbers are in the "
            "summary for reference.",
        ],
    )


# =============================================================================================
# 5. Knowledge graphs at scale (issue 26)
# =============================================================================================


@dataclass
class ScaleConfig(Config):
    num_entities: int = 100_000
    num_triples: int = 1_000_000
    num_relations: int = 50
    model: str = "complex"
    dim: int = 32
    epochs: int = 1
    batch_size: int = 4096
    chunk_size: int = 256
    num_negatives: int = 64  # K per chunk, used as heads and as tails: 2K per positive
    lr: float = 0.01
    pykeen_batches: int = 10  # batches timed for PyKEEN's throughput (after one warm-up batch)
    eval_triples: int = 1000  # test triples ranked against every entity (filtered)
    sampled_negatives: int = 100  # K of the sampled evaluator whose bias is measured
    # PyKEEN also trained for ``epochs`` full epochs over every training triple (like for like
    # with ours; minutes at small), so that the MRR is compared at equal epochs, not only at
    # equal time
    pykeen_equal_epochs: bool = True
    # ours trained on, epoch by epoch, until its MRR reaches PyKEEN's after ``epochs``: the time
    # to equal quality (issue 26's ">= 5x PyKEEN's throughput at equal or better MRR")
    match_max_epochs: int = 10
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "num_entities": 1000,
            "num_triples": 10_000,
            "num_relations": 10,
            "batch_size": 512,
            "chunk_size": 128,
            "num_negatives": 32,
            "pykeen_batches": 2,
            "eval_triples": 100,
        },
        "paper": {"num_entities": 1_000_000, "num_triples": 10_000_000, "dim": 100, "epochs": 5},
    }

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Every field in range, before anything runs (``--set`` values included)."""
        from provenml.kge.sparse import SCORERS

        check_choice("model", self.model, SCORERS)
        for name in ("num_entities", "num_triples", "num_relations", "dim", "epochs"):
            check_int(name, getattr(self, name), 1)
        for name in ("batch_size", "chunk_size", "num_negatives", "pykeen_batches"):
            check_int(name, getattr(self, name), 1)
        check_int("eval_triples", self.eval_triples, 1)
        check_int("sampled_negatives", self.sampled_negatives, 1)
        check_int("match_max_epochs", self.match_max_epochs, 1)
        check_float("lr", self.lr, minimum=0.0, exclusive=True)
        if self.batch_size % self.chunk_size:
            raise ProvenmlError(
                f"batch_size ({self.batch_size}) must be a multiple of chunk_size "
                f"({self.chunk_size})"
            )


@experiment(
    "kge.scale",
    system="S11",
    claim="on a generated 1M-triple graph, sparse training with chunk-shared negatives runs at "
    ">= 5x PyKEEN's triples/s at matched settings and reaches PyKEEN's filtered MRR in <= 1/5 of "
    "PyKEEN's training time; per epoch, an equal or better MRR; given the same time, a higher one",
    config=ScaleConfig,
    time={
        "smoke": "20 s",
        "small": "8.4 min measured, idle (1 seed, one process, load 1.0-1.1; stop 66); 14 min "
        "at load 2.7-3.1 before",
        "paper": "hours",
    },
    threads=1,
    devices=("cpu",),
    claims=(
        "throughput_vs_pykeen",
        "time_to_pykeen_mrr",
        "mrr_at_equal_epochs",
        "mrr_at_equal_time",
        "beats_chance",
    ),
)
def scale(cfg: ScaleConfig, ctx: RunContext) -> Result:
    """Throughput and MRR of :func:`~provenml.kge.sparse.train_sparse` against PyKEEN."""
    import numpy as np

    from provenml.kge.large import generate_large_kg
    from provenml.kge.reference import (
        PyKEENScorer,
        pykeen_factory,
        pykeen_model,
        pykeen_throughput,
        pykeen_train,
    )
    from provenml.kge.sparse import (
        SparseKGE,
        SparseTrainingConfig,
        evaluate_chunked,
        evaluate_sampled,
        sampled_bias,
        train_sparse,
    )

    key = ("kge.large_graph", cfg.num_entities, cfg.num_triples, cfg.num_relations, ctx.seed)
    with ctx.compute.timed("generate"):
        graph = ctx.memo.cached(
            key,
            lambda: generate_large_kg(
                cfg.num_entities, cfg.num_triples, cfg.num_relations, seed=ctx.seed
            ),
        )
    train_cfg = SparseTrainingConfig(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        chunk_size=cfg.chunk_size,
        num_negatives=cfg.num_negatives,
        lr=cfg.lr,
        seed=ctx.seed,
    )
    # ours (after a one-batch warm-up: the first sparse step in a process pays a fixed cost)
    torch.manual_seed(ctx.seed)
    warm_up = SparseKGE(cfg.model, graph.num_entities, graph.num_relations, cfg.dim)
    train_sparse(warm_up, graph.train, dataclasses.replace(train_cfg, max_steps=1))
    torch.manual_seed(ctx.seed)
    ours = SparseKGE(cfg.model, graph.num_entities, graph.num_relations, cfg.dim)
    with ctx.compute.timed("train ours"):
        stats = train_sparse(ours, graph.train, train_cfg)
    # PyKEEN: throughput without its fixed per-call cost, then the same wall time as ours
    rng = np.random.default_rng(ctx.seed)
    with ctx.compute.timed("train pykeen (throughput)"):
        pk_tps, _ = pykeen_throughput(
            cfg.model,
            graph.train,
            graph.num_entities,
            graph.num_relations,
            cfg.dim,
            train_cfg,
            cfg.pykeen_batches,
            ctx.seed,
        )
    n_equal = max(cfg.batch_size, min(len(graph.train), int(pk_tps * stats.seconds)))
    equal = pykeen_factory(
        graph.train[rng.permutation(len(graph.train))[:n_equal]],
        graph.num_entities,
        graph.num_relations,
    )
    theirs = pykeen_model(cfg.model, equal, cfg.dim, ctx.seed)
    with ctx.compute.timed("train pykeen (equal time)"):
        pk_equal_seconds = pykeen_train(theirs, equal, train_cfg)
    # PyKEEN like for like: the same epochs over every training triple as ours
    theirs_epochs: Any = None
    pk_epochs_seconds = float("nan")
    if cfg.pykeen_equal_epochs:
        whole = pykeen_factory(graph.train, graph.num_entities, graph.num_relations)
        theirs_epochs = pykeen_model(cfg.model, whole, cfg.dim, ctx.seed)
        with ctx.compute.timed("train pykeen (equal epochs)"):
            pk_epochs_seconds = pykeen_train(theirs_epochs, whole, train_cfg, epochs=cfg.epochs)
    # evaluation: the same test triples, filtered by every known triple
    everything = torch.as_tensor(
        np.concatenate([graph.train, graph.valid, graph.test]).astype(np.int64)
    )
    known = KnownTriples(everything, graph.num_entities, graph.num_relations)
    test = torch.as_tensor(np.asarray(graph.test[: cfg.eval_triples], dtype=np.int64))
    with ctx.compute.timed("evaluation"):
        full = evaluate_chunked(ours, test, known)
        sampled = evaluate_sampled(ours, test, cfg.sampled_negatives, known, seed=ctx.seed)
        pk_full = evaluate_link_prediction(
            PyKEENScorer(theirs, graph.num_entities, graph.num_relations),
            test,
            [everything],
            batch_size=64,
        )
        pk_epochs_m: dict[str, float] = {}
        if theirs_epochs is not None:
            pk_epochs_m = evaluate_link_prediction(
                PyKEENScorer(theirs_epochs, graph.num_entities, graph.num_relations),
                test,
                [everything],
                batch_size=64,
            ).metrics()
    # time to PyKEEN's quality: ours again from the same seed, evaluated after every epoch
    target = pk_epochs_m.get("mrr", float("nan"))
    curve: list[float] = []
    match_seconds = float("nan")
    if not math.isnan(target):  # PyKEEN's equal-epoch MRR was measured
        torch.manual_seed(ctx.seed)
        chaser = SparseKGE(cfg.model, graph.num_entities, graph.num_relations, cfg.dim)

        def reached(epoch: int) -> bool:
            curve.append(evaluate_chunked(chaser, test, known).metrics()["mrr"])
            return curve[-1] >= target

        with ctx.compute.timed("train ours to PyKEEN's MRR"):
            chase = train_sparse(
                chaser,
                graph.train,
                dataclasses.replace(train_cfg, epochs=cfg.match_max_epochs),
                on_epoch=reached,
            )
        if curve and curve[-1] >= target:
            match_seconds = chase.seconds
    if not math.isnan(match_seconds):
        time_ratio = pk_epochs_seconds / match_seconds
    else:  # never reached: 0 (fails); PyKEEN not run: NaN (inconclusive)
        time_ratio = float("nan") if math.isnan(target) else 0.0
    bias = sampled_bias(full, sampled)
    ratio = stats.triples_per_second / pk_tps
    ours_m, pk_m, chance = full.metrics(), pk_full.metrics(), full.chance()["mrr"]
    summary = flatten_summary(
        {
            "ours": {
                "triples_per_second": stats.triples_per_second,
                "train_seconds": stats.seconds,
                **ours_m,
            },
            "pykeen": {
                "triples_per_second": pk_tps,
                "equal_time_triples": n_equal,
                "equal_time_seconds": pk_equal_seconds,
                **pk_m,
            },
            "pykeen_equal_epochs": {"train_seconds": pk_epochs_seconds, **pk_epochs_m},
            "match": {
                "epochs": float(len(curve)),
                "train_seconds": match_seconds,
                "time_ratio_pykeen_over_ours": time_ratio,
                **{f"mrr_after_epoch_{i + 1}": v for i, v in enumerate(curve)},
            },
            "sampled": sampled.metrics(),
            "sampled_bias": bias,
            "throughput_ratio": {"ours_over_pykeen": ratio},
            "chance": {"mrr": chance},
            "graph": {
                "train": len(graph.train),
                "entities": graph.num_entities,
                "relations": graph.num_relations,
            },
        }
    )
    ctx.log(step=0, **summary)
    claims = [
        Claim(
            key="throughput_vs_pykeen",
            statement="ours trains at least 5x as many triples per second as PyKEEN at matched "
            "settings (issue 26's goal)",
            metric="training triples/s, ours / PyKEEN (same process, same threads)",
            ours_label="ratio",
            ours=ratio,
            threshold=5.0,
            comparison=">=",
        ),
        Claim(
            key="time_to_pykeen_mrr",
            statement=f"ours reaches PyKEEN's filtered MRR after {cfg.epochs} epoch(s) in at most "
            f"1/5 of PyKEEN's training time (issue 26's goal: >= 5x at equal or better MRR; ours "
            f"trains up to {cfg.match_max_epochs} epochs, 0 if it never gets there)",
            metric="PyKEEN's training seconds / ours' training seconds to the same MRR",
            ours_label="time ratio",
            ours=time_ratio,
            threshold=5.0,
            comparison=">=",
        ),
        Claim(
            key="mrr_at_equal_epochs",
            statement=f"after the same {cfg.epochs} epoch(s) over every training triple, ours "
            "reaches an equal or better filtered MRR than PyKEEN (like for like: same model, "
            "dimension, batch, negatives per positive, loss and learning rate)",
            metric=f"filtered realistic MRR on {len(test)} test triples, all entities ranked",
            ours_label="ours",
            ours=ours_m["mrr"],
            baselines={f"pykeen, {cfg.epochs} epoch(s)": pk_epochs_m.get("mrr", float("nan"))},
            comparison=">=",
        ),
        Claim(
            key="mrr_at_equal_time",
            statement="given the wall time of our training, PyKEEN reaches a lower filtered MRR",
            metric=f"filtered realistic MRR on {len(test)} test triples, all entities ranked",
            ours_label="ours",
            ours=ours_m["mrr"],
            baselines={"pykeen, same wall time": pk_m["mrr"]},
            comparison=">",
        ),
        Claim(
            key="beats_chance",
            statement="ours beats random ranking on the generated graph",
            metric="filtered realistic MRR",
            ours_label="ours",
            ours=ours_m["mrr"],
            baselines={"random ranking (filtered)": chance},
            comparison=">",
        ),
    ]
    return Result(
        claims=claims,
        summary=summary,
        data={"relation_family": graph.relation_family},
        notes=[
            f"Graph: {graph!r}, generated (seed {ctx.seed}). {cfg.model}, dim {cfg.dim}, batch "
            f"{cfg.batch_size}, {2 * cfg.num_negatives} negatives per positive, lr {cfg.lr}; ours: "
            f"SparseAdam, chunks of {cfg.chunk_size} share {cfg.num_negatives} entities; PyKEEN: "
            "dense Adam, sLCWA basic sampler.",
            f"PyKEEN's throughput: one epoch over {cfg.pykeen_batches} and one over "
            f"{2 * cfg.pykeen_batches} random batches, extra triples / extra seconds (its fixed "
            f"cost per call removed); at equal time it trained one pass over {n_equal} random "
            "training triples. Ours: the training loop's own time, after a warm-up step.",
            (
                f"PyKEEN at equal epochs: {cfg.epochs} epoch(s) over all {len(graph.train)} "
                f"training triples took {pk_epochs_seconds:.0f} s (ours {stats.seconds:.0f} s)."
                if cfg.pykeen_equal_epochs
                else "PyKEEN at equal epochs: not run (pykeen_equal_epochs=False)."
            ),
            (
                f"Time to PyKEEN's MRR ({target:.4f}): ours' MRR after each epoch "
                + ", ".join(f"{v:.4f}" for v in curve)
                + (
                    f"; reached after {len(curve)} epoch(s), {match_seconds:.0f} s of training."
                    if not math.isnan(match_seconds)
                    else f"; not reached in {cfg.match_max_epochs} epochs."
                )
            ),
            f"Sampled evaluation ({cfg.sampled_negatives} uniform negatives, filtered) minus the "
            f"full ranking: MRR {bias['mrr']:+.3f}, Hits@10 {bias['hits@10']:+.3f}.",
        ],
    )
