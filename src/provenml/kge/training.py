"""Training loops for KGE models: sLCWA with negative sampling, and KvsAll (1-N) with BCE.

Pieces are swappable as in PyKEEN: a :class:`NegativeSampler` (``uniform`` or ``bern``,
optionally filtered against the known triples), a loss (margin ranking, softplus,
self-adversarial sigmoid, BCE), a regulariser (L2 or N3), an optimiser (Adam, Adagrad, SGD) and
early stopping on validation MRR only.

::

    from provenml.kge import TrainingConfig, get_model, load_dataset, train

    ds = load_dataset("nations")
    model = get_model("distmult", ds.num_entities, ds.num_relations, dim=64)
    history = train(model, ds.train, TrainingConfig(loss="softplus", epochs=50), valid=ds.valid)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from provenml.core.context import progress as with_progress
from provenml.errors import ProvenmlError
from provenml.kge.checks import check_choice, check_float, check_int, check_triples
from provenml.kge.evaluation import evaluate_link_prediction
from provenml.kge.index import KnownTriples
from provenml.kge.models import KGEModel

Loss = Literal["margin", "softplus", "nssa", "bce"]
OPTIMIZERS = ("adam", "adagrad", "sgd")


@dataclass
class TrainingConfig:
    """Hyperparameters of :func:`train` (defaults: sLCWA, margin loss, Adam)."""

    loop: Literal["slcwa", "kvsall"] = "slcwa"
    epochs: int = 100
    batch_size: int = 256
    lr: float = 0.01
    optimizer: Literal["adam", "adagrad", "sgd"] = "adam"
    loss: Loss = "margin"
    margin: float = 1.0  # margin ranking: γ; self-adversarial: the RotatE margin γ
    adversarial_temperature: float = 1.0  # α of the self-adversarial weights
    num_negatives: int = 8
    sampler: Literal["uniform", "bern"] = "uniform"
    filter_negatives: bool = False  # resample negatives that are known training triples
    regularizer: Literal["none", "l2", "n3"] = "none"
    reg_weight: float = 0.0
    label_smoothing: float = 0.0  # KvsAll only
    eval_every: int = 0  # epochs between validation checks; 0 disables early stopping
    patience: int = 3  # validation checks without improvement before stopping
    eval_batch_size: int = 1024
    seed: int = 0  # shuffling and negative sampling

    def __post_init__(self) -> None:
        """Every field in range at construction, each error naming its field."""
        check_choice("loop", self.loop, ("slcwa", "kvsall"))
        check_choice("loss", self.loss, ("margin", "softplus", "nssa", "bce"))
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("sampler", self.sampler, ("uniform", "bern"))
        check_choice("regularizer", self.regularizer, ("none", "l2", "n3"))
        if self.loop == "kvsall" and self.loss != "bce":
            raise ProvenmlError(f"the kvsall loop trains with loss='bce', not {self.loss!r}")
        if self.loop == "slcwa" and self.loss == "bce":
            raise ProvenmlError("loss='bce' needs loop='kvsall' (sLCWA uses margin/softplus/nssa)")
        for name in ("epochs", "batch_size", "num_negatives", "patience", "eval_batch_size"):
            check_int(name, getattr(self, name), 1)
        check_int("eval_every", self.eval_every, 0)
        check_int("seed", self.seed, 0)
        check_float("lr", self.lr, minimum=0.0, exclusive=True)
        check_float("margin", self.margin, minimum=0.0)
        check_float("adversarial_temperature", self.adversarial_temperature, minimum=0.0)
        check_float("reg_weight", self.reg_weight, minimum=0.0)
        check_float(
            "label_smoothing", self.label_smoothing, minimum=0.0, maximum=1.0, below_max=True
        )
        if not isinstance(self.filter_negatives, bool):
            raise ProvenmlError(
                f"filter_negatives must be True or False, got {self.filter_negatives!r}"
            )


@dataclass
class TrainingHistory:
    """What :func:`train` measured: mean loss per epoch and validation MRR per check."""

    losses: list[float] = field(default_factory=list)
    valid_mrr: list[tuple[int, float]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    positives_seen: int = 0


# =============================================================================================
# Negative sampling
# =============================================================================================


class NegativeSampler:
    """Corrupt the head or the tail of each positive with a uniformly drawn entity.

    ``uniform``: head or tail with probability ½. ``bern`` (Wang et al., 2014, Sec. 4.2):
    corrupt the head with probability tph / (tph + hpt), where tph is the mean number of tails
    per head of the relation and hpt the mean number of heads per tail, so 1-N relations get
    their head replaced and fewer false negatives are drawn. With ``filtered``, negatives that are
    known triples are redrawn (up to ``max_redraws`` times) and the survivors are masked out.
    """

    def __init__(
        self,
        train: Tensor,
        num_entities: int,
        num_relations: int,
        kind: Literal["uniform", "bern"] = "uniform",
        num_negatives: int = 8,
        filtered: bool = False,
        max_redraws: int = 10,
    ) -> None:
        if kind not in ("uniform", "bern"):
            raise ProvenmlError(f"negative sampler must be 'uniform' or 'bern', got {kind!r}")
        self.num_entities, self.num_negatives = num_entities, num_negatives
        self.max_redraws = max_redraws
        self.known = KnownTriples(train, num_entities, num_relations) if filtered else None
        if kind == "bern":
            self.head_prob = self.bern_probabilities(train, num_relations)
        else:
            self.head_prob = torch.full((num_relations,), 0.5)

    @staticmethod
    def bern_probabilities(train: Tensor, num_relations: int) -> Tensor:
        """P(corrupt head | r) = tph_r / (tph_r + hpt_r) (Wang et al., 2014)."""
        counts = torch.bincount(train[:, 1], minlength=num_relations).double()
        heads = torch.unique(train[:, :2], dim=0)[:, 1]
        tails = torch.unique(train[:, 1:], dim=0)[:, 0]
        n_heads = torch.bincount(heads, minlength=num_relations).double().clamp(min=1)
        n_tails = torch.bincount(tails, minlength=num_relations).double().clamp(min=1)
        tph, hpt = counts / n_heads, counts / n_tails
        prob = tph / (tph + hpt)
        return torch.where(counts > 0, prob, torch.full_like(prob, 0.5)).float()

    def sample(self, positives: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(B, K, 3)`` negatives and a ``(B, K)`` mask of the usable ones."""
        b, k = len(positives), self.num_negatives
        negatives = positives.unsqueeze(1).repeat(1, k, 1)
        head_prob = self.head_prob.to(positives.device)[positives[:, 1]].unsqueeze(1)
        corrupt_head = torch.rand(b, k, generator=generator, device=positives.device) < head_prob
        column = torch.where(corrupt_head, 0, 2)
        self._draw(
            negatives,
            column,
            torch.ones(b, k, dtype=torch.bool, device=positives.device),
            generator,
        )
        valid = torch.ones(b, k, dtype=torch.bool, device=positives.device)
        if self.known is not None:
            for _ in range(self.max_redraws):
                valid = ~self.known.contains(*negatives.unbind(-1))
                if valid.all():
                    break
                self._draw(negatives, column, ~valid, generator)
            valid = ~self.known.contains(*negatives.unbind(-1))
        return negatives, valid

    def _draw(self, negatives: Tensor, column: Tensor, where: Tensor, gen: torch.Generator) -> None:
        entities = torch.randint(
            self.num_entities, column.shape, generator=gen, device=negatives.device
        )
        current = negatives.gather(2, column.unsqueeze(-1)).squeeze(-1)
        negatives.scatter_(
            2, column.unsqueeze(-1), torch.where(where, entities, current)[..., None]
        )


# =============================================================================================
# Losses and regularisers
# =============================================================================================


def margin_ranking_loss(pos: Tensor, neg: Tensor, mask: Tensor, margin: float) -> Tensor:
    """TransE eq. (1): L = Σ [γ + f(neg) - f(pos)]₊ (scores, not distances), mean over pairs."""
    pairwise = F.relu(margin - pos.unsqueeze(1) + neg)
    return (pairwise * mask).sum() / mask.sum().clamp(min=1)


def softplus_loss(pos: Tensor, neg: Tensor, mask: Tensor) -> Tensor:
    """ComplEx eq. (12): L = Σ log(1 + exp(-y f)) over positives (y=1) and negatives (y=-1)."""
    total = F.softplus(-pos).sum() + (F.softplus(neg) * mask).sum()
    return total / (len(pos) + mask.sum()).clamp(min=1)


def self_adversarial_loss(
    pos: Tensor, neg: Tensor, mask: Tensor, margin: float, temperature: float
) -> Tensor:
    """RotatE eq. (4)-(5): L = -log σ(γ + f(pos)) - Σ_i p_i log σ(-γ - f(neg_i)).

    With ``f = -d`` this is the paper's ``γ - d``; the weights
    ``p_i = softmax(α f(neg_i))`` are treated as constants (no gradient), as in the paper.
    """
    weights = torch.softmax((temperature * neg).masked_fill(~mask, -torch.inf), dim=1).detach()
    weights = torch.nan_to_num(weights)  # rows with every negative masked
    neg_term = -(weights * F.logsigmoid(-margin - neg)).sum(1)
    return (-F.logsigmoid(margin + pos) + neg_term).mean()


def regularization(factors: list[Tensor], kind: str, weight: float) -> Tensor:
    """L2: λ Σ_f ||f||²₂ / B; N3 (Lacroix et al., 2018, eq. 6): λ Σ_f Σ_i |f_i|³ / B."""
    batch = factors[0].shape[0]
    if kind == "l2":
        total = sum(f.pow(2).sum() for f in factors)
    elif kind == "n3":
        total = sum(f.abs().pow(3).sum() for f in factors)
    else:
        raise ProvenmlError(f"regularizer must be none, l2 or n3, got {kind!r}")
    return weight * total / batch  # type: ignore[operator]


def make_optimizer(model: torch.nn.Module, name: str, lr: float) -> torch.optim.Optimizer:
    """Adam, Adagrad or SGD over all model parameters."""
    optimizers = {"adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad, "sgd": torch.optim.SGD}
    check_choice("optimizer", name, optimizers)
    return optimizers[name](model.parameters(), lr=lr)


# =============================================================================================
# The loops
# =============================================================================================


def train(
    model: KGEModel,
    train_triples: Tensor,
    config: TrainingConfig | None = None,
    valid: Tensor | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    progress: bool = False,
) -> TrainingHistory:
    """Train ``model`` in place on ``train_triples`` ``(n, 3)``; return the history.

    Early stopping (``config.eval_every > 0``) uses only ``valid``, filtered by train + valid
    (never test), keeps the best weights and restores them at the end. ``progress=True``
    shows a progress bar over the epochs.
    """
    cfg = config or TrainingConfig()
    if not isinstance(cfg, TrainingConfig):
        raise ProvenmlError(f"config must be a TrainingConfig, got {type(cfg).__name__}")
    if cfg.eval_every and valid is None:
        raise ProvenmlError("early stopping (eval_every > 0) needs valid triples")
    train_triples = check_triples(
        train_triples, "train_triples", model.num_entities, model.num_relations
    )
    if valid is not None:
        valid = check_triples(valid, "valid", model.num_entities, model.num_relations)
    device = model.device
    triples = train_triples.long().to(device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    optimizer = make_optimizer(model, cfg.optimizer, cfg.lr)
    step = _slcwa_step if cfg.loop == "slcwa" else _kvsall_step
    state = _LoopState.build(cfg, triples, model)
    history = TrainingHistory()
    best_mrr, best_state, bad_checks = -math.inf, None, 0
    model.train()
    epochs = range(1, cfg.epochs + 1)
    for epoch in with_progress(epochs, f"training {type(model).__name__}", progress):
        units = state.units
        order = torch.randperm(len(units), generator=gen, device=device)
        total, batches = 0.0, 0
        for start in range(0, len(order), cfg.batch_size):
            batch = units[order[start : start + cfg.batch_size]]
            optimizer.zero_grad(set_to_none=True)
            loss = step(model, batch, cfg, state, gen)
            loss.backward()
            optimizer.step()
            model.apply_constraints()
            total += float(loss.detach())
            batches += 1
        history.losses.append(total / max(1, batches))
        history.positives_seen += len(triples)
        if on_epoch is not None:
            on_epoch(epoch, history.losses[-1])
        if cfg.eval_every and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
            assert valid is not None
            mrr = evaluate_link_prediction(
                model, valid, [train_triples, valid], batch_size=cfg.eval_batch_size
            ).mrr
            model.train()
            history.valid_mrr.append((epoch, mrr))
            if mrr > best_mrr:
                best_mrr, bad_checks, history.best_epoch = mrr, 0, epoch
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad_checks += 1
                if bad_checks >= cfg.patience:
                    history.stopped_early = True
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


@dataclass
class _LoopState:
    """Precomputed per-loop data: the units shuffled each epoch and their helpers."""

    units: Tensor
    sampler: NegativeSampler | None = None
    known: KnownTriples | None = None
    triples: Tensor | None = None

    @staticmethod
    def build(cfg: TrainingConfig, triples: Tensor, model: KGEModel) -> _LoopState:
        if cfg.loop == "slcwa":
            sampler = NegativeSampler(
                triples,
                model.num_entities,
                model.num_relations,
                cfg.sampler,
                cfg.num_negatives,
                cfg.filter_negatives,
            )
            return _LoopState(units=triples, sampler=sampler)
        # KvsAll: one unit per distinct (h, r) tail query and per distinct (r, t) head query
        tail_q = torch.unique(triples[:, :2], dim=0)
        head_q = torch.unique(triples[:, 1:], dim=0)
        units = torch.cat(
            [
                torch.cat(
                    [tail_q, torch.zeros(len(tail_q), 1, dtype=torch.long, device=triples.device)],
                    1,
                ),
                torch.cat(
                    [
                        head_q.flip(1),
                        torch.ones(len(head_q), 1, dtype=torch.long, device=triples.device),
                    ],
                    1,
                ),
            ]
        )  # rows: (entity, relation, direction) with direction 0 = tail query, 1 = head query
        known = KnownTriples(triples, model.num_entities, model.num_relations)
        return _LoopState(units=units, known=known, triples=triples)


def _slcwa_step(
    model: KGEModel, batch: Tensor, cfg: TrainingConfig, state: _LoopState, gen: torch.Generator
) -> Tensor:
    assert state.sampler is not None
    negatives, mask = state.sampler.sample(batch, gen)
    b, k = mask.shape
    everything = torch.cat([batch, negatives.reshape(-1, 3)])
    scores = model.score_hrt(*everything.unbind(1))
    pos, neg = scores[:b], scores[b:].reshape(b, k)
    maskf = mask.to(scores.dtype)
    if cfg.loss == "margin":
        loss = margin_ranking_loss(pos, neg, maskf, cfg.margin)
    elif cfg.loss == "softplus":
        loss = softplus_loss(pos, neg, maskf)
    elif cfg.loss == "nssa":
        loss = self_adversarial_loss(pos, neg, mask, cfg.margin, cfg.adversarial_temperature)
    else:
        raise ProvenmlError(f"unknown sLCWA loss {cfg.loss!r}")
    if cfg.regularizer != "none" and cfg.reg_weight > 0:
        loss = loss + regularization(
            model.regularization_factors(*batch.unbind(1)), cfg.regularizer, cfg.reg_weight
        )
    return loss


def _kvsall_step(
    model: KGEModel, batch: Tensor, cfg: TrainingConfig, state: _LoopState, gen: torch.Generator
) -> Tensor:
    """BCE over all entities for each query (Dettmers et al., 2018, 1-N scoring)."""
    assert state.known is not None and state.triples is not None
    entity, relation, direction = batch.unbind(1)
    tail_rows, head_rows = direction == 0, direction == 1
    logits, targets = [], []
    if tail_rows.any():
        h, r = entity[tail_rows], relation[tail_rows]
        logits.append(model.score_t(h, r))
        targets.append(state.known.tail_mask(h, r))
    if head_rows.any():
        t, r = entity[head_rows], relation[head_rows]
        logits.append(model.score_h(r, t))
        targets.append(state.known.head_mask(r, t))
    logit, target = torch.cat(logits), torch.cat(targets).to(logits[0].dtype)
    if cfg.label_smoothing:
        target = target * (1 - cfg.label_smoothing) + cfg.label_smoothing / model.num_entities
    loss = F.binary_cross_entropy_with_logits(logit, target)
    if cfg.regularizer != "none" and cfg.reg_weight > 0:
        # the N3 / L2 penalty is a sum over training triples: draw as many as the batch has rows
        pick = torch.randint(len(state.triples), (len(batch),), generator=gen, device=batch.device)
        factors = model.regularization_factors(*state.triples[pick].unbind(1))
        loss = loss + regularization(factors, cfg.regularizer, cfg.reg_weight)
    return loss
