"""Claims: a paper's statement, the numbers that test it, and a verdict computed from them.

A verdict is never written by hand. Every :class:`Claim` computes it from the measured values
it holds, with one of these comparisons (``margin`` is a constant written in the claim):

- **ordered** (``"<"``, ``"<="``, ``">"``, ``">="``): ``mean(ours) <op> mean(reference) + margin``
  for every reference (``margin`` is signed: ``"<="`` with ``margin=0.01`` reads "no more than
  0.01 above");
- **closeness** (``"within"``): ``|mean(ours) - mean(reference)| <= margin`` for every reference,
  two-sided, so beating a weak reference by a lot does not count as "close to" it;
- **for each** (``members=``): the comparison holds for every member (a dataset, a model, a
  budget...), each with its own values; the claim lists the members that fail.

The reference is either measured ``baselines`` (one value per seed) or a ``threshold`` that is
a constant: a number literal or a :class:`Published` value with its source. A threshold is
recorded in ``result.json`` as such; it may not be a number derived from the measurements (a
numpy or torch scalar is refused here, and ``tests/test_contract.py`` checks every
``threshold=`` in the experiments' source with :func:`provenml.core.audit.threshold_violations`).

With ``test="paired"`` or ``"welch"`` a one-sided t-test (two one-sided tests, TOST, for
``"within"``) must also reject at ``alpha``; this needs two or more seeds, else the verdict is
inconclusive. A :class:`Precondition` (a measured regime check with a reason) turns the verdict
into ``inconclusive`` with that reason when it fails. Every inconclusive verdict says why in
``reason``.

Examples::

    Claim(key="beats_uniform", statement="learnability needs fewer updates than uniform",
          metric="updates to 60% accuracy", ours_label="learnability", ours=[410.0, 380.0],
          baselines={"uniform": [820.0, 790.0]}, comparison="<", test="paired")
    Claim(key="published_auroc", statement="GNNExplainer reaches its published BA-Shapes AUROC "
          "(0.925)", metric="AUROC", ours_label="GNNExplainer", ours=[0.93, 0.92],
          comparison=">=", threshold=Published(0.925, source="GNNExplainer paper, Table 1"))
    Claim(key="near_oracle", statement="WSD-S within 0.01 nats/byte of the oracle cosine",
          metric="loss", ours_label="WSD-S", ours=[1.51], baselines={"oracle": [1.505]},
          comparison="within", margin=0.01,
          precondition=Precondition.compare("the oracle is more than 0.02 behind WSD",
                                            [1.505], "<=", [1.49], margin=0.02))
    Claim(key="every_beats_random", statement="every explainer beats Random on every dataset",
          metric="AUROC", ours_label="explainer", comparison=">",
          members={"gnnexplainer/ba_shapes": Member([0.91], {"random": [0.5]}),
                   "pgexplainer/tree_grid": Member([0.31], {"random": [0.5]})})
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "COMPARISONS",
    "Claim",
    "Comparison",
    "Member",
    "Precondition",
    "Published",
    "Verdict",
]

Comparison = Literal["<", "<=", ">", ">=", "within"]
Verdict = Literal["holds", "fails", "inconclusive"]
TestKind = Literal["paired", "welch"]

_ORDERED: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
COMPARISONS: tuple[str, ...] = (*_ORDERED, "within")


# --------------------------------------------------------------------------------------------
# Constants a claim may be tested against
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """A number published elsewhere (a paper's table), with where it comes from.

    ``Published(0.925, source="GNNExplainer paper, Table 1")``. The value must be a number
    literal: a claim tests the measurements against it, so it may not come from them.
    """

    value: float
    source: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _constant(self.value, "Published value"))
        if not isinstance(self.source, str) or not self.source.strip():
            raise ValueError("Published needs a source (e.g. 'paper Table 2')")

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source}


Threshold = float | Published


def _constant(value: Any, what: str) -> float:
    """``value`` as a float if it is a plain, finite int or float (not numpy, torch or bool)."""
    if type(value) not in (int, float):
        raise TypeError(
            f"{what} must be a number literal or Published(value, source=...), not "
            f"{type(value).__module__}.{type(value).__qualname__}; a number computed from the "
            "measurements is a baseline, not a threshold"
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value}")
    return value


def _threshold(value: Any) -> Threshold | None:
    if value is None or isinstance(value, Published):
        return value
    if isinstance(value, Mapping):  # from result.json
        if value.get("source"):
            return Published(float(value["value"]), str(value["source"]))
        return float(value["value"])
    return _constant(value, "threshold")


def _threshold_value(threshold: Threshold) -> float:
    return threshold.value if isinstance(threshold, Published) else float(threshold)


def _threshold_to_dict(threshold: Threshold | None) -> dict[str, Any] | None:
    if threshold is None:
        return None
    if isinstance(threshold, Published):
        return threshold.to_dict()
    return {"value": float(threshold), "source": None}


# --------------------------------------------------------------------------------------------
# Preconditions
# --------------------------------------------------------------------------------------------


@dataclass
class Precondition:
    """The regime a claim needs, measured; when it fails the claim is ``inconclusive``.

    ``reason`` says what failing means ("the oracle is more than 0.02 behind WSD"); it becomes
    the claim's ``reason``. Either give ``holds`` (one measured boolean per seed; all must hold)
    or build it with :meth:`compare`, which keeps the compared values so that the check is
    redone on the means when seeds are merged.
    """

    reason: str
    holds: list[bool] = field(default_factory=list)
    left: list[float] = field(default_factory=list)
    comparison: str | None = None
    right: list[float] = field(default_factory=list)
    margin: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.holds, bool):
            self.holds = [self.holds]
        self.holds = [bool(h) for h in self.holds]
        self.left = [float(v) for v in _as_list(self.left)]
        self.right = [float(v) for v in _as_list(self.right)]
        self.margin = float(self.margin)
        if self.comparison is not None and self.comparison not in COMPARISONS:
            raise ValueError(f"precondition comparison must be one of {list(COMPARISONS)}")
        if (self.comparison is None) == (not self.holds):
            raise ValueError("give a Precondition either holds=... or use Precondition.compare")

    @classmethod
    def compare(
        cls,
        reason: str,
        left: float | Sequence[float],
        comparison: Comparison,
        right: float | Sequence[float],
        margin: float = 0.0,
    ) -> Precondition:
        """Holds when ``mean(left) <comparison> mean(right) + margin`` (``within``: two-sided)."""
        return cls(reason=reason, left=left, comparison=comparison, right=right, margin=margin)

    @property
    def measured(self) -> bool:
        """Whether the check has finite values to decide on (always, for ``holds``)."""
        if self.comparison is None:
            return bool(self.holds)
        return not (math.isnan(_mean(self.left)) or math.isnan(_mean(self.right)))

    @property
    def satisfied(self) -> bool:
        """Whether the regime holds (a NaN comparison does not)."""
        if self.comparison is None:
            return bool(self.holds) and all(self.holds)
        return _compare(_mean(self.left), self.comparison, _mean(self.right), self.margin)

    def merged(self, other: Precondition) -> Precondition:
        """Both seeds' measurements. A per-seed check (``holds``) keeps the reasons of the
        members that failed, so a passing first seed does not hide why a later one failed."""
        reason = self.reason
        if self.comparison is None:
            failing = [p.reason for p in (self, other) if not all(p.holds)]
            if failing:
                reason = " | ".join(dict.fromkeys(failing))
        return Precondition(
            reason=reason,
            holds=[*self.holds, *other.holds],
            left=[*self.left, *other.left],
            comparison=self.comparison,
            right=[*self.right, *other.right],
            margin=self.margin,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "holds": list(self.holds),
            "left": list(self.left),
            "comparison": self.comparison,
            "right": list(self.right),
            "margin": self.margin,
            "satisfied": self.satisfied,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Precondition:
        data = dict(data)
        data.pop("satisfied", None)
        return cls(**data)


# --------------------------------------------------------------------------------------------
# The comparison itself
# --------------------------------------------------------------------------------------------


def _compare(ours: float, comparison: str, reference: float, margin: float) -> bool:
    if math.isnan(ours) or math.isnan(reference):
        return False
    if comparison == "within":
        return abs(ours - reference) <= margin
    return _ORDERED[comparison](ours, reference + margin)


@dataclass
class _Judgement:
    verdict: Verdict
    p_values: dict[str, float]
    reason: str


def _judge(
    ours: list[float],
    references: Mapping[str, list[float]],
    comparison: str,
    margin: float,
    test: TestKind | None,
    alpha: float,
) -> _Judgement:
    """The verdict of ``ours`` against every reference (means, then the optional test)."""
    from provenml.core import stats

    ours_mean = _mean(ours)
    means = {name: _mean(values) for name, values in references.items()}
    p_values: dict[str, float] = {}
    if math.isnan(ours_mean) or any(math.isnan(m) for m in means.values()):
        nan = [name for name, m in means.items() if math.isnan(m)]
        if math.isnan(ours_mean):
            nan.insert(0, "ours")
        return _Judgement("inconclusive", p_values, f"no finite value for {', '.join(nan)}")
    mean_holds = all(_compare(ours_mean, comparison, m, margin) for m in means.values())

    def p_value(base: list[float], shift: float, alternative: Literal["less", "greater"]) -> float:
        shifted = [b + shift for b in base]
        if test == "welch":
            return stats.welch_test(ours, shifted, alternative)
        return stats.paired_test(ours, shifted, alternative)

    for name, base in references.items():
        welch_ok = test == "welch" and len(ours) >= 2 and len(base) >= 2
        paired_ok = test != "welch" and len(ours) >= 2 and len(base) == len(ours)
        if not (welch_ok or paired_ok):
            continue
        if comparison == "within":  # two one-sided tests: the gap is above -margin, below +margin
            p_values[name] = max(p_value(base, -margin, "greater"), p_value(base, margin, "less"))
        else:
            alternative = "less" if comparison in ("<", "<=") else "greater"
            p_values[name] = p_value(base, margin, alternative)
    if test is None:
        return _Judgement("holds" if mean_holds else "fails", p_values, "")
    if len(p_values) < len(references):
        need = "two or more seeds" if test == "welch" else "two or more seed-matched values"
        return _Judgement("inconclusive", p_values, f"the {test} test needs {need}")
    significant = all(p <= alpha for p in p_values.values())
    return _Judgement("holds" if mean_holds and significant else "fails", p_values, "")


def _references(
    baselines: Mapping[str, list[float]], threshold: Threshold | None, n: int
) -> dict[str, list[float]]:
    """The values to compare against: the baselines, or the constant once per seed."""
    if threshold is None:
        return dict(baselines)
    label = threshold.source if isinstance(threshold, Published) else "threshold"
    return {label: [_threshold_value(threshold)] * max(n, 1)}


# --------------------------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------------------------


@dataclass
class Member:
    """One member of a "for each" claim: its own values and, optionally, its own reference.

    A member without ``baselines`` or ``threshold`` is compared with the claim's.
    """

    ours: list[float]
    baselines: dict[str, list[float]] = field(default_factory=dict)
    threshold: Threshold | None = None
    p_values: dict[str, float] = field(default_factory=dict)
    verdict: Verdict = "inconclusive"
    reason: str = ""

    def __post_init__(self) -> None:
        self.ours = [float(v) for v in _as_list(self.ours)]
        self.baselines = {k: [float(v) for v in _as_list(vs)] for k, vs in self.baselines.items()}
        self.threshold = _threshold(self.threshold)
        if self.baselines and self.threshold is not None:
            raise ValueError("a member compares with baselines or with a threshold, not both")

    @property
    def ours_mean(self) -> float:
        return _mean(self.ours)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ours": list(self.ours),
            "baselines": {k: list(v) for k, v in self.baselines.items()},
            "threshold": _threshold_to_dict(self.threshold),
            "p_values": dict(self.p_values),
            "verdict": self.verdict,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Member:
        return cls(
            ours=list(data.get("ours", [])),
            baselines=dict(data.get("baselines", {})),
            threshold=_threshold(data.get("threshold")),
        )


@dataclass
class Claim:
    """One of a paper's statements, with the numbers that test it (see the module docstring).

    ``ours`` and each baseline hold one value per seed. With two or more seed-matched values,
    one-sided paired p-values are computed for display even when ``test`` is None; they only
    decide the verdict when ``test`` is set. ``verdict``, ``p_values``, ``reason`` and
    ``failing`` are computed, never given.
    """

    key: str
    statement: str
    metric: str
    ours_label: str
    ours: list[float] = field(default_factory=list)
    baselines: dict[str, list[float]] = field(default_factory=dict)
    comparison: Comparison = None  # type: ignore[assignment]  # required; checked below
    margin: float = 0.0
    test: TestKind | None = None
    alpha: float = 0.05
    seeds: list[int] = field(default_factory=list)
    p_values: dict[str, float] = field(default_factory=dict)
    verdict: Verdict = "inconclusive"
    threshold: Threshold | None = None
    members: dict[str, Member] = field(default_factory=dict)
    precondition: Precondition | None = None
    reason: str = ""
    failing: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.comparison not in COMPARISONS:
            raise ValueError(f"comparison must be one of {list(COMPARISONS)}")
        if self.test not in (None, "paired", "welch"):
            raise ValueError("test must be None, 'paired' or 'welch'")
        self.margin = float(self.margin)
        if not math.isfinite(self.margin):
            raise ValueError("margin must be finite")
        if self.comparison == "within" and self.margin < 0:
            raise ValueError("a 'within' claim needs margin >= 0 (the largest allowed |gap|)")
        self.ours = [float(v) for v in _as_list(self.ours)]
        self.baselines = {k: [float(v) for v in _as_list(vs)] for k, vs in self.baselines.items()}
        self.threshold = _threshold(self.threshold)
        self.members = {
            str(name): m if isinstance(m, Member) else Member.from_dict(m)
            for name, m in self.members.items()
        }
        if isinstance(self.precondition, Mapping):
            self.precondition = Precondition.from_dict(self.precondition)
        if self.baselines and self.threshold is not None:
            raise ValueError(f"claim {self.key!r}: compare with baselines or a threshold, not both")
        if self.members:
            if self.ours:
                raise ValueError(f"claim {self.key!r}: a 'for each' claim keeps ours per member")
            for name, member in self.members.items():
                if not (member.baselines or member.threshold is not None) and not (
                    self.baselines or self.threshold is not None
                ):
                    raise ValueError(f"claim {self.key!r}: member {name!r} has no reference")
        elif not self.baselines and self.threshold is None:
            raise ValueError(f"claim {self.key!r} needs baselines, a threshold or members")
        self.verdict = self.evaluate()

    # -- values ---------------------------------------------------------------------------------
    @property
    def ours_mean(self) -> float:
        return _mean(self.ours)

    def baseline_mean(self, name: str) -> float:
        return _mean(self.baselines[name])

    @property
    def is_for_each(self) -> bool:
        return bool(self.members)

    def measured_values(self) -> Iterator[float]:
        """Every measured number the verdict rests on (ours, baselines, members, precondition)."""
        yield from self.ours
        for values in self.baselines.values():
            yield from values
        for member in self.members.values():
            yield from member.ours
            for values in member.baselines.values():
                yield from values
        if self.precondition is not None:
            yield from self.precondition.left
            yield from self.precondition.right

    @property
    def precondition_failed(self) -> bool:
        return self.precondition is not None and not self.precondition.satisfied

    # -- the verdict ------------------------------------------------------------------------------
    def evaluate(self) -> Verdict:
        """Compute the verdict from the measured values; sets ``p_values``, ``reason``,
        ``failing`` (and each member's verdict)."""
        self.failing = []
        if self.members:
            judgements = {}
            for name, member in self.members.items():
                own = member.baselines or member.threshold is not None
                judged = _judge(
                    member.ours,
                    _references(
                        member.baselines if own else self.baselines,
                        member.threshold if own else self.threshold,
                        len(member.ours),
                    ),
                    self.comparison,
                    self.margin,
                    self.test,
                    self.alpha,
                )
                member.verdict, member.p_values, member.reason = (
                    judged.verdict,
                    judged.p_values,
                    judged.reason,
                )
                judgements[name] = judged
            self.p_values = {}
            self.failing = [n for n, j in judgements.items() if j.verdict == "fails"]
            unsure = [n for n, j in judgements.items() if j.verdict == "inconclusive"]
            if self.failing:
                verdict: Verdict = "fails"
                self.reason = ""
            elif unsure:
                verdict = "inconclusive"
                self.reason = "; ".join(f"{n}: {judgements[n].reason}" for n in unsure)
            else:
                verdict, self.reason = "holds", ""
        else:
            judged = _judge(
                self.ours,
                _references(self.baselines, self.threshold, len(self.ours)),
                self.comparison,
                self.margin,
                self.test,
                self.alpha,
            )
            verdict, self.p_values, self.reason = judged.verdict, judged.p_values, judged.reason
        if self.precondition is not None and not self.precondition.satisfied:
            self.reason = (
                self.precondition.reason
                if self.precondition.measured
                else f"precondition not measured ({self.precondition.reason})"
            )
            return "inconclusive"
        return verdict

    def comparison_text(self) -> str:
        """The tested comparison in words, e.g. ``|gap| <= 0.01``, ``>= 0.925 (paper Table 1)``."""
        if self.comparison == "within":
            text = f"|gap| <= {self.margin:g}"
        else:
            text = self.comparison + (f" (margin {self.margin:+g})" if self.margin else "")
        if self.threshold is not None:
            value = _threshold_value(self.threshold)
            source = f" ({self.threshold.source})" if isinstance(self.threshold, Published) else ""
            text += f" {value:g}{source}"
        if self.members:
            text = f"for each of {len(self.members)}: {text}"
        return text

    # -- seeds ------------------------------------------------------------------------------------
    @classmethod
    def combine(cls, per_seed: Sequence[tuple[int, Claim]]) -> Claim:
        """One claim over several seeds (same ``key``): values concatenated in seed order, the
        verdict recomputed on the pooled values."""
        if not per_seed:
            raise ValueError("combine needs at least one claim")
        first = per_seed[0][1]
        ours: list[float] = []
        baselines: dict[str, list[float]] = {b: [] for b in first.baselines}
        members: dict[str, Member] = {}
        precondition: Precondition | None = None
        seeds: list[int] = []
        for seed, claim in per_seed:
            ours.extend(claim.ours)
            for name, values in claim.baselines.items():
                baselines.setdefault(name, []).extend(values)
            for name, member in claim.members.items():
                target = members.setdefault(
                    name, Member(ours=[], baselines={}, threshold=member.threshold)
                )
                target.ours.extend(member.ours)
                for b, values in member.baselines.items():
                    target.baselines.setdefault(b, []).extend(values)
            if claim.precondition is not None:
                precondition = (
                    claim.precondition
                    if precondition is None
                    else precondition.merged(claim.precondition)
                )
            seeds.append(seed)
        return cls(
            key=first.key,
            statement=first.statement,
            metric=first.metric,
            ours_label=first.ours_label,
            ours=ours,
            baselines=baselines,
            comparison=first.comparison,
            margin=first.margin,
            test=first.test,
            alpha=first.alpha,
            seeds=seeds,
            threshold=first.threshold,
            members=members,
            precondition=precondition,
        )

    # -- serialisation ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "statement": self.statement,
            "metric": self.metric,
            "ours_label": self.ours_label,
            "ours": list(self.ours),
            "baselines": {k: list(v) for k, v in self.baselines.items()},
            "comparison": self.comparison,
            "margin": self.margin,
            "test": self.test,
            "alpha": self.alpha,
            "seeds": list(self.seeds),
            "p_values": dict(self.p_values),
            "verdict": self.verdict,
            "threshold": _threshold_to_dict(self.threshold),
            "members": {name: m.to_dict() for name, m in self.members.items()},
            "precondition": None if self.precondition is None else self.precondition.to_dict(),
            "reason": self.reason,
            "failing": list(self.failing),
            "comparison_text": self.comparison_text(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Claim:
        """Rebuild a claim from ``to_dict`` output (old result.json files included); the
        verdict is recomputed from the values."""
        data = dict(data)
        for computed in ("verdict", "p_values", "reason", "failing", "comparison_text"):
            data.pop(computed, None)
        data["threshold"] = _threshold(data.get("threshold"))
        data["members"] = {n: Member.from_dict(m) for n, m in (data.get("members") or {}).items()}
        if data.get("precondition") is not None:
            data["precondition"] = Precondition.from_dict(data["precondition"])
        return cls(**data)


def _as_list(values: float | Sequence[float]) -> list[float]:
    if isinstance(values, int | float):
        return [float(values)]
    return list(values)


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan
