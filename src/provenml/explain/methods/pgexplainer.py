"""PGExplainer (Luo et al., NeurIPS 2020): a shared MLP that predicts edge masks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from provenml.errors import ProvenmlError
from provenml.explain.base import (
    ExplainerMethod,
    IndexLike,
    InstanceBatch,
    binary_entropy,
    check_float,
    check_int,
    message_passing_layers,
    symmetrize,
)


class PGExplainer(ExplainerMethod):
    """A parameterised explainer: ``omega_ij = MLP([z_i, z_j (, z_v)])`` from the model's last
    message-passing embeddings ``z`` (``z_v`` the explained node's, node tasks only).

    Training minimises, over the training instances (Luo et al. eqs. 5-9),
    ``-log P(Y = c | A ⊙ m) + edge_size * sum(m) + edge_ent * H(m)`` with the concrete
    relaxation ``m = sigmoid((log eps - log(1 - eps) + omega) / tau)``, ``eps ~ U(bias, 1 -
    bias)``, and the temperature annealed as ``tau_t = tau_0 (tau_T / tau_0)^(t / T)``.
    Explaining is one forward of the MLP: ``m = sigmoid(omega)``.

    Unlike PyG's version (one instance per optimiser step), each step here takes a mini-batch
    of ``batch_size`` instances collated into one graph. If :meth:`fit` was not called,
    ``explain`` trains on the instances it is asked to explain (the paper's transductive
    setting). Defaults follow PyG (30 epochs, lr 0.003, 0.05 / 1.0, tau 5 -> 2).
    """

    name = "pgexplainer"

    def __init__(
        self,
        epochs: int = 30,
        lr: float = 0.003,
        batch_size: int = 16,
        edge_size: float = 0.05,
        edge_ent: float = 1.0,
        temperature: tuple[float, float] = (5.0, 2.0),
        bias: float = 0.01,
        hidden: int = 64,
        seed: int = 0,
    ) -> None:
        self.epochs = check_int("epochs", epochs, 1)
        self.lr = check_float("lr", lr, 0.0, low_open=True)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.edge_size = check_float("edge_size", edge_size, 0.0)
        self.edge_ent = check_float("edge_ent", edge_ent, 0.0)
        if not isinstance(temperature, tuple | list) or len(temperature) != 2:
            raise ProvenmlError(f"temperature must be a pair (start, end), got {temperature!r}")
        self.temperature = (
            check_float("temperature[0]", temperature[0], 0.0, low_open=True),
            check_float("temperature[1]", temperature[1], 0.0, low_open=True),
        )
        self.bias = check_float("bias", bias, 0.0, 0.5, high_open=True)
        self.hidden = check_int("hidden", hidden, 1)
        self.seed = check_int("seed", seed, 0)
        self.mlp: nn.Module | None = None

    # -- embeddings and edge logits ----------------------------------------------------------
    def _embeddings(self, model: torch.nn.Module, batch: InstanceBatch) -> Tensor:
        layer = message_passing_layers(model)[-1]
        captured: list[Tensor] = []
        handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            with torch.no_grad():
                batch.logits(model)
        finally:
            handle.remove()
        return captured[-1][: batch.num_nodes].detach()  # context nodes come after them

    def _edge_logits(self, batch: InstanceBatch, z: Tensor) -> Tensor:
        assert self.mlp is not None
        src, dst = batch.edge_index
        parts = [z[src], z[dst]]
        if batch.center is not None:
            parts.append(z[batch.center][batch.edge_batch])
        return self.mlp(torch.cat(parts, dim=-1)).view(-1)

    def _build_mlp(self, in_dim: int) -> None:
        torch.manual_seed(self.seed)
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, self.hidden), nn.ReLU(), nn.Linear(self.hidden, 1)
        )

    # -- training ----------------------------------------------------------------------------
    def fit(
        self,
        model: torch.nn.Module,
        data: Data | Sequence[Data],
        index: IndexLike | None = None,
    ) -> PGExplainer:
        """Train the mask predictor on the given nodes (``index``) or graphs."""
        self._fit_batch(model, self.prepare(model, data, index))
        return self

    def _fit_batch(self, model: torch.nn.Module, full: InstanceBatch) -> None:
        gen = torch.Generator().manual_seed(self.seed)
        chunks = _chunks(full, self.batch_size)
        embeddings = [self._embeddings(model, c) for c in chunks]
        width = embeddings[0].size(1) * (2 if full.center is None else 3)
        self._build_mlp(width)
        assert self.mlp is not None
        opt = torch.optim.Adam(self.mlp.parameters(), lr=self.lr)
        for param in model.parameters():
            param.requires_grad_(False)
        try:
            for epoch in range(self.epochs):
                tau = self.temperature[0] * (self.temperature[1] / self.temperature[0]) ** (
                    epoch / self.epochs
                )
                for k in torch.randperm(len(chunks), generator=gen).tolist():
                    batch, z = chunks[k], embeddings[k]
                    opt.zero_grad()
                    omega = self._edge_logits(batch, z)
                    eps = torch.empty_like(omega).uniform_(self.bias, 1 - self.bias, generator=gen)
                    mask = ((eps.log() - (1 - eps).log() + omega) / tau).sigmoid()
                    mask = symmetrize(mask, batch.reverse)
                    self._loss(model, batch, mask).backward()
                    opt.step()
        finally:
            for param in model.parameters():
                param.requires_grad_(True)

    def _loss(self, model: torch.nn.Module, batch: InstanceBatch, mask: Tensor) -> Tensor:
        log_prob = batch.target_log_prob(model, mask)
        size = scatter(mask, batch.edge_batch, dim_size=batch.num_instances, reduce="sum")
        ent = binary_entropy(mask)
        ent = scatter(ent, batch.edge_batch, dim_size=batch.num_instances, reduce="mean")
        return (-log_prob + self.edge_size * size + self.edge_ent * ent).mean()

    # -- explaining --------------------------------------------------------------------------
    def attribute(self, model: torch.nn.Module, batch: InstanceBatch) -> tuple[Tensor, None]:
        if self.mlp is None:
            self._fit_batch(model, batch)
        z = self._embeddings(model, batch)
        width = z.size(1) * (2 if batch.center is None else 3)
        assert self.mlp is not None
        first = self.mlp[0]
        if isinstance(first, nn.Linear) and first.in_features != width:
            raise ProvenmlError("PGExplainer was fitted on another model or task; fit it again")
        with torch.no_grad():
            return self._edge_logits(batch, z).sigmoid(), None


def _chunks(batch: InstanceBatch, size: int) -> list[InstanceBatch]:
    """Split an instance batch into mini-batches of ``size`` instances (re-collated graphs)."""
    parts = batch.split(torch.zeros(batch.num_edges), None, "", 0.0)
    return [
        InstanceBatch.from_explanations(parts[i : i + size]) for i in range(0, len(parts), size)
    ]
