"""What is particular to the S7 reproductions (tests/test_contract.py runs every smoke preset
end to end and checks its claims): the regime checks in the summary, arms, seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from provenml.core import get_experiment, run_experiment
from provenml.errors import ProvenmlError
from provenml.ssl import DenseCL, SmallResNet, TwoViewAugment, multi_object_scenes, pretrain


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVENML_CACHE", str(tmp_path_factory.getbasetemp() / "ssl-cache"))


def test_transfer_summary_holds_the_regime_checks(tmp_path: Path) -> None:
    run_dir = run_experiment(
        get_experiment("ssl.dense_transfer"),
        scale="smoke",
        seeds=[0],
        out_root=tmp_path,
        device="cpu",
        overrides={"arms": "random,densecl"},
    )
    result = json.loads((run_dir / "result.json").read_text())
    summary = result["summary"]
    for key in (
        "regime/overlap_matched/densecl",
        "regime/overlap_chance/densecl",
        "regime/loss_fell/densecl",
        "regime/dense_loss_fell/densecl",
        "probe/random",
    ):
        assert key in summary
    assert {c["key"] for c in result["claims"]} == {"beat_random"}


def test_unknown_arm_fails_before_anything_trains(tmp_path: Path) -> None:
    with pytest.raises(Exception) as info:
        run_experiment(
            get_experiment("ssl.dense_transfer"),
            scale="smoke",
            seeds=[0],
            out_root=tmp_path,
            device="cpu",
            overrides={"arms": "random,byol"},
        )
    error = info.value
    while not isinstance(error, ProvenmlError) and error.__cause__ is not None:
        error = error.__cause__
    assert isinstance(error, ProvenmlError) and "byol" in str(error)


def test_pretraining_same_seed_same_numbers() -> None:
    images = multi_object_scenes(32, seed=0).images

    def run() -> tuple[list[float], torch.Tensor]:
        torch.manual_seed(0)
        model = DenseCL(SmallResNet((8, 8)), image_size=16, queue_size=16, dim=8, warmup_steps=1)
        history = pretrain(model, images, steps=3, batch_size=8, augment=TwoViewAugment(16), seed=4)
        return history.loss, next(model.backbone.parameters()).detach().clone()

    (losses_a, weights_a), (losses_b, weights_b) = run(), run()
    assert losses_a == losses_b and torch.equal(weights_a, weights_b)


@pytest.mark.parametrize(("batch_size", "expected"), [(8, 0.03 * 8 / 256), (16, 0.03 * 16 / 256)])
def test_default_learning_rate_scales_mocov2s_linearly(batch_size: int, expected: float) -> None:
    images = multi_object_scenes(32, seed=0).images
    model = DenseCL(SmallResNet((8, 8)), image_size=16, queue_size=16, dim=8)
    history = pretrain(model, images, steps=2, batch_size=batch_size, augment=TwoViewAugment(16))
    assert history.lr[0] == pytest.approx(expected)
