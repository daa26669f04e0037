"""The compact FL model and the wider frozen visual encoder, GroupNorm throughout.

BatchNorm's running statistics drift apart under non-IID client data (Hsieh et al., 2020), so
every normalisation here is GroupNorm, as in the paper's compact FL models.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _block(c_in: int, c_out: int, stride: int, groups: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.GroupNorm(min(groups, c_out), c_out),
        nn.ReLU(inplace=True),
    )


class ConvEncoder(nn.Module):
    """Conv-GroupNorm-ReLU blocks at stride 2, then global
    average pooling: ``[N, 3, 32, 32] -> [N, widths[-1]]``."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64), groups: int = 8) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for width in widths:
            layers.append(_block(c_in, width, 2, groups))
            c_in = width
        self.body = nn.Sequential(*layers)
        self.out_dim = c_in

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x).mean(dim=(2, 3))


class FLModel(nn.Module):
    """The compact model the clients train: a :class:`ConvEncoder` and a linear classifier."""

    def __init__(
        self, num_classes: int, widths: tuple[int, ...] = (16, 32, 64), groups: int = 8
    ) -> None:
        super().__init__()
        self.encoder = ConvEncoder(widths, groups)
        self.classifier = nn.Linear(self.encoder.out_dim, num_classes)

    @property
    def feature_dim(self) -> int:
        return self.encoder.out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.encoder(x))


class VisualEncoder(nn.Module):
    """The frozen "CLIP" stand-in: a wider :class:`ConvEncoder` with a projection into the
    sentence encoder's space, trained contrastively on the web pool's captions."""

    def __init__(self, embed_dim: int, widths: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        self.encoder = ConvEncoder(widths)
        self.projection = nn.Linear(self.encoder.out_dim, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        """Unit-norm image embeddings ``[N, embed_dim]``."""
        return nn.functional.normalize(self.projection(self.encoder(x)), dim=-1)


def state_vector(model: nn.Module) -> Tensor:
    """All floating-point parameters and buffers of ``model`` as one flat vector (for
    comparing two models' weights)."""
    return torch.cat([t.detach().reshape(-1).float() for t in model.state_dict().values()])
