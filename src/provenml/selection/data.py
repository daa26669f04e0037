"""MNIST-1D (Greydanus 2020) generated offline, split into pool / clean holdout / test, and
symmetric label noise."""

from __future__ import annotations

import functools
import importlib.metadata
import random
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from provenml.core import atomic_write_path, cache_dir
from provenml.errors import ProvenmlError


@functools.lru_cache(maxsize=4)
def _generate(num_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """All ``num_samples`` MNIST-1D examples from the package's generator (no download).

    Generation runs Python loops in ``mnist1d`` (about a minute for 60k examples), so the arrays
    are kept in the provenml cache (:func:`provenml.core.cache_dir`), keyed by size, seed and
    the ``mnist1d`` version.
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ProvenmlError(
            "the mnist1d package is needed: pip install 'provenml[selection]'"
        ) from None
    version = importlib.metadata.version("mnist1d")
    cached = cache_dir("mnist1d") / f"n{num_samples}_seed{seed}_v{version}.npz"
    if cached.exists():
        with np.load(cached) as stored:
            return stored["x"], stored["y"]
    args = get_dataset_args()
    args.num_samples = num_samples
    args.train_split = 1.0  # we split ourselves
    args.seed = seed
    # make_dataset only generates (get_dataset is the one that may download a pickle); it
    # reseeds numpy's and random's global generators, so save and restore them.
    state_np, state_py = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(state_np)
        random.setstate(state_py)
    x, y = data["x"].astype(np.float32), data["y"].astype(np.int64)
    # a file handle, since np.savez appends ".npz" to a path
    with atomic_write_path(cached) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, x=x, y=y)
    return x, y


@dataclass
class Splits:
    """Training pool (possibly noisy), clean holdout (for the reference) and clean test set."""

    x_pool: Tensor
    y_pool: Tensor
    y_pool_clean: Tensor
    is_noisy: Tensor
    x_holdout: Tensor
    y_holdout: Tensor
    x_test: Tensor
    y_test: Tensor


def symmetric_label_noise(
    labels: Tensor, fraction: float, num_classes: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Flip a random ``fraction`` of the labels to a uniformly drawn *different* class.

    Returns ``(noisy_labels, is_noisy)``; exactly ``round(fraction * N)`` labels change.
    """
    if not 0 <= fraction <= 1:
        raise ProvenmlError(f"noise fraction must be in [0, 1], got {fraction}")
    n = labels.shape[0]
    flipped = torch.randperm(n, generator=generator)[: round(fraction * n)]
    offsets = torch.randint(1, num_classes, (flipped.numel(),), generator=generator)
    noisy = labels.clone()
    noisy[flipped] = (labels[flipped] + offsets) % num_classes
    is_noisy = torch.zeros(n, dtype=torch.bool)
    is_noisy[flipped] = True
    return noisy, is_noisy


def mnist1d_splits(
    num_samples: int,
    *,
    holdout: int,
    test: int,
    noise: float,
    data_seed: int = 0,
    noise_seed: int = 0,
) -> Splits:
    """MNIST-1D with ``num_samples`` examples: test and holdout are clean, the rest is the pool
    with ``noise`` symmetric label noise (drawn with ``noise_seed``)."""
    if holdout + test >= num_samples:
        raise ProvenmlError(
            f"holdout ({holdout}) + test ({test}) must be fewer than num_samples ({num_samples})"
        )
    x_np, y_np = _generate(num_samples, data_seed)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    pool = num_samples - holdout - test
    generator = torch.Generator().manual_seed(noise_seed)
    y_noisy, is_noisy = symmetric_label_noise(y[:pool], noise, 10, generator)
    return Splits(
        x_pool=x[:pool],
        y_pool=y_noisy,
        y_pool_clean=y[:pool],
        is_noisy=is_noisy,
        x_holdout=x[pool : pool + holdout],
        y_holdout=y[pool : pool + holdout],
        x_test=x[pool + holdout :],
        y_test=y[pool + holdout :],
    )
