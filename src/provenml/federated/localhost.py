"""A Flower deployment on this machine: one SuperLink and one SuperNode per client, each its
own process, driven by ``flwr run`` (what a multi-machine deployment does, on 127.0.0.1).

:func:`run_localhost_deployment` writes a Flower app (``pyproject.toml`` naming
:mod:`provenml.federated.deploy`'s apps), a Flower configuration (``$FLWR_HOME/config.toml``)
pointing ``flwr run`` at the SuperLink, starts the processes, runs the app, reads the final
weights the ``ServerApp`` saved, and stops every process it started (their process groups),
also on failure. On several machines, start ``flower-superlink`` on one and
``flower-supernode --superlink HOST:PORT --node-config "partition-id=K"`` on the others with
the same app (docs/federated.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from provenml.errors import ProvenmlError
from provenml.federated.engine import ARMS, FLSettings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise ProvenmlError(f"the SuperLink did not open port {port} within {timeout:.0f} s")


def write_flower_app(folder: Path, arm: str, settings: FLSettings, seed: int) -> Path:
    """A Flower app folder whose components are :mod:`provenml.federated.deploy`'s apps."""
    folder.mkdir(parents=True, exist_ok=True)
    result = folder / "result.pt"
    settings_json = json.dumps(json.dumps(settings.as_dict(), sort_keys=True))
    (folder / "pyproject.toml").write_text(
        f"""[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "provenml-federated-app"
version = "1.0.0"
description = "provenml.federated's ServerApp and ClientApp"
license = "MIT"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "provenml"

[tool.flwr.app.components]
serverapp = "provenml.federated.deploy:serverapp"
clientapp = "provenml.federated.deploy:clientapp"

[tool.flwr.app.config]
arm = "{ARMS.get(arm).name}"
seed = {int(seed)}
settings = {settings_json}
result-path = "{result}"
"""
    )
    return result


def run_localhost_deployment(
    arm: str, settings: FLSettings, seed: int, workdir: Path, timeout: float = 600.0
) -> dict[str, Any]:
    """Run ``arm`` through a SuperLink and ``num_clients`` SuperNodes on 127.0.0.1.

    Returns what the ``ServerApp`` saved: ``{"state", "failures", "bytes"}``. Every process
    started here is stopped before returning (SIGTERM to its process group, then SIGKILL).
    """
    workdir = Path(workdir)
    bin_dir = Path(sys.executable).parent
    home = workdir / "flwr_home"
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "localhost"\n\n[superlink.localhost]\n'
        f'address = "127.0.0.1:{port}"\ninsecure = true\n'
    )
    result = write_flower_app(workdir / "app", arm, settings, seed)
    env = dict(os.environ, FLWR_HOME=str(home), PATH=f"{bin_dir}:{os.environ.get('PATH', '')}")
    processes: list[subprocess.Popen[bytes]] = []
    log = open(workdir / "flower.log", "wb")  # noqa: SIM115 - closed in finally
    try:

        def start(*args: str) -> None:
            processes.append(
                subprocess.Popen(
                    [str(bin_dir / args[0]), *args[1:]],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

        start(
            "flower-superlink",
            "--insecure",
            "--port",
            str(port),
            "--disable-runtime-dependency-installation",
        )
        _wait_for_port(port, 60)
        for partition in range(settings.data.num_clients):
            start(
                "flower-supernode",
                "--insecure",
                "--superlink",
                f"127.0.0.1:{port}",
                "--port",
                str(_free_port()),
                "--node-config",
                f"partition-id={partition}",
            )
        run = subprocess.run(
            [str(bin_dir / "flwr"), "run", str(workdir / "app"), "--stream"],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        deadline = time.monotonic() + 60
        while not result.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        if not result.exists():
            raise ProvenmlError(
                f"the deployment ended without a result (flwr run exit {run.returncode}); "
                f"see {workdir / 'flower.log'}: {run.stdout[-500:]} {run.stderr[-500:]}"
            )
        return dict(torch.load(result))
    finally:
        for proc in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in processes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
