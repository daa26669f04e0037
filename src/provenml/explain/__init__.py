"""GNN explainability testbed (S8): methods, ground-truth datasets, models and metrics.

Yuan, Yu, Gui, Ji, "Explainability in Graph Neural Networks: A Taxonomic Survey" (2020).

    from provenml.explain import GNNExplainer
    explanation = GNNExplainer().explain(model, data, index=10)   # a node
    explanation.edge_mask                                           # importance per edge
"""

from provenml.explain import metrics
from provenml.explain.base import (
    ExplainerMethod,
    Explanation,
    InstanceBatch,
    check_model,
    symmetrize,
)
from provenml.explain.datasets import DATASETS, GroundTruthDataset, load_dataset
from provenml.explain.methods import (
    GNNExplainer,
    GradCAM,
    IntegratedGradients,
    PGExplainer,
    PGMExplainer,
    RandomExplainer,
    SaliencyExplainer,
    SubgraphX,
)
from provenml.explain.models import (
    GCNNodeClassifier,
    GINGraphClassifier,
    train_graph_classifier,
    train_node_classifier,
)

METHODS: dict[str, type[ExplainerMethod]] = {
    cls.name: cls
    for cls in (
        RandomExplainer,
        SaliencyExplainer,
        IntegratedGradients,
        GradCAM,
        GNNExplainer,
        PGExplainer,
        SubgraphX,
        PGMExplainer,
    )
}

__all__ = [
    "DATASETS",
    "METHODS",
    "ExplainerMethod",
    "Explanation",
    "GCNNodeClassifier",
    "GINGraphClassifier",
    "GNNExplainer",
    "GradCAM",
    "GroundTruthDataset",
    "InstanceBatch",
    "IntegratedGradients",
    "PGExplainer",
    "PGMExplainer",
    "RandomExplainer",
    "SaliencyExplainer",
    "SubgraphX",
    "check_model",
    "load_dataset",
    "metrics",
    "symmetrize",
    "train_graph_classifier",
    "train_node_classifier",
]
