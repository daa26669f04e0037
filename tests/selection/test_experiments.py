"""Each reproduction's smoke preset runs end to end and produces its claims and plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from provenml.core import get_experiment, run_experiment
from provenml.selection.data import symmetric_label_noise
from provenml.selection.runner import ArmRun


def _run(name: str, tmp_path: Path) -> dict:
    run_dir = run_experiment(
        get_experiment(name), scale="smoke", seeds=[0], out_root=tmp_path, device="cpu"
    )
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "complete"
    assert list(run_dir.glob("*.png"))
    return result


def test_noisy_labels_smoke(tmp_path: Path) -> None:
    result = _run("selection.noisy_labels", tmp_path)
    keys = {c["key"] for c in result["claims"]}
    assert keys == {"fewer_updates", "less_compute", "rho_loss_costs_more", "ablations_worse"}
    for claim in result["claims"]:
        assert claim["verdict"] in ("holds", "fails")
    summary = result["summary"]
    # uniform draws noisy labels at about the pool's rate; selection arms report theirs
    assert 0.15 < summary["noisy_fraction/uniform"] < 0.45
    seed = json.loads(next(tmp_path.glob("*/seed-0/result.json")).read_text())
    compute = seed["compute"]
    # every category of every arm is in the run's ledger, and the total is their sum
    assert compute["total_flops"] == sum(compute["flops"].values())
    assert compute["flops"]["learnability/scoring:actor"] > 0
    assert compute["flops"]["rho_loss/scoring:learner"] > 0
    assert "uniform/scoring:actor" not in compute["flops"]
    for arm, run in seed["data"]["runs"].items():
        assert run["compute"]["total_flops"] == sum(run["compute"]["flops"].values()), arm


@pytest.mark.parametrize("name", ["selection.scorer_size", "selection.clean_control"])
def test_other_reproductions_smoke(name: str, tmp_path: Path) -> None:
    result = _run(name, tmp_path)
    assert result["claims"]


def test_symmetric_label_noise_flips_exactly_the_fraction() -> None:
    labels = torch.arange(1000) % 10
    noisy, is_noisy = symmetric_label_noise(labels, 0.3, 10, torch.Generator().manual_seed(0))
    assert int(is_noisy.sum()) == 300
    assert torch.equal(noisy != labels, is_noisy)  # a flipped label never stays the same


def test_first_reach_uses_the_smoothed_curve() -> None:
    run = ArmRun("x", steps=[10, 20, 30, 40], accuracy=[0.5, 0.9, 0.5, 0.9], flops=[1, 2, 3, 4])
    # trailing means over 2 evaluations: 0.5, 0.7, 0.7, 0.7
    assert run.first_reach(0.7, 2) == (20.0, 2.0, True)
    assert run.first_reach(0.8, 2) == (40.0, 4.0, False)
