"""``OnlineBatchSelector``: draw a super-batch of B/rho examples, score it, keep B.

Use it in your own training loop::

    selector = OnlineBatchSelector(model, loss_fn, Learnability(actor, reference), batch_size=64)
    for batch in selector.batches(train_dataset, epochs=3):
        loss = loss_fn(model, batch).mean()
        optimizer.zero_grad(); loss.backward(); optimizer.step()
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from provenml.core import ComputeLedger
from provenml.errors import ProvenmlError
from provenml.selection.batches import Batch, batch_length, concat, take
from provenml.selection.policies import LossFn, ScoringPolicy, positive_int


@dataclass
class Selection:
    """One selected batch: the examples, their positions in the super-batch, their dataset
    indices (None when the source has none) and the scores of the whole super-batch."""

    batch: Batch
    positions: Tensor
    indices: Tensor | None
    scores: Tensor | None


class OnlineBatchSelector:
    """Online batch selection (Evans et al. 2023, Alg. 1; Mindermann et al. 2022, Alg. 1).

    Each step takes a super-batch of ``round(batch_size / rho)`` examples, scores all of them
    with ``policy`` (one batched forward per scorer) and keeps ``batch_size`` of them.

    Args:
        learner: the model being trained (only scored with by learner-based policies).
        loss_fn: ``loss_fn(model, batch) -> Tensor[N]``, one loss per example.
        policy: a :class:`~provenml.selection.ScoringPolicy` (``Uniform``, ``Learnability``...).
        batch_size: B, the examples kept per step.
        rho: the kept fraction, in (0, 1]; ``rho = 1`` keeps the whole super-batch.
        ledger: a :class:`provenml.core.ComputeLedger` that scoring and actor FLOPs go to.
        seed: seeds the selector's own generator (data order and sampling).
    """

    def __init__(
        self,
        learner: nn.Module,
        loss_fn: LossFn,
        policy: ScoringPolicy,
        batch_size: int,
        rho: float = 0.5,
        *,
        ledger: ComputeLedger | None = None,
        seed: int = 0,
    ) -> None:
        if isinstance(rho, bool) or not isinstance(rho, int | float) or not 0 < rho <= 1:
            raise ProvenmlError(f"rho must be a number in (0, 1], got {rho!r}")
        self.batch_size = positive_int(batch_size, "batch_size")
        if not callable(loss_fn):
            raise ProvenmlError("loss_fn must be callable as loss_fn(model, batch) -> Tensor[N]")
        if not isinstance(policy, ScoringPolicy):
            raise ProvenmlError(f"policy must be a ScoringPolicy, got {type(policy).__name__}")
        self.learner = learner
        self.loss_fn = loss_fn
        self.policy = policy
        self.rho = float(rho)
        self.ledger = ledger
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def super_batch_size(self) -> int:
        """Examples drawn per step: ``round(B / rho)``."""
        return max(self.batch_size, round(self.batch_size / self.rho))

    # -- one step ---------------------------------------------------------------------------
    def select(self, batch: Batch, indices: Tensor | None = None) -> Selection:
        """Score a super-batch and return the ``batch_size`` selected examples."""
        n = batch_length(batch)
        if n < self.batch_size:
            raise ProvenmlError(
                f"super-batch has {n} examples, fewer than batch_size={self.batch_size}"
            )
        if indices is not None and indices.shape != (n,):
            raise ProvenmlError(f"indices must have shape [{n}], got {tuple(indices.shape)}")
        scores = self.policy.score(
            batch,
            indices=indices,
            learner=self.learner,
            loss_fn=self.loss_fn,
            ledger=self.ledger,
        )
        if scores is not None and scores.shape != (n,):
            raise ProvenmlError(f"policy returned scores of shape {tuple(scores.shape)}, not [{n}]")
        positions = self.policy.choose(scores, n, self.batch_size, self.generator)
        chosen = take(batch, positions)
        chosen_indices = None if indices is None else indices[positions.to(indices.device)]
        self.policy.observe(
            chosen,
            indices=chosen_indices,
            loss_fn=self.loss_fn,
            ledger=self.ledger,
            positions=positions,
        )
        return Selection(chosen, positions, chosen_indices, scores)

    # -- streams ----------------------------------------------------------------------------
    def selections(
        self,
        source: Dataset | Iterable[Batch],
        epochs: int | None = 1,
        *,
        max_steps: int | None = None,
    ) -> Iterator[Selection]:
        """Selections from a map-style ``Dataset`` (shuffled, with dataset indices) or from any
        iterable of batches (re-chunked into super-batches; no indices). An incomplete last
        super-batch is dropped.

        ``epochs`` passes over ``source`` (``None``: as many as ``max_steps`` needs); the stream
        stops after ``max_steps`` selections when that is given, whichever comes first.
        """
        epochs, max_steps = _check_budget(epochs, max_steps)
        if max_steps == 0:
            return
        for step, (super_batch, indices) in enumerate(self.super_batches(source, epochs), start=1):
            yield self.select(super_batch, indices)
            if max_steps is not None and step >= max_steps:
                return

    def batches(
        self,
        source: Dataset | Iterable[Batch],
        epochs: int | None = 1,
        *,
        max_steps: int | None = None,
    ) -> Iterator[Batch]:
        """The selected batches only (see :meth:`selections`): ``selector.batches(data,
        epochs=None, max_steps=2000)`` yields exactly 2000 batches (a step budget)."""
        for selection in self.selections(source, epochs, max_steps=max_steps):
            yield selection.batch

    def super_batches(
        self, source: Dataset | Iterable[Batch], epochs: int | None = 1
    ) -> Iterator[tuple[Batch, Tensor | None]]:
        """Super-batches of ``super_batch_size`` examples, with dataset indices when known
        (``epochs=None``: without end)."""
        epochs, _ = _check_budget(epochs, 1)
        passes = itertools.count() if epochs is None else range(epochs)
        size = self.super_batch_size
        if isinstance(source, Dataset) and hasattr(source, "__len__"):
            length = len(source)  # type: ignore[arg-type]
            if length < size:
                raise ProvenmlError(
                    f"the dataset has {length} examples, fewer than one super-batch of {size} "
                    f"(batch_size / rho)"
                )
            for _ in passes:
                order = torch.randperm(length, generator=self.generator)
                chunks = list(order[: length - length % size].split(size))
                if isinstance(source, TensorDataset):  # fast path: one gather per tensor
                    for chunk in chunks:
                        yield tuple(t[chunk.to(t.device)] for t in source.tensors), chunk
                else:
                    loader = DataLoader(source, batch_sampler=[c.tolist() for c in chunks])
                    for chunk, batch in zip(chunks, loader, strict=True):
                        yield batch, chunk
            return
        if isinstance(source, Dataset):
            raise ProvenmlError("an iterable-style Dataset needs to be wrapped in a DataLoader")
        for _ in passes:
            pending: list[Batch] = []
            held = 0
            produced = False
            for batch in source:
                pending.append(batch)
                held += batch_length(batch)
                if held < size:
                    continue
                merged = concat(pending) if len(pending) > 1 else pending[0]
                start = 0
                while held - start >= size:
                    yield take(merged, torch.arange(start, start + size)), None
                    produced = True
                    start += size
                pending = [take(merged, torch.arange(start, held))] if held > start else []
                held -= start
            if not produced:  # an empty (or one-shot, already spent) source: stop, never spin
                return


def _check_budget(epochs: object, max_steps: object) -> tuple[int | None, int | None]:
    """Validated ``(epochs, max_steps)``: ``epochs`` >= 1 or None, ``max_steps`` >= 0 or None,
    not both None (an endless stream needs a step budget)."""
    checked_epochs = None if epochs is None else positive_int(epochs, "epochs")
    checked_steps = None if max_steps is None else positive_int(max_steps, "max_steps", minimum=0)
    if checked_epochs is None and checked_steps is None:
        raise ProvenmlError("epochs=None streams without end: give max_steps as well")
    return checked_epochs, checked_steps
