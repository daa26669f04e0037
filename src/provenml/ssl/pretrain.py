"""The pre-training loop: batched two-view augmentation, one contrastive step, SGD + cosine.

MoCo-v2's recipe (Chen et al. 2020): SGD with momentum 0.9, weight decay 1e-4, a cosine
learning-rate schedule over the run. Everything random (batch order, views, key shuffle) comes
from ``seed``, so the same seed gives the same numbers on the same machine.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from provenml.core.context import progress as with_progress
from provenml.errors import ProvenmlError
from provenml.ssl.augment import CropBoxes, TwoViewAugment
from provenml.ssl.methods import ContrastiveOutput, DenseCL


@dataclass
class PretrainHistory:
    """Per-step records of one pre-training run."""

    loss: list[float] = field(default_factory=list)
    loss_global: list[float] = field(default_factory=list)
    loss_dense: list[float] = field(default_factory=list)
    dense_weight: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)


StepCallback = Callable[[int, ContrastiveOutput, CropBoxes, CropBoxes], None]


def sample_batches(
    num_images: int, batch_size: int, steps: int, generator: torch.Generator
) -> torch.Tensor:
    """``(steps, batch_size)`` image indices: shuffled epochs, concatenated (no image repeats
    within an epoch; the last partial epoch is cut)."""
    if batch_size > num_images:
        raise ProvenmlError(f"batch_size={batch_size} exceeds the {num_images} images")
    needed = steps * batch_size
    epochs = math.ceil(needed / num_images)
    order = torch.cat([torch.randperm(num_images, generator=generator) for _ in range(epochs)])
    return order[:needed].view(steps, batch_size)


def pretrain(
    model: DenseCL,
    images: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float | None = None,
    weight_decay: float = 1e-4,
    sgd_momentum: float = 0.9,
    augment: TwoViewAugment | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    on_step: StepCallback | None = None,
    progress: bool = False,
) -> PretrainHistory:
    """Pre-train ``model`` (a :class:`~provenml.ssl.DenseCL` or :class:`~provenml.ssl.MoCoV2`)
    on ``images`` (N, 3, H, W) uint8 or float in [0, 1] for ``steps`` SGD steps.

    ``lr`` defaults to MoCo-v2's 0.03 at batch 256 scaled linearly to ``batch_size``
    (Goyal et al. 2017): 0.0075 at batch 64.
    ``on_step(step, output, boxes_q, boxes_k)`` is called after every step (for logging,
    progress, or checking correspondences against the crop boxes); ``progress=True`` shows a
    progress bar over the steps.
    """
    if steps < 1:
        raise ProvenmlError(f"steps must be >= 1, got {steps}")
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ProvenmlError("images must be a (N, 3, H, W) tensor")
    augment = augment or TwoViewAugment(crop_size=model.image_size)
    if augment.crop_size != model.image_size:
        raise ProvenmlError(
            f"augment.crop_size={augment.crop_size} differs from the model's "
            f"image_size={model.image_size}"
        )
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    if lr is None:
        lr = 0.03 * batch_size / 256
    optimizer = torch.optim.SGD(params, lr=lr, momentum=sgd_momentum, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: 0.5 * (1.0 + math.cos(math.pi * t / steps))
    )
    generator = torch.Generator().manual_seed(seed)
    augment_generator = torch.Generator(device=device).manual_seed(seed + 1)
    batches = sample_batches(images.shape[0], batch_size, steps, generator)
    history = PretrainHistory()
    for step in with_progress(range(steps), f"pre-training {type(model).__name__}", progress):
        start = time.perf_counter()
        batch = images[batches[step]].to(device, non_blocking=True)
        view_q, view_k, boxes_q, boxes_k = augment(batch, augment_generator)
        output = model(view_q, view_k)
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()
        history.lr.append(schedule.get_last_lr()[0])
        schedule.step()
        history.step_seconds.append(time.perf_counter() - start)
        history.loss.append(float(output.loss.detach()))
        history.loss_global.append(float(output.loss_global.detach()))
        history.loss_dense.append(float(output.loss_dense.detach()))
        history.dense_weight.append(output.dense_weight)
        if on_step is not None:
            on_step(step, output, boxes_q, boxes_k)
    return history
