"""Sequences for learnability selection in language modelling: byte windows, some corrupted.

A pool of fixed-length byte windows is cut from a :class:`~provenml.data.text.ByteCorpus`; a
fraction of them is *corrupted* (the language-model analogue of a wrong label): its bytes are
shuffled within the window (same unigram counts, no structure) or replaced with uniformly random
bytes. A learner trained on the pool spends those updates on text that cannot be learnt; the
clean windows of held-out files train the reference that tells the two apart.

Each example is one window of ``W + 1`` bytes (``uint8``); :func:`sequence_loss` gives one loss
per window (mean next-byte cross-entropy over the positions the model predicts), which is what
the selection policies score with::

    import torch
    from provenml.data.text import stdlib_corpus
    from provenml.nn import ByteTransformer
    from provenml.selection import byte_windows, corrupt_sequences, sequence_loss

    generator = torch.Generator().manual_seed(0)
    windows = byte_windows(stdlib_corpus().train, 65, 20000, generator)   # [20000, 65] bytes
    noisy, is_noisy = corrupt_sequences(windows, 0.3, "shuffle", generator)
    losses = sequence_loss(ByteTransformer(context=64), (noisy,))   # Tensor[20000]
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from provenml.errors import ProvenmlError
from provenml.selection.batches import Batch

Corruption = Literal["shuffle", "random"]
CORRUPTIONS: tuple[str, ...] = ("shuffle", "random")


def byte_windows(
    stream: Tensor, length: int, count: int | None, generator: torch.Generator
) -> Tensor:
    """Non-overlapping windows of ``length`` bytes cut from ``stream`` (``uint8``), ``[N,
    length]``; with ``count``, a random ``count`` of them (in random order, from
    ``generator``), else all of them in stream order."""
    if length < 2:
        raise ProvenmlError(f"a window needs at least 2 bytes, got length={length}")
    available = stream.numel() // length
    if available == 0 or (count is not None and count > available):
        raise ProvenmlError(
            f"the byte stream of {stream.numel()} bytes holds {available} windows of {length} "
            f"bytes; {count} were asked for"
        )
    windows = stream[: available * length].view(available, length)
    if count is None:
        return windows.clone()
    return windows[torch.randperm(available, generator=generator)[:count]].clone()


def corrupt_sequences(
    windows: Tensor, fraction: float, corruption: Corruption, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Corrupt a random ``fraction`` of the ``windows`` (rows of ``[N, L]`` bytes).

    ``"shuffle"`` permutes the bytes within each chosen window (its byte counts unchanged, its
    order destroyed); ``"random"`` replaces them with uniform random bytes. Exactly
    ``round(fraction * N)`` windows are chosen. Returns ``(corrupted_windows, is_noisy)``.
    """
    if not 0 <= fraction <= 1:
        raise ProvenmlError(f"corruption fraction must be in [0, 1], got {fraction}")
    if corruption not in CORRUPTIONS:
        raise ProvenmlError(
            f"corruption must be one of {', '.join(CORRUPTIONS)}, got {corruption!r}"
        )
    n, length = windows.shape
    chosen = torch.randperm(n, generator=generator)[: round(fraction * n)]
    out = windows.clone()
    if corruption == "shuffle":
        # one independent permutation per chosen row: argsort of uniform noise, in one call
        order = torch.rand(chosen.numel(), length, generator=generator).argsort(dim=1)
        out[chosen] = torch.gather(windows[chosen], 1, order)
    else:
        out[chosen] = torch.randint(
            0, 256, (chosen.numel(), length), generator=generator, dtype=windows.dtype
        )
    is_noisy = torch.zeros(n, dtype=torch.bool)
    is_noisy[chosen] = True
    return out, is_noisy


def sequence_loss(model: nn.Module, batch: Batch) -> Tensor:
    """One loss per window: the mean next-byte cross-entropy (nats/byte) over the positions
    ``model`` predicts (``model(x)`` returns ``[B, W - offset, 256]`` logits for inputs
    ``x = window[:, :-1]``; targets are ``window[:, 1:]``, as in
    :mod:`provenml.nn.bytelm`)."""
    windows = batch if isinstance(batch, Tensor) else batch[0]  # type: ignore[index]
    windows = windows.long()
    x, y = windows[:, :-1], windows[:, 1:]
    logits = model(x)
    targets = y[:, y.shape[1] - logits.shape[1] :]
    return F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").mean(1)
