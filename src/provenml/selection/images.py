"""Images for learnability selection with a CNN: scikit-learn's digits, upsampled and shifted.

``load_digits`` ships 1797 8x8 handwritten digits inside scikit-learn (no download). They are
split *by original image* into a training pool, a clean holdout (for the reference) and a clean
test set, upsampled to ``size x size`` (bilinear), and every pool image is repeated ``copies``
times with a random shift of up to ``shift`` pixels (so the pool holds ``copies`` distinct views
of each training digit). Label noise is added afterwards, per pool image
(:func:`~provenml.selection.symmetric_label_noise`).

:func:`small_cnn` is the learner and, narrower, the scorers::

    from provenml.selection import small_cnn

    learner = small_cnn((16, 32), size=16)    # conv16-pool-conv32-pool-linear
    scorer = small_cnn((2, 4), size=16)       # about 1/35 of the learner's FLOPs
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from provenml.errors import ProvenmlError


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # shipped with scikit-learn: no download

    data = load_digits()
    return data.images.astype(np.float32) / 16.0, data.target.astype(np.int64)


@dataclass
class DigitSplits:
    """Upsampled digits ``[N, 1, size, size]`` in [0, 1]: pool (clean labels; noise is added by
    the caller), clean holdout and clean test, disjoint by original image."""

    x_pool: Tensor
    y_pool: Tensor
    x_holdout: Tensor
    y_holdout: Tensor
    x_test: Tensor
    y_test: Tensor


def shifted(images: Tensor, shift: int, generator: torch.Generator) -> Tensor:
    """Each image moved by its own random offset in ``[-shift, shift]`` pixels on both axes
    (zero padding), in one batched gather."""
    if shift == 0:
        return images.clone()
    n, _, h, w = images.shape
    padded = F.pad(images, (shift, shift, shift, shift))
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(n, 1, h, w + 2 * shift)
    cropped = torch.gather(padded, 2, rows)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(n, 1, h, w)
    return torch.gather(cropped, 3, cols)


def digit_splits(
    *,
    size: int = 16,
    holdout: int = 360,
    test: int = 360,
    copies: int = 4,
    shift: int = 2,
    data_seed: int = 0,
) -> DigitSplits:
    """scikit-learn's digits, split by original image (shuffled with ``data_seed``), upsampled
    to ``size``; the pool repeated ``copies`` times with random shifts, holdout and test
    unshifted."""
    images, labels = _digits()
    n = len(labels)
    if holdout < 1 or test < 1 or holdout + test >= n:
        raise ProvenmlError(
            f"holdout ({holdout}) and test ({test}) must be >= 1 and leave images for the pool "
            f"(the digits data set has {n})"
        )
    if size < 8 or copies < 1 or shift < 0:
        raise ProvenmlError(
            f"need size >= 8, copies >= 1 and shift >= 0; got {size}, {copies}, {shift}"
        )
    generator = torch.Generator().manual_seed(data_seed)
    order = torch.randperm(n, generator=generator)
    x = torch.from_numpy(images)[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    y = torch.from_numpy(labels)
    test_idx, holdout_idx, pool_idx = (
        order[:test],
        order[test : test + holdout],
        order[test + holdout :],
    )
    x_pool = shifted(x[pool_idx].repeat(copies, 1, 1, 1), shift, generator)
    return DigitSplits(
        x_pool=x_pool,
        y_pool=y[pool_idx].repeat(copies),
        x_holdout=x[holdout_idx],
        y_holdout=y[holdout_idx],
        x_test=x[test_idx],
        y_test=y[test_idx],
    )


def small_cnn(channels: Sequence[int], *, size: int = 16, classes: int = 10) -> nn.Sequential:
    """``conv3x3(c) - ReLU - maxpool2`` per entry of ``channels``, then a linear classifier
    (e.g. ``small_cnn((16, 32), size=16)``: 16x16 -> 8x8 -> 4x4 -> 10 logits)."""
    widths = list(channels)
    if not widths or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in widths):
        raise ProvenmlError(
            f"channels must be a non-empty list of positive integers, got {channels!r}"
        )
    if size % (2 ** len(widths)):
        raise ProvenmlError(f"size {size} is not divisible by 2**{len(widths)} (one pool per conv)")
    layers: list[nn.Module] = []
    previous = 1
    for width in widths:
        layers += [nn.Conv2d(previous, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        previous = width
    side = size // 2 ** len(widths)
    layers += [nn.Flatten(), nn.Linear(previous * side * side, classes)]
    return nn.Sequential(*layers)
