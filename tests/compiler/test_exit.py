"""A process that used two-thread builds exits cleanly: its worker threads (pool) and OpenMP
team are still spinning when the interpreter finalizes, frees the builds' arenas and exits.

The test suite itself leaves interpreter teardown out (tests/conftest.py,
``pytest_unconfigure``), so this is where the runtime's exit path is exercised."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import gc, sys
    import torch
    import provenml.compiler as pc

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 64)
    ).eval()
    x = torch.randn(4, 64)
    kept = []
    for runtime in ("pool", "openmp"):
        for _ in range(2):  # the second build shares the first one's library
            g = pc.compile(model, (x,), threads=2, tune_threads=False, adaptive=False,
                           tuning=False, runtime=runtime, cache_dir=sys.argv[1])
            for _ in range(200):
                g(x)
            kept.append(g)
    del kept[0]  # its arena freed right after a call, while the workers still spin
    gc.collect()
    kept[-1](x)
    print("ok")
    """
)


@pytest.mark.parametrize("attempt", range(3))
def test_a_process_with_two_thread_builds_exits_cleanly(attempt: int, cache: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, cache], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"exit status {proc.returncode}:\n{proc.stderr[-3000:]}"
    assert proc.stdout.strip().endswith("ok")
