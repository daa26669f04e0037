"""MoCo-v2 and DenseCL in one code path (DenseCL with ``dense_weight=0`` is MoCo-v2).

Papers: He et al., "Momentum Contrast for Unsupervised Visual Representation Learning" (CVPR
2020) with the v2 changes of Chen et al. (arXiv 2003.04297: MLP head, T = 0.2, blur); Wang et
al., "Dense Contrastive Learning for Self-Supervised Visual Pre-Training" (CVPR 2021, arXiv
2011.09157). Equation numbers below are DenseCL's.

One training step (``model(view_q, view_k)``):

1. momentum update of the key encoder, ``theta_k <- m theta_k + (1 - m) theta_q``;
2. query encoder on ``view_q``: backbone feature map ``F_q``, global vector ``q`` (avgpool,
   fc-ReLU-fc) and, for DenseCL, dense vectors ``r_s`` (1x1 conv-ReLU-1x1 conv on ``F_q``);
3. key encoder on ``view_k`` without gradient (optionally shuffled, for BatchNorm): ``F_k``,
   ``k``, dense ``t_s`` and their average ``t_bar``;
4. ``L_q`` = InfoNCE of ``q`` against ``k`` and the global queue (Eq. 1); the dense positive of
   ``r_s`` is ``t_j`` with ``j = argmax_j cos(F_q[s], F_k[j])`` on **backbone** features (Sec.
   3.3, Eq. 3), the negatives are the dense queue of pooled ``t_bar`` vectors (Eq. 2);
5. ``L = (1 - w) L_q + w L_r`` (Eq. 4), ``w = 0`` during ``warmup_steps`` then ``dense_weight``;
6. ``k`` and ``t_bar`` are enqueued (oldest keys replaced first); under ``torch.distributed``
   the keys of all processes are gathered first, as in MoCo's code.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from provenml.errors import ProvenmlError
from provenml.ssl.backbones import feature_map_backbone, feature_map_shape


def info_nce(
    queries: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, temperature: float
) -> torch.Tensor:
    """InfoNCE (DenseCL Eq. 1 and 2): ``-log exp(q.k+/T) / (exp(q.k+/T) + sum exp(q.k-/T))``,
    averaged over the rows of ``queries`` (N, D); ``positives`` (N, D); ``negatives`` (K, D);
    all L2-normalised.

    This is cross-entropy on ``[q.k+, q.K^T] / T`` with target 0, computed without building
    that (N, 1 + K) matrix: ``logaddexp(l+, logsumexp(l-)) - l+`` with ``1 / T`` folded into
    the queries (the dense loss has N = B * h * w rows, so every pass over the logits counts).
    """
    scaled = queries / temperature
    positive = (scaled * positives).sum(dim=1)
    negative = torch.logsumexp(scaled @ negatives.t(), dim=1)
    return (torch.logaddexp(positive, negative) - positive).mean()


@torch.no_grad()
def dense_correspondence(features_q: torch.Tensor, features_k: torch.Tensor) -> torch.Tensor:
    """For each query location, the key location of highest cosine similarity (Sec. 3.3).

    ``features_q`` (B, C, h, w) and ``features_k`` (B, C, h', w') are *backbone* feature maps of
    two views of the same images. Returns ``(B, h * w)`` indices into the ``h' * w'`` flattened
    key locations: ``argmax_j cos(F_q[:, :, s], F_k[:, :, j])``. No gradient flows (argmax).
    """
    q = F.normalize(features_q.flatten(2), dim=1)
    k = F.normalize(features_k.flatten(2), dim=1)
    similarity = q.transpose(1, 2) @ k  # (B, hw, h'w')
    return similarity.argmax(dim=2)


@torch.no_grad()
def gather_keys(keys: torch.Tensor) -> torch.Tensor:
    """The keys of every process of a ``torch.distributed`` run, concatenated in rank order
    (MoCo's ``concat_all_gather``); ``keys`` itself when no process group is initialised."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return keys
    gathered = [torch.empty_like(keys) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, keys.contiguous())
    return torch.cat(gathered)


class KeyQueue(nn.Module):
    """A FIFO queue of ``size`` L2-normalised keys of dimension ``dim`` (MoCo's dictionary).

    ``enqueue`` writes the newest keys over the oldest, in batch order, wrapping around; the
    queue starts as random unit vectors, as in MoCo's code. ``keys`` is the (size, dim) buffer.
    """

    keys: torch.Tensor
    pointer: torch.Tensor

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1:
            raise ProvenmlError(f"queue_size must be >= 1, got {size}")
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return int(self.keys.shape[0])

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Replace the ``len(keys)`` oldest entries with ``keys`` (the newest last)."""
        keys = keys.detach()
        if keys.shape[0] > self.size:  # only the newest ``size`` keys fit
            keys = keys[-self.size :]
        start = int(self.pointer)
        index = (start + torch.arange(keys.shape[0], device=keys.device)) % self.size
        self.keys[index] = keys.to(self.keys.dtype)
        self.pointer.fill_((start + keys.shape[0]) % self.size)

    def ordered(self) -> torch.Tensor:
        """The keys from oldest to newest (for inspection and tests)."""
        return torch.roll(self.keys, -int(self.pointer), dims=0)


class GlobalHead(nn.Module):
    """MoCo-v2's projection head: global average pooling, fc-ReLU-fc."""

    def __init__(self, channels: int, hidden: int, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features.mean(dim=(2, 3)))


class DenseHead(nn.Module):
    """DenseCL's dense projection head: 1x1 conv-ReLU-1x1 conv on the feature map, giving one
    ``dim`` vector per location (B, dim, h, w)."""

    def __init__(self, channels: int, hidden: int, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, dim, 1)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features)


@dataclass
class ContrastiveOutput:
    """What one training step computed. ``loss`` is Eq. 4; for MoCo-v2 it equals
    ``loss_global`` and ``loss_dense`` is NaN. ``correspondence`` (B, h*w) holds the matched key
    location of every query location (None for MoCo-v2)."""

    loss: torch.Tensor
    loss_global: torch.Tensor
    loss_dense: torch.Tensor
    dense_weight: float
    correspondence: torch.Tensor | None
    features_q: torch.Tensor
    features_k: torch.Tensor


class DenseCL(nn.Module):
    """DenseCL (Wang et al. 2021) around any backbone that returns a feature map.

    Args:
        backbone: maps (B, 3, H, W) to (B, C, h, w); a torchvision-style ResNet is cut before
            its pooling (:func:`~provenml.ssl.backbones.feature_map_backbone`).
        image_size: side of the views, used to check the backbone's output once.
        dim: projection dimension (128 in the papers).
        hidden: hidden width of both heads (default: the backbone's channels, as MoCo-v2).
        queue_size: keys per queue (65536 in the papers).
        momentum: key-encoder momentum ``m`` (0.999 in the papers).
        temperature: InfoNCE temperature (0.2).
        dense_weight: ``lambda`` of Eq. 4 after the warm-up (0.5); 0 gives MoCo-v2's loss.
        warmup_steps: training steps at ``w = 0`` before ``dense_weight`` applies.
        shuffle_keys: shuffle the key batch through the key encoder (shuffle-BN; only matters
            with batch statistics).
    """

    uses_dense: bool = True
    steps_done: torch.Tensor

    def __init__(
        self,
        backbone: nn.Module,
        *,
        image_size: int = 32,
        dim: int = 128,
        hidden: int | None = None,
        queue_size: int = 65536,
        momentum: float = 0.999,
        temperature: float = 0.2,
        dense_weight: float = 0.5,
        warmup_steps: int = 0,
        shuffle_keys: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 <= dense_weight <= 1.0:
            raise ProvenmlError(f"dense_weight must be in [0, 1], got {dense_weight}")
        if not 0.0 <= momentum < 1.0:
            raise ProvenmlError(f"momentum must be in [0, 1), got {momentum}")
        if temperature <= 0:
            raise ProvenmlError(f"temperature must be > 0, got {temperature}")
        backbone = feature_map_backbone(backbone)
        channels, _, _ = feature_map_shape(backbone, image_size)
        hidden = hidden or channels
        self.image_size = image_size
        self.momentum = momentum
        self.temperature = temperature
        self.dense_weight = dense_weight
        self.warmup_steps = warmup_steps
        self.shuffle_keys = shuffle_keys
        self.backbone = backbone
        self.global_head = GlobalHead(channels, hidden, dim)
        self.dense_head: DenseHead | None = (
            DenseHead(channels, hidden, dim) if self.uses_dense else None
        )
        self.key_backbone = copy.deepcopy(self.backbone)
        self.key_global_head = copy.deepcopy(self.global_head)
        self.key_dense_head = copy.deepcopy(self.dense_head)
        for key_module in self._key_modules():
            key_module.requires_grad_(False)
        self.queue = KeyQueue(queue_size, dim)
        self.dense_queue: KeyQueue | None = KeyQueue(queue_size, dim) if self.uses_dense else None
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    # -- encoders -----------------------------------------------------------------------------
    def _query_modules(self) -> list[nn.Module]:
        return [m for m in (self.backbone, self.global_head, self.dense_head) if m is not None]

    def _key_modules(self) -> list[nn.Module]:
        return [
            m
            for m in (self.key_backbone, self.key_global_head, self.key_dense_head)
            if m is not None
        ]

    @torch.no_grad()
    def momentum_update(self) -> None:
        """``theta_k <- m theta_k + (1 - m) theta_q`` for every key parameter (MoCo Eq. 2)."""
        for query, key in zip(self._query_modules(), self._key_modules(), strict=True):
            for qp, kp in zip(query.parameters(), key.parameters(), strict=True):
                kp.mul_(self.momentum).add_(qp.detach(), alpha=1.0 - self.momentum)
            for qb, kb in zip(query.buffers(), key.buffers(), strict=True):
                kb.copy_(qb)

    def current_dense_weight(self) -> float:
        """``w`` of Eq. 4 at this step: 0 during the warm-up, then ``dense_weight``."""
        if not self.uses_dense or int(self.steps_done) < self.warmup_steps:
            return 0.0
        return self.dense_weight

    @torch.no_grad()
    def _encode_keys(
        self, view_k: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Key backbone map, global key, dense keys (B, dim, h*w) and their pooled vector
        ``t_bar`` (the dense head's output averaged over locations, then normalised, as in
        DenseCL's code), all in the input order."""
        order = (
            torch.randperm(view_k.shape[0], device=view_k.device)
            if self.shuffle_keys and self.training
            else None
        )
        inputs = view_k[order] if order is not None else view_k
        features = self.key_backbone(inputs)
        keys = F.normalize(self.key_global_head(features), dim=1)
        dense = pooled = None
        if self.key_dense_head is not None:
            raw = self.key_dense_head(features).flatten(2)
            dense = F.normalize(raw, dim=1)
            pooled = F.normalize(raw.mean(dim=2), dim=1)
        if order is not None:
            restore = torch.argsort(order)
            features, keys = features[restore], keys[restore]
            if dense is not None and pooled is not None:
                dense, pooled = dense[restore], pooled[restore]
        return features, keys, dense, pooled

    # -- the training step --------------------------------------------------------------------
    def forward(self, view_q: torch.Tensor, view_k: torch.Tensor) -> ContrastiveOutput:
        """One step: returns the loss of Eq. 4 (call ``.backward()`` on ``out.loss``).

        In training mode it also updates the key encoder (before encoding the keys, as MoCo's
        code does), enqueues the new keys and counts the step.
        """
        if view_q.shape != view_k.shape or view_q.dim() != 4:
            raise ProvenmlError(
                f"views must be two (B, 3, H, W) tensors of one shape, got "
                f"{tuple(view_q.shape)} and {tuple(view_k.shape)}"
            )
        weight = self.current_dense_weight()
        if self.training:
            self.momentum_update()
        features_q = self.backbone(view_q)
        queries = F.normalize(self.global_head(features_q), dim=1)
        features_k, keys, dense_keys, pooled_keys = self._encode_keys(view_k)
        loss_global = info_nce(queries, keys, self.queue.keys.clone(), self.temperature)

        correspondence = None
        loss_dense = torch.full((), float("nan"), device=view_q.device)
        loss = loss_global
        if (
            self.dense_head is not None
            and dense_keys is not None
            and pooled_keys is not None
            and self.dense_queue is not None
        ):
            dense_q = F.normalize(self.dense_head(features_q).flatten(2), dim=1)  # (B, D, hw)
            correspondence = dense_correspondence(features_q, features_k)
            index = correspondence.unsqueeze(1).expand(-1, dense_keys.shape[1], -1)
            positives = torch.gather(dense_keys, 2, index)  # (B, D, hw): t_j for each r_s
            dim = dense_q.shape[1]
            loss_dense = info_nce(
                dense_q.transpose(1, 2).reshape(-1, dim),
                positives.transpose(1, 2).reshape(-1, dim),
                self.dense_queue.keys.clone(),
                self.temperature,
            )
            loss = (1.0 - weight) * loss_global + weight * loss_dense
            if self.training:
                self.dense_queue.enqueue(gather_keys(pooled_keys))
        if self.training:
            self.queue.enqueue(gather_keys(keys))
            self.steps_done += 1
        return ContrastiveOutput(
            loss=loss,
            loss_global=loss_global,
            loss_dense=loss_dense,
            dense_weight=weight,
            correspondence=correspondence,
            features_q=features_q,
            features_k=features_k,
        )


class MoCoV2(DenseCL):
    """MoCo-v2: DenseCL's code path without the dense head, dense queue and dense loss
    (``loss = L_q``, Eq. 1). Same backbone, global head, queue, momentum and temperature."""

    uses_dense = False

    def __init__(
        self,
        backbone: nn.Module,
        *,
        image_size: int = 32,
        dim: int = 128,
        hidden: int | None = None,
        queue_size: int = 65536,
        momentum: float = 0.999,
        temperature: float = 0.2,
        shuffle_keys: bool = True,
    ) -> None:
        super().__init__(
            backbone,
            image_size=image_size,
            dim=dim,
            hidden=hidden,
            queue_size=queue_size,
            momentum=momentum,
            temperature=temperature,
            dense_weight=0.0,
            warmup_steps=0,
            shuffle_keys=shuffle_keys,
        )
