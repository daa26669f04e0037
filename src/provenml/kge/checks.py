"""Argument checks shared by the KGE components: one :class:`ProvenmlError` naming the argument,
raised before any work is done (never a raw ``IndexError`` deep inside torch)."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable

import torch
from torch import Tensor

from provenml.errors import ProvenmlError


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum`` (``bool`` and floats such as 2.5 are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProvenmlError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ProvenmlError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_float(
    name: str,
    value: object,
    *,
    minimum: float = -math.inf,
    exclusive: bool = False,
    maximum: float = math.inf,
    below_max: bool = False,
) -> float:
    """``value`` as a finite float in ``[minimum, maximum]`` (bounds open when asked)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProvenmlError(f"{name} must be a finite number, got {value!r}")
    low_bad = value <= minimum if exclusive else value < minimum
    high_bad = value >= maximum if below_max else value > maximum
    if low_bad or high_bad:
        low = f"{'>' if exclusive else '>='} {minimum}" if minimum > -math.inf else ""
        high = f"{'<' if below_max else '<='} {maximum}" if maximum < math.inf else ""
        bounds = " and ".join(b for b in (low, high) if b)
        raise ProvenmlError(f"{name} must be {bounds}, got {value}")
    return float(value)


def check_choice(name: str, value: object, options: Iterable[str]) -> str:
    """``value`` if it is one of ``options``; otherwise an error with a did-you-mean."""
    choices = list(options)
    if isinstance(value, str) and value in choices:
        return value
    close = difflib.get_close_matches(str(value), choices, n=2)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ProvenmlError(f"{name} must be one of {', '.join(choices)}, got {value!r}{hint}")


def check_triples(
    triples: object,
    name: str = "triples",
    num_entities: int | None = None,
    num_relations: int | None = None,
    allow_empty: bool = False,
) -> Tensor:
    """``triples`` as an ``(n, 3)`` int64 tensor of ids in range; one clear error otherwise.

    Ids must be integers in ``[0, num_entities)`` (heads, tails) and ``[0, num_relations)``.
    """
    if not isinstance(triples, Tensor) or triples.dim() != 2 or triples.shape[1] != 3:
        shape = tuple(triples.shape) if isinstance(triples, Tensor) else type(triples).__name__
        raise ProvenmlError(f"{name} must be a (n, 3) LongTensor of (h, r, t) ids, got {shape}")
    if triples.dtype.is_floating_point or triples.dtype.is_complex or triples.dtype == torch.bool:
        raise ProvenmlError(f"{name} must hold integer ids, got dtype {triples.dtype}")
    if len(triples) == 0:
        if allow_empty:
            return triples.long()
        raise ProvenmlError(f"{name} is empty: it must hold at least one (h, r, t) triple")
    ents, rels = triples[:, [0, 2]], triples[:, 1]
    for ids, kind, bound in ((ents, "entity", num_entities), (rels, "relation", num_relations)):
        low = int(ids.min())
        if low < 0:
            raise ProvenmlError(f"{name} holds a negative {kind} id ({low})")
        high = int(ids.max())
        if bound is not None and high >= bound:
            raise ProvenmlError(
                f"{name} holds {kind} id {high}, beyond the model's {bound} "
                f"{'entities' if kind == 'entity' else 'relations'} (ids 0..{bound - 1})"
            )
    return triples.long()
