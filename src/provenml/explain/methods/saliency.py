"""Saliency (gradient magnitude) on the edge mask, computed by Captum."""

from __future__ import annotations

import torch
from torch import Tensor

from provenml.explain.base import ExplainerMethod, InstanceBatch


class SaliencyExplainer(ExplainerMethod):
    """Edge importance ``|d y_c / d m_e|`` at the all-ones mask (Simonyan et al. 2014, eq. 2;
    as applied to GNN edges in Pope et al. 2019 and Yuan et al.'s survey, Sec. 3.1).

    Instances are disjoint in the batch, so the gradient of the *sum* of their target logits
    with respect to one edge only involves that edge's own instance: one backward pass
    explains the whole batch.
    """

    name = "saliency"

    def attribute(self, model: torch.nn.Module, batch: InstanceBatch) -> tuple[Tensor, None]:
        def forward(mask: Tensor) -> Tensor:  # [1, E] -> [1]
            return batch.target_logit(model, mask[0]).sum().view(1)

        from captum.attr import Saliency  # heavy: loads matplotlib

        ones = torch.ones(1, batch.num_edges, requires_grad=True)
        return Saliency(forward).attribute(ones, abs=True)[0], None
