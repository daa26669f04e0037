"""Run directories, the per-run context handed to experiments, and the multi-seed runner.

Layout of one ``provenml reproduce NAME`` invocation::

    runs/NAME-SCALE-YYYYmmdd-HHMMSS/
        config.json   env.json   result.json (claims aggregated over seeds)   *.png
        seed-0/  config.json  env.json  metrics.jsonl (streamed)  result.json  *.png
        seed-1/  ...

An interrupted seed (Ctrl-C or an exception) still writes its ``result.json`` with
``"status": "interrupted"``; its ``metrics.jsonl`` already holds everything it logged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import platform
import random
import subprocess
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from provenml.core.compute import ComputeLedger, peak_memory_bytes
from provenml.core.experiment import Claim, Config, ExperimentSpec, ProvenmlError, Result

if TYPE_CHECKING:
    from matplotlib.figure import Figure

T = TypeVar("T")


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without a GPU is a user error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ProvenmlError("--device cuda was asked for, but no CUDA GPU is available")
        return torch.device(device)
    if device == "cpu":
        return torch.device("cpu")
    raise ProvenmlError(f"unknown device {device!r}; use auto, cpu or cuda")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def capture_environment(device: torch.device, seed: int | None = None) -> dict[str, Any]:
    """Versions, machine and device, so that a number can be traced to where it came from."""
    import scipy

    import provenml

    env: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "provenml": provenml.__version__,
        "git_commit": _git_commit(),
        "device": str(device),
        "seed": seed,
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default, allow_nan=True) + "\n")
    tmp.replace(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


class ProgressBar:
    """A handle on one rich progress task (a no-op when progress display is off)."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress, self._task = progress, task

    def advance(self, steps: float = 1, **fields: Any) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=steps, **fields)


class RunContext:
    """What an experiment's ``run(cfg, ctx)`` gets: seed, device, logging, plots, progress."""

    def __init__(
        self,
        out_dir: Path,
        *,
        seed: int,
        device: torch.device,
        scale: str,
        progress: Progress | None = None,
    ) -> None:
        self.out_dir = out_dir
        self.seed = seed
        self.device = device
        self.scale = scale
        self.compute = ComputeLedger()
        self._progress = progress
        self._metrics_path = out_dir / "metrics.jsonl"
        self._metrics = self._metrics_path.open("a", buffering=1)
        self._start = time.perf_counter()

    # -- metrics ------------------------------------------------------------------------------
    def log(self, **record: Any) -> None:
        """Append one JSON line to ``metrics.jsonl`` (line-buffered: survives a crash)."""
        record.setdefault("time_s", round(time.perf_counter() - self._start, 4))
        self._metrics.write(json.dumps(record, default=_json_default) + "\n")

    def close(self) -> None:
        self._metrics.close()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    # -- progress -----------------------------------------------------------------------------
    @contextmanager
    def progress_bar(self, total: float | None, description: str) -> Iterator[ProgressBar]:
        """A progress bar that disappears when the block ends."""
        if self._progress is None:
            yield ProgressBar(None, None)
            return
        task = self._progress.add_task(description, total=total)
        try:
            yield ProgressBar(self._progress, task)
        finally:
            self._progress.remove_task(task)

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        """Iterate over ``items`` with a progress bar."""
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        with self.progress_bar(total, description) as bar:
            for item in items:
                yield item
                bar.advance()

    # -- artefacts ----------------------------------------------------------------------------
    def savefig(self, fig: Figure, name: str) -> Path:
        """Save a matplotlib figure as ``NAME.png`` in the run directory and close it."""
        import matplotlib.pyplot as plt

        path = self.out_dir / f"{name}.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        return path


def make_progress(enabled: bool) -> Progress | None:
    if not enabled:
        return None
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


class ExperimentFailed(Exception):
    """An experiment raised; its partial results are on disk at ``run_dir``."""

    def __init__(self, name: str, run_dir: Path, error: BaseException) -> None:
        super().__init__(f"{name} failed: {type(error).__name__}: {error}")
        self.run_dir = run_dir
        self.error = error


def aggregate_claims(results: Sequence[tuple[int, Result]]) -> list[Claim]:
    """Merge each claim (matched by ``key``) across seeds; the verdict is recomputed."""
    merged: dict[str, Claim] = {}
    for seed, result in results:
        for claim in result.claims:
            if claim.key not in merged:
                merged[claim.key] = Claim.from_dict({**claim.to_dict(), "seeds": []})
                merged[claim.key].ours = []
                merged[claim.key].baselines = {b: [] for b in claim.baselines}
            target = merged[claim.key]
            target.ours.extend(claim.ours)
            for name, values in claim.baselines.items():
                target.baselines.setdefault(name, []).extend(values)
            target.seeds.append(seed)
    for claim in merged.values():
        claim.verdict = claim.evaluate()
    return list(merged.values())


def _mean_summary(results: Sequence[tuple[int, Result]]) -> dict[str, float]:
    keys = {k for _, r in results for k in r.summary}
    out = {}
    for key in sorted(keys):
        values = [r.summary[key] for _, r in results if key in r.summary]
        finite = [v for v in values if isinstance(v, int | float) and not math.isnan(v)]
        if finite:
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
) -> Path:
    """Run ``spec`` once per seed in a fresh run directory; return that directory.

    The top-level ``result.json`` holds every claim aggregated over the seeds that finished.
    Raises ``KeyboardInterrupt`` or :class:`ExperimentFailed` after writing what was measured.
    ``jobs > 1`` runs seeds (or, for an experiment with ``parts``, each seed's parts) in that
    many worker processes, splitting the CPU threads between them (small models use two
    single-threaded processes better than one two-threaded one).
    """
    cfg: Config = spec.config.from_preset(scale, overrides)
    torch_device = resolve_device(device)
    run_dir = _new_run_dir(writable_directory(out_root), spec.name, scale)
    header = {
        "experiment": spec.name,
        "system": spec.system,
        "claim": spec.claim,
        "scale": scale,
        "seeds": list(seeds),
        "overrides": dict(overrides or {}),
    }
    _write_json(run_dir / "config.json", {**header, "config": cfg.to_dict()})
    _write_json(run_dir / "env.json", capture_environment(torch_device))

    finished: list[tuple[int, Result]] = []
    status, error = "complete", None
    started = time.perf_counter()
    seed_task = (
        progress.add_task(f"{spec.name} [{scale}] seeds", total=len(seeds)) if progress else None
    )
    try:
        if jobs > 1 and (len(seeds) > 1 or spec.parts is not None):
            for seed, result in _run_seeds_in_workers(
                spec, cfg, run_dir, seeds, torch_device, scale, header, jobs
            ):
                finished.append((seed, result))
                if progress is not None and seed_task is not None:
                    progress.advance(seed_task)
        else:
            for seed in seeds:
                result = _run_one_seed(
                    spec, cfg, run_dir, seed, torch_device, scale, header, progress
                )
                finished.append((seed, result))
                if progress is not None and seed_task is not None:
                    progress.advance(seed_task)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except Exception as exc:
        status, error = "interrupted", exc
        raise ExperimentFailed(spec.name, run_dir, exc) from exc
    finally:
        if progress is not None and seed_task is not None:
            progress.remove_task(seed_task)
        finished.sort(key=lambda pair: pair[0])
        results = [r for _, r in finished]
        if spec.summarize is not None and finished:
            ctx = RunContext(run_dir, seed=seeds[0], device=torch_device, scale=scale)
            try:
                spec.summarize(results, ctx)
            finally:
                ctx.close()
            (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        _write_json(
            run_dir / "result.json",
            {
                **header,
                "status": status,
                "error": None if error is None else f"{type(error).__name__}: {error}",
                "seeds_finished": [s for s, _ in finished],
                "wall_time_s": round(time.perf_counter() - started, 2),
                "claims": [c.to_dict() for c in aggregate_claims(finished)],
                "summary": _mean_summary(finished),
                "notes": list(dict.fromkeys(n for _, r in finished for n in r.notes)),
            },
        )
    return run_dir


def _run_one_seed(
    spec: ExperimentSpec,
    cfg: Config,
    run_dir: Path,
    seed: int,
    device: torch.device,
    scale: str,
    header: Mapping[str, Any],
    progress: Progress | None,
) -> Result:
    """One seed: ``spec.run`` in ``seed-<seed>/``, or each of its parts then ``spec.merge``."""
    if spec.parts is None:
        unit_dir = _unit_dir(run_dir, seed, None)
        return _run_unit(spec, cfg, unit_dir, seed, device, scale, header, progress)
    parts = [
        _run_unit(spec, cfg, _unit_dir(run_dir, seed, k), seed, device, scale, header, progress, p)
        for k, p in enumerate(spec.parts(cfg))
    ]
    seed_dir = _unit_dir(run_dir, seed, None)
    return _merge_parts(spec, cfg, seed_dir, seed, device, scale, header, parts)


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


def _unit_dir(run_dir: Path, seed: int, part: int | None) -> Path:
    seed_dir = run_dir / f"seed-{seed}"
    return seed_dir if part is None else seed_dir / f"part-{part}"


def _run_unit(
    spec: ExperimentSpec,
    cfg: Config,
    unit_dir: Path,
    seed: int,
    device: torch.device,
    scale: str,
    header: Mapping[str, Any],
    progress: Progress | None,
    part: Mapping[str, Any] | None = None,
) -> Result:
    """``spec.run`` on ``cfg`` (with ``part``'s fields replaced) in the fresh ``unit_dir``."""
    unit_dir.mkdir(parents=True)
    if part is not None:
        cfg = dataclasses.replace(cfg, **part)
    extra = {} if part is None else {"part": dict(part)}
    _write_json(
        unit_dir / "config.json", {**header, "seed": seed, **extra, "config": cfg.to_dict()}
    )
    _write_json(unit_dir / "env.json", capture_environment(device, seed))
    seed_everything(seed)
    ctx = RunContext(unit_dir, seed=seed, device=device, scale=scale, progress=progress)
    started = time.perf_counter()
    payload: dict[str, Any] = {**header, "seed": seed, **extra, "status": "interrupted"}
    try:
        return _recorded(spec.name, lambda: spec.run(cfg, ctx), payload, unit_dir)
    finally:
        payload["wall_time_s"] = round(time.perf_counter() - started, 2)
        payload["compute"] = ctx.compute.to_dict()
        payload["peak_memory_bytes"] = peak_memory_bytes(device)
        ctx.close()
        _write_json(unit_dir / "result.json", payload)


def _merge_parts(
    spec: ExperimentSpec,
    cfg: Config,
    seed_dir: Path,
    seed: int,
    device: torch.device,
    scale: str,
    header: Mapping[str, Any],
    parts: list[Result],
) -> Result:
    """The seed's result from its parts' results (``spec.merge``), in ``seed_dir``."""
    assert spec.merge is not None
    _write_json(seed_dir / "config.json", {**header, "seed": seed, "config": cfg.to_dict()})
    ctx = RunContext(seed_dir, seed=seed, device=device, scale=scale)
    payload: dict[str, Any] = {**header, "seed": seed, "status": "interrupted"}
    merge = spec.merge
    try:
        return _recorded(f"{spec.name}'s merge", lambda: merge(cfg, parts, ctx), payload, seed_dir)
    finally:
        ctx.close()
        part_results = [
            json.loads(path.read_text()) for path in sorted(seed_dir.glob("part-*/result.json"))
        ]
        # the parts' times summed: the seed's compute time, not its wall time when the
        # parts ran side by side in workers
        payload["wall_time_s"] = round(sum(r.get("wall_time_s", 0.0) for r in part_results), 2)
        _write_json(seed_dir / "result.json", payload)


def _run_seeds_in_workers(
    spec: ExperimentSpec,
    cfg: Config,
    run_dir: Path,
    seeds: Sequence[int],
    device: torch.device,
    scale: str,
    header: Mapping[str, Any],
    jobs: int,
) -> Iterator[tuple[int, Result]]:
    """Yield (seed, result) as worker processes finish; each worker writes its own directory.

    With ``spec.parts``, the work units are (seed, part) pairs, taken part by part (the
    costliest first, as ``parts`` lists them); a seed is merged once all its parts are in.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    parts = spec.parts(cfg) if spec.parts is not None else [None]
    units = [(seed, k) for k in range(len(parts)) for seed in seeds]
    workers = min(jobs, len(units))
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")  # fork is unsafe once OpenMP threads exist
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    done: dict[int, dict[int, Result]] = {seed: {} for seed in seeds}
    try:
        futures = {
            pool.submit(
                _unit_worker,
                spec.name,
                spec.run.__module__,
                cfg,
                _unit_dir(run_dir, seed, k if spec.parts is not None else None),
                seed,
                str(device),
                scale,
                dict(header),
                threads,
                parts[k],
            ): (seed, k)
            for seed, k in units
        }
        for future in as_completed(futures):
            seed, k = futures[future]
            done[seed][k] = Result.from_dict(future.result())
            if len(done[seed]) < len(parts):
                continue
            if spec.parts is None:
                yield seed, done[seed][0]
            else:
                ordered = [done[seed][i] for i in range(len(parts))]
                seed_dir = _unit_dir(run_dir, seed, None)
                yield seed, _merge_parts(spec, cfg, seed_dir, seed, device, scale, header, ordered)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _unit_worker(
    name: str,
    module: str,
    cfg: Config,
    unit_dir: Path,
    seed: int,
    device: str,
    scale: str,
    header: dict[str, Any],
    threads: int,
    part: dict[str, Any] | None,
) -> dict[str, Any]:
    """One seed, or one part of a seed, in a worker process (the experiment's module registers
    it on import)."""
    import importlib

    from provenml.core.experiment import registered

    torch.set_num_threads(threads)
    importlib.import_module(module)  # registers the experiment without importing every system
    spec = registered(name)
    result = _run_unit(spec, cfg, unit_dir, seed, torch.device(device), scale, header, None, part)
    return result.to_dict()
