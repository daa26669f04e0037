"""Seeded N-way K-shot episodes, sampled a whole meta-batch at a time.

An episode draws ``n_way`` distinct classes and, from each, ``k_shot`` support and ``q_query``
query samples, all distinct. :class:`EpisodeSampler` draws ``B`` episodes with a handful of
tensor operations (a random key per class and per sample, then a sort), so the indices of a
meta-batch come out as ``[B, n_way * k_shot]`` and ``[B, n_way * q_query]`` tensors that index
straight into the user's data or features.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from provenml.errors import ProvenmlError


@dataclass(frozen=True)
class EpisodeBatch:
    """A meta-batch of ``B`` episodes as index tensors into the sampler's dataset.

    ``support`` ``[B, n_way * k_shot]`` and ``query`` ``[B, n_way * q_query]`` are sample
    indices, ordered class by class; ``support_labels`` / ``query_labels`` hold the episode
    labels ``0 .. n_way - 1``; ``classes`` ``[B, n_way]`` the dataset classes behind them.
    """

    support: Tensor
    query: Tensor
    support_labels: Tensor
    query_labels: Tensor
    classes: Tensor
    n_way: int
    k_shot: int
    q_query: int

    @property
    def batch_size(self) -> int:
        return int(self.support.shape[0])

    def to(self, device: torch.device | str) -> EpisodeBatch:
        move = {
            name: getattr(self, name).to(device)
            for name in ("support", "query", "support_labels", "query_labels", "classes")
        }
        return EpisodeBatch(**move, n_way=self.n_way, k_shot=self.k_shot, q_query=self.q_query)

    def gather(self, data: Tensor) -> tuple[Tensor, Tensor]:
        """``(support, query)`` rows of ``data`` ``[M, ...]``: ``[B, S, ...]``, ``[B, Q, ...]``."""
        return data[self.support.to(data.device)], data[self.query.to(data.device)]


def class_index_table(labels: Tensor, classes: Tensor) -> tuple[Tensor, Tensor]:
    """Each class's sample indices as a padded table ``[C, max_count]`` (``-1`` where absent)
    and the counts ``[C]``, for the sorted ``classes``; indices in increasing order per row."""
    labels = labels.cpu().long()
    classes = classes.cpu().long()
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order]
    keep = torch.isin(sorted_labels, classes)
    order, sorted_labels = order[keep], sorted_labels[keep]
    position = torch.searchsorted(classes, sorted_labels)
    counts = torch.bincount(position, minlength=classes.numel())
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(order.numel()) - starts[position]
    table = torch.full((classes.numel(), max(1, int(counts.max()) if counts.numel() else 1)), -1)
    table[position, rank] = order
    return table, counts


def random_picks(table: Tensor, rows: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """``k`` distinct random entries of each selected row of a padded index table.

    ``rows`` is any-shaped (``[...]``); returns ``[..., k]``. Every selected row must hold at
    least ``k`` entries.
    """
    keys = torch.rand(*rows.shape, table.shape[1], generator=generator)
    keys = keys.masked_fill(table[rows] < 0, 2.0)  # absent slots sort last
    picks = keys.argsort(dim=-1)[..., :k]
    return torch.gather(table[rows], -1, picks)


def random_draws(
    table: Tensor, counts: Tensor, rows: Tensor, k: int, generator: torch.Generator
) -> Tensor:
    """``k`` entries of each selected row drawn uniformly *with* replacement: ``[..., k]``."""
    slots = (torch.rand(*rows.shape, k, generator=generator) * counts[rows].unsqueeze(-1)).long()
    return torch.gather(table[rows], -1, slots)


class EpisodeSampler:
    """Draw seeded meta-batches of N-way K-shot Q-query episodes from integer ``labels``.

    ``classes`` restricts the episodes to those dataset classes (e.g. the source classes).
    A class with fewer than ``k_shot + q_query`` samples is an error, or is left out with
    ``small_classes="skip"``. The same ``seed`` gives the same episodes, on any device.

    ::

        sampler = EpisodeSampler(labels, n_way=5, k_shot=1, q_query=15, seed=0)
        batch = sampler.sample(8)              # 8 episodes as one batch of index tensors
        support_x, query_x = batch.gather(x)   # [8, 5, ...], [8, 75, ...]
    """

    def __init__(
        self,
        labels: Tensor | Sequence[int],
        n_way: int,
        k_shot: int,
        q_query: int,
        *,
        classes: Tensor | Sequence[int] | None = None,
        seed: int = 0,
        small_classes: Literal["error", "skip"] = "error",
    ) -> None:
        labels = torch.as_tensor(labels)
        if labels.dim() != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ProvenmlError(
                f"labels must be a 1-D integer tensor, got {labels.dtype} {list(labels.shape)}"
            )
        for name, value, minimum in (("n_way", n_way, 2), ("k_shot", k_shot, 1)):
            if int(value) != value or value < minimum:
                raise ProvenmlError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if int(q_query) != q_query or q_query < 0:
            raise ProvenmlError(f"q_query must be an integer >= 0, got {q_query!r}")
        if small_classes not in ("error", "skip"):
            raise ProvenmlError(f"small_classes must be 'error' or 'skip', got {small_classes!r}")
        self.labels = labels.cpu().long()
        self.n_way, self.k_shot, self.q_query = int(n_way), int(k_shot), int(q_query)
        present = torch.unique(self.labels)
        wanted = present if classes is None else torch.unique(torch.as_tensor(classes).long())
        missing = wanted[~torch.isin(wanted, present)]
        if missing.numel():
            raise ProvenmlError(f"classes {missing.tolist()[:5]} have no samples in labels")
        counts = (self.labels.unsqueeze(0) == wanted.unsqueeze(1)).sum(1)
        per_class = self.k_shot + self.q_query
        small = wanted[counts < per_class]
        if small.numel() and small_classes == "error":
            c = int(small[0])
            have = int(counts[wanted == c])
            raise ProvenmlError(
                f"k_shot={self.k_shot} + q_query={self.q_query} needs {per_class} samples per "
                f"class, but class {c} has only {have}"
                + (
                    f" (and {small.numel() - 1} more classes too small)"
                    if small.numel() > 1
                    else ""
                )
                + "; lower k_shot/q_query or pass small_classes='skip'"
            )
        self.classes = wanted[counts >= per_class]
        if self.n_way > self.classes.numel():
            raise ProvenmlError(
                f"n_way={self.n_way} exceeds the {self.classes.numel()} classes with at least "
                f"{per_class} samples"
            )
        self.table, self.counts = class_index_table(self.labels, self.classes)
        self.generator = torch.Generator().manual_seed(int(seed))

    @property
    def num_classes(self) -> int:
        return int(self.classes.numel())

    def sample(self, batch_size: int) -> EpisodeBatch:
        """``batch_size`` episodes, each with distinct classes and distinct samples."""
        if batch_size < 1:
            raise ProvenmlError(f"batch_size must be >= 1, got {batch_size}")
        g, n, k, q = self.generator, self.n_way, self.k_shot, self.q_query
        class_keys = torch.rand(batch_size, self.num_classes, generator=g)
        chosen = class_keys.argsort(dim=1)[:, :n]  # [B, N] positions in self.classes
        indices = random_picks(self.table, chosen, k + q, g)  # [B, N, K + Q]
        episode_labels = torch.arange(n).view(1, n, 1)
        return EpisodeBatch(
            support=indices[:, :, :k].reshape(batch_size, n * k),
            query=indices[:, :, k:].reshape(batch_size, n * q),
            support_labels=episode_labels.expand(batch_size, n, k).reshape(batch_size, n * k),
            query_labels=episode_labels.expand(batch_size, n, q).reshape(batch_size, n * q),
            classes=self.classes[chosen],
            n_way=n,
            k_shot=k,
            q_query=q,
        )

    def batches(self, num_batches: int, batch_size: int) -> Iterator[EpisodeBatch]:
        """``num_batches`` successive meta-batches."""
        for _ in range(num_batches):
            yield self.sample(batch_size)
