"""Training the reference model on held-out data, and caching its losses per dataset index."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from provenml.core import ComputeLedger
from provenml.core.context import progress as with_progress
from provenml.errors import ProvenmlError
from provenml.selection.batches import Batch
from provenml.selection.policies import (
    LossFn,
    adam,
    check_per_example,
    positive_float,
    positive_int,
    train_step,
)


def _batches(data: Dataset, order: Tensor, batch_size: int) -> list[Batch]:
    chunks = list(order.split(batch_size))
    if isinstance(data, TensorDataset):
        return [tuple(t[c.to(t.device)] for t in data.tensors) for c in chunks]
    return list(DataLoader(data, batch_sampler=[c.tolist() for c in chunks]))


def _epochs_of_batches(
    data: Dataset, n: int, batch_size: int, generator: torch.Generator
) -> Iterator[Batch]:
    """Full batches of ``data``, a fresh random order each epoch (the last partial batch of an
    epoch dropped), for as long as they are drawn; an epoch's order is drawn when it starts."""
    while True:
        order = torch.randperm(n, generator=generator)[: n - n % batch_size]
        yield from _batches(data, order, batch_size)


def _length(data: object, name: str) -> int:
    if not isinstance(data, Dataset) or not hasattr(data, "__len__"):
        raise ProvenmlError(
            f"{name} must be a map-style Dataset with a length (e.g. a TensorDataset), got "
            f"{type(data).__name__}"
        )
    return len(data)


def train_reference(
    model: nn.Module,
    holdout: Dataset,
    loss_fn: LossFn,
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    ledger: ComputeLedger | None = None,
    seed: int = 0,
    progress: bool = False,
) -> nn.Module:
    """Train ``model`` on clean held-out data for ``steps`` Adam steps; return it in eval mode.

    Train the reference on data **disjoint from and cleaner than** the training pool: a
    reference trained on the noisy pool learns the noise and stops telling noisy labels apart.
    Its FLOPs (forward + backward) go to ``ledger["training:reference"]``. ``steps`` and
    ``batch_size`` must be positive integers and ``lr`` positive (a reference trained for no
    step would score every example by an untrained model). ``progress=True`` shows a progress
    bar over the steps.
    """
    steps = positive_int(steps, "steps")
    batch_size = positive_int(batch_size, "batch_size")
    lr = positive_float(lr, "lr")
    if (
        isinstance(weight_decay, bool)
        or not isinstance(weight_decay, int | float)
        or not (weight_decay >= 0)
    ):
        raise ProvenmlError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
    n = _length(holdout, "holdout")
    if n < batch_size:
        raise ProvenmlError(f"holdout has {n} examples, fewer than batch_size={batch_size}")
    generator = torch.Generator().manual_seed(seed)
    optimizer = adam(model, lr, weight_decay)
    batches = _epochs_of_batches(holdout, n, batch_size, generator)
    for _ in with_progress(range(steps), f"training reference {type(model).__name__}", progress):
        train_step(
            model, optimizer, loss_fn, next(batches), ledger=ledger, category="training:reference"
        )
    return model.eval()


def precompute_losses(
    model: nn.Module,
    data: Dataset,
    loss_fn: LossFn,
    *,
    batch_size: int = 4096,
    ledger: ComputeLedger | None = None,
) -> Tensor:
    """Per-example losses of a frozen ``model`` on every example of ``data``, in index order.

    The returned ``Tensor[len(data)]`` is aligned with dataset indices: pass it as the
    ``reference`` of a policy and feed the selector the same ``Dataset`` (it then looks losses
    up by index instead of running the reference every step). FLOPs go to
    ``ledger["scoring:reference"]``.
    """
    batch_size = positive_int(batch_size, "batch_size")
    n = _length(data, "data")
    if n == 0:
        raise ProvenmlError("data is empty: there is no example to compute a loss for")
    chunks = list(torch.arange(n).split(batch_size))
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for chunk, batch in zip(
                chunks, _batches(data, torch.arange(n), batch_size), strict=True
            ):
                size = len(chunk)
                if ledger is None:
                    losses = loss_fn(model, batch)
                else:
                    losses = ledger.charge(
                        "scoring:reference", loss_fn, model, batch, key=("fwd", size)
                    )
                out.append(check_per_example(losses, size).float())
    finally:
        model.train(was_training)
    return torch.cat(out)
