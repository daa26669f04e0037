"""Experiment configs: one dataclass per experiment, three scale presets, ``--set`` overrides.

The dataclass defaults are the ``small`` preset; ``presets`` holds the fields that differ at the
other scales. Presets merge along the class hierarchy, so a subclass lists only its
differences::

    @dataclass
    class TrainConfig(Config):
        steps: int = 1000
        width: int = 64
        presets: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {"steps": 20}}

    @dataclass
    class WideConfig(TrainConfig):
        width: int = 256
        presets: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {"width": 32}}

    WideConfig.from_preset("smoke")  # steps=20 (inherited), width=32

Every config is checked before anything runs (:func:`check_config`, called by
:meth:`Config.from_preset`, so by ``provenml reproduce`` before it creates a run directory):

- each value has its field's declared type (``int``, ``float``, ``bool``, ``str``, a
  ``Literal``, tuples of those) and every number is finite;
- naming conventions give ranges: a learning rate (``lr``, ``*_lr``, ``lr_*``) is > 0; a
  number of steps, epochs, updates, episodes, iterations, rounds, samples or repeats
  (``*steps``, ``*epochs``, ...) is >= 0, and ``steps``, ``epochs``, ``total_steps``,
  ``batch_size``, ``*_batch`` and ``*_batch_size`` are >= 1 (``threads`` is >= 0, 0 keeping
  torch's setting);
- a tuple that is not empty in the ``small`` preset may not be emptied (``--set models=``),
  unless its field says ``metadata={"may_be_empty": True}`` (layer sizes ``*hidden`` may be
  empty);
- ``choices`` (merged along the class hierarchy like ``presets``) maps a field to its known
  names (or a function returning them): every name in the field must be one of them, with a
  did-you-mean;
- then the config's own ``validate()`` method, when it has one (cross-field rules, ranges of
  its own; ``Config`` defines none, so that a mixin's ``validate`` after ``Config`` in the
  MRO is found).

A violation is one :class:`~provenml.errors.ProvenmlError` naming the field.

This module imports only the standard library, so that a system's ``experiments`` module can
be read without loading the run machinery.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from provenml.errors import ProvenmlError

__all__ = [
    "SCALES",
    "Config",
    "check_config",
    "close_matches",
    "field_problems",
    "merged_choices",
    "merged_presets",
    "parse_value",
    "suggest",
]

SCALES: tuple[str, ...] = ("smoke", "small", "paper")


def close_matches(
    name: str,
    candidates: typing.Iterable[str],
    n: int = 3,
    normalize: typing.Callable[[str], str] = str,
) -> list[str]:
    """The ``candidates`` closest to ``name``: close spellings (difflib) first, then those that
    contain it; compared after ``normalize``."""
    import difflib

    by_key = {normalize(c): c for c in candidates}
    key = normalize(name)
    close = difflib.get_close_matches(key, list(by_key), n=n, cutoff=0.4)
    close += [c for c in by_key if key and key in c and c not in close]
    return [by_key[c] for c in close[:n]]


def suggest(
    name: str,
    candidates: typing.Iterable[str],
    n: int = 3,
    normalize: typing.Callable[[str], str] = str,
) -> str:
    """``"; did you mean a, b?"`` for the closest ``candidates`` to ``name`` (or ``""``)."""
    close = close_matches(name, candidates, n, normalize)
    return f"; did you mean {', '.join(close)}?" if close else ""


def merged_presets(cls: type, scale: str) -> dict[str, Any]:
    """The preset overrides of ``cls`` at ``scale``, merged from the base class down.

    Each class in the MRO that defines its own ``presets`` contributes its entries; a subclass's
    entry wins over its parents'.
    """
    values: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        own = klass.__dict__.get("presets")
        if isinstance(own, Mapping):
            values.update(own.get(scale, {}))
    return values


@dataclass
class Config:
    """Base class of every experiment config: the defaults are the ``small`` preset.

    Subclasses set ``presets = {"smoke": {...}, "paper": {...}}`` with the fields that differ
    from the defaults at that scale (merged with the presets of the classes they derive from).
    """

    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    choices: ClassVar[Mapping[str, Iterable[str] | Callable[[], Iterable[str]]]] = {}

    @classmethod
    def preset_values(cls, scale: str) -> dict[str, Any]:
        """The fields that ``scale`` changes from the defaults (merged along the hierarchy)."""
        if scale not in SCALES:
            raise ProvenmlError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
        return merged_presets(cls, scale)

    @classmethod
    def from_preset(
        cls, scale: str = "small", overrides: Mapping[str, str] | None = None
    ) -> Config:
        """Build the config for ``scale``, then apply ``--set key=value`` string overrides."""
        values = cls.preset_values(scale)
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:  # a bug in the experiment's own preset table, not user input
            raise TypeError(f"{cls.__name__}.presets[{scale!r}] sets unknown fields {unknown}")
        cfg = cls(**values).with_overrides(overrides or {})
        check_config(cfg)
        return cfg

    def with_overrides(self, overrides: Mapping[str, str]) -> Config:
        """Return a copy with string overrides parsed to each field's declared type."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        hints = typing.get_type_hints(type(self))
        changes: dict[str, Any] = {}
        for key, raw in overrides.items():
            if key not in fields:
                import difflib

                close = difflib.get_close_matches(key, fields, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ProvenmlError(
                    f"unknown --set key {key!r} for {type(self).__name__}{hint} "
                    f"(known keys: {', '.join(fields)})"
                )
            changes[key] = parse_value(raw, hints[key], key)
        try:
            return dataclasses.replace(self, **changes)
        except (ValueError, TypeError) as exc:  # a __post_init__ check of the system's own
            raise ProvenmlError(f"{type(self).__name__}: {exc}") from None

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
# Generic field checks
# --------------------------------------------------------------------------------------------

_LEARNING_RATE = re.compile(r"^(lr|.*_lr|lr_.*|learning_rate)$")
_COUNT = re.compile(
    r"(steps|epochs|updates|episodes|iterations|rounds|samples|repeat|replicates|threads)$"
)
_AT_LEAST_ONE = re.compile(r"^(steps|epochs|total_steps|batch_size|.*_batch|.*_batch_size)$")


def check_config(cfg: Config) -> None:
    """Every field of ``cfg`` in type and range, then its own ``validate()`` (see the
    module docstring); the first problem is one :class:`ProvenmlError` naming the field."""
    for message in field_problems(cfg):
        raise ProvenmlError(f"{message} ({type(cfg).__name__})")
    validate = getattr(cfg, "validate", None)  # not on Config: a mixin's may follow it in the MRO
    try:
        if validate is not None:
            validate()
    except (ValueError, TypeError) as exc:  # a system's check that is not a ProvenmlError
        raise ProvenmlError(f"{type(cfg).__name__}: {exc}") from None


def merged_choices(cls: type) -> dict[str, Iterable[str] | Callable[[], Iterable[str]]]:
    """``choices`` of ``cls``, merged from the base class down (a subclass's entry wins)."""
    values: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        own = klass.__dict__.get("choices")
        if isinstance(own, Mapping):
            values.update(own)
    return values


def _type_problem(name: str, value: Any, annotation: Any) -> str | None:
    """Why ``value`` does not fit ``annotation`` (``None`` when it does, or when the
    annotation is one these checks do not know)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        problems = [_type_problem(name, value, a) for a in args if a is not type(None)]
        return None if any(p is None for p in problems) else problems[0]
    if origin is Literal:
        if value in args:
            return None
        return f"{name} must be one of {', '.join(map(str, args))}, got {value!r}"
    if origin in (tuple, list):
        if not isinstance(value, tuple | list):
            return f"{name} must be a list of values, got {value!r}"
        item = args[0] if args and (origin is list or len(args) == 1 or args[-1] is ...) else None
        if item is None:
            return None
        for element in value:
            problem = _type_problem(name, element, item)
            if problem is not None:
                return problem
        return None
    if annotation is bool:
        return None if isinstance(value, bool) else f"{name} must be true or false, got {value!r}"
    if annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"{name} must be an integer, got {value!r}"
    if annotation is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"{name} must be a number, got {value!r}"
    if annotation is str:
        return None if isinstance(value, str) else f"{name} must be a string, got {value!r}"
    return None


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [value]
    if isinstance(value, tuple | list):
        return [v for v in value if isinstance(v, int | float) and not isinstance(v, bool)]
    return []


def field_problems(cfg: Config) -> list[str]:
    """What the generic checks find wrong with ``cfg`` (see the module docstring), in field
    order; empty when nothing is."""
    cls = type(cfg)
    hints = typing.get_type_hints(cls)
    choices = merged_choices(cls)
    problems: list[str] = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        problem = _type_problem(f.name, value, hints.get(f.name, Any))
        if problem is not None:
            problems.append(problem)
            continue
        numbers = _numbers(value)
        if any(not math.isfinite(v) for v in numbers):
            problems.append(f"{f.name} must be finite, got {value!r}")
            continue
        if _LEARNING_RATE.match(f.name) and any(v <= 0 for v in numbers):
            problems.append(f"{f.name} must be > 0, got {value!r}")
        elif _AT_LEAST_ONE.match(f.name) and any(v < 1 for v in numbers):
            problems.append(f"{f.name} must be at least 1, got {value!r}")
        elif _COUNT.search(f.name) and any(v < 0 for v in numbers):
            problems.append(f"{f.name} must be >= 0, got {value!r}")
        if isinstance(value, tuple | list) and not value and _must_not_be_empty(f):
            problems.append(f"{f.name} must name at least one value (it is empty)")
        if f.name in choices and isinstance(value, str | tuple | list):
            known = choices[f.name]
            names = list(known() if callable(known) else known)
            for item in [value] if isinstance(value, str) else value:
                if item not in names:
                    problems.append(
                        f"{f.name}: unknown {item!r}{suggest(str(item), names)} "
                        f"(known: {', '.join(names)})"
                    )
                    break
    return problems


def _must_not_be_empty(f: dataclasses.Field[Any]) -> bool:
    """A tuple field that is not empty by default, and not marked ``may_be_empty``."""
    if f.metadata.get("may_be_empty") or f.name.endswith("hidden"):
        return False
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        return False
    return isinstance(default, tuple | list) and len(default) > 0
