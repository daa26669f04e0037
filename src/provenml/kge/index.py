"""A sorted-key index of known triples: membership tests and (B, E) filter masks, all batched."""

from __future__ import annotations

import torch
from torch import Tensor


class KnownTriples:
    """Known ``(h, r, t)`` triples, indexed for vectorised look-ups.

    Triples are hashed to one int64 key, sorted once; ``contains`` is a ``searchsorted``, and
    the filter masks of link prediction gather the ragged rows of a CSR layout without any
    Python loop over queries.
    """

    def __init__(self, triples: Tensor, num_entities: int, num_relations: int) -> None:
        triples = torch.unique(triples.long(), dim=0)  # a repeated triple is one known fact
        self.num_entities, self.num_relations = num_entities, num_relations
        e, r = num_entities, num_relations
        self._keys = torch.unique(self._key(triples[:, 0], triples[:, 1], triples[:, 2]))
        # CSR layouts: (h, r) -> tails and (r, t) -> heads
        self._hr_keys, self._hr_vals = self._csr(triples[:, 0] * r + triples[:, 1], triples[:, 2])
        self._rt_keys, self._rt_vals = self._csr(triples[:, 1] * e + triples[:, 2], triples[:, 0])

    def _key(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return (h * self.num_relations + r) * self.num_entities + t

    @staticmethod
    def _csr(keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        order = torch.argsort(keys * (values.max() + 1 if len(values) else 1) + values)
        return keys[order], values[order]

    def to(self, device: torch.device) -> KnownTriples:
        for name in ("_keys", "_hr_keys", "_hr_vals", "_rt_keys", "_rt_vals"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def contains(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """Boolean tensor: is each ``(h, r, t)`` a known triple? (any matching shapes)."""
        keys = self._key(h, r, t)
        if len(self._keys) == 0:
            return torch.zeros_like(keys, dtype=torch.bool)
        pos = torch.searchsorted(self._keys, keys).clamp(max=len(self._keys) - 1)
        return self._keys[pos] == keys

    def tail_mask(self, h: Tensor, r: Tensor) -> Tensor:
        """``(B, E)`` mask of the tails ``e`` with ``(h[i], r[i], e)`` known."""
        return self._dense(len(h), *self.tail_pairs(h, r))

    def head_mask(self, r: Tensor, t: Tensor) -> Tensor:
        """``(B, E)`` mask of the heads ``e`` with ``(e, r[i], t[i])`` known."""
        return self._dense(len(r), *self.head_pairs(r, t))

    def tail_pairs(self, h: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
        """``(rows, tails)``: every known ``(h[row], r[row], tail)``, as two flat tensors (the
        sparse form of :meth:`tail_mask`, memory linear in the known tails)."""
        return self._pairs(h.long() * self.num_relations + r.long(), self._hr_keys, self._hr_vals)

    def head_pairs(self, r: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(rows, heads)``: every known ``(head, r[row], t[row])`` (see :meth:`tail_pairs`)."""
        return self._pairs(r.long() * self.num_entities + t.long(), self._rt_keys, self._rt_vals)

    def _dense(self, n: int, rows: Tensor, cols: Tensor) -> Tensor:
        mask = torch.zeros(n, self.num_entities, dtype=torch.bool, device=rows.device)
        mask[rows, cols] = True
        return mask

    def _pairs(self, queries: Tensor, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        start = torch.searchsorted(keys, queries)
        count = torch.searchsorted(keys, queries, right=True) - start
        rows = torch.repeat_interleave(torch.arange(len(queries), device=queries.device), count)
        # position inside each ragged row: global arange minus the row's first output offset
        offsets = torch.cumsum(count, 0) - count
        within = torch.arange(len(rows), device=queries.device) - offsets.repeat_interleave(count)
        cols = values[start.repeat_interleave(count) + within]
        return rows, cols
