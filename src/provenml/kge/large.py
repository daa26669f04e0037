"""Knowledge graphs at scale, offline: a seeded generator written straight to int32 arrays, and a
streaming loader for a user's own large TSV graph.

:func:`generate_large_kg` draws up to millions of triples with vectorised numpy (no Python object
per triple):

- **power-law entity degrees**: entity ``i`` has popularity ``w_i ∝ rank_i^(-alpha)`` (a
  Zipf law over a random ranking), and every head and tail is drawn in proportion to it;
- **structure a model can learn**: entities belong to ``num_clusters`` hidden clusters, and a
  relation ``r`` maps a head of cluster ``c`` to a tail of cluster ``g_r(c)``;
- **relation families with patterns**, in equal shares of the relations: *symmetric*
  (``g_r(c) = c``, every triple with its reverse), *antisymmetric* (heads of a lower
  hidden level than tails, never a reversed pair), *inverse* pairs (``r'`` holds exactly the
  reversed triples of ``r``), *composition* triples (``g_r3 = g_r2 ∘ g_r1``; every ``r3`` triple
  ``(a, c)`` has a path ``a -r1-> b -r2-> c`` in the graph) and plain relations;
- **noise**: a ``noise`` share of triples with uniformly random heads, relations and tails.

Triples are deduplicated, shuffled and split; valid and test keep only triples whose entities
and relation occur in training. :meth:`LargeKG.save` writes ``.npy`` files (int32, ``(n, 3)``)
that :meth:`LargeKG.load` memory-maps back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from provenml.errors import ProvenmlError
from provenml.kge.checks import check_float, check_int

FAMILIES = ("symmetric", "antisymmetric", "inverse", "composition", "plain")


@dataclass
class LargeKG:
    """A large knowledge graph as int32 ``(n, 3)`` arrays of ``(head, relation, tail)`` ids."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    num_entities: int
    num_relations: int
    relation_family: list[str]

    def save(self, folder: str | Path) -> Path:
        """Write ``train.npy``, ``valid.npy``, ``test.npy`` and ``meta.json`` into ``folder``."""
        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        for split in ("train", "valid", "test"):
            np.save(root / f"{split}.npy", np.ascontiguousarray(getattr(self, split)))
        meta = {
            "num_entities": self.num_entities,
            "num_relations": self.num_relations,
            "relation_family": self.relation_family,
        }
        (root / "meta.json").write_text(json.dumps(meta))
        return root

    @staticmethod
    def load(folder: str | Path, mmap: bool = True) -> LargeKG:
        """Read a saved graph back (memory-mapped unless ``mmap=False``)."""
        root = Path(folder)
        if not (root / "meta.json").is_file():
            raise ProvenmlError(f"no saved graph in {root} (meta.json is missing)")
        meta = json.loads((root / "meta.json").read_text())
        mode = "r" if mmap else None
        splits = {s: np.load(root / f"{s}.npy", mmap_mode=mode) for s in ("train", "valid", "test")}
        return LargeKG(
            num_entities=int(meta["num_entities"]),
            num_relations=int(meta["num_relations"]),
            relation_family=list(meta["relation_family"]),
            **splits,
        )

    @property
    def nbytes(self) -> int:
        return int(self.train.nbytes + self.valid.nbytes + self.test.nbytes)

    def __repr__(self) -> str:
        return (
            f"LargeKG(entities={self.num_entities}, relations={self.num_relations}, "
            f"train={len(self.train)}, valid={len(self.valid)}, test={len(self.test)})"
        )


def generate_large_kg(
    num_entities: int = 100_000,
    num_triples: int = 1_000_000,
    num_relations: int = 50,
    *,
    num_clusters: int = 200,
    alpha: float = 0.8,
    noise: float = 0.02,
    valid_fraction: float = 0.01,
    test_fraction: float = 0.01,
    seed: int = 0,
) -> LargeKG:
    """Draw a graph of about ``num_triples`` distinct triples (see the module docstring).

    Duplicates are removed, so the result holds somewhat fewer triples than asked on dense
    settings. Memory is a few int64 arrays of ``num_triples`` rows.
    """
    check_int("num_entities", num_entities, 2)
    check_int("num_triples", num_triples, 10)
    check_int("num_relations", num_relations, len(FAMILIES))
    check_int("num_clusters", num_clusters, 1)
    if num_clusters > num_entities:
        raise ProvenmlError(f"num_clusters ({num_clusters}) must be <= num_entities")
    check_int("seed", seed, 0)
    check_float("alpha", alpha, minimum=0.0)
    check_float("noise", noise, minimum=0.0, maximum=1.0, below_max=True)
    check_float("valid_fraction", valid_fraction, minimum=0.0, maximum=0.5)
    check_float("test_fraction", test_fraction, minimum=0.0, maximum=0.5)
    rng = np.random.default_rng(seed)
    n, k = num_entities, num_clusters
    # entities grouped by cluster (contiguous ranges); power-law popularity, cumulated
    cluster_start = np.linspace(0, n, k + 1).round().astype(np.int64)
    cluster_of = np.repeat(np.arange(k), np.diff(cluster_start))
    popularity = (rng.permutation(n) + 1.0) ** -alpha
    cumulative = np.cumsum(popularity)
    cumulative_before = np.concatenate([[0.0], cumulative])

    def draw_in(clusters: np.ndarray) -> np.ndarray:
        """One entity per entry, from the given cluster, in proportion to popularity."""
        low = cumulative_before[cluster_start[clusters]]
        high = cumulative_before[cluster_start[clusters + 1]]
        u = low + rng.random(len(clusters)) * (high - low)
        return np.minimum(np.searchsorted(cumulative, u, side="right"), n - 1)

    def draw_heads(count: int) -> np.ndarray:
        u = rng.random(count) * cumulative[-1]
        return np.minimum(np.searchsorted(cumulative, u, side="right"), n - 1)

    # relation families, in turn: r0 symmetric, r1 antisymmetric, r2/r3 inverse pair, ...
    family: list[str] = []
    while len(family) < num_relations:
        for fam in FAMILIES:
            need = {"inverse": 2, "composition": 3}.get(fam, 1)
            if len(family) + need <= num_relations:
                family.extend([fam] * need)
            elif len(family) < num_relations:
                family.append("plain")
    family = family[:num_relations]
    level = rng.integers(0, 4, size=k)  # hidden levels orienting the antisymmetric relations

    def draw_all(total: int) -> np.ndarray:
        """About ``total`` triples drawn, then deduplicated (fewer when they repeat)."""
        per_relation = max(1, int(total * (1 - noise)) // num_relations)
        parts: list[np.ndarray] = []

        def emit(h: np.ndarray, r: int, t: np.ndarray) -> None:
            parts.append(np.stack([h, np.full_like(h, r), t], axis=1))

        r = 0
        while r < num_relations:
            fam = family[r]
            heads = draw_heads(per_relation)
            if fam == "symmetric":
                half = heads[: per_relation // 2]
                tails = draw_in(cluster_of[half])
                emit(half, r, tails)
                emit(tails, r, half)
                r += 1
            elif fam == "antisymmetric":
                target = rng.permutation(k)
                tails = draw_in(target[cluster_of[heads]])
                lh, lt = level[cluster_of[heads]], level[cluster_of[tails]]
                keep = lh != lt
                low_first = lh[keep] < lt[keep]
                a, b = heads[keep], tails[keep]
                emit(np.where(low_first, a, b), r, np.where(low_first, b, a))
                r += 1
            elif fam == "inverse":
                half = heads[: per_relation // 2]
                tails = draw_in(rng.permutation(k)[cluster_of[half]])
                emit(half, r, tails)
                emit(tails, r + 1, half)
                r += 2
            elif fam == "composition":
                g1, g2 = rng.permutation(k), rng.permutation(k)
                third = heads[: per_relation // 3 + 1]
                mid = draw_in(g1[cluster_of[third]])
                end = draw_in(g2[cluster_of[mid]])
                emit(third, r, mid)
                emit(mid, r + 1, end)
                emit(third, r + 2, end)
                r += 3
            else:
                tails = draw_in(rng.permutation(k)[cluster_of[heads]])
                emit(heads, r, tails)
                r += 1
        n_noise = int(total * noise)
        if n_noise:
            parts.append(
                np.stack(
                    [
                        rng.integers(0, n, n_noise),
                        rng.integers(0, num_relations, n_noise),
                        rng.integers(0, n, n_noise),
                    ],
                    axis=1,
                )
            )
        triples = np.concatenate(parts).astype(np.int64)
        triples = triples[triples[:, 0] != triples[:, 2]]
        keys = (triples[:, 0] * num_relations + triples[:, 1]) * n + triples[:, 2]
        _, first = np.unique(keys, return_index=True)
        triples = triples[np.sort(first)]
        return triples

    # popular heads meet popular tails again: draw more until enough distinct triples exist
    total = num_triples
    triples = draw_all(total)
    for _ in range(4):
        if len(triples) >= num_triples:
            break
        total = int(total * min(4.0, 1.05 * num_triples / max(1, len(triples))))
        triples = draw_all(total)
    triples = triples[rng.permutation(len(triples))[:num_triples]]
    rename = rng.permutation(n)  # ids no longer reveal the clusters
    triples[:, 0], triples[:, 2] = rename[triples[:, 0]], rename[triples[:, 2]]
    n_valid = int(len(triples) * valid_fraction)
    n_test = int(len(triples) * test_fraction)
    test, valid = triples[:n_test], triples[n_test : n_test + n_valid]
    train = triples[n_test + n_valid :]
    seen_e = np.zeros(n, dtype=bool)
    seen_e[train[:, 0]] = True
    seen_e[train[:, 2]] = True
    seen_r = np.zeros(num_relations, dtype=bool)
    seen_r[train[:, 1]] = True

    def known(x: np.ndarray) -> np.ndarray:
        return x[seen_e[x[:, 0]] & seen_e[x[:, 2]] & seen_r[x[:, 1]]]

    return LargeKG(
        train=train.astype(np.int32),
        valid=known(valid).astype(np.int32),
        test=known(test).astype(np.int32),
        num_entities=n,
        num_relations=num_relations,
        relation_family=family,
    )


def stream_tsv(
    path: str | Path,
    entity_ids: dict[str, int] | None = None,
    relation_ids: dict[str, int] | None = None,
    chunk_lines: int = 1_000_000,
) -> tuple[np.ndarray, dict[str, int], dict[str, int]]:
    """Read ``head<TAB>relation<TAB>tail`` lines in chunks into an int32 ``(n, 3)`` array.

    Labels get ids in order of first appearance; pass the maps of an earlier split (training)
    to read valid / test with the same ids (a label not in a given map gets a new id: check
    ``len(map)`` if that is an error for you). Memory holds one chunk of strings at a time and
    one dict entry per distinct label, never a Python object per triple.
    """
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise ProvenmlError(f"triples file not found: {file}")
    check_int("chunk_lines", chunk_lines, 1)
    ents = dict(entity_ids or {})
    rels = dict(relation_ids or {})
    chunks: list[np.ndarray] = []
    reader = pd.read_csv(
        file,
        sep="\t",
        header=None,
        dtype=str,
        chunksize=chunk_lines,
        keep_default_na=False,
        quoting=3,  # csv.QUOTE_NONE: labels are taken as written
        on_bad_lines="error",
    )
    line = 0
    try:
        for frame in reader:
            if frame.shape[1] != 3:
                raise ProvenmlError(
                    f"{file}: expected 3 tab-separated columns, got {frame.shape[1]} "
                    f"(near line {line + 1})"
                )
            out = np.empty((len(frame), 3), dtype=np.int32)
            for col, table in ((0, ents), (1, rels), (2, ents)):
                codes, uniques = pd.factorize(frame[col].to_numpy())
                mapped = np.empty(len(uniques), dtype=np.int64)
                for i, label in enumerate(uniques):  # one entry per distinct label in the chunk
                    mapped[i] = table.setdefault(label, len(table))
                out[:, col] = mapped[codes]
            chunks.append(out)
            line += len(frame)
    except pd.errors.ParserError as exc:
        raise ProvenmlError(f"{file}: not a 3-column TSV ({exc})") from None
    if len(ents) > np.iinfo(np.int32).max:
        raise ProvenmlError(f"{file}: more than 2^31 entities do not fit int32 ids")
    triples = np.concatenate(chunks) if chunks else np.empty((0, 3), dtype=np.int32)
    return triples, ents, rels
