"""Where a run's ``(seed, part)`` units execute: this machine (``--jobs``, the default, in
:class:`provenml.core.run.LocalExecutor`) or Ray tasks (``--executor ray``), on a local Ray
instance or an existing cluster (``--address``).

Both give the same run directory and the same numbers: a Ray task calls the same
:func:`~provenml.core.run.execute_unit` with the same picklable :class:`RunPlan`, seed, part and
thread count as a ``--jobs`` worker process. On a local Ray instance the tasks write their unit
directories in place; on another node of a cluster, where the driver's run directory is not
on the disk, a task runs in a scratch directory and sends its files back, and the driver
writes them where ``--jobs`` would have.

Using it from Python::

    from provenml.core import get_experiment
    from provenml.core.executor import RayExecutor
    from provenml.core.run import execute_plan, plan_run

    plan = plan_run(get_experiment("wsd.river_valley"), scale="smoke", seeds=range(8))
    execute_plan(plan, RayExecutor(address="auto"))   # an existing cluster
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from provenml.core.results import Result
from provenml.errors import ProvenmlError

if TYPE_CHECKING:
    from rich.progress import Progress

    from provenml.core.context import Memo
    from provenml.core.run import Executor, RunPlan, Unit

__all__ = ["EXECUTORS", "RayExecutor", "make_executor"]

EXECUTORS: tuple[str, ...] = ("local", "ray")
"""The names ``--executor`` accepts."""


def make_executor(
    kind: str,
    *,
    jobs: int = 1,
    address: str | None = None,
    progress: Progress | None = None,
    memo: Memo | None = None,
) -> Executor:
    """The executor ``--executor KIND`` names (``--address`` only goes with ``ray``)."""
    if kind not in EXECUTORS:
        raise ProvenmlError(f"unknown --executor {kind!r}; choose one of {', '.join(EXECUTORS)}")
    if kind == "local":
        if address is not None:
            raise ProvenmlError("--address goes with --executor ray")
        from provenml.core.run import LocalExecutor

        return LocalExecutor(jobs, progress, memo)
    return RayExecutor(address=address, jobs=jobs)


class RayExecutor:
    """Every unit a Ray task (one task per ``(seed, part)``).

    Without ``address``, a local Ray instance is started with this machine's cores, and each
    task gets the threads a ``--jobs`` worker would (the cores split between ``jobs``), so that
    ``jobs`` tasks run at once, like ``--jobs``. With ``address`` (``"auto"`` or
    ``"HOST:6379"``), the tasks go to that cluster, each asking for the experiment's declared
    thread count in CPUs (1 when it declares none) and for one GPU with ``--device cuda``.
    Ray is shut down after the run when this executor started it (an instance the caller
    started is left alone). ``num_cpus`` sizes the local instance (default: this machine's
    cores). ``ship_files`` forces the scratch-directory path of remote nodes (``None``: only
    on a node other than the driver's).
    """

    order: Literal["seed", "part"] = "part"

    def __init__(
        self,
        *,
        address: str | None = None,
        jobs: int = 1,
        num_cpus: int | None = None,
        ship_files: bool | None = None,
    ) -> None:
        if jobs < 1:
            raise ProvenmlError(f"--jobs must be at least 1, got {jobs}")
        self.address = address
        self.jobs = jobs
        self.num_cpus = num_cpus
        self.ship_files = ship_files

    def _threads(self, plan: RunPlan, units: int) -> int:
        """Torch threads (and Ray CPUs) per task. Locally what a ``--jobs`` worker gets
        (:func:`~provenml.core.policy.unit_threads`, over the local instance's CPUs); on a
        cluster the experiment's declared count, else 1."""
        if self.address is not None:
            return plan.threads or 1
        cpus = self.num_cpus or os.cpu_count() or 1
        workers = min(self.jobs, max(1, units))
        if workers <= 1:
            return min(plan.threads or cpus, cpus)
        per_worker = max(1, cpus // workers)
        return per_worker if plan.threads is None else min(plan.threads, per_worker)

    def run(self, plan: RunPlan, units: Sequence[Unit]) -> Iterator[tuple[Unit, Result]]:
        try:
            import ray
        except ImportError:
            raise ProvenmlError(
                "--executor ray needs Ray, which is not installed (pip install 'ray[default]')"
            ) from None
        started_here = not ray.is_initialized()
        if started_here:
            _start_ray(ray, self.address, self.num_cpus)
        pending: dict[Any, Unit] = {}
        try:
            threads = self._threads(plan, len(units))
            gpus = 1 if plan.device.startswith("cuda") else 0
            task = ray.remote(_ray_unit).options(num_cpus=threads, num_gpus=gpus, max_retries=0)
            driver_node = ray.get_runtime_context().get_node_id()
            pending = {
                task.remote(plan, seed, part, threads, driver_node, self.ship_files): (seed, part)
                for seed, part in units
            }
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                ref = ready[0]
                unit = pending.pop(ref)
                payload = ray.get(ref)
                if payload["files"] is not None:
                    _write_files(plan.unit_dir(*unit), payload["files"])
                if payload["error"] is not None:
                    raise pickle.loads(payload["error"])
                yield unit, Result.from_dict(payload["result"])
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if started_here:
                ray.shutdown()


def _start_ray(ray: Any, address: str | None, num_cpus: int | None) -> None:
    """Connect to the cluster at ``address``, or start a local instance with ``num_cpus``
    (default: this machine's cores; no dashboard); a clear error when that fails."""
    try:
        if address is None:
            ray.init(
                num_cpus=num_cpus or os.cpu_count() or 1,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "a local Ray instance" if address is None else f"the Ray cluster at {address}"
        raise ProvenmlError(f"cannot start or reach {where}: {exc}") from None


def _ray_unit(
    plan: RunPlan,
    seed: int,
    part: int | None,
    threads: int | None,
    driver_node: str,
    ship_files: bool | None,
) -> dict[str, Any]:
    """One unit in a Ray worker: :func:`execute_unit` in place on the driver's node, else in a
    scratch directory whose files go back to the driver. Errors come back as data (with the
    unit's files, traceback included) so that the driver can write them before raising."""
    import dataclasses

    import ray

    from provenml.core.run import execute_unit

    if ship_files is None:
        ship_files = ray.get_runtime_context().get_node_id() != driver_node
    scratch = Path(tempfile.mkdtemp(prefix="provenml-unit-")) if ship_files else None
    local_plan = plan if scratch is None else dataclasses.replace(plan, run_dir=scratch)
    payload: dict[str, Any] = {"result": None, "error": None, "files": None}
    try:
        payload["result"] = execute_unit(local_plan, seed, part, threads)
    except Exception as exc:
        payload["error"] = _picklable_error(exc)
    finally:
        if scratch is not None:
            payload["files"] = _read_files(local_plan.unit_dir(seed, part))
            shutil.rmtree(scratch, ignore_errors=True)
    return payload


def _picklable_error(exc: Exception) -> bytes:
    try:
        return pickle.dumps(exc)
    except Exception:  # an exception that does not pickle: keep its type name and message
        return pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))


def _read_files(unit_dir: Path) -> dict[str, bytes]:
    """Every file under ``unit_dir`` by its path relative to it."""
    if not unit_dir.is_dir():
        return {}
    return {
        str(path.relative_to(unit_dir)): path.read_bytes()
        for path in sorted(unit_dir.rglob("*"))
        if path.is_file()
    }


def _write_files(unit_dir: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        target = unit_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
