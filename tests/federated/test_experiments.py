"""Checks particular to the federated experiments, on their shared smoke runs."""

from __future__ import annotations

import pytest

from provenml.core.testing import smoke_run
from provenml.errors import ProvenmlError
from provenml.federated.experiments import LongTailConfig


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
    # smoke: 2 rounds, 2 clients sampled per round, half of them fail
    assert summary["sampled_updates"] == 4
    assert summary["failed_updates"] == 2


def test_bad_config_gives_one_clear_error() -> None:
    with pytest.raises(ProvenmlError, match="engine must be one of"):
        LongTailConfig(engine="spark").settings()
    with pytest.raises(ProvenmlError, match="unknown arm"):
        LongTailConfig(arms=("fedavgg",)).settings()
    with pytest.raises(ProvenmlError, match="alpha must be a positive number"):
        LongTailConfig(alpha=0.0).settings()
