"""GNN explainability testbed (S8): methods, ground-truth datasets, models and metrics.

Yuan, Yu, Gui, Ji, "Explainability in Graph Neural Networks: A Taxonomic Survey" (2020).
Any PyG model with ``MessagePassing`` layers can be explained; the ground-truth datasets live in
the shared layer (:mod:`provenml.data.graphs`) and are re-exported here::

    from provenml.explain import GNNExplainer, load_dataset, metrics, train_node_classifier

    dataset = load_dataset("ba_shapes", seed=0)
    model = train_node_classifier(dataset).model
    explanation = GNNExplainer().explain(model, dataset.data, index=310)   # one node
    explanation.edge_mask                                                   # importance per edge
"""

from provenml.data.graphs import DATASETS, GroundTruthDataset, load_dataset
from provenml.explain import metrics
from provenml.explain.base import (
    ExplainerMethod,
    Explanation,
    InstanceBatch,
    check_model,
    symmetrize,
)
from provenml.explain.classifiers import (
    GCNNodeClassifier,
    GINGraphClassifier,
    train_graph_classifier,
    train_node_classifier,
)
from provenml.explain.methods import (
    EXPLAINERS,
    GNNExplainer,
    GradCAM,
    IntegratedGradients,
    PGExplainer,
    PGMExplainer,
    RandomExplainer,
    SaliencyExplainer,
    SubgraphX,
)

#: The methods by name (the same registry as :data:`EXPLAINERS`; ``METHODS["gradcam"]``).
METHODS = EXPLAINERS

__all__ = [
    "DATASETS",
    "EXPLAINERS",
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
