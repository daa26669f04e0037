"""compiler.end_to_end: its smoke run's rows and plots (the run itself is checked by
tests/test_contract.py), its ablation claims and size classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from provenml.compiler.api import compile as pm_compile
from provenml.compiler.experiments import (
    ablation_claims,
    interleaved_samples,
    intermediate_bytes_of,
    l2_bytes,
    largest_intermediate_bytes,
    resolve_case,
    size_class,
)
from provenml.compiler.models import build_model
from provenml.compiler.runtime import POOL_STATS
from provenml.core.testing import smoke_run


def test_end_to_end_smoke_rows_and_plots() -> None:
    """The smoke run's claims and verdicts are checked by tests/test_contract.py."""
    run = smoke_run("compiler.end_to_end")
    result = run.seed_result()
    assert any(k.startswith("latency_us/mlp:1/provenml") for k in result["summary"])
    # the ONNX frontend's row: provenml on the file ONNX Runtime runs
    assert result["summary"]["ratio/mlp:1/provenml_onnx_over_onnxruntime"] > 0
    assert (run.seed_dir / "latency.png").exists() and (run.seed_dir / "ablation.png").exists()
    # the pool runtime's fallback counters are kept per compiled arm (team vs alone calls)
    stats = result["data"]["results"]["mlp:1"]["pool_stats"]
    assert set(stats) == {"provenml", "provenml_onnx"}
    assert set(stats["provenml"]) == set(POOL_STATS)  # counts depend on the thread picker


def _rounds(
    all_passes: list[float], factor: dict[str, float], noise: float
) -> dict[str, list[float]]:
    rng = np.random.default_rng(0)
    out = {"all_passes": all_passes}
    for flag, f in factor.items():
        out[f"no_{flag}"] = [t * f * (1 + noise * rng.standard_normal()) for t in all_passes]
    return out


def test_ablation_claims_are_judged_per_size_class_on_paired_rounds() -> None:
    """A pass that helps every round holds; one that changes nothing is not called a win; the
    two size classes get separate claims and ratios with confidence intervals."""
    base = [1e-3 * (1 + 0.3 * np.sin(r)) for r in range(21)]  # load drifts between rounds
    results = {
        "small:1": {
            "ablation_rounds": _rounds(base, {"fusion": 1.0, "memory_planning": 1.0}, 0.01)
        },
        "big:1": {"ablation_rounds": _rounds(base, {"fusion": 1.3, "memory_planning": 1.1}, 0.01)},
    }
    classes = {"small:1": "in_cache", "big:1": "beyond_l2"}
    summary: dict[str, float] = {}
    claims = {
        c.key: c for c in ablation_claims(results, classes, ("fusion", "memory_planning"), summary)
    }
    assert set(claims) == {
        "fusion_reduces_latency",
        "memory_planning_reduces_latency",
        "fusion_reduces_latency_beyond_l2",
        "memory_planning_reduces_latency_beyond_l2",
    }
    assert claims["fusion_reduces_latency_beyond_l2"].verdict == "holds"
    assert claims["memory_planning_reduces_latency_beyond_l2"].verdict == "holds"
    assert claims["fusion_reduces_latency"].verdict != "holds"
    low, high = (summary[f"ablation_ratio/beyond_l2/no_fusion/ci_{s}"] for s in ("low", "high"))
    assert low < summary["ablation_ratio/beyond_l2/no_fusion"] < high and low > 1.2


def test_size_class_from_the_largest_intermediate(tmp_path: Path) -> None:
    model, x = build_model("mlp", batch=1)
    compiled = pm_compile(model, (x,), tuning=False, threads=1, cache_dir=str(tmp_path))
    assert largest_intermediate_bytes(compiled) == 256 * 4
    assert size_class(256 * 4, l2_bytes()) == "in_cache"
    assert size_class(1 << 20, 1 << 20) == "beyond_l2"
    assert l2_bytes() >= 1 << 15


@pytest.mark.parametrize("l2", [1 << 12, 5000, 1 << 14])
def test_l2_cases_take_the_smallest_batch_that_fills_the_l2(l2: int) -> None:
    """``mlp:l2``: the MLP's largest intermediate is 256 floats per example, so the batch is
    the smallest with 1024 * batch >= l2, and one example fewer stays below it."""
    batch = int(resolve_case("mlp:l2", l2).split(":")[1])
    assert intermediate_bytes_of("mlp", batch) >= l2 > intermediate_bytes_of("mlp", batch - 1)
    assert batch == -(-l2 // 1024)
    assert resolve_case("mlp:8", l2) == "mlp:8"


def test_default_large_cases_are_sized_from_the_l2() -> None:
    from provenml.compiler.experiments import EndToEndConfig

    large = [c for c in EndToEndConfig.from_preset("small", {}).cases if c.endswith(":l2")]
    assert {c.split(":")[0] for c in large} == {"mlp_wide", "transformer_long", "resnet_stage"}
    # on a 1 MiB L2 they are the sizes measured before they were sized from the L2
    assert [resolve_case(c, 1 << 20) for c in large] == [
        "mlp_wide:128",
        "transformer_long:1",
        "resnet_stage:2",
    ]


def test_case_summary_keys_and_values_by_hand() -> None:
    from provenml.compiler.experiments import case_summary

    results = {
        "mlp:1": {
            "latency": {
                "eager": 4e-4,
                "provenml": 1e-4,
                "provenml_onnx": 3e-4,
                "onnxruntime": 2e-4,
            },
            "compile": {"provenml": 2.5, "onnxruntime": 0.1},
            "ablation": {"all_passes": 1e-4, "no_fusion": 2e-4},
        },
        "cnn:8": {
            "latency": {"provenml": 5e-3, "inductor": 1e-2},
            "compile": {"provenml": 9.0},
            "ablation": {},
        },
    }
    expected = {
        "latency_us/mlp:1/eager": 400.0,
        "latency_us/mlp:1/provenml": 100.0,
        "latency_us/mlp:1/provenml_onnx": 300.0,
        "latency_us/mlp:1/onnxruntime": 200.0,
        "latency_us/cnn:8/provenml": 5000.0,
        "latency_us/cnn:8/inductor": 10000.0,
        "compile_s/mlp:1/provenml": 2.5,
        "compile_s/mlp:1/onnxruntime": 0.1,
        "compile_s/cnn:8/provenml": 9.0,
        "ablation_us/mlp:1/all_passes": 100.0,
        "ablation_us/mlp:1/no_fusion": 200.0,
        "ratio/mlp:1/provenml_over_eager": 0.25,
        "ratio/mlp:1/provenml_over_onnxruntime": 0.5,
        "ratio/mlp:1/provenml_onnx_over_onnxruntime": 1.5,
        "ratio/cnn:8/provenml_over_inductor": 0.5,
    }
    summary = case_summary(results)
    assert summary.keys() == expected.keys()
    assert summary == pytest.approx(expected)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"cases": "mlpp:1"}, "cases: unknown model 'mlpp'; did you mean mlp"),
        ({"cases": "mlp"}, "cases: 'mlp' is not model:batch"),
        ({"cases": "mlp:0"}, "cases: 'mlp:0' is not model:batch"),
        ({"cases": ""}, "cases must name at least one value"),
        ({"arms": "eager,onnxruntime"}, "arms must include provenml"),
        ({"arms": "eagr,provenml"}, "arms: unknown 'eagr'; did you mean eager"),
        ({"ablations": "fusoin"}, "ablations: unknown 'fusoin'; did you mean fusion"),
        ({"runtime": "threads"}, "runtime: unknown 'threads'"),
        ({"threads": "0"}, "threads must be at least 1"),
        ({"cases": "mlp_wide:big"}, "is not model:batch"),
        ({"min_time": "0"}, "min_time must be > 0"),
    ],
)
def test_end_to_end_config_refuses_bad_values_before_running(
    override: dict[str, str], message: str
) -> None:
    from provenml.compiler.experiments import EndToEndConfig
    from provenml.errors import ProvenmlError

    with pytest.raises(ProvenmlError) as info:
        EndToEndConfig.from_preset("smoke", override)
    assert message in str(info.value)


def test_end_to_end_config_may_run_without_ablations() -> None:
    from provenml.compiler.experiments import EndToEndConfig

    assert EndToEndConfig.from_preset("smoke", {"ablations": ""}).ablations == ()


def test_unknown_model_suggests_close_names() -> None:
    from provenml.errors import ProvenmlError

    with pytest.raises(ProvenmlError, match=r"unknown model 'resnett'; did you mean resnet"):
        build_model("resnett")


def test_interleaved_samples_orders_repeat_by_seed_only() -> None:
    """Every function gives one sample per round; the rounds' shuffled orders are the same
    for the same ``order_seed`` and differ between seeds (the latency benchmark passes each
    run its own seed, so an effect of position cannot repeat in every run)."""

    def orders(seed: int) -> list[list[str]]:
        calls: list[str] = []
        fns = {name: (lambda name=name: calls.append(name)) for name in "abcde"}
        samples = interleaved_samples(fns, 6, 0.0, gap=0.0, order_seed=seed)
        assert all(len(v) == 6 for v in samples.values())
        # after each function's warm-up (3 calls) and sizing (a warm call, then 1 call fills
        # min_time 0): per sample an untimed call and the one timed call
        body = calls[5 * len(fns) :]
        assert body[::2] == body[1::2]
        timed = body[1::2]
        return [timed[r * 5 : (r + 1) * 5] for r in range(6)]

    first = orders(0)
    assert all(sorted(r) == list("abcde") for r in first)
    assert orders(0) == first
    assert orders(1) != first


def test_interleaved_samples_wait_longer_only_after_a_spinning_runtime(monkeypatch) -> None:
    """The idle time before a sample is ``gap``, except after a sample of a function in
    ``gap_after`` (ONNX Runtime, whose threads spin for ~25 ms after a run): then its entry."""
    import provenml.compiler.experiments as experiments

    events: list[tuple[str, float]] = []
    monkeypatch.setattr(experiments.time, "sleep", lambda s: events.append(("sleep", s)))
    fns = {name: (lambda name=name: events.append((name, 0.0))) for name in ("ort", "a", "b")}
    interleaved_samples(fns, 5, 0.0, gap=0.01, gap_after={"ort": 0.04})
    # warm-up: per function 3 calls, the idle time, then its sizing (a warm call and 1 call)
    warm_up, body = events[: 6 * len(fns)], events[6 * len(fns) :]
    assert [e[1] for e in warm_up[3::6]] == [0.01, 0.04, 0.01]  # the first, after ort, after a
    # then per sample: the idle time, an untimed call and the timed call of one function
    assert body[1::3] == body[2::3]
    previous = "b"  # the last function warmed up
    for sleep, sample in zip(body[::3], body[1::3], strict=True):
        assert sleep == ("sleep", 0.04 if previous == "ort" else 0.01)
        previous = sample[0]
