"""provenml latency against eager PyTorch and torch.compile (inductor), with compile times.

Each arm may use 1..--threads threads and keeps its fastest count (eager and inductor share
eager's best count; provenml picks its own by timing). Goals from the issue, at batch 1:
provenml/eager <= 0.5 on the MLP and the transformer block, provenml/inductor <= 1.0.

    .venv/bin/python benchmarks/bench_compiler_latency.py [--cases mlp:1,transformer:1]
        [--threads 2] [--repeat 9] [--scaling]

``--scaling`` adds, per case, provenml and eager at every fixed thread count (1..--threads,
interleaved rounds, median), which shows how each scales from one thread to two independently
of the thread count the arms picked.
"""

from __future__ import annotations

import argparse
import os

import torch

from provenml.compiler.api import compile as pm_compile
from provenml.compiler.experiments import EndToEndConfig, _median_latency, _threaded, run_case
from provenml.compiler.models import build_model

GOAL_EAGER = 0.5
GOAL_INDUCTOR = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="mlp:1,transformer:1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--min-time", type=float, default=0.05)
    parser.add_argument("--no-tuning", action="store_true")
    parser.add_argument("--scaling", action="store_true")
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
    if args.scaling:
        for case in cfg.cases:
            scaling(case, cfg)
    for case, r_e, r_i in rows:
        goal_e = "met" if r_e <= GOAL_EAGER else "NOT met"
        goal_i = "met" if r_i <= GOAL_INDUCTOR else "NOT met"
        print(
            f"{case}: provenml/eager {r_e:.2f} (goal <= {GOAL_EAGER}: {goal_e}), "
            f"provenml/inductor {r_i:.2f} (goal <= {GOAL_INDUCTOR}: {goal_i})"
        )


def scaling(case: str, cfg: EndToEndConfig) -> None:
    """provenml and eager at each fixed thread count, timed in the same interleaved rounds."""
    name, batch = case.split(":")
    model, x = build_model(name, batch=int(batch))
    compiled = pm_compile(model, (x,), threads=cfg.threads, tuning=cfg.tuning, tune_threads=False)

    def pm_at(t: int) -> object:
        def call() -> object:
            compiled.graph.set_threads(t)
            return compiled(x)

        return call

    fns = {}
    for t in range(1, cfg.threads + 1):
        fns[f"provenml {t}T"] = pm_at(t)
        fns[f"eager {t}T"] = _threaded(torch.no_grad()(lambda: model(x)), t)
    before = torch.get_num_threads()
    try:
        lat = _median_latency(fns, cfg.repeat, cfg.min_time)
    finally:
        torch.set_num_threads(before)
    cells = ", ".join(f"{k} {v * 1e6:.1f} us" for k, v in lat.items())
    t = cfg.threads
    print(
        f"{case} fixed threads: {cells}; provenml {t}T/eager {t}T "
        f"{lat[f'provenml {t}T'] / lat[f'eager {t}T']:.2f}, provenml speed-up 1T->{t}T "
        f"{lat['provenml 1T'] / lat[f'provenml {t}T']:.2f}, eager "
        f"{lat['eager 1T'] / lat[f'eager {t}T']:.2f} (load {os.getloadavg()[0]:.2f})",
        flush=True,
    )


if __name__ == "__main__":
    main()
