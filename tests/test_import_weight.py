"""Importing a system's components must not load the harness or its heavy dependencies.

Each package is imported in a fresh process (``sys.modules`` of this test process already holds
everything), which then reports which of the watched modules got loaded:

- ``rich`` (the CLI's tables and progress bars), ``scipy.stats`` (the harness's statistics) and
  ``provenml.core.run`` (run directories) for every system package and the shared layer;
- additionally ``torch_geometric`` for the shared layer's ``provenml.nn`` and ``provenml.data``,
  which import PyG only when a graph encoder is built or a graph generated.

To keep this cheap on 2 cores, one interpreter imports numpy and torch (which every package
needs and none of the watched modules) and forks a child per package; ``provenml.errors``, which
must not load torch at all, gets a bare interpreter.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys

import pytest

SYSTEMS = (
    "schedules",
    "selection",
    "metarl",
    "graphpretrain",
    "federated",
    "distrl",
    "ssl",
    "explain",
    "fewshot",
    "compiler",
    "kge",
)
HARNESS_AND_HEAVY = ("rich", "scipy.stats", "provenml.core.run")
PACKAGES = {f"provenml.{name}": HARNESS_AND_HEAVY for name in SYSTEMS} | {
    "provenml.nn": (*HARNESS_AND_HEAVY, "torch_geometric"),
    "provenml.rl": HARNESS_AND_HEAVY,
    "provenml.data": (*HARNESS_AND_HEAVY, "torch_geometric"),
}
ERRORS_WATCHED = (*HARNESS_AND_HEAVY, "torch", "provenml.core")

_PROBE = r"""
import importlib, json, os, sys
targets, preload = json.loads(sys.argv[1]), sys.argv[2] == "1"
if preload:
    import numpy, torch  # needed by every package, watched by none: children inherit them
results = {}
for module, watched in targets.items():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(module)
            out = {"loaded": [m for m in watched if m in sys.modules]}
        except BaseException as exc:
            out = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(write, json.dumps(out).encode())
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    results[module] = json.loads(data)
print(json.dumps(results))
"""

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the probe forks")


def _probe(targets: dict[str, tuple[str, ...]], preload: bool) -> dict[str, dict]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(targets), "1" if preload else "0"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@functools.cache
def _results() -> dict[str, dict]:
    """What importing each written package (and a bare ``provenml.core``) loads."""
    written = {
        m: (*watched, "provenml.core")
        for m, watched in PACKAGES.items()
        if importlib.util.find_spec(m) is not None
    }
    written["provenml.core"] = HARNESS_AND_HEAVY
    results = _probe(written, preload=True)
    results |= _probe({"provenml.errors": ERRORS_WATCHED}, preload=False)
    return results


@pytest.mark.parametrize("module", sorted(PACKAGES))
def test_importing_a_package_stays_light(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not written yet")
    result = _results()[module]
    assert "error" not in result, f"import {module} failed: {result['error']}"
    loaded = result["loaded"]
    heavy = [m for m in loaded if m in PACKAGES[module]]
    if heavy and "provenml.core" in loaded and _results()["provenml.core"]["loaded"]:
        # A component that needs a harness helper (ComputeLedger, cache_dir) imports
        # provenml.core; that stays light only once core/__init__ loads its parts lazily.
        pytest.xfail(
            "provenml.core/__init__ is still eager (H1's lazy core, issue 24 item 2, pending); "
            f"{module} loads {heavy}"
        )
    assert not heavy, f"import {module} loads {heavy}"


def test_errors_imports_nothing_heavy() -> None:
    assert _results()["provenml.errors"] == {"loaded": []}


def test_the_probe_sees_a_heavy_import() -> None:
    # the probe itself: importing scipy.stats must be reported (else the tests above are blind)
    result = _probe({"scipy.stats": ("scipy.stats", "rich")}, preload=True)
    assert result == {"scipy.stats": {"loaded": ["scipy.stats"]}}
