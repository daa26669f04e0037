"""Topology-only graph pre-training across domains (S4).

Davies, Green, Ajmeri, Silva Filho, "Topology Only Pre-Training: Towards Generalised
Multi-Domain Graph Models" (arXiv 2311.03976): pre-train a GIN contrastively on the structure
of graphs from many domains (node and edge features replaced by a constant), then fine-tune
it, with or without node features, on tasks from seen and unseen domains. On your own graphs::

    from provenml.graphpretrain import (
        DownstreamTask, finetune, load_encoder, new_encoder, pretrain, save_encoder,
    )

    encoder = new_encoder(hidden=64, num_layers=3)       # GIN, constant input, sum readout
    report = pretrain(encoder, my_graphs, objective="adgcl", steps=500)   # list of PyG Data
    save_encoder(encoder, "top.pt")

    task = DownstreamTask.from_graphs(train_graphs, val_graphs, test_graphs)  # Data with .y
    result = finetune(load_encoder("top.pt"), task, epochs=100)
    result.test_error, result.best_epoch         # chosen on the validation split only

``finetune(encoder, "trees_diameter")`` runs a built-in task (:data:`TASKS`); the graph domains
live in the shared layer, :mod:`provenml.data.graph_domains`.
"""

from provenml.graphpretrain.augment import (
    AUGMENTATIONS,
    augment,
    drop_edges,
    drop_nodes,
    subgraph,
)
from provenml.graphpretrain.finetune import (
    FinetuneResult,
    ProbeResult,
    auroc,
    finetune,
    linear_probe,
)
from provenml.graphpretrain.model import (
    FineTuneModel,
    TopologyOnly,
    encode,
    load_encoder,
    new_encoder,
    save_encoder,
    with_feature_input,
)
from provenml.graphpretrain.objectives import ADGCL, OBJECTIVES, GraphCL, nt_xent
from provenml.graphpretrain.packed import PackedGraphs
from provenml.graphpretrain.pretrain import PretrainReport, pretrain
from provenml.graphpretrain.stats import compare_tasks, holm
from provenml.graphpretrain.tasks import (
    TASKS,
    DownstreamTask,
    load_task,
    pretraining_corpus,
    task_names,
)

__all__ = [
    "ADGCL",
    "AUGMENTATIONS",
    "OBJECTIVES",
    "TASKS",
    "DownstreamTask",
    "FineTuneModel",
    "FinetuneResult",
    "GraphCL",
    "PackedGraphs",
    "PretrainReport",
    "ProbeResult",
    "TopologyOnly",
    "augment",
    "auroc",
    "compare_tasks",
    "drop_edges",
    "drop_nodes",
    "encode",
    "finetune",
    "holm",
    "linear_probe",
    "load_encoder",
    "load_task",
    "new_encoder",
    "nt_xent",
    "pretrain",
    "pretraining_corpus",
    "save_encoder",
    "subgraph",
    "task_names",
    "with_feature_input",
]
