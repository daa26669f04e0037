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

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


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
    spread uniformly); hill tokens go uniformly to ``hill_support`` random successors."""
    g = torch.Generator().manual_seed(seed)
    n_river = round(vocab * river_fraction)
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
        self.logits = nn.Parameter(torch.zeros(vocab, vocab))

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return self.logits[current]


@torch.no_grad()
def loss_split(model: BigramModel, language: BigramLanguage) -> dict[str, float]:
    """Exact expected loss: total and its river / hill parts (each a per-kind average), and
    the weights that recombine them: ``total = w_river * river + w_hill * hill``."""
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
