"""Settling the tuner's near ties inside the whole graph (``api.settle_ties``, stop 46): which
candidates count as tied, that the build keeps the candidate the graph timed fastest (not the
fastest alone), that the pick is stored in the tuning cache for later builds, and that the
switch turns it off."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn as nn

import provenml.compiler as pc
import provenml.compiler.api as pc_api
import provenml.compiler.tune as pc_tune
from provenml.compiler.tune import MAX_TIES, TIE_MARGIN, near_ties


def test_near_ties_are_within_the_margin_fastest_first() -> None:
    ranked = [({"mr": k}, t) for k, t in enumerate([1.0, 1.01, 1.0 + TIE_MARGIN, 1.05, 1.06])]
    assert near_ties(ranked) == [{"mr": 0}, {"mr": 1}, {"mr": 2}]
    assert near_ties(ranked[3:]) == [{"mr": 3}, {"mr": 4}]  # 1.06 / 1.05 - 1 < 3%
    assert near_ties([({"mr": 0}, 1.0), ({"mr": 1}, 1.1)]) == [{"mr": 0}]
    many = [({"mr": k}, 1.0) for k in range(2 * MAX_TIES)]
    assert len(near_ties(many)) == MAX_TIES


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(32, 64)
        self.b = nn.Linear(64, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


def rigged_tuner(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Every candidate of every kernel times the same alone (so the first MAX_TIES tie), and
    in the graph the build with the *last* tied candidate is fastest. Returns the number of
    builds each settling timed."""
    timed: list[list[int]] = []

    def tune_node(g: Any, node: Any, layout: bool, *args: Any) -> Any:
        cands = pc_tune.candidates(*pc_tune.output_tiling(g, node))
        timings = {json.dumps(c): 1e-6 for c in cands}
        return pc_tune.best_schedule(g, node, timings, args[-1]), timings

    def in_graph(calls: list[Any], *args: Any, **kwargs: Any) -> list[float]:
        timed.append([len(calls)])
        return [1.0 - 0.1 * k for k in range(len(calls))]

    monkeypatch.setattr(pc_tune, "tune_node", tune_node)
    monkeypatch.setattr(pc_tune, "prebuild_candidates", lambda *args, **kwargs: None)
    monkeypatch.setattr(pc_api, "time_interleaved", in_graph)
    return timed


def schedules(compiled: Any) -> dict[str, dict[str, int]]:
    return {
        n.name: n.attrs["schedule"]
        for n in dict(compiled.stages)["tune"].nodes
        if "schedule" in n.attrs
    }


def test_the_build_keeps_the_candidate_the_graph_timed_fastest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timed = rigged_tuner(monkeypatch)
    model, x = TwoLayers().eval(), torch.randn(4, 32)
    compiled = pc.compile(model, (x,), threads=2, tune_threads=False, cache_dir=str(tmp_path))
    db = json.loads((tmp_path / "tuning.json").read_text())
    picked = schedules(compiled)
    assert len(picked) == 2 and len(db) == 2
    for entry in db.values():
        assert 2 <= len(entry["ties"]) <= MAX_TIES
        assert entry["settled"]["pool2"] == entry["ties"][-1]  # the graph's fastest
        assert entry["ties"][-1] != entry["best"]
    assert sorted(map(json.dumps, picked.values())) == sorted(
        json.dumps(e["ties"][-1]) for e in db.values()
    )
    assert sorted(t[0] for t in timed) == sorted(len(e["ties"]) for e in db.values())
    assert sum("settled in the graph" in line for line in compiled.tuning_log) == 2
    with torch.no_grad():
        np.testing.assert_allclose(compiled(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)

    # a rebuild (e.g. an ablation build) takes the settled picks from the cache, untimed
    again = pc.compile(model, (x,), threads=2, tune_threads=False, cache_dir=str(tmp_path))
    assert schedules(again) == picked and len(timed) == 2
    # another thread count settles anew (one thread: no balance scaling, so every
    # candidate ties alone and the first MAX_TIES are timed)
    pc.compile(model, (x,), threads=1, tune_threads=False, cache_dir=str(tmp_path))
    assert timed[2:] == [[MAX_TIES], [MAX_TIES]]
    db = json.loads((tmp_path / "tuning.json").read_text())
    assert sorted(k for e in db.values() for k in e["settled"]) == ["pool1"] * 2 + ["pool2"] * 2


def test_without_settling_the_fastest_alone_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timed = rigged_tuner(monkeypatch)
    model, x = TwoLayers().eval(), torch.randn(4, 32)
    compiled = pc.compile(
        model, (x,), threads=2, tune_threads=False, cache_dir=str(tmp_path), settle_ties=False
    )
    db = json.loads((tmp_path / "tuning.json").read_text())
    assert not timed and all("settled" not in e for e in db.values())
    assert sorted(map(json.dumps, schedules(compiled).values())) == sorted(
        json.dumps(e["best"]) for e in db.values()
    )


def test_a_kernel_with_a_small_share_is_not_timed_in_the_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timed = rigged_tuner(monkeypatch)
    model, x = TwoLayers().eval(), torch.randn(4, 32)
    monkeypatch.setattr(pc_api, "SETTLE_MIN_SHARE", 0.6)  # each of the two is half the time
    compiled = pc.compile(model, (x,), threads=2, tune_threads=False, cache_dir=str(tmp_path))
    db = json.loads((tmp_path / "tuning.json").read_text())
    assert not timed
    assert all(e["settled"]["pool2"] == e["best"] for e in db.values())
    assert sorted(map(json.dumps, schedules(compiled).values())) == sorted(
        json.dumps(e["best"]) for e in db.values()
    )


def test_settling_for_real_builds_exact_models(cache: str) -> None:
    """Unrigged: real timings in the graph, the result still exact."""
    model, x = TwoLayers().eval(), torch.randn(8, 32)
    compiled = pc.compile(model, (x,), threads=2, cache_dir=cache)
    assert compiled.graph.threads in (1, 2)
    with torch.no_grad():
        np.testing.assert_allclose(compiled(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)
    compiled.graph.park_workers()  # a no-op between calls, never an error
    with torch.no_grad():
        np.testing.assert_allclose(compiled(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)
