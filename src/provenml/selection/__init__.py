"""S1: online data selection by learnability, scored with small proxy models.

Evans et al., "Bad Students Make Great Teachers: Active Learning Accelerates Large-Scale Visual
Understanding" (arXiv 2312.05328) and RHO-LOSS (Mindermann et al., arXiv 2206.07137)::

    from provenml.nn import mlp
    from provenml.selection import Learnability, OnlineBatchSelector, train_reference

    reference = train_reference(mlp(40, [32], 10), clean_holdout, loss_fn, steps=2000)
    policy = Learnability(actor=mlp(40, [32], 10), reference=reference)
    selector = OnlineBatchSelector(learner, loss_fn, policy, batch_size=64, rho=0.5)
    for batch in selector.batches(train_dataset, epochs=None, max_steps=2000):
        ...  # your usual training step on `batch` (exactly 2000 of them)

Label noise for your own experiments: ``symmetric_label_noise(labels, 0.3, 10, generator)``;
corrupted text: ``corrupt_sequences(windows, 0.3, "shuffle", generator)`` with
``sequence_loss`` as the per-example loss of a byte-level LM.
"""

from provenml.nn import mlp  # kept in __all__: public here before it moved to provenml.nn
from provenml.selection.batches import Batch, batch_length, concat, take
from provenml.selection.data import symmetric_label_noise
from provenml.selection.images import small_cnn
from provenml.selection.losses import classification_loss
from provenml.selection.policies import (
    EasyReference,
    HardLearner,
    Learnability,
    LossFn,
    OnlineReference,
    RhoLoss,
    ScoringPolicy,
    Uniform,
    per_example_losses,
    train_step,
)
from provenml.selection.reference import precompute_losses, train_reference
from provenml.selection.selector import OnlineBatchSelector, Selection
from provenml.selection.text import byte_windows, corrupt_sequences, sequence_loss

__all__ = [
    "Batch",
    "EasyReference",
    "HardLearner",
    "Learnability",
    "LossFn",
    "OnlineBatchSelector",
    "OnlineReference",
    "RhoLoss",
    "ScoringPolicy",
    "Selection",
    "Uniform",
    "batch_length",
    "byte_windows",
    "classification_loss",
    "concat",
    "corrupt_sequences",
    "mlp",
    "per_example_losses",
    "precompute_losses",
    "sequence_loss",
    "small_cnn",
    "symmetric_label_noise",
    "take",
    "train_reference",
    "train_step",
]
