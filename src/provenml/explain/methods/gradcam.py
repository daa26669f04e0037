"""Grad-CAM for graphs (Pope et al., CVPR 2019)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from provenml.explain.base import ExplainerMethod, InstanceBatch, message_passing_layers


class GradCAM(ExplainerMethod):
    """Node heat map ``L_c[n] = ReLU(sum_k alpha_k^c F_k[n])`` with ``alpha_k^c = 1/N sum_n
    d y_c / d F_k[n]`` (Pope et al. 2019, eqs. 3-4), ``F`` the output of the model's last
    message-passing layer; the mean runs over each instance's own nodes. An edge scores the mean
    of its two endpoints' heat.
    """

    name = "gradcam"

    def attribute(self, model: torch.nn.Module, batch: InstanceBatch) -> tuple[Tensor, Tensor]:
        layer = message_passing_layers(model)[-1]
        captured: list[Tensor] = []
        handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            score = batch.target_logit(model).sum()
        finally:
            handle.remove()
        (grads,) = torch.autograd.grad(score, captured[-1])
        # the instance nodes only (context nodes come after them and are never explained)
        features, grads = captured[-1][: batch.num_nodes], grads[: batch.num_nodes]
        alpha = scatter(grads, batch.batch, dim=0, dim_size=batch.num_instances, reduce="mean")
        heat = torch.relu((alpha[batch.batch] * features).sum(-1)).detach()
        src, dst = batch.edge_index
        return (heat[src] + heat[dst]) / 2, heat
