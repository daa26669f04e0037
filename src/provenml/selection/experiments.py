"""Reproductions of S1 (Evans et al. 2024; Mindermann et al. 2022): config, wiring and claims.

* ``selection.noisy_labels`` (headline): MNIST-1D with 30% symmetric label noise; learnability
  scored by proxy models with about 1/50 of the learner's FLOPs per example (the paper's ViT-Ti
  scorers for a ViT-L learner), against uniform sampling, RHO-LOSS and the two one-sided
  ablations.
* ``selection.scorer_size``: the actor/reference width (8 to 256) against update and compute
  savings.
* ``selection.clean_control``: the same without label noise (little or no gain is expected).
* ``selection.text``: a byte-level transformer on the standard library's source, 30% of the
  training windows corrupted.
* ``selection.images``: a small CNN on scikit-learn's digits (upsampled, shifted), 30% label
  noise.

Every arm of one seed trains the same learner initialisation on the same pool (see
:mod:`provenml.selection.runner`); each run (arm, or scorer width) is one ``part``, so
``--jobs`` spreads them over the cores. Scores are measured against uniform's final metric.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from provenml.core import (
    Claim,
    Config,
    Member,
    Published,
    Result,
    RunContext,
    Table,
    experiment,
    flatten_summary,
)
from provenml.errors import ProvenmlError
from provenml.selection import plots
from provenml.selection.runner import (
    ARMS,
    USES_REFERENCE,
    ArmRun,
    Reference,
    build_reference,
    learner_for,
    run_arm,
    savings,
)
from provenml.selection.tasks import SelectionTask, images_task, mnist1d_task, text_task
from provenml.selection.text import CORRUPTIONS

PAPER_UPDATE_SAVING = Published(
    0.46,
    source="Evans et al. 2024, abstract: 46% (JFT) and 51% (ALIGN) fewer training updates",
)
PAPER_COMPUTE_SAVING = Published(
    0.25, source="Evans et al. 2024, abstract: up to 25% less total computation"
)
PAPER_TINY_SCORER_SAVING = Published(
    0.26,
    source="Evans et al. 2024, scorer-size sweep as quoted in issue 21: ViT-Ti scorers for a "
    "ViT-L learner (about 54x fewer FLOPs) save 26% of the steps",
)
PLATEAU_QUARTER = 0.25
"""The plateau check looks at uniform's gain over the last quarter of its updates."""


# ------------------------------------------------------------------------------------------
# Configs
# ------------------------------------------------------------------------------------------


def _positive(cfg: Any, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ProvenmlError(f"{name} must be positive, got {value!r}")


@dataclass
class SelectionConfig:
    """Fields shared by every S1 reproduction (mixed into each config).

    ``only`` restricts a unit to some of the experiment's runs (an arm, or ``width_W``); the
    runner sets it for each ``part``, and it can be set by hand to train fewer runs (claims
    are made only when every run their statement needs is present).
    """

    noise: float = 0.3
    steps: int = 2000
    batch_size: int = 64
    rho: float = 0.5
    lr: float = 1e-3
    scorer_width: int = 32
    scorer_lr: float = 3e-3
    reference_steps: int = 2000
    reference_batch_size: int = 128
    temperature: float = 1.0
    eval_every: int = 100
    smooth: int = 3
    data_seed: int = 0
    arms: tuple[str, ...] = ("uniform", "learnability")
    only: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Every field in range, before anything runs (``--set`` values included)."""
        _positive(
            self,
            "steps",
            "batch_size",
            "lr",
            "scorer_width",
            "scorer_lr",
            "reference_steps",
            "reference_batch_size",
            "temperature",
            "eval_every",
            "smooth",
        )
        for name in ("steps", "batch_size", "scorer_width", "reference_steps", "eval_every"):
            if not isinstance(getattr(self, name), int):
                raise ProvenmlError(f"{name} must be an integer, got {getattr(self, name)!r}")
        if not 0 <= self.noise < 1:
            raise ProvenmlError(f"noise must be in [0, 1), got {self.noise}")
        if not 0 < self.rho <= 1:
            raise ProvenmlError(f"rho must be in (0, 1], got {self.rho}")
        if not self.arms:
            raise ProvenmlError(f"arms must name at least one of {', '.join(ARMS)}")
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise ProvenmlError(f"unknown arms {unknown}; choose from {', '.join(ARMS)}")
        if len(set(self.arms)) != len(self.arms):
            raise ProvenmlError(f"arms lists a name twice: {list(self.arms)}")
        labels = [label for label, _, _ in self.runs()]
        stray = [o for o in self.only if o not in labels]
        if stray:
            raise ProvenmlError(f"only names unknown runs {stray}; this config has {labels}")

    def runs(self) -> list[tuple[str, str, int]]:
        """Every ``(label, arm, scorer width)`` the experiment trains (uniform always first)."""
        arms = ["uniform", *(a for a in self.arms if a != "uniform")]
        return [(arm, arm, self.scorer_width) for arm in arms]

    def unit_runs(self) -> list[tuple[str, str, int]]:
        """The runs this unit trains (``only``, or all)."""
        return [r for r in self.runs() if not self.only or r[0] in self.only]

    def task(self, seed: int) -> SelectionTask:  # pragma: no cover - each task overrides
        raise NotImplementedError

    def task_key(self) -> tuple[Any, ...]:
        """Every field the task's data depends on (for ``ctx.memo``)."""
        raise NotImplementedError  # pragma: no cover - each task overrides


@dataclass
class MnistFields(SelectionConfig):
    """MNIST-1D: 60k examples, a 40k pool, clean 10k holdout and 10k test; learner 40-512-512."""

    num_samples: int = 60000
    holdout: int = 10000
    test: int = 10000
    learner_hidden: tuple[int, ...] = (512, 512)
    steps: int = 6000  # uniform has flattened by then (the plateau check records it)
    eval_every: int = 200

    def validate(self) -> None:
        super().validate()
        _positive(self, "num_samples", "holdout", "test")
        if self.holdout + self.test >= self.num_samples:
            raise ProvenmlError(
                f"holdout ({self.holdout}) + test ({self.test}) must be fewer than num_samples "
                f"({self.num_samples})"
            )
        if not self.learner_hidden or any(h < 1 for h in self.learner_hidden):
            raise ProvenmlError(
                f"learner_hidden must be positive widths, got {self.learner_hidden}"
            )

    def task_key(self) -> tuple[Any, ...]:
        return ("mnist1d", self.num_samples, self.holdout, self.test, self.noise, self.data_seed)

    def task(self, seed: int) -> SelectionTask:
        return mnist1d_task(
            self.num_samples,
            holdout=self.holdout,
            test=self.test,
            noise=self.noise,
            learner_hidden=self.learner_hidden,
            data_seed=self.data_seed,
            noise_seed=seed,
        )


_MNIST_SMOKE: dict[str, Any] = {
    "num_samples": 2000,
    "holdout": 400,
    "test": 400,
    "steps": 40,
    "eval_every": 10,
    "reference_steps": 30,
}
_MNIST_PAPER: dict[str, Any] = {
    "num_samples": 200000,
    "holdout": 40000,
    "test": 20000,
    "steps": 20000,
    "reference_steps": 10000,
    "eval_every": 500,
}
HEADLINE_ARMS = ("uniform", "learnability", "rho_loss", "hard_learner", "easy_reference")


@dataclass
class NoisyLabelsConfig(Config, MnistFields):
    """The headline: scorers MLP 40-115-10, 2 x 115 x 50 = 11.5k forward FLOPs per example
    against the learner's 575k (a ratio of 1/50, measured in every run)."""

    scorer_width: int = 115
    arms: tuple[str, ...] = HEADLINE_ARMS
    presets: ClassVar[dict[str, dict[str, Any]]] = {"smoke": _MNIST_SMOKE, "paper": _MNIST_PAPER}


@dataclass
class ScorerSizeConfig(Config, MnistFields):
    """Learnability with actor = reference = MLP 40-w-10 for each width w, against uniform."""

    widths: tuple[int, ...] = (8, 32, 128, 256)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {**_MNIST_SMOKE, "widths": (8, 32, 128)},
        "paper": {**_MNIST_PAPER, "widths": (8, 16, 32, 64, 128, 256, 512, 1024)},
    }

    def validate(self) -> None:
        if not self.widths or any(w < 1 for w in self.widths):
            raise ProvenmlError(f"widths must be positive integers, got {list(self.widths)}")
        if len(set(self.widths)) < 2:
            raise ProvenmlError(f"widths needs two or more distinct widths, got {self.widths}")
        super().validate()

    def runs(self) -> list[tuple[str, str, int]]:
        out = [("uniform", "uniform", self.scorer_width)]
        return out + [(f"width_{w}", "learnability", w) for w in sorted(set(self.widths))]


@dataclass
class CleanControlConfig(Config, MnistFields):
    """The headline's setting without label noise."""

    noise: float = 0.0
    scorer_width: int = 115
    arms: tuple[str, ...] = ("uniform", "learnability", "learnability_topk", "rho_loss")
    presets: ClassVar[dict[str, dict[str, Any]]] = {"smoke": _MNIST_SMOKE, "paper": _MNIST_PAPER}


@dataclass
class TextConfig(Config, SelectionConfig):
    """Byte-level LM on the standard library's source; 30% of the pool windows corrupted."""

    corruption: str = "shuffle"
    corpus_bytes: int = 4_000_000
    window: int = 64
    pool_windows: int = 20000
    holdout_windows: int = 8000
    valid_windows: int = 512
    learner_dim: int = 64
    learner_layers: int = 2
    heads: int = 4
    scorer_width: int = 16
    batch_size: int = 32
    steps: int = 1000
    eval_every: int = 50
    reference_steps: int = 1000
    reference_batch_size: int = 32
    # scores are per-window means (nats/byte); 1/64 makes softmax(score / T) the softmax of the
    # window's total NLL difference over its 64 predicted bytes, i.e. per-example losses at T=1
    temperature: float = 1 / 64
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {
            "corpus_bytes": 400_000,
            "pool_windows": 1000,
            "holdout_windows": 400,
            "valid_windows": 64,
            "window": 32,
            "temperature": 1 / 32,
            "learner_dim": 32,
            "steps": 30,
            "eval_every": 10,
            "reference_steps": 30,
            "batch_size": 16,
        },
        "paper": {
            "corpus_bytes": 30_000_000,
            "window": 256,
            "temperature": 1 / 256,
            "pool_windows": 100000,
            "holdout_windows": 20000,
            "valid_windows": 2048,
            "learner_dim": 256,
            "learner_layers": 6,
            "heads": 8,
            "scorer_width": 64,
            "batch_size": 64,
            "steps": 20000,
            "eval_every": 500,
            "reference_steps": 10000,
        },
    }

    def validate(self) -> None:
        super().validate()
        _positive(
            self,
            "corpus_bytes",
            "window",
            "pool_windows",
            "holdout_windows",
            "valid_windows",
            "learner_dim",
            "learner_layers",
            "heads",
        )
        if self.corruption not in CORRUPTIONS:
            raise ProvenmlError(
                f"corruption must be one of {', '.join(CORRUPTIONS)}, got {self.corruption!r}"
            )
        if self.learner_dim % self.heads:
            raise ProvenmlError(
                f"learner_dim ({self.learner_dim}) must be divisible by heads ({self.heads})"
            )

    def task_key(self) -> tuple[Any, ...]:
        return (
            "text",
            self.corruption,
            self.corpus_bytes,
            self.window,
            self.pool_windows,
            self.holdout_windows,
            self.valid_windows,
            self.noise,
            self.learner_dim,
            self.learner_layers,
            self.heads,
            self.data_seed,
        )

    def task(self, seed: int) -> SelectionTask:
        return text_task(
            corpus_bytes=self.corpus_bytes,
            window=self.window,
            pool_windows=self.pool_windows,
            holdout_windows=self.holdout_windows,
            valid_windows=self.valid_windows,
            noise=self.noise,
            corruption=self.corruption,  # type: ignore[arg-type]
            learner_dim=self.learner_dim,
            learner_layers=self.learner_layers,
            heads=self.heads,
            data_seed=self.data_seed,
            noise_seed=seed,
        )


@dataclass
class ImagesConfig(Config, SelectionConfig):
    """A small CNN on scikit-learn's digits (16x16, 4 shifted copies per training digit)."""

    size: int = 16
    holdout: int = 360
    test: int = 360
    copies: int = 4
    shift: int = 2
    learner_channels: tuple[int, ...] = (16, 32)
    scorer_width: int = 2
    batch_size: int = 32
    steps: int = 1500
    eval_every: int = 50
    reference_steps: int = 1000
    reference_batch_size: int = 32
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"copies": 1, "steps": 30, "eval_every": 10, "reference_steps": 30},
        "paper": {"copies": 20, "learner_channels": (64, 128), "scorer_width": 8, "steps": 20000},
    }

    def validate(self) -> None:
        super().validate()
        _positive(self, "size", "holdout", "test", "copies")
        if self.shift < 0:
            raise ProvenmlError(f"shift must be >= 0, got {self.shift}")
        if self.size % 4:
            raise ProvenmlError(f"size must be a multiple of 4 (two 2x2 poolings), got {self.size}")
        if not self.learner_channels or any(c < 1 for c in self.learner_channels):
            raise ProvenmlError(f"learner_channels must be positive, got {self.learner_channels}")

    def task_key(self) -> tuple[Any, ...]:
        return (
            "images",
            self.size,
            self.holdout,
            self.test,
            self.copies,
            self.shift,
            self.noise,
            tuple(self.learner_channels),
            self.data_seed,
        )

    def task(self, seed: int) -> SelectionTask:
        return images_task(
            size=self.size,
            holdout=self.holdout,
            test=self.test,
            copies=self.copies,
            shift=self.shift,
            noise=self.noise,
            learner_channels=self.learner_channels,
            data_seed=self.data_seed,
            noise_seed=seed,
        )


# ------------------------------------------------------------------------------------------
# Training the runs of one seed (all of them, or one part)
# ------------------------------------------------------------------------------------------


def _parts(cfg: SelectionConfig) -> list[dict[str, Any]]:
    """One part per run, the costliest first (learner-scored arms, then the reference arms)."""
    cost = {"rho_loss": 0, "hard_learner": 1, "learnability": 2, "learnability_topk": 2}
    runs = sorted(cfg.unit_runs(), key=lambda r: (cost.get(r[1], 3), -r[2]))
    return [{"only": (label,)} for label, _, _ in runs]


def _train_runs(cfg: SelectionConfig, ctx: RunContext, title: str) -> dict[str, Any]:
    """Train this unit's runs on one seed's data; a reference is trained once per width (and
    per process, through ``ctx.memo``) and charged to every arm that uses it."""
    runs = cfg.unit_runs()
    task = ctx.memo.cached(
        ("selection.task", cfg.task_key(), ctx.seed, str(ctx.device)),
        lambda: cfg.task(ctx.seed).to(ctx.device),
    )
    learner_init = learner_for(task, ctx.seed)
    learner_flops = task.flops_per_example(learner_init)
    references: dict[int, Reference] = {}
    ratios: dict[str, float] = {}
    for width in sorted({w for _, arm, w in runs if arm in USES_REFERENCE}):
        key = (
            "selection.reference",
            cfg.task_key(),
            width,
            cfg.reference_steps,
            cfg.reference_batch_size,
            cfg.scorer_lr,
            ctx.seed,
            str(ctx.device),
        )
        references[width] = ctx.memo.cached(
            key,
            lambda width=width: build_reference(
                task,
                width,
                steps=cfg.reference_steps,
                batch_size=cfg.reference_batch_size,
                lr=cfg.scorer_lr,
                seed=ctx.seed,
                device=ctx.device,
            ),
        )
        ctx.log(reference_width=width, reference_metric=references[width].metric)
    for width in sorted({w for _, _, w in runs}):
        scorer = task.scorer(width).to(ctx.device)
        ratios[f"width_{width}"] = task.flops_per_example(scorer) / learner_flops
    results: dict[str, ArmRun] = {}
    with ctx.progress_bar(len(runs) * cfg.steps, title) as bar:
        for label, arm, width in runs:
            results[label] = run_arm(
                arm,
                task,
                learner_init,
                references.get(width),
                steps=cfg.steps,
                batch_size=cfg.batch_size,
                rho=cfg.rho,
                lr=cfg.lr,
                scorer_lr=cfg.scorer_lr,
                scorer_width=width,
                temperature=cfg.temperature,
                eval_every=cfg.eval_every,
                seed=ctx.seed,
                device=ctx.device,
                ctx_log=lambda label=label, **r: ctx.log(run=label, **r),
                bar=bar,
            )
            ctx.compute.merge(results[label].compute, prefix=label)
    return {
        "runs": {label: run.to_dict() for label, run in results.items()},
        "reference_metric": {f"width_{w}": r.metric for w, r in references.items()},
        "scorer_to_learner_flop_ratio": ratios,
        "learner_flops_per_example": learner_flops,
        "metric": task.metric,
    }


def _merged(parts: Sequence[Result]) -> dict[str, Any]:
    """The data of all parts of one seed, in one dict."""
    data: dict[str, Any] = {
        "runs": {},
        "reference_metric": {},
        "scorer_to_learner_flop_ratio": {},
    }
    for part in parts:
        for key in ("runs", "reference_metric", "scorer_to_learner_flop_ratio"):
            data[key].update(part.data[key])
        data["learner_flops_per_example"] = part.data["learner_flops_per_example"]
        data["metric"] = part.data["metric"]
    return data


# ------------------------------------------------------------------------------------------
# Measurements against uniform's final metric
# ------------------------------------------------------------------------------------------


@dataclass
class Measured:
    """Per-run numbers measured against uniform's final (smoothed) metric."""

    target: float
    runs: dict[str, ArmRun]
    updates: dict[str, float]
    flops: dict[str, float]
    reached: dict[str, bool]
    final: dict[str, float]

    def saving(self, label: str, kind: str = "updates") -> float:
        table = self.updates if kind == "updates" else self.flops
        return savings(table[label], table["uniform"])


def _measure(data: dict[str, Any], smooth: int) -> Measured:
    runs = {label: ArmRun.from_dict(label, run) for label, run in data["runs"].items()}
    target = float(runs["uniform"].smoothed(smooth)[-1])
    updates, flops, reached, final = {}, {}, {}, {}
    for label, run in runs.items():
        updates[label], flops[label], reached[label] = run.first_reach(target, smooth)
        final[label] = float(run.smoothed(smooth)[-1])
    return Measured(target, runs, updates, flops, reached, final)


def plateau_gain(run: ArmRun, smooth: int, quarter: float = PLATEAU_QUARTER) -> float:
    """How much ``run``'s smoothed metric improved over its last ``quarter`` of updates
    (positive: still improving; for a loss, the drop)."""
    curve = run.smoothed(smooth)
    start = run.steps[-1] * (1 - quarter)
    i = int(np.searchsorted(np.asarray(run.steps), start, side="left"))
    i = min(i, len(curve) - 1)
    gain = float(curve[-1] - curve[i])
    return gain if run.higher_is_better else -gain


def _summary(m: Measured, data: dict[str, Any], smooth: int) -> dict[str, float]:
    nested: dict[str, Any] = {
        "target_metric": m.target,
        "final_metric": m.final,
        "updates_to_target": m.updates,
        "gflops_to_target": {k: v / 1e9 for k, v in m.flops.items()},
        "update_saving": {k: m.saving(k) for k in m.runs},
        "compute_saving": {k: m.saving(k, "flops") for k in m.runs},
        "noisy_fraction": {k: r.noisy_fraction for k, r in m.runs.items()},
        "overhead_fraction": {},
        "updates": {k: r.updates for k, r in m.runs.items()},
        "reference_metric": data["reference_metric"],
        "scorer_to_learner_flop_ratio": data["scorer_to_learner_flop_ratio"],
        "plateau": {"uniform_last_quarter_gain": plateau_gain(m.runs["uniform"], smooth)},
        "gflops_end": {},
    }
    for label, run in m.runs.items():
        learner = run.compute["flops"].get("training:learner", 0)
        nested["overhead_fraction"][label] = (run.compute["total_flops"] - learner) / max(
            learner, 1
        )
        if label != "uniform":  # the end-of-run FLOPs of each part, measured separately
            parts = {c: f / 1e9 for c, f in run.compute["flops"].items()}
            nested["gflops_end"][label] = {**parts, "total": run.compute["total_flops"] / 1e9}
    return flatten_summary(nested)


def _unreached_notes(m: Measured) -> list[str]:
    return [
        f"{label} never reached uniform's final metric {m.target:.4g} within the budget; its "
        f"updates/FLOPs are the full budget (a lower bound)"
        for label, ok in m.reached.items()
        if not ok
    ]


def _target_note(m: Measured, smooth: int, metric: str) -> str:
    return (
        f"target = uniform's final {metric} (mean of the last {smooth} evaluations) = "
        f"{m.target:.4g}; every run, uniform included, is scored at the first evaluation where "
        f"its trailing {smooth}-evaluation mean reaches it"
    )


def _complete(cfg: SelectionConfig, data: dict[str, Any]) -> bool:
    """Whether ``data`` holds every run of the experiment (a part holds one)."""
    return set(data["runs"]) == {label for label, _, _ in cfg.runs()}


def _savings_claims(m: Measured, label: str, metric: str) -> list[Claim]:
    """Fewer updates and less total compute than uniform to reach uniform's final metric."""
    return [
        Claim(
            key="fewer_updates",
            statement=f"{label} needs fewer learner updates than uniform sampling to reach "
            f"uniform's final {metric}",
            metric=f"learner updates to uniform's final {metric}",
            ours_label=label,
            ours=m.updates[label],
            baselines={"uniform": m.updates["uniform"]},
            comparison="<",
        ),
        Claim(
            key="less_compute",
            statement=f"{label} needs less total compute than uniform sampling to reach "
            f"uniform's final {metric}, counting the actor's training, every scoring forward "
            "and the reference's training and loss table",
            metric=f"total GFLOPs to uniform's final {metric}",
            ours_label=label,
            ours=m.flops[label] / 1e9,
            baselines={"uniform": m.flops["uniform"] / 1e9},
            comparison="<",
        ),
    ]


# ------------------------------------------------------------------------------------------
# Summaries over seeds: plots and tables
# ------------------------------------------------------------------------------------------


def _ci(values: Sequence[float], signed: bool = True) -> str:
    """``mean ± the 95% Student-t half-width`` over seeds (signed: with a + for gains)."""
    from provenml.core.stats import summarize

    s = summarize([v for v in values if math.isfinite(v)])
    mean = f"{s.mean:+.3f}" if signed else f"{s.mean:.3f}"
    if s.n == 0:
        return "n/a"
    if s.n < 2:
        return mean
    return f"{mean} ± {(s.high - s.low) / 2:.3f}"


def generality_row(
    results: Sequence[Result], task: str, model: str, label: str = "learnability"
) -> list[Any]:
    """One row of the generality table: savings and the noisy fraction picked, mean ± the 95%
    Student-t half-width over seeds."""

    def values(key: str) -> list[float]:
        return [float(r.summary[key]) for r in results if key in r.summary]

    return [
        task,
        model,
        _ci(values(f"update_saving/{label}")),
        _ci(values(f"compute_saving/{label}")),
        _ci(values(f"noisy_fraction/{label}"), signed=False),
        _ci(values("noisy_fraction/uniform"), signed=False),
        len(results),
    ]


GENERALITY_COLUMNS = [
    "task",
    "model (learner / scorers, FLOP ratio)",
    "update saving",
    "compute saving",
    "noisy fraction picked",
    "noisy fraction (uniform)",
    "seeds",
]


def plateau_table(results: Sequence[Result]) -> Table:
    """Issue 21's check that uniform has flattened: its last-quarter gain (mean over seeds)
    below its seed-to-seed spread (the standard deviation of its final metric)."""
    gains = [float(r.summary["plateau/uniform_last_quarter_gain"]) for r in results]
    finals = [float(r.summary["final_metric/uniform"]) for r in results]
    gain = float(np.mean(gains))
    spread = float(np.std(finals, ddof=1)) if len(finals) > 1 else math.nan
    verdict = "n/a (one seed)" if math.isnan(spread) else ("yes" if gain < spread else "no")
    return Table(
        "plateau check: uniform's gain over its last quarter of updates vs its seed-to-seed spread",
        ["uniform last-quarter gain (mean)", "seed-to-seed std of uniform's final", "flattened"],
        [[round(gain, 5), None if math.isnan(spread) else round(spread, 5), verdict]],
    )


ARMS_COLUMNS = [
    "run",
    "final metric",
    "updates to target",
    "GFLOPs to target",
    "update saving",
    "compute saving",
    "noisy fraction selected",
    "overhead / learner FLOPs",
    "reached target (seeds)",
]


def arms_table(results: Sequence[Result], metric: str) -> Table:
    """Per run: means over seeds (savings with the 95% Student-t half-width)."""
    labels = list(results[0].data["runs"])

    def mean(key: str) -> float:
        return float(np.mean([r.summary[key] for r in results]))

    def reached(label: str) -> str:
        hits = 0
        for r in results:
            run = ArmRun.from_dict(label, r.data["runs"][label])
            smooth = int(r.data["config"]["smooth"])
            hits += run.first_reach(r.summary["target_metric"], smooth)[2]
        return f"{hits}/{len(results)}"

    rows = [
        [
            label,
            round(mean(f"final_metric/{label}"), 4),
            round(mean(f"updates_to_target/{label}")),
            round(mean(f"gflops_to_target/{label}"), 1),
            _ci([r.summary[f"update_saving/{label}"] for r in results]),
            _ci([r.summary[f"compute_saving/{label}"] for r in results]),
            round(mean(f"noisy_fraction/{label}"), 3),
            round(mean(f"overhead_fraction/{label}"), 4),
            reached(label),
        ]
        for label in labels
    ]
    target = float(np.mean([r.summary["target_metric"] for r in results]))
    return Table(
        f"runs against uniform's final {metric} ({target:.4g}, mean of the seeds); means over "
        f"{len(results)} seed(s), savings ± the 95% t half-width",
        ARMS_COLUMNS,
        rows,
    )


def _ratio_text(results: Sequence[Result], width: int) -> str:
    ratio = float(
        np.mean([r.summary[f"scorer_to_learner_flop_ratio/width_{width}"] for r in results])
    )
    return f"1/{1 / ratio:.0f}"


# ------------------------------------------------------------------------------------------
# selection.noisy_labels (headline)
# ------------------------------------------------------------------------------------------


def _noisy_result(cfg: NoisyLabelsConfig, data: dict[str, Any]) -> Result:
    if not _complete(cfg, data):
        return Result(data=data)
    m = _measure(data, cfg.smooth)
    summary = _summary(m, data, cfg.smooth)
    ratio = data["scorer_to_learner_flop_ratio"][f"width_{cfg.scorer_width}"]
    summary["scorer_to_learner_flop_ratio"] = ratio
    claims: list[Claim] = []
    if "learnability" in m.runs:
        claims += [
            Claim(
                key="fewer_updates",
                statement="learnability needs >= 46% fewer learner updates than uniform to "
                "reach uniform's final test accuracy (the paper's headline, 46% on JFT)",
                metric="update saving vs uniform (1 - updates / uniform's)",
                ours_label="learnability",
                ours=m.saving("learnability"),
                comparison=">=",
                threshold=PAPER_UPDATE_SAVING,
            ),
            Claim(
                key="fewer_updates_at_paper_ratio",
                statement="with scorers at about 1/50 of the learner's FLOPs, learnability "
                "needs >= 26% fewer learner updates than uniform (the paper's saving with "
                "ViT-Ti scorers for a ViT-L learner)",
                metric="update saving vs uniform (1 - updates / uniform's)",
                ours_label="learnability",
                ours=m.saving("learnability"),
                comparison=">=",
                threshold=PAPER_TINY_SCORER_SAVING,
            ),
            Claim(
                key="less_compute",
                statement="learnability needs >= 25% less total compute than uniform, counting "
                "actor training, scoring forwards and the reference's training",
                metric="total-FLOP saving vs uniform (1 - FLOPs / uniform's)",
                ours_label="learnability",
                ours=m.saving("learnability", "flops"),
                comparison=">=",
                threshold=PAPER_COMPUTE_SAVING,
            ),
        ]
        if "rho_loss" in m.runs:
            claims.append(
                Claim(
                    key="rho_loss_costs_more",
                    statement="RHO-LOSS (the learner scores) costs more total compute to reach "
                    "the target than learnability with small proxy models",
                    metric="total GFLOPs to uniform's final accuracy",
                    ours_label="learnability",
                    ours=m.flops["learnability"] / 1e9,
                    baselines={"rho_loss": m.flops["rho_loss"] / 1e9},
                    comparison="<",
                )
            )
        ablations = [a for a in ("hard_learner", "easy_reference") if a in m.runs]
        if ablations:
            claims.append(
                Claim(
                    key="ablations_worse",
                    statement="hard-learner and easy-reference prioritisation each need more "
                    "learner updates than learnability",
                    metric="learner updates to uniform's final accuracy",
                    ours_label="learnability",
                    comparison="<",
                    members={
                        a: Member(ours=[m.updates["learnability"]], baselines={a: [m.updates[a]]})
                        for a in ablations
                    },
                )
            )
    notes = [
        *_unreached_notes(m),
        _target_note(m, cfg.smooth, "test accuracy"),
        f"scorers (actor and reference) MLP 40-{cfg.scorer_width}-10: "
        f"{ratio:.4f} (1/{1 / ratio:.0f}) of the learner's forward FLOPs per example, "
        "measured with torch.utils.flop_counter",
        "the reference is trained on a clean held-out split; its training and its loss table "
        "over the pool are charged to every arm that uses it",
    ]
    return Result(claims=claims, summary=summary, data=data, notes=notes)


def _summarize_noisy(results: list[Result], ctx: RunContext) -> list[Table]:
    plots.curves(results, ctx, "selection.noisy_labels", "test accuracy")
    plots.noisy_fraction(results, ctx)
    cfg = results[0].data["config"]
    hidden = "-".join(str(h) for h in cfg["learner_hidden"])
    width = cfg["scorer_width"]
    model = f"MLP 40-{hidden}-10 / MLP 40-{width}-10, {_ratio_text(results, width)}"
    row = generality_row(results, "MNIST-1D, 30% label noise", model)
    return [
        arms_table(results, "test accuracy"),
        Table("generality", GENERALITY_COLUMNS, [row]),
        plateau_table(results),
    ]


def _noisy_run(cfg: NoisyLabelsConfig, ctx: RunContext) -> Result:
    data = _with_config(cfg, _train_runs(cfg, ctx, "selection.noisy_labels arms"))
    return _noisy_result(cfg, data)


@experiment(
    "selection.noisy_labels",
    system="S1",
    claim="Learnability scored by proxy models with 1/50 of the learner's FLOPs needs >= 46% "
    "fewer learner updates and >= 25% less total compute than uniform sampling (30% label "
    "noise, MNIST-1D)",
    config=NoisyLabelsConfig,
    time={
        "smoke": "20s",
        "small": "4.7 min measured, idle (3 seeds, --jobs 2, load 1.7-1.9; stop 64)",
        "paper": "GPU hours",
    },
    summarize=_summarize_noisy,
    parts=_parts,
    merge=lambda cfg, parts, ctx: _noisy_result(cfg, _with_config(cfg, _merged(parts))),
    threads=1,
    claims=(
        "fewer_updates",
        "fewer_updates_at_paper_ratio",
        "less_compute",
        "rho_loss_costs_more",
        "ablations_worse",
    ),
)
def noisy_labels(cfg: NoisyLabelsConfig, ctx: RunContext) -> Result:
    """Uniform vs learnability vs RHO-LOSS vs hard-learner vs easy-reference."""
    return _noisy_run(cfg, ctx)


# ------------------------------------------------------------------------------------------
# selection.scorer_size
# ------------------------------------------------------------------------------------------


def _scorer_result(cfg: ScorerSizeConfig, data: dict[str, Any]) -> Result:
    if not _complete(cfg, data):
        return Result(data=data)
    m = _measure(data, cfg.smooth)
    summary = _summary(m, data, cfg.smooth)
    widths = sorted(set(cfg.widths))
    small, large = f"width_{widths[0]}", f"width_{widths[-1]}"
    default = f"width_{cfg.scorer_width}" if cfg.scorer_width in widths else small
    claims = [
        Claim(
            key="bigger_saves_more_updates",
            statement=f"the largest scorer (width {widths[-1]}) saves more learner updates than "
            f"the smallest (width {widths[0]})",
            metric="update saving vs uniform",
            ours_label=large,
            ours=m.saving(large),
            baselines={small: [m.saving(small)]},
            comparison=">",
        ),
        Claim(
            key="small_scorer_saves_more_compute",
            statement=f"the small scorer ({default}) saves more total compute than the "
            f"largest ({large})",
            metric="total-FLOP saving vs uniform",
            ours_label=default,
            ours=m.saving(default, "flops"),
            baselines={large: [m.saving(large, "flops")]},
            comparison=">",
        ),
    ]
    notes = [*_unreached_notes(m), _target_note(m, cfg.smooth, "test accuracy")]
    return Result(claims=claims, summary=summary, data={**data, "widths": widths}, notes=notes)


def _summarize_scorer(results: list[Result], ctx: RunContext) -> list[Table]:
    plots.scorer_size(results, ctx)
    plots.curves(results, ctx, "selection.scorer_size", "test accuracy")
    widths = results[0].data["widths"]

    def mean(key: str) -> float:
        return float(np.mean([r.summary[key] for r in results]))

    rows = [
        [
            w,
            f"1/{1 / mean(f'scorer_to_learner_flop_ratio/width_{w}'):.0f}",
            round(mean(f"reference_metric/width_{w}"), 3),
            round(mean(f"final_metric/width_{w}"), 3),
            round(mean(f"updates_to_target/width_{w}")),
            _ci([r.summary[f"update_saving/width_{w}"] for r in results]),
            _ci([r.summary[f"compute_saving/width_{w}"] for r in results]),
            round(mean(f"overhead_fraction/width_{w}"), 4),
        ]
        for w in widths
    ]
    columns = [
        "scorer width",
        "scorer / learner FLOPs",
        "reference test acc",
        "final test acc",
        "updates to target",
        "update saving",
        "compute saving",
        "overhead / learner FLOPs",
    ]
    return [
        Table("scorer size (means over seeds, ± 95% t half-width)", columns, rows),
        plateau_table(results),
    ]


@experiment(
    "selection.scorer_size",
    system="S1",
    claim="Bigger actor/reference models save more learner updates, but the small scorer gives "
    "the larger total-compute saving",
    config=ScorerSizeConfig,
    time={
        "smoke": "20s",
        "small": "4.2 min measured, idle (3 seeds, --jobs 2, load 1.7-1.9; stop 64)",
        "paper": "GPU hours",
    },
    summarize=_summarize_scorer,
    parts=_parts,
    merge=lambda cfg, parts, ctx: _scorer_result(cfg, _with_config(cfg, _merged(parts))),
    threads=1,
    claims=("bigger_saves_more_updates", "small_scorer_saves_more_compute"),
)
def scorer_size(cfg: ScorerSizeConfig, ctx: RunContext) -> Result:
    """Learnability with actor = reference = MLP 40-w-10 for each width w, against uniform."""
    data = _with_config(cfg, _train_runs(cfg, ctx, "selection.scorer_size widths"))
    return _scorer_result(cfg, data)


# ------------------------------------------------------------------------------------------
# selection.clean_control
# ------------------------------------------------------------------------------------------


def _clean_result(cfg: CleanControlConfig, data: dict[str, Any]) -> Result:
    if not _complete(cfg, data):
        return Result(data=data)
    m = _measure(data, cfg.smooth)
    summary = _summary(m, data, cfg.smooth)
    claims = []
    if "learnability" in m.runs:
        claims = [
            Claim(
                key="clean_fewer_updates",
                statement="without label noise, learnability still needs fewer learner updates "
                "than uniform",
                metric="learner updates to uniform's final accuracy",
                ours_label="learnability",
                ours=m.updates["learnability"],
                baselines={"uniform": m.updates["uniform"]},
                comparison="<",
            ),
            Claim(
                key="clean_headline_saving",
                statement="without label noise, the headline >= 46% update saving still holds "
                "(expected to fail at this scale: the gain comes mostly from skipping noise)",
                metric="update saving vs uniform",
                ours_label="learnability",
                ours=m.saving("learnability"),
                comparison=">=",
                threshold=PAPER_UPDATE_SAVING,
            ),
        ]
    notes = [*_unreached_notes(m), _target_note(m, cfg.smooth, "test accuracy")]
    return Result(claims=claims, summary=summary, data=data, notes=notes)


def _summarize_clean(results: list[Result], ctx: RunContext) -> list[Table]:
    plots.curves(results, ctx, "selection.clean_control", "test accuracy")
    return [arms_table(results, "test accuracy"), plateau_table(results)]


@experiment(
    "selection.clean_control",
    system="S1",
    claim="Control without label noise: the learnability gain is expected to be small or absent",
    config=CleanControlConfig,
    time={
        "smoke": "20s",
        "small": "3.0 min measured, idle (3 seeds, --jobs 2, load 1.8-1.9; stop 64)",
        "paper": "GPU hours",
    },
    summarize=_summarize_clean,
    parts=_parts,
    merge=lambda cfg, parts, ctx: _clean_result(cfg, _with_config(cfg, _merged(parts))),
    threads=1,
    claims=("clean_fewer_updates", "clean_headline_saving"),
)
def clean_control(cfg: CleanControlConfig, ctx: RunContext) -> Result:
    """The headline comparison with clean labels (``noise = 0``)."""
    data = _with_config(cfg, _train_runs(cfg, ctx, "selection.clean_control arms"))
    return _clean_result(cfg, data)


# ------------------------------------------------------------------------------------------
# selection.text and selection.images: the same algorithm on other models and tasks
# ------------------------------------------------------------------------------------------


def _generality_result(cfg: SelectionConfig, data: dict[str, Any], metric: str) -> Result:
    if not _complete(cfg, data):
        return Result(data=data)
    m = _measure(data, cfg.smooth)
    summary = _summary(m, data, cfg.smooth)
    ratio = data["scorer_to_learner_flop_ratio"][f"width_{cfg.scorer_width}"]
    summary["scorer_to_learner_flop_ratio"] = ratio
    notes = [
        *_unreached_notes(m),
        _target_note(m, cfg.smooth, metric),
        f"scorers: {ratio:.4f} (1/{1 / ratio:.0f}) of the learner's forward FLOPs per example, "
        "measured with torch.utils.flop_counter",
    ]
    return Result(
        claims=_savings_claims(m, "learnability", metric), summary=summary, data=data, notes=notes
    )


def _generality_summarize(
    name: str, task: str, model: Callable[[Sequence[Result]], str], metric: str
) -> Callable[[list[Result], RunContext], list[Table]]:
    def summarize(results: list[Result], ctx: RunContext) -> list[Table]:
        plots.curves(results, ctx, name, metric)
        plots.noisy_fraction(results, ctx)
        row = generality_row(results, task, model(results))
        return [
            arms_table(results, metric),
            Table("generality", GENERALITY_COLUMNS, [row]),
            plateau_table(results),
        ]

    return summarize


def _text_model(results: Sequence[Result]) -> str:
    cfg = results[0].data["config"]
    return (
        f"byte transformer {cfg['learner_layers']}x{cfg['learner_dim']} / "
        f"1x{cfg['scorer_width']}, {_ratio_text(results, cfg['scorer_width'])}"
    )


def _images_model(results: Sequence[Result]) -> str:
    cfg = results[0].data["config"]
    channels = "-".join(str(c) for c in cfg["learner_channels"])
    width = cfg["scorer_width"]
    return f"CNN {channels} / CNN {width}-{2 * width}, {_ratio_text(results, width)}"


def _with_config(cfg: SelectionConfig, data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "config": dataclasses.asdict(cfg)}


@experiment(
    "selection.text",
    system="S1",
    claim="Learnability generalises to language modelling: a byte-level transformer reaches "
    "uniform's final validation loss in fewer updates and less total compute (30% of the "
    "training sequences corrupted)",
    config=TextConfig,
    time={
        "smoke": "20s",
        "small": "3.0 min measured, idle (3 seeds, --jobs 2, load 1.5-1.9; stop 64)",
        "paper": "GPU hours",
    },
    summarize=_generality_summarize(
        "selection.text",
        "stdlib source bytes, 30% of windows shuffled",
        _text_model,
        "validation loss (nats/byte)",
    ),
    parts=_parts,
    merge=lambda cfg, parts, ctx: _generality_result(
        cfg, _with_config(cfg, _merged(parts)), "validation loss"
    ),
    threads=1,
    claims=("fewer_updates", "less_compute"),
)
def text(cfg: TextConfig, ctx: RunContext) -> Result:
    """Uniform vs learnability for a byte transformer on corrupted source windows."""
    data = _with_config(cfg, _train_runs(cfg, ctx, "selection.text arms"))
    return _generality_result(cfg, data, "validation loss")


@experiment(
    "selection.images",
    system="S1",
    headline=True,
    claim="Learnability generalises to a CNN on images: it reaches uniform's final test "
    "accuracy in fewer updates and less total compute (digits, 30% label noise)",
    config=ImagesConfig,
    time={
        "smoke": "20s",
        "small": "26 s measured (make demo, idle, load 0.9-2.2; 3 seeds, --jobs 2)",
        "paper": "GPU hours",
    },
    summarize=_generality_summarize(
        "selection.images", "digits 16x16, 30% label noise", _images_model, "test accuracy"
    ),
    parts=_parts,
    merge=lambda cfg, parts, ctx: _generality_result(
        cfg, _with_config(cfg, _merged(parts)), "test accuracy"
    ),
    threads=1,
    claims=("fewer_updates", "less_compute"),
)
def images(cfg: ImagesConfig, ctx: RunContext) -> Result:
    """Uniform vs learnability for a small CNN on noisy digits."""
    data = _with_config(cfg, _train_runs(cfg, ctx, "selection.images arms"))
    return _generality_result(cfg, data, "test accuracy")
