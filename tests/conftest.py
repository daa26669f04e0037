"""A toy experiment registered for the harness tests (it knows nothing about any paper)."""

from __future__ import annotations

import os

import pytest

# The hand-written C kernels of S2 and provenml.rl run by default only on AVX-512 and AVX2 CPUs
# (where they are the faster path); the tests check them against PyTorch on every CPU.
os.environ.setdefault("PROVENML_NATIVE", "1")

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from provenml.core import Claim, Config, Result, RunContext, experiment
from provenml.core.process_exit import exit_process, skips_teardown


@dataclass
class ToyConfig(Config):
    steps: int = 5
    rate: float = 0.5
    mode: Literal["ok", "crash", "interrupt"] = "ok"
    widths: tuple[int, ...] = (1, 2)
    flag: bool = False
    limit: int | None = None
    presets: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {"steps": 3}}


@experiment("toy.harness", system="S0", claim="toy claim", config=ToyConfig, time={"smoke": "1 s"})
def toy(cfg: ToyConfig, ctx: RunContext) -> Result:
    for step in ctx.track(range(cfg.steps), "toy"):
        ctx.log(step=step, loss=1.0 / (step + 1))
        if cfg.mode == "crash" and step == 1:
            raise RuntimeError("boom")
        if cfg.mode == "interrupt" and step == 1:
            raise KeyboardInterrupt
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    ctx.savefig(fig, "curve")
    value = 0.1 * (ctx.seed + 1)
    return Result(
        claims=[
            Claim(
                key="toy",
                statement="x < 1",
                metric="m",
                ours_label="x",
                ours=value,
                baselines={"one": 1.0},
                comparison="<",
            )
        ],
        summary={"value": value},
    )


def _toy_parts(cfg: ToyConfig) -> list[dict[str, Any]]:
    return [{"widths": (width,)} for width in cfg.widths]


def _toy_merge(cfg: ToyConfig, parts: list[Result], ctx: RunContext) -> Result:
    values = {w: v for part in parts for w, v in part.data["values"].items()}
    total = sum(values.values())
    return Result(
        claims=[
            Claim(
                key="toy_total",
                statement="total > 0",
                metric="m",
                ours_label="total",
                ours=total,
                baselines={"zero": 0.0},
                comparison=">",
            )
        ],
        summary={"total": total},
        data={"values": values, "order": [next(iter(p.data["values"])) for p in parts]},
    )


@experiment(
    "toy.parts",
    system="S0",
    claim="toy claim in parts",
    config=ToyConfig,
    time={"smoke": "1 s"},
    parts=_toy_parts,
    merge=_toy_merge,
)
def toy_parts(cfg: ToyConfig, ctx: RunContext) -> Result:
    ctx.log(widths=list(cfg.widths))
    return Result(data={"values": {w: float(w * (ctx.seed + 1)) for w in cfg.widths}})


_SESSIONS: list[pytest.Session] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    _SESSIONS.append(session)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End a session that loaded Ray without the interpreter's teardown, once the results are
    reported (:mod:`provenml.core.process_exit`: CI's run of stop 51, ``issues stops``' 50,
    passed all 1358 tests and then died of a segmentation fault in that teardown; not
    reproduced here in four full runs, fifteen runs of the Ray tests and sixteen Ray scripts).
    Sessions that never load Ray end as usual; ``PROVENML_KEEP_TEARDOWN=1`` keeps it always.
    tests/compiler/test_exit.py checks that a process that used the compiler's threaded
    builds, whose worker threads also outlive their calls, exits cleanly."""
    if _SESSIONS and skips_teardown():  # else return: pytest ends the process as usual
        exit_process(int(_SESSIONS[-1].exitstatus))
