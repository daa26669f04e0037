"""Confidence intervals, tests and FLOP accounting against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats as sps

from provenml.core import ComputeLedger, count_flops, paired_test, summarize, welch_test


def test_summary_is_the_student_t_interval() -> None:
    values = [1.0, 2.0, 4.0]
    s = summarize(values)
    mean, sd = 7 / 3, math.sqrt(sum((v - 7 / 3) ** 2 for v in values) / 2)
    half = sps.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert s.mean == pytest.approx(mean)
    assert s.half_width == pytest.approx(half)
    assert math.isnan(summarize([1.0]).half_width)
    assert summarize([2.0, 2.0]).format() == "2.000 ± 0.000"


def test_one_sided_tests() -> None:
    assert paired_test([1, 2, 3], [2, 3, 4.5], "less") < 0.05
    assert paired_test([1, 2, 3], [2, 3, 4], "less") == 0.0  # constant difference, right sign
    assert paired_test([1, 2, 3], [0, 1, 2], "less") == 1.0
    assert welch_test([1, 1.1, 0.9], [5, 5.2, 4.8], "less") < 0.001
    assert welch_test([1, 1.1, 0.9], [5, 5.2, 4.8], "greater") > 0.99


def test_flops_are_measured_by_the_flop_counter() -> None:
    layer = torch.nn.Linear(8, 4, bias=False)
    x = torch.randn(16, 8)
    _, flops = count_flops(layer, x)
    assert flops == 2 * 16 * 8 * 4
    ledger = ComputeLedger()
    for _ in range(3):
        ledger.charge("fwd", layer, x, key="16x8")
    ledger.charge("other", layer, torch.randn(2, 8), key="2x8")
    assert ledger.flops["fwd"] == 3 * flops
    assert ledger.calls["fwd"] == 3
    assert ledger.total_flops == 3 * flops + 2 * 2 * 8 * 4


def test_ledger_seconds_are_the_clock_differences(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each charge adds (clock after - clock before) to its category; a timed block likewise."""
    from provenml.core import compute

    ticks = iter([10.0, 10.25, 20.0, 20.5, 30.0, 31.0])  # start/stop of each measured span
    monkeypatch.setattr(compute.time, "perf_counter", lambda: next(ticks))
    ledger = ComputeLedger()
    layer = torch.nn.Linear(2, 2)
    ledger.charge("fwd", layer, torch.randn(1, 2), key="a")  # first call: counted under the mode
    ledger.charge("fwd", layer, torch.randn(1, 2), key="a")  # later call: plain run
    with ledger.timed("io"):
        pass
    assert ledger.to_dict()["seconds"] == {"fwd": 0.25 + 0.5, "io": 1.0}


def test_intra_op_threads_sets_and_restores() -> None:
    from provenml.core import intra_op_threads

    before = torch.get_num_threads()
    with intra_op_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with intra_op_threads(None):
        assert torch.get_num_threads() == before
    with intra_op_threads(1, torch.device("cuda")):
        assert torch.get_num_threads() == before  # a GPU run keeps the CPU setting
