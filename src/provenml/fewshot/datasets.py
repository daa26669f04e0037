"""The scarce-source few-shot benchmark: random smooth templates rendered by ``mnist1d``.

Each class is a random smooth 1-D template (12 control points, like MNIST-1D's digits),
rendered into 40-sample signals by ``mnist1d.data.make_dataset`` with custom templates (random
padding, scaling, translation, correlated and i.i.d. noise, shear). ``make_dataset`` only
generates; ``get_dataset`` (which may download) is never called.

The classes are split into source / validation / target classes (64 / 16 / 20 by default). In
the *scarce-source* setting (few-shot few-shot learning, FSFSL, as the AdarGCN paper defines
it) every source class has only 5-20 clean samples, plus a "web" pool that a search by class
name would return: a fraction ``rho`` of it is irrelevant (samples of other source or
validation classes, distractor templates that belong to no class, or pure noise) and all web
samples come from a mildly shifted rendering (more scaling, noise and shear). Distractor
templates are kept as far from every class template as the classes are from each other, and no
web sample is ever drawn from a target class. The *plentiful* setting (conventional few-shot
learning) gives every source class many clean samples and no web pool.

Web pools at several ``rho`` are nested: at a higher ``rho`` the class keeps a prefix of the
same relevant samples and adds more irrelevant ones, so arms at different ``rho`` are paired.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from torch import Tensor

from provenml.errors import ProvenmlError

TEMPLATE_POINTS = 12
SIGNAL_LENGTH = 40

# sample kinds
CLEAN, RELEVANT, OTHER_CLASS, DISTRACTOR, NOISE = 0, 1, 2, 3, 4
KIND_NAMES = ("clean", "web relevant", "web other class", "web distractor", "web noise")

_BASE_RENDER = {  # mnist1d's defaults (get_dataset_args), for the clean samples
    "scale_coeff": 0.4,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2,
    "shear_scale": 0.75,
}
_WEB_SHIFT = {  # the web rendering at shift 1: more scaling, noise and shear
    "scale_coeff": 0.2,
    "corr_noise_scale": 0.1,
    "iid_noise_scale": 2e-2,
    "shear_scale": 0.25,
}


@dataclass(frozen=True)
class BenchmarkSpec:
    """How to generate a benchmark; every field is part of the cache key.

    ``clean_per_class`` is the (min, max) number of clean samples per source class (uniform);
    ``eval_per_class`` the samples of each validation and target class; ``web_per_class`` the
    size of each source class's web pool (0: no web data); ``rhos`` the irrelevant fractions
    to build pools for; ``irrelevant_mix`` the shares of other-class, distractor and noise
    samples among the irrelevant ones; ``web_shift`` scales the web rendering's domain shift.
    """

    num_source: int = 64
    num_val: int = 16
    num_target: int = 20
    clean_per_class: tuple[int, int] = (5, 20)
    eval_per_class: int = 60
    web_per_class: int = 50
    rhos: tuple[float, ...] = (0.3, 0.5, 0.7)
    irrelevant_mix: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
    num_distractors: int = 40
    web_shift: float = 1.0
    template_smoothness: float = 1.5
    seed: int = 0

    def validate(self) -> None:
        if min(self.num_source, self.num_val, self.num_target) < 1:
            raise ProvenmlError("num_source, num_val and num_target must all be >= 1")
        low, high = self.clean_per_class
        if not 1 <= low <= high:
            raise ProvenmlError(
                "clean_per_class must be (min, max) with 1 <= min <= max, got "
                f"{self.clean_per_class}"
            )
        if self.eval_per_class < 1 or self.web_per_class < 0:
            raise ProvenmlError("eval_per_class must be >= 1 and web_per_class >= 0")
        if any(not 0.0 <= r <= 1.0 for r in self.rhos):
            raise ProvenmlError(f"every rho must be in [0, 1], got {self.rhos}")
        mix = self.irrelevant_mix
        if len(mix) != 3 or min(mix) < 0 or sum(mix) <= 0:
            raise ProvenmlError(f"irrelevant_mix must be three non-negative shares, got {mix}")
        if mix[1] > 0 and self.num_distractors < 1:
            raise ProvenmlError("distractor samples need num_distractors >= 1")
        if mix[0] > 0 and self.num_source + self.num_val < 2:
            raise ProvenmlError("other-class web samples need at least two source/val classes")


@dataclass
class FewShotBenchmark:
    """All samples of one generated benchmark and the index sets of its parts.

    ``x`` ``[M, 40]`` signals; ``labels`` the class each sample is *labelled* with (for a web
    sample: the class whose search returned it); ``true_labels`` its real class (-1 for
    distractors and noise); ``kind`` one of ``CLEAN .. NOISE``. ``clean_source``, ``val`` and
    ``target`` index the clean samples of those classes; ``web[rho]`` the web pool at ``rho``.
    """

    x: Tensor
    labels: Tensor
    true_labels: Tensor
    kind: Tensor
    source_classes: Tensor
    val_classes: Tensor
    target_classes: Tensor
    clean_source: Tensor
    val: Tensor
    target: Tensor
    web: dict[float, Tensor] = field(default_factory=dict)
    spec: BenchmarkSpec | None = None

    def relevant(self, indices: Tensor) -> Tensor:
        """Whether each sample really belongs to the class it is labelled with."""
        return self.true_labels[indices] == self.labels[indices]

    def web_pool(self, rho: float) -> Tensor:
        for key, pool in self.web.items():
            if abs(key - rho) < 1e-9:
                return pool
        raise ProvenmlError(f"no web pool at rho={rho}; this benchmark has {sorted(self.web)}")

    def describe(self) -> dict[str, object]:
        counts = torch.bincount(self.labels[self.clean_source])
        per_class = counts[self.source_classes]
        out: dict[str, object] = {
            "classes": [len(self.source_classes), len(self.val_classes), len(self.target_classes)],
            "clean_source_samples": len(self.clean_source),
            "clean_per_source_class": [int(per_class.min()), int(per_class.max())],
            "target_samples": len(self.target),
        }
        for rho, pool in self.web.items():
            out[f"web_samples@{rho}"] = len(pool)
            out[f"web_relevant_fraction@{rho}"] = float(self.relevant(pool).float().mean())
        return out


def random_templates(
    count: int,
    rng: np.random.Generator,
    smoothness: float,
    avoid: np.ndarray | None = None,
    min_distance: float | None = None,
) -> tuple[np.ndarray, float]:
    """``count`` random smooth templates ``[count, 12]`` in MNIST-1D's convention (zero at both
    ends, unit variance / 6), each at least ``min_distance`` from the others and from ``avoid``.

    Without ``min_distance`` it is set to a third of the median distance between free draws.
    Returns the templates and the distance used.
    """

    def draw(n: int) -> np.ndarray:
        raw = gaussian_filter1d(rng.standard_normal((n, TEMPLATE_POINTS + 6)), smoothness, axis=1)
        raw = raw[:, 3:-3]
        ends = np.linspace(0.0, 1.0, TEMPLATE_POINTS)
        raw = raw - raw[:, :1] - (raw[:, -1:] - raw[:, :1]) * ends  # zero at both ends
        return raw / raw.std(axis=1, keepdims=True) / 6.0

    if min_distance is None:
        probe = draw(200)
        gaps = np.linalg.norm(probe[:, None] - probe[None], axis=-1)
        min_distance = float(np.median(gaps[np.triu_indices(200, 1)])) / 3
    kept: list[np.ndarray] = []
    existing = np.zeros((0, TEMPLATE_POINTS)) if avoid is None else avoid
    for _ in range(200):
        for candidate in draw(4 * count):
            reference = np.concatenate([existing, np.array(kept).reshape(-1, TEMPLATE_POINTS)])
            if (
                len(reference) == 0
                or np.linalg.norm(reference - candidate, axis=1).min() >= min_distance
            ):
                kept.append(candidate)
                if len(kept) == count:
                    return np.stack(kept), min_distance
    raise ProvenmlError(f"could not draw {count} templates {min_distance:.3f} apart")


def render(
    templates: np.ndarray, per_template: int, overrides: dict[str, float], seed: int
) -> np.ndarray:
    """``[T, per_template, 40]`` signals from ``mnist1d.data.make_dataset`` (cached on disk).

    ``make_dataset`` reseeds numpy's and ``random``'s global generators; both are restored.
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ProvenmlError("the mnist1d package is needed: pip install mnist1d") from None
    from provenml.core.cache import atomic_write_path, cache_dir

    key = hashlib.sha256(
        templates.astype(np.float64).tobytes()
        + json.dumps([per_template, sorted(overrides.items()), seed]).encode()
        + importlib.metadata.version("mnist1d").encode()
    ).hexdigest()[:20]
    cached = cache_dir("fewshot") / f"render-{key}.npy"
    if cached.exists():
        return np.load(cached)
    args = get_dataset_args()
    args.num_samples = per_template * len(templates)
    args.train_split = 1.0
    args.seed = seed
    for name, value in overrides.items():
        setattr(args, name, value)
    spec = {
        "x": templates,
        "t": np.linspace(-5, 5, TEMPLATE_POINTS) / 6.0,
        "y": np.arange(len(templates)),
    }
    state_np, state_py = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args, template=spec)
    finally:
        np.random.set_state(state_np)
        random.setstate(state_py)
    order = np.argsort(data["y"], kind="stable")
    signals = data["x"][order].astype(np.float32).reshape(len(templates), per_template, -1)
    with atomic_write_path(cached) as tmp, open(tmp, "wb") as handle:
        np.save(handle, signals)
    return signals


class _Samples:
    """Accumulates blocks of signals with their labels, true labels and kinds."""

    def __init__(self) -> None:
        self.x: list[np.ndarray] = []
        self.label: list[np.ndarray] = []
        self.true: list[np.ndarray] = []
        self.kind: list[np.ndarray] = []
        self.size = 0

    def add(
        self, signals: np.ndarray, label: int, true: Sequence[int] | int, kind: Sequence[int] | int
    ) -> Tensor:
        n = len(signals)
        self.x.append(signals)
        self.label.append(np.full(n, label))
        self.true.append(np.broadcast_to(np.asarray(true), (n,)).copy())
        self.kind.append(np.broadcast_to(np.asarray(kind), (n,)).copy())
        self.size += n
        return torch.arange(self.size - n, self.size)

    def tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return (
            torch.from_numpy(np.concatenate(self.x)).float(),
            torch.from_numpy(np.concatenate(self.label)).long(),
            torch.from_numpy(np.concatenate(self.true)).long(),
            torch.from_numpy(np.concatenate(self.kind)).long(),
        )


def make_benchmark(spec: BenchmarkSpec | None = None, **overrides: object) -> FewShotBenchmark:
    """Generate the benchmark described by ``spec`` (fields can also be given as keywords).

    >>> bench = make_benchmark(seed=0)                          # scarce source, rho 0.3/0.5/0.7
    >>> plentiful = make_benchmark(seed=0, clean_per_class=(200, 200), web_per_class=0)
    """
    fields = {**(asdict(spec) if spec else {}), **overrides}
    unknown = set(fields) - set(BenchmarkSpec.__dataclass_fields__)
    if unknown:
        raise ProvenmlError(f"unknown benchmark fields {sorted(unknown)}")
    fields["clean_per_class"] = tuple(fields.get("clean_per_class", (5, 20)))  # type: ignore[arg-type]
    fields["rhos"] = tuple(float(r) for r in fields.get("rhos", (0.3, 0.5, 0.7)))  # type: ignore[union-attr]
    fields["irrelevant_mix"] = tuple(fields.get("irrelevant_mix", (1 / 3, 1 / 3, 1 / 3)))  # type: ignore[arg-type]
    spec = BenchmarkSpec(**fields)  # type: ignore[arg-type]
    spec.validate()
    rng = np.random.default_rng([spec.seed, 19])
    num_classes = spec.num_source + spec.num_val + spec.num_target
    class_templates, min_distance = random_templates(num_classes, rng, spec.template_smoothness)
    perm = torch.from_numpy(rng.permutation(num_classes))
    source = perm[: spec.num_source].sort().values
    val = perm[spec.num_source : spec.num_source + spec.num_val].sort().values
    target = perm[spec.num_source + spec.num_val :].sort().values

    # clean samples of every class (the source classes keep only their first few)
    low, high = spec.clean_per_class
    clean = render(
        class_templates, max(high, spec.eval_per_class), _BASE_RENDER, seed=spec.seed * 1000 + 1
    )
    samples = _Samples()
    counts = rng.integers(low, high + 1, size=spec.num_source)
    clean_source = [
        samples.add(clean[c, :n], c, c, CLEAN) for c, n in zip(source.tolist(), counts, strict=True)
    ]
    val_idx = [samples.add(clean[c, : spec.eval_per_class], c, c, CLEAN) for c in val.tolist()]
    target_idx = [
        samples.add(clean[c, : spec.eval_per_class], c, c, CLEAN) for c in target.tolist()
    ]
    web: dict[float, Tensor] = {}
    if spec.web_per_class > 0 and spec.rhos:
        web = _web_pools(spec, rng, class_templates, min_distance, source, val, samples)
    x, labels, true_labels, kind = samples.tensors()
    return FewShotBenchmark(
        x=x,
        labels=labels,
        true_labels=true_labels,
        kind=kind,
        source_classes=source,
        val_classes=val,
        target_classes=target,
        clean_source=torch.cat(clean_source),
        val=torch.cat(val_idx),
        target=torch.cat(target_idx),
        web=web,
        spec=spec,
    )


def _web_pools(
    spec: BenchmarkSpec,
    rng: np.random.Generator,
    class_templates: np.ndarray,
    min_distance: float,
    source: Tensor,
    val: Tensor,
    samples: _Samples,
) -> dict[float, Tensor]:
    """Nested web pools of every source class at each rho (see the module docstring)."""
    w = spec.web_per_class
    distractors, _ = random_templates(
        max(spec.num_distractors, 1), rng, spec.template_smoothness, class_templates, min_distance
    )
    shifted = {k: v + spec.web_shift * _WEB_SHIFT[k] for k, v in _BASE_RENDER.items()}
    crawled = torch.cat([source, val]).tolist()  # never a target class
    templates = np.concatenate([class_templates[crawled], distractors])
    rendered = render(templates, 2 * w, shifted, seed=spec.seed * 1000 + 2)
    row = {c: i for i, c in enumerate(crawled)}
    mix = np.asarray(spec.irrelevant_mix, dtype=float)
    mix = mix / mix.sum()
    # the second half of every crawled class's renders: other-class samples, each used once
    reservoir = [(c, j) for c in crawled for j in range(w, 2 * w)]
    reservoir = [reservoir[i] for i in rng.permutation(len(reservoir))]
    distractor_pool = rendered[len(crawled) :].reshape(-1, rendered.shape[-1])
    distractor_pool = distractor_pool[rng.permutation(len(distractor_pool))]
    taken_distractors = 0

    relevant: dict[int, Tensor] = {}
    irrelevant: dict[int, Tensor] = {}
    for c in source.tolist():
        relevant[c] = samples.add(rendered[row[c], :w], c, c, RELEVANT)
        kinds = rng.choice(3, size=w, p=mix)
        signals, truth, codes = [], [], []
        for k in kinds:
            if k == 0:
                pick = next((i for i, (owner, _) in enumerate(reservoir) if owner != c), None)
                if pick is None:
                    raise ProvenmlError("not enough other-class web samples; lower web_per_class")
                owner, j = reservoir.pop(pick)
                signals.append(rendered[row[owner], j])
                truth.append(owner)
                codes.append(OTHER_CLASS)
            elif k == 1:
                if taken_distractors >= len(distractor_pool):
                    raise ProvenmlError("not enough distractor samples; raise num_distractors")
                signals.append(distractor_pool[taken_distractors])
                taken_distractors += 1
                truth.append(-1)
                codes.append(DISTRACTOR)
            else:
                signals.append(_noise_signal(rng))
                truth.append(-1)
                codes.append(NOISE)
        irrelevant[c] = samples.add(np.stack(signals), c, truth, codes)
    pools = {}
    for rho in spec.rhos:
        n_irrelevant = round(rho * w)
        per_class = [
            torch.cat([relevant[c][: w - n_irrelevant], irrelevant[c][:n_irrelevant]])
            for c in source.tolist()
        ]
        pools[float(rho)] = torch.cat(per_class)
    return pools


def _noise_signal(rng: np.random.Generator) -> np.ndarray:
    """Pure noise: smooth Gaussian noise plus a random shear, at unit variance."""
    noise = gaussian_filter1d(rng.standard_normal(SIGNAL_LENGTH), rng.uniform(1.0, 3.0))
    noise = noise + rng.uniform(-1, 1) * np.linspace(-0.5, 0.5, SIGNAL_LENGTH)
    return ((noise - noise.mean()) / noise.std()).astype(np.float32)
