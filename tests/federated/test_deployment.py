"""Flower's deployment runtime on 127.0.0.1: a SuperLink and two SuperNodes, each a separate
process, run two rounds of the full method; the weights equal the single-process loop's."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from provenml.federated.engine import ARMS, build_federation, run_loop, tiny_settings
from provenml.federated.localhost import run_localhost_deployment

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_localhost_deployment_equals_the_loop(tmp_path: Path) -> None:
    settings = tiny_settings(num_clients=2)
    children_before = set(_children())
    saved = run_localhost_deployment("full", settings, seed=0, workdir=tmp_path, timeout=300)
    reference = run_loop(ARMS.get("full"), build_federation(settings, seed=0))
    assert settings.rounds == 2
    for key, value in reference.state.items():
        assert torch.allclose(saved["state"][key], value, atol=1e-5), key
    assert saved["failures"] == 0
    assert saved["bytes"] == reference.bytes_sent
    # every process the deployment started is gone
    leftover = [pid for pid in set(_children()) - children_before if _alive(pid)]
    for pid in leftover:  # do not leave them running even if the assertion fails
        os.kill(pid, signal.SIGKILL)
    assert not leftover


def _children() -> list[int]:
    me, out = os.getpid(), []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid == me:
                out.append(int(pid))
    return out
