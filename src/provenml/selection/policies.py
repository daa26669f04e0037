"""Scoring policies for online batch selection, all behind one interface.

A policy scores every example of a super-batch with one batched forward per scorer model (eval
mode, no gradient, per-example losses) and then picks ``k`` of them, either by sampling without
replacement from ``softmax(score / temperature)`` or by top-k. After the selection it may update
its own models (the learnability *actor* trains on the selected batch).

Policies (Evans et al. 2023, arXiv 2312.05328; Mindermann et al. 2022, arXiv 2206.07137):

==================  ======================================  =====================
policy              score                                   scorer forwards
==================  ======================================  =====================
``Uniform``         none (uniform random subset)            none
``Learnability``    actor loss - reference loss             actor + reference
``RhoLoss``         learner loss - reference loss           learner + reference
``HardLearner``     learner loss                            learner
``EasyReference``   - reference loss                        reference
==================  ======================================  =====================

A reference is a frozen ``nn.Module``, a table of its losses precomputed per dataset index
(see :func:`provenml.selection.precompute_losses`), or an :class:`OnlineReference` that keeps
training on held-out data.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from provenml.core import ComputeLedger
from provenml.errors import ProvenmlError
from provenml.selection.batches import Batch, batch_length

LossFn = Callable[[nn.Module, Batch], Tensor]
"""``loss_fn(model, batch) -> Tensor[N]``: one loss per example (``reduction="none"``)."""


def check_per_example(losses: Any, n: int) -> Tensor:
    """Raise a clear error unless ``losses`` is a tensor of shape ``[n]``."""
    if not isinstance(losses, Tensor):
        raise ProvenmlError(f"loss_fn must return a tensor, got {type(losses).__name__}")
    if losses.dim() == 0:
        raise ProvenmlError(
            "loss_fn returned a scalar; it must return one loss per example "
            "(e.g. F.cross_entropy(..., reduction='none'))"
        )
    if losses.shape != (n,):
        raise ProvenmlError(
            f"loss_fn must return per-example losses of shape [{n}], got {tuple(losses.shape)}"
        )
    return losses


def positive_int(value: object, name: str, *, minimum: int = 1) -> int:
    """``value`` as an ``int`` >= ``minimum`` (ints and numpy integers; not floats or bools),
    or one :class:`ProvenmlError` naming ``name``."""
    kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if isinstance(value, bool):
        raise ProvenmlError(f"{name} must be {kind}, got {value!r}")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ProvenmlError(f"{name} must be {kind}, got {value!r}") from None
    if number < minimum:
        raise ProvenmlError(f"{name} must be {kind}, got {number}")
    return number


def positive_float(value: object, name: str) -> float:
    """``value`` as a finite ``float`` > 0, or one :class:`ProvenmlError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProvenmlError(f"{name} must be a positive number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ProvenmlError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def check_module(model: object, name: str) -> nn.Module:
    """``model`` if it is an ``nn.Module``, else one :class:`ProvenmlError` naming ``name``."""
    if not isinstance(model, nn.Module):
        raise ProvenmlError(f"{name} must be a torch nn.Module, got {type(model).__name__}")
    return model


def adam(model: nn.Module, lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with the fused kernel (one kernel per step instead of a loop over parameters)."""
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)


def _charge(
    ledger: ComputeLedger | None, category: str, fn: Callable[[], Tensor], key: Hashable
) -> Tensor:
    return fn() if ledger is None else ledger.charge(category, fn, key=key)


def per_example_losses(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    *,
    ledger: ComputeLedger | None = None,
    category: str = "scoring",
) -> Tensor:
    """One batched forward of ``model`` in eval mode without gradients: ``Tensor[N]`` of losses.

    The model's train/eval mode is restored afterwards. FLOPs go to ``category`` in ``ledger``.
    """
    n = batch_length(batch)
    was_training = model.training
    if was_training:  # toggling walks the module tree: only when needed
        model.eval()
    try:
        with torch.no_grad():
            losses = _charge(ledger, category, lambda: loss_fn(model, batch), key=("fwd", n))
    finally:
        if was_training:
            model.train()
    return check_per_example(losses, n).detach().float()


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    batch: Batch,
    *,
    ledger: ComputeLedger | None = None,
    category: str = "training",
) -> float:
    """One optimizer step on the mean per-example loss; FLOPs (forward + backward) to ledger."""
    n = batch_length(batch)
    if not model.training:
        model.train()

    def step() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = check_per_example(loss_fn(model, batch), n).mean()
        loss.backward()
        return loss.detach()

    loss = _charge(ledger, category, step, key=("fwd+bwd", n))
    optimizer.step()
    return float(loss)


class OnlineReference:
    """A reference model that keeps training on held-out data, one step per selection.

    ``holdout`` is any re-iterable source of batches (a DataLoader, a list of batches); it is
    iterated again from the start when exhausted. Scores use the model as it is at that step.
    """

    def __init__(
        self,
        model: nn.Module,
        holdout: Iterable[Batch],
        loss_fn: LossFn,
        optimizer: torch.optim.Optimizer | None = None,
        lr: float = 1e-3,
    ) -> None:
        self.model = check_module(model, "model")
        if not isinstance(holdout, Iterable):
            raise ProvenmlError(
                f"holdout must be a re-iterable source of batches, got {type(holdout).__name__}"
            )
        if not callable(loss_fn):
            raise ProvenmlError("loss_fn must be callable as loss_fn(model, batch) -> Tensor[N]")
        self.holdout = holdout
        self.loss_fn = loss_fn
        self.optimizer = optimizer or adam(model, positive_float(lr, "lr"))
        self._iterator: Iterator[Batch] | None = None

    def _next_batch(self) -> Batch:
        if self._iterator is None:
            self._iterator = iter(self.holdout)
        try:
            return next(self._iterator)
        except StopIteration:
            self._iterator = iter(self.holdout)
            try:
                return next(self._iterator)
            except StopIteration:
                raise ProvenmlError("the online reference's holdout source is empty") from None

    def step(self, ledger: ComputeLedger | None = None) -> float:
        """Train the reference for one step on the next held-out batch."""
        return train_step(
            self.model,
            self.optimizer,
            self.loss_fn,
            self._next_batch(),
            ledger=ledger,
            category="training:reference",
        )


Reference = nn.Module | Tensor | OnlineReference


def check_reference(reference: object) -> Reference:
    """``reference`` if it is a model, a 1-d loss table or an :class:`OnlineReference`."""
    if isinstance(reference, Tensor):
        if reference.dim() != 1 or reference.numel() == 0:
            raise ProvenmlError(
                "a reference-loss table must be a non-empty 1-d tensor (one loss per dataset "
                f"index), got shape {tuple(reference.shape)}"
            )
        return reference
    if isinstance(reference, nn.Module | OnlineReference):
        return reference
    raise ProvenmlError(
        "reference must be an nn.Module, a loss table from precompute_losses or an "
        f"OnlineReference, got {type(reference).__name__}"
    )


def reference_losses(
    reference: Reference,
    loss_fn: LossFn,
    batch: Batch,
    indices: Tensor | None,
    ledger: ComputeLedger | None,
) -> Tensor:
    """Per-example reference losses: a lookup in a precomputed table, or one forward."""
    if isinstance(reference, Tensor):
        if indices is None:
            raise ProvenmlError(
                "a precomputed reference-loss table needs dataset indices: pass a Dataset "
                "to the selector (or indices= to select()), not a plain iterable of batches"
            )
        if int(indices.max()) >= reference.shape[0] or int(indices.min()) < 0:
            raise ProvenmlError(
                f"dataset index {int(indices.max())} is outside the reference-loss table of "
                f"length {reference.shape[0]}; was the table computed on another dataset?"
            )
        return reference[indices.to(reference.device)].float()
    model = reference.model if isinstance(reference, OnlineReference) else reference
    return per_example_losses(model, loss_fn, batch, ledger=ledger, category="scoring:reference")


class ScoringPolicy:
    """Base class: ``score`` a super-batch, ``choose`` k positions, then ``observe`` them.

    ``temperature`` and ``topk`` set how the scores turn into a selection; ``uses_learner`` says
    whether scoring needs a forward of the (large) learner.
    """

    name: ClassVar[str] = "policy"
    uses_learner: ClassVar[bool] = False

    def __init__(self, *, temperature: float = 1.0, topk: bool = False) -> None:
        self.temperature = positive_float(temperature, "temperature")
        self.topk = bool(topk)

    def score(
        self,
        batch: Batch,
        *,
        indices: Tensor | None,
        learner: nn.Module,
        loss_fn: LossFn,
        ledger: ComputeLedger | None,
    ) -> Tensor | None:
        """Scores ``Tensor[N]`` (higher is picked first), or None for a uniform choice."""
        raise NotImplementedError

    def choose(self, scores: Tensor | None, n: int, k: int, generator: torch.Generator) -> Tensor:
        """Positions of the k chosen examples out of n.

        Without scores: a uniform random subset. With ``topk``: the k highest scores.
        Otherwise k draws without replacement, each with probability
        ``softmax(score / temperature)`` renormalised over the positions not yet drawn
        (Evans et al. 2023, Sec. 3: prioritised sampling from the learnability scores). The
        draws are made at once with the Gumbel-top-k trick (Kool et al. 2019, Eq. 5): the k
        largest ``score / temperature + Gumbel noise`` have exactly that law.
        """
        if scores is None:
            return torch.randperm(n, generator=generator)[:k]
        if self.topk:
            return torch.topk(scores, k).indices
        exponential = torch.empty(n, dtype=torch.float64).exponential_(generator=generator)
        keys = scores.detach().double().cpu() / self.temperature - exponential.log()
        return torch.topk(keys, k).indices.to(scores.device)

    def observe(
        self,
        batch: Batch,
        *,
        indices: Tensor | None,
        loss_fn: LossFn,
        ledger: ComputeLedger | None,
        positions: Tensor | None = None,
    ) -> None:
        """Update the policy's own models on the selected batch (no-op by default).

        ``positions`` are the chosen examples' positions in the super-batch scored last.
        """


class Uniform(ScoringPolicy):
    """Uniform sampling: a random subset of the super-batch, no scoring at all."""

    name = "uniform"

    def score(self, batch: Batch, **_: Any) -> Tensor | None:
        return None


MODE_DEPENDENT = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._NormBase)
"""Modules that compute differently in train and eval mode."""


def mode_independent(model: nn.Module) -> bool:
    """True when ``model`` has no dropout or batch/instance norm: train and eval agree."""
    return not any(isinstance(m, MODE_DEPENDENT) for m in model.modules())


class Learnability(ScoringPolicy):
    """Learnability with a small online actor and a small reference (Evans et al. 2023).

    ``score(x) = loss(x; actor) - loss(x; reference)`` (Evans et al., Eq. 1 with the learner
    replaced by the cheap online *actor*, Sec. 3.2 "amortising scoring with small models").
    The actor trains on each selected batch; the reference is frozen (or an
    :class:`OnlineReference`). Default selection: sampling from ``softmax(score / T)``.

    ``share_forward`` reuses the actor's scoring forward for its training step: the forward
    over the super-batch keeps its graph, and the step back-propagates the mean loss of the
    selected positions. Gradient and update are the same as a separate forward on the
    selected batch (the actor has not changed in between), one forward cheaper. It needs an
    actor that computes the same in train and eval mode (no dropout or batch norm), so the
    default ``None`` turns it on exactly for such actors.
    """

    name = "learnability"

    def __init__(
        self,
        actor: nn.Module,
        reference: Reference,
        *,
        actor_optimizer: torch.optim.Optimizer | None = None,
        lr: float = 1e-3,
        temperature: float = 1.0,
        topk: bool = False,
        share_forward: bool | None = None,
    ) -> None:
        super().__init__(temperature=temperature, topk=topk)
        self.actor = check_module(actor, "actor")
        self.reference = check_reference(reference)
        self.actor_optimizer = actor_optimizer or adam(actor, positive_float(lr, "lr"))
        independent = mode_independent(actor)
        if share_forward and not independent:
            raise ProvenmlError(
                "share_forward=True needs an actor without dropout or batch norm (its scoring "
                "forward runs in eval mode, its training step in train mode)"
            )
        self.share_forward = independent if share_forward is None else bool(share_forward)
        self._actor_losses: Tensor | None = None  # the last scoring forward, with its graph

    def score(
        self,
        batch: Batch,
        *,
        indices: Tensor | None,
        learner: nn.Module,
        loss_fn: LossFn,
        ledger: ComputeLedger | None,
    ) -> Tensor:
        """Evans et al. Eq. 1: ``s_learn = l(x | actor) - l(x | reference)``."""
        if self.share_forward:
            n = batch_length(batch)
            if not self.actor.training:
                self.actor.train()
            losses = _charge(
                ledger, "scoring:actor", lambda: loss_fn(self.actor, batch), key=("fwd", n)
            )
            self._actor_losses = check_per_example(losses, n)
            actor_loss = self._actor_losses.detach().float()
        else:
            actor_loss = per_example_losses(
                self.actor, loss_fn, batch, ledger=ledger, category="scoring:actor"
            )
        return actor_loss - reference_losses(self.reference, loss_fn, batch, indices, ledger)

    def observe(
        self,
        batch: Batch,
        *,
        indices: Tensor | None,
        loss_fn: LossFn,
        ledger: ComputeLedger | None,
        positions: Tensor | None = None,
    ) -> None:
        shared, self._actor_losses = self._actor_losses, None
        if shared is not None and positions is not None:
            self._train_actor_from_scores(shared, positions, ledger)
        else:
            train_step(
                self.actor,
                self.actor_optimizer,
                loss_fn,
                batch,
                ledger=ledger,
                category="training:actor",
            )
        if isinstance(self.reference, OnlineReference):
            self.reference.step(ledger)

    def _train_actor_from_scores(
        self, losses: Tensor, positions: Tensor, ledger: ComputeLedger | None
    ) -> None:
        """One actor step on the selected examples' losses from the scoring forward."""
        self.actor_optimizer.zero_grad(set_to_none=True)

        def backward() -> Tensor:
            loss = losses[positions.to(losses.device)].mean()
            loss.backward()
            return loss.detach()

        _charge(ledger, "training:actor", backward, key=("bwd", losses.shape[0], len(positions)))
        self.actor_optimizer.step()


class RhoLoss(ScoringPolicy):
    """RHO-LOSS (Mindermann et al. 2022): the learner scores, so it costs a learner forward.

    ``score(x) = L[y | x; learner] - L[y | x; reference]`` (Mindermann et al., Eq. 3, the
    reducible holdout loss with the irreducible loss from a model trained on holdout data).
    Default selection: top-k, as in the paper.
    """

    name = "rho_loss"
    uses_learner = True

    def __init__(
        self, reference: Reference, *, temperature: float = 1.0, topk: bool = True
    ) -> None:
        super().__init__(temperature=temperature, topk=topk)
        self.reference = check_reference(reference)

    def score(
        self,
        batch: Batch,
        *,
        indices: Tensor | None,
        learner: nn.Module,
        loss_fn: LossFn,
        ledger: ComputeLedger | None,
    ) -> Tensor:
        """Mindermann et al. Eq. 3: ``L[y|x; D_t] - L[y|x; D_ho]``."""
        learner_loss = per_example_losses(
            learner, loss_fn, batch, ledger=ledger, category="scoring:learner"
        )
        return learner_loss - reference_losses(self.reference, loss_fn, batch, indices, ledger)

    def observe(
        self,
        batch: Batch,
        *,
        indices: Tensor | None,
        loss_fn: LossFn,
        ledger: ComputeLedger | None,
        positions: Tensor | None = None,
    ) -> None:
        if isinstance(self.reference, OnlineReference):
            self.reference.step(ledger)


class HardLearner(ScoringPolicy):
    """Hard-learner prioritisation: ``score(x) = loss(x; learner)`` (Evans et al., Eq. 2 ablation;
    Loshchilov & Hutter's online hard-example selection). Default selection: sampling."""

    name = "hard_learner"
    uses_learner = True

    def score(
        self,
        batch: Batch,
        *,
        indices: Tensor | None,
        learner: nn.Module,
        loss_fn: LossFn,
        ledger: ComputeLedger | None,
    ) -> Tensor:
        """Evans et al. Sec. 3.1 "hard learner": ``s_hard = l(x | learner)``."""
        return per_example_losses(
            learner, loss_fn, batch, ledger=ledger, category="scoring:learner"
        )


class EasyReference(ScoringPolicy):
    """Easy-reference prioritisation: ``score(x) = -loss(x; reference)`` (Evans et al. Sec. 3.1
    "easy reference"). Default selection: sampling."""

    name = "easy_reference"

    def __init__(
        self, reference: Reference, *, temperature: float = 1.0, topk: bool = False
    ) -> None:
        super().__init__(temperature=temperature, topk=topk)
        self.reference = check_reference(reference)

    def score(
        self,
        batch: Batch,
        *,
        indices: Tensor | None,
        learner: nn.Module,
        loss_fn: LossFn,
        ledger: ComputeLedger | None,
    ) -> Tensor:
        """Evans et al. Sec. 3.1 "easy reference": ``s_easy = -l(x | reference)``."""
        return -reference_losses(self.reference, loss_fn, batch, indices, ledger)

    def observe(
        self,
        batch: Batch,
        *,
        indices: Tensor | None,
        loss_fn: LossFn,
        ledger: ComputeLedger | None,
        positions: Tensor | None = None,
    ) -> None:
        if isinstance(self.reference, OnlineReference):
            self.reference.step(ledger)
