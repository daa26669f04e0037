"""provenml.core.process_exit: a process that loaded Ray ends with its status after its atexit
handlers, without the interpreter's teardown; one that did not ends as ``sys.exit`` ends it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from provenml.core.process_exit import KEEP_TEARDOWN_ENV

EXIT_SCRIPT = textwrap.dedent(
    """
    import atexit, sys
    from pathlib import Path
    if sys.argv[2] == "ray":
        import ray  # noqa: F401  (loads ray._raylet)
    from provenml.core.process_exit import exit_process, ray_loaded
    atexit.register(Path(sys.argv[1]).write_text, "atexit ran")
    class Witness:  # its __del__ runs when the teardown clears __main__
        def __del__(self, path=sys.argv[1] + ".teardown", open=open):
            with open(path, "w") as f:
                f.write("teardown ran")
    witness = Witness()
    sys.stdout.write(f"ray loaded: {ray_loaded()}")  # no newline: only a flush writes it
    exit_process(int(sys.argv[3]))
    """
)


def _run(
    tmp_path: Path, mode: str, status: int, teardown: bool, **env: str
) -> subprocess.CompletedProcess:
    """Run the script; check that its atexit handler ran, and whether its teardown did."""
    marker = tmp_path / f"{mode}-{status}.txt"
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, str(marker), mode, str(status)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**{k: v for k, v in os.environ.items() if k != KEEP_TEARDOWN_ENV}, **env},
    )
    assert marker.read_text() == "atexit ran", proc.stderr[-2000:]
    assert marker.with_name(marker.name + ".teardown").exists() == teardown
    return proc


def test_a_process_that_loaded_ray_exits_with_its_status_after_atexit(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    proc = _run(tmp_path, "ray", 3, teardown=False)
    assert proc.returncode == 3 and proc.stdout == "ray loaded: True"


def test_without_ray_or_with_the_teardown_kept_it_is_sys_exit(tmp_path: Path) -> None:
    proc = _run(tmp_path, "plain", 4, teardown=True)
    assert proc.returncode == 4 and proc.stdout == "ray loaded: False"
    pytest.importorskip("ray")
    kept = _run(tmp_path, "ray", 5, teardown=True, **{KEEP_TEARDOWN_ENV: "1"})
    assert kept.returncode == 5 and kept.stdout == "ray loaded: True"


@pytest.mark.parametrize(("args", "status"), [(["--help"], 0), (["no-such-command"], 2)])
def test_the_provenml_command_keeps_typers_exit_status(args: list[str], status: int) -> None:
    code = "import sys; from provenml.cli import main; sys.argv[0] = 'provenml'; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == status, proc.stderr[-2000:]
