"""Separately compiled builds of one model, timed against each other in one process.

Two checks behind the stop-36 findings in docs/compiler_history.md (ratios within one run, so the
machine's speed cancels):

* ``--check rebuild``: ``--builds`` builds with identical options (all passes, fixed thread
  count). Each build allocates its own weight blob and arena; the table prints every build's
  latency over the first one's and where its blob and arena start relative to a 64-byte cache
  line. Before the runtime aligned them, a build whose weights began 16-48 bytes past a line
  ran up to 13% slower (``resnet_stage:3``).
* ``--check memory-planning``: the build with and without static memory planning, at 1 and 2
  threads, with the arena size, the number of dependency edges of the pool schedule and the
  number of stage pairs it orders (directly or transitively). Before stop 37 reusing an arena
  block ordered the block's writer after its last reader; since, a parallel build reuses only
  where that order already holds, so both builds order the same pairs. ``--profile`` adds
  each build's per-stage work (``Compiled.profile``), where what is left of the difference
  shows.

    .venv/bin/python benchmarks/bench_compiler_builds.py --case resnet:1 --check memory-planning \
        [--profile]
    .venv/bin/python benchmarks/bench_compiler_builds.py --case resnet_stage:3 --check rebuild
    .venv/bin/python benchmarks/bench_compiler_builds.py --case transformer:1 --check recycling

* ``--check tunings`` (stop 46): ``--builds`` builds each tuned from an empty tuning cache with
  the tuner's near ties settled inside the graph (``settle_ties=True``, the default) and as
  many without (the fastest candidate alone, stop 44's rule), plus a rebuild from the first
  build's cache (identical code and picks: the comparison's resolution). Prints each build's
  picks and latency (team every call: the fallback off), and per rule the spread between its
  builds. Before stop 46 the picks of ``resnet_stage:3`` changed from tuning to tuning and the
  builds lay 15% apart.

    .venv/bin/python benchmarks/bench_compiler_builds.py --case resnet_stage:3 --check tunings \
        --builds 3 --min-time 0.2

* ``--check recycling`` (stop 38): one build, called with its outputs recycled
  (``CompiledGraph.recycle_outputs``, the default for outputs of at most 4 MiB) and with a
  fresh ``torch.empty`` output every call, under two calling patterns: the result dropped at
  once (``f(x)``) and one name rebound (``y = f(x)``, the previous result alive during the
  call); eager PyTorch in the same rounds as the anchor.

Latency is the median of ``--rounds`` interleaved rounds (every build once per round, shuffled,
with an idle gap before each sample; ``compiler.experiments.interleaved_samples``). Quote the
load average printed at the end.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any

import numpy as np
import torch

from provenml.compiler import compile as pm_compile
from provenml.compiler.codegen import ordered_pairs
from provenml.compiler.experiments import interleaved_samples
from provenml.compiler.models import build_model

CACHE_LINE = 64  # bytes (also `provenml.compiler.runtime.CACHE_LINE`, absent before stop 36)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", default="resnet:1", help="model:batch, e.g. resnet_stage:3")
    parser.add_argument(
        "--check",
        choices=("rebuild", "memory-planning", "recycling", "tunings"),
        default="rebuild",
    )
    parser.add_argument(
        "--builds", type=int, default=4, help="builds for --check rebuild, tunings per rule"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--min-time", type=float, default=0.02)
    parser.add_argument("--profile", action="store_true", help="per-stage work of each build")
    parser.add_argument("--profile-calls", type=int, default=200)
    args = parser.parse_args()
    name, _, batch = args.case.partition(":")
    model, x = build_model(name, int(batch or 1))
    model.eval()
    builds: dict[str, Any] = {}
    if args.check == "recycling":
        recycling(model, x, args)
        return
    if args.check == "tunings":
        tunings(model, x, args)
        return
    if args.check == "rebuild":
        for k in range(args.builds):
            builds[f"build {k}"] = pm_compile(
                model, (x,), threads=args.threads, tune_threads=False, runtime="pool"
            )
    else:
        for threads in sorted({1, args.threads}):
            for planned in (True, False):
                key = f"{threads}T, {'planned' if planned else 'unplanned'}"
                builds[key] = pm_compile(
                    model,
                    (x,),
                    threads=threads,
                    tune_threads=False,
                    memory_planning=planned,
                    runtime="pool",
                )
    calls = {k: (lambda b=b: b(x)) for k, b in builds.items()}
    with torch.no_grad():
        rounds = interleaved_samples(calls, args.rounds, args.min_time)
    first = np.array(next(iter(rounds.values())))
    print(f"{args.case}, --check {args.check}, {args.rounds} interleaved rounds")
    print(
        f"{'build':34s} {'median us':>10s} {'/ first':>8s} {'blob%64':>8s} {'arena%64':>9s}", end=""
    )
    print(f" {'arena KiB':>10s} {'stages':>7s} {'dep edges':>10s} {'ordered':>8s}")
    for key, samples in rounds.items():
        graph = builds[key].graph
        program = graph.program
        ratio = float(np.median(np.array(samples) / first))
        print(
            f"{key:34s} {np.median(samples) * 1e6:10.1f} {ratio:8.3f}"
            f" {graph.consts.ctypes.data % CACHE_LINE:8d} {graph.arena.ctypes.data % CACHE_LINE:9d}"
            f" {program.arena_floats * 4 // 1024:10d} {len(program.stages):7d}"
            f" {sum(map(len, program.stage_deps)):10d} {len(ordered_pairs(program.stage_deps)):8d}"
        )
    if args.profile:
        profiles = {}
        for key, build in builds.items():
            build.graph.set_adaptive(False)  # every call by the team, as profiled
            with torch.no_grad():
                profiles[key] = build.profile(x, calls=args.profile_calls)
            build.graph.set_adaptive(True)
        keys = list(profiles)
        print("\nper-stage work in us (all threads' chunks; median of the profiled calls)")
        print(f"{'stage':34s} " + " ".join(f"{k[:22]:>22s}" for k in keys))
        first_profile = profiles[keys[0]]
        for s_idx, row in enumerate(first_profile.stages):
            cells = " ".join(f"{profiles[k].stages[s_idx].work_us:22.1f}" for k in keys)
            print(f"{row.function[:34]:34s} {cells}")
        print(f"{'total work':34s} " + " ".join(f"{profiles[k].work_us:22.1f}" for k in keys))
        print(f"{'sum of spans':34s} " + " ".join(f"{profiles[k].span_us:22.1f}" for k in keys))
    print("load average", tuple(round(v, 2) for v in os.getloadavg()))


def _picks(build: Any) -> str:
    """The tuned nodes' schedules, e.g. ``linear_6 8x32k4``, in graph order."""
    tuned = dict(build.stages)["tune"].nodes
    return ", ".join(
        "{} {mr}x{nr}k{ku}".format(n.name, **n.attrs["schedule"])
        for n in tuned
        if "schedule" in n.attrs
    )


def tunings(model: torch.nn.Module, x: torch.Tensor, args: argparse.Namespace) -> None:
    """Empty-cache tunings with and without settling ties in the graph, timed together."""
    builds: dict[str, Any] = {}
    first_cache = ""
    for settle in (True, False):
        for k in range(args.builds):
            cache = tempfile.mkdtemp(prefix="pm_tunings_")
            first_cache = first_cache or cache
            builds[f"{'settled' if settle else 'alone'} {k}"] = pm_compile(
                model,
                (x,),
                threads=args.threads,
                tune_threads=False,
                settle_ties=settle,
                cache_dir=cache,
            )
    builds["settled 0 rebuilt"] = pm_compile(
        model, (x,), threads=args.threads, tune_threads=False, cache_dir=first_cache
    )
    for build in builds.values():
        build.graph.set_adaptive(False)  # the team runs every call, as settling times them
    calls = {k: (lambda b=b: b(x)) for k, b in builds.items()}
    with torch.no_grad():
        rounds = interleaved_samples(calls, args.rounds, args.min_time)
    medians = {k: float(np.median(v)) for k, v in rounds.items()}
    print(f"{args.case}, --check tunings, {args.threads} threads, {args.rounds} rounds")
    print(f"{'build':18s} {'median us':>10s} {'compile s':>10s}  picks")
    for key, build in builds.items():
        print(
            f"{key:18s} {medians[key] * 1e6:10.1f} {build.compile_seconds:10.1f}  {_picks(build)}"
        )
    for rule in ("settled", "alone"):
        own = [medians[f"{rule} {k}"] for k in range(args.builds)]
        distinct = len({_picks(builds[f"{rule} {k}"]) for k in range(args.builds)})
        print(
            f"{rule}: {distinct} distinct pick sets of {args.builds}; slowest / fastest build "
            f"{max(own) / min(own):.3f}; median {np.median(own) * 1e6:.1f} us"
        )
    same = medians["settled 0 rebuilt"] / medians["settled 0"]
    print(f"identical code and picks (settled 0 rebuilt / settled 0): {same:.3f}")
    print("load average", tuple(round(v, 2) for v in os.getloadavg()))


def recycling(model: torch.nn.Module, x: torch.Tensor, args: argparse.Namespace) -> None:
    """Recycled against fresh outputs, per calling pattern, eager in the same rounds."""
    build = pm_compile(model, (x,), threads=args.threads, tune_threads=False, runtime="pool")
    graph = build.graph
    held: list[Any] = [None]

    def arm(recycle: bool, rebind: bool) -> Any:
        def call() -> None:
            graph.recycle_outputs = recycle
            if rebind:
                held[0] = build(x)
            else:
                build(x)

        return call

    calls = {
        "eager (anchor)": lambda: model(x),
        "recycled, result dropped": arm(True, False),
        "fresh, result dropped": arm(False, False),
        "recycled, one name rebound": arm(True, True),
        "fresh, one name rebound": arm(False, True),
    }
    with torch.no_grad():
        rounds = interleaved_samples(calls, args.rounds, args.min_time)
    graph.recycle_outputs = True
    eager = np.array(rounds["eager (anchor)"])
    print(f"{args.case}, --check recycling, {args.threads} threads, {args.rounds} rounds")
    print(f"{'arm':30s} {'median us':>10s} {'/ eager':>8s} {'/ fresh, same pattern':>22s}")
    for key, samples in rounds.items():
        arr = np.array(samples)
        fresh = key.replace("recycled", "fresh")
        vs = float(np.median(arr / np.array(rounds[fresh]))) if fresh in rounds else 1.0
        print(f"{key:30s} {np.median(arr) * 1e6:10.1f} {np.median(arr / eager):8.3f} {vs:22.3f}")
    print("load average", tuple(round(v, 2) for v in os.getloadavg()))


if __name__ == "__main__":
    main()
