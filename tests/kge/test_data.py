"""Bundled datasets (offline, PyKEEN's ids) and loaders for users' triples with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from provenml.core import ProvenmlError
from provenml.kge import load_dataset, load_openke, load_tsv


@pytest.mark.parametrize(
    ("name", "entities", "relations", "train"),
    [("nations", 14, 55, 1592), ("kinships", 104, 25, 8544), ("umls", 135, 46, 5216)],
)
def test_bundled_datasets_match_pykeen(name, entities, relations, train) -> None:
    import pykeen.datasets

    ds = load_dataset(name)
    assert (ds.num_entities, ds.num_relations, len(ds.train)) == (entities, relations, train)
    ref = {
        "nations": pykeen.datasets.Nations,
        "kinships": pykeen.datasets.Kinships,
        "umls": pykeen.datasets.UMLS,
    }[name]()
    assert torch.equal(ds.test, ref.testing.mapped_triples)
    assert ds.entity_labels[0] == next(iter(sorted(ref.entity_to_id, key=ref.entity_to_id.get)))


def test_unknown_dataset() -> None:
    with pytest.raises(ProvenmlError, match="load_tsv"):
        load_dataset("fb15k")


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).write_text(text)


def test_load_tsv(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "train.tsv": "a\tlikes\tb\nb\tlikes\tc\nc\thates\ta\n",
            "valid.tsv": "a\thates\tc\n",
            "test.tsv": "\nb\thates\ta\n",
        },
    )
    ds = load_tsv(tmp_path / "train.tsv", tmp_path / "valid.tsv", tmp_path / "test.tsv")
    assert ds.entity_labels == ["a", "b", "c"] and ds.relation_labels == ["hates", "likes"]
    assert ds.test.tolist() == [[1, 0, 0]]


def test_load_tsv_errors(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "train.tsv": "a\tlikes\tb\n",
            "valid.tsv": "a\tlikes\tb\n",
            "bad.tsv": "a\tlikes\n",
            "unseen.tsv": "a\tlikes\tzed\n",
        },
    )
    with pytest.raises(ProvenmlError, match="not found"):
        load_tsv(tmp_path / "train.tsv", tmp_path / "valid.tsv", tmp_path / "missing.tsv")
    with pytest.raises(ProvenmlError, match=r"bad.tsv:1: expected 3 columns, got 2"):
        load_tsv(tmp_path / "train.tsv", tmp_path / "valid.tsv", tmp_path / "bad.tsv")
    with pytest.raises(ProvenmlError, match="entity 'zed' never appears in the training file"):
        load_tsv(tmp_path / "train.tsv", tmp_path / "valid.tsv", tmp_path / "unseen.tsv")


def _openke(folder: Path, entity_ids=(0, 1, 2), test="1\n2 0 0\n") -> None:
    ents = "".join(f"e{i}\t{i}\n" for i in entity_ids)
    _write(
        folder,
        {
            "entity2id.txt": f"{len(entity_ids)}\n{ents}",
            "relation2id.txt": "1\nr0\t0\n",
            "train2id.txt": "2\n0 1 0\n1 2 0\n",
            "valid2id.txt": "1\n0 2 0\n",
            "test2id.txt": test,
        },
    )


def test_load_openke_reads_head_tail_relation(tmp_path: Path) -> None:
    _openke(tmp_path)
    ds = load_openke(tmp_path)
    assert ds.train.tolist() == [[0, 0, 1], [1, 0, 2]]  # stored as (h, r, t)
    assert ds.entity_labels == ["e0", "e1", "e2"]


def test_load_openke_errors(tmp_path: Path) -> None:
    _openke(tmp_path, entity_ids=(1, 2, 3))
    with pytest.raises(ProvenmlError, match="ids must start at 0"):
        load_openke(tmp_path)
    _openke(tmp_path, entity_ids=(0, 1, 2, 3), test="1\n3 0 0\n")
    with pytest.raises(ProvenmlError, match="entity id 3 never appears in train2id"):
        load_openke(tmp_path)
    _openke(tmp_path, test="1\n2 0\n")
    with pytest.raises(ProvenmlError, match="expected 3 columns"):
        load_openke(tmp_path)
    with pytest.raises(ProvenmlError, match="folder not found"):
        load_openke(tmp_path / "nope")
