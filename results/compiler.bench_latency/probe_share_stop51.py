"""Stop 51 diagnostic: under the latency benchmark's background load (one CPU-bound process),
how many two-thread calls the pool runs as a team, and the speed-up 1T -> 2T over 9
interleaved rounds, with and without eager's one- and two-thread arms in the same rounds
(docs/compiler_history.md, *Stop 51*). Run from the repository root:
``python results/compiler.bench_latency/probe_share_stop51.py mlp:1,transformer:1``."""

import sys

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
from stop51_case import Case

from bench_compiler_latency import background_load
from provenml.compiler.experiments import interleaved_samples


def main() -> None:
    torch.set_num_threads(2)
    for case in sys.argv[1].split(","):
        built = Case.build(case)
        graph, at = built.compiled.graph, built.at
        with_eager = {"eager 1T": built.eager(1), "eager 2T": built.eager(2)}
        for _ in range(2):
            for label, extra in (("provenml arms only", {}), ("with eager 1T, 2T", with_eager)):
                with background_load(True):
                    before = graph.pool_stats() or {}
                    samples = interleaved_samples({"1T": at(1), "2T": at(2), **extra}, 9, 0.05)
                    after = graph.pool_stats() or {}
                team = after.get("team", 0) - before.get("team", 0)
                calls = team + after.get("alone", 0) - before.get("alone", 0)
                up = np.median(samples["1T"]) / np.median(samples["2T"])
                print(
                    f"{case} {label}: 2T calls as a team {team} of {calls} "
                    f"({team / max(1, calls):.1%}); speed-up 1T -> 2T {up:.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
