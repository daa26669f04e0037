"""A plain multi-layer perceptron, the one every system builds the same way."""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Sequence

from torch import nn

from provenml.errors import ProvenmlError

__all__ = ["mlp"]


def mlp(
    in_features: int,
    hidden: Sequence[int],
    out_features: int,
    *,
    activation: type[nn.Module] = nn.ReLU,
    dropout: float = 0.0,
) -> nn.Sequential:
    """An MLP ``in - hidden[0] - ... - hidden[-1] - out`` (e.g. ``mlp(40, [512, 512], 10)``).

    Every hidden layer is ``Linear`` then ``activation()`` (then ``Dropout(dropout)`` when
    ``dropout > 0``); the output layer is a bare ``Linear``. The layers are created, and so
    initialised from torch's global generator, in order from input to output; the result is a
    flat ``nn.Sequential`` whose last module is the output layer (``net[-1]``), so a caller can
    re-initialise it (e.g. the orthogonal heads of :class:`provenml.rl.ActorCritic`).
    """
    if isinstance(hidden, int | str) or not isinstance(hidden, Sequence):
        raise ProvenmlError(f"hidden must be a list of widths (e.g. [64, 64]), got {hidden!r}")
    sizes = {"in_features": in_features, "out_features": out_features, "hidden": hidden}
    for name, value in sizes.items():
        for v in value if name == "hidden" else [value]:  # type: ignore[attr-defined]
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                kind = "a list of integers" if name == "hidden" else "an integer"
                raise ProvenmlError(f"{name} must be {kind}, got {value!r}")
    if in_features < 1 or out_features < 1:
        raise ProvenmlError(
            f"in_features and out_features must be >= 1, got {in_features} and {out_features}"
        )
    if any(h < 1 for h in hidden):
        raise ProvenmlError(f"hidden widths must be >= 1, got {list(hidden)}")
    if not 0.0 <= dropout < 1.0:
        raise ProvenmlError(f"dropout must be in [0, 1), got {dropout}")
    widths = [in_features, *hidden]
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), activation()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(widths[-1], out_features))
    return nn.Sequential(*layers)
