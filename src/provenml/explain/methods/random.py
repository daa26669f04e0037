"""Random edge scores: the floor every explainer must beat."""

from __future__ import annotations

import torch
from torch import Tensor

from provenml.explain.base import ExplainerMethod, InstanceBatch, check_int


class RandomExplainer(ExplainerMethod):
    """Scores every edge ``U(0, 1)`` (seeded); symmetrised like every other method's mask."""

    name = "random"
    needs_grad = False

    def __init__(self, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(check_int("seed", seed, 0))

    def attribute(self, model: torch.nn.Module, batch: InstanceBatch) -> tuple[Tensor, None]:
        return torch.rand(batch.num_edges, generator=self.generator), None
