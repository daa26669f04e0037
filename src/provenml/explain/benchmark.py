"""Every method on every dataset under the same metrics: the testbed behind ``explain.benchmark``.

:func:`evaluate_method` scores one method's explanations; :func:`run_benchmark` trains a model
per dataset, picks the instances to explain (correctly predicted motif nodes, or correctly
predicted test graphs) and evaluates every method on them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from provenml.data.graphs import GroundTruthDataset, load_dataset
from provenml.explain import metrics
from provenml.explain.base import ExplainerMethod, Explanation
from provenml.explain.classifiers import train_graph_classifier, train_node_classifier


@dataclass
class Task:
    """A trained model and the instances of one dataset that get explained."""

    dataset: GroundTruthDataset
    model: nn.Module
    test_acc: float
    data: Data | list[Data]  # the graph (node task) or the graphs to explain (graph task)
    index: Tensor | None  # the nodes to explain (node task)
    edge_gt: Tensor | list[Tensor]

    def subset(self, count: int) -> tuple[Data | list[Data], Tensor | None, Any]:
        """The first ``count`` instances (data, index, ground truth)."""
        if self.index is not None:
            return self.data, self.index[:count], self.edge_gt
        assert isinstance(self.data, list) and isinstance(self.edge_gt, list)
        return self.data[:count], None, self.edge_gt[:count]


def make_task(
    name: str,
    seed: int,
    num_explain: int,
    dataset_kwargs: dict[str, Any] | None = None,
    train_kwargs: dict[str, Any] | None = None,
) -> Task:
    """Generate dataset ``name``, train its model, pick ``num_explain`` correct instances."""
    dataset = load_dataset(name, seed, **(dataset_kwargs or {}))
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if dataset.task == "node":
        trained = train_node_classifier(dataset, **(train_kwargs or {}))
        data = dataset.data
        with torch.no_grad():
            pred = trained.model(data.x, data.edge_index).argmax(-1)
        candidates = ((data.node_gt > 0) & (pred == data.y)).nonzero().view(-1)
        index = candidates[torch.randperm(len(candidates), generator=gen)[:num_explain]]
        return Task(dataset, trained.model, trained.test_acc, data, index, data.edge_gt)
    trained = train_graph_classifier(dataset, **(train_kwargs or {}))
    test = [dataset.graphs[i] for i in dataset.test_index.tolist()]
    with torch.no_grad():
        b = Batch.from_data_list(test)
        correct = trained.model(b.x, b.edge_index, b.batch).argmax(-1) == b.y
    picked = correct.nonzero().view(-1)
    picked = picked[torch.randperm(len(picked), generator=gen)[:num_explain]].tolist()
    graphs = [test[i] for i in picked]
    return Task(dataset, trained.model, trained.test_acc, graphs, None, [g.edge_gt for g in graphs])


@dataclass
class MethodScores:
    """All metrics of one method on one dataset. ``auroc`` pools every explained instance's
    edges into one AUROC (GNNExplainer's and PGExplainer's protocol); ``auroc_per_instance``
    is the mean of each instance's own AUROC."""

    auroc: float
    auroc_per_instance: float
    fid_prob_plus: list[float]
    fid_prob_minus: list[float]
    fid_acc_plus: list[float]
    fid_acc_minus: list[float]
    sparsity: float
    stability: float
    seconds: float
    count: int
    extra: dict[str, float] = field(default_factory=dict)


def evaluate_method(
    method: ExplainerMethod,
    task: Task,
    count: int,
    sparsities: Sequence[float],
    stability_count: int,
    seed: int = 0,
) -> tuple[MethodScores, list[Explanation]]:
    """Explain ``count`` instances of ``task`` with ``method`` and score the explanations."""
    data, index, gt = task.subset(count)
    start = time.perf_counter()
    explanations = method.explain_batch(task.model, data, index)
    seconds = (time.perf_counter() - start) / len(explanations)
    curves: dict[str, list[float]] = {"pp": [], "pm": [], "ap": [], "am": []}
    for f in metrics.fidelity_curve(task.model, explanations, sparsities):
        curves["pp"].append(float(f.prob_plus.mean()))
        curves["pm"].append(float(f.prob_minus.mean()))
        curves["ap"].append(float(f.acc_plus.mean()))
        curves["am"].append(float(f.acc_minus.mean()))
    stab = float("nan")
    if stability_count > 0:
        s_data, s_index, _ = task.subset(min(stability_count, count))
        stab = metrics.stability(
            method,
            task.model,
            s_data,
            s_index,
            explanations[: min(stability_count, count)],
            seed=seed,
        )
    return (
        MethodScores(
            auroc=metrics.groundtruth_auroc(explanations, gt),
            auroc_per_instance=metrics.groundtruth_auroc_per_instance(explanations, gt),
            fid_prob_plus=curves["pp"],
            fid_prob_minus=curves["pm"],
            fid_acc_plus=curves["ap"],
            fid_acc_minus=curves["am"],
            sparsity=metrics.sparsity(explanations),
            stability=stab,
            seconds=seconds,
            count=len(explanations),
        ),
        explanations,
    )


MethodFactory = Callable[[], ExplainerMethod]
