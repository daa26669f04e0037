"""S3: Warmup-Stable-Decay schedules and WSD-S (Wen et al. 2024, arXiv 2410.05192).

Each schedule is a ``torch.optim.lr_scheduler.LRScheduler``::

    from provenml.schedules import WSDS
    scheduler = WSDS(optimizer, budgets=[1000, 2000, 4000], warmup_steps=100, decay_fraction=0.2)
"""

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
    "CyclicCosine",
    "WarmupCosine",
    "decay_factor",
    "decay_steps",
]
