"""Stop 50 diagnostic: compiler.end_to_end's run_case for transformer:1, 10 times in one
process, printing each build's latency ratio, the pool's fallback counters and the build's
calibration and thread-choice log lines (docs/compiler.md, *Stop 50*)."""

import os

import torch

from provenml.compiler.experiments import EndToEndConfig, run_case

torch.set_num_threads(2)
cfg = EndToEndConfig(
    cases=("transformer:1",),
    arms=("eager", "inductor", "provenml"),
    ablations=(),
    threads=2,
    repeat=9,
    min_time=0.05,
    tuning=True,
    runtime="pool",
)
KEYS = ("team", "alone", "lost", "backoff", "skipped", "alone_ns", "team_ns")
for i in range(10):
    res = run_case(cfg, "transformer:1")
    lat, st = res["latency"], res["pool_stats"]["provenml"]
    log = [line for line in res["tuning_log"] if line.startswith(("threads", "fallback"))]
    counters = " ".join(f"{k} {st[k]}" for k in KEYS)
    print(
        f"{i}: pm/eager {lat['provenml'] / lat['eager']:.2f} pm {lat['provenml'] * 1e6:.0f} us; "
        f"{counters} ratio {st['ratio_permille']} scale {st['scale_permille']}; {log}; "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
