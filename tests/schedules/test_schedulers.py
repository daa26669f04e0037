"""Schedule values at phase boundaries, exact minima at checkpoints, exact resume, properties."""

from __future__ import annotations

import itertools
import math
import re
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from provenml.errors import ProvenmlError
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
    with pytest.raises(ProvenmlError, match="strictly increasing"):
        WSDS(_optimizer(), [20, 10])
    with pytest.raises(ProvenmlError, match="warmup_steps"):
        WSDS(_optimizer(), [10, 20], warmup_steps=9, decay_fraction=0.5)
    with pytest.raises(ProvenmlError, match="unknown decay shape"):
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


# --------------------------------------------------------------------------------------------
# The oracle pinned to PyTorch's own warmup-cosine composition
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "warmup", "min_ratio", "peak"),
    [(1380, 15, 0.1, 2e-3), (300, 15, 0.1, 4e-3), (4600, 50, 0.1, 8e-3), (97, 3, 0.0, 1.0)],
)
def test_warmup_cosine_equals_pytorch_sequential_lr(
    total: int, warmup: int, min_ratio: float, peak: float
) -> None:
    from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

    ours = _rates(lambda o: WarmupCosine(o, total, warmup, min_ratio), total, peak=peak)

    def pytorch(o: torch.optim.Optimizer) -> SequentialLR:
        ramp = LinearLR(o, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1)
        cosine = CosineAnnealingLR(o, T_max=total - warmup, eta_min=min_ratio * peak)
        return SequentialLR(o, [ramp, cosine], milestones=[warmup - 1])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR's own deprecation notices
        theirs = _rates(pytorch, total, peak=peak)
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-15)
    assert ours[warmup - 1] == peak and ours[-1] == min_ratio * peak


# --------------------------------------------------------------------------------------------
# Bad input: one ProvenmlError naming the argument, before anything is built
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "argument"),
    [
        (lambda o: WSDS(o, [100, 200], warmup_steps=-5), "warmup_steps"),
        (lambda o: WSD(o, total_steps=100.7), "total_steps"),  # type: ignore[arg-type]
        (lambda o: WSD(o, total_steps=0), "total_steps"),
        (lambda o: WSD(o, 100, warmup_steps=2.5), "warmup_steps"),  # type: ignore[arg-type]
        (lambda o: WSD(o, 100, decay_fraction=0.0), "decay_fraction"),
        (lambda o: WSD(o, 100, decay_fraction=1.5), "decay_fraction"),
        (lambda o: WSD(o, 100, decay_fraction="0.2"), "decay_fraction"),  # type: ignore[arg-type]
        (lambda o: WSD(o, 100, min_lr_ratio=-0.1), "min_lr_ratio"),
        (lambda o: WSD(o, 100, min_lr_ratio=float("nan")), "min_lr_ratio"),
        (lambda o: WSD(o, 100, decay_shape="inverse", min_lr_ratio=0.0), "min_lr_ratio"),
        (lambda o: WSD(o, 100, last_epoch=-3), "last_epoch"),
        (lambda o: WSD("adam", 100), "optimizer"),  # type: ignore[arg-type]
        (lambda o: WSDS(o, []), "budgets"),
        (lambda o: WSDS(o, 300), "budgets"),  # type: ignore[arg-type]
        (lambda o: WSDS(o, [100, 150.5]), "budgets[1]"),  # type: ignore[list-item]
        (lambda o: WSDS(o, [0, 100]), "budgets"),
        (lambda o: WSDS(o, [100, 200], decay_shape="exp"), "decay shape"),  # type: ignore[arg-type]
        (lambda o: CyclicCosine(o, [40, 100], warmup_steps=-1), "warmup_steps"),
        (lambda o: CyclicCosine(o, [40, 100], rewarmup_steps=60), "rewarmup_steps"),
        (lambda o: CyclicCosine(o, [40, 100], min_lr_ratio=2.0), "min_lr_ratio"),
        (lambda o: WarmupCosine(o, total_steps=-10), "total_steps"),
        (lambda o: WarmupCosine(o, 100, warmup_steps=100), "warmup_steps"),
        (lambda o: decay_factor(0.5, "linear", 1.5), "min_ratio"),
        (lambda o: decay_factor(None, "linear", 0.1), "progress"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_are_refused_by_name(build, argument: str) -> None:
    with pytest.raises(ProvenmlError, match=re.escape(argument)):
        build(_optimizer())


BAD_INTEGERS = st.one_of(
    st.integers(max_value=-1),
    st.floats(allow_nan=True, allow_infinity=True),  # a float is not a step count, even 100.0
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)

#: Every integer argument of every public constructor, with valid values for the others.
INTEGER_ARGUMENTS = {
    "WSD.total_steps": lambda o, v: WSD(o, total_steps=v),
    "WSD.warmup_steps": lambda o, v: WSD(o, 100, warmup_steps=v),
    "WSD.last_epoch": lambda o, v: WSD(o, 100, last_epoch=v if v != -1 else -2),
    "WSDS.budgets": lambda o, v: WSDS(o, [100, v]),
    "WSDS.warmup_steps": lambda o, v: WSDS(o, [100, 200], warmup_steps=v),
    "CyclicCosine.warmup_steps": lambda o, v: CyclicCosine(o, [100, 200], warmup_steps=v),
    "CyclicCosine.rewarmup_steps": lambda o, v: CyclicCosine(o, [100, 200], rewarmup_steps=v),
    "WarmupCosine.total_steps": lambda o, v: WarmupCosine(o, total_steps=v),
    "WarmupCosine.warmup_steps": lambda o, v: WarmupCosine(o, 100, warmup_steps=v),
}


@settings(max_examples=150, deadline=None)
@given(argument=st.sampled_from(sorted(INTEGER_ARGUMENTS)), value=BAD_INTEGERS)
def test_any_bad_step_count_is_one_provenml_error_naming_it(argument: str, value: object) -> None:
    name = argument.split(".")[1]
    with pytest.raises(ProvenmlError, match=re.escape(name)):
        INTEGER_ARGUMENTS[argument](_optimizer(), value)


#: Every ratio / fraction argument, with valid values for the others.
RATIO_ARGUMENTS = {
    "WSD.decay_fraction": (lambda o, v: WSD(o, 100, decay_fraction=v), False),
    "WSD.min_lr_ratio": (lambda o, v: WSD(o, 100, min_lr_ratio=v), True),
    "WSDS.decay_fraction": (lambda o, v: WSDS(o, [100, 200], decay_fraction=v), False),
    "WSDS.min_lr_ratio": (lambda o, v: WSDS(o, [100, 200], min_lr_ratio=v), True),
    "CyclicCosine.min_lr_ratio": (lambda o, v: CyclicCosine(o, [100, 200], min_lr_ratio=v), True),
    "WarmupCosine.min_lr_ratio": (lambda o, v: WarmupCosine(o, 100, min_lr_ratio=v), True),
}


@settings(max_examples=150, deadline=None)
@given(
    argument=st.sampled_from(sorted(RATIO_ARGUMENTS)),
    value=st.one_of(
        st.floats(max_value=-1e-9),
        st.floats(min_value=1.0 + 1e-9),
        st.just(float("nan")),
        st.booleans(),
        st.text(max_size=3),
        st.none(),
    ),
)
def test_any_bad_ratio_is_one_provenml_error_naming_it(argument: str, value: object) -> None:
    build, _ = RATIO_ARGUMENTS[argument]
    with pytest.raises(ProvenmlError, match=re.escape(argument.split(".")[1])):
        build(_optimizer(), value)


@pytest.mark.parametrize("argument", sorted(RATIO_ARGUMENTS))
def test_ratio_edges(argument: str) -> None:
    build, zero_allowed = RATIO_ARGUMENTS[argument]
    build(_optimizer(), 1.0)  # both ends of [0, 1] / (0, 1] at the top
    if zero_allowed:
        build(_optimizer(), 0.0)
    else:
        with pytest.raises(ProvenmlError, match=argument.split(".")[1]):
            build(_optimizer(), 0.0)


def test_numpy_integers_are_step_counts() -> None:
    np = pytest.importorskip("numpy")
    sched = WSDS(_optimizer(), np.array([10, 20]), warmup_steps=np.int64(2))
    assert sched.budgets == [10, 20] and sched.warmup_steps == 2


# --------------------------------------------------------------------------------------------
# The documented code runs as documented
# --------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def _python_block(path: Path, heading: str) -> str:
    """The first ```python block after ``heading`` in ``path``."""
    text = path.read_text()
    start = text.index("```python", text.index(heading)) + len("```python")
    return text[start : text.index("```", start)]


def test_docs_wsd_branch_recipe_runs_without_initial_lr() -> None:
    torch.manual_seed(0)
    namespace: dict = {}
    exec(_python_block(ROOT / "docs/schedules.md", "### Branching a WSD decay"), namespace)
    rates = namespace["branch_rates"]
    assert len(rates) == 150
    assert rates[0] == pytest.approx(1e-3 * (1 - 0.9 / 150))
    assert rates[-1] == pytest.approx(1e-4)
    # the main branch had no scheduler: its optimizer has no initial_lr, the branch took lr
    assert "initial_lr" not in namespace["optimizer"].param_groups[0]


def test_a_branch_from_a_scheduled_main_branch_keeps_its_peak() -> None:
    main_opt = _optimizer(lr=0.5)
    warmup = torch.optim.lr_scheduler.LambdaLR(main_opt, lambda t: min(1.0, (t + 1) / 10))
    for _ in range(5):  # mid-warmup: lr is 0.3, the peak (initial_lr) 0.5
        main_opt.step()
        warmup.step()
    branch_opt = _optimizer(lr=0.5)
    branch_opt.load_state_dict(main_opt.state_dict())
    branch = WSD(branch_opt, 100, warmup_steps=10, last_epoch=4)
    assert branch.base_lrs == [0.5]
    assert branch_opt.param_groups[0]["lr"] == pytest.approx(0.5 * 6 / 10)


def test_readme_example_checkpoints_ran_at_the_minimum(tmp_path: Path, monkeypatch) -> None:
    code = _python_block(ROOT / "README.md", "## WSD-S in your own loop")
    for long, short in (("4000", "400"), ("2000", "200"), ("1000", "100"), ("=50", "=5")):
        assert long in code, long
        code = code.replace(long, short)  # the README's example with its budgets divided by 10
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    exec(code, {})
    peak, minimum = 3e-3, 3e-4
    for budget in (100, 200, 400):
        saved = torch.load(tmp_path / f"{budget}.pt")
        assert saved["lr"] == pytest.approx(minimum)  # the update that made it ran at the minimum
        after = saved["sched"]["_last_lr"][0]  # and the scheduler has moved on
        assert after == pytest.approx(minimum if budget == 400 else peak)


def test_decay_shapes_and_models_are_found_by_name_with_suggestions() -> None:
    from provenml.schedules.lm import build_model
    from provenml.schedules.schedulers import DECAY_SHAPES, decay_factor

    assert DECAY_SHAPES == ("linear", "cosine", "1-sqrt", "inverse")
    # the formulas by hand at p = 0.25, r = 0.1
    assert decay_factor(0.25, "linear", 0.1) == pytest.approx(1 - 0.9 * 0.25)
    assert decay_factor(0.25, "cosine", 0.1) == pytest.approx(0.1 + 0.9 * (1 + 2**-0.5) / 2)
    assert decay_factor(0.25, "1-sqrt", 0.1) == pytest.approx(1 - 0.9 * 0.5)
    assert decay_factor(0.25, "inverse", 0.1) == pytest.approx(1 / (0.25 * 9 + 1))
    with pytest.raises(ProvenmlError, match=r"unknown decay shape 'cosin'; did you mean cosine"):
        decay_factor(0.5, "cosin", 0.1)
    with pytest.raises(ProvenmlError, match="unknown decay shape 'Linear'"):  # exact names
        decay_factor(0.5, "Linear", 0.1)
    with pytest.raises(
        ProvenmlError, match=r"unknown model 'transformr'; did you mean transformer"
    ):
        build_model("transformr")
