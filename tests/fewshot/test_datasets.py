"""The scarce-source benchmark generator: splits, clean counts, nested web pools at rho,
distractors never from target classes, offline generation, same seed same data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from provenml.errors import ProvenmlError
from provenml.fewshot import make_benchmark
from provenml.fewshot.datasets import (
    CLEAN,
    DISTRACTOR,
    NOISE,
    OTHER_CLASS,
    RELEVANT,
    random_templates,
)

SMALL = {
    "num_source": 6,
    "num_val": 3,
    "num_target": 4,
    "clean_per_class": (3, 5),
    "eval_per_class": 20,
    "web_per_class": 10,
    "num_distractors": 4,
}


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A fresh cache, and mnist1d's downloading get_dataset made to fail if ever called."""
    import mnist1d.data

    monkeypatch.setenv("PROVENML_CACHE", str(tmp_path))

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("get_dataset (which downloads) must not be called")

    monkeypatch.setattr(mnist1d.data, "get_dataset", no_download)


def test_benchmark_splits_counts_and_web_pools(offline: None) -> None:
    bench = make_benchmark(seed=0, **SMALL)
    source, val, target = bench.source_classes, bench.val_classes, bench.target_classes
    assert (len(source), len(val), len(target)) == (6, 3, 4)
    assert len(set(source.tolist()) | set(val.tolist()) | set(target.tolist())) == 13
    counts = torch.bincount(bench.labels[bench.clean_source])[source]
    assert counts.min() >= 3 and counts.max() <= 5
    assert (bench.kind[bench.clean_source] == CLEAN).all()
    assert torch.bincount(bench.labels[bench.target])[target].tolist() == [20] * 4
    assert bench.x.shape[1] == 40 and torch.isfinite(bench.x).all()
    relevant_sets = {}
    for rho, pool in bench.web.items():
        assert torch.isin(bench.labels[pool], source).all()  # labelled with a source class
        per_class = torch.bincount(bench.labels[pool])[source]
        assert per_class.tolist() == [10] * 6
        relevant = bench.relevant(pool)
        assert relevant.float().mean().item() == pytest.approx(1 - rho, abs=0.01)
        assert (bench.kind[pool][relevant] == RELEVANT).all()
        kinds = set(bench.kind[pool][~relevant].tolist())
        assert kinds <= {OTHER_CLASS, DISTRACTOR, NOISE}
        # nothing in a web pool comes from a target class
        assert not torch.isin(bench.true_labels[pool], target).any()
        relevant_sets[rho] = set(pool[relevant].tolist())
    assert relevant_sets[0.7] <= relevant_sets[0.5] <= relevant_sets[0.3]  # nested pools


def test_distractor_templates_keep_away_from_every_class() -> None:
    rng = np.random.default_rng(0)
    classes, gap = random_templates(20, rng, smoothness=1.5)
    distractors, _ = random_templates(10, rng, 1.5, avoid=classes, min_distance=gap)
    distances = np.linalg.norm(distractors[:, None] - classes[None], axis=-1)
    assert distances.min() >= gap
    within = np.linalg.norm(classes[:, None] - classes[None], axis=-1)[np.triu_indices(20, 1)]
    assert within.min() >= gap


def test_same_seed_same_benchmark(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    benches = []
    for folder in ("a", "b"):  # separate caches: generated twice, not read back
        monkeypatch.setenv("PROVENML_CACHE", str(tmp_path / folder))
        benches.append(make_benchmark(seed=4, **SMALL))
    assert torch.equal(benches[0].x, benches[1].x)
    assert torch.equal(benches[0].labels, benches[1].labels)
    monkeypatch.setenv("PROVENML_CACHE", str(tmp_path / "a"))
    other = make_benchmark(seed=5, **SMALL)
    assert not torch.equal(other.source_classes, benches[0].source_classes) or not torch.equal(
        other.x[: len(benches[0].x)], benches[0].x[: len(other.x)]
    )


def test_bad_benchmark_fields_are_clear_errors() -> None:
    with pytest.raises(ProvenmlError, match="clean_per_class"):
        make_benchmark(clean_per_class=(5, 2))
    with pytest.raises(ProvenmlError, match="unknown benchmark fields"):
        make_benchmark(num_sources=3)
    with pytest.raises(ProvenmlError, match="rho"):
        make_benchmark(rhos=(1.5,))
