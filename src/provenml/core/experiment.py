"""Experiment registry, scale presets, and the ``Claim`` / ``Result`` records.

An experiment is a function ``run(cfg, ctx) -> Result`` registered under a dotted name::

    @dataclass
    class MyConfig(Config):
        steps: int = 1000
        presets: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {"steps": 20}, "paper": {...}}

    @experiment("wsd.multibudget", system="S3", claim="...", config=MyConfig)
    def run(cfg: MyConfig, ctx: RunContext) -> Result: ...

The dataclass defaults are the ``small`` preset; ``presets`` holds the overrides for the other
scales. Verdicts are never written by hand: a :class:`Claim` computes its verdict from the
measured values it holds.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import operator
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from provenml.errors import ProvenmlError

SCALES: tuple[str, ...] = ("smoke", "small", "paper")

Comparison = Literal["<", "<=", ">", ">="]
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
Verdict = Literal["holds", "fails", "inconclusive"]




# --------------------------------------------------------------------------------------------
# Configs and presets
# --------------------------------------------------------------------------------------------


@dataclass
class Config:
    """Base class of every experiment config: the defaults are the ``small`` preset.

    Subclasses set ``presets = {"smoke": {...}, "paper": {...}}`` with the fields that differ
    from the defaults at that scale.
    """

    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def from_preset(
        cls, scale: str = "small", overrides: Mapping[str, str] | None = None
    ) -> Config:
        """Build the config for ``scale``, then apply ``--set key=value`` string overrides."""
        if scale not in SCALES:
            raise ProvenmlError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
        values: dict[str, Any] = dict(cls.presets.get(scale, {}))
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:  # a bug in the experiment's own preset table, not user input
            raise TypeError(f"{cls.__name__}.presets[{scale!r}] sets unknown fields {unknown}")
        cfg = cls(**values)
        return cfg.with_overrides(overrides or {})

    def with_overrides(self, overrides: Mapping[str, str]) -> Config:
        """Return a copy with string overrides parsed to each field's declared type."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        hints = typing.get_type_hints(type(self))
        changes: dict[str, Any] = {}
        for key, raw in overrides.items():
            if key not in fields:
                close = difflib.get_close_matches(key, fields, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ProvenmlError(
                    f"unknown --set key {key!r} for {type(self).__name__}{hint} "
                    f"(known keys: {', '.join(fields)})"
                )
            changes[key] = parse_value(raw, hints[key], key)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_value(raw: str, annotation: Any, key: str = "value") -> Any:
    """Parse a ``--set`` string into ``annotation`` (int, float, bool, str, tuples, Optional)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if raw.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return parse_value(raw, arg, key)
            except ProvenmlError as exc:
                errors.append(str(exc))
        raise ProvenmlError(errors[0] if errors else f"cannot parse {key}={raw!r}")
    if origin is Literal:
        if raw in [str(a) for a in args]:
            return next(a for a in args if str(a) == raw)
        raise ProvenmlError(f"{key} must be one of {', '.join(map(str, args))}, got {raw!r}")
    if origin in (tuple, list):
        item_type = args[0] if args else str
        items = [s.strip() for s in raw.strip("[]()").split(",") if s.strip()]
        parsed = [parse_value(s, item_type, key) for s in items]
        return tuple(parsed) if origin is tuple else parsed
    if annotation is bool:
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ProvenmlError(f"{key} must be a boolean (true/false), got {raw!r}")
    if annotation in (int, float):
        try:
            value = annotation(raw) if annotation is float else int(raw)
        except ValueError:
            raise ProvenmlError(
                f"{key} must be {'an integer' if annotation is int else 'a number'}, got {raw!r}"
            ) from None
        return value
    if annotation is str:
        return raw
    raise ProvenmlError(f"{key} has type {annotation!r}, which --set cannot parse")


# --------------------------------------------------------------------------------------------
# Claims and results
# --------------------------------------------------------------------------------------------


@dataclass
class Claim:
    """One of a paper's statements, with the numbers that test it.

    The claim holds when ``mean(ours) <comparison> mean(baseline) + margin`` for every
    baseline (``margin`` is signed: ``<=`` with margin 0.01 reads "no more than 0.01 above").
    When ``test`` names a statistical test, it must also reject the null at ``alpha`` (this needs
    two or more seeds, else the verdict is ``inconclusive``). ``ours`` and each baseline hold one
    value per seed. With two or more seed-matched values, one-sided paired p-values are computed
    for display even when ``test`` is None; they only decide the verdict when ``test`` is set.
    """

    key: str
    statement: str
    metric: str
    ours_label: str
    ours: list[float]
    baselines: dict[str, list[float]]
    comparison: Comparison
    margin: float = 0.0
    test: Literal["paired", "welch"] | None = None
    alpha: float = 0.05
    seeds: list[int] = field(default_factory=list)
    p_values: dict[str, float] = field(default_factory=dict)
    verdict: Verdict = "inconclusive"

    def __post_init__(self) -> None:
        if self.comparison not in _OPERATORS:
            raise ValueError(f"comparison must be one of {list(_OPERATORS)}")
        self.ours = [float(v) for v in _as_list(self.ours)]
        self.baselines = {k: [float(v) for v in _as_list(vs)] for k, vs in self.baselines.items()}
        self.verdict = self.evaluate()

    @property
    def ours_mean(self) -> float:
        return _mean(self.ours)

    def baseline_mean(self, name: str) -> float:
        return _mean(self.baselines[name])

    def evaluate(self) -> Verdict:
        """Compute the verdict from the measured values (means over seeds, then the test)."""
        from provenml.core import stats

        values = [self.ours_mean, *(self.baseline_mean(b) for b in self.baselines)]
        if any(math.isnan(v) for v in values):
            return "inconclusive"
        compare = _OPERATORS[self.comparison]
        mean_holds = all(
            compare(self.ours_mean, self.baseline_mean(b) + self.margin) for b in self.baselines
        )
        alternative = "less" if self.comparison in ("<", "<=") else "greater"
        self.p_values = {}
        for name, base in self.baselines.items():
            shifted = [b + self.margin for b in base]
            if self.test == "welch" and len(self.ours) >= 2 and len(base) >= 2:
                self.p_values[name] = stats.welch_test(self.ours, shifted, alternative)
            elif len(self.ours) >= 2 and len(base) == len(self.ours):
                self.p_values[name] = stats.paired_test(self.ours, shifted, alternative)
        if self.test is None:
            return "holds" if mean_holds else "fails"
        if len(self.p_values) < len(self.baselines):
            return "inconclusive"
        significant = all(p <= self.alpha for p in self.p_values.values())
        return "holds" if mean_holds and significant else "fails"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Claim:
        data = dict(data)
        data.pop("verdict", None)
        data.pop("p_values", None)
        return cls(**data)


@dataclass
class Result:
    """What one run of an experiment measured: its claims, scalar summaries and curves."""

    claims: list[Claim] = field(default_factory=list)
    summary: dict[str, float] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "claims": [c.to_dict() for c in self.claims],
            "summary": self.summary,
            "data": self.data,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        return cls(
            claims=[Claim.from_dict(c) for c in data.get("claims", [])],
            summary=dict(data.get("summary", {})),
            data=dict(data.get("data", {})),
            notes=list(data.get("notes", [])),
        )


def _as_list(values: float | Sequence[float]) -> list[float]:
    if isinstance(values, int | float):
        return [float(values)]
    return list(values)


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

RunFn = Callable[..., Result]
SummarizeFn = Callable[..., None]
PartsFn = Callable[..., list[dict[str, Any]]]
MergeFn = Callable[..., Result]


@dataclass(frozen=True)
class ExperimentSpec:
    """A registered experiment: its name, the system it reproduces, its claim and its config."""

    name: str
    system: str
    claim: str
    config: type[Config]
    run: RunFn
    time: Mapping[str, str]
    summarize: SummarizeFn | None = None
    parts: PartsFn | None = None
    merge: MergeFn | None = None


_REGISTRY: dict[str, ExperimentSpec] = {}


def experiment(
    name: str,
    *,
    system: str,
    claim: str,
    config: type[Config],
    time: Mapping[str, str] | None = None,
    summarize: SummarizeFn | None = None,
    parts: PartsFn | None = None,
    merge: MergeFn | None = None,
) -> Callable[[RunFn], RunFn]:
    """Register ``run(cfg, ctx) -> Result`` as the reproduction ``name``.

    ``time`` gives a rough wall time per scale on 2 CPU cores (shown by ``provenml list``);
    ``summarize(results, ctx)``, if given, draws plots over all seeds of a multi-seed run.

    ``parts(cfg)`` and ``merge(cfg, results, ctx)`` split one seed into independent pieces
    (say, one per agent) so that ``--jobs`` can spread them over the cores: each part runs
    ``run(dataclasses.replace(cfg, **part), ctx)`` in its own directory, and ``merge`` builds
    the seed's result from the parts' results (in ``parts`` order). List the costliest parts
    first: workers take them in that order. A part must not depend on another part.
    """
    if (parts is None) != (merge is None):
        raise ValueError(f"experiment {name!r}: give both parts and merge, or neither")

    def register(fn: RunFn) -> RunFn:
        if name in _REGISTRY and _REGISTRY[name].run is not fn:
            raise ValueError(f"experiment {name!r} is registered twice")
        _REGISTRY[name] = ExperimentSpec(
            name=name,
            system=system,
            claim=claim,
            config=config,
            run=fn,
            time=dict(time or {}),
            summarize=summarize,
            parts=parts,
            merge=merge,
        )
        return fn

    return register


def registered(name: str) -> ExperimentSpec:
    """An experiment whose module is already imported (no discovery of the other systems)."""
    return _REGISTRY[name]


def registry() -> dict[str, ExperimentSpec]:
    """All experiments, after importing every system's ``experiments`` module."""
    from provenml.core.discovery import load_experiment_modules

    load_experiment_modules()
    return dict(sorted(_REGISTRY.items()))


def get_experiment(name: str) -> ExperimentSpec:
    """Look an experiment up by name; unknown names get the closest matches suggested."""
    experiments = registry()
    if name in experiments:
        return experiments[name]
    close = difflib.get_close_matches(name, experiments, n=3, cutoff=0.4)
    close += [n for n in experiments if name and name in n and n not in close]
    hint = f"; did you mean {', '.join(close[:3])}?" if close else ""
    raise ProvenmlError(f"unknown experiment {name!r}{hint} (see `provenml list`)")
