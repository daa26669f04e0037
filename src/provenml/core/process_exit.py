"""Ending a process that loaded Ray: the atexit handlers, then ``os._exit``, no teardown.

``ray.shutdown()`` leaves the driver's native gRPC and GCS-client threads running
(``gcs_client_io_s``, ``grpc_global_tim``, ``event_engine``, ``default-executo``,
``resolver-execut``, ``timer_manager``, ``worker.io``: a plain ``ray.init()`` /
``ray.shutdown()`` script leaves them all). They go on running while the interpreter frees
its modules and the C runtime runs the shared libraries' destructors. The test suite's CI run
of stop 51 passed all 1358 tests and then died of a segmentation fault in that teardown. It
did not recur here, so the faulting thread is not known, but threads that outlive the
libraries they run in are the usual cause. A process that loaded Ray's native core therefore
ends through :func:`exit_process`: the atexit handlers still run (they stop child processes
and remove temporary folders), the standard streams are flushed, and ``os._exit`` ends the
process with its status, skipping only the finalization. Used by the ``provenml`` command and
by the test suite (tests/conftest.py). Stdlib only.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from typing import NoReturn

__all__ = ["KEEP_TEARDOWN_ENV", "exit_process", "ray_loaded", "skips_teardown"]

KEEP_TEARDOWN_ENV = "PROVENML_KEEP_TEARDOWN"  # "1": always the interpreter's normal exit


def ray_loaded() -> bool:
    """Whether this process has loaded Ray's native core (``import ray`` does)."""
    return "ray._raylet" in sys.modules


def skips_teardown() -> bool:
    """Whether :func:`exit_process` would skip the interpreter's teardown: Ray's native core
    is loaded and ``PROVENML_KEEP_TEARDOWN`` is not ``1``."""
    return ray_loaded() and os.environ.get(KEEP_TEARDOWN_ENV) != "1"


def exit_process(status: int) -> NoReturn:
    """End the process with ``status``: as ``sys.exit`` would where Ray's native core is not
    loaded (or ``PROVENML_KEEP_TEARDOWN=1``); else after the atexit handlers and a flush of
    the standard streams, with ``os._exit`` (no interpreter teardown; see the module)."""
    if not skips_teardown():
        sys.exit(status)
    atexit._run_exitfuncs()
    # the original streams too, where sys.stdout or sys.stderr was replaced (redirected, captured)
    for stream in {*(sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)} - {None}:
        with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing to flush
            stream.flush()
    os._exit(status)
