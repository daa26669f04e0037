"""provenml latency against eager PyTorch and torch.compile (inductor), with compile times.

Each arm may use 1..--threads threads and keeps its fastest count (eager and inductor share
eager's best count; provenml picks its own by timing). Goals from the issue, at batch 1:
provenml/eager <= 0.5 on the MLP and the transformer block, provenml/inductor <= 1.0.

    .venv/bin/python benchmarks/bench_compiler_latency.py [--cases mlp:1,transformer:1]
        [--threads 2] [--repeat 9]
"""

from __future__ import annotations

import argparse
import os

from provenml.compiler.experiments import EndToEndConfig, run_case

GOAL_EAGER = 0.5
GOAL_INDUCTOR = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="mlp:1,transformer:1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--min-time", type=float, default=0.05)
    parser.add_argument("--no-tuning", action="store_true")
    args = parser.parse_args()
    cfg = EndToEndConfig(
        cases=tuple(args.cases.split(",")),
        arms=("eager", "inductor", "provenml"),
        ablations=(),
        threads=args.threads,
        repeat=args.repeat,
        min_time=args.min_time,
        tuning=not args.no_tuning,
    )
    print(f"load average before: {os.getloadavg()}")
    header = (
        f"{'case':<15}{'eager us':>10}{'inductor us':>13}{'provenml us':>13}"
        f"{'pm/eager':>10}{'pm/inductor':>13}{'compile pm s':>14}{'compile ind s':>15}  threads"
    )
    print(header)
    rows = []
    for case in cfg.cases:
        res = run_case(cfg, case)
        lat, comp = res["latency"], res["compile"]
        r_e = lat["provenml"] / lat["eager"]
        r_i = lat["provenml"] / lat["inductor"]
        rows.append((case, r_e, r_i))
        print(
            f"{case:<15}{lat['eager'] * 1e6:>10.1f}{lat['inductor'] * 1e6:>13.1f}"
            f"{lat['provenml'] * 1e6:>13.1f}{r_e:>10.2f}{r_i:>13.2f}"
            f"{comp['provenml']:>14.1f}{comp['inductor']:>15.1f}  {res['threads']}",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()}")
    for case, r_e, r_i in rows:
        goal_e = "met" if r_e <= GOAL_EAGER else "NOT met"
        goal_i = "met" if r_i <= GOAL_INDUCTOR else "NOT met"
        print(
            f"{case}: provenml/eager {r_e:.2f} (goal <= {GOAL_EAGER}: {goal_e}), "
            f"provenml/inductor {r_i:.2f} (goal <= {GOAL_INDUCTOR}: {goal_i})"
        )


if __name__ == "__main__":
    main()
