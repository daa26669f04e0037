"""What a build shows while it runs: a build with tuning takes seconds to a minute (gcc for
every tile candidate, the candidates timed, near ties settled in the whole graph, the thread
count chosen), so :func:`~provenml.compiler.compile` shows one transient line with the phase,
its count and the time elapsed (``rich``), on standard error, when it is a terminal or when
asked with ``progress=True``; nothing is printed otherwise (nor, with rich < 14, while
another live display such as a harness's progress bars is showing)."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class BuildProgress:
    """A build's progress line: :meth:`phase` starts a phase (``total`` steps, or none),
    :meth:`advance` counts one step of it. Disabled, every method does nothing."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> BuildProgress:
        if self.enabled:
            from rich.console import Console
            from rich.errors import LiveError
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("provenml.compiler: {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            try:
                self._progress.start()
            except LiveError:  # rich < 14 shows one live display at a time (a harness's bars)
                self._progress = None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def phase(self, description: str, total: int | None = None) -> None:
        """Start a phase (the previous one's line is replaced)."""
        if self._progress is None:
            return
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(description, total=total)

    def advance(self, steps: int = 1) -> None:
        """One (or ``steps``) step(s) of the current phase done."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=steps)


SILENT = BuildProgress(enabled=False)  # what the passes get when no build reports
