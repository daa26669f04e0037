"""The contract every system keeps, checked for every registered experiment and every package.

For each experiment of a ``provenml/<system>/experiments.py`` (systems added later join
automatically), a ``smoke`` run must:

- finish, making only claim keys the experiment declares (``@experiment(claims=...)``) and
  every key it must make at smoke (``REQUIRED_AT_SMOKE``);
- measure only finite values (ours, baselines, members, preconditions);
- reach a definite verdict for every claim (holds or fails), unless the claim's own
  precondition failed and says why; a claim whose statistical test needs more seeds is re-run
  with a second seed (seed 0 is kept: only seed 1 runs);
- be listed by ``provenml list`` exactly as it registers (the static manifest is accurate).

Every system package exports a public API that resolves (``__all__``), and every threshold in
an ``experiments.py`` is a written constant (:mod:`provenml.core.audit`).

This replaces the per-system smoke tests: tests in a system's folder check what is particular
to it on the same run (:func:`provenml.core.testing.smoke_run` runs each experiment once per
test session), not that its smoke preset runs.
"""

from __future__ import annotations

import fnmatch
import importlib
import math
from pathlib import Path

import pytest

import provenml
from provenml.core import get_experiment, list_experiments
from provenml.core.audit import threshold_violations
from provenml.core.registry import ExperimentInfo
from provenml.core.testing import smoke_run

SYSTEM_EXPERIMENTS = [i for i in list_experiments() if i.module.startswith("provenml.")]

#: Claim keys a smoke run must make, carried over from the per-system smoke tests that this
#: test replaces (and, for the experiments those did not check, the keys a smoke run made when
#: this test was written). ``()``: a tuning run, which makes no claim. An experiment that
#: declares ``@experiment(claims=...)`` is also checked against its declaration.
REQUIRED_AT_SMOKE: dict[str, tuple[str, ...]] = {
    "compiler.end_to_end": (
        "fusion_reduces_latency",
        "memory_planning_reduces_latency",
        "faster_than_eager_batch1",
    ),
    "explain.benchmark": (
        "every_explainer_beats_random",
        "gnnexplainer_ba_shapes_published",
        "pgexplainer_ba_shapes_published",
        "subgraphx_best_fid_minus_ba2motifs",
    ),
    "kge.link_prediction": ("beats_chance/nations",),
    "kge.triple_classification": ("above_chance/nations",),
    "kge.relation_patterns": ("transe_fails_symmetric", "rotate_handles_composition"),
    "kge.relation_extraction": ("kg_improves_pr_auc",),
    "kge.scale": (
        "throughput_vs_pykeen",
        "time_to_pykeen_mrr",
        "mrr_at_equal_epochs",
        "mrr_at_equal_time",
    ),
    "metarl.gridworld": ("beats_varibad", "approaches_oracle", "refinds_goal_faster"),
    "metarl.ablations": ("ablations_worse",),
    "metarl.session_rate": ("gap_peaks_inside",),
    "metarl.reacher": ("beats_varibad",),
    "selection.noisy_labels": (
        "fewer_updates",
        "less_compute",
        "rho_loss_costs_more",
        "ablations_worse",
    ),
    "selection.scorer_size": ("bigger_saves_more_updates", "small_scorer_saves_more_compute"),
    "selection.clean_control": ("clean_fewer_updates", "clean_headline_saving"),
    "wsd.multibudget": (
        "wsds_le_wsd_2T",
        "wsds_le_wsd_4T",
        "beat_cyclic_1T",
        "beat_cyclic_2T",
        "beat_cyclic_4T",
        "wsds_near_oracle_4T",
    ),
    "wsd.river_valley": ("river_keeps_improving", "decay_drops_total", "decay_removes_hills"),
    "wsd.lr_sweep": (),
}

#: Experiments whose smoke run takes much longer than the suite's ~20 s per test on 2 cores:
#: the two tuning sweeps of wsd (every learning rate x every schedule; ~45-50 s, no claim).
SLOW: frozenset[str] = frozenset({"wsd.lr_sweep", "wsd.oracle_regime_sweep", "distrl.faults"})


def _params() -> list[object]:
    return [
        pytest.param(info, id=info.name, marks=[pytest.mark.slow] if info.name in SLOW else [])
        for info in SYSTEM_EXPERIMENTS
    ]


@pytest.mark.parametrize("info", _params())
def test_smoke_run_keeps_the_contract(info: ExperimentInfo) -> None:
    spec = get_experiment(info.name)
    assert spec.info() == info, "provenml list shows something else than what registers"
    required = REQUIRED_AT_SMOKE.get(info.name)
    assert spec.claims is not None or required is not None, (
        f"{info.name}: declare its claim keys with @experiment(claims=...)"
    )

    result = smoke_run(info.name).result
    assert result["status"] == "complete", result.get("error")
    claims = result["claims"]
    keys = [c["key"] for c in claims]
    assert len(keys) == len(set(keys)), f"duplicate claim keys {keys}"
    if spec.claims is not None:
        undeclared = [k for k in keys if not any(fnmatch.fnmatchcase(k, p) for p in spec.claims)]
        assert not undeclared, f"claims not declared in @experiment(claims=...): {undeclared}"
    missing = [p for p in required or () if not any(fnmatch.fnmatchcase(k, p) for k in keys)]
    assert not missing, f"claims not made at smoke: {missing}"
    if spec.claims == () or required == ():  # a tuning run: what it measured must be finite
        assert not claims, f"{info.name} declares no claim but made {keys}"
        summary = list(result["summary"].values())
        assert summary and all(math.isfinite(v) for v in summary), result["summary"]
        return
    assert claims, f"{info.name} made no claim"

    for c in claims:
        values = [
            *c["ours"],
            *(v for vs in c["baselines"].values() for v in vs),
            *(v for m in c["members"].values() for v in m["ours"]),
            *(v for m in c["members"].values() for vs in m["baselines"].values() for v in vs),
        ]
        if c["precondition"] is not None:
            values += [*c["precondition"]["left"], *c["precondition"]["right"]]
        assert values, f"{c['key']}: nothing measured"
        bad = [v for v in values if not (isinstance(v, int | float) and math.isfinite(v))]
        assert not bad, f"{c['key']}: non-finite measured values {bad}"
        explained = c["precondition"] is not None and not c["precondition"]["satisfied"]
        assert c["verdict"] in ("holds", "fails") or explained, (
            f"{c['key']}: verdict {c['verdict']} ({c.get('reason')})"
        )


def _packages() -> list[str]:
    root = Path(provenml.__path__[0])
    return sorted(
        p.name for p in root.iterdir() if (p / "__init__.py").exists() and p.name != "core"
    )


@pytest.mark.parametrize("package", _packages())
def test_the_package_exports_resolve(package: str) -> None:
    """A system package (one with ``experiments.py``) exports its API with ``__all__`` and shows
    a usage example; any package's ``__all__`` resolves."""
    name = f"provenml.{package}"
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if (Path(provenml.__path__[0]) / package / "experiments.py").exists():
        assert exported, f"{name} has no __all__"
        doc = module.__doc__ or ""
        shown = f"from {name} import" in doc or f"import {name}" in doc
        assert shown, f"{name}'s docstring shows no usage example"
    exported = list(exported or [])
    assert len(set(exported)) == len(exported), f"{name}.__all__ lists a name twice"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names {missing}, which it does not define"


@pytest.mark.parametrize(
    "path",
    sorted(Path(provenml.__path__[0]).glob("*/experiments.py")),
    ids=lambda p: p.parent.name,
)
def test_thresholds_are_written_constants(path: Path) -> None:
    assert threshold_violations(path.read_text(), str(path)) == []
