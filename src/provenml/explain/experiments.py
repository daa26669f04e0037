"""``explain.benchmark``: every method on every ground-truth dataset, under the same metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from provenml.core import Claim, Config, Result, RunContext, experiment
from provenml.core.claims import Member, Published
from provenml.data.graphs import DATASETS
from provenml.errors import ProvenmlError
from provenml.explain.base import ExplainerMethod, check_float, check_int
from provenml.explain.benchmark import evaluate_method, make_task
from provenml.explain.methods import EXPLAINERS

#: The BA-Shapes explanation AUROC each method's own paper reports.
PUBLISHED_AUROC_BA_SHAPES = {
    "gnnexplainer": Published(0.925, source="Ying et al. 2019 (GNNExplainer), Table 1"),
    "pgexplainer": Published(0.963, source="Luo et al. 2020 (PGExplainer), Table 1"),
}

#: BA-Community's Gaussian features let a GCN trained like the others memorise its train nodes
#: (train 1.0, test 0.81-0.87). Input-feature dropout, weight decay, a wider layer and early
#: stopping on 10% of the train nodes held out bring it to 0.92-0.97 (seeds 0-4); a constant
#: input channel (the degree signal BA-Shapes' constant features give; see
#: ``GCNNodeClassifier``) to 0.954-0.979 (seeds 0-9).
COMMUNITY_TRAINING: dict[str, Any] = {
    "constant_channel": True,
    "hidden": 32,
    "feature_dropout": 0.6,
    "weight_decay": 5e-4,
    "val_fraction": 0.1,
    "patience": 400,
}


@dataclass
class BenchmarkConfig(Config):
    """Defaults are the ``small`` preset (2.5-8 minutes a seed on 2 shared cores, by load)."""

    datasets: tuple[str, ...] = (
        "ba_shapes",
        "ba_community",
        "tree_cycles",
        "tree_grid",
        "ba_2motifs",
    )
    methods: tuple[str, ...] = (
        "random",
        "saliency",
        "integrated_gradients",
        "gradcam",
        "gnnexplainer",
        "pgexplainer",
        "subgraphx",
        "pgm_explainer",
    )
    num_explain: int = 40  # instances explained per dataset
    subgraphx_node_instances: int = 10  # SubgraphX on node datasets (its 3-hop trees are big)
    sparsities: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
    eval_sparsity: float = 0.7  # the sparsity of the Fidelity tables
    stability_instances: int = 10
    motif_graphs: int = 1000  # BA-2Motifs size
    node_epochs: int = 1000
    community_epochs: int = 3000  # BA-Community: early stopping on a validation split
    graph_epochs: int = 200
    gnn_epochs: int = 100
    pg_epochs: int = 30
    ig_steps: int = 32
    sx_rollouts: int = 10
    sx_samples: int = 16
    pgm_samples: int = 100
    choices: ClassVar[dict[str, Any]] = {
        "datasets": lambda: list(DATASETS),
        "methods": EXPLAINERS.names,
    }
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "datasets": ("ba_shapes", "ba_2motifs"),
            "num_explain": 6,
            "subgraphx_node_instances": 1,
            "stability_instances": 2,
            "motif_graphs": 200,
            "node_epochs": 100,
            "community_epochs": 100,
            "graph_epochs": 40,
            "gnn_epochs": 20,
            "pg_epochs": 5,
            "ig_steps": 8,
            "sx_rollouts": 2,
            "sx_samples": 4,
            "pgm_samples": 20,
        },
        "paper": {
            "num_explain": 10_000,  # every correctly predicted motif node / test graph
            "subgraphx_node_instances": 10_000,
            "stability_instances": 200,
            "sx_rollouts": 20,
            "sx_samples": 100,
            "gnn_epochs": 300,
            "pg_epochs": 100,
            "ig_steps": 50,
            "pgm_samples": 1000,
        },
    }

    def validate(self) -> None:
        """Every field in range, before anything runs (``--set`` values included)."""
        # datasets and methods: non-empty and known names, checked by the harness (choices)
        for name in ("num_explain", "subgraphx_node_instances", "motif_graphs", "node_epochs"):
            check_int(name, getattr(self, name), 1)
        for name in ("community_epochs", "graph_epochs", "gnn_epochs", "pg_epochs", "ig_steps"):
            check_int(name, getattr(self, name), 1)
        for name in ("sx_rollouts", "sx_samples", "pgm_samples"):
            check_int(name, getattr(self, name), 1)
        check_int("stability_instances", self.stability_instances, 0)
        if not self.sparsities:
            raise ProvenmlError("sparsities must hold at least one value")
        for s in self.sparsities:
            check_float("sparsities", s, 0.0, 1.0)
        if self.eval_sparsity not in self.sparsities:
            raise ProvenmlError(
                f"eval_sparsity ({self.eval_sparsity}) must be one of sparsities {self.sparsities}"
            )

    def build(self, name: str, seed: int, task: str) -> ExplainerMethod:
        """The method ``name`` with this config's budgets."""
        sx_rollouts = self.sx_rollouts if task == "graph" else max(1, self.sx_rollouts // 2)
        options: dict[str, dict[str, Any]] = {
            "random": {"seed": seed},
            "integrated_gradients": {"n_steps": self.ig_steps},
            "gnnexplainer": {"epochs": self.gnn_epochs, "seed": seed},
            "pgexplainer": {"epochs": self.pg_epochs, "seed": seed},
            "subgraphx": {
                "rollouts": sx_rollouts,
                "shapley_samples": self.sx_samples,
                "seed": seed,
            },
            "pgm_explainer": {"num_samples": self.pgm_samples, "seed": seed},
        }
        return EXPLAINERS.build(name, **options.get(name, {}))


def _summarize(results: list[Result], ctx: RunContext) -> None:
    """Fidelity-against-sparsity plots and one markdown table per metric, over seeds."""
    import matplotlib.pyplot as plt

    tables = [r.data["table"] for r in results if "table" in r.data]
    if not tables:
        return
    sparsities = results[0].data["sparsities"]
    datasets = list(tables[0])
    fig, axes = plt.subplots(2, len(datasets), figsize=(3.2 * len(datasets), 6), squeeze=False)
    for col, ds in enumerate(datasets):
        for method in tables[0][ds]:
            for row, key in enumerate(("fid_prob_plus", "fid_prob_minus")):
                curve = torch.tensor([t[ds][method][key] for t in tables]).mean(0)
                axes[row][col].plot(sparsities, curve.tolist(), marker="o", ms=3, label=method)
                sign = "+" if key.endswith("plus") else "-"
                axes[row][col].set_title(f"{ds}: Fid{sign} (prob)", fontsize=9)
                axes[row][col].set_xlabel("sparsity")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    ctx.savefig(fig, "fidelity_vs_sparsity")
    (ctx.out_dir / "tables.md").write_text(markdown_tables(tables, results[0].data))


def markdown_tables(tables: list[dict[str, Any]], data: dict[str, Any]) -> str:
    """One table per metric: rows = methods, columns = datasets, means over seeds."""
    at = data["sparsities"].index(data["eval_sparsity"])
    metrics = {
        "AUROC (ground truth), pooled over instances": lambda s: s["auroc"],
        "AUROC (ground truth), mean of per-instance AUROCs": lambda s: s.get(
            "auroc_per_instance", math.nan
        ),
        f"Fid+ prob @ sparsity {data['eval_sparsity']}": lambda s: s["fid_prob_plus"][at],
        f"Fid- prob @ sparsity {data['eval_sparsity']}": lambda s: s["fid_prob_minus"][at],
        f"Fid+ acc @ sparsity {data['eval_sparsity']}": lambda s: s["fid_acc_plus"][at],
        f"Fid- acc @ sparsity {data['eval_sparsity']}": lambda s: s["fid_acc_minus"][at],
        "soft sparsity of the raw mask": lambda s: s["sparsity"],
        "stability (top-edge Jaccard, feature noise 0.05)": lambda s: s["stability"],
        "ms per explanation": lambda s: 1000 * s["seconds"],
    }
    datasets = list(tables[0])
    methods = list(tables[0][datasets[0]])
    out = [f"Seeds: {len(tables)}.\n"]
    for title, get in metrics.items():
        out.append(f"\n### {title}\n\n| method | " + " | ".join(datasets) + " |\n")
        out.append("|---" * (len(datasets) + 1) + "|\n")
        for m in methods:
            cells = []
            for ds in datasets:
                vals = [get(t[ds][m]) for t in tables if m in t[ds]]
                vals = [v for v in vals if not math.isnan(v)]
                cells.append(f"{sum(vals) / len(vals):.3f}" if vals else "-")
            out.append(f"| {m} | " + " | ".join(cells) + " |\n")
    return "".join(out)


def _parts(cfg: BenchmarkConfig) -> list[dict[str, Any]]:
    """One part per dataset, so ``--jobs`` keeps every core busy, costliest first (CPU seconds
    of seed 0, measured: BA-Community 13, BA-Shapes 12, BA-2Motifs 11, Tree-Grid 8,
    Tree-Cycles 6), so that the cheap parts fill the gaps at the end instead of a long one
    running alone."""
    cfg.validate()
    order = ("ba_community", "ba_shapes", "ba_2motifs", "tree_grid", "tree_cycles")
    ranked = sorted(cfg.datasets, key=lambda d: order.index(d) if d in order else len(order))
    return [{"datasets": (d,)} for d in ranked]


def _merge(cfg: BenchmarkConfig, parts: list[Result], ctx: RunContext) -> Result:
    """The seed's result from its per-dataset parts: tables joined in ``cfg.datasets`` order,
    the claims recomputed over all of them."""
    table: dict[str, Any] = {}
    summary: dict[str, float] = {}
    notes: list[str] = []
    for part in parts:
        table.update(part.data["table"])
        summary.update(part.summary)
        notes.extend(n for n in part.notes if not n.startswith(_CLAIM_NOTE))
    table = {d: table[d] for d in cfg.datasets if d in table}
    return _result(cfg, table, summary, notes)


@experiment(
    "explain.benchmark",
    system="S8",
    headline=True,
    claim="on ground-truth benchmarks every explainer beats Random on AUROC on every dataset; "
    "GNNExplainer and PGExplainer reach their published BA-Shapes AUROC (0.925, 0.963); "
    "SubgraphX has the best Fidelity- on BA-2Motifs",
    config=BenchmarkConfig,
    time={
        "smoke": "20s",
        "small": "85 s measured (make demo, idle, load 0.9-2.1; 3 seeds, --jobs 2; stop 55)",
        "paper": "GPU hours",
    },
    summarize=_summarize,
    parts=_parts,
    merge=_merge,
    devices=("cpu",),
    threads=1,  # the graphs are small: one thread is faster than two fighting over shared cores
    claims=(
        "every_explainer_beats_random",
        "gnnexplainer_ba_shapes_published",
        "pgexplainer_ba_shapes_published",
        "subgraphx_best_fid_minus_ba2motifs",
    ),
)
def run(cfg: BenchmarkConfig, ctx: RunContext) -> Result:
    cfg.validate()
    table: dict[str, dict[str, dict[str, Any]]] = {}
    summary: dict[str, float] = {}
    notes: list[str] = []
    at = cfg.sparsities.index(cfg.eval_sparsity)
    for ds in ctx.track(cfg.datasets, "datasets"):
        kwargs = {"num_graphs": cfg.motif_graphs} if ds == "ba_2motifs" else {}
        train: dict[str, Any] = {"epochs": cfg.node_epochs}
        if ds == "ba_2motifs":
            train = {"epochs": cfg.graph_epochs}
        elif ds == "ba_community":
            train = {"epochs": cfg.community_epochs, "seed": ctx.seed, **COMMUNITY_TRAINING}
        task = make_task(ds, ctx.seed, cfg.num_explain, kwargs, train)
        summary[f"test_acc/{ds}"] = task.test_acc
        if task.test_acc < 0.95:
            how = (
                " (with a constant input channel, feature dropout, weight decay and early "
                "stopping on a validation split; 0.954-0.979 on seeds 0-9)"
                if ds == "ba_community"
                else ""
            )
            notes.append(
                f"{ds}: the model reached {task.test_acc:.3f} test accuracy{how}, below the "
                "0.95 the issue asks for; its explanations are still scored."
            )
        table[ds] = {}
        for name in cfg.methods:
            method = cfg.build(name, ctx.seed, task.dataset.task)
            count = cfg.num_explain
            if name == "subgraphx" and task.dataset.task == "node":
                count = cfg.subgraphx_node_instances
            scores, _ = evaluate_method(
                method,
                task,
                count,
                cfg.sparsities,
                min(cfg.stability_instances, count),
                seed=ctx.seed,
            )
            row = scores.__dict__
            table[ds][name] = row
            for key in ("auroc", "auroc_per_instance", "sparsity", "stability", "seconds"):
                summary[f"{key}/{ds}/{name}"] = row[key]
            for key in ("fid_prob_plus", "fid_prob_minus", "fid_acc_plus", "fid_acc_minus"):
                summary[f"{key}/{ds}/{name}"] = row[key][at]
            ctx.log(
                dataset=ds,
                method=name,
                auroc=row["auroc"],
                seconds=row["seconds"],
                fid_prob_minus=row["fid_prob_minus"][at],
                count=row["count"],
            )
    return _result(cfg, table, summary, notes)


_CLAIM_NOTE = "[claim] "


def _result(
    cfg: BenchmarkConfig, table: dict[str, Any], summary: dict[str, float], notes: list[str]
) -> Result:
    at = cfg.sparsities.index(cfg.eval_sparsity)
    claims = _claims(cfg, table, at)
    notes = list(notes)
    for c in claims:
        if c.key.endswith("_published") and c.verdict != "holds":
            published = PUBLISHED_AUROC_BA_SHAPES[c.ours_label]
            notes.append(
                f"{_CLAIM_NOTE}{c.ours_label}: AUROC {c.ours_mean:.3f} on BA-Shapes, below the "
                f"published {published.value} ({published.source}). Our model is a GCN with "
                "batch norm and concatenated layers trained here, not the paper's "
                "checkpoint, and the method runs with PyG's default budget."
            )
        if c.key == "every_explainer_beats_random" and c.failing:
            notes.append(
                f"{_CLAIM_NOTE}not above Random's AUROC: "
                + ", ".join(f"{m} ({c.members[m].ours_mean:.3f})" for m in c.failing)
            )
    if "subgraphx" in cfg.methods:
        notes.append(
            f"SubgraphX explains {cfg.subgraphx_node_instances} instance(s) per node "
            f"dataset (its MCTS over 3-hop subgraphs costs seconds each) and "
            f"{cfg.num_explain} graphs of BA-2Motifs; other methods explain "
            f"{cfg.num_explain} instances."
        )
    return Result(
        claims=claims,
        summary=summary,
        data={
            "table": table,
            "sparsities": list(cfg.sparsities),
            "eval_sparsity": cfg.eval_sparsity,
        },
        notes=notes,
    )


def _claims(cfg: BenchmarkConfig, table: dict[str, Any], at: int) -> list[Claim]:
    """The claims over the per-dataset table ``table[dataset][method]`` (one seed's values)."""
    claims: list[Claim] = []
    datasets = list(table)
    if "random" in cfg.methods:
        members = {
            f"{m}/{d}": Member(
                ours=[table[d][m]["auroc"]], baselines={"random": [table[d]["random"]["auroc"]]}
            )
            for m in cfg.methods
            if m != "random"
            for d in datasets
        }
        claims.append(
            Claim(
                key="every_explainer_beats_random",
                statement="every explainer finds the ground-truth motif edges better than "
                "Random on every dataset",
                metric="ground-truth AUROC (pooled over the explained instances), per "
                "(explainer, dataset)",
                ours_label="explainer",
                members=members,
                comparison=">",
            )
        )
    if "ba_shapes" in table:
        for m in ("gnnexplainer", "pgexplainer"):
            if m in table["ba_shapes"]:
                published = PUBLISHED_AUROC_BA_SHAPES[m]
                claims.append(
                    Claim(
                        key=f"{m}_ba_shapes_published",
                        statement=f"{m} reaches its published BA-Shapes AUROC, "
                        f"{published.value} ({published.source})",
                        metric="ground-truth AUROC on BA-Shapes (pooled)",
                        ours_label=m,
                        ours=[table["ba_shapes"][m]["auroc"]],
                        threshold=PUBLISHED_AUROC_BA_SHAPES[m],
                        comparison=">=",
                    )
                )
    if "ba_2motifs" in table and "subgraphx" in table["ba_2motifs"]:
        others = {
            m: s["fid_prob_minus"][at] for m, s in table["ba_2motifs"].items() if m != "subgraphx"
        }
        claims.append(
            Claim(
                key="subgraphx_best_fid_minus_ba2motifs",
                statement="SubgraphX's explanations keep the prediction best (lowest Fidelity-) "
                "on BA-2Motifs, as in DIG's comparison",
                metric=f"Fidelity- (probability form) at sparsity {cfg.eval_sparsity}",
                ours_label="subgraphx",
                ours=table["ba_2motifs"]["subgraphx"]["fid_prob_minus"][at],
                baselines=others,
                comparison="<",
            )
        )
    return claims
