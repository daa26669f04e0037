"""Core helpers that systems used to rewrite: flat summaries, ledger copy / merge, presets
merged along the config class hierarchy, tables, the one atomic writer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from provenml.core import ComputeLedger, Config, Table, flatten_summary
from provenml.core.cache import write_json


def test_flatten_summary_joins_keys_and_converts_numbers() -> None:
    nested = {
        "loss": {"wsd": {"2T": np.float32(1.5), "4T": 1.25}, "cosine": torch.tensor(2.0)},
        "steps": 7,
        "ok": True,
    }
    assert flatten_summary(nested) == {
        "loss/wsd/2T": 1.5,
        "loss/wsd/4T": 1.25,
        "loss/cosine": 2.0,
        "steps": 7.0,
        "ok": 1.0,
    }
    with pytest.raises(TypeError, match="'a/b' is str"):
        flatten_summary({"a": {"b": "high"}})


def test_ledger_copy_is_independent_and_merge_adds_under_a_prefix() -> None:
    layer = torch.nn.Linear(4, 3, bias=False)
    x = torch.randn(5, 4)
    ledger = ComputeLedger()
    ledger.charge("ref", layer, x, key="5x4")
    twin = ledger.copy()
    twin.charge("ref", layer, x, key="5x4")  # a known key: charged without measuring again
    assert ledger.flops["ref"] == 2 * 5 * 4 * 3 and twin.flops["ref"] == 2 * ledger.flops["ref"]
    assert ledger.calls["ref"] == 1 and twin.calls["ref"] == 2
    run = ComputeLedger()
    run.merge(twin, prefix="learnability")
    run.merge(ledger.to_dict(), prefix="uniform")
    assert run.flops == {"learnability/ref": 240, "uniform/ref": 120}
    assert run.calls == {"learnability/ref": 2, "uniform/ref": 1}
    assert ComputeLedger.from_dict(run.to_dict()).to_dict() == run.to_dict()
    assert twin.flops_per_call() == {"ref": 120}


@dataclass
class BaseConfig(Config):
    steps: int = 100
    width: int = 64
    lr: float = 0.1
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"steps": 5, "width": 8},
        "paper": {"steps": 10_000},
    }


@dataclass
class WideConfig(BaseConfig):
    width: int = 256
    presets: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {"width": 16}}


@dataclass
class WiderConfig(WideConfig):  # no presets of its own
    lr: float = 0.05


def test_presets_merge_along_the_class_hierarchy() -> None:
    smoke = WideConfig.from_preset("smoke")
    assert (smoke.steps, smoke.width, smoke.lr) == (5, 16, 0.1)  # steps from the base preset
    assert WideConfig.from_preset("paper").steps == 10_000
    assert WideConfig.from_preset("small").width == 256
    wider = WiderConfig.from_preset("smoke", {"steps": "7"})
    assert (wider.steps, wider.width, wider.lr) == (7, 16, 0.05)
    assert BaseConfig.from_preset("smoke").width == 8  # a subclass never changes its base


def test_tables_check_their_shape_and_build_from_records() -> None:
    with pytest.raises(ValueError, match="row 0 has 1 cells for 2 columns"):
        Table("t", ["a", "b"], [[1]])
    table = Table.from_records("t", [{"model": "transe", "mrr": np.float64(0.25)}])
    assert table.to_dict() == {
        "title": "t",
        "columns": ["model", "mrr"],
        "rows": [["transe", 0.25]],
    }


def test_json_is_written_atomically_with_numpy_values(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    write_json(target, {"x": np.float32(0.5), "t": torch.tensor([1, 2]), "p": tmp_path})
    assert json.loads(target.read_text()) == {"x": 0.5, "t": [1, 2], "p": str(tmp_path)}
    assert list(tmp_path.iterdir()) == [target]
    assert target.stat().st_mode & 0o044  # readable by others, as plain files are
