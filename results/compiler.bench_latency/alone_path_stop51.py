"""Stop 51 diagnostic: the adaptive pool's alone path against the one-thread path, idle.

The test hooks count the other cores as busy and every verdict as lost, so every two-thread
call after the first few runs alone (no probes). The arms are timed in interleaved rounds
(docs/compiler_history.md, *Stop 51*). Run from the repository root:
``python results/compiler.bench_latency/alone_path_stop51.py mlp:1,transformer:1``."""

import sys

import numpy as np
import torch
from scipy import stats
from stop51_case import Case

from provenml.compiler.experiments import interleaved_samples


def main() -> None:
    torch.set_num_threads(2)
    for case in sys.argv[1].split(","):
        built = Case.build(case)
        graph = built.compiled.graph
        graph.lib.pm_debug_force_busy(1)
        graph.lib.pm_debug_force_verdict(1)
        arms = {"1T": built.at(1), "2T alone": built.at(2), "1T again": built.at(1)}
        samples = {k: np.array(v) for k, v in interleaved_samples(arms, 31, 0.05).items()}
        pool = graph.pool_stats() or {}
        one, alone, again = samples["1T"], samples["2T alone"], samples["1T again"]
        log_alone, log_again = np.log(one / alone), np.log(one / again)
        print(
            f"{case}: 1T {np.median(one) * 1e6:.1f} us, 2T alone {np.median(alone) * 1e6:.1f} us,"
            f" 1T again {np.median(again) * 1e6:.1f} us; 2T alone / 1T "
            f"{np.median(alone) / np.median(one):.4f} "
            f"(paired p {stats.ttest_1samp(log_alone, 0).pvalue:.3g});"
            f" 1T again / 1T {np.median(again) / np.median(one):.4f} "
            f"(p {stats.ttest_1samp(log_again, 0).pvalue:.3g}); team calls {pool.get('team')}, "
            f"alone {pool.get('alone')}",
            flush=True,
        )
        graph.lib.pm_debug_force_busy(0)
        graph.lib.pm_debug_force_verdict(0)


if __name__ == "__main__":
    main()
