"""Training and evaluation loops: encoder pre-training, episodic meta-training, test episodes.

Everything takes plain tensors (``x`` samples, integer ``labels``), so it runs on a user's own
data as on the generated benchmark. A meta-batch of episodes is one tensor program: the encoder
sees all ``B * (S + Q)`` samples in one call and the head all ``B`` episodes at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from provenml.core.context import progress as with_progress
from provenml.errors import ProvenmlError
from provenml.fewshot.encoders import encode
from provenml.fewshot.episodes import EpisodeBatch, EpisodeSampler
from provenml.fewshot.heads import FewShotHead, HeadOutput


class FewShotClassifier(nn.Module):
    """An encoder and a head: classify the queries of a meta-batch of raw episodes.

    ::

        model = FewShotClassifier(Conv1dEncoder(), AdarGCNHead(64))
        out = model(support_x, support_y, query_x, n_way=5)  # [B, S, ...], [B, S], [B, Q, ...]
        out.predictions()                                    # [B, Q]
    """

    def __init__(self, encoder: nn.Module, head: FewShotHead) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def embed(self, support_x: Tensor, query_x: Tensor) -> tuple[Tensor, Tensor]:
        """Encode support and queries of all episodes in one encoder call."""
        b, s, q = support_x.shape[0], support_x.shape[1], query_x.shape[1]
        flat = torch.cat([support_x.flatten(0, 1), query_x.flatten(0, 1)])
        features = self.encoder(flat)
        return features[: b * s].view(b, s, -1), features[b * s :].view(b, q, -1)

    def forward(
        self, support_x: Tensor, support_labels: Tensor, query_x: Tensor, n_way: int
    ) -> HeadOutput:
        support, query = self.embed(support_x, query_x)
        return self.head(support, support_labels, query, n_way)


@dataclass
class TrainSettings:
    """Encoder pre-training then episodic meta-training (one mixed-shot model).

    ``encoder_lr_scale`` multiplies ``meta_lr`` for the encoder during meta-training (0 keeps
    it frozen). ``train_shots`` are cycled step by step, so one model serves every test shot.
    """

    pretrain_steps: int = 600
    pretrain_batch: int = 64
    pretrain_lr: float = 3e-3
    meta_steps: int = 300
    meta_batch: int = 8
    train_way: int = 5
    train_shots: tuple[int, ...] = (1, 5)
    train_query: int = 3
    meta_lr: float = 1e-3
    encoder_lr_scale: float = 0.1
    weight_decay: float = 5e-4


def pretrain_encoder(
    encoder: nn.Module,
    x: Tensor,
    labels: Tensor,
    settings: TrainSettings,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> dict[str, float]:
    """Train ``encoder`` with a linear softmax classifier over the classes in ``labels``.

    Returns the last 50 steps' mean training loss and accuracy. The classifier is discarded.
    ``progress=True`` shows a progress bar over the steps.
    """
    classes, targets = torch.unique(labels, return_inverse=True)
    if classes.numel() < 2:
        raise ProvenmlError("pre-training needs at least two classes")
    classifier = nn.Linear(encoder.out_dim, classes.numel()).to(device)
    params = [*encoder.parameters(), *classifier.parameters()]
    optimizer = torch.optim.AdamW(
        params, lr=settings.pretrain_lr, weight_decay=settings.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.pretrain_lr, total_steps=max(1, settings.pretrain_steps)
    )
    encoder.train()
    x, targets = x.to(device), targets.to(device)
    losses, accs = [], []
    steps = range(settings.pretrain_steps)
    for _ in with_progress(steps, "pre-training the encoder", progress):
        batch = torch.randint(len(x), (settings.pretrain_batch,), generator=generator).to(device)
        logits = classifier(encoder(x[batch]))
        loss = F.cross_entropy(logits, targets[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        accs.append((logits.argmax(-1) == targets[batch]).float().mean().item())
    tail = slice(-50, None)
    return {
        "pretrain_loss": float(sum(losses[tail]) / max(1, len(losses[tail]))),
        "pretrain_accuracy": float(sum(accs[tail]) / max(1, len(accs[tail]))),
    }


def meta_train(
    model: FewShotClassifier,
    x: Tensor,
    labels: Tensor,
    settings: TrainSettings,
    seed: int,
    device: torch.device | str = "cpu",
    log: Callable[..., None] | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Episodic training of the head (and, at ``encoder_lr_scale > 0``, the encoder).
    ``progress=True`` shows a progress bar over the meta-steps.

    Episodes are ``train_way``-way with each shot of ``train_shots`` in turn and
    ``train_query`` queries per class, drawn from ``labels``' classes that have enough samples.
    """
    samplers = [
        EpisodeSampler(
            labels,
            settings.train_way,
            k,
            settings.train_query,
            seed=seed + 7919 * i,
            small_classes="skip",
        )
        for i, k in enumerate(settings.train_shots)
    ]
    groups = [{"params": list(model.head.parameters()), "lr": settings.meta_lr}]
    if settings.encoder_lr_scale > 0:
        groups.append(
            {
                "params": list(model.encoder.parameters()),
                "lr": settings.meta_lr * settings.encoder_lr_scale,
            }
        )
    else:
        model.encoder.requires_grad_(False)
    trainable = [p for g in groups for p in g["params"]]
    if not trainable or settings.meta_steps == 0:
        return {"meta_loss": math.nan, "meta_accuracy": math.nan}
    optimizer = torch.optim.AdamW(groups, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.meta_steps)
    model.train()
    if settings.encoder_lr_scale == 0:
        model.encoder.eval()
    x = x.to(device)
    losses, accs = [], []
    for step in with_progress(range(settings.meta_steps), "meta-training", progress):
        batch = samplers[step % len(samplers)].sample(settings.meta_batch).to(device)
        support_x, query_x = batch.gather(x)
        out = model(support_x, batch.support_labels, query_x, batch.n_way)
        loss = model.head.loss(out, batch.support_labels, batch.query_labels, batch.n_way)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        accs.append((out.predictions() == batch.query_labels).float().mean().item())
        if log is not None and (step + 1) % 100 == 0:
            log(meta_step=step + 1, meta_loss=sum(losses[-100:]) / 100)
    model.encoder.requires_grad_(True)
    tail = slice(-50, None)
    return {
        "meta_loss": float(sum(losses[tail]) / len(losses[tail])),
        "meta_accuracy": float(sum(accs[tail]) / len(accs[tail])),
    }


@torch.no_grad()
def evaluate_episodes(
    model: FewShotClassifier,
    x: Tensor,
    labels: Tensor,
    n_way: int,
    k_shot: int,
    q_query: int,
    episodes: int,
    seed: int,
    batch_size: int = 100,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Per-episode query accuracy ``[episodes]`` on ``episodes`` seeded test episodes.

    The encoder runs once over ``x`` (eval mode); episodes index its features, so the same seed
    gives the same episodes to every model evaluated on the same data (paired comparisons).
    """
    sampler = EpisodeSampler(labels, n_way, k_shot, q_query, seed=seed)
    features = encode(model.encoder, x.to(device))
    was_training = model.head.training
    model.head.eval()
    accuracies = []
    try:
        done = 0
        while done < episodes:
            batch: EpisodeBatch = sampler.sample(min(batch_size, episodes - done)).to(device)
            support, query = batch.gather(features)
            out = model.head(support, batch.support_labels, query, n_way)
            accuracies.append((out.predictions() == batch.query_labels).float().mean(-1).cpu())
            done += batch.batch_size
    finally:
        model.head.train(was_training)
    return torch.cat(accuracies)


def mean_and_ci(values: Tensor | Sequence[float], z: float = 1.96) -> tuple[float, float]:
    """Mean and half-width of the normal 95% interval, as few-shot papers report episodes."""
    v = torch.as_tensor(values, dtype=torch.float64)
    if v.numel() < 2:
        return float(v.mean()), math.nan
    return float(v.mean()), float(z * v.std(unbiased=True) / math.sqrt(v.numel()))
