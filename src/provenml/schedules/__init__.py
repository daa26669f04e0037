"""S3: Warmup-Stable-Decay schedules and WSD-S (Wen et al. 2024, arXiv 2410.05192).

Each schedule is a ``torch.optim.lr_scheduler.LRScheduler``::

    from provenml.schedules import WSDS
    scheduler = WSDS(optimizer, budgets=[1000, 2000, 4000], warmup_steps=100, decay_fraction=0.2)
    for step in range(4000):
        ...  # forward, backward, optimizer.step()
        scheduler.step()

The river-valley toy of the paper's Sec. 4 (a bigram language whose loss splits into a "river"
and a "hill" part) is here too: ``make_bigram_language``, ``BigramModel``, ``loss_split``, and
what its claims measure, ``hill_share`` and ``relative_excess_drop``.

Bad arguments (``WSD(optimizer, total_steps=100.7)``, ``WSDS(..., warmup_steps=-5)``) raise one
:class:`provenml.errors.ProvenmlError` that names them.
"""

from provenml.schedules.river_valley import (
    BigramLanguage,
    BigramModel,
    hill_share,
    loss_split,
    make_bigram_language,
    relative_excess_drop,
)
from provenml.schedules.schedulers import (
    DECAY_SHAPES,
    WSD,
    WSDS,
    CyclicCosine,
    WarmupCosine,
    decay_factor,
    decay_steps,
)

__all__ = [
    "DECAY_SHAPES",
    "WSD",
    "WSDS",
    "BigramLanguage",
    "BigramModel",
    "CyclicCosine",
    "WarmupCosine",
    "decay_factor",
    "decay_steps",
    "hill_share",
    "loss_split",
    "make_bigram_language",
    "relative_excess_drop",
]
