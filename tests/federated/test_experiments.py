"""Checks particular to the federated experiments, on their shared smoke runs."""

from __future__ import annotations

import pytest

from provenml.core.config import check_config
from provenml.core.testing import smoke_run
from provenml.errors import ProvenmlError
from provenml.federated.engine import ARMS
from provenml.federated.experiments import (
    FaultsConfig,
    LongTailConfig,
    _arm_parts,
    _unit_cost,
    injected_failures,
)


def test_longtail_counts_teacher_compute_on_clients_only_for_clip2fl() -> None:
    summary = smoke_run("federated.longtail").result["summary"]
    assert summary["compute/clip2fl/client_teacher_gflops_per_round"] > 0
    for arm in ("fedavg", "fedprox", "full", "pretrain_only", "align_only"):
        assert summary[f"compute/{arm}/client_teacher_gflops_per_round"] == 0
    # stage 3 runs on the server only for the arms that align
    assert summary["compute/full/server_gflops_per_round"] > 0
    assert summary["compute/align_only/server_gflops_per_round"] > 0
    assert summary["compute/fedavg/server_gflops_per_round"] == 0
    # the same model goes down and up: bytes per round are equal for every arm without failures
    assert summary["compute/full/mbytes_per_round"] == summary["compute/fedavg/mbytes_per_round"]


def test_longtail_reports_reference_rows() -> None:
    summary = smoke_run("federated.longtail").result["summary"]
    for reference in ("teacher", "pretrained"):
        for split in ("balanced", "many", "medium", "few"):
            assert f"reference/{reference}/{split}" in summary
    assert 0.0 < summary["caption_error_rate"] < 0.5


def test_faults_counts_every_injected_failure() -> None:
    result = smoke_run("federated.faults").result
    summary = result["summary"]
    # smoke: 2 rounds, 2 clients sampled per round, half of them fail; mixed: one of the two
    # failures times out (round 1 for seed 0), the other raises
    assert summary["sampled_updates"] == 4
    assert summary["failed_updates"] == 2
    assert summary["raised_updates"] == 1 and summary["timed_out_updates"] == 1
    assert injected_failures(FaultsConfig.from_preset("smoke"), seed=0) == {
        "raise": 1,
        "timeout": 1,
    }
    assert result["claims"][0]["precondition"]["satisfied"]  # each counted as its kind


def test_faults_small_preset_mixes_raising_and_timing_out() -> None:
    cfg = FaultsConfig()
    assert (cfg.failure_mode, cfg.engine) == ("mixed", "flower")
    injected = injected_failures(cfg, seed=0)  # 20% of 10 sampled: one of each kind per round
    assert injected == {"raise": cfg.rounds, "timeout": cfg.rounds}
    assert cfg.settings().round_timeout == cfg.round_timeout


def test_bad_config_gives_one_clear_error() -> None:
    with pytest.raises(ProvenmlError, match="engine must be one of"):
        LongTailConfig(engine="spark").settings()
    with pytest.raises(ProvenmlError, match="unknown arm"):
        LongTailConfig(arms=("fedavgg",)).settings()
    with pytest.raises(ProvenmlError, match="alpha must be a positive number"):
        LongTailConfig(alpha=0.0).settings()
    bad_mode = FaultsConfig(failure_mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ProvenmlError, match="failure_mode must be one of raise, timeout, mixed"):
        check_config(bad_mode)
    with pytest.raises(ProvenmlError, match="failure_mode must be one of raise, timeout, mixed"):
        bad_mode.settings()
    with pytest.raises(ProvenmlError, match="round_timeout must be a positive number"):
        FaultsConfig(round_timeout=-1.0).settings()


@pytest.mark.parametrize("n_parts", [1, 2, 3, 7])
def test_longtail_parts_cover_every_arm_once_costliest_first(n_parts: int) -> None:
    cfg = LongTailConfig(arm_parts=n_parts)
    parts = [p["arms"] for p in _arm_parts(cfg)]
    assert sorted(a for p in parts for a in p) == sorted(cfg.arms)
    costs = [_unit_cost(p) for p in parts]
    assert costs == sorted(costs, reverse=True)
    for part in parts:  # stage 1 is computed once per part: its arms share one
        assert all(a in part for a in cfg.arms if ARMS.get(a).pretrain) or not any(
            ARMS.get(a).pretrain for a in part
        )
        for arm in part:  # an arm sharing another's training is in its part
            assert ARMS.get(arm).trains_like in (None, *part)
    if n_parts == 2:  # the two parts of the small run are within one FedAvg run of each other
        assert costs[0] - costs[1] <= 1.0
