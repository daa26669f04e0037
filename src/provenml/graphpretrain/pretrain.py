"""``pretrain(encoder, graphs, ...)``: topology-only contrastive pre-training on any graphs.

Topology Only Pre-Training (Davies et al., arXiv 2311.03976, Sec. 3): strip node and edge
features, pre-train a GNN contrastively (AD-GCL in the paper) on graphs from many domains, then
fine-tune it. The graphs are packed once (:class:`~provenml.graphpretrain.packed.PackedGraphs`,
topology only); every step draws a mini-batch with one ``select`` and hands it to the
objective, which augments the whole batch at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from provenml.core.context import progress as with_progress
from provenml.errors import ProvenmlError
from provenml.graphpretrain.model import adam, encoder_config
from provenml.graphpretrain.objectives import OBJECTIVES, PretrainObjective
from provenml.graphpretrain.packed import PackedGraphs
from provenml.nn import GINEncoder

if TYPE_CHECKING:
    from torch_geometric.data import Data

__all__ = ["PretrainReport", "pretrain", "resolve_objective"]


@dataclass
class PretrainReport:
    """What a pre-training run measured: the loss per step, wall time and throughput."""

    objective: str
    steps: int
    batch_size: int
    losses: list[float] = field(default_factory=list)
    drop_ratios: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def graphs_per_second(self) -> float:
        return self.steps * self.batch_size / self.seconds if self.seconds > 0 else float("nan")


def resolve_objective(objective: str | PretrainObjective) -> PretrainObjective:
    """An objective instance from a name (``"adgcl"``, ``"graphcl"``) or an instance."""
    if isinstance(objective, PretrainObjective):
        return objective
    if not isinstance(objective, str) or objective.lower() not in OBJECTIVES:
        raise ProvenmlError(
            f"unknown pre-training objective {objective!r}; choose one of {', '.join(OBJECTIVES)}"
        )
    return OBJECTIVES[objective.lower()]()


def pretrain(
    encoder: GINEncoder,
    graphs: Sequence[Data] | PackedGraphs,
    *,
    objective: str | PretrainObjective = "adgcl",
    steps: int = 500,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    callback: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
) -> PretrainReport:
    """Pre-train ``encoder`` in place on the topology of ``graphs``; return a report.

    ``graphs`` is a list of PyG ``Data`` (only ``edge_index`` and ``num_nodes`` are read: node
    and edge features never reach the encoder, which gets a constant input) or a packed set.
    ``encoder`` must take one input channel (``GINEncoder(in_dim=1, ...)``). Mini-batches
    follow a seeded permutation per epoch; the objective's randomness comes from the same
    seeded generator, so the same seed gives the same weights. ``callback(step, stats)`` is
    called after every step; ``progress=True`` shows a progress bar over the steps.
    """
    config = encoder_config(encoder)
    if config["in_dim"] != 1:
        raise ProvenmlError(
            f"pretrain needs a topology-only encoder with in_dim=1 (ToP feeds a constant), got "
            f"in_dim={config['in_dim']}"
        )
    if steps < 1 or batch_size < 2:
        raise ProvenmlError(f"need steps >= 1 and batch_size >= 2, got {steps}, {batch_size}")
    device = torch.device(device)
    packed = PackedGraphs.from_data_list(graphs).topology().to(device)
    if packed.num_graphs < 2:
        raise ProvenmlError("pretrain needs at least two graphs (a contrastive batch)")
    batch_size = min(batch_size, packed.num_graphs)
    method = resolve_objective(objective)
    torch.manual_seed(seed)  # the objective's own modules (projection, view learner)
    encoder.to(device).train()
    extra = method.setup(encoder, device, lr)
    optimizer = adam([*encoder.parameters(), *extra], lr, device)
    generator = torch.Generator().manual_seed(seed)
    report = PretrainReport(method.name, steps, batch_size)
    order = torch.randperm(packed.num_graphs, generator=generator)
    cursor = 0
    start = time.perf_counter()
    for step in with_progress(range(steps), f"pre-training ({method.name})", progress):
        if cursor + batch_size > order.numel():
            order, cursor = torch.randperm(packed.num_graphs, generator=generator), 0
        batch = packed.select(order[cursor : cursor + batch_size].to(device))
        cursor += batch_size
        stats = method.step(encoder, batch, optimizer, generator)
        report.losses.append(stats["loss"])
        if "drop_ratio" in stats:
            report.drop_ratios.append(stats["drop_ratio"])
        if callback is not None:
            callback(step, stats)
    report.seconds = time.perf_counter() - start
    encoder.eval()
    return report
