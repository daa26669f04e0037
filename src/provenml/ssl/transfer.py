"""The dense-transfer protocol as one call, and the regime checks that go with it.

:func:`evaluate_backbone` runs the three fixed evaluations of :mod:`provenml.ssl.evaluation` on
one backbone (frozen probe, FCN fine-tuning with few and with all labels, kNN). The checks that
decide whether a failed claim can be trusted: :func:`loss_fell` (did pre-training make progress
once the queue was full?) and :func:`measure_correspondence` (do DenseCL's argmax matches land
on geometrically overlapping regions more often than chance, judged with the crop boxes?).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from provenml.errors import ProvenmlError
from provenml.ssl.augment import TwoViewAugment, correspondence_overlap
from provenml.ssl.evaluation import (
    FrozenFeatures,
    fcn_finetune_miou,
    knn_accuracy,
    module_device,
    probe_miou,
)
from provenml.ssl.methods import dense_correspondence
from provenml.ssl.scenes import SceneSet


@dataclass
class EvaluationProtocol:
    """Every knob of the evaluations, fixed per experiment and seeded by ``seed``."""

    probe_steps: int = 300
    probe_batch: int = 64
    probe_lr: float = 0.01
    fcn_steps: int = 1200
    fcn_batch: int = 16
    fcn_lr: float = 1e-3
    fcn_crop: int = 32
    few_labels: int = 100
    knn_k: int = 20
    seed: int = 0


@dataclass
class TransferScores:
    """mIoU (percent) of the probe and of FCN fine-tuning with ``few`` and ``all`` labels,
    kNN accuracy (percent), and the per-class IoU of each dense evaluation."""

    probe: float
    fcn_few: float
    fcn_all: float
    knn: float
    per_class: dict[str, list[float]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_backbone(
    backbone: nn.Module,
    labelled: SceneSet,
    test: SceneSet,
    protocol: EvaluationProtocol | None = None,
) -> TransferScores:
    """Probe, FCN with ``protocol.few_labels`` and with all of ``labelled``, and kNN."""
    protocol = protocol or EvaluationProtocol()
    if not 1 <= protocol.few_labels <= len(labelled):
        raise ProvenmlError(
            f"few_labels={protocol.few_labels} must be between 1 and the {len(labelled)} "
            "labelled images"
        )
    features = FrozenFeatures.extract(backbone, labelled, test)
    probe = probe_miou(
        features,
        labelled,
        test,
        steps=protocol.probe_steps,
        batch_size=protocol.probe_batch,
        lr=protocol.probe_lr,
        seed=protocol.seed,
    )
    knn = knn_accuracy(features, labelled, test, k=protocol.knn_k)
    fcn = {}
    for name, count in (("few", protocol.few_labels), ("all", len(labelled))):
        fcn[name] = fcn_finetune_miou(
            backbone,
            labelled.subset(slice(0, count)),
            test,
            steps=protocol.fcn_steps,
            batch_size=protocol.fcn_batch,
            lr=protocol.fcn_lr,
            crop=protocol.fcn_crop,
            seed=protocol.seed,
        )
    return TransferScores(
        probe=probe.miou,
        fcn_few=fcn["few"].miou,
        fcn_all=fcn["all"].miou,
        knn=knn,
        per_class={
            "probe": probe.per_class,
            "fcn_few": fcn["few"].per_class,
            "fcn_all": fcn["all"].per_class,
        },
    )


def loss_fell(losses: list[float], start: int, window: int) -> tuple[bool, float, float]:
    """Whether the mean of the last ``window`` losses is below the mean of the ``window``
    losses from step ``start`` (e.g. once the queue has filled: until then the negatives are
    random vectors and the loss is artificially low). Returns (fell, early, late)."""
    values = [v for v in losses[start:] if not math.isnan(v)]
    if len(values) < 2 * window:
        raise ProvenmlError(
            f"need at least {2 * window} losses after step {start} to compare windows; got "
            f"{len(values)} (more pre-training steps, or a smaller queue)"
        )
    early = sum(values[:window]) / window
    late = sum(values[-window:]) / window
    return late < early, early, late


@torch.no_grad()
def measure_correspondence(
    query_backbone: nn.Module,
    key_backbone: nn.Module,
    images: torch.Tensor,
    augment: TwoViewAugment,
    seed: int = 0,
    batch_size: int = 128,
) -> tuple[float, float]:
    """Two fresh views of ``images``, backbone features of each (query / key backbone), the
    argmax correspondence of DenseCL, and :func:`~provenml.ssl.augment.correspondence_overlap`
    pooled over batches: (share of matches that overlap their query cell, chance share)."""
    generator = torch.Generator().manual_seed(seed)
    device = module_device(query_backbone)
    modes = (query_backbone.training, key_backbone.training)
    query_backbone.eval()
    key_backbone.eval()
    matched_sum = chance_sum = 0.0
    batches = 0
    try:
        for start in range(0, images.shape[0], batch_size):
            batch = images[start : start + batch_size]
            view_q, view_k, boxes_q, boxes_k = augment(batch, generator)
            features_q = query_backbone(view_q.to(device))
            features_k = key_backbone(view_k.to(device))
            matches = dense_correspondence(features_q, features_k).cpu()
            matched, chance = correspondence_overlap(
                matches,
                boxes_q,
                boxes_k,
                (features_q.shape[-2], features_q.shape[-1]),
                (features_k.shape[-2], features_k.shape[-1]),
            )
            matched_sum += matched
            chance_sum += chance
            batches += 1
    finally:
        query_backbone.train(modes[0])
        key_backbone.train(modes[1])
    return matched_sum / batches, chance_sum / batches
