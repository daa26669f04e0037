"""Downstream tasks and the pre-training corpus, generated once and cached.

A task is a domain's graphs with one target per graph (or per node), split into a labelled
training set (100-500 labels in ToP's regime), a validation set (model selection only) and a
fixed test set. Regression targets are z-scored with the training labels' mean and standard
deviation, so errors are in units of the target's spread and comparable across tasks.

Graphs and targets are generated once per ``(domain, size, data_seed)`` and cached under
``provenml.core.cache_dir("graphpretrain")`` (a lock file keeps parallel workers from
generating the same file twice). Task graphs use different seeds from the pre-training corpus,
and the molecules come from the task third of RDKit's files, which pre-training never reads.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from provenml.core.registry import Registry
from provenml.errors import ProvenmlError
from provenml.graphpretrain import targets as T
from provenml.graphpretrain.packed import Level, PackedGraphs

if TYPE_CHECKING:
    from torch_geometric.data import Data

__all__ = [
    "TASKS",
    "DownstreamTask",
    "Kind",
    "TaskSpec",
    "domain_corpus",
    "load_task",
    "pretraining_corpus",
    "task_names",
]

Kind = Literal["regression", "classification"]
CACHE_VERSION = "v1"


@dataclass(frozen=True)
class TaskSpec:
    """A built-in task: its domain, target, kind and level, and whether pre-training saw the
    domain (``seen``)."""

    name: str
    domain: str
    target: str
    description: str
    kind: Kind = "regression"
    level: Level = "graph"

    @property
    def seen(self) -> bool:
        from provenml.data.graph_domains import PRETRAIN_DOMAINS

        return self.domain in PRETRAIN_DOMAINS

    @property
    def has_features(self) -> bool:
        return self.domain == "molecules"


TASKS: Registry[TaskSpec] = Registry("task", normalize=lambda name: name.strip().lower())

for _spec in (
    TaskSpec("social_clustering", "social", "clustering", "average clustering coefficient"),
    TaskSpec("social_cycles4", "social", "log_cycles4", "log(1 + number of 4-cycles)"),
    TaskSpec("road_diameter", "road", "diameter", "diameter / number of nodes"),
    TaskSpec("road_cycles4", "road", "log_cycles4", "log(1 + number of 4-cycles)"),
    TaskSpec("citation_cycles5", "citation", "log_cycles5", "log(1 + number of 5-cycles)"),
    TaskSpec("trees_diameter", "trees", "diameter", "diameter / number of nodes"),
    TaskSpec(
        "trees_eccentricity",
        "trees",
        "eccentricity",
        "each node's eccentricity / n",
        level="node",
    ),
    TaskSpec("er_density", "er", "density", "edge density 2m / (n (n - 1))"),
    TaskSpec("er_cycles5", "er", "log_cycles5", "log(1 + number of 5-cycles)"),
    TaskSpec("community_cross", "community", "cross", "edge probability between communities"),
    TaskSpec("community_clustering", "community", "clustering", "average clustering"),
    TaskSpec("molecules_logp", "molecules", "logp", "Crippen logP (RDKit)"),
    TaskSpec("molecules_tpsa", "molecules", "tpsa", "topological polar surface area (RDKit)"),
    TaskSpec("molecules_qed", "molecules", "qed", "QED drug-likeness (RDKit)"),
    TaskSpec("molecules_rings", "molecules", "rings", "number of rings (SSSR, RDKit)"),
    TaskSpec(
        "molecules_lipinski",
        "molecules",
        "lipinski",
        "passes Lipinski's rule of five",
        kind="classification",
    ),
):
    TASKS.register(_spec.name, _spec)


def task_names(domains: Sequence[str] | None = None) -> list[str]:
    """Every built-in task, or those on ``domains``."""
    return [n for n, s in TASKS.items() if domains is None or s.domain in domains]


STRUCTURAL_TARGETS: dict[str, Callable[[Data], Any]] = {
    "clustering": T.average_clustering,
    "log_cycles4": lambda d: float(torch.log1p(torch.tensor(T.cycle_count(d, 4)))),
    "log_cycles5": lambda d: float(torch.log1p(torch.tensor(T.cycle_count(d, 5)))),
    "diameter": T.diameter_ratio,
    "eccentricity": T.eccentricity_ratio,
    "density": T.density,
    "cross": T.cross_edge_probability,
}


# --------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------


def _cache_path(name: str) -> Path:
    from provenml.core.cache import cache_dir

    return cache_dir("graphpretrain", CACHE_VERSION) / name


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cached(name: str, build: Callable[[], dict[str, Any]], use_cache: bool) -> dict[str, Any]:
    """``build()`` once per cache file (a dict of tensors, saved with ``torch.save``)."""
    if not use_cache:
        return build()
    from provenml.core.cache import atomic_write_path

    path = _cache_path(name)
    with _locked(path):
        if path.exists():
            return torch.load(path, weights_only=True)  # type: ignore[no-any-return]
        payload = build()
        with atomic_write_path(path) as tmp:
            torch.save(payload, tmp)
        return payload


def _seed(*parts: object) -> int:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


# --------------------------------------------------------------------------------------------
# Pre-training corpus
# --------------------------------------------------------------------------------------------


def domain_corpus(
    domain: str, num_graphs: int, data_seed: int = 0, *, use_cache: bool = True
) -> PackedGraphs:
    """``num_graphs`` pre-training graphs of ``domain`` (topology only), cached."""
    from provenml.data.graph_domains import PRETRAIN_DOMAINS, generate

    if domain not in PRETRAIN_DOMAINS:
        raise ProvenmlError(
            f"{domain!r} is not a pre-training domain; choose among {', '.join(PRETRAIN_DOMAINS)}"
        )

    def build() -> dict[str, Any]:
        graphs = generate(domain, num_graphs, _seed("pretrain", domain, data_seed))
        return PackedGraphs.from_data_list(graphs).state()

    state = _cached(f"pretrain-{domain}-n{num_graphs}-s{data_seed}.pt", build, use_cache)
    return PackedGraphs.from_state(state)


def concat(parts: Sequence[PackedGraphs]) -> PackedGraphs:
    """One packed set holding every graph of ``parts`` (topology only), in order."""
    if not parts:
        raise ProvenmlError("nothing to concatenate")
    node_offsets = torch.cumsum(torch.tensor([0] + [p.num_nodes for p in parts[:-1]]), 0)
    edge_offsets = torch.cumsum(torch.tensor([0] + [p.num_edges for p in parts[:-1]]), 0)
    node_ptr = torch.cat(
        [parts[0].node_ptr[:1]]
        + [p.node_ptr[1:] + o for p, o in zip(parts, node_offsets, strict=True)]
    )
    edge_ptr = torch.cat(
        [parts[0].edge_ptr[:1]]
        + [p.edge_ptr[1:] + o for p, o in zip(parts, edge_offsets, strict=True)]
    )
    return PackedGraphs(
        edge_index=torch.cat(
            [p.edge_index + o for p, o in zip(parts, node_offsets, strict=True)], 1
        ),
        node_ptr=node_ptr,
        edge_ptr=edge_ptr,
        reverse=torch.cat([p.reverse + o for p, o in zip(parts, edge_offsets, strict=True)]),
    )


def pretraining_corpus(
    domains: Sequence[str], per_domain: int, data_seed: int = 0, *, use_cache: bool = True
) -> PackedGraphs:
    """The pre-training graphs of ``domains``, ``per_domain`` each, topology only."""
    if not domains:
        raise ProvenmlError("pre-training needs at least one domain")
    return concat([domain_corpus(d, per_domain, data_seed, use_cache=use_cache) for d in domains])


# --------------------------------------------------------------------------------------------
# Task graphs and targets
# --------------------------------------------------------------------------------------------


def _structural_set(domain: str, count: int, data_seed: int, use_cache: bool) -> dict[str, Any]:
    from provenml.data.graph_domains import generate

    wanted = sorted({s.target for _, s in TASKS.items() if s.domain == domain})

    def build() -> dict[str, Any]:
        graphs = generate(domain, count, _seed("task", domain, data_seed))
        packed = PackedGraphs.from_data_list(graphs)
        values = {}
        for target in wanted:
            computed = [STRUCTURAL_TARGETS[target](g) for g in graphs]
            values[target] = (
                torch.cat(computed)
                if isinstance(computed[0], torch.Tensor)
                else torch.tensor(computed, dtype=torch.float)
            )
        return {"graphs": packed.state(), "targets": values}

    return _cached(f"task-{domain}-n{count}-s{data_seed}.pt", build, use_cache)


def _molecule_set(count: int, data_seed: int, use_cache: bool) -> dict[str, Any]:
    def build() -> dict[str, Any]:
        import numpy as np
        from torch_geometric.utils import from_smiles

        from provenml.data.graph_domains import atom_type_one_hot, molecule_smiles

        smiles = molecule_smiles("task")
        if len(smiles) < count:
            raise ProvenmlError(
                f"the task molecules number {len(smiles)}, fewer than the {count} asked for"
            )
        order = np.random.default_rng(_seed("task-molecules", data_seed)).permutation(len(smiles))
        chosen = [smiles[i] for i in order[:count]]
        graphs = []
        for s in chosen:
            graph = from_smiles(s)
            graph.atom_type = atom_type_one_hot(graph.x)
            graphs.append(graph)
        packed = PackedGraphs.from_data_list(graphs, features="atom_type")
        rows = [T.molecular_descriptors(s) for s in chosen]
        values = {
            name: torch.tensor([r[name] for r in rows], dtype=torch.float)
            for name in T.MOLECULAR_TARGETS
        }
        return {"graphs": packed.state(), "targets": values}

    return _cached(f"task-molecules-n{count}-s{data_seed}.pt", build, use_cache)


def _task_set(spec: TaskSpec, count: int, data_seed: int, use_cache: bool) -> PackedGraphs:
    if spec.domain == "molecules":
        payload = _molecule_set(count, data_seed, use_cache)
    else:
        payload = _structural_set(spec.domain, count, data_seed, use_cache)
    packed = PackedGraphs.from_state(payload["graphs"])
    return packed.with_targets(payload["targets"][spec.target], spec.level)


@dataclass
class DownstreamTask:
    """A labelled task: training, validation and test graphs with targets (``y``).

    Regression targets are z-scored with the training labels' statistics (``target_mean``,
    ``target_std``); classification targets are 0/1. Build one from your own graphs with
    :meth:`from_graphs`, or a built-in one with :func:`load_task`.
    """

    name: str
    kind: Kind
    level: Level
    train: PackedGraphs
    val: PackedGraphs
    test: PackedGraphs | None = None
    target_mean: float = 0.0
    target_std: float = 1.0

    @property
    def feature_dim(self) -> int:
        return self.train.feature_dim

    @classmethod
    def from_graphs(
        cls,
        train: Sequence[Data],
        val: Sequence[Data],
        test: Sequence[Data] | None = None,
        *,
        name: str = "custom",
        kind: Kind = "regression",
        level: Level = "graph",
        target: str = "y",
        features: str | None = None,
        zscore: bool = True,
    ) -> DownstreamTask:
        """A task from lists of PyG ``Data`` carrying ``target`` (and ``features``, if the
        model should read node features)."""
        if kind not in ("regression", "classification"):
            raise ProvenmlError(f"kind must be 'regression' or 'classification', got {kind!r}")
        packs = [
            PackedGraphs.from_data_list(g, features=features, target=target, level=level)
            for g in (train, val)
        ]
        test_pack = (
            None
            if test is None
            else PackedGraphs.from_data_list(test, features=features, target=target, level=level)
        )
        task = cls(name, kind, level, packs[0], packs[1], test_pack)
        return task.standardised() if zscore and kind == "regression" else task

    def standardised(self) -> DownstreamTask:
        """The task with targets z-scored by the training labels' mean and deviation."""
        assert self.train.y is not None and self.val.y is not None
        mean = float(self.train.y.mean())
        std = float(self.train.y.std()) if self.train.y.numel() > 1 else 1.0
        std = std if std > 1e-12 else 1.0

        def z(p: PackedGraphs | None) -> PackedGraphs | None:
            return None if p is None else replace(p, y=(p.y - mean) / std)  # type: ignore[operator]

        return replace(
            self,
            train=z(self.train),  # type: ignore[arg-type]
            val=z(self.val),  # type: ignore[arg-type]
            test=z(self.test),
            target_mean=mean,
            target_std=std,
        )


def load_task(
    name: str,
    *,
    seed: int = 0,
    train_labels: int = 200,
    val_size: int = 100,
    test_size: int = 1000,
    pool_size: int = 1000,
    data_seed: int = 0,
    features: bool = False,
    use_cache: bool = True,
) -> DownstreamTask:
    """The built-in task ``name`` (see :data:`TASKS`), split with ``seed``.

    The domain's task graphs number ``pool_size + val_size + test_size`` (generated with
    ``data_seed`` and cached); the last ``test_size`` are the fixed test set; ``seed`` draws
    the validation graphs and ``train_labels`` training graphs (at most ``pool_size``) from
    the rest. ``features=True`` keeps the node features (molecules: atom-type one-hot).
    """
    spec = TASKS.get(name)
    if not 1 <= train_labels <= pool_size:
        raise ProvenmlError(f"train_labels must be in 1..pool_size={pool_size}, got {train_labels}")
    if val_size < 1 or test_size < 1:
        raise ProvenmlError("val_size and test_size must be >= 1")
    if features and not spec.has_features:
        raise ProvenmlError(f"task {name!r} has no node features (only the molecular tasks do)")
    everything = _task_set(spec, pool_size + val_size + test_size, data_seed, use_cache)
    if not features:
        everything = replace(everything, x=None)
    labelled = pool_size + val_size
    generator = torch.Generator().manual_seed(_seed("split", name, seed))
    order = torch.randperm(labelled, generator=generator)
    val = everything.select(order[:val_size])
    train = everything.select(order[val_size : val_size + train_labels])
    test = everything.select(torch.arange(labelled, labelled + test_size))
    task = DownstreamTask(spec.name, spec.kind, spec.level, train, val, test)
    return task.standardised() if spec.kind == "regression" else task
