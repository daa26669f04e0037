"""Knowledge-graph embedding models behind one interface, found by name in a registry.

Every model scores a triple ``(h, r, t)`` of integer ids; higher means more plausible.

- ``score_hrt(h, r, t)``: ``(B,)`` scores of ``B`` triples;
- ``score_t(h, r)``: ``(B, E)`` scores of ``(h, r, e)`` for every entity ``e`` (tail prediction);
- ``score_h(r, t)``: ``(B, E)`` scores of ``(e, r, t)`` for every entity ``e`` (head prediction).

Models whose score is a bilinear or translational form compute ``score_t`` / ``score_h`` as one
matrix product (or ``torch.cdist``) against the entity table; the projection models (TransH,
TransR, TransD) broadcast over entity chunks. Each model implements the equation cited in its
``interaction`` docstring; equations are numbered as in the review (Lin et al., 2018,
arXiv 1812.10901, Section 3) and the original papers.

>>> model = get_model("rotate", num_entities=14, num_relations=55, dim=32)
>>> model.score_t(torch.tensor([0, 1]), torch.tensor([3, 4])).shape
torch.Size([2, 14])
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from provenml.core.registry import Registry
from provenml.errors import ProvenmlError
from provenml.nn.native import tracing

Reps = tuple[Tensor, ...]

#: entity chunk so that a broadcast ``score_t`` holds at most this many floats at once
_BROADCAST_BUDGET = 2**24


#: the public scoring methods; an id outside the tables is named (``_name_ids_out_of_range``)
_SCORING_METHODS = ("score_hrt", "score_t", "score_h")


def _name_ids_out_of_range(method: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Wrap a scoring method so that an id beyond the model's tables raises a
    :class:`ProvenmlError` naming the argument, the id and the table's size, instead of
    PyTorch's ``IndexError: index out of range in self``. Nothing is checked on the way in (no
    cost, no device sync); the ids are looked at only once the lookup has failed."""
    arguments = list(inspect.signature(method).parameters)[1:]

    @functools.wraps(method)
    def scoring(self: KGEModel, *ids: Tensor) -> Tensor:
        try:
            return method(self, *ids)
        except IndexError as error:
            for argument, idx in zip(arguments, ids, strict=False):
                if not isinstance(idx, Tensor) or idx.numel() == 0:
                    continue
                kind, size = (
                    ("relation", self.num_relations)
                    if argument == "r"
                    else ("entity", self.num_entities)
                )
                low, high = int(idx.min()), int(idx.max())
                if low < 0 or high >= size:
                    bad = low if low < 0 else high
                    raise ProvenmlError(
                        f"{type(self).__name__}.{method.__name__}: {argument} holds {kind} id "
                        f"{bad}, outside the model's {size} {kind} ids (0..{size - 1})"
                    ) from error
            raise

    return scoring


class KGEModel(nn.Module):
    """Base class: entity / relation representations plus an interaction function.

    Subclasses define ``entity_reps(idx)`` and ``relation_reps(idx)`` (tuples of tensors whose
    leading dims index the batch, ``idx=None`` meaning all rows) and ``interaction(h, r, t)``,
    which broadcasts over leading dims and reduces the feature dims. ``score_t`` / ``score_h``
    default to broadcasting over entity chunks; fast models override them.
    """

    name: ClassVar[str] = ""
    #: the model's entity vectors are complex (real and imaginary halves), so N3 uses moduli
    complex_entities: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A model's own scoring methods name out-of-range ids too (``_name_ids_out_of_range``)."""
        super().__init_subclass__(**kwargs)
        for name in _SCORING_METHODS:
            if name in cls.__dict__:
                setattr(cls, name, _name_ids_out_of_range(cls.__dict__[name]))

    def __init__(self, num_entities: int, num_relations: int, dim: int) -> None:
        super().__init__()
        for arg, value in (
            ("num_entities", num_entities),
            ("num_relations", num_relations),
            ("dim", dim),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ProvenmlError(
                    f"{type(self).__name__}: {arg} must be an integer >= 1, got {value!r}"
                )
        self.num_entities = num_entities
        self.num_relations = num_relations
        self.dim = dim

    # -- representations and interaction (subclasses) -------------------------------------------
    def entity_reps(self, idx: Tensor | None) -> Reps:
        raise NotImplementedError

    def relation_reps(self, idx: Tensor) -> Reps:
        raise NotImplementedError

    def interaction(self, h: Reps, r: Reps, t: Reps) -> Tensor:
        raise NotImplementedError

    # -- public scoring API ------------------------------------------------------------------
    @_name_ids_out_of_range
    def score_hrt(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """Scores of the triples ``(h[i], r[i], t[i])``; any matching shapes, returns that shape."""
        return self.interaction(self.entity_reps(h), self.relation_reps(r), self.entity_reps(t))

    @_name_ids_out_of_range
    def score_t(self, h: Tensor, r: Tensor) -> Tensor:
        """``(B, E)`` scores of ``(h[i], r[i], e)`` for every entity ``e``."""
        hs = _unsqueeze(self.entity_reps(h), 1)
        rs = _unsqueeze(self.relation_reps(r), 1)
        return self._broadcast_all(lambda ents: self.interaction(hs, rs, ents), len(h))

    @_name_ids_out_of_range
    def score_h(self, r: Tensor, t: Tensor) -> Tensor:
        """``(B, E)`` scores of ``(e, r[i], t[i])`` for every entity ``e``."""
        rs = _unsqueeze(self.relation_reps(r), 1)
        ts = _unsqueeze(self.entity_reps(t), 1)
        return self._broadcast_all(lambda ents: self.interaction(ents, rs, ts), len(r))

    def _broadcast_all(self, fn: Callable[[Reps], Tensor], batch: int) -> Tensor:
        width = max(
            1,
            sum(
                x[0].numel()
                for x in self.entity_reps(torch.zeros(1, dtype=torch.long, device=self.device))
            ),
        )
        chunk = max(1, _BROADCAST_BUDGET // max(1, batch * width * 4))
        out = []
        for start in range(0, self.num_entities, chunk):
            idx = torch.arange(start, min(start + chunk, self.num_entities), device=self.device)
            out.append(fn(_unsqueeze(self.entity_reps(idx), 0)))
        return torch.cat(out, dim=1)

    # -- training hooks ----------------------------------------------------------------------
    def regularization_factors(self, h: Tensor, r: Tensor, t: Tensor) -> list[Tensor]:
        """The embedding factors of a batch that L2 / N3 penalise (moduli for complex vectors)."""
        factors = [*self.entity_reps(h), *self.relation_reps(r), *self.entity_reps(t)]
        return [f.flatten(1) if f.dim() > 1 else f[:, None] for f in factors]

    def apply_constraints(self) -> None:
        """Project parameters back onto the model's constraint set (after each optimizer step)."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def _unsqueeze(reps: Reps, dim: int) -> Reps:
    return tuple(x.unsqueeze(dim) for x in reps)


def _table(rows: int, dim: int) -> nn.Parameter:
    weight = torch.empty(rows, dim)
    nn.init.xavier_uniform_(weight)
    return nn.Parameter(weight)


def _select(table: Tensor, idx: Tensor | None) -> Tensor:
    """Rows ``idx`` of ``table`` (all rows for ``None``), any index shape.

    ``F.embedding`` rather than ``table[idx]``: its backward is a sorted segment sum, about 10x
    faster on CPU than the scatter-add behind indexing when indices repeat (they always do).
    """
    if idx is None:
        return table
    rows = F.embedding(idx.reshape(-1), table.reshape(table.shape[0], -1))
    return rows.view(*idx.shape, *table.shape[1:])


def _complex_moduli(x: Tensor) -> Tensor:
    re, im = x.chunk(2, dim=-1)
    return torch.sqrt(re**2 + im**2 + 1e-12)


# =============================================================================================
# Translational distance models
# =============================================================================================


class TransE(KGEModel):
    """TransE (Bordes et al., 2013): relations translate heads to tails."""

    name = "transe"

    def __init__(
        self, num_entities: int, num_relations: int, dim: int, p: int = 1, normalize: bool = True
    ) -> None:
        super().__init__(num_entities, num_relations, dim)
        if p not in (1, 2):
            raise ProvenmlError(f"TransE norm p must be 1 or 2, got {p}")
        self.p, self.normalize = p, normalize
        bound = 6 / math.sqrt(dim)  # the paper's uniform init
        self.entity = nn.Parameter(torch.empty(num_entities, dim).uniform_(-bound, bound))
        self.relation = nn.Parameter(
            F.normalize(torch.empty(num_relations, dim).uniform_(-bound, bound), dim=-1)
        )
        self.apply_constraints()

    def entity_reps(self, idx: Tensor | None) -> Reps:
        return (_select(self.entity, idx),)

    def relation_reps(self, idx: Tensor) -> Reps:
        return (_select(self.relation, idx),)

    def interaction(self, h: Reps, r: Reps, t: Reps) -> Tensor:
        """Review eq. (1): f_r(h, t) = -||h + r - t||_p (L1 or L2)."""
        return -torch.linalg.vector_norm(h[0] + r[0] - t[0], ord=self.p, dim=-1)

    def score_t(self, h: Tensor, r: Tensor) -> Tensor:
        """-||(h + r) - e||_p for all entities e, one ``torch.cdist`` call."""
        return -torch.cdist(
            _select(self.entity, h) + _select(self.relation, r), self.entity, p=self.p
        )

    def score_h(self, r: Tensor, t: Tensor) -> Tensor:
        """-||e - (t - r)||_p for all entities e."""
        return -torch.cdist(
            _select(self.entity, t) - _select(self.relation, r), self.entity, p=self.p
        )

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """TransE's constraint: entity vectors have unit L2 norm."""
        if self.normalize:
            self.entity.copy_(F.normalize(self.entity, dim=-1))


class TransH(KGEModel):
    """TransH (Wang et al., 2014): translate on a relation-specific hyperplane."""

    name = "transh"

    def __init__(self, num_entities: int, num_relations: int, dim: int) -> None:
        super().__init__(num_entities, num_relations, dim)
        self.entity = _table(num_entities, dim)
        self.normal = _table(num_relations, dim)
        self.translation = _table(num_relations, dim)

    def entity_reps(self, idx: Tensor | None) -> Reps:
        return (_select(self.entity, idx),)

    def relation_reps(self, idx: Tensor) -> Reps:
        return (F.normalize(_select(self.normal, idx), dim=-1), _select(self.translation, idx))

    def interaction(self, h: Reps, r: Reps, t: Reps) -> Tensor:
        """TransH eq.: h⊥ = h - w_rᵀh w_r, t⊥ = t - w_rᵀt w_r; f = -||h⊥ + d_r - t⊥||²₂."""
        w, d = r
        h_perp = h[0] - (h[0] * w).sum(-1, keepdim=True) * w
        t_perp = t[0] - (t[0] * w).sum(-1, keepdim=True) * w
        return -((h_perp + d - t_perp) ** 2).sum(-1)

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """Soft constraint of the paper made hard: ||e||₂ <= 1."""
        self.entity.copy_(torch.renorm(self.entity, p=2, dim=0, maxnorm=1.0))


class TransR(KGEModel):
    """TransR (Lin et al., 2015): project entities into a relation space with M_r."""

    name = "transr"

    def __init__(
        self, num_entities: int, num_relations: int, dim: int, relation_dim: int | None = None
    ) -> None:
        super().__init__(num_entities, num_relations, dim)
        k = relation_dim or dim
        self.relation_dim = k
        self.entity = _table(num_entities, dim)
        self.relation = _table(num_relations, k)
        eye = torch.eye(dim, k).expand(num_relations, dim, k)  # identity start
        self.projection = nn.Parameter(eye + 0.01 * torch.randn(num_relations, dim, k))

    def entity_reps(self, idx: Tensor | None) -> Reps:
        return (_select(self.entity, idx),)

    def relation_reps(self, idx: Tensor) -> Reps:
        return (_select(self.relation, idx), _select(self.projection, idx))

    def interaction(self, h: Reps, r: Reps, t: Reps) -> Tensor:
        """Review eq. (TransR): h_r = h M_r, t_r = t M_r; f = -||h_r + r - t_r||²₂."""
        rel, proj = r
        h_r = (h[0].unsqueeze(-2) @ proj).squeeze(-2)
        t_r = (t[0].unsqueeze(-2) @ proj).squeeze(-2)
        return -((h_r + rel - t_r) ** 2).sum(-1)

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """||e||₂ <= 1 and ||r||₂ <= 1, as in the paper."""
        self.entity.copy_(torch.renorm(self.entity, p=2, dim=0, maxnorm=1.0))
        self.relation.copy_(torch.renorm(self.relation, p=2, dim=0, maxnorm=1.0))

    def score_hrt(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """Same equation; when few relations occur, project every entity once per relation.

        A batch with negatives repeats each relation many times: ``E·d·k`` per distinct relation
        then costs far less than gathering one ``d×k`` matrix per triple.
        """
        if tracing():  # (stop 71) ``unique``'s size depends on the ids: the general path
            return super().score_hrt(h, r, t)
        uniq, inv = torch.unique(r, return_inverse=True)
        if len(uniq) * self.num_entities > 2 * h.numel():
            return super().score_hrt(h, r, t)
        projected = torch.einsum("ed,udk->uek", self.entity, _select(self.projection, uniq))
        diff = projected[inv, h] + _select(self.relation, r) - projected[inv, t]
        return -(diff**2).sum(-1)

    def regularization_factors(self, h: Tensor, r: Tensor, t: Tensor) -> list[Tensor]:
        return [_select(self.entity, h), _select(self.relation, r), _select(self.entity, t)]


class TransD(KGEModel):
    """TransD (Ji et al., 2015): dynamic projection matrices M_r,e = r_p e_pᵀ + I."""

    name = "transd"

    def __init__(
        self, num_entities: int, num_relations: int, dim: int, relation_dim: int | None = None
    ) -> None:
        super().__init__(num_entities, num_relations, dim)
        self.relation_dim = relation_dim or dim
        self.entity = _table(num_entities, dim)
        self.entity_proj = _table(num_entities, dim)
        self.relation = _table(num_relations, self.relation_dim)
        self.relation_proj = _table(num_relations, self.relation_dim)

    def entity_reps(self, idx: Tensor | None) -> Reps:
        return (_select(self.entity, idx), _select(self.entity_proj, idx))

    def relation_reps(self, idx: Tensor) -> Reps:
        return (_select(self.relation, idx), _select(self.relation_proj, idx))

    def _project(self, e: Tensor, e_p: Tensor, r_p: Tensor) -> Tensor:
        """e⊥ = M_re e = r_p (e_pᵀ e) + I^{m×n} e (I truncates or zero-pads to m dims)."""
        m = self.relation_dim
        ident = e[..., :m] if m <= self.dim else F.pad(e, (0, m - self.dim))
        return r_p * (e_p * e).sum(-1, keepdim=True) + ident

    def interaction(self, h: Reps, r: Reps, t: Reps) -> Tensor:
        """TransD eq.: f = -||M_rh h + r - M_rt t||²₂ with M_re = r_p e_pᵀ + I."""
        rel, r_p = r
        h_perp = self._project(h[0], h[1], r_p)
        t_perp = self._project(t[0], t[1], r_p)
        return -((h_perp + rel - t_perp) ** 2).sum(-1)

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """||e||₂ <= 1 and ||r||₂ <= 1, as in the paper."""
        self.entity.copy_(torch.renorm(self.entity, p=2, dim=0, maxnorm=1.0))
        self.relation.copy_(torch.renorm(self.relation, p=2, dim=0, maxnorm=1.0))


class RotatE(KGEModel):
    """RotatE (Sun et al., 2019): relations rotate heads in the complex plane."""

    name = "rotate"
    complex_entities = True

    def __init__(self, num_entities: int, num_relations: int, dim: int, p: int = 2) -> None:
        super().__init__(num_entities, num_relations, dim)
        if p not in (1, 2):
            raise ProvenmlError(f"RotatE distance p must be 1 or 2, got {p}")
        self.p = p
        self.entity = _table(num_entities, 2 * dim)  # [Re | Im]
        self.phase = nn.Parameter(torch.empty(num_relations, dim).uniform_(-math.pi, math.pi))

    def entity_reps(self, idx: Tensor | None) -> Reps:
        return (_select(self.entity, idx),)

    def relation_reps(self, idx: Tensor) -> Reps:
        return (_select(self.phase, idx),)

    @staticmethod
    def _rotate(e: Tensor, phase: Tensor, conj: bool = False) -> Tensor:
        re, im = e.chunk(2, dim=-1)
        cos, sin = torch.cos(phase), torch.sin(phase)
        if conj:
            sin = -sin
        return torch.cat([re * cos - im * sin, re * sin + im * cos], dim=-1)

    def _distance(self, diff: Tensor) -> Tensor:
        if self.p == 2:
            return torch.linalg.vector_norm(diff, dim=-1)
        return _complex_moduli(diff).sum(-1)

    def interaction(self, h: Reps, r: Reps, t: Reps) -> Tensor:
        """RotatE eq. (2)-(3): t = h ∘ r with |r_i| = 1, r_i = e^{iθ_i}; f = -||h ∘ r - t||.

        ``p=2``: Euclidean norm of the complex difference (as PyKEEN); ``p=1``: sum of the
        complex moduli (the official RotatE code).
        """
        return -self._distance(self._rotate(h[0], r[0]) - t[0])

    def score_t(self, h: Tensor, r: Tensor) -> Tensor:
        query = self._rotate(_select(self.entity, h), _select(self.phase, r))
        if self.p == 2:
            return -torch.cdist(query, self.entity)
        return super().score_t(h, r)

    def score_h(self, r: Tensor, t: Tensor) -> Tensor:
        """|h∘r - t| = |h - t∘r̄| because |r| = 1: rotate the tail back, then one cdist."""
        query = self._rotate(_select(self.entity, t), _select(self.phase, r), conj=True)
        if self.p == 2:
            return -torch.cdist(query, self.entity)
        return super().score_h(r, t)

    def regularization_factors(self, h: Tensor, r: Tensor, t: Tensor) -> list[Tensor]:
        return [_complex_moduli(_select(self.entity, h)), _complex_moduli(_select(self.entity, t))]


# =============================================================================================
# Semantic matching (bilinear) models
# =============================================================================================


class RESCAL(KGEModel):
    """RESCAL (Nickel et al., 2011): a full d×d matrix per relation."""

    name = "rescal"

    def __init__(self, num_entities: int, num_relations: int, dim: int) -> None:
        super().__init__(num_entities, num_relations, dim)
        self.entity = _table(num_entities, dim)
        self.relation = nn.Parameter(torch.empty(num_relations, dim, dim))
        nn.init.xavier_uniform_(self.relation.view(num_relations, -1))

    def entity_reps(self, idx: Tensor | None) -> Reps:
        return (_select(self.entity, idx),)

    def relation_reps(self, idx: Tensor) -> Reps:
        return (_select(self.relation, idx),)

    def interaction(self, h: Reps, r: Reps, t: Reps) -> Tensor:
        """Review eq. (RESCAL): f_r(h, t) = hᵀ M_r t."""
        return ((h[0].unsqueeze(-2) @ r[0]).squeeze(-2) * t[0]).sum(-1)

    def score_t(self, h: Tensor, r: Tensor) -> Tensor:
        return (_select(self.entity, h).unsqueeze(1) @ _select(self.relation, r)).squeeze(
            1
        ) @ self.entity.T

    def score_h(self, r: Tensor, t: Tensor) -> Tensor:
        return (_select(self.relation, r) @ _select(self.entity, t).unsqueeze(-1)).squeeze(
            -1
        ) @ self.entity.T


class DistMult(KGEModel):
    """DistMult (Yang et al., 2015): RESCAL with diagonal relation matrices."""

    name = "distmult"

    def __init__(self, num_entities: int, num_relations: int, dim: int) -> None:
        super().__init__(num_entities, num_relations, dim)
        self.entity = _table(num_entities, dim)
        self.relation = _table(num_relations, dim)

    def entity_reps(self, idx: Tensor | None) -> Reps:
        return (_select(self.entity, idx),)

    def relation_reps(self, idx: Tensor) -> Reps:
        return (_select(self.relation, idx),)

    def interaction(self, h: Reps, r: Reps, t: Reps) -> Tensor:
        """Review eq. (DistMult): f_r(h, t) = hᵀ diag(r) t = Σ_i h_i r_i t_i."""
        return (h[0] * r[0] * t[0]).sum(-1)

    def score_t(self, h: Tensor, r: Tensor) -> Tensor:
        return (_select(self.entity, h) * _select(self.relation, r)) @ self.entity.T

    def score_h(self, r: Tensor, t: Tensor) -> Tensor:
        return (_select(self.relation, r) * _select(self.entity, t)) @ self.entity.T


class HolE(KGEModel):
    """HolE (Nickel et al., 2016): holographic embeddings by circular correlation."""

    name = "hole"

    def __init__(self, num_entities: int, num_relations: int, dim: int) -> None:
        super().__init__(num_entities, num_relations, dim)
        self.entity = _table(num_entities, dim)
        self.relation = _table(num_relations, dim)

    def entity_reps(self, idx: Tensor | None) -> Reps:
        return (_select(self.entity, idx),)

    def relation_reps(self, idx: Tensor) -> Reps:
        return (_select(self.relation, idx),)

    @staticmethod
    def correlation(a: Tensor, b: Tensor) -> Tensor:
        """Circular correlation [a ⋆ b]_k = Σ_i a_i b_{(i+k) mod d} = F⁻¹(conj(F(a)) ⊙ F(b))."""
        d = a.shape[-1]
        return torch.fft.irfft(torch.conj(torch.fft.rfft(a)) * torch.fft.rfft(b), n=d)

    @staticmethod
    def convolution(a: Tensor, b: Tensor) -> Tensor:
        """Circular convolution [a ∗ b]_k = Σ_i a_i b_{(k-i) mod d} = F⁻¹(F(a) ⊙ F(b))."""
        d = a.shape[-1]
        return torch.fft.irfft(torch.fft.rfft(a) * torch.fft.rfft(b), n=d)

    def interaction(self, h: Reps, r: Reps, t: Reps) -> Tensor:
        """HolE eq. (9): f_r(h, t) = rᵀ (h ⋆ t)."""
        h_, t_ = torch.broadcast_tensors(h[0], t[0])
        return (r[0] * self.correlation(h_, t_)).sum(-1)

    def score_t(self, h: Tensor, r: Tensor) -> Tensor:
        """rᵀ(h ⋆ t) = (h ∗ r)ᵀ t, so all tails score with one matrix product."""
        return self.convolution(_select(self.entity, h), _select(self.relation, r)) @ self.entity.T

    def score_h(self, r: Tensor, t: Tensor) -> Tensor:
        """rᵀ(h ⋆ t) = hᵀ (r ⋆ t), so all heads score with one matrix product."""
        return self.correlation(_select(self.relation, r), _select(self.entity, t)) @ self.entity.T


class ComplEx(KGEModel):
    """ComplEx (Trouillon et al., 2016): DistMult in complex space."""

    name = "complex"
    complex_entities = True

    def __init__(self, num_entities: int, num_relations: int, dim: int) -> None:
        super().__init__(num_entities, num_relations, dim)
        self.entity = _table(num_entities, 2 * dim)  # [Re | Im]
        self.relation = _table(num_relations, 2 * dim)

    def entity_reps(self, idx: Tensor | None) -> Reps:
        return (_select(self.entity, idx),)

    def relation_reps(self, idx: Tensor) -> Reps:
        return (_select(self.relation, idx),)

    @staticmethod
    def _product(h: Tensor, r: Tensor) -> Tensor:
        """Complex h ⊙ r as [Re | Im]."""
        hr, hi = h.chunk(2, dim=-1)
        rr, ri = r.chunk(2, dim=-1)
        return torch.cat([hr * rr - hi * ri, hr * ri + hi * rr], dim=-1)

    def interaction(self, h: Reps, r: Reps, t: Reps) -> Tensor:
        """ComplEx eq. (11): f_r(h, t) = Re(Σ_i h_i r_i conj(t_i))."""
        # Re(q conj(t)) = Re(q)Re(t) + Im(q)Im(t) = <[Re q | Im q], [Re t | Im t]>
        return (self._product(h[0], r[0]) * t[0]).sum(-1)

    def score_t(self, h: Tensor, r: Tensor) -> Tensor:
        return self._product(_select(self.entity, h), _select(self.relation, r)) @ self.entity.T

    def score_h(self, r: Tensor, t: Tensor) -> Tensor:
        """Re(h r conj(t)) = <[Re h | Im h], [Re p | -Im p]> with p = r conj(t)."""
        rr, ri = _select(self.relation, r).chunk(2, dim=-1)
        tr, ti = _select(self.entity, t).chunk(2, dim=-1)
        p_re, p_im = rr * tr + ri * ti, ri * tr - rr * ti
        return torch.cat([p_re, -p_im], dim=-1) @ self.entity.T

    def regularization_factors(self, h: Tensor, r: Tensor, t: Tensor) -> list[Tensor]:
        return [
            _complex_moduli(_select(self.entity, h)),
            _complex_moduli(_select(self.relation, r)),
            _complex_moduli(_select(self.entity, t)),
        ]


class ANALOGY(KGEModel):
    """ANALOGY (Liu et al., 2017): block-diagonal normal relation matrices.

    Each B_r has real scalars on its first ``dim - 2*complex_dim`` diagonal entries and
    ``complex_dim`` 2×2 blocks [[a, -b], [b, a]]; the score is therefore DistMult on the scalar
    part plus ComplEx on the block part (the paper's Section 4.3 equivalence).
    """

    name = "analogy"

    def __init__(
        self, num_entities: int, num_relations: int, dim: int, complex_dim: int | None = None
    ) -> None:
        super().__init__(num_entities, num_relations, dim)
        self.complex_dim = dim // 4 if complex_dim is None else complex_dim
        if not 0 <= 2 * self.complex_dim <= dim:
            raise ProvenmlError(f"ANALOGY complex_dim must be in [0, dim/2], got {complex_dim}")
        self.scalar_dim = dim - 2 * self.complex_dim
        self.entity = _table(num_entities, dim)
        self.relation = _table(num_relations, dim)

    def entity_reps(self, idx: Tensor | None) -> Reps:
        return (_select(self.entity, idx),)

    def relation_reps(self, idx: Tensor) -> Reps:
        return (_select(self.relation, idx),)

    def _query(self, e: Tensor, r: Tensor, conj: bool) -> Tensor:
        """The vector q with f = <q, other>: eᵀB_r (conj=False) or B_r e (conj=True)."""
        s = self.scalar_dim
        cr = ComplEx._product(e[..., s:], r[..., s:] * _conj_sign(self.complex_dim, conj, r))
        return torch.cat([e[..., :s] * r[..., :s], cr], dim=-1)

    def interaction(self, h: Reps, r: Reps, t: Reps) -> Tensor:
        """ANALOGY eq. (2): f_r(h, t) = hᵀ B_r t with B_r normal and block diagonal."""
        return (self._query(h[0], r[0], conj=False) * t[0]).sum(-1)

    def score_t(self, h: Tensor, r: Tensor) -> Tensor:
        return (
            self._query(_select(self.entity, h), _select(self.relation, r), conj=False)
            @ self.entity.T
        )

    def score_h(self, r: Tensor, t: Tensor) -> Tensor:
        return (
            self._query(_select(self.entity, t), _select(self.relation, r), conj=True)
            @ self.entity.T
        )


def _conj_sign(complex_dim: int, conj: bool, like: Tensor) -> Tensor:
    """+1 on the real halves, -1 on the imaginary halves when conjugating."""
    sign = torch.ones(2 * complex_dim, device=like.device, dtype=like.dtype)
    if conj:
        sign[complex_dim:] = -1
    return sign


class SimplE(KGEModel):
    """SimplE (Kazemi & Poole, 2018): CP with inverse relations tying head and tail vectors."""

    name = "simple"

    def __init__(self, num_entities: int, num_relations: int, dim: int) -> None:
        super().__init__(num_entities, num_relations, dim)
        self.head = _table(num_entities, dim)
        self.tail = _table(num_entities, dim)
        self.relation = _table(num_relations, dim)
        self.inverse = _table(num_relations, dim)

    def entity_reps(self, idx: Tensor | None) -> Reps:
        return (_select(self.head, idx), _select(self.tail, idx))

    def relation_reps(self, idx: Tensor) -> Reps:
        return (_select(self.relation, idx), _select(self.inverse, idx))

    def interaction(self, h: Reps, r: Reps, t: Reps) -> Tensor:
        """SimplE eq.: f = ½(<h_h, v_r, t_t> + <t_h, v_r⁻¹, h_t>)."""
        return 0.5 * ((h[0] * r[0] * t[1]).sum(-1) + (t[0] * r[1] * h[1]).sum(-1))

    def score_t(self, h: Tensor, r: Tensor) -> Tensor:
        both = torch.cat(
            [
                _select(self.head, h) * _select(self.relation, r),
                _select(self.tail, h) * _select(self.inverse, r),
            ],
            -1,
        )
        return 0.5 * both @ torch.cat([self.tail, self.head], -1).T

    def score_h(self, r: Tensor, t: Tensor) -> Tensor:
        both = torch.cat(
            [
                _select(self.relation, r) * _select(self.tail, t),
                _select(self.inverse, r) * _select(self.head, t),
            ],
            -1,
        )
        return 0.5 * both @ torch.cat([self.head, self.tail], -1).T


# =============================================================================================
# Registry
# =============================================================================================

MODELS: Registry[type[KGEModel]] = Registry("KGE model")
for _cls in (
    TransE,
    TransH,
    TransR,
    TransD,
    RESCAL,
    DistMult,
    HolE,
    ComplEx,
    ANALOGY,
    SimplE,
    RotatE,
):
    MODELS.register(_cls.name, _cls)


def get_model(
    name: str, num_entities: int, num_relations: int, dim: int, **hyperparameters: Any
) -> KGEModel:
    """Build a model by its name (``"transe"``, ``"RotatE"``, ...; case-insensitive).

    An unknown name is one :class:`ProvenmlError` suggesting the closest registered names.
    """
    cls = MODELS.get(name)
    try:
        return cls(num_entities, num_relations, dim, **hyperparameters)
    except TypeError as exc:
        raise ProvenmlError(f"bad hyperparameters for {cls.name}: {exc}") from None
