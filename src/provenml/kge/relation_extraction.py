"""Relation extraction with and without KG embeddings, on a generated distant-supervision corpus.

The review's third task joins a sentence encoder with KG embeddings (Weston et al., 2013; Han et
al., 2018). Offline version:

- :func:`make_corpus`: for every entity pair of a KG split, a bag of sentences built from
  templates per relation: each relation has a few cue phrases (paraphrase noise swaps cue words
  for synonyms), filler and distractor words (cues of other relations) are mixed in, and a share
  of sentences express nothing although they carry the pair's KG relation as their label, the
  wrong labels that distant supervision produces. Pairs without any relation form NA bags.
- :class:`PCNN` (Zeng et al., 2015): word + two position embeddings, a convolution, piecewise
  max pooling over the three segments cut by the two entity mentions, a linear classifier.
- :func:`combine_with_kg`: per (pair, relation), a logistic regression on validation bags over
  the text logit and the KG model's score f(h, r, t) (Weston et al., 2013's sum of the two).
- :func:`held_out_metrics`: precision at N and the area under the precision-recall curve of the
  ranked (pair, relation) predictions against the KG (the NYT "held-out" evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from provenml.kge.index import KnownTriples

PAD, E1, E2 = 0, 1, 2
_SPECIAL = 3


@dataclass
class CorpusSpec:
    """Vocabulary of the generator: cue words per relation, synonyms, fillers."""

    num_relations: int
    cues_per_relation: int = 3  # cue slots of a relation's phrase
    synonyms: int = 3  # surface words per cue slot
    fillers: int = 200

    @property
    def first_filler(self) -> int:
        return _SPECIAL + self.num_relations * self.cues_per_relation * self.synonyms

    @property
    def vocab_size(self) -> int:
        return self.first_filler + self.fillers

    def cue_word(self, relation: Tensor, slot: Tensor, synonym: Tensor) -> Tensor:
        return _SPECIAL + (relation * self.cues_per_relation + slot) * self.synonyms + synonym


@dataclass
class Corpus:
    """Padded sentences with entity positions, grouped into bags (one per entity pair)."""

    tokens: Tensor  # (S, L)
    e1: Tensor  # (S,) position of the head mention
    e2: Tensor  # (S,) position of the tail mention
    label: Tensor  # (S,) distant label: 0 = NA, r + 1 otherwise (one of the pair's relations)
    bag: Tensor  # (S,) bag index
    pairs: Tensor  # (P, 2) the (h, t) pair of each bag


def make_corpus(
    triples: Tensor,
    na_pairs: Tensor,
    spec: CorpusSpec,
    generator: torch.Generator,
    sentences_per_bag: int = 2,
    length: int = 14,
    wrong_label: float = 0.35,
    paraphrase: float = 0.3,
    distractor: float = 0.15,
) -> Corpus:
    """Bags of ``sentences_per_bag`` sentences for every pair of ``triples`` and ``na_pairs``.

    A sentence of a pair with relations {r...} draws one r as its label; with probability
    ``wrong_label`` it expresses no relation (a distant-supervision error). Fully vectorised.
    """
    g = generator
    pairs_kg, first = torch.unique(triples[:, [0, 2]], dim=0, return_inverse=True)
    # one relation label per sentence: a random triple of the pair
    pairs = torch.cat([pairs_kg, na_pairs])
    n_kg, n = len(pairs_kg), len(pairs)
    bag = torch.arange(n).repeat_interleave(sentences_per_bag)
    s = len(bag)
    order = torch.argsort(first)
    counts = torch.bincount(first, minlength=n_kg)
    starts = torch.cumsum(counts, 0) - counts
    label = torch.zeros(s, dtype=torch.long)
    kg_rows = bag < n_kg
    kg_bag = bag[kg_rows]
    pick = starts[kg_bag] + (torch.rand(len(kg_bag), generator=g) * counts[kg_bag]).long()
    label[kg_rows] = triples[order[pick], 1] + 1
    expressed = label.clone()
    expressed[torch.rand(s, generator=g) < wrong_label] = 0
    # layout: fillers everywhere, then E1, cue phrase, E2 at random non-overlapping offsets
    tokens = spec.first_filler + torch.randint(spec.fillers, (s, length), generator=g)
    cues = spec.cues_per_relation
    e1 = torch.randint(0, length - cues - 2, (s,), generator=g)
    gap = torch.randint(0, 2, (s,), generator=g)
    e2 = (e1 + 1 + cues + gap).clamp(max=length - 1)
    rows = torch.arange(s)
    slots = torch.arange(cues)
    positions = e1[:, None] + 1 + slots[None, :]
    synonym = torch.where(
        torch.rand(s, cues, generator=g) < paraphrase,
        torch.randint(1, spec.synonyms, (s, cues), generator=g),
        0,
    )
    rel = (expressed - 1).clamp(min=0)
    cue_words = spec.cue_word(rel[:, None], slots[None, :], synonym)
    has_cue = expressed > 0
    tokens[rows[has_cue, None], positions[has_cue]] = cue_words[has_cue]
    # distractors: a cue word of a random relation at a random place
    noisy = torch.rand(s, generator=g) < distractor
    place = torch.randint(0, length, (s,), generator=g)
    other = spec.cue_word(
        torch.randint(spec.num_relations, (s,), generator=g),
        torch.randint(cues, (s,), generator=g),
        torch.zeros(s, dtype=torch.long),
    )
    tokens[rows[noisy], place[noisy]] = other[noisy]
    tokens[rows, e1] = E1
    tokens[rows, e2] = E2
    return Corpus(tokens=tokens, e1=e1, e2=e2, label=label, bag=bag, pairs=pairs)


class PCNN(nn.Module):
    """Piecewise CNN (Zeng et al., 2015, Sec. 3.2-3.3): conv, max pool per segment, linear."""

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        length: int,
        word_dim: int = 32,
        pos_dim: int = 5,
        filters: int = 64,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.length = length
        self.word = nn.Embedding(vocab_size, word_dim, padding_idx=PAD)
        self.pos1 = nn.Embedding(2 * length + 1, pos_dim)
        self.pos2 = nn.Embedding(2 * length + 1, pos_dim)
        self.conv = nn.Conv1d(word_dim + 2 * pos_dim, filters, kernel_size=3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(3 * filters, num_classes)

    def forward(self, tokens: Tensor, e1: Tensor, e2: Tensor) -> Tensor:
        """Eq. (3)-(4): p_ij = max over segment j of filter i; logits = W tanh(p) + b."""
        idx = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
        rel1 = (idx - e1[:, None]).clamp(-self.length, self.length) + self.length
        rel2 = (idx - e2[:, None]).clamp(-self.length, self.length) + self.length
        x = torch.cat([self.word(tokens), self.pos1(rel1), self.pos2(rel2)], dim=-1)
        h = self.conv(x.transpose(1, 2))  # (S, filters, L)
        lo, hi = torch.minimum(e1, e2)[:, None], torch.maximum(e1, e2)[:, None]
        segment = (idx > lo).long() + (idx > hi).long()  # 0: up to e1, 1: to e2, 2: after
        pooled = [h.masked_fill((segment != j)[:, None, :], -1e4).amax(dim=2) for j in range(3)]
        return self.out(self.drop(torch.tanh(torch.cat(pooled, dim=1))))


def train_encoder(
    encoder: PCNN,
    corpus: Corpus,
    epochs: int,
    generator: torch.Generator,
    batch_size: int = 256,
    lr: float = 1e-3,
) -> list[float]:
    """Sentence-level cross-entropy on the (noisy) distant labels, Adam."""
    opt = torch.optim.Adam(encoder.parameters(), lr=lr)
    losses = []
    encoder.train()
    for _ in range(epochs):
        order = torch.randperm(len(corpus.label), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            i = order[start : start + batch_size]
            loss = F.cross_entropy(
                encoder(corpus.tokens[i], corpus.e1[i], corpus.e2[i]), corpus.label[i]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(i)
        losses.append(total / len(order))
    encoder.eval()
    return losses


@torch.no_grad()
def bag_logits(encoder: PCNN, corpus: Corpus) -> Tensor:
    """``(P, R)`` relation scores per bag: mean sentence log-probabilities (NA column dropped)."""
    encoder.eval()
    logp = F.log_softmax(encoder(corpus.tokens, corpus.e1, corpus.e2), dim=-1)
    sums = torch.zeros(len(corpus.pairs), logp.shape[1]).index_add_(0, corpus.bag, logp)
    counts = torch.bincount(corpus.bag, minlength=len(corpus.pairs)).clamp(min=1)
    return (sums / counts[:, None])[:, 1:]


@torch.no_grad()
def kg_scores(model: torch.nn.Module, pairs: Tensor, num_relations: int) -> Tensor:
    """``(P, R)`` KG-embedding scores f(h, r, t) of every relation for every pair."""
    h = pairs[:, 0].repeat_interleave(num_relations)
    t = pairs[:, 1].repeat_interleave(num_relations)
    r = torch.arange(num_relations).repeat(len(pairs))
    return model.score_hrt(h, r, t).reshape(len(pairs), num_relations).float()


def pair_labels(pairs: Tensor, known: KnownTriples) -> Tensor:
    """``(P, R)`` truth: is (h, r, t) in the KG (all splits)?"""
    r_count = known.num_relations
    h = pairs[:, 0].repeat_interleave(r_count)
    t = pairs[:, 1].repeat_interleave(r_count)
    r = torch.arange(r_count).repeat(len(pairs))
    return known.contains(h, r, t).reshape(len(pairs), r_count)


def combine_with_kg(
    text_valid: Tensor, kg_valid: Tensor, labels_valid: Tensor, steps: int = 200
) -> nn.Linear:
    """Fit sigmoid(a·text + b·kg + c) on validation (pair, relation) labels; returns the layer."""
    x = torch.stack([text_valid.flatten(), kg_valid.flatten()], dim=1)
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    layer = nn.Linear(2, 1)
    opt = torch.optim.LBFGS(layer.parameters(), max_iter=steps)
    y = labels_valid.flatten().float()

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(layer((x - mean) / std).squeeze(1), y)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():  # fold the standardisation into the layer
        layer.weight /= std
        layer.bias -= (layer.weight * mean).sum()
    return layer


def combined_scores(layer: nn.Linear, text: Tensor, kg: Tensor) -> Tensor:
    with torch.no_grad():
        return layer(torch.stack([text.flatten(), kg.flatten()], 1)).reshape(text.shape)


def held_out_metrics(
    scores: Tensor, labels: Tensor, ns: tuple[int, ...] = (100, 200, 300)
) -> dict[str, float]:
    """P@N and the area under the precision-recall curve (scikit-learn) over (pair, relation)."""
    from sklearn.metrics import auc, precision_recall_curve

    s, y = scores.flatten().double(), labels.flatten()
    order = torch.argsort(s, descending=True)
    out = {f"p@{n}": float(y[order[:n]].float().mean()) for n in ns}
    precision, recall, _ = precision_recall_curve(y.numpy(), s.numpy())
    out["pr_auc"] = float(auc(recall, precision))
    return out
