"""``finetune(encoder, task, ...)``: a fresh head on a (pre-trained) encoder, full fine-tuning,
the epoch chosen on the validation split only; and a linear probe of frozen embeddings.

ToP (Davies et al., arXiv 2311.03976, Sec. 3.3) fine-tunes the whole pre-trained model with a
new prediction head. Model selection here uses the validation graphs only (the paper's public
code picks the best epoch on the test set; this does not): the weights of the epoch with the
lowest validation error are kept, and the test set is evaluated once, with those weights.

Errors: root mean squared error on z-scored targets (regression), ``1 - ROC AUC``
(classification); lower is better for both.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from provenml.core.context import progress as with_progress
from provenml.errors import ProvenmlError
from provenml.graphpretrain.model import (
    FineTuneModel,
    adam,
    encode,
    encoder_config,
    with_feature_input,
)
from provenml.graphpretrain.packed import PackedGraphs
from provenml.graphpretrain.tasks import DownstreamTask, Kind, load_task
from provenml.nn import GINEncoder

__all__ = ["FinetuneResult", "ProbeResult", "auroc", "finetune", "linear_probe", "task_error"]


def auroc(scores: Tensor, labels: Tensor) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half)."""
    from scipy.stats import rankdata

    labels = labels.view(-1).bool().cpu().numpy()
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(scores.view(-1).detach().cpu().numpy())
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def task_error(kind: Kind, predictions: Tensor, targets: Tensor) -> float:
    """RMSE (regression) or ``1 - AUROC`` (classification)."""
    if kind == "classification":
        return 1.0 - auroc(predictions, targets)
    return float(torch.sqrt(F.mse_loss(predictions.view(-1), targets.view(-1).float())))


def _loss(kind: Kind, predictions: Tensor, targets: Tensor) -> Tensor:
    if kind == "classification":
        return F.binary_cross_entropy_with_logits(predictions.view(-1), targets.view(-1).float())
    return F.mse_loss(predictions.view(-1), targets.view(-1).float())


@torch.no_grad()
def predict(model: FineTuneModel, graphs: PackedGraphs, chunk: int = 512) -> Tensor:
    """The model's outputs on ``graphs`` (eval mode), in chunks of ``chunk`` graphs."""
    model.eval()
    outs = [
        model(
            graphs.select(torch.arange(i, min(i + chunk, graphs.num_graphs), device=graphs.device))
        )
        for i in range(0, graphs.num_graphs, chunk)
    ]
    return torch.cat(outs).view(-1)


@dataclass
class FinetuneResult:
    """A fine-tuned model and what it measured: validation error per epoch, the chosen epoch,
    its validation error and its test error (``nan`` without a test set)."""

    model: FineTuneModel
    best_epoch: int
    val_error: float
    test_error: float
    val_curve: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def epochs_run(self) -> int:
        return len(self.val_curve)


def _prepare_encoder(encoder: GINEncoder, task: DownstreamTask, features: bool) -> GINEncoder:
    config = encoder_config(encoder)
    if not features:
        if config["in_dim"] != 1:
            raise ProvenmlError(
                f"a topology-only fine-tune needs an encoder with in_dim=1, got {config['in_dim']}"
            )
        return copy.deepcopy(encoder)
    if task.feature_dim == 0:
        raise ProvenmlError(f"task {task.name!r} has no node features to fine-tune with")
    if config["in_dim"] == 1:
        return with_feature_input(encoder, task.feature_dim)
    if config["in_dim"] == 1 + task.feature_dim:
        return copy.deepcopy(encoder)
    raise ProvenmlError(
        f"encoder in_dim={config['in_dim']} fits neither topology only (1) nor the constant "
        f"channel plus {task.feature_dim} features ({1 + task.feature_dim})"
    )


def finetune(
    encoder: GINEncoder,
    task: DownstreamTask | str,
    *,
    epochs: int = 100,
    patience: int | None = None,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    features: bool = False,
    progress: bool = False,
) -> FinetuneResult:
    """Fine-tune a copy of ``encoder`` with a fresh head on ``task``; ``encoder`` is untouched.

    ``task`` is a :class:`~provenml.graphpretrain.tasks.DownstreamTask` (e.g. from your own
    graphs) or the name of a built-in task (split with ``seed``). ``features=True`` feeds the
    task's node features through a new input layer (:func:`with_feature_input`) next to the
    constant channel. The head is initialised from ``seed`` and the mini-batches follow a
    permutation drawn from ``seed``, so two encoders fine-tuned with one seed see the same
    batches in the same order. Training stops after ``epochs``, or ``patience`` epochs without
    a better validation error; the best validation epoch's weights are kept. ``progress=True``
    shows a progress bar over the epochs.
    """
    if isinstance(task, str):
        task = load_task(task, seed=seed, features=features)
    if not isinstance(task, DownstreamTask):
        raise ProvenmlError(f"task must be a DownstreamTask or a task name, got {type(task)}")
    if epochs < 1 or batch_size < 1:
        raise ProvenmlError(f"need epochs >= 1 and batch_size >= 1, got {epochs}, {batch_size}")
    device = torch.device(device)
    enc = _prepare_encoder(encoder, task, features)
    torch.manual_seed(seed)
    model = FineTuneModel(
        enc, 1, level=task.level, feature_dim=task.feature_dim if features else 0
    ).to(device)
    train, val = task.train.to(device), task.val.to(device)
    if not features:
        train, val = _without_features(train), _without_features(val)
    if train.y is None or val.y is None:
        raise ProvenmlError(f"task {task.name!r} has no targets")
    optimizer = adam(model.parameters(), lr, device)
    generator = torch.Generator().manual_seed(seed)
    best_error, best_epoch, best_state = float("inf"), -1, None
    curve: list[float] = []
    start = time.perf_counter()
    for epoch in with_progress(range(epochs), f"fine-tuning on {task.name}", progress):
        model.train()
        order = torch.randperm(train.num_graphs, generator=generator).to(device)
        for i in range(0, train.num_graphs, batch_size):
            batch = train.select(order[i : i + batch_size])
            if batch.num_graphs < 2 and train.num_graphs >= 2:
                continue  # batch norm needs two graphs' worth of nodes
            loss = _loss(task.kind, model(batch), batch.y)  # type: ignore[arg-type]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        error = task_error(task.kind, predict(model, val), val.y)
        curve.append(error)
        if error < best_error:
            best_error, best_epoch = error, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif patience is not None and epoch - best_epoch >= patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    test_error = float("nan")
    if task.test is not None:
        test = task.test.to(device)
        if not features:
            test = _without_features(test)
        test_error = task_error(task.kind, predict(model, test), test.y)  # type: ignore[arg-type]
    return FinetuneResult(
        model, best_epoch, best_error, test_error, curve, time.perf_counter() - start
    )


def _without_features(graphs: PackedGraphs) -> PackedGraphs:
    return (
        graphs
        if graphs.x is None
        else PackedGraphs(
            graphs.edge_index,
            graphs.node_ptr,
            graphs.edge_ptr,
            graphs.reverse,
            None,
            graphs.y,
            graphs.level,
        )
    )


# --------------------------------------------------------------------------------------------
# Linear probe
# --------------------------------------------------------------------------------------------


@dataclass
class ProbeResult:
    """A ridge probe on frozen embeddings: the chosen ridge penalty and the errors."""

    alpha: float
    val_error: float
    test_error: float


@torch.no_grad()
def embed(encoder: GINEncoder, graphs: PackedGraphs, level: str = "graph") -> Tensor:
    """Frozen embeddings (eval mode) of ``graphs``, topology only."""
    encoder.eval()
    return encode(encoder, graphs.topology(), level=level)  # type: ignore[arg-type]


def linear_probe(
    encoder: GINEncoder,
    task: DownstreamTask,
    alphas: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0),
) -> ProbeResult:
    """Ridge regression from frozen, standardised embeddings to the task's targets.

    The penalty is chosen on the validation split; the test error is that of the chosen
    penalty. Measures what the encoder's embeddings already hold, with no fine-tuning.
    """
    if task.test is None:
        raise ProvenmlError("linear_probe needs a task with a test split")
    device = next(encoder.parameters()).device
    feats = [
        embed(encoder, s.to(device), task.level).double().cpu()
        for s in (task.train, task.val, task.test)
    ]
    ys = [s.y.double().view(-1).cpu() for s in (task.train, task.val, task.test)]  # type: ignore[union-attr]
    # units (nearly) constant on the training graphs would blow up on a test graph where they
    # fire: their scale is floored at 1% of the median unit's, and standardised values are
    # clipped to +-10
    mean, std = feats[0].mean(0), feats[0].std(0)
    std = std.clamp_min(0.01 * float(std.median()) + 1e-12)
    xs = [
        torch.cat([((f - mean) / std).clamp(-10, 10), torch.ones(f.size(0), 1, dtype=f.dtype)], 1)
        for f in feats
    ]
    gram, rhs = xs[0].t() @ xs[0], xs[0].t() @ ys[0]
    eye = torch.eye(gram.size(0), dtype=gram.dtype)
    eye[-1, -1] = 0.0  # the intercept is not penalised
    best: ProbeResult | None = None
    for alpha in alphas:
        weights = torch.linalg.solve(gram + alpha * eye, rhs)
        val_error = task_error(task.kind, (xs[1] @ weights).float(), ys[1])
        if best is None or val_error < best.val_error:
            test_error = task_error(task.kind, (xs[2] @ weights).float(), ys[2])
            best = ProbeResult(alpha, val_error, test_error)
    assert best is not None
    return best
