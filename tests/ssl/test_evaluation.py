"""Evaluation protocols: mIoU arithmetic, aligned crops, probe and kNN on known features."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from provenml.errors import ProvenmlError
from provenml.ssl import (
    FrozenFeatures,
    SmallResNet,
    evaluate_backbone,
    knn_accuracy,
    loss_fell,
    miou_from_confusion,
    multi_object_scenes,
    probe_miou,
)
from provenml.ssl.evaluation import confusion_matrix, random_crops
from provenml.ssl.transfer import EvaluationProtocol


def test_miou_matches_hand_computation() -> None:
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 0]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 2, 0, 0]])
    confusion = confusion_matrix(pred, target, 4)
    miou, per_class = miou_from_confusion(confusion)
    # class 0: TP 2, FP 1, FN 1 -> 2/4; class 1: TP 2, FP 1 -> 2/3; class 2: TP 2, FN 1 -> 2/3
    assert per_class[:3] == pytest.approx([50.0, 200 / 3, 200 / 3])
    assert math.isnan(per_class[3])  # absent from both: not averaged
    assert miou == pytest.approx((50 + 2 * 200 / 3) / 3)


def test_random_crops_keep_images_and_masks_aligned() -> None:
    g = torch.Generator().manual_seed(0)
    masks = torch.randint(0, 6, (5, 20, 20), generator=g)
    images = masks[:, None].float().repeat(1, 3, 1, 1)  # the mask painted into the image
    crops, crop_masks = random_crops(images, masks, 8, g)
    assert crops.shape == (5, 3, 8, 8) and crop_masks.shape == (5, 8, 8)
    assert torch.equal(crops[:, 0].long(), crop_masks)


class _MaskOracle(nn.Module):
    """A "backbone" whose 4x-downsampled feature map is the one-hot mask (read off the
    image's first channel, where the test paints it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        classes = (x[:, 0] * 255).round().long().clamp(0, 5)
        one_hot = F.one_hot(classes, 6).permute(0, 3, 1, 2).float()
        return F.avg_pool2d(one_hot, 4)


def _painted(n: int, seed: int):  # type: ignore[no-untyped-def]
    scenes = multi_object_scenes(n, seed)
    scenes.images[:, 0] = scenes.masks
    return scenes


def test_probe_reads_a_perfect_feature_map_and_random_features_do_worse() -> None:
    train, test = _painted(40, 0), _painted(40, 1)
    oracle = probe_miou(_MaskOracle(), train, test, steps=150, lr=0.05, seed=0)
    torch.manual_seed(0)
    random_net = probe_miou(SmallResNet((8, 8)), train, test, steps=150, lr=0.05, seed=0)
    assert oracle.miou > 60 and oracle.miou > random_net.miou + 15
    again = probe_miou(_MaskOracle(), train, test, steps=150, lr=0.05, seed=0)
    assert again.miou == oracle.miou  # same seed, same number


def test_knn_on_label_features_is_perfect() -> None:
    train, test = multi_object_scenes(30, 0), multi_object_scenes(30, 1)
    features = FrozenFeatures(
        F.one_hot(train.labels, 6).float()[:, :, None, None],
        F.one_hot(test.labels, 6).float()[:, :, None, None],
    )
    assert knn_accuracy(features, train, test, k=5) == 100.0
    with pytest.raises(ProvenmlError, match="other train / test"):
        knn_accuracy(features, train, multi_object_scenes(10, 2))


def test_evaluate_backbone_reports_every_protocol() -> None:
    train, test = multi_object_scenes(12, 0), multi_object_scenes(8, 1)
    torch.manual_seed(0)
    protocol = EvaluationProtocol(probe_steps=2, fcn_steps=2, fcn_batch=4, few_labels=4, knn_k=3)
    scores = evaluate_backbone(SmallResNet((8, 8)), train, test, protocol)
    for value in (scores.probe, scores.fcn_few, scores.fcn_all, scores.knn):
        assert 0.0 <= value <= 100.0
    assert set(scores.per_class) == {"probe", "fcn_few", "fcn_all"}
    with pytest.raises(ProvenmlError, match="few_labels"):
        evaluate_backbone(SmallResNet((8, 8)), train, test, EvaluationProtocol(few_labels=50))


def test_loss_fell_compares_windows_after_the_start() -> None:
    assert loss_fell([1.0, 5.0, 5.0, 4.0, 3.0, 2.0], start=1, window=2) == (True, 5.0, 2.5)
    assert not loss_fell([1.0, 1.0, 2.0, 2.0], start=0, window=2)[0]
    with pytest.raises(ProvenmlError, match="at least 4 losses"):
        loss_fell([1.0, 2.0, 3.0], start=0, window=2)


def test_bilinear_upsample_equals_interpolate() -> None:
    from provenml.ssl.evaluation import BilinearUpsample

    x = torch.randn(2, 3, 16, 12, generator=torch.Generator().manual_seed(0))
    expected = F.interpolate(x, size=(64, 48), mode="bilinear", align_corners=False)
    assert torch.allclose(BilinearUpsample((16, 12), (64, 48))(x), expected, atol=1e-5)
