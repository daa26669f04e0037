"""Test helpers: one ``smoke`` run per experiment per test session, shared by every test.

``tests/test_contract.py`` checks every experiment's smoke run against the contract; a
system's own tests check what is particular to it on the same run, without running it again::

    from provenml.core.testing import smoke_run

    def test_multibudget_spends_equal_compute() -> None:
        run = smoke_run("wsd.multibudget")
        steps = run.result["summary"]
        assert steps["steps/wsd"] == steps["steps/wsds"]
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SmokeRun", "smoke_run"]


@dataclass(frozen=True)
class SmokeRun:
    """A finished smoke run: its directory and its top-level ``result.json``."""

    run_dir: Path
    result: dict[str, Any]

    @property
    def seed_dir(self) -> Path:
        return self.run_dir / "seed-0"

    def seed_result(self, seed: int = 0) -> dict[str, Any]:
        return json.loads((self.run_dir / f"seed-{seed}" / "result.json").read_text())


_RUNS: dict[str, SmokeRun] = {}
_ROOT: Path | None = None


def _root() -> Path:
    global _ROOT
    if _ROOT is None:
        _ROOT = Path(tempfile.mkdtemp(prefix="provenml-smoke-"))
        atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
    return _ROOT


def _needs_more_seeds(claims: list[dict[str, Any]]) -> bool:
    return any(
        c.get("verdict") == "inconclusive" and "needs two or more" in (c.get("reason") or "")
        for c in claims
    )


def smoke_run(name: str) -> SmokeRun:
    """Run experiment ``name`` at ``smoke`` on the CPU, once per process: seed 0, and seed 1
    added (seed 0 kept, through :func:`~provenml.core.run.execute_plan`'s ``done``) when a
    claim's statistical test needs a second seed. A run that fails raises."""
    if name in _RUNS:
        return _RUNS[name]
    from provenml.core.context import Memo
    from provenml.core.registry import get_experiment
    from provenml.core.run import LocalExecutor, execute_plan, load_unit_result, plan_run

    spec = get_experiment(name)
    plan = plan_run(spec, scale="smoke", seeds=[0], device="cpu", out_root=_root())
    execute_plan(plan, LocalExecutor(), memo=Memo())
    result = json.loads((plan.run_dir / "result.json").read_text())
    if _needs_more_seeds(result["claims"]):
        done = {}
        for part in plan.part_indices():
            unit = load_unit_result(plan, 0, part)
            if unit is None:
                raise RuntimeError(f"{name}: seed 0, part {part} did not finish")
            done[(0, part)] = unit
        two = dataclasses.replace(plan, seeds=(0, 1))
        execute_plan(two, LocalExecutor(), memo=Memo(), done=done)
        result = json.loads((plan.run_dir / "result.json").read_text())
    _RUNS[name] = SmokeRun(plan.run_dir, result)
    return _RUNS[name]
