"""Backbones that return a feature map, the shape check every method runs, and
:func:`extract_backbone` for handing a pre-trained backbone to a downstream model.

DenseCL (Wang et al. 2021, Sec. 3.2) needs the backbone's last *spatial* feature map: both the
dense projection head and the correspondence between views work on it. Any ``nn.Module`` that
maps ``(B, 3, H, W)`` to ``(B, C, h, w)`` is a backbone here; a torchvision-style ResNet (whose
``forward`` ends in pooling and a classifier) is cut before its pooling by
:func:`feature_map_backbone`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from provenml.errors import ProvenmlError

Norm = Literal["group", "batch", "split_batch"]

_TORCHVISION_RESNET_PARTS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3")


class SplitBatchNorm(nn.BatchNorm2d):
    """BatchNorm over ``num_splits`` sub-batches, as if each ran on its own GPU.

    This is MoCo's single-device stand-in for per-GPU BatchNorm (He et al. 2020, Sec. 3.3): with
    one big batch, BN statistics would let the query and key of an image see each other through
    the batch, a shortcut that shuffle-BN (shuffling the key batch across GPUs) removes. Running
    statistics are averaged over the splits. In eval mode it is an ordinary ``BatchNorm2d``.
    """

    def __init__(self, num_features: int, num_splits: int = 4) -> None:
        super().__init__(num_features)
        self.num_splits = num_splits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if not self.training or self.num_splits == 1 or n % self.num_splits:
            return super().forward(x)
        splits = self.num_splits
        mean = self.running_mean.repeat(splits)  # type: ignore[union-attr]
        var = self.running_var.repeat(splits)  # type: ignore[union-attr]
        out = F.batch_norm(
            x.view(n // splits, c * splits, h, w),
            mean,
            var,
            self.weight.repeat(splits),
            self.bias.repeat(splits),
            True,
            self.momentum if self.momentum is not None else 0.1,
            self.eps,
        )
        self.running_mean.copy_(mean.view(splits, c).mean(0))  # type: ignore[union-attr]
        self.running_var.copy_(var.view(splits, c).mean(0))  # type: ignore[union-attr]
        return out.view(n, c, h, w)


def norm_layer(kind: Norm, channels: int, groups: int = 8) -> nn.Module:
    """GroupNorm (no batch statistics, the default), BatchNorm, or :class:`SplitBatchNorm`."""
    if kind == "group":
        return nn.GroupNorm(min(groups, channels), channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "split_batch":
        return SplitBatchNorm(channels)
    raise ProvenmlError(f"norm must be group, batch or split_batch, got {kind!r}")


class BasicBlock(nn.Module):
    """The ResNet basic block: two 3x3 convolutions and an identity (or 1x1) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, norm: Norm) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = norm_layer(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = norm_layer(norm, cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), norm_layer(norm, cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """A small ResNet for 32-64 px images that returns its last feature map ``(B, C, h, w)``.

    A 3x3 stem of stride ``stem_stride`` (then a 3x3 max-pool of stride 2 if ``stem_pool``),
    then one stage per entry of ``widths`` of ``depth`` basic blocks, every stage after the
    first halving the resolution. ``widths=(64, 128, 256, 512), depth=2, stem_stride=2,
    stem_pool=True`` has ResNet-18's stages and output stride 32 (its stem is 3x3, not 7x7).
    """

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 128),
        depth: int = 1,
        stem_stride: int = 1,
        norm: Norm = "group",
        stem_pool: bool = False,
    ) -> None:
        super().__init__()
        if not widths or depth < 1:
            raise ProvenmlError(f"widths must be non-empty and depth >= 1; got {widths}, {depth}")
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, stem_stride, 1, bias=False),
            norm_layer(norm, widths[0]),
            nn.ReLU(inplace=True),
            *([nn.MaxPool2d(3, 2, 1)] if stem_pool else []),
        )
        blocks: list[nn.Module] = []
        cin = widths[0]
        for stage, width in enumerate(widths):
            for block in range(depth):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(BasicBlock(cin, width, stride, norm))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = cin
        self.output_stride = stem_stride * (2 if stem_pool else 1) * 2 ** (len(widths) - 1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


class _TorchvisionResNetTrunk(nn.Module):
    """A torchvision-style ResNet up to ``layer4`` (its pooling and classifier dropped)."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            *(getattr(resnet, name) for name in (*_TORCHVISION_RESNET_PARTS, "layer4"))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)


def feature_map_backbone(module: nn.Module) -> nn.Module:
    """``module`` itself, or the trunk of a torchvision-style ResNet (``conv1`` ... ``layer4``,
    as ``torchvision.models.resnet18()`` has them) so that it returns its last feature map."""
    if isinstance(module, _TorchvisionResNetTrunk):
        return module
    if all(hasattr(module, name) for name in (*_TORCHVISION_RESNET_PARTS, "layer4", "fc")):
        return _TorchvisionResNetTrunk(module)
    return module


@torch.no_grad()
def feature_map_shape(backbone: nn.Module, image_size: int) -> tuple[int, int, int]:
    """``(C, h, w)`` of the backbone's output on ``image_size`` inputs; one clear error if it
    is not a spatial feature map (DenseCL's dense head and correspondence need one)."""
    was_training = backbone.training
    backbone.eval()
    try:
        first = next(backbone.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
        out = backbone(torch.zeros(2, 3, image_size, image_size, device=device))
    except RuntimeError as exc:
        raise ProvenmlError(
            f"backbone failed on a {image_size}x{image_size} image (image_size / crop_size "
            f"too small for it?): {str(exc).splitlines()[0]}"
        ) from None
    finally:
        backbone.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ProvenmlError(
            "backbone must return a spatial feature map of shape (B, C, h, w), got "
            f"{shape}; pass the network up to its last convolutional stage (no global "
            "pooling / classifier), e.g. feature_map_backbone(torchvision_resnet)"
        )
    return int(out.shape[1]), int(out.shape[2]), int(out.shape[3])


def extract_backbone(model: nn.Module) -> nn.Module:
    """A detached copy of the pre-trained query backbone of a :class:`~provenml.ssl.DenseCL` or
    :class:`~provenml.ssl.MoCoV2` model (or of any module with a ``backbone`` attribute, or of a
    plain backbone), in train mode with gradients on, ready for a downstream model."""
    backbone = getattr(model, "backbone", model)
    if not isinstance(backbone, nn.Module):
        raise ProvenmlError(f"cannot find a backbone in {type(model).__name__}")
    copied = copy.deepcopy(backbone)
    copied.train()
    copied.requires_grad_(True)
    return copied
