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

This module imports only the standard library, so that a system's ``experiments`` module can
be read without loading the run machinery.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from provenml.errors import ProvenmlError

__all__ = ["SCALES", "Config", "close_matches", "merged_presets", "parse_value", "suggest"]

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
        cfg = cls(**values)
        return cfg.with_overrides(overrides or {})

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
