"""Fixed, seeded evaluation protocols for a pre-trained backbone on dense and image tasks.

The DenseCL repository's issues (#19, #38) show that the evaluation protocol moves mIoU a lot,
so each protocol here is one function with its schedule written down and every random choice
drawn from its own seed: two backbones evaluated with the same seed see the same head
initialisation, batches and crops, and differ only in their weights.

- :func:`probe_miou`: a frozen backbone, a 1x1-conv probe on its feature map upsampled to the
  image (bilinear), trained with cross-entropy per pixel; mIoU on the test set.
- :func:`fcn_finetune_miou`: an FCN head (3x3 conv-GN-ReLU, 1x1 conv, bilinear upsampling) on
  the backbone, everything fine-tuned on ``n`` labelled images; mIoU on the test set.
- :func:`knn_accuracy`: image-level weighted kNN on pooled frozen features (Wu et al. 2018).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from provenml.errors import ProvenmlError
from provenml.nn import module_device
from provenml.ssl.scenes import NUM_CLASSES, SceneSet


def _to_float(images: torch.Tensor) -> torch.Tensor:
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()


@torch.no_grad()
def extract_features(
    backbone: nn.Module, images: torch.Tensor, batch_size: int = 250
) -> torch.Tensor:
    """The backbone's feature maps (N, C, h, w) of ``images`` (uint8 or [0, 1]), in eval mode."""
    was_training = backbone.training
    backbone.eval()
    device = module_device(backbone)
    try:
        out = [
            backbone(_to_float(images[i : i + batch_size]).to(device)).cpu()
            for i in range(0, images.shape[0], batch_size)
        ]
    finally:
        backbone.train(was_training)
    return torch.cat(out)


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) counts, rows = true class, columns = predicted."""
    index = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(index, minlength=num_classes**2).view(num_classes, num_classes)


def miou_from_confusion(confusion: torch.Tensor) -> tuple[float, list[float]]:
    """Mean IoU in percent over the classes present in the target or the prediction, and the
    per-class IoU (NaN for a class absent from both): ``IoU_c = TP / (TP + FP + FN)``."""
    confusion = confusion.double()
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, math.nan))
    present = ~torch.isnan(iou)
    return float(100.0 * iou[present].mean()), [float(100.0 * v) for v in iou]


@dataclass
class DenseScore:
    """mIoU (percent) and per-class IoU of one dense evaluation."""

    miou: float
    per_class: list[float]


def _check_scenes(train: SceneSet, test: SceneSet) -> None:
    if len(train) < 1 or len(test) < 1:
        raise ProvenmlError("the labelled training and test sets must not be empty")
    if train.images.shape[1:] != test.images.shape[1:]:
        raise ProvenmlError(
            f"train and test images differ in shape: {tuple(train.images.shape[1:])} vs "
            f"{tuple(test.images.shape[1:])}"
        )


def _linear_weights(size_in: int, size_out: int) -> torch.Tensor:
    """(size_out, size_in) weights of 1-D linear interpolation (align_corners=False)."""
    eye = torch.eye(size_in)[:, None, :]  # one impulse per input position
    return F.interpolate(eye, size=size_out, mode="linear", align_corners=False)[:, 0, :].t()


class BilinearUpsample(nn.Module):
    """Bilinear upsampling (align_corners=False) written as two small matrix products,
    ``W_y @ x @ W_x^T``: the same function as ``F.interpolate(mode="bilinear")``, whose CPU
    backward is far slower for the probe's many small maps."""

    def __init__(self, size_in: tuple[int, int], size_out: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("rows", _linear_weights(size_in[0], size_out[0]))
        self.register_buffer("cols", _linear_weights(size_in[1], size_out[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rows @ x @ self.cols.t()


@dataclass
class FrozenFeatures:
    """Frozen feature maps of a labelled training set and a test set, extracted once and
    shared by :func:`probe_miou` and :func:`knn_accuracy`."""

    train: torch.Tensor
    test: torch.Tensor

    @classmethod
    def extract(cls, backbone: nn.Module, train: SceneSet, test: SceneSet) -> FrozenFeatures:
        _check_scenes(train, test)
        return cls(
            extract_features(backbone, train.images), extract_features(backbone, test.images)
        )


def _features(
    source: nn.Module | FrozenFeatures, train: SceneSet, test: SceneSet
) -> FrozenFeatures:
    if isinstance(source, FrozenFeatures):
        if source.train.shape[0] != len(train) or source.test.shape[0] != len(test):
            raise ProvenmlError("FrozenFeatures were extracted from other train / test sets")
        return source
    return FrozenFeatures.extract(source, train, test)


def probe_miou(
    source: nn.Module | FrozenFeatures,
    train: SceneSet,
    test: SceneSet,
    *,
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 0.01,
    seed: int = 0,
    num_classes: int = NUM_CLASSES,
) -> DenseScore:
    """A frozen-feature 1x1-conv probe: ``upsample(features)`` -> 1x1 conv -> per-pixel class.

    ``source`` is a backbone or its :class:`FrozenFeatures` on ``train`` / ``test``. Both the
    1x1 conv and bilinear upsampling are linear and the upsampling weights sum to one, so
    ``conv(upsample(f)) == upsample(conv(f))``: the probe runs the conv at feature resolution
    and upsamples the logits (the same function, far cheaper). Features are standardised per
    channel with the training set's statistics. Adam, ``steps`` steps of ``batch_size``
    images, cross-entropy per pixel.
    """
    _check_scenes(train, test)
    features = _features(source, train, test)
    mean = features.train.mean(dim=(0, 2, 3), keepdim=True)
    std = features.train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    train_features = (features.train - mean) / std
    test_features = (features.test - mean) / std
    size = (int(train.masks.shape[-2]), int(train.masks.shape[-1]))
    generator = torch.Generator().manual_seed(seed)
    probe = nn.Conv2d(train_features.shape[1], num_classes, 1)
    with torch.no_grad():
        bound = 1.0 / math.sqrt(train_features.shape[1])
        probe.weight.uniform_(-bound, bound, generator=generator)
        probe.bias.zero_()
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr)
    masks = train.masks.long()
    batch_size = min(batch_size, len(train))
    upsample = BilinearUpsample((train_features.shape[-2], train_features.shape[-1]), size)
    for _ in range(steps):
        index = torch.randperm(len(train), generator=generator)[:batch_size]
        loss = F.cross_entropy(upsample(probe(train_features[index])), masks[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    with torch.no_grad():
        for i in range(0, len(test), 250):
            logits = upsample(probe(test_features[i : i + 250]))
            confusion += confusion_matrix(logits.argmax(1), test.masks[i : i + 250], num_classes)
    miou, per_class = miou_from_confusion(confusion)
    return DenseScore(miou, per_class)


class FCN(nn.Module):
    """A fully convolutional segmenter: backbone, 3x3 conv-GN-ReLU, 1x1 conv to classes,
    bilinear upsampling to the input size (Long et al. 2015, the head DenseCL's VOC/Cityscapes
    FCN evaluations use, shortened to one hidden conv)."""

    def __init__(self, backbone: nn.Module, channels: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        hidden = max(32, channels)
        self.head = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1, bias=False),
            nn.GroupNorm(min(8, hidden), hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, num_classes, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.backbone(images))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


def random_crops(
    images: torch.Tensor, masks: torch.Tensor, crop: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A pixel-aligned random ``crop x crop`` window of every image and its mask, each
    mirrored with probability 1/2 (batched by index arithmetic, no per-image loop)."""
    batch, _, height, width = images.shape
    top = torch.randint(0, height - crop + 1, (batch,), generator=generator)
    left = torch.randint(0, width - crop + 1, (batch,), generator=generator)
    flip = torch.rand(batch, generator=generator) < 0.5
    offsets = torch.arange(crop)
    rows = top[:, None] + offsets[None]
    cols = left[:, None] + torch.where(flip[:, None], crop - 1 - offsets[None], offsets[None])
    b = torch.arange(batch)[:, None, None]
    out_images = images[b, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    out_masks = masks[b, rows[:, :, None], cols[:, None, :]]
    return out_images, out_masks


def fcn_finetune_miou(
    backbone: nn.Module,
    train: SceneSet,
    test: SceneSet,
    *,
    steps: int = 1200,
    batch_size: int = 16,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    crop: int = 32,
    seed: int = 0,
    num_classes: int = NUM_CLASSES,
) -> DenseScore:
    """Fine-tune a copy of ``backbone`` with an FCN head on ``train``; mIoU on ``test``.

    AdamW with a cosine schedule, ``steps`` steps of ``batch_size`` random ``crop``-pixel
    crops with flips; the test images are segmented whole. The head's initialisation and every
    batch come from ``seed``.
    """
    _check_scenes(train, test)
    if crop > min(train.images.shape[-2:]):
        raise ProvenmlError(f"crop={crop} is larger than the {train.images.shape[-1]} px images")
    backbone = copy.deepcopy(backbone).train().requires_grad_(True)
    device = module_device(backbone)
    with torch.no_grad():
        channels = backbone(torch.zeros(1, 3, crop, crop, device=device)).shape[1]
    fork = torch.random.fork_rng(devices=[])
    with fork:
        torch.manual_seed(seed)
        model = FCN(backbone, channels, num_classes).to(device)
    generator = torch.Generator().manual_seed(seed + 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: 0.5 * (1.0 + math.cos(math.pi * t / steps))
    )
    images, masks = _to_float(train.images), train.masks.long()
    batch_size = min(batch_size, len(train))
    model.train()
    for _ in range(steps):
        index = torch.randperm(len(train), generator=generator)[:batch_size]
        crops, targets = random_crops(images[index], masks[index], crop, generator)
        loss = F.cross_entropy(model(crops.to(device)), targets.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    with torch.no_grad():
        for i in range(0, len(test), 250):
            logits = model(_to_float(test.images[i : i + 250]).to(device)).cpu()
            confusion += confusion_matrix(logits.argmax(1), test.masks[i : i + 250], num_classes)
    miou, per_class = miou_from_confusion(confusion)
    return DenseScore(miou, per_class)


def knn_accuracy(
    source: nn.Module | FrozenFeatures,
    train: SceneSet,
    test: SceneSet,
    *,
    k: int = 20,
    temperature: float = 0.07,
) -> float:
    """Weighted kNN accuracy (percent) of the image labels on globally pooled, L2-normalised
    frozen features: each of the ``k`` nearest training images votes ``exp(cos / temperature)``
    for its label (Wu et al. 2018, the InstDisc / MoCo kNN monitor)."""
    features = _features(source, train, test)
    train_vec = F.normalize(features.train.mean(dim=(2, 3)), dim=1)
    test_vec = F.normalize(features.test.mean(dim=(2, 3)), dim=1)
    k = min(k, train_vec.shape[0])
    similarity, neighbour = (test_vec @ train_vec.t()).topk(k, dim=1)
    num_labels = int(max(train.labels.max(), test.labels.max())) + 1
    votes = torch.zeros(test_vec.shape[0], num_labels)
    votes.scatter_add_(1, train.labels[neighbour], torch.exp(similarity / temperature))
    return float(100.0 * (votes.argmax(1) == test.labels).float().mean())
