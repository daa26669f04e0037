"""Triple datasets: PyKEEN's bundled benchmarks (offline) and loaders for a user's own triples.

All splits are ``LongTensor`` of shape ``(n, 3)`` holding ``(head, relation, tail)`` ids.

- :func:`load_dataset` reads Nations, Kinships or UMLS through ``pykeen.datasets`` (shipped in
  the PyKEEN wheel, no download), so ids and splits are PyKEEN's own.
- :func:`load_tsv` reads label triples (``head<TAB>relation<TAB>tail``) from three files.
- :func:`load_openke` reads OpenKE's id files (``entity2id.txt``, ``relation2id.txt``,
  ``train2id.txt``, ``valid2id.txt``, ``test2id.txt``; triples stored as ``head tail relation``).

Every user mistake raises :class:`~provenml.errors.ProvenmlError` with the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from provenml.errors import ProvenmlError

BUNDLED = ("nations", "kinships", "umls")
SPLITS = ("train", "valid", "test")


@dataclass
class TriplesDataset:
    """A knowledge graph split into train / valid / test id triples, with labels."""

    name: str
    train: Tensor
    valid: Tensor
    test: Tensor
    entity_labels: list[str] = field(default_factory=list)
    relation_labels: list[str] = field(default_factory=list)

    @property
    def num_entities(self) -> int:
        return len(self.entity_labels)

    @property
    def num_relations(self) -> int:
        return len(self.relation_labels)

    @property
    def all_triples(self) -> Tensor:
        """Train, valid and test stacked: the filter of filtered link prediction."""
        return torch.cat([self.train, self.valid, self.test])

    def __repr__(self) -> str:
        return (
            f"TriplesDataset({self.name!r}, entities={self.num_entities}, "
            f"relations={self.num_relations}, train={len(self.train)}, valid={len(self.valid)}, "
            f"test={len(self.test)})"
        )


def load_dataset(name: str) -> TriplesDataset:
    """Nations, Kinships or UMLS, read through ``pykeen.datasets`` (ids and splits = PyKEEN's)."""
    key = name.lower()
    if key not in BUNDLED:
        raise ProvenmlError(
            f"unknown bundled dataset {name!r}; choose one of {', '.join(BUNDLED)}, "
            "or read your own triples with load_tsv / load_openke"
        )
    import pykeen.datasets

    cls = {
        "nations": pykeen.datasets.Nations,
        "kinships": pykeen.datasets.Kinships,
        "umls": pykeen.datasets.UMLS,
    }[key]
    ds = cls()
    entities = sorted(ds.training.entity_to_id, key=ds.training.entity_to_id.__getitem__)
    relations = sorted(ds.training.relation_to_id, key=ds.training.relation_to_id.__getitem__)
    return TriplesDataset(
        name=key,
        train=ds.training.mapped_triples.long().clone(),
        valid=ds.validation.mapped_triples.long().clone(),
        test=ds.testing.mapped_triples.long().clone(),
        entity_labels=entities,
        relation_labels=relations,
    )


def _read_rows(path: Path, columns: int, skip_first: bool = False) -> list[tuple[int, list[str]]]:
    """(line number, fields) of the non-empty lines of ``path``; checks the column count."""
    if not path.is_file():
        raise ProvenmlError(f"triples file not found: {path}")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if skip_first and number == 1:
                continue
            stripped = line.rstrip("\n\r")
            if not stripped.strip():
                continue
            parts = stripped.split("\t") if "\t" in stripped else stripped.split()
            if len(parts) != columns:
                raise ProvenmlError(
                    f"{path}:{number}: expected {columns} columns, got {len(parts)}: {stripped!r}"
                )
            rows.append((number, [p.strip() for p in parts]))
    return rows


def load_tsv(
    train: str | Path,
    valid: str | Path,
    test: str | Path,
    name: str | None = None,
) -> TriplesDataset:
    """Label triples ``head<TAB>relation<TAB>tail``, one per line, from three files.

    Entity and relation ids are assigned in sorted label order from the training file; an entity
    or relation in valid / test that never appears in training is an error (it has no embedding).
    """
    paths = {"train": Path(train), "valid": Path(valid), "test": Path(test)}
    rows = {split: _read_rows(path, 3) for split, path in paths.items()}
    if not rows["train"]:
        raise ProvenmlError(f"training file {paths['train']} holds no triples")
    entities = sorted({e for _, (h, _, t) in rows["train"] for e in (h, t)})
    relations = sorted({r for _, (_, r, _) in rows["train"]})
    ent_id = {e: i for i, e in enumerate(entities)}
    rel_id = {r: i for i, r in enumerate(relations)}
    splits: dict[str, Tensor] = {}
    for split, split_rows in rows.items():
        ids = []
        for number, (h, r, t) in split_rows:
            for label, table, kind in (
                (h, ent_id, "entity"),
                (r, rel_id, "relation"),
                (t, ent_id, "entity"),
            ):
                if label not in table:
                    raise ProvenmlError(
                        f"{paths[split]}:{number}: {kind} {label!r} never appears in the "
                        f"training file {paths['train']}, so it has no embedding"
                    )
            ids.append((ent_id[h], rel_id[r], ent_id[t]))
        splits[split] = torch.tensor(ids, dtype=torch.long).reshape(-1, 3)
    return TriplesDataset(
        name=name or paths["train"].parent.name,
        entity_labels=entities,
        relation_labels=relations,
        **splits,
    )


def _read_id_map(path: Path) -> list[str]:
    """OpenKE ``*2id.txt``: a count line, then ``label<TAB>id``; ids must be 0..n-1."""
    rows = _read_rows(path, 2, skip_first=True)
    ids = []
    for number, (_, raw) in rows:
        try:
            ids.append(int(raw))
        except ValueError:
            raise ProvenmlError(f"{path}:{number}: id {raw!r} is not an integer") from None
    if ids and min(ids) != 0:
        raise ProvenmlError(f"{path}: ids must start at 0, the smallest is {min(ids)}")
    if sorted(ids) != list(range(len(ids))):
        raise ProvenmlError(f"{path}: ids must be 0..{len(ids) - 1} without gaps or repeats")
    labels = [""] * len(ids)
    for (_, (label, _)), i in zip(rows, ids, strict=True):
        labels[i] = label
    return labels


def load_openke(folder: str | Path, name: str | None = None) -> TriplesDataset:
    """OpenKE's folder: ``entity2id.txt``, ``relation2id.txt``, ``{train,valid,test}2id.txt``.

    Triple files start with a count line and store ``head tail relation`` (OpenKE's order).
    """
    root = Path(folder)
    if not root.is_dir():
        raise ProvenmlError(f"OpenKE folder not found: {root}")
    entities = _read_id_map(root / "entity2id.txt")
    relations = _read_id_map(root / "relation2id.txt")
    splits: dict[str, Tensor] = {}
    for split in SPLITS:
        path = root / f"{split}2id.txt"
        rows = _read_rows(path, 3, skip_first=True)
        try:
            hrt = [(int(h), int(r), int(t)) for _, (h, t, r) in rows]
        except ValueError:
            raise ProvenmlError(
                f"{path}: triples must be integer ids 'head tail relation'"
            ) from None
        triples = torch.tensor(hrt, dtype=torch.long).reshape(-1, 3)
        if len(triples) and (triples.min() < 0):
            raise ProvenmlError(f"{path}: negative id {int(triples.min())}")
        bad_e = (triples[:, [0, 2]] >= len(entities)).any(dim=1)
        bad_r = triples[:, 1] >= len(relations)
        if bad_e.any() or bad_r.any():
            row = int((bad_e | bad_r).nonzero()[0])
            raise ProvenmlError(
                f"{path}:{rows[row][0]}: id out of range (entities 0..{len(entities) - 1}, "
                f"relations 0..{len(relations) - 1})"
            )
        splits[split] = triples
    _check_seen_in_training(splits, root)
    return TriplesDataset(
        name=name or root.name, entity_labels=entities, relation_labels=relations, **splits
    )


def _check_seen_in_training(splits: dict[str, Tensor], root: Path) -> None:
    seen = torch.unique(splits["train"][:, [0, 2]])
    for split in ("valid", "test"):
        ents = torch.unique(splits[split][:, [0, 2]])
        unseen = ents[~torch.isin(ents, seen)]
        if len(unseen):
            raise ProvenmlError(
                f"{root / (split + '2id.txt')}: entity id {int(unseen[0])} never appears in "
                f"train2id.txt, so it has no trained embedding ({len(unseen)} such entities)"
            )
