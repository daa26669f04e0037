"""Stop 51 diagnostic: under the latency benchmark's background load, is a provenml sample
slower when it follows eager's two-thread arm? The benchmark's five scaling arms in freshly
shuffled rounds; each provenml sample's log time against its round's mean of the provenml
arms, split by its predecessor (docs/compiler_history.md, *Stop 51*). Run from the repository root:
``python results/compiler.bench_latency/order_effect_stop51.py mlp:1,transformer:1 60``."""

import sys
import time

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
from stop51_case import Case

from bench_compiler_latency import background_load
from provenml.compiler.experiments import _sample

PROVENML_ARMS = ("provenml 1T", "provenml 2T", "provenml 1T again")


def main() -> None:
    torch.set_num_threads(2)
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    for case in sys.argv[1].split(","):
        built = Case.build(case)
        fns = {
            "provenml 1T": built.at(1),
            "eager 1T": built.eager(1),
            "provenml 2T": built.at(2),
            "eager 2T": built.eager(2),
            "provenml 1T again": built.at(1),
        }
        for fn in fns.values():
            for _ in range(3):
                fn()
        rng = np.random.default_rng(int(time.time()))
        rows: list[tuple[int, str, str | None, float]] = []
        order = list(fns)
        with background_load(True):
            for r in range(rounds):
                rng.shuffle(order)
                previous = None
                for arm in order:
                    time.sleep(0.01)
                    rows.append((r, arm, previous, float(np.log(_sample(fns[arm], 0.05)))))
                    previous = arm
        base = {
            r: np.mean([t for (rr, arm, _, t) in rows if rr == r and arm in PROVENML_ARMS])
            for r in range(rounds)
        }
        for arm in PROVENML_ARMS:
            after = [t - base[r] for (r, a, p, t) in rows if a == arm and p == "eager 2T"]
            other = [t - base[r] for (r, a, p, t) in rows if a == arm and p != "eager 2T"]
            print(
                f"{case} {arm}: after eager 2T {np.mean(after):+.4f} (n {len(after)}), "
                f"otherwise {np.mean(other):+.4f} (n {len(other)}); "
                f"ratio {np.exp(np.mean(after) - np.mean(other)):.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
