"""S1: online data selection by learnability, scored with small proxy models.

Evans et al., "Bad Students Make Great Teachers: Active Learning Accelerates Large-Scale Visual
Understanding" (arXiv 2312.05328) and RHO-LOSS (Mindermann et al., arXiv 2206.07137)::

    from provenml.nn import mlp
    from provenml.selection import Learnability, OnlineBatchSelector, train_reference

    reference = train_reference(mlp(40, [32], 10), clean_holdout, loss_fn, steps=2000)
    policy = Learnability(actor=mlp(40, [32], 10), reference=reference)
    selector = OnlineBatchSelector(learner, loss_fn, policy, batch_size=64, rho=0.5)
    for batch in selector.batches(train_dataset, epochs=5):
        ...  # your usual training step on `batch`
"""

from provenml.nn import mlp  # kept in __all__: public here before it moved to provenml.nn
from provenml.selection.batches import Batch, batch_length, concat, take
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
    "classification_loss",
    "concat",
    "mlp",
    "per_example_losses",
    "precompute_losses",
    "take",
    "train_reference",
    "train_step",
]
