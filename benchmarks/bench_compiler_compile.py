"""Cold compile time of provenml builds with the gcc runs in parallel (``build_many``, stop 54)
against one gcc run at a time, in one run.

Each sample is a fresh process compiling one case (``model:batch``) into an empty build and
tuning cache, as ``compiler.end_to_end``'s provenml arm does (2 threads, tuning, the pool
runtime, the thread count and the tuner's near ties timed); the only difference between the
two arms is ``PROVENML_BUILD_JOBS`` (1: every library built alone, the behaviour before stop
54; unset: as many gcc processes as the machine has CPUs, at most 8). Rounds alternate the
arms in a shuffled order. Prints per case the median compile seconds of each arm, the median
of the per-round ratios (parallel / serial) and the load average.

    .venv/bin/python benchmarks/bench_compiler_compile.py [--cases mlp:1,transformer:1] \
        [--rounds 3]

The compile time includes the timing the compiler itself does (the tuner's candidates, the
near ties in the graph, the thread count), which parallel builds do not shorten; the gcc
share is what they cut.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from provenml.compiler.build import BUILD_JOBS_ENV, build_jobs

CHILD = """
import json, sys
from provenml.compiler import compile as pm_compile
from provenml.compiler.models import build_model
name, batch, cache = sys.argv[1], int(sys.argv[2]), sys.argv[3]
model, x = build_model(name, batch=batch)
compiled = pm_compile(model, (x,), threads=2, tuning=True, runtime="pool", cache_dir=cache)
print(json.dumps({"seconds": compiled.compile_seconds}))
"""


def compile_seconds(case: str, jobs: int | None) -> float:
    """Seconds one fresh process takes to compile ``case`` into an empty cache."""
    name, batch = case.split(":")
    env = dict(os.environ)
    env.pop(BUILD_JOBS_ENV, None)
    if jobs is not None:
        env[BUILD_JOBS_ENV] = str(jobs)
    with tempfile.TemporaryDirectory(prefix="pm-compile-bench-") as cache:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, name, batch, cache],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    if proc.returncode != 0:
        raise SystemExit(f"compiling {case} failed:\n{proc.stderr[-3000:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="mlp:1,transformer:1,resnet:1")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"parallel arm: {build_jobs()} gcc processes; load average {os.getloadavg()}")
    rng = np.random.default_rng(0)
    for case in args.cases.split(","):
        samples: dict[str, list[float]] = {"serial": [], "parallel": []}
        for _ in range(args.rounds):
            arms = ["serial", "parallel"]
            rng.shuffle(arms)
            for arm in arms:
                samples[arm].append(compile_seconds(case, 1 if arm == "serial" else None))
        ratio = np.array(samples["parallel"]) / np.array(samples["serial"])
        print(
            f"{case:16s} serial {np.median(samples['serial']):6.2f} s  parallel "
            f"{np.median(samples['parallel']):6.2f} s  parallel/serial {np.median(ratio):.3f} "
            f"(rounds: {', '.join(f'{r:.3f}' for r in ratio)})"
        )
    print("load average", tuple(round(v, 2) for v in os.getloadavg()))


if __name__ == "__main__":
    main()
