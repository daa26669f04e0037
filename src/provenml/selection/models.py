"""Small models and the per-example classification loss used by the reproductions."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from provenml.core import ProvenmlError
from provenml.selection.batches import Batch


def mlp(in_features: int, hidden: Sequence[int], out_features: int) -> nn.Sequential:
    """A ReLU MLP ``in - hidden[0] - ... - out`` (e.g. ``mlp(40, [512, 512], 10)``)."""
    if any(h < 1 for h in hidden):
        raise ProvenmlError(f"hidden widths must be >= 1, got {list(hidden)}")
    widths = [in_features, *hidden]
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], out_features))
    return nn.Sequential(*layers)


def classification_loss(model: nn.Module, batch: Batch) -> Tensor:
    """Per-example cross-entropy of ``model(x)`` against ``y`` for a batch ``(x, y)``."""
    x, y = batch[0], batch[1]  # type: ignore[index]
    return F.cross_entropy(model(x), y, reduction="none")
