"""The river-valley toy of Wen et al. (2024, Sec. 4): a synthetic bigram language.

Half of the tokens (the *river* tokens) have a near-deterministic successor; the others (the
*hill* tokens) are followed by a draw from a broad, high-entropy distribution. The loss of a
bigram model splits exactly into the two parts, weighted by how often each kind of token is the
current one:

    L = w_river * L_river + w_hill * L_hill,   L_c = -sum_n P(n | c) log q(n | c)  (per kind),

so the expected loss is computed from the true transition matrix, without sampling noise.
The paper's picture: under a constant (high) rate the iterate keeps moving down the river
(the deterministic transitions keep improving) while its oscillation across the valley keeps the
high-entropy part, and hence the total, elevated; the decay removes mostly that hill part.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from provenml.errors import ProvenmlError


@dataclass(frozen=True)
class BigramLanguage:
    """A bigram language: ``transition[c]`` is P(next | current = c); ``is_river[c]`` marks the
    near-deterministic tokens; ``start`` is the distribution of the current token."""

    transition: torch.Tensor
    is_river: torch.Tensor
    start: torch.Tensor

    @property
    def vocab(self) -> int:
        return int(self.transition.shape[0])

    def entropy(self) -> torch.Tensor:
        """Per-token entropy of the next token (nats): the floor of each token's loss."""
        p = self.transition
        return -(p * p.clamp_min(1e-30).log()).sum(-1)

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """``batch_size`` (current, next) pairs, all drawn in two vectorised calls."""
        current = torch.multinomial(self.start, batch_size, replacement=True, generator=generator)
        nxt = torch.multinomial(self.transition[current], 1, generator=generator).squeeze(1)
        return current, nxt


def make_bigram_language(
    vocab: int = 128,
    river_fraction: float = 0.5,
    river_confidence: float = 0.9999,
    hill_support: int = 32,
    seed: int = 0,
) -> BigramLanguage:
    """River tokens go to one fixed successor with probability ``river_confidence`` (the rest
    spread uniformly); hill tokens go uniformly to ``hill_support`` random successors.

    Both kinds must exist (``round(vocab * river_fraction)`` between 1 and ``vocab - 1``); bad
    arguments raise :class:`~provenml.errors.ProvenmlError` naming them.
    """
    vocab = _integer("vocab", vocab, minimum=2)
    river_fraction = _real("river_fraction", river_fraction)
    river_confidence = _real("river_confidence", river_confidence)
    hill_support = _integer("hill_support", hill_support, minimum=1)
    seed = _integer("seed", seed)
    n_river = round(vocab * river_fraction)
    if not 1 <= n_river <= vocab - 1:
        raise ProvenmlError(
            f"river_fraction={river_fraction} gives {n_river} river tokens of {vocab}; "
            "both river and hill tokens must exist"
        )
    if not 0 < river_confidence <= 1:
        raise ProvenmlError(f"river_confidence must be in (0, 1], got {river_confidence}")
    if hill_support > vocab:
        raise ProvenmlError(f"hill_support ({hill_support}) must be at most vocab ({vocab})")
    g = torch.Generator().manual_seed(seed)
    is_river = torch.zeros(vocab, dtype=torch.bool)
    is_river[torch.randperm(vocab, generator=g)[:n_river]] = True
    transition = torch.zeros(vocab, vocab)
    successors = torch.randint(0, vocab, (vocab,), generator=g)
    spread = (1 - river_confidence) / (vocab - 1)
    river_rows = torch.full((vocab, vocab), spread)
    river_rows[torch.arange(vocab), successors] = river_confidence
    supports = torch.rand(vocab, vocab, generator=g).argsort(dim=1)[:, :hill_support]
    hill_rows = torch.zeros(vocab, vocab).scatter_(1, supports, 1.0 / hill_support)
    transition = torch.where(is_river[:, None], river_rows, hill_rows)
    start = torch.full((vocab,), 1.0 / vocab)
    return BigramLanguage(transition, is_river, start)


class BigramModel(nn.Module):
    """The full bigram model: a ``vocab x vocab`` table of next-token logits, zero at start.

    Its loss is convex in the logits; the river directions are the ever-growing margins of the
    deterministic transitions (SGD's progress there slows like 1/t), the hill directions are the
    logits of the high-entropy rows, where gradient noise at a high rate keeps the iterate
    oscillating above the valley floor.
    """

    def __init__(self, vocab: int) -> None:
        super().__init__()
        vocab = _integer("vocab", vocab, minimum=1)
        self.logits = nn.Parameter(torch.zeros(vocab, vocab))

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return self.logits[current]


@torch.no_grad()
def loss_split(model: BigramModel, language: BigramLanguage) -> dict[str, float]:
    """Exact expected loss: total and its river / hill parts (each a per-kind average), and
    the weights that recombine them: ``total = w_river * river + w_hill * hill``.

    With ``pi = language.start`` and ``q`` the model's softmax, the per-token loss is
    ``l(c) = -sum_n P(n | c) log q(n | c)``; ``river = sum_{c river} pi_c l(c) / w_river`` with
    ``w_river = sum_{c river} pi_c`` (Wen et al. 2024, Sec. 4's split of the bigram loss).
    """
    if not isinstance(model, BigramModel) or not isinstance(language, BigramLanguage):
        raise ProvenmlError("loss_split takes a BigramModel and a BigramLanguage")
    if model.logits.shape[0] != language.vocab:
        raise ProvenmlError(
            f"the model's vocabulary ({model.logits.shape[0]}) differs from the language's "
            f"({language.vocab})"
        )
    device = next(model.parameters()).device
    tokens = torch.arange(language.vocab, device=device)
    log_q = F.log_softmax(model(tokens), dim=-1).cpu()
    per_token = -(language.transition * log_q).sum(-1)
    weights = language.start
    w_river = float(weights[language.is_river].sum())
    river = float((weights * per_token)[language.is_river].sum()) / w_river
    hill = float((weights * per_token)[~language.is_river].sum()) / (1 - w_river)
    return {
        "total": float((weights * per_token).sum()),
        "river": river,
        "hill": hill,
        "w_river": w_river,
        "w_hill": 1 - w_river,
    }


# --------------------------------------------------------------------------------------------
# What the river-valley claims measure, as functions of loss splits (unit-tested by hand)
# --------------------------------------------------------------------------------------------


def relative_excess_drop(
    before: Mapping[str, float], after: Mapping[str, float], floor: Mapping[str, float], part: str
) -> float:
    """How much of ``part``'s excess loss (loss minus its entropy floor) went between two
    points: ``1 - (after - floor) / (before - floor)``; 1 means it reached the floor, 0 means no
    progress, negative means it grew."""
    excess_before = before[part] - floor[part]
    if excess_before <= 0:
        raise ProvenmlError(f"the {part} part starts at its floor: no excess to drop")
    return 1.0 - (after[part] - floor[part]) / excess_before


def hill_share(before: Mapping[str, float], after: Mapping[str, float]) -> float:
    """Share of the total-loss drop from ``before`` to ``after`` that is the hill part's:
    ``w_hill (hill_before - hill_after) / (total_before - total_after)``.

    Since ``total = w_river river + w_hill hill``, the river's share is one minus this. It is
    above 1 when the river part rose while the total fell; it is undefined (NaN) when the total
    did not change.
    """
    drop = before["total"] - after["total"]
    if drop == 0:
        return math.nan
    return after["w_hill"] * (before["hill"] - after["hill"]) / drop


def _integer(name: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ProvenmlError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    number = operator.index(value)
    if minimum is not None and number < minimum:
        raise ProvenmlError(f"{name} must be at least {minimum}, got {number}")
    return number


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ProvenmlError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(float(value)):
        raise ProvenmlError(f"{name} must be finite, got {value}")
    return float(value)
