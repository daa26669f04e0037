"""The three selection problems of the reproductions, behind one interface.

A :class:`SelectionTask` holds a noisy training pool (with the mask of its corrupted examples),
a clean holdout for the reference, an evaluation of the learner, the per-example loss, and the
learner / scorer model families. The runner (:mod:`provenml.selection.runner`) trains every arm
on any of them the same way:

=============  ===================================  ========================  ===================
task           data                                 learner                   scorers (width w)
=============  ===================================  ========================  ===================
``mnist1d``    MNIST-1D, symmetric label noise      MLP 40-512-512-10         MLP 40-w-10
``text``       stdlib source windows, 30% corrupt   byte transformer 2 x 64   transformer 1 x w
``images``     digits 16x16, symmetric label noise  CNN conv16-conv32         CNN conv w-conv 2w
=============  ===================================  ========================  ===================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from provenml.core import count_flops
from provenml.errors import ProvenmlError
from provenml.nn import ByteTransformer, mlp, module_device
from provenml.selection.batches import Batch, take, to_device
from provenml.selection.data import mnist1d_splits, symmetric_label_noise
from provenml.selection.images import digit_splits, small_cnn
from provenml.selection.losses import classification_loss
from provenml.selection.policies import LossFn
from provenml.selection.text import Corruption, byte_windows, corrupt_sequences, sequence_loss


@dataclass
class SelectionTask:
    """One data-selection problem (see the module docstring).

    ``evaluate(model)`` returns the learner's metric on clean evaluation data (``metric`` names
    it; ``higher_is_better`` says which way is better); ``learner()`` and ``scorer(width)``
    build fresh models on the CPU (the runner moves them).
    """

    name: str
    pool: TensorDataset
    is_noisy: Tensor
    holdout: TensorDataset
    eval_batch: Batch
    loss_fn: LossFn
    metric: str
    higher_is_better: bool
    learner: Callable[[], nn.Module]
    scorer: Callable[[int], nn.Module]
    eval_chunk: int = 4096

    def to(self, device: torch.device) -> SelectionTask:
        """The same task with every tensor on ``device``."""
        return replace(
            self,
            pool=TensorDataset(*(t.to(device) for t in self.pool.tensors)),
            is_noisy=self.is_noisy.to(device),
            holdout=TensorDataset(*(t.to(device) for t in self.holdout.tensors)),
            eval_batch=to_device(self.eval_batch, device),
        )

    def evaluate(self, model: nn.Module) -> float:
        """The metric of ``model`` on the evaluation batch (eval mode, no gradients, chunked)."""
        was_training = model.training
        model.eval()
        n = self.eval_batch[0].shape[0]  # type: ignore[index]
        total = 0.0
        with torch.no_grad():
            for start in range(0, n, self.eval_chunk):
                chunk = take(self.eval_batch, torch.arange(start, min(n, start + self.eval_chunk)))
                total += float(self._metric_sum(model, chunk))
        model.train(was_training)
        return total / n

    def _metric_sum(self, model: nn.Module, batch: Batch) -> Tensor:
        if self.higher_is_better:  # classification: accuracy
            x, y = batch[0], batch[1]  # type: ignore[index]
            return (model(x).argmax(1) == y).sum()
        return self.loss_fn(model, batch).sum()  # language modelling: mean loss per window

    def flops_per_example(self, model: nn.Module) -> float:
        """Forward FLOPs of ``model`` per pool example, measured with the harness's counter
        (:func:`provenml.core.count_flops`) on 8 pool examples, moved to the model's device
        (a learner's CPU initialisation is counted against a task already on the GPU)."""
        batch = take(self.pool.tensors, torch.arange(8, device=self.pool.tensors[0].device))
        batch = to_device(batch, module_device(model))
        with torch.no_grad():
            _, flops = count_flops(self.loss_fn, model, batch)
        return flops / 8


# ------------------------------------------------------------------------------------------
# The three tasks
# ------------------------------------------------------------------------------------------


def mnist1d_task(
    num_samples: int,
    *,
    holdout: int,
    test: int,
    noise: float,
    learner_hidden: Sequence[int],
    data_seed: int = 0,
    noise_seed: int = 0,
) -> SelectionTask:
    """MNIST-1D (Greydanus 2020) with ``noise`` symmetric label noise on the pool; learner MLP
    ``40-hidden-10``, scorers MLP ``40-w-10``."""
    splits = mnist1d_splits(
        num_samples,
        holdout=holdout,
        test=test,
        noise=noise,
        data_seed=data_seed,
        noise_seed=noise_seed,
    )
    features = splits.x_pool.shape[1]
    return SelectionTask(
        name="mnist1d",
        pool=TensorDataset(splits.x_pool, splits.y_pool),
        is_noisy=splits.is_noisy,
        holdout=TensorDataset(splits.x_holdout, splits.y_holdout),
        eval_batch=(splits.x_test, splits.y_test),
        loss_fn=classification_loss,
        metric="test accuracy",
        higher_is_better=True,
        learner=lambda: mlp(features, list(learner_hidden), 10),
        scorer=lambda width: mlp(features, [width], 10),
    )


def text_task(
    *,
    corpus_bytes: int,
    window: int,
    pool_windows: int,
    holdout_windows: int,
    valid_windows: int,
    noise: float,
    corruption: Corruption,
    learner_dim: int,
    learner_layers: int,
    heads: int,
    data_seed: int = 0,
    noise_seed: int = 0,
) -> SelectionTask:
    """Byte-level language modelling on the standard library's source
    (:func:`provenml.data.text.stdlib_corpus`, split into train and validation files by a hash
    of the path). The pool is ``pool_windows`` windows of ``window + 1`` bytes from the first
    part of the training stream, a ``noise`` fraction of them corrupted; the clean holdout is
    cut from the last ``holdout_windows`` windows of the training stream (files after the
    pool's, in sorted path order); the learner is evaluated on ``valid_windows`` windows of the
    validation files. Learner :class:`~provenml.nn.ByteTransformer` (``learner_layers`` x
    ``learner_dim``); scorers one-layer byte transformers of width ``w``."""
    from provenml.data.text import stdlib_corpus

    corpus = stdlib_corpus(max_bytes=corpus_bytes)
    length = window + 1
    holdout_bytes = holdout_windows * length
    train = corpus.train
    if train.numel() <= holdout_bytes + pool_windows * length:
        raise ProvenmlError(
            f"the corpus' training stream ({train.numel()} bytes) is too short for "
            f"{pool_windows} pool and {holdout_windows} holdout windows of {length} bytes; "
            "raise corpus_bytes or lower the window counts"
        )
    generator = torch.Generator().manual_seed(data_seed)
    pool_clean = byte_windows(train[:-holdout_bytes], length, pool_windows, generator)
    holdout_set = byte_windows(train[-holdout_bytes:], length, None, generator)
    valid = byte_windows(corpus.valid, length, valid_windows, generator)
    noisy, is_noisy = corrupt_sequences(
        pool_clean, noise, corruption, torch.Generator().manual_seed(noise_seed)
    )

    def scorer(width: int) -> nn.Module:
        return ByteTransformer(dim=width, layers=1, heads=max(1, width // 16), context=window)

    return SelectionTask(
        name="text",
        pool=TensorDataset(noisy),
        is_noisy=is_noisy,
        holdout=TensorDataset(holdout_set),
        eval_batch=(valid,),
        loss_fn=sequence_loss,
        metric="validation loss (nats/byte)",
        higher_is_better=False,
        learner=lambda: ByteTransformer(
            dim=learner_dim, layers=learner_layers, heads=heads, context=window
        ),
        scorer=scorer,
        eval_chunk=256,
    )


def images_task(
    *,
    size: int,
    holdout: int,
    test: int,
    copies: int,
    shift: int,
    noise: float,
    learner_channels: Sequence[int],
    data_seed: int = 0,
    noise_seed: int = 0,
) -> SelectionTask:
    """scikit-learn's digits upsampled to ``size`` (:func:`digit_splits`) with ``noise``
    symmetric label noise on the pool; learner :func:`small_cnn` with ``learner_channels``,
    scorers ``small_cnn((w, 2w))``."""
    splits = digit_splits(
        size=size, holdout=holdout, test=test, copies=copies, shift=shift, data_seed=data_seed
    )
    generator = torch.Generator().manual_seed(noise_seed)
    y_noisy, is_noisy = symmetric_label_noise(splits.y_pool, noise, 10, generator)
    channels = list(learner_channels)
    return SelectionTask(
        name="images",
        pool=TensorDataset(splits.x_pool, y_noisy),
        is_noisy=is_noisy,
        holdout=TensorDataset(splits.x_holdout, splits.y_holdout),
        eval_batch=(splits.x_test, splits.y_test),
        loss_fn=classification_loss,
        metric="test accuracy",
        higher_is_better=True,
        learner=lambda: small_cnn(channels, size=size),
        scorer=lambda width: small_cnn((width, 2 * width), size=size),
    )
