"""The per-unit context handed to an experiment's ``run(cfg, ctx)``: seed, device, metrics log,
progress bars, plots, compute ledger and a memo."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from provenml.core.cache import json_default
from provenml.core.compute import ComputeLedger

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure
    from rich.progress import Progress, TaskID

__all__ = ["Memo", "ProgressBar", "RunContext", "progress", "session_memo"]

T = TypeVar("T")


class Memo(dict[Hashable, Any]):
    """Values worth computing once (a generated dataset, a trained model), by a key that holds
    every input of the computation, so that a remembered value is exactly what the call would
    compute again.

    ``ctx.memo`` is the harness's memo for the process: every unit that runs in it (every seed
    and every experiment of one ``provenml reproduce`` command) shares it; worker processes
    have their own. Experiments use it instead of module-level cache dicts::

        model = ctx.memo.cached(("transe", dataset, dim, epochs, seed), lambda: train(...))
    """

    def cached(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``self[key]``, computed by ``compute()`` the first time."""
        if key not in self:
            self[key] = compute()
        return self[key]  # type: ignore[no-any-return]


_SESSION_MEMO = Memo()


def session_memo() -> Memo:
    """The process's memo (what ``ctx.memo`` is unless the runner is given another)."""
    return _SESSION_MEMO


def progress(
    items: Iterable[T], description: str, enabled: bool = True, total: int | None = None
) -> Iterable[T]:
    """``items``, shown as a progress bar while they are consumed when ``enabled``: the long
    loops of the components (graph, DenseCL and few-shot pre-training, fine-tuning, KGE and
    meta-training, a meta-RL agent's iterations, a selection reference model's steps) take
    ``progress=True`` and iterate through this. The bar is rich's
    (``rich.progress.track``), transient, on the console's stream; disabled, ``items`` itself
    is returned, so the loop costs nothing extra. Experiments use ``ctx.track`` instead, whose
    bars the runner shows together."""
    if not enabled:
        return items
    from rich.progress import track

    return track(items, description=description, total=total, transient=True)


class ProgressBar:
    """A handle on one rich progress task (a no-op when progress display is off)."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress, self._task = progress, task

    def advance(self, steps: float = 1, **fields: Any) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=steps, **fields)


class RunContext:
    """What an experiment's ``run(cfg, ctx)`` gets: seed, device, logging, plots, progress.

    ``ctx.device`` is the device the runner chose (an experiment moves its tensors there);
    ``ctx.compute`` is the unit's :class:`~provenml.core.compute.ComputeLedger`; ``ctx.memo``
    is a :class:`Memo`; ``ctx.log(**record)`` streams one line to ``metrics.jsonl``.
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        seed: int,
        device: torch.device,
        scale: str,
        progress: Progress | None = None,
        memo: Memo | None = None,
    ) -> None:
        self.out_dir = out_dir
        self.seed = seed
        self.device = device
        self.scale = scale
        self.compute = ComputeLedger()
        self.memo = session_memo() if memo is None else memo
        self._progress = progress
        self._metrics_path = out_dir / "metrics.jsonl"
        self._metrics = self._metrics_path.open("a", buffering=1)
        self._start = time.perf_counter()

    # -- metrics ------------------------------------------------------------------------------
    def log(self, **record: Any) -> None:
        """Append one JSON line to ``metrics.jsonl`` (line-buffered: survives a crash)."""
        record.setdefault("time_s", round(time.perf_counter() - self._start, 4))
        self._metrics.write(json.dumps(record, default=json_default) + "\n")

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
