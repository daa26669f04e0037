"""The runner: a :class:`RunPlan` built once, work units run by an executor, seeds merged,
and the run directory written.

Layout of one ``provenml reproduce NAME`` invocation::

    runs/NAME-SCALE-YYYYmmdd-HHMMSS/
        config.json   env.json   result.json (claims aggregated over seeds)   *.png
        seed-0/  config.json  env.json  metrics.jsonl (streamed)  result.json  *.png
        seed-1/  ...
        seed-2/  part-0/ ...  part-1/ ...  result.json (merged from the parts)

The flow: :func:`plan_run` validates everything (config, overrides, device) and only then
creates the run directory; :func:`execute_plan` runs the plan's work units, one
``(seed, part)`` each, through an :class:`Executor` (:class:`LocalExecutor`: in this process,
or ``--jobs`` worker processes), merges each seed once its parts are in, and writes the
top-level ``result.json``. :func:`run_unit` runs one unit given the plan, in whatever process
it is called: it is the seam for other executors (any that can call a picklable function with
a picklable plan) and for resuming a run.

An interrupted seed (Ctrl-C or an exception) still writes its ``result.json`` with
``"status": "interrupted"``; its ``metrics.jsonl`` already holds everything it logged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from provenml.core.cache import json_default, write_json
from provenml.core.claims import Claim
from provenml.core.compute import intra_op_threads, peak_memory_bytes
from provenml.core.config import Config
from provenml.core.context import Memo, ProgressBar, RunContext
from provenml.core.environment import capture_environment, seed_everything
from provenml.core.policy import check_device, resolve_device, unit_threads, use_agg_backend
from provenml.core.registry import ExperimentSpec, registered
from provenml.core.results import Result, Table
from provenml.errors import ProvenmlError

if TYPE_CHECKING:
    import torch
    from rich.progress import Progress

__all__ = [
    "Executor",
    "ExperimentFailed",
    "LocalExecutor",
    "ProgressBar",
    "RunContext",
    "RunPlan",
    "Unit",
    "aggregate_claims",
    "capture_environment",
    "execute_plan",
    "execute_plans",
    "execute_unit",
    "load_unit_result",
    "make_progress",
    "plan_run",
    "resolve_device",
    "run_experiment",
    "run_unit",
    "seed_everything",
    "writable_directory",
]

# the old names of the one atomic JSON writer and its encoder
_write_json = write_json
_json_default = json_default


# --------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------

Unit = tuple[int, int | None]
"""One unit of work: ``(seed, part index)``; the part is ``None`` for an experiment without
parts."""


@dataclass(frozen=True)
class RunPlan:
    """Everything a run needs, decided once before anything runs (picklable: it travels to
    worker processes as it is).

    ``parts`` holds the config fields each part replaces (``None`` for an experiment without
    parts); ``threads`` is the torch intra-op thread count each unit runs with on the CPU
    (``None``: keep the process's setting), before it is split between ``jobs`` workers.
    """

    experiment: str
    module: str
    system: str
    claim: str
    scale: str
    config: Config
    seeds: tuple[int, ...]
    device: str
    run_dir: Path
    overrides: tuple[tuple[str, str], ...] = ()
    parts: tuple[dict[str, Any], ...] | None = None
    jobs: int = 1
    threads: int | None = None

    @property
    def header(self) -> dict[str, Any]:
        """The fields every ``config.json`` / ``result.json`` of the run starts with."""
        return {
            "experiment": self.experiment,
            "system": self.system,
            "claim": self.claim,
            "scale": self.scale,
            "seeds": list(self.seeds),
            "overrides": dict(self.overrides),
            "device": self.device,
        }

    @property
    def torch_device(self) -> torch.device:
        import torch

        return torch.device(self.device)

    def spec(self) -> ExperimentSpec:
        """The registered experiment (its module is imported here if it is not yet)."""
        import importlib

        importlib.import_module(self.module)  # registers the experiment; no other system
        return registered(self.experiment)

    def part_indices(self) -> list[int | None]:
        return [None] if self.parts is None else list(range(len(self.parts)))

    def units(self, order: Literal["seed", "part"] = "seed") -> list[Unit]:
        """Every ``(seed, part)`` unit: seed by seed, or part by part (the costliest part, listed
        first by the experiment, for every seed first: the order workers take them in)."""
        parts = self.part_indices()
        if order == "seed":
            return [(seed, k) for seed in self.seeds for k in parts]
        return [(seed, k) for k in parts for seed in self.seeds]

    def unit_dir(self, seed: int, part: int | None = None) -> Path:
        seed_dir = self.run_dir / f"seed-{seed}"
        return seed_dir if part is None else seed_dir / f"part-{part}"

    def unit_config(self, part: int | None) -> Config:
        if part is None or self.parts is None:
            return self.config
        return dataclasses.replace(self.config, **self.parts[part])


def plan_run(
    spec: ExperimentSpec,
    *,
    scale: str = "small",
    seeds: Sequence[int] = (0,),
    device: str = "auto",
    overrides: Mapping[str, str] | None = None,
    out_root: Path = Path("runs"),
    jobs: int = 1,
    threads: int | None = None,
) -> RunPlan:
    """Check the request (scale, ``--set`` values, device, output folder) and, only if it is
    valid, create the run directory; return the plan. ``threads`` overrides the experiment's
    declared thread count."""
    cfg: Config = spec.config.from_preset(scale, overrides)
    torch_device = check_device(spec, device)
    if not seeds:
        raise ProvenmlError("give at least one seed")
    if jobs < 1:
        raise ProvenmlError(f"--jobs must be at least 1, got {jobs}")
    if threads is not None and threads < 1:
        raise ProvenmlError(f"--threads must be at least 1, got {threads}")
    parts = None if spec.parts is None else tuple(dict(p) for p in spec.parts(cfg))
    run_dir = _new_run_dir(writable_directory(out_root), spec.name, scale)
    return RunPlan(
        experiment=spec.name,
        module=spec.module,
        system=spec.system,
        claim=spec.claim,
        scale=scale,
        config=cfg,
        seeds=tuple(seeds),
        device=str(torch_device),
        run_dir=run_dir,
        overrides=tuple((overrides or {}).items()),
        parts=parts,
        jobs=jobs,
        threads=spec.threads if threads is None else threads,
    )


# --------------------------------------------------------------------------------------------
# One unit
# --------------------------------------------------------------------------------------------


def run_unit(
    plan: RunPlan,
    seed: int,
    part: int | None = None,
    *,
    threads: int | None = None,
    progress: Progress | None = None,
    memo: Memo | None = None,
) -> Result:
    """Run one ``(seed, part)`` unit of ``plan`` in this process, in its fresh directory
    (``plan.unit_dir(seed, part)``), and write its ``config.json``, ``env.json``,
    ``metrics.jsonl`` and ``result.json`` (also when it fails). ``threads``: torch intra-op
    threads on the CPU for the unit (``None``: the plan's)."""
    spec = plan.spec()
    device = plan.torch_device
    unit_dir = plan.unit_dir(seed, part)
    unit_dir.mkdir(parents=True)
    cfg = plan.unit_config(part)
    extra = {} if part is None or plan.parts is None else {"part": dict(plan.parts[part])}
    header = plan.header
    write_json(unit_dir / "config.json", {**header, "seed": seed, **extra, "config": cfg.to_dict()})
    with intra_op_threads(plan.threads if threads is None else threads, device):
        write_json(unit_dir / "env.json", capture_environment(device, seed))
        seed_everything(seed)
        ctx = RunContext(
            unit_dir, seed=seed, device=device, scale=plan.scale, progress=progress, memo=memo
        )
        started = time.perf_counter()
        payload: dict[str, Any] = {**header, "seed": seed, **extra, "status": "interrupted"}
        try:
            return _recorded(spec.name, lambda: spec.run(cfg, ctx), payload, unit_dir)
        finally:
            payload["wall_time_s"] = round(time.perf_counter() - started, 2)
            payload["compute"] = ctx.compute.to_dict()
            payload["peak_memory_bytes"] = peak_memory_bytes(device)
            ctx.close()
            write_json(unit_dir / "result.json", payload)


def execute_unit(plan: RunPlan, seed: int, part: int | None, threads: int | None) -> dict[str, Any]:
    """:func:`run_unit` in a worker process (any executor's): applies the plotting backend and
    returns the result as a plain dict (picklable)."""
    use_agg_backend()
    return run_unit(plan, seed, part, threads=threads).to_dict()


def load_unit_result(plan: RunPlan, seed: int, part: int | None = None) -> Result | None:
    """The result of a unit that already finished (``status: complete`` in its directory), or
    ``None``: lets a resumed run skip the units it has."""
    path = plan.unit_dir(seed, part) / "result.json"
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return Result.from_dict(payload) if payload.get("status") == "complete" else None


def merge_seed(plan: RunPlan, seed: int, parts: list[Result], memo: Memo | None = None) -> Result:
    """The seed's result from its parts' results (the experiment's ``merge``), written in the
    seed's directory."""
    spec = plan.spec()
    assert spec.merge is not None
    seed_dir = plan.unit_dir(seed)
    header = plan.header
    write_json(seed_dir / "config.json", {**header, "seed": seed, "config": plan.config.to_dict()})
    ctx = RunContext(seed_dir, seed=seed, device=plan.torch_device, scale=plan.scale, memo=memo)
    payload: dict[str, Any] = {**header, "seed": seed, "status": "interrupted"}
    merge = spec.merge
    try:
        return _recorded(
            f"{spec.name}'s merge", lambda: merge(plan.config, parts, ctx), payload, seed_dir
        )
    finally:
        ctx.close()
        part_results = [
            json.loads(path.read_text()) for path in sorted(seed_dir.glob("part-*/result.json"))
        ]
        # the parts' times summed: the seed's compute time, not its wall time when the
        # parts ran side by side in workers
        payload["wall_time_s"] = round(sum(r.get("wall_time_s", 0.0) for r in part_results), 2)
        write_json(seed_dir / "result.json", payload)


def _recorded(
    what: str, call: Callable[[], Result], payload: dict[str, Any], where: Path
) -> Result:
    """``call()``, its result put in ``payload`` (or its error, with a traceback file in
    ``where``, before re-raising)."""
    try:
        result = call()
        if not isinstance(result, Result):
            raise TypeError(f"{what} returned {type(result).__name__}, not Result")
        payload.update(result.to_dict(), status="complete")
        return result
    except BaseException as exc:
        payload["error"] = f"{type(exc).__name__}: {exc}"
        (where / "traceback.txt").write_text(traceback.format_exc())
        raise


# --------------------------------------------------------------------------------------------
# Executors
# --------------------------------------------------------------------------------------------


class Executor(Protocol):
    """Runs units of a plan and yields each ``((seed, part), result)`` as it finishes.

    ``order`` is the order it wants the units in (``"seed"``: a seed's parts together, so a
    seed finishes early; ``"part"``: the costliest part of every seed first, for parallel
    workers). The runner merges seeds and writes the run's result.
    """

    order: Literal["seed", "part"]

    def run(self, plan: RunPlan, units: Sequence[Unit]) -> Iterator[tuple[Unit, Result]]: ...


PlanUnits = tuple[RunPlan, Sequence[Unit]]
"""A plan and the units of it still to run."""


class UnitFailed(Exception):
    """A unit of the plan at ``index`` (in the work given to ``run_many``) raised ``error``."""

    def __init__(self, index: int, error: BaseException) -> None:
        super().__init__(str(error))
        self.index = index
        self.error = error


def one_plan_at_a_time(
    executor: Executor, work: Sequence[PlanUnits]
) -> Iterator[tuple[int, Unit, float, Result]]:
    """``run_many`` for any executor: ``executor.run`` on each plan in turn (each unit's start
    time is its plan's start)."""
    for index, (plan, units) in enumerate(work):
        started = time.time()
        try:
            for unit, result in executor.run(plan, units):
                yield index, unit, started, result
        except Exception as exc:
            raise UnitFailed(index, exc) from exc


def _execute_unit_timed(
    plan: RunPlan, seed: int, part: int | None, threads: int | None
) -> tuple[float, dict[str, Any]]:
    """:func:`execute_unit`, with the wall-clock time it started at."""
    started = time.time()
    return started, execute_unit(plan, seed, part, threads)


class LocalExecutor:
    """This machine: in this process (``jobs == 1``, or a single unit), else ``jobs`` spawned
    worker processes, each unit with the plan's threads capped at the cores per worker."""

    def __init__(
        self, jobs: int = 1, progress: Progress | None = None, memo: Memo | None = None
    ) -> None:
        self.jobs = jobs
        self.progress = progress
        self.memo = memo

    @property
    def order(self) -> Literal["seed", "part"]:  # type: ignore[override]
        return "seed" if self.jobs <= 1 else "part"

    def run(self, plan: RunPlan, units: Sequence[Unit]) -> Iterator[tuple[Unit, Result]]:
        if self.jobs <= 1 or len(units) <= 1:
            for seed, part in units:
                result = run_unit(plan, seed, part, progress=self.progress, memo=self.memo)
                yield (seed, part), result
            return
        try:
            for _, unit, _, result in self._in_workers([(plan, units)]):
                yield unit, result
        except UnitFailed as failed:
            raise failed.error from None

    def run_many(self, work: Sequence[PlanUnits]) -> Iterator[tuple[int, Unit, float, Result]]:
        """Units of several plans (``work``: ``(plan, units)`` pairs) through one pool of
        ``jobs`` workers, submitted plan after plan, so that a worker done with one
        experiment's last units starts on the next experiment's instead of waiting for the
        other worker to finish (and no pool is started per experiment). Yields ``(index of
        the plan in work, unit, wall-clock start time of the unit, result)`` as units finish;
        a unit's error is raised as :class:`UnitFailed`. With ``jobs == 1`` (or a single
        unit in all), plan after plan in this process."""
        if self.jobs <= 1 or sum(len(units) for _, units in work) <= 1:
            yield from one_plan_at_a_time(self, work)
            return
        yield from self._in_workers(work)

    def _in_workers(self, work: Sequence[PlanUnits]) -> Iterator[tuple[int, Unit, float, Result]]:
        """``run_many``'s pool: ``min(jobs, units)`` spawned workers, each unit with the
        plan's threads capped at the cores per worker."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        workers = min(self.jobs, sum(len(units) for _, units in work))
        context = multiprocessing.get_context("spawn")  # fork is unsafe once OpenMP threads exist
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        try:
            futures = {
                pool.submit(
                    _execute_unit_timed, plan, seed, part, unit_threads(plan.threads, workers)
                ): (index, (seed, part))
                for index, (plan, units) in enumerate(work)
                for seed, part in units
            }
            for future in as_completed(futures):
                index, unit = futures[future]
                try:
                    started, payload = future.result()
                except Exception as exc:
                    raise UnitFailed(index, exc) from exc
                yield index, unit, started, Result.from_dict(payload)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


class ExperimentFailed(Exception):
    """An experiment raised; its partial results are on disk at ``run_dir``."""

    def __init__(self, name: str, run_dir: Path, error: BaseException) -> None:
        super().__init__(f"{name} failed: {type(error).__name__}: {error}")
        self.run_dir = run_dir
        self.error = error


def execute_plan(
    plan: RunPlan,
    executor: Executor,
    *,
    progress: Progress | None = None,
    memo: Memo | None = None,
    done: Mapping[Unit, Result] | None = None,
) -> Path:
    """Run every unit of ``plan`` (except those in ``done``, already finished) with
    ``executor``; merge each seed when its parts are in; write the run's ``config.json``,
    ``env.json`` and ``result.json``; return the run directory.

    Raises ``KeyboardInterrupt`` or :class:`ExperimentFailed` after writing what was measured.
    """
    return execute_plans([plan], executor, progress=progress, memo=memo, done=[done or {}])[0]


def execute_plans(
    plans: Sequence[RunPlan],
    executor: Executor,
    *,
    progress: Progress | None = None,
    memo: Memo | None = None,
    done: Sequence[Mapping[Unit, Result]] | None = None,
    on_done: Callable[[RunPlan], None] | None = None,
) -> list[Path]:
    """:func:`execute_plan` for several plans. An executor with ``run_many`` (the local one
    with ``--jobs`` > 1) runs them through one pool, the next plan's units starting as soon
    as a worker is free; any other runs them one after the other. Each plan's ``result.json``
    is written, and ``on_done(plan)`` called, as soon as its last unit is in; its
    ``wall_time_s`` runs from the start of its first unit to then.

    On an error or Ctrl-C every plan not yet done is written as interrupted (with what it
    measured) before :class:`ExperimentFailed` (naming the plan whose unit failed) or
    ``KeyboardInterrupt`` is raised."""
    use_agg_backend()
    done = list(done) if done is not None else [{} for _ in plans]
    states = [_PlanState(plan, d, progress, memo) for plan, d in zip(plans, done, strict=True)]
    work = [(state.plan, state.todo(executor.order)) for state in states]
    run_many = getattr(executor, "run_many", None)
    units = run_many(work) if run_many is not None else one_plan_at_a_time(executor, work)
    current = 0  # the plan whose merge or summary runs (an error there is that plan's)

    def finish_if_complete(index: int) -> None:
        state = states[index]
        if state.complete:
            state.close("complete", None)
            if on_done is not None:
                on_done(state.plan)

    try:
        for current in range(len(states)):
            finish_if_complete(current)
        for current, unit, started, result in units:
            states[current].add(unit, started, result)
            finish_if_complete(current)
    except KeyboardInterrupt:
        _close_all(states, None)
        raise
    except Exception as exc:
        failed, error = (exc.index, exc.error) if isinstance(exc, UnitFailed) else (current, exc)
        _close_all(states, failed, error)
        plan = states[failed].plan
        raise ExperimentFailed(plan.experiment, plan.run_dir, error) from error
    return [state.plan.run_dir for state in states]


def _close_all(
    states: Sequence[_PlanState], failed: int | None, error: BaseException | None = None
) -> None:
    """Write every plan not yet closed as interrupted (the error on the one that failed)."""
    for index, state in enumerate(states):
        if not state.closed:
            state.close("interrupted", error if index == failed else None)


class _PlanState:
    """One plan's units as they come in: seeds merged when their parts are in, the run's
    ``config.json`` and ``env.json`` written at the start and ``result.json`` at the end."""

    def __init__(
        self,
        plan: RunPlan,
        done: Mapping[Unit, Result],
        progress: Progress | None,
        memo: Memo | None,
    ) -> None:
        self.plan, self.progress, self.memo = plan, progress, memo
        write_json(plan.run_dir / "config.json", {**plan.header, "config": plan.config.to_dict()})
        write_json(plan.run_dir / "env.json", capture_environment(plan.torch_device))
        self.parts = plan.part_indices()
        self.collected: dict[int, dict[int | None, Result]] = {seed: {} for seed in plan.seeds}
        for (seed, part), result in done.items():
            self.collected[seed][part] = result
        self.finished: list[tuple[int, Result]] = []
        self.started = time.time()
        self.first_unit: float | None = None
        self.closed = False
        self.seed_task = (
            progress.add_task(f"{plan.experiment} [{plan.scale}] seeds", total=len(plan.seeds))
            if progress
            else None
        )
        for seed in plan.seeds:  # seeds whose units were all done before
            if len(self.collected[seed]) == len(self.parts):
                self._seed_done(seed)

    def todo(self, order: Literal["seed", "part"]) -> list[Unit]:
        return [u for u in self.plan.units(order) if u[1] not in self.collected[u[0]]]

    @property
    def complete(self) -> bool:
        return len(self.finished) == len(self.plan.seeds)

    def add(self, unit: Unit, started: float, result: Result) -> None:
        seed, part = unit
        self.first_unit = started if self.first_unit is None else min(self.first_unit, started)
        self.collected[seed][part] = result
        if len(self.collected[seed]) == len(self.parts):
            self._seed_done(seed)

    def _seed_done(self, seed: int) -> None:
        if self.plan.parts is None:
            result = self.collected[seed][None]
        else:
            parts = [self.collected[seed][k] for k in self.parts]
            result = merge_seed(self.plan, seed, parts, memo=self.memo)
        self.finished.append((seed, result))
        if self.progress is not None and self.seed_task is not None:
            self.progress.advance(self.seed_task)

    def close(self, status: str, error: BaseException | None) -> None:
        self.closed = True
        if self.progress is not None and self.seed_task is not None:
            self.progress.remove_task(self.seed_task)
        started = self.started if self.first_unit is None else self.first_unit
        wall_time = time.time() - started
        _finish(self.plan, self.plan.spec(), self.finished, status, error, wall_time, self.memo)


def _finish(
    plan: RunPlan,
    spec: ExperimentSpec,
    finished: list[tuple[int, Result]],
    status: str,
    error: BaseException | None,
    wall_time: float,
    memo: Memo | None,
) -> None:
    """The run's ``result.json`` (and the cross-seed plots of ``spec.summarize``)."""
    finished.sort(key=lambda pair: pair[0])
    results = [r for _, r in finished]
    tables: list[Table] = []
    if spec.summarize is not None and finished:
        ctx = RunContext(
            plan.run_dir,
            seed=plan.seeds[0],
            device=plan.torch_device,
            scale=plan.scale,
            memo=memo,
        )
        try:
            returned = spec.summarize(results, ctx)
        finally:
            ctx.close()
        if isinstance(returned, list):
            tables = [t for t in returned if isinstance(t, Table)]
        (plan.run_dir / "metrics.jsonl").unlink(missing_ok=True)
    if not tables:
        tables = _seed_tables(finished)
    write_json(
        plan.run_dir / "result.json",
        {
            **plan.header,
            "status": status,
            "error": None if error is None else f"{type(error).__name__}: {error}",
            "seeds_finished": [s for s, _ in finished],
            "wall_time_s": round(wall_time, 2),
            "claims": [c.to_dict() for c in aggregate_claims(finished)],
            "summary": _mean_summary(finished),
            "notes": list(dict.fromkeys(n for _, r in finished for n in r.notes)),
            "tables": [t.to_dict() for t in tables],
        },
    )


def _seed_tables(finished: Sequence[tuple[int, Result]]) -> list[Table]:
    """The seeds' own tables (titled with their seed when there are several seeds)."""
    if len(finished) == 1:
        return list(finished[0][1].tables)
    return [
        Table(f"{table.title} (seed {seed})", table.columns, table.rows)
        for seed, result in finished
        for table in result.tables
    ]


def aggregate_claims(results: Sequence[tuple[int, Result]]) -> list[Claim]:
    """Merge each claim (matched by ``key``) across seeds; the verdict is recomputed."""
    by_key: dict[str, list[tuple[int, Claim]]] = {}
    for seed, result in results:
        for claim in result.claims:
            by_key.setdefault(claim.key, []).append((seed, claim))
    return [Claim.combine(per_seed) for per_seed in by_key.values()]


def _mean_summary(results: Sequence[tuple[int, Result]]) -> dict[str, float]:
    keys = {k for _, r in results for k in r.summary}
    out = {}
    for key in sorted(keys):
        values = [r.summary[key] for _, r in results if key in r.summary]
        finite = [v for v in values if isinstance(v, int | float) and not math.isnan(v)]
        if finite:
            import numpy as np

            out[key] = float(np.mean(finite))
    return out


def run_experiment(
    spec: ExperimentSpec,
    *,
    scale: str = "small",
    seeds: Sequence[int] = (0,),
    device: str = "auto",
    overrides: Mapping[str, str] | None = None,
    out_root: Path = Path("runs"),
    progress: Progress | None = None,
    jobs: int = 1,
    threads: int | None = None,
    executor: Executor | None = None,
    memo: Memo | None = None,
) -> Path:
    """Run ``spec`` once per seed in a fresh run directory; return that directory.

    The top-level ``result.json`` holds every claim aggregated over the seeds that finished.
    Raises ``KeyboardInterrupt`` or :class:`ExperimentFailed` after writing what was measured;
    a bad request (scale, ``--set``, device, output folder) raises ``ProvenmlError`` before
    any directory is made. ``jobs > 1`` runs seeds (or, for an experiment with ``parts``, each
    seed's parts) in that many worker processes, splitting the CPU threads between them (small
    models use two single-threaded processes better than one two-threaded one). ``executor``
    replaces the local one (``jobs`` then only goes into the plan).
    """
    plan = plan_run(
        spec,
        scale=scale,
        seeds=seeds,
        device=device,
        overrides=overrides,
        out_root=out_root,
        jobs=jobs,
        threads=threads,
    )
    runner = executor if executor is not None else LocalExecutor(jobs, progress, memo)
    return execute_plan(plan, runner, progress=progress, memo=memo)


# --------------------------------------------------------------------------------------------
# Helpers for the command line
# --------------------------------------------------------------------------------------------


def make_progress(enabled: bool) -> Progress | None:
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    )


def writable_directory(path: Path) -> Path:
    """Create ``path`` if needed and check that files can be written there."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".provenml-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ProvenmlError(f"cannot write to output directory {path}: {exc.strerror}") from None
    return path


def _new_run_dir(out_root: Path, name: str, scale: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = out_root / f"{name}-{scale}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path
