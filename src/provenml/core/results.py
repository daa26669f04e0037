"""What one run of an experiment returns: claims, a flat summary, tables, data and notes.

``Result.summary`` is flat (``{"loss/wsd/2T": 1.52}``) so that seeds can be averaged key by
key; build it from nested dicts with :func:`flatten_summary`. ``Result.tables`` holds small
tables that the report renders as they are (``Table(title, columns, rows)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from provenml.core.claims import Claim

__all__ = ["Result", "Table", "flatten_summary"]


def flatten_summary(nested: Mapping[str, Any], sep: str = "/") -> dict[str, float]:
    """``{"loss": {"wsd": {"2T": 1.5}}}`` -> ``{"loss/wsd/2T": 1.5}``.

    Leaves must be numbers (int, float, numpy or 0-d torch scalars; ``bool`` becomes 0/1);
    anything else is a ``TypeError`` naming the key path.
    """
    flat: dict[str, float] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}{sep}{key}" if prefix else str(key)
            if isinstance(value, Mapping):
                walk(value, path)
                continue
            try:
                flat[path] = float(value)
            except (TypeError, ValueError):
                raise TypeError(
                    f"summary value at {path!r} is {type(value).__name__}, not a number"
                ) from None

    walk(nested, "")
    return flat


@dataclass
class Table:
    """A small table for the report: a title, column names and rows of cells.

    Serialised as ``{"title": str, "columns": [str, ...], "rows": [[cell, ...], ...]}``
    (cells are numbers, strings or None).
    """

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.columns = [str(c) for c in self.columns]
        self.rows = [list(row) for row in self.rows]
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table {self.title!r}: row {i} has {len(row)} cells for "
                    f"{len(self.columns)} columns"
                )
        self.rows = [[_cell(v) for v in row] for row in self.rows]

    @classmethod
    def from_records(
        cls, title: str, records: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
    ) -> Table:
        """A table from a list of dicts (columns: ``columns`` or the first record's keys)."""
        names = list(columns) if columns is not None else (list(records[0]) if records else [])
        return cls(title, names, [[r.get(c) for c in names] for r in records])

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": list(self.columns), "rows": self.rows}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Table:
        return cls(str(data.get("title", "")), list(data["columns"]), list(data.get("rows", [])))


def _cell(value: Any) -> Any:
    """A JSON-friendly cell: None, str, bool, int or float (numpy / torch scalars unwrapped)."""
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return str(value)


@dataclass
class Result:
    """What one run of an experiment measured: its claims, scalar summaries, tables, curves."""

    claims: list[Claim] = field(default_factory=list)
    summary: dict[str, float] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "claims": [c.to_dict() for c in self.claims],
            "summary": self.summary,
            "data": self.data,
            "notes": self.notes,
            "tables": [t.to_dict() for t in self.tables],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        return cls(
            claims=[Claim.from_dict(c) for c in data.get("claims", [])],
            summary=dict(data.get("summary", {})),
            data=dict(data.get("data", {})),
            notes=list(data.get("notes", [])),
            tables=[Table.from_dict(t) for t in data.get("tables", [])],
        )
