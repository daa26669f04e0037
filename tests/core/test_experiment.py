"""Registry, presets, --set parsing and claim verdicts."""

from __future__ import annotations

import math

import pytest

from provenml.core import Claim, ProvenmlError, get_experiment, registry
from provenml.core.experiment import Result, parse_value
from provenml.core.run import aggregate_claims


def test_registry_finds_the_systems_experiments() -> None:
    names = registry()
    assert {"wsd.multibudget", "wsd.river_valley", "wsd.lr_sweep", "toy.harness"} <= set(names)
    spec = names["wsd.multibudget"]
    assert spec.system == "S3" and spec.time["small"]


def test_unknown_experiment_suggests_close_names() -> None:
    with pytest.raises(ProvenmlError, match=r"did you mean wsd\.multibudget"):
        get_experiment("wsd.multibudge")


def test_presets_and_overrides() -> None:
    spec = get_experiment("toy.harness")
    assert spec.config.from_preset("smoke").steps == 3
    assert spec.config.from_preset("small").steps == 5
    cfg = spec.config.from_preset(
        "small",
        {
            "steps": "9",
            "rate": "1e-3",
            "widths": "4,8",
            "flag": "yes",
            "limit": "none",
            "mode": "crash",
        },
    )
    assert (cfg.steps, cfg.rate, cfg.widths, cfg.flag, cfg.limit, cfg.mode) == (
        9,
        1e-3,
        (4, 8),
        True,
        None,
        "crash",
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stepz": "3"}, "unknown --set key 'stepz'.*did you mean steps"),
        ({"steps": "three"}, "steps must be an integer"),
        ({"rate": "fast"}, "rate must be a number"),
        ({"flag": "maybe"}, "flag must be a boolean"),
        ({"mode": "sideways"}, "mode must be one of ok, crash, interrupt"),
    ],
)
def test_bad_overrides_are_one_clear_error(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ProvenmlError, match=message):
        get_experiment("toy.harness").config.from_preset("small", overrides)


def test_unknown_scale() -> None:
    with pytest.raises(ProvenmlError, match="unknown scale"):
        get_experiment("toy.harness").config.from_preset("huge")


def test_parse_value_int_is_not_float() -> None:
    with pytest.raises(ProvenmlError):
        parse_value("1.5", int, "n")


def _claim(ours, base, comparison="<", **kw) -> Claim:
    return Claim(
        key="k",
        statement="s",
        metric="m",
        ours_label="o",
        ours=ours,
        baselines={"b": base},
        comparison=comparison,
        **kw,
    )


def test_verdicts_follow_the_measured_values() -> None:
    assert _claim(1.0, 2.0).verdict == "holds"
    assert _claim(2.0, 1.0).verdict == "fails"
    assert _claim(1.0, 1.0, "<=").verdict == "holds"
    assert _claim(1.0, 1.0, "<").verdict == "fails"
    assert _claim(1.005, 1.0, "<=", margin=0.01).verdict == "holds"
    assert _claim(1.02, 1.0, "<=", margin=0.01).verdict == "fails"
    assert _claim(3.0, 2.0, ">").verdict == "holds"
    assert _claim(math.nan, 2.0).verdict == "inconclusive"


def test_a_required_test_needs_seeds_and_significance() -> None:
    assert _claim(1.0, 2.0, test="welch").verdict == "inconclusive"
    clear = _claim([1.0, 1.1, 0.9, 1.0], [2.0, 2.1, 1.9, 2.05], test="welch")
    assert clear.verdict == "holds" and clear.p_values["b"] < 0.01
    noisy = _claim([1.0, 3.0, 0.1], [2.0, 0.5, 2.4], test="paired")
    assert noisy.ours_mean < noisy.baseline_mean("b")
    assert noisy.verdict == "fails"  # the mean holds but the test does not reject


def test_aggregation_merges_claims_over_seeds_and_recomputes_the_verdict() -> None:
    per_seed = [(s, Result(claims=[_claim(v, 1.0)])) for s, v in [(0, 0.5), (1, 1.6), (2, 1.3)]]
    (merged,) = aggregate_claims(per_seed)
    assert merged.ours == [0.5, 1.6, 1.3] and merged.seeds == [0, 1, 2]
    assert merged.baselines["b"] == [1.0, 1.0, 1.0]
    assert merged.verdict == "fails"  # mean 1.13 is not below 1.0
    assert set(merged.p_values) == {"b"}
