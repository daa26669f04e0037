"""Stop 50 diagnostic: compiler.end_to_end's run_case for transformer:1, 10 times in one
process, printing each build's latency ratio, the pool's fallback counters and the build's
calibration and thread-choice log lines (docs/compiler_history.md, *Stop 50*).

Since stop 51 the cases and the count are arguments (default: transformer:1, 10 times), e.g.
``python calibration_loop_stop50.py resnet:1,mobilenet:1 5``."""

import os
import sys

import torch

from provenml.compiler.experiments import EndToEndConfig, run_case

CASES = tuple(sys.argv[1].split(",")) if len(sys.argv) > 1 else ("transformer:1",)
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 10
torch.set_num_threads(2)
cfg = EndToEndConfig(
    cases=CASES,
    arms=("eager", "inductor", "provenml"),
    ablations=(),
    threads=2,
    repeat=9,
    min_time=0.05,
    tuning=True,
    runtime="pool",
)
KEYS = ("team", "alone", "lost", "backoff", "skipped", "alone_ns", "team_ns")
for case, i in ((case, i) for case in CASES for i in range(COUNT)):
    res = run_case(cfg, case)
    lat, st = res["latency"], res["pool_stats"]["provenml"]
    log = [line for line in res["tuning_log"] if line.startswith(("threads", "fallback"))]
    counters = " ".join(f"{k} {st[k]}" for k in KEYS)
    print(
        f"{case} {i}: pm/eager {lat['provenml'] / lat['eager']:.2f} "
        f"pm {lat['provenml'] * 1e6:.0f} us; "
        f"{counters} ratio {st['ratio_permille']} scale {st['scale_permille']}; {log}; "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
