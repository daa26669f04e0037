"""S7 reproductions: ``ssl.dense_transfer`` (headline), ``ssl.overhead``, ``ssl.single_object``.

Every arm of a seed starts from the same backbone weights, sees the same pre-training batches
and views, and is evaluated with the same seeded protocols; only the method differs. Arms are
parts (``--jobs`` spreads them over the cores): random init needs no pre-training, MoCo-v2 and
DenseCL pre-train independently.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from provenml.core import Claim, Config, Member, Precondition, Result, RunContext, experiment
from provenml.core.compute import count_flops
from provenml.core.results import Table
from provenml.errors import ProvenmlError
from provenml.ssl import plots
from provenml.ssl.augment import TwoViewAugment, correspondence_overlap
from provenml.ssl.backbones import SmallResNet
from provenml.ssl.methods import DenseCL, MoCoV2
from provenml.ssl.pretrain import pretrain
from provenml.ssl.scenes import SceneSet, cached_scenes
from provenml.ssl.transfer import (
    EvaluationProtocol,
    evaluate_backbone,
    loss_fell,
    measure_correspondence,
)

ARMS = ("random", "mocov2", "densecl", "densecl_w1")
ARM_LABELS = {
    "random": "random init",
    "mocov2": "MoCo-v2",
    "densecl": "DenseCL",
    "densecl_w1": "DenseCL (w = 1)",
}
# costliest first: ``--jobs`` workers take the parts in this order
COST_ORDER = ("densecl", "densecl_w1", "mocov2", "random")
GAIN = 2.0  # the bar: DenseCL ahead of MoCo-v2 by at least 2 mIoU

# --------------------------------------------------------------------------------------------
# The shared configuration of the pre-training and evaluation pipeline
# --------------------------------------------------------------------------------------------

_SMOKE: dict[str, Any] = {
    "pretrain_images": 96,
    "widths": (8, 16, 16),
    "steps": 12,
    "batch_size": 16,
    "queue_size": 32,
    "warmup_steps": 2,
    "loss_window": 2,
    "labelled": 24,
    "few_labels": 8,
    "test_images": 24,
    "probe_steps": 5,
    "fcn_steps": 3,
    "fcn_batch": 8,
    "correspondence_images": 16,
    "log_every": 4,
}

# The paper's optimisation settings (MoCo-v2 / DenseCL: batch 256, lr 0.03, queue 65536,
# m = 0.999, 7x7 grid), 200 epochs over a COCO-sized set of procedural scenes (118k images),
# ResNet-18 stages at output stride 8 (8x8 grid on 64 px crops). For a GPU; not run here.
_PAPER: dict[str, Any] = {
    "pretrain_images": 118_000,
    "widths": (64, 128, 256, 512),
    "depth": 2,
    "crop_size": 64,
    "steps": 92_000,
    "batch_size": 256,
    "lr": 0.03,
    "queue_size": 65536,
    "key_momentum": 0.999,
    "warmup_steps": 1000,
    "loss_window": 500,
    "test_images": 2000,
    "probe_steps": 2000,
    "fcn_steps": 4000,
    "fcn_crop": 48,
    "correspondence_images": 1024,
    "log_every": 200,
}


@dataclass
class SSLConfig(Config):
    """Pre-training on procedural scenes, then the fixed evaluations (``small`` preset).

    Backbone: a GroupNorm ResNet with stages of 16, 32 and 64 channels (one basic block each,
    output stride 4: an 8x8 grid on the 32 px views, 16x16 on the 64 px scenes). Pre-training:
    the issue's 20k multi-object scenes, MoCo-v2's augmentations at 32 px, SGD (momentum 0.9,
    wd 1e-4, cosine), batch 64, T = 0.2, queue 2048, key momentum 0.99 (the MoCo CIFAR recipe's
    values for short runs), dense weight 0.5 after 40 warm-up steps. The learning rate is the
    papers' 0.03 at batch 256 (MoCo-v2; DenseCL's ImageNet recipe) scaled linearly to batch 64:
    0.0075. (Until stop 33 it was 0.06, the CIFAR recipe's value for batch 512, unscaled; at
    that rate the global loss does not fall within 1600 steps, docs/ssl.md.) 1600 steps (5
    epochs; 400 until stop 33): at 400 the global loss moves by less than its noise and fell
    on 2 of 3 seeds, so the issue's regime check could not pass.
    Evaluation: 500 labelled scenes (the first 100 for the few-label FCN), 1000 test scenes;
    the FCN is fine-tuned for 1200 steps, where the few-label FCN has converged on random init
    (28.30 mIoU at 1200 steps, 28.25 at 2400; it was 300 steps until stop 33).
    """

    arms: tuple[str, ...] = ARMS
    pretrain_images: int = 20_000
    data_seed: int = 0
    widths: tuple[int, ...] = (16, 32, 64)
    depth: int = 1
    stem_stride: int = 1
    norm: Literal["group", "batch", "split_batch"] = "group"
    crop_size: int = 32
    steps: int = 1600
    batch_size: int = 64
    lr: float = 0.0075
    weight_decay: float = 1e-4
    queue_size: int = 2048
    key_momentum: float = 0.99
    temperature: float = 0.2
    dim: int = 128
    dense_weight: float = 0.5
    warmup_steps: int = 40
    loss_window: int = 25
    labelled: int = 500
    few_labels: int = 100
    test_images: int = 1000
    probe_steps: int = 300
    probe_lr: float = 0.01
    fcn_steps: int = 1200
    fcn_batch: int = 16
    fcn_lr: float = 1e-3
    fcn_crop: int = 32
    knn_k: int = 20
    correspondence_images: int = 256
    log_every: int = 20

    presets: ClassVar[dict[str, dict[str, Any]]] = {"smoke": _SMOKE, "paper": _PAPER}

    def protocol(self, seed: int) -> EvaluationProtocol:
        return EvaluationProtocol(
            probe_steps=self.probe_steps,
            probe_lr=self.probe_lr,
            fcn_steps=self.fcn_steps,
            fcn_batch=self.fcn_batch,
            fcn_lr=self.fcn_lr,
            fcn_crop=self.fcn_crop,
            few_labels=self.few_labels,
            knn_k=self.knn_k,
            seed=seed,
        )


def _check_arms(arms: tuple[str, ...], allowed: tuple[str, ...] = ARMS) -> None:
    unknown = [a for a in arms if a not in allowed]
    if unknown or not arms:
        raise ProvenmlError(f"arms must be among {', '.join(allowed)}; got {list(arms)}")


def _scenes(cfg: SSLConfig, ctx: RunContext, kind: str, n: int, seed: int) -> SceneSet:
    return ctx.memo.cached(("ssl.scenes", kind, n, seed), lambda: cached_scenes(kind, n, seed))


def _backbone(cfg: SSLConfig, seed: int) -> SmallResNet:
    """The seed's initial backbone: every arm of a seed starts from these weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1_000_003 * seed + 17)
        return SmallResNet(cfg.widths, cfg.depth, cfg.stem_stride, cfg.norm)


def _method(cfg: SSLConfig, arm: str, backbone: SmallResNet, seed: int) -> DenseCL:
    common = {
        "image_size": cfg.crop_size,
        "dim": cfg.dim,
        "queue_size": cfg.queue_size,
        "momentum": cfg.key_momentum,
        "temperature": cfg.temperature,
    }
    with torch.random.fork_rng(devices=[]):  # heads and queues: the same draws in every arm
        torch.manual_seed(1_000_003 * seed + 29)
        if arm == "mocov2":
            return MoCoV2(backbone, **common)
        weight = 1.0 if arm == "densecl_w1" else cfg.dense_weight
        return DenseCL(backbone, dense_weight=weight, warmup_steps=cfg.warmup_steps, **common)


def _downsample(values: list[float], every: int) -> list[float]:
    return [float(v) for v in values[::every]]


def _run_arm(cfg: SSLConfig, ctx: RunContext, arm: str, pretrain_kind: str) -> dict[str, Any]:
    """Pre-train one arm (unless random init), check its regime, evaluate it."""
    labelled = _scenes(cfg, ctx, "multi", cfg.labelled, cfg.data_seed + 1)
    test = _scenes(cfg, ctx, "multi", cfg.test_images, cfg.data_seed + 2)
    backbone = _backbone(cfg, ctx.seed).to(ctx.device)
    augment = TwoViewAugment(crop_size=cfg.crop_size)
    record: dict[str, Any] = {"arm": arm, "pretrain_scenes": pretrain_kind}
    key_backbone = backbone
    if arm != "random":
        images = _scenes(cfg, ctx, pretrain_kind, cfg.pretrain_images, cfg.data_seed)
        model = _method(cfg, arm, backbone, ctx.seed).to(ctx.device)
        started = time.perf_counter()
        overlap: list[tuple[int, float, float]] = []

        with ctx.progress_bar(cfg.steps, f"{ARM_LABELS[arm]} pre-training") as bar:

            def on_step(step: int, out: Any, boxes_q: Any, boxes_k: Any) -> None:
                bar.advance()
                if step % cfg.log_every and step != cfg.steps - 1:
                    return
                entry = {
                    "arm": arm,
                    "pretrain_scenes": pretrain_kind,
                    "step": step,
                    "loss": float(out.loss.detach()),
                    "loss_global": float(out.loss_global.detach()),
                    "loss_dense": float(out.loss_dense.detach()),
                    "dense_weight": out.dense_weight,
                }
                if out.correspondence is not None:
                    grid_q = tuple(out.features_q.shape[-2:])
                    grid_k = tuple(out.features_k.shape[-2:])
                    matched, chance = correspondence_overlap(
                        out.correspondence.cpu(), boxes_q, boxes_k, grid_q, grid_k
                    )
                    overlap.append((step, matched, chance))
                    entry.update(overlap_matched=matched, overlap_chance=chance)
                ctx.log(**entry)

            history = pretrain(
                model,
                images.images,
                steps=cfg.steps,
                batch_size=cfg.batch_size,
                lr=cfg.lr,
                weight_decay=cfg.weight_decay,
                augment=augment,
                seed=1_000_003 * ctx.seed + 101,
                device=ctx.device,
                on_step=on_step,
            )
        record["pretrain_seconds"] = time.perf_counter() - started
        record["median_step_seconds"] = statistics.median(history.step_seconds)
        fill = math.ceil(cfg.queue_size / cfg.batch_size)
        fell, early, late = loss_fell(history.loss_global, fill, cfg.loss_window)
        record.update(loss_fell=fell, loss_early=early, loss_late=late)
        if model.uses_dense:
            start = max(fill, cfg.warmup_steps)
            dense_fell, dense_early, dense_late = loss_fell(
                history.loss_dense, start, cfg.loss_window
            )
            record.update(
                dense_loss_fell=dense_fell, dense_loss_early=dense_early, dense_loss_late=dense_late
            )
        every = max(1, cfg.steps // 200)
        record["curve"] = {
            "step": list(range(0, cfg.steps, every)),
            "loss_global": _downsample(history.loss_global, every),
            "loss_dense": _downsample(history.loss_dense, every),
            "dense_weight": _downsample(history.dense_weight, every),
        }
        record["overlap_during_training"] = overlap
        backbone, key_backbone = model.backbone, model.key_backbone
    held_out = _scenes(cfg, ctx, "multi", cfg.correspondence_images, cfg.data_seed + 3)
    matched, chance = measure_correspondence(
        backbone, key_backbone, held_out.images, augment, seed=1_000_003 * ctx.seed + 7
    )
    record.update(overlap_matched=matched, overlap_chance=chance)
    started = time.perf_counter()
    scores = evaluate_backbone(backbone, labelled, test, cfg.protocol(1_000_003 * ctx.seed + 3))
    record["eval_seconds"] = time.perf_counter() - started
    record.update(scores.to_dict())
    ctx.log(arm=arm, pretrain_scenes=pretrain_kind, **{k: record[k] for k in _SCORES})
    return record


_SCORES = ("probe", "fcn_few", "fcn_all", "knn")


def _arm_parts(allowed: tuple[str, ...]) -> Any:
    def parts(cfg: SSLConfig) -> list[dict[str, Any]]:
        _check_arms(cfg.arms, allowed)
        return [{"arms": (arm,)} for arm in sorted(cfg.arms, key=COST_ORDER.index)]

    return parts


def _merged(parts: list[Result]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for part in parts:
        merged.update(part.data["arms"])
    return merged


# --------------------------------------------------------------------------------------------
# ssl.dense_transfer
# --------------------------------------------------------------------------------------------


def _regime(cfg: SSLConfig, runs: dict[str, dict[str, Any]]) -> tuple[bool, list[str]]:
    """The issue's regime checks before a failed claim is accepted; (all hold, what failed)."""
    failed = []
    for arm in ("mocov2", "densecl"):
        if arm in runs and not runs[arm]["loss_fell"]:
            failed.append(f"{ARM_LABELS[arm]}'s pre-training loss did not fall")
    if "densecl" in runs:
        run = runs["densecl"]
        if not run.get("dense_loss_fell", False):
            failed.append("DenseCL's dense loss did not fall")
        if not run["overlap_matched"] > run["overlap_chance"]:
            failed.append("DenseCL's correspondences overlap no more often than chance")
    if "random" in runs:
        ceiling = max(r["fcn_all"] for r in runs.values())
        if not runs["random"]["probe"] + GAIN <= ceiling:
            failed.append(
                f"random init's probe is within {GAIN} mIoU of the best FCN with all labels "
                "(saturated)"
            )
    return not failed, failed


def _transfer_claims(cfg: SSLConfig, runs: dict[str, dict[str, Any]]) -> list[Claim]:
    claims: list[Claim] = []
    ok, failed = _regime(cfg, runs)
    regime = Precondition(
        reason=(
            "regime check failed: " + "; ".join(failed)
            if failed
            else "regime check: pre-training losses fell, correspondences beat chance, "
            "the probe is not saturated"
        ),
        holds=[ok],
    )
    if {"densecl", "mocov2"} <= set(runs):
        d, m = runs["densecl"], runs["mocov2"]
        claims.append(
            Claim(
                key="probe_gain",
                statement=f"DenseCL beats MoCo-v2 by >= {GAIN:g} mIoU with a frozen 1x1-conv probe",
                metric="probe mIoU (%) on the fixed test scenes",
                ours_label="DenseCL",
                ours=[d["probe"]],
                baselines={"MoCo-v2": [m["probe"]]},
                comparison=">=",
                margin=GAIN,
                precondition=regime,
            )
        )
        claims.append(
            Claim(
                key="fcn_few_gain",
                statement=f"DenseCL beats MoCo-v2 by >= {GAIN:g} mIoU after FCN fine-tuning on "
                f"{cfg.few_labels} labelled images",
                metric=f"FCN mIoU (%) with {cfg.few_labels} labels, fixed test scenes",
                ours_label="DenseCL",
                ours=[d["fcn_few"]],
                baselines={"MoCo-v2": [m["fcn_few"]]},
                comparison=">=",
                margin=GAIN,
                precondition=regime,
            )
        )
    pretrained = [a for a in ("mocov2", "densecl") if a in runs]
    if "random" in runs and pretrained:
        r = runs["random"]
        members = {
            f"{ARM_LABELS[a]}, {name}": Member([runs[a][key]], {"random init": [r[key]]})
            for a in pretrained
            for key, name in (("probe", "probe"), ("fcn_few", f"FCN {cfg.few_labels}"))
        }
        claims.append(
            Claim(
                key="beat_random",
                statement="MoCo-v2 and DenseCL both beat random init on the probe and on FCN "
                f"with {cfg.few_labels} labels",
                metric="mIoU (%) on the fixed test scenes",
                ours_label="pre-trained",
                comparison=">",
                members=members,
            )
        )
    return claims


def _arm_table(cfg: SSLConfig, runs: dict[str, dict[str, Any]], title: str) -> Table:
    rows = []
    for arm, r in runs.items():
        rows.append(
            [
                ARM_LABELS.get(arm, arm),
                r["probe"],
                r["fcn_few"],
                r["fcn_all"],
                r["knn"],
                r["overlap_matched"],
                r["overlap_chance"],
                r.get("loss_early"),
                r.get("loss_late"),
                r.get("pretrain_seconds"),
            ]
        )
    columns = [
        "arm",
        "probe mIoU",
        f"FCN {cfg.few_labels} mIoU",
        f"FCN {cfg.labelled} mIoU",
        "kNN acc",
        "overlap matched",
        "overlap chance",
        "L_q early",
        "L_q late",
        "pre-train s",
    ]
    return Table(title, columns, rows)


def _arm_summary(runs: dict[str, dict[str, Any]], prefix: str = "") -> dict[str, float]:
    summary: dict[str, float] = {}
    for arm, r in runs.items():
        for key in _SCORES:
            summary[f"{prefix}{key}/{arm}"] = r[key]
        summary[f"{prefix}regime/overlap_matched/{arm}"] = r["overlap_matched"]
        summary[f"{prefix}regime/overlap_chance/{arm}"] = r["overlap_chance"]
        if "loss_fell" in r:
            summary[f"{prefix}regime/loss_fell/{arm}"] = float(r["loss_fell"])
            summary[f"{prefix}regime/loss_early/{arm}"] = r["loss_early"]
            summary[f"{prefix}regime/loss_late/{arm}"] = r["loss_late"]
            summary[f"{prefix}time/pretrain_s/{arm}"] = r["pretrain_seconds"]
            summary[f"{prefix}time/step_s/{arm}"] = r["median_step_seconds"]
        if "dense_loss_fell" in r:
            summary[f"{prefix}regime/dense_loss_fell/{arm}"] = float(r["dense_loss_fell"])
            summary[f"{prefix}regime/dense_loss_early/{arm}"] = r["dense_loss_early"]
            summary[f"{prefix}regime/dense_loss_late/{arm}"] = r["dense_loss_late"]
        summary[f"{prefix}time/eval_s/{arm}"] = r["eval_seconds"]
    return summary


def _transfer_result(cfg: SSLConfig, runs: dict[str, dict[str, Any]], ctx: RunContext) -> Result:
    runs = {arm: runs[arm] for arm in cfg.arms if arm in runs}
    plots.transfer_seed(runs, ctx)
    summary = _arm_summary(runs)
    notes = []
    if {"densecl", "mocov2"} <= set(runs):
        d, m = runs["densecl"], runs["mocov2"]
        for key in ("probe", "fcn_few", "fcn_all", "knn"):
            summary[f"gap/{key}"] = d[key] - m[key]
        leader = "MoCo-v2" if m["knn"] > d["knn"] else "DenseCL"
        notes.append(
            f"kNN sanity check (image level, not a claim): MoCo-v2 {m['knn']:.1f}%, DenseCL "
            f"{d['knn']:.1f}%: {leader} ahead"
        )
    ok, failed = _regime(cfg, runs)
    summary["regime/ok"] = float(ok)
    if failed:
        notes.append("regime check failed: " + "; ".join(failed))
    return Result(
        claims=_transfer_claims(cfg, runs),
        summary=summary,
        data={"arms": runs},
        notes=notes,
        tables=[_arm_table(cfg, runs, "dense transfer, per arm")],
    )


def _summarize_transfer(results: list[Result], ctx: RunContext) -> list[Table]:
    plots.transfer_summary([r.data["arms"] for r in results], ctx)
    return [plots.mean_table([r.data["arms"] for r in results], ARM_LABELS)]


@experiment(
    "ssl.dense_transfer",
    system="S7",
    claim="DenseCL beats MoCo-v2 by >= 2 mIoU on a frozen probe and on FCN with 100 labels "
    "after pre-training on multi-object scenes; both beat random init",
    config=SSLConfig,
    time={
        "smoke": "20 s",
        "small": "33.7 min measured, idle (3 seeds, --jobs 2, load 1.0-2.15)",
        "paper": "GPU days",
    },
    summarize=_summarize_transfer,
    parts=_arm_parts(ARMS),
    merge=lambda cfg, parts, ctx: _transfer_result(cfg, _merged(parts), ctx),
    threads=1,
    claims=("probe_gain", "fcn_few_gain", "beat_random"),
)
def dense_transfer(cfg: SSLConfig, ctx: RunContext) -> Result:
    _check_arms(cfg.arms)
    runs = {arm: _run_arm(cfg, ctx, arm, "multi") for arm in cfg.arms}
    return _transfer_result(cfg, runs, ctx)


# --------------------------------------------------------------------------------------------
# ssl.single_object
# --------------------------------------------------------------------------------------------

SCENE_KINDS = ("multi", "single")


@dataclass
class SingleObjectConfig(SSLConfig):
    """``ssl.dense_transfer``'s pipeline with MoCo-v2 and DenseCL pre-trained on multi-object
    scenes and, separately, on single-object centred scenes; the same downstream evaluation."""

    arms: tuple[str, ...] = ("mocov2", "densecl")
    pretrain_sets: tuple[str, ...] = SCENE_KINDS


def _single_parts(cfg: SingleObjectConfig) -> list[dict[str, Any]]:
    _check_arms(cfg.arms, ("mocov2", "densecl"))
    _check_sets(cfg.pretrain_sets)
    return [
        {"arms": (arm,), "pretrain_sets": (kind,)}
        for kind in cfg.pretrain_sets
        for arm in sorted(cfg.arms, key=COST_ORDER.index)
    ]


def _check_sets(sets: tuple[str, ...]) -> None:
    if not sets or any(s not in SCENE_KINDS for s in sets):
        raise ProvenmlError(f"pretrain_sets must be among {', '.join(SCENE_KINDS)}; got {sets}")


def _single_result(
    cfg: SingleObjectConfig, runs: dict[str, dict[str, Any]], ctx: RunContext
) -> Result:
    """``runs`` keyed ``"<scenes>/<arm>"``."""
    by_kind = {
        kind: {arm: runs[f"{kind}/{arm}"] for arm in cfg.arms if f"{kind}/{arm}" in runs}
        for kind in cfg.pretrain_sets
    }
    summary: dict[str, float] = {}
    gaps: dict[str, dict[str, float]] = {}
    for kind, kind_runs in by_kind.items():
        summary.update(_arm_summary(kind_runs, prefix=f"{kind}/"))
        if {"densecl", "mocov2"} <= set(kind_runs):
            gaps[kind] = {
                key: kind_runs["densecl"][key] - kind_runs["mocov2"][key] for key in _SCORES
            }
            for key, gap in gaps[kind].items():
                summary[f"{kind}/gap/{key}"] = gap
    plots.single_object_seed(by_kind, ctx)
    claims = []
    if set(SCENE_KINDS) <= set(gaps):
        for key, name in (("probe", "probe"), ("fcn_few", f"FCN with {cfg.few_labels} labels")):
            claims.append(
                Claim(
                    key=f"gap_shrinks_{key}",
                    statement=f"DenseCL's gain over MoCo-v2 ({name}) is smaller after "
                    "pre-training on single-object centred scenes than on multi-object scenes",
                    metric=f"DenseCL - MoCo-v2 mIoU ({name}), same multi-object test scenes",
                    ours_label="gap, single-object pre-training",
                    ours=[gaps["single"][key]],
                    baselines={"gap, multi-object pre-training": [gaps["multi"][key]]},
                    comparison="<",
                    precondition=Precondition.compare(
                        "DenseCL shows no gain over MoCo-v2 after multi-object pre-training, "
                        "so there is no gap to shrink",
                        [gaps["multi"][key]],
                        ">",
                        [0.0],
                    ),
                )
            )
    tables = [
        _arm_table(cfg, kind_runs, f"pre-trained on {kind}-object scenes")
        for kind, kind_runs in by_kind.items()
    ]
    return Result(claims=claims, summary=summary, data={"arms": runs}, tables=tables)


def _summarize_single(results: list[Result], ctx: RunContext) -> None:
    plots.single_object_summary([r.summary for r in results], ctx)


@experiment(
    "ssl.single_object",
    system="S7",
    claim="DenseCL's gain over MoCo-v2 shrinks when pre-training on single-object centred "
    "scenes instead of multi-object ones (the mechanism, not a tuning accident)",
    config=SingleObjectConfig,
    time={
        "smoke": "20 s",
        "small": "47.6 min measured, idle (3 seeds, --jobs 2, load 0.2-2.0; stop 66); 43 min "
        "beside make test at an earlier stop (load 1.2-4.8)",
        "paper": "GPU days",
    },
    summarize=_summarize_single,
    parts=_single_parts,
    merge=lambda cfg, parts, ctx: _single_result(cfg, _merged(parts), ctx),
    threads=1,
    claims=("gap_shrinks_probe", "gap_shrinks_fcn_few"),
)
def single_object(cfg: SingleObjectConfig, ctx: RunContext) -> Result:
    _check_arms(cfg.arms, ("mocov2", "densecl"))
    _check_sets(cfg.pretrain_sets)
    runs = {
        f"{kind}/{arm}": _run_arm(cfg, ctx, arm, kind)
        for kind in cfg.pretrain_sets
        for arm in cfg.arms
    }
    return _single_result(cfg, runs, ctx)


# --------------------------------------------------------------------------------------------
# ssl.overhead
# --------------------------------------------------------------------------------------------

OVERHEAD = 1.05  # the goal: DenseCL at most 5% slower per iteration than MoCo-v2


@dataclass
class OverheadConfig(Config):
    """Time per training iteration (forward, backward, SGD step; the views are made once per
    iteration and shared) of DenseCL and MoCo-v2, interleaved in one process, on two
    pipelines: ``transfer``, the one ``ssl.dense_transfer`` pre-trains with, and
    ``resnet18``, ResNet-18's stages at 224 px with the paper's 7x7 grid and 65536-key queues.
    """

    pipelines: tuple[str, ...] = ("transfer", "resnet18")
    iterations: int = 20
    warmup_iterations: int = 3
    transfer_batch: int = 64
    resnet18_batch: int = 8
    resnet18_crop: int = 224
    resnet18_queue: int = 65536

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "iterations": 3,
            "warmup_iterations": 1,
            "transfer_batch": 8,
            "resnet18_batch": 2,
            "resnet18_crop": 64,
            "resnet18_queue": 256,
        },
        "paper": {"iterations": 100, "warmup_iterations": 10, "resnet18_batch": 64},
    }


def _pipeline(cfg: OverheadConfig, name: str) -> tuple[dict[str, Any], int, int]:
    """(model settings, batch, crop) of a pipeline."""
    if name == "transfer":
        base = SSLConfig()
        backbone = {"widths": base.widths, "depth": base.depth, "stem_stride": base.stem_stride}
        return (
            {"backbone": backbone, "queue_size": base.queue_size, "momentum": base.key_momentum},
            cfg.transfer_batch,
            base.crop_size,
        )
    if name == "resnet18":
        backbone = {"widths": (64, 128, 256, 512), "depth": 2, "stem_stride": 2, "stem_pool": True}
        return (
            {"backbone": backbone, "queue_size": cfg.resnet18_queue, "momentum": 0.999},
            cfg.resnet18_batch,
            cfg.resnet18_crop,
        )
    raise ProvenmlError(f"pipelines must be among transfer, resnet18; got {name!r}")


def _time_pipeline(cfg: OverheadConfig, name: str, ctx: RunContext) -> dict[str, Any]:
    settings, batch, crop = _pipeline(cfg, name)
    torch.manual_seed(1_000_003 * ctx.seed + 5)
    backbone = SmallResNet(**settings["backbone"])
    common = {
        "image_size": crop,
        "queue_size": settings["queue_size"],
        "momentum": settings["momentum"],
    }
    models = {
        "mocov2": MoCoV2(SmallResNet(**settings["backbone"]), **common).to(ctx.device),
        "densecl": DenseCL(backbone, **common).to(ctx.device),
    }
    models["mocov2"].backbone.load_state_dict(backbone.state_dict())
    optimizers = {
        k: torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.03, momentum=0.9)
        for k, m in models.items()
    }
    augment = TwoViewAugment(crop_size=crop)
    generator = torch.Generator().manual_seed(ctx.seed)
    source = max(crop, 64)
    images = torch.randint(
        0, 256, (batch, 3, source, source), dtype=torch.uint8, generator=generator
    )

    def step(arm: str, view_q: torch.Tensor, view_k: torch.Tensor) -> None:
        out = models[arm](view_q, view_k)
        optimizers[arm].zero_grad(set_to_none=True)
        out.loss.backward()
        optimizers[arm].step()

    def synced() -> None:
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)

    flops = {}
    view_q, view_k, _, _ = augment(images, generator)
    view_q, view_k = view_q.to(ctx.device), view_k.to(ctx.device)
    for arm in models:
        _, flops[arm] = count_flops(step, arm, view_q, view_k)
    seconds: dict[str, list[float]] = {arm: [] for arm in models}
    total = cfg.warmup_iterations + cfg.iterations
    with ctx.progress_bar(total, f"timing {name}") as bar:
        for i in range(total):
            view_q, view_k, _, _ = augment(images, generator)
            view_q, view_k = view_q.to(ctx.device), view_k.to(ctx.device)
            order = ("mocov2", "densecl") if i % 2 == 0 else ("densecl", "mocov2")
            for arm in order:
                synced()
                start = time.perf_counter()
                step(arm, view_q, view_k)
                synced()
                if i >= cfg.warmup_iterations:
                    seconds[arm].append(time.perf_counter() - start)
            bar.advance()
    medians = {arm: statistics.median(values) for arm, values in seconds.items()}
    grid = tuple(models["densecl"].backbone(view_q[:1]).shape[-2:])
    return {
        "batch": batch,
        "crop": crop,
        "grid": list(grid),
        "queue_size": settings["queue_size"],
        "seconds": seconds,
        "median_seconds": medians,
        "time_ratio": medians["densecl"] / medians["mocov2"],
        "flops": flops,
        "flops_ratio": flops["densecl"] / flops["mocov2"],
    }


@experiment(
    "ssl.overhead",
    system="S7",
    headline=True,
    claim="a DenseCL training iteration costs at most 1.05x a MoCo-v2 iteration",
    config=OverheadConfig,
    time={
        "smoke": "10 s",
        "small": "1.7 min measured (make demo, alone, load 1.2-2.6; 1 seed)",
        "paper": "minutes (GPU)",
    },
    threads=1,
    claims=("time_overhead_*",),
)
def overhead(cfg: OverheadConfig, ctx: RunContext) -> Result:
    for name in cfg.pipelines:
        _pipeline(cfg, name)  # unknown names fail before anything runs
    runs = {name: _time_pipeline(cfg, name, ctx) for name in cfg.pipelines}
    claims = []
    summary: dict[str, float] = {}
    rows = []
    for name, run in runs.items():
        claims.append(
            Claim(
                key=f"time_overhead_{name}",
                statement=f"DenseCL's iteration is at most {OVERHEAD}x MoCo-v2's ({name} pipeline)",
                metric="median seconds per iteration, DenseCL / MoCo-v2 (interleaved)",
                ours_label="DenseCL / MoCo-v2",
                ours=[run["time_ratio"]],
                comparison="<=",
                threshold=1.05,
            )
        )
        summary[f"time_ratio/{name}"] = run["time_ratio"]
        summary[f"flops_ratio/{name}"] = run["flops_ratio"]
        for arm in ("mocov2", "densecl"):
            summary[f"median_s/{name}/{arm}"] = run["median_seconds"][arm]
            summary[f"gflops/{name}/{arm}"] = run["flops"][arm] / 1e9
        rows.append(
            [
                name,
                f"{run['crop']} px, batch {run['batch']}, grid {run['grid']}, "
                f"queue {run['queue_size']}",
                run["median_seconds"]["mocov2"],
                run["median_seconds"]["densecl"],
                run["time_ratio"],
                run["flops"]["mocov2"] / 1e9,
                run["flops"]["densecl"] / 1e9,
                run["flops_ratio"],
            ]
        )
    plots.overhead(runs, ctx)
    table = Table(
        "time and FLOPs per training iteration",
        [
            "pipeline",
            "shape",
            "MoCo-v2 s",
            "DenseCL s",
            "time ratio",
            "MoCo-v2 GFLOP",
            "DenseCL GFLOP",
            "FLOPs ratio",
        ],
        rows,
    )
    return Result(claims=claims, summary=summary, data={"pipelines": runs}, tables=[table])
