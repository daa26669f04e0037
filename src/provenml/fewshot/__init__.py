"""S9: AdarGCN few-shot learning when the source classes are scarce too (Zhang et al., WACV 2021,
arXiv 2002.12641).

An episodic few-shot toolkit for a user's own labelled tensors: a seeded N-way K-shot episode
sampler, heads behind one interface (ProtoNet, MatchingNet, GNN-FSL, EGNN, a plain GCN and
AdarGCN), training loops, and the AdarGCN label-denoising network (LDN) that cleans noisy web
samples. Everything runs a whole meta-batch of episodes as one tensor program, on any device::

    import torch
    from provenml.fewshot import AdarGCNHead, Conv1dEncoder, EpisodeSampler, FewShotClassifier

    x, y = torch.randn(600, 40), torch.arange(30).repeat_interleave(20)  # your data
    sampler = EpisodeSampler(y, n_way=5, k_shot=1, q_query=15, seed=0)
    model = FewShotClassifier(Conv1dEncoder(out_dim=64), AdarGCNHead(64))
    batch = sampler.sample(8)                               # 8 episodes, index tensors
    support_x, query_x = batch.gather(x)                    # [8, 5, 40], [8, 75, 40]
    out = model(support_x, batch.support_labels, query_x, n_way=5)
    loss = model.head.loss(out, batch.support_labels, batch.query_labels, 5)
    accuracy = (out.predictions() == batch.query_labels).float().mean()

The reproductions live in :mod:`provenml.fewshot.experiments` (``fewshot.scarce_source``,
``fewshot.heads``, ``fewshot.denoising``, ``fewshot.standard``).
"""

from provenml.fewshot.adargcn import AdarGCN, GraphPass
from provenml.fewshot.datasets import BenchmarkSpec, FewShotBenchmark, make_benchmark
from provenml.fewshot.denoise import (
    FILTERS,
    LDN,
    FilterQuality,
    PrototypeFilter,
    auroc,
    filter_quality,
    make_filter,
)
from provenml.fewshot.encoders import Conv1dEncoder, Encoder, MLPEncoder, encode
from provenml.fewshot.episodes import EpisodeBatch, EpisodeSampler
from provenml.fewshot.graph import (
    AdaptiveAggregationBlock,
    DenseGCNLayer,
    EdgeMLP,
    GroupedLinear,
    normalized_adjacency,
    same_label_edges,
)
from provenml.fewshot.heads import (
    EGNN,
    GNNFSL,
    HEADS,
    AdarGCNHead,
    FewShotHead,
    GCNHead,
    HeadOutput,
    MatchingNet,
    ProtoNet,
    edge_loss,
    make_head,
)
from provenml.fewshot.training import (
    FewShotClassifier,
    TrainSettings,
    evaluate_episodes,
    mean_and_ci,
    meta_train,
    pretrain_encoder,
)

__all__ = [
    "EGNN",
    "FILTERS",
    "GNNFSL",
    "HEADS",
    "LDN",
    "AdaptiveAggregationBlock",
    "AdarGCN",
    "AdarGCNHead",
    "BenchmarkSpec",
    "Conv1dEncoder",
    "DenseGCNLayer",
    "EdgeMLP",
    "Encoder",
    "EpisodeBatch",
    "EpisodeSampler",
    "FewShotBenchmark",
    "FewShotClassifier",
    "FewShotHead",
    "FilterQuality",
    "GCNHead",
    "GraphPass",
    "GroupedLinear",
    "HeadOutput",
    "MLPEncoder",
    "MatchingNet",
    "ProtoNet",
    "PrototypeFilter",
    "TrainSettings",
    "auroc",
    "edge_loss",
    "encode",
    "evaluate_episodes",
    "filter_quality",
    "make_benchmark",
    "make_filter",
    "make_head",
    "mean_and_ci",
    "meta_train",
    "normalized_adjacency",
    "pretrain_encoder",
    "same_label_edges",
]
