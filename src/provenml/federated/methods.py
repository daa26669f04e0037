"""The method's pieces and the baselines' pieces, each from its paper's equation.

- :func:`pretrain`: stage 1, global multimodal pre-training on web image-text pairs with the
  dynamically weighted distillation from the frozen visual encoder;
- :func:`local_train`: a client's update: cross-entropy, with FedProx's proximal term
  (Li et al., 2020, Eq. 2) or the CLIP2FL-style client distillation from the teacher
  (Shi et al., 2024), both optional;
- :func:`fedavg`: the server's weighted mean of client weights (McMahan et al., 2017);
- :func:`alignment_loss` and :func:`align`: stage 3, ``L = CE(y, p) + beta * KL(q || p)`` on
  the server's balanced alignment set;
- :func:`logit_adjusted`: post-hoc logit adjustment ``f(x) - tau * log(pi)`` (Menon et al.,
  2021, Eq. 9) for the FedAvg + logit adjustment baseline;
- :func:`evaluate`: balanced accuracy and its many / medium / few split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from provenml.errors import ProvenmlError
from provenml.federated.data import ShapeImages
from provenml.federated.models import FLModel

# --------------------------------------------------------------------------------------------
# Stage 1: pre-training on web image-text pairs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PretrainSettings:
    """Stage 1 (server side). ``distill_start`` is the initial weight of the frozen encoder's
    features; it decays linearly to 0 over the ``epochs``."""

    epochs: int = 4
    batch_size: int = 128
    lr: float = 2e-3
    temperature: float = 0.07
    distill_start: float = 0.9


def distill_weight(step: int, total: int, start: float) -> float:
    """The dynamic weight ``lambda_t = start * (1 - t / T)``: the frozen encoder's share of the
    image feature, decaying to 0 so that the compact model ends up on its own."""
    return start * max(0.0, 1.0 - step / max(1, total))


def pretrain(
    model: FLModel,
    web_images: Tensor,
    caption_embeddings: Tensor,
    teacher_features: Tensor,
    prompt_embeddings: Tensor,
    settings: PretrainSettings,
    generator: torch.Generator,
) -> dict[str, float]:
    """Stage 1: global multimodal pre-training with dynamically weighted distillation.

    The compact model's image feature ``s = norm(P f(x))`` (``P`` a projection into the text
    space) is mixed with the frozen visual encoder's ``v(x)``:
    ``z = norm(lambda_t v(x) + (1 - lambda_t) s)``, and ``z`` is trained against the caption
    embeddings with the symmetric image-text InfoNCE loss, plus the distillation term
    ``lambda_t (1 - cos(s, v(x)))``. With ``lambda_t`` decaying to 0 the loss becomes plain
    image-text contrastive learning of the compact model alone (our reading of the paper's
    dynamic weighted pre-training, Sec. 3.2). Pairs with the same caption are positives.

    Afterwards the classifier is set to the class prompts projected back through ``P``
    (``W = t_c^T P / (temperature * mean ||P f(x)||)``): the pre-trained model classifies
    zero-shot before any client data is seen. Returns the final losses.
    """
    projection = nn.Linear(model.feature_dim, caption_embeddings.shape[1])
    params = list(model.encoder.parameters()) + list(projection.parameters())
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=1e-4, foreach=True)
    n = web_images.shape[0]
    batch = min(settings.batch_size, n)
    per_epoch = max(1, n // batch)
    total = settings.epochs * per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=max(1, total))
    caption_key = caption_embeddings @ torch.randn(caption_embeddings.shape[1], generator=generator)
    step, last = 0, {"itc": float("nan"), "distill": float("nan")}
    model.train()
    for _ in range(settings.epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, per_epoch * batch, batch):
            idx = order[start : start + batch]
            lam = distill_weight(step, total, settings.distill_start)
            student = F.normalize(projection(model.encoder(web_images[idx])), dim=-1)
            mixed = F.normalize(lam * teacher_features[idx] + (1 - lam) * student, dim=-1)
            text = caption_embeddings[idx]
            same = (caption_key[idx, None] == caption_key[None, idx]).float()
            logits = mixed @ text.T / settings.temperature
            target = same / same.sum(1, keepdim=True)
            itc = (
                -(target * logits.log_softmax(1)).sum(1).mean()
                - (target * logits.T.log_softmax(1)).sum(1).mean()
            ) / 2
            distill = (1 - (student * teacher_features[idx]).sum(-1)).mean()
            loss = itc + lam * distill
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step < total - 1:
                sched.step()
            step += 1
            last = {"itc": float(itc.detach()), "distill": float(distill.detach())}
    model.eval()
    with torch.no_grad():
        feats = projection(model.encoder(web_images[: min(n, 512)]))
        scale = 1.0 / (settings.temperature * feats.norm(dim=-1).mean())
        prompts = F.normalize(prompt_embeddings, dim=-1)
        model.classifier.weight.copy_(scale * prompts @ projection.weight)
        model.classifier.bias.copy_(scale * prompts @ projection.bias)
    return last


# --------------------------------------------------------------------------------------------
# Stage 2: clients
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalSettings:
    """A client's local training: ``epochs`` passes of SGD over its data (plain SGD by
    default, as in FedAvg; momentum restarts every round)."""

    epochs: int = 2
    batch_size: int = 16
    lr: float = 0.05
    momentum: float = 0.0
    weight_decay: float = 5e-4
    prox_mu: float = 0.0  # FedProx's mu; 0 is FedAvg
    distill_beta: float = 0.0  # CLIP2FL-style client distillation weight; 0 is off


def local_train(
    model: FLModel,
    data: ShapeImages,
    settings: LocalSettings,
    generator: torch.Generator,
    teacher_probs: Tensor | None = None,
) -> int:
    """Train ``model`` in place on one client's data; return the number of SGD steps.

    Loss per batch: ``CE(y, p) + (mu / 2) ||w - w_global||^2`` (FedProx, Li et al. 2020, Eq. 2)
    ``+ beta * KL(q || p)`` with ``q`` the teacher's distribution on the client's own images
    (the CLIP2FL-style client distillation; the teacher's forward passes are client compute,
    counted by the caller).
    """
    if settings.distill_beta > 0 and teacher_probs is None:
        raise ProvenmlError("distill_beta > 0 needs teacher_probs for the client's images")
    params = list(model.parameters())
    global_params = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(  # foreach: the same elementwise update, fewer kernel launches
        params,
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
        foreach=True,
    )
    n, steps = len(data), 0
    model.train()
    for _ in range(settings.epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, settings.batch_size):
            idx = order[start : start + settings.batch_size]
            logits = model(data.images[idx])
            loss = F.cross_entropy(logits, data.labels[idx])
            if settings.distill_beta > 0 and teacher_probs is not None:
                loss = loss + settings.distill_beta * kl_teacher(teacher_probs[idx], logits)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if settings.prox_mu > 0:
                add_prox_grad(params, global_params, settings.prox_mu)
            opt.step()
            steps += 1
    model.eval()
    return steps


def prox_grad(params: Sequence[Tensor], global_params: Sequence[Tensor], mu: float) -> list[Tensor]:
    """The gradient of FedProx's term ``(mu / 2) sum ||w - w_global||^2``: ``mu (w - w_g)``,
    computed as autograd computes it (``float32(mu / 2) * (2 (w - w_g))``, one rounding), so
    that adding it to the loss's gradient gives the same bits as differentiating the sum."""
    half = torch.tensor(mu / 2, dtype=params[0].dtype)
    diff = torch._foreach_sub([p.detach() for p in params], list(global_params))
    torch._foreach_mul_(diff, 2.0)
    torch._foreach_mul_(diff, half)
    return diff


def add_prox_grad(params: Sequence[Tensor], global_params: Sequence[Tensor], mu: float) -> None:
    """Add :func:`prox_grad` to each parameter's ``.grad`` (FedProx, Li et al. 2020, Eq. 2):
    the proximal term's gradient without building it into the autograd graph every step."""
    grads = [p.grad for p in params]
    if any(g is None for g in grads):
        raise ProvenmlError("add_prox_grad needs every parameter's gradient (run backward first)")
    torch._foreach_add_(grads, prox_grad(params, global_params, mu))  # type: ignore[arg-type]


def fedavg(states: Sequence[Mapping[str, Tensor]], weights: Sequence[float]) -> dict[str, Tensor]:
    """FedAvg's aggregation (McMahan et al., 2017, Alg. 1): ``w = sum_k (n_k / n) w_k``."""
    if not states:
        raise ProvenmlError("fedavg needs at least one client state")
    if len(states) != len(weights):
        raise ProvenmlError(f"{len(states)} states but {len(weights)} weights")
    total = float(sum(weights))
    if total <= 0:
        raise ProvenmlError("fedavg needs a positive total weight")
    out = {}
    for key in states[0]:
        acc = sum(s[key].double() * (w / total) for s, w in zip(states, weights, strict=True))
        out[key] = acc.to(states[0][key].dtype)  # type: ignore[union-attr]
    return out


# --------------------------------------------------------------------------------------------
# Stage 3: global alignment; logit adjustment
# --------------------------------------------------------------------------------------------


def kl_teacher(q: Tensor, logits: Tensor) -> Tensor:
    """``KL(q || p)`` averaged over the batch, ``p = softmax(logits)``."""
    return (q * (q.clamp(min=1e-12).log() - logits.log_softmax(-1))).sum(-1).mean()


def alignment_loss(logits: Tensor, labels: Tensor, q: Tensor, beta: float) -> Tensor:
    """The paper's global alignment loss ``L_align = CE(y, p) + beta * KL(q || p)`` (Sec. 3.4),
    ``p`` the FL model's softmax, ``q`` the teacher's distribution for the same image."""
    return F.cross_entropy(logits, labels) + beta * kl_teacher(q, logits)


@dataclass(frozen=True)
class AlignSettings:
    """Stage 3 (server side): ``steps`` of SGD on the balanced set after each aggregation."""

    steps: int = 10
    batch_size: int = 50
    lr: float = 0.01
    beta: float = 1.0


def align(
    model: FLModel,
    data: ShapeImages,
    teacher_probs: Tensor,
    settings: AlignSettings,
    generator: torch.Generator,
) -> float:
    """Tune the aggregated model on the balanced alignment set with :func:`alignment_loss`;
    return the last loss."""
    opt = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=0.9, foreach=True)
    n, loss = len(data), torch.tensor(float("nan"))
    model.train()
    for _ in range(settings.steps):
        idx = torch.randperm(n, generator=generator)[: settings.batch_size]
        loss = alignment_loss(
            model(data.images[idx]), data.labels[idx], teacher_probs[idx], settings.beta
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return float(loss.detach())


def logit_adjusted(logits: Tensor, class_prior: Tensor, tau: float = 1.0) -> Tensor:
    """Post-hoc logit adjustment (Menon et al., 2021, Eq. 9): ``f_y(x) - tau * log pi_y``."""
    return logits - tau * class_prior.clamp(min=1e-12).log()


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def predict_logits(model: nn.Module, images: Tensor, batch_size: int = 500) -> Tensor:
    model.eval()
    return torch.cat([model(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def evaluate(
    logits: Tensor, labels: Tensor, splits: Mapping[str, Sequence[int]], num_classes: int
) -> dict[str, float]:
    """Balanced accuracy (the mean of per-class accuracies) and its mean over each split's
    classes (``many`` / ``medium`` / ``few``)."""
    pred = logits.argmax(-1)
    per_class = torch.stack(
        [(pred[labels == c] == c).float().mean() for c in range(num_classes)]
    ).nan_to_num(0.0)
    out = {"balanced": float(per_class.mean())}
    for name, classes in splits.items():
        out[name] = float(per_class[list(classes)].mean()) if classes else float("nan")
    return out
