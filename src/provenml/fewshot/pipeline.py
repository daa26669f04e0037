"""The few-shot few-shot pipeline: denoise the web pool, train an encoder and a head on the
source data of an arm, test on the target classes.

Arms (as in the AdarGCN paper's FSFSL experiments): ``clean`` (the clean source samples
only), ``raw`` (plus the whole web pool at ``rho``), ``cleaned`` (plus the web samples a filter
keeps). The encoder of every arm
is pre-trained on that arm's source data only, never on the full (plentiful) source data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from provenml.errors import ProvenmlError
from provenml.fewshot.datasets import FewShotBenchmark
from provenml.fewshot.denoise import filter_quality, make_filter
from provenml.fewshot.encoders import Conv1dEncoder, encode
from provenml.fewshot.heads import make_head
from provenml.fewshot.training import (
    FewShotClassifier,
    TrainSettings,
    evaluate_episodes,
    mean_and_ci,
    meta_train,
    pretrain_encoder,
)

ARMS = ("clean", "raw", "cleaned")


@dataclass
class PipelineSettings:
    """Everything an arm needs besides the data: model, training and test protocol."""

    channels: tuple[int, ...] = (16, 32, 32)
    feature_dim: int = 64
    train: TrainSettings = field(default_factory=TrainSettings)
    head_kwargs: dict[str, Any] = field(default_factory=dict)
    n_way: int = 5
    shots: tuple[int, ...] = (1, 5)
    test_query: int = 15
    test_episodes: int = 600
    filter_kwargs: dict[str, Any] = field(default_factory=dict)


def new_encoder(settings: PipelineSettings, seed: int, device: torch.device | str) -> Conv1dEncoder:
    """A freshly initialised encoder; the same ``seed`` gives every arm the same start."""
    torch.manual_seed(seed)
    return Conv1dEncoder(1, settings.channels, settings.feature_dim).to(device)


def pretrained_encoder(
    x: Tensor,
    labels: Tensor,
    settings: PipelineSettings,
    seed: int,
    device: torch.device | str,
) -> tuple[Conv1dEncoder, dict[str, float]]:
    """An encoder pre-trained (softmax over the source classes) on ``x``, ``labels``."""
    encoder = new_encoder(settings, seed, device)
    generator = torch.Generator().manual_seed(seed + 1)
    stats = pretrain_encoder(encoder, x, labels, settings.train, generator, device)
    stats["pretrain_samples"] = float(len(x))
    return encoder, stats


def encoder_state(
    x: Tensor, labels: Tensor, settings: PipelineSettings, seed: int, device: torch.device | str
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """The weights of an encoder pre-trained on ``x``, ``labels`` (to reuse it for several
    heads), and its pre-training statistics."""
    encoder, stats = pretrained_encoder(x, labels, settings, seed, device)
    return {k: v.detach().clone() for k, v in encoder.state_dict().items()}, stats


def encoder_from_state(
    state: dict[str, Tensor], settings: PipelineSettings, seed: int, device: torch.device | str
) -> Conv1dEncoder:
    """A fresh copy of a pre-trained encoder (each head fine-tunes its own copy)."""
    encoder = new_encoder(settings, seed, device)
    encoder.load_state_dict(state)
    return encoder


def train_and_test(
    encoder: Conv1dEncoder,
    head_name: str,
    x_train: Tensor,
    labels_train: Tensor,
    x_test: Tensor,
    labels_test: Tensor,
    settings: PipelineSettings,
    seed: int,
    device: torch.device | str,
    log: Callable[..., None] | None = None,
) -> dict[str, Any]:
    """Meta-train ``head_name`` on top of a (pre-trained) ``encoder``, then test it.

    Returns per-shot episode accuracies (``accuracy[k]``: a list, one value per test episode),
    their mean and 95% half-width, and the meta-training statistics. Test episodes are seeded by
    ``seed`` alone, so every arm and head of a seed sees the same episodes (paired).
    """
    torch.manual_seed(seed + 2)
    head_kwargs = dict(settings.head_kwargs)
    if head_name == "gnn":
        head_kwargs.setdefault("n_way", settings.n_way)
    head = make_head(head_name, settings.feature_dim, **_head_kwargs_for(head_name, head_kwargs))
    model = FewShotClassifier(encoder, head).to(device)
    train_stats = meta_train(model, x_train, labels_train, settings.train, seed + 3, device, log)
    out: dict[str, Any] = {"train": train_stats, "accuracy": {}, "mean": {}, "ci95": {}}
    for shot in settings.shots:
        acc = evaluate_episodes(
            model,
            x_test,
            labels_test,
            settings.n_way,
            shot,
            settings.test_query,
            settings.test_episodes,
            seed=10_000 + seed * 100 + shot,
            device=device,
        )
        mean, ci = mean_and_ci(acc)
        out["accuracy"][str(shot)] = [round(float(a), 5) for a in acc]
        out["mean"][str(shot)] = mean
        out["ci95"][str(shot)] = ci
    return out


_GRAPH_ONLY = ("d_hidden", "edge_hidden", "transductive")


def _head_kwargs_for(head_name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The shared head settings that apply to ``head_name`` (ProtoNet takes none)."""
    if head_name in ("protonet", "matchingnet"):
        return {}
    if head_name == "gnn":
        return {k: v for k, v in kwargs.items() if k in (*_GRAPH_ONLY, "n_way")}
    if head_name == "egnn":
        keep = (*_GRAPH_ONLY, "label_smoothing", "intermediate_weight")
        return {k: v for k, v in kwargs.items() if k in keep}
    return {k: v for k, v in kwargs.items() if k != "n_way"}


def source_indices(
    bench: FewShotBenchmark, arm: str, rho: float | None, kept: Tensor | None = None
) -> Tensor:
    """The training samples of an arm: clean source (+ the web pool at ``rho``, or ``kept``)."""
    if arm == "clean":
        return bench.clean_source
    if rho is None:
        raise ProvenmlError(f"arm {arm!r} needs a rho")
    if arm == "raw":
        return torch.cat([bench.clean_source, bench.web_pool(rho)])
    if arm == "cleaned":
        if kept is None:
            raise ProvenmlError("the cleaned arm needs the kept web samples")
        return torch.cat([bench.clean_source, kept])
    raise ProvenmlError(f"unknown arm {arm!r}; choose one of {', '.join(ARMS)}")


def clean_features(
    bench: FewShotBenchmark, settings: PipelineSettings, seed: int, device: torch.device | str
) -> tuple[Tensor, dict[str, float]]:
    """Features of every sample from an encoder pre-trained on the clean source data only
    (what a denoiser can use before any web sample is trusted)."""
    idx = bench.clean_source
    encoder, stats = pretrained_encoder(bench.x[idx], bench.labels[idx], settings, seed, device)
    return encode(encoder, bench.x.to(device)).cpu(), stats


def denoise_web(
    bench: FewShotBenchmark,
    rho: float,
    filter_name: str,
    features: Tensor,
    settings: PipelineSettings,
    seed: int,
    device: torch.device | str,
) -> tuple[Tensor, dict[str, float]]:
    """The web samples at ``rho`` that ``filter_name`` keeps, and its precision, recall and
    AUROC against the generator's ground truth."""
    web = bench.web_pool(rho)
    kwargs = {} if filter_name == "prototype" else dict(settings.filter_kwargs)
    flt = make_filter(filter_name, seed=seed, device=str(device), **kwargs)
    clean = bench.clean_source
    scores = flt.scores(features[clean], bench.labels[clean], features[web], bench.labels[web])
    quality = filter_quality(scores, bench.relevant(web)).as_dict()
    return web[scores > 0.5], quality


def with_train(settings: PipelineSettings, **changes: Any) -> PipelineSettings:
    """``settings`` with some :class:`TrainSettings` fields replaced."""
    return replace(settings, train=replace(settings.train, **changes))
