"""The per-example classification loss the selection policies score with."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from provenml.selection.batches import Batch


def classification_loss(model: nn.Module, batch: Batch) -> Tensor:
    """Per-example cross-entropy of ``model(x)`` against ``y`` for a batch ``(x, y)``."""
    x, y = batch[0], batch[1]  # type: ignore[index]
    return F.cross_entropy(model(x), y, reduction="none")
