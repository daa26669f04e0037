"""The harness: experiment registry, run directories, compute accounting, statistics, report.

It knows nothing about any one paper; each system registers its reproductions here.
"""

from provenml.core.cache import atomic_write_path, cache_dir
from provenml.core.compute import (
    ComputeLedger,
    count_flops,
    intra_op_threads,
    peak_memory_bytes,
)
from provenml.core.experiment import (
    SCALES,
    Claim,
    Config,
    ExperimentSpec,
    ProvenmlError,
    Result,
    experiment,
    get_experiment,
    registry,
)
from provenml.core.run import RunContext, run_experiment
from provenml.core.stats import Summary, paired_test, summarize, welch_test

__all__ = [
    "SCALES",
    "Claim",
    "ComputeLedger",
    "Config",
    "ExperimentSpec",
    "ProvenmlError",
    "Result",
    "RunContext",
    "Summary",
    "atomic_write_path",
    "cache_dir",
    "count_flops",
    "experiment",
    "get_experiment",
    "intra_op_threads",
    "paired_test",
    "peak_memory_bytes",
    "registry",
    "run_experiment",
    "summarize",
    "welch_test",
]
