"""Batched helpers for the batches a selector handles: a tensor, a tuple of tensors or a dict.

Every tensor in a batch shares its leading (example) dimension. The helpers index and
concatenate all of them at once, so a selector never loops over examples in Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from provenml.errors import ProvenmlError

Batch = Tensor | Sequence[Tensor] | Mapping[str, Tensor]


def _tensors(batch: Any) -> list[Tensor]:
    if isinstance(batch, Tensor):
        return [batch]
    if isinstance(batch, Mapping):
        values = list(batch.values())
    elif isinstance(batch, Sequence) and not isinstance(batch, str):
        values = list(batch)
    else:
        raise ProvenmlError(
            f"a batch must be a tensor, a tuple/list of tensors or a dict of tensors, "
            f"got {type(batch).__name__}"
        )
    for value in values:
        if not isinstance(value, Tensor):
            raise ProvenmlError(
                f"every item of a batch must be a tensor, got {type(value).__name__}"
            )
    if not values:
        raise ProvenmlError("a batch must hold at least one tensor")
    return values


def batch_length(batch: Batch) -> int:
    """Number of examples in ``batch`` (the shared leading dimension of its tensors)."""
    tensors = _tensors(batch)
    sizes = {t.shape[0] if t.dim() else -1 for t in tensors}
    if len(sizes) != 1 or -1 in sizes:
        raise ProvenmlError(
            f"the tensors of a batch must share their leading dimension, got sizes {sorted(sizes)}"
        )
    return int(sizes.pop())


def take(batch: Batch, positions: Tensor) -> Batch:
    """The examples of ``batch`` at ``positions`` (one gather per tensor)."""
    if isinstance(batch, Tensor):
        return batch[positions.to(batch.device)]
    if isinstance(batch, Mapping):
        return {k: v[positions.to(v.device)] for k, v in batch.items()}
    return (
        type(batch)(t[positions.to(t.device)] for t in batch)
        if isinstance(batch, tuple)
        else [t[positions.to(t.device)] for t in batch]
    )


def concat(batches: Sequence[Batch]) -> Batch:
    """Concatenate batches of the same structure along the example dimension."""
    first = batches[0]
    if isinstance(first, Tensor):
        return torch.cat(list(batches))  # type: ignore[arg-type]
    if isinstance(first, Mapping):
        return {k: torch.cat([b[k] for b in batches]) for k in first}  # type: ignore[index]
    columns = [torch.cat([b[i] for b in batches]) for i in range(len(first))]  # type: ignore[index]
    return tuple(columns) if isinstance(first, tuple) else columns


def to_device(batch: Batch, device: torch.device) -> Batch:
    """Move every tensor of ``batch`` to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: v.to(device) for k, v in batch.items()}
    moved = [t.to(device) for t in batch]
    return tuple(moved) if isinstance(batch, tuple) else moved
