"""Schedule values at phase boundaries, exact minima at checkpoints, exact resume, properties."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from provenml.schedules import WSD, WSDS, CyclicCosine, WarmupCosine, decay_factor

PEAK = 2.0


def _optimizer(lr: float = PEAK) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def _rates(make, steps: int, peak: float = PEAK) -> list[float]:
    """The rate used by each of the first ``steps`` optimizer updates."""
    opt = _optimizer(peak)
    sched = make(opt)
    rates = []
    for _ in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return rates


def test_wsd_phase_boundaries_match_hand_computed_values() -> None:
    # total 100, warmup 10, decay 20 steps (80..99), min ratio 0.1, peak 2.0
    rates = _rates(lambda o: WSD(o, 100, 10, decay_fraction=0.2, min_lr_ratio=0.1), 102)
    assert rates[0] == pytest.approx(PEAK * 1 / 10)
    assert rates[9] == pytest.approx(PEAK)
    assert rates[10] == pytest.approx(PEAK)
    assert rates[79] == pytest.approx(PEAK)
    assert rates[80] == pytest.approx(PEAK * (1 - 0.9 * 1 / 20))
    assert rates[89] == pytest.approx(PEAK * (1 - 0.9 * 10 / 20))
    assert rates[99] == pytest.approx(PEAK * 0.1)
    assert rates[100] == rates[101] == pytest.approx(PEAK * 0.1)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("linear", 1 - 0.9 * 0.5),
        ("cosine", 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))),
        ("1-sqrt", 1 - 0.9 * math.sqrt(0.5)),
        ("inverse", 1 / (0.5 * (1 / 0.1 - 1) + 1)),
    ],
)
def test_decay_shapes_midpoint_and_ends(shape: str, expected: float) -> None:
    assert decay_factor(0.0, shape, 0.1) == pytest.approx(1.0)
    assert decay_factor(0.5, shape, 0.1) == pytest.approx(expected)
    assert decay_factor(1.0, shape, 0.1) == pytest.approx(0.1)


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt", "inverse"])
def test_wsds_reaches_min_exactly_at_every_checkpoint_then_returns_to_peak(shape: str) -> None:
    budgets = [50, 120, 300]
    rates = _rates(
        lambda o: WSDS(
            o, budgets, warmup_steps=5, decay_fraction=0.2, decay_shape=shape, min_lr_ratio=0.05
        ),
        301,
    )
    for budget in budgets:
        assert rates[budget - 1] == PEAK * 0.05  # exact, not approximately
    for budget in budgets[:-1]:
        assert rates[budget] == PEAK  # no re-warmup
    # the decay before 120 takes 20% of the stretch [50, 120): 14 steps from 106
    assert rates[105] == PEAK
    assert rates[106] < PEAK


def test_wsds_checkpoint_steps_and_validation() -> None:
    sched = WSDS(_optimizer(), [10, 20], decay_fraction=0.5)
    assert sched.checkpoint_steps == [10, 20]
    with pytest.raises(ValueError, match="strictly increasing"):
        WSDS(_optimizer(), [20, 10])
    with pytest.raises(ValueError, match="warmup_steps"):
        WSDS(_optimizer(), [10, 20], warmup_steps=9, decay_fraction=0.5)
    with pytest.raises(ValueError, match="unknown decay shape"):
        WSD(_optimizer(), 100, decay_shape="exp")  # type: ignore[arg-type]


def test_cyclic_cosine_and_warmup_cosine_hit_min_at_budget_ends() -> None:
    rates = _rates(
        lambda o: CyclicCosine(o, [40, 100], warmup_steps=4, rewarmup_steps=6, min_lr_ratio=0.1),
        100,
    )
    assert rates[3] == pytest.approx(PEAK)
    assert rates[39] == pytest.approx(PEAK * 0.1)
    assert rates[40] == pytest.approx(PEAK * (0.1 + 0.9 / 6))  # re-warmup from the minimum
    assert rates[45] == pytest.approx(PEAK)
    assert rates[99] == pytest.approx(PEAK * 0.1)
    cosine = _rates(lambda o: WarmupCosine(o, 60, warmup_steps=6, min_lr_ratio=0.0), 60)
    assert cosine[5] == pytest.approx(PEAK)
    assert cosine[59] == pytest.approx(0.0)
    assert cosine[32] == pytest.approx(PEAK * 0.5 * (1 + math.cos(math.pi * 27 / 54)))


SCHEDULES = {
    "wsd": lambda o: WSD(o, 100, 10, decay_fraction=0.3, decay_shape="cosine"),
    "wsds": lambda o: WSDS(o, [40, 100], 10, decay_fraction=0.25, decay_shape="1-sqrt"),
    "cyclic": lambda o: CyclicCosine(o, [40, 100], 10, 5),
    "cosine": lambda o: WarmupCosine(o, 100, 10),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
@pytest.mark.parametrize("resume_at", [4, 30, 38, 41, 80, 95])  # warmup, stable, decay, re-warmup
def test_state_dict_resumes_exactly(name: str, resume_at: int) -> None:
    make = SCHEDULES[name]
    expected = _rates(make, 100)
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=PEAK)
    sched = make(opt)
    for _ in range(resume_at):
        opt.step()
        sched.step()
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()

    fresh_model = torch.nn.Linear(2, 1)
    fresh_opt = torch.optim.AdamW(fresh_model.parameters(), lr=PEAK)
    fresh_sched = make(fresh_opt)
    fresh_sched.load_state_dict(saved_sched)  # the rate is right even before the optimizer loads
    assert fresh_opt.param_groups[0]["lr"] == pytest.approx(expected[resume_at])
    fresh_opt.load_state_dict(saved_opt)
    resumed = []
    for _ in range(resume_at, 100):
        resumed.append(fresh_opt.param_groups[0]["lr"])
        fresh_opt.step()
        fresh_sched.step()
    assert resumed == pytest.approx(expected[resume_at:])


def test_wsd_branch_forked_with_last_epoch_continues_the_main_branch() -> None:
    main_opt = _optimizer()
    main = WSD(main_opt, 1000, 10)  # stays at the peak up to 900
    for _ in range(60):
        main_opt.step()
        main.step()
    branch_opt = _optimizer()
    branch_opt.load_state_dict(main_opt.state_dict())
    branch = WSD(branch_opt, total_steps=75, warmup_steps=10, decay_fraction=0.2, last_epoch=59)
    assert branch.last_epoch == 60
    assert branch_opt.param_groups[0]["lr"] == pytest.approx(PEAK * (1 - 0.9 / 15))


@settings(max_examples=60, deadline=None)
@given(
    total=st.integers(20, 400),
    warmup_frac=st.floats(0.0, 0.3),
    decay_fraction=st.floats(0.05, 0.6),
    min_ratio=st.floats(0.01, 1.0),
    shape=st.sampled_from(["linear", "cosine", "1-sqrt", "inverse"]),
)
def test_wsd_rate_bounded_and_monotone_within_phases(
    total: int, warmup_frac: float, decay_fraction: float, min_ratio: float, shape: str
) -> None:
    warmup = int(warmup_frac * total * (1 - decay_fraction))
    rates = _rates(
        lambda o: WSD(o, total, warmup, decay_fraction, shape, min_ratio),  # type: ignore[arg-type]
        total,
        peak=1.0,
    )
    eps = 1e-12
    assert all(0 < r <= 1 + eps for r in rates)
    assert all(r >= min_ratio - eps for r in rates[warmup:])
    warm, decay_start = rates[:warmup], total - max(1, round(decay_fraction * total))
    assert all(a <= b + eps for a, b in itertools.pairwise(warm))
    assert all(r == 1.0 for r in rates[warmup:decay_start])
    decay = rates[decay_start:]
    assert all(a >= b - eps for a, b in itertools.pairwise(decay))
    assert rates[-1] == pytest.approx(min_ratio)


@settings(max_examples=40, deadline=None)
@given(
    gaps=st.lists(st.integers(10, 80), min_size=1, max_size=4),
    decay_fraction=st.floats(0.05, 0.5),
    min_ratio=st.floats(0.0, 0.9),
)
def test_wsds_rate_bounded_and_min_at_each_budget(
    gaps: list[int], decay_fraction: float, min_ratio: float
) -> None:
    budgets = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    rates = _rates(
        lambda o: WSDS(o, budgets, 0, decay_fraction, "linear", min_ratio), budgets[-1], peak=1.0
    )
    assert all(min_ratio - 1e-12 <= r <= 1.0 for r in rates)
    for budget in budgets:
        assert rates[budget - 1] == pytest.approx(min_ratio)
