"""Integrated Gradients on the edge mask, computed by Captum."""

from __future__ import annotations

import torch
from torch import Tensor

from provenml.explain.base import ExplainerMethod, InstanceBatch, check_int


class IntegratedGradients(ExplainerMethod):
    """Edge importance ``(m_e - 0) * int_0^1 d y_c(a m) / d m_e da`` from the empty graph to the
    full one (Sundararajan et al. 2017, eq. 1), Riemann-approximated by Captum with ``n_steps``.

    Captum hands the forward a ``[S, E]`` stack of interpolated masks; the batch graph is
    replicated ``S`` times so that all steps of all instances go through the model at once
    (``max_edges`` caps the replicated size; Captum then splits the steps into chunks).
    """

    name = "integrated_gradients"

    def __init__(self, n_steps: int = 32, max_edges: int = 2_000_000) -> None:
        self.n_steps = check_int("n_steps", n_steps, 1)
        self.max_edges = check_int("max_edges", max_edges, 1)

    def attribute(self, model: torch.nn.Module, batch: InstanceBatch) -> tuple[Tensor, None]:
        cache: dict[int, InstanceBatch] = {}

        def forward(masks: Tensor) -> Tensor:  # [S, E] -> [S]
            steps = masks.size(0)
            if steps not in cache:
                cache[steps] = batch.replicate(steps, share_context=True)
            logits = cache[steps].target_logit(model, masks.reshape(-1))
            return logits.view(steps, batch.num_instances).sum(1)

        from captum.attr import IntegratedGradients as CaptumIG  # heavy: loads matplotlib

        chunk = max(1, min(self.n_steps, self.max_edges // max(batch.num_edges, 1)))
        ones = torch.ones(1, batch.num_edges)
        attr = CaptumIG(forward).attribute(
            ones,
            baselines=torch.zeros_like(ones),
            n_steps=self.n_steps,
            internal_batch_size=chunk,
        )
        return attr[0], None
