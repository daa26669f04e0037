"""The harness: experiment registry, run directories, compute accounting, statistics, report.

It knows nothing about any one paper; each system registers its reproductions here::

    from provenml.core import Claim, Config, Result, RunContext, experiment

Names are loaded on first use (a module ``__getattr__``), so ``import provenml.core`` costs
nothing and asking for ``Claim`` does not load the runner, rich or scipy. Components that only
raise errors import :mod:`provenml.errors` instead.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Eager, and light (no torch, rich or scipy). Two functions share their name with a submodule
# (``experiment``, ``registry``): the first import of a submodule binds its name on this
# package, so both submodules are imported here first and the functions bound after them, for
# ``from provenml.core import experiment, registry`` to keep giving the functions.
import provenml.core.experiment  # noqa: F401  (see above)
from provenml.core.registry import experiment, registry
from provenml.errors import ProvenmlError

if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from provenml.core.cache import atomic_write_path, cache_dir, cache_root, write_atomic
    from provenml.core.claims import Claim, Member, Precondition, Published
    from provenml.core.compute import (
        ComputeLedger,
        count_flops,
        intra_op_threads,
        peak_memory_bytes,
    )
    from provenml.core.config import SCALES, Config
    from provenml.core.context import Memo, RunContext, progress
    from provenml.core.policy import resolve_device, use_agg_backend
    from provenml.core.registry import (
        ExperimentInfo,
        ExperimentSpec,
        Registry,
        get_experiment,
        list_experiments,
    )
    from provenml.core.results import Result, Table, flatten_summary
    from provenml.core.run import RunPlan, run_experiment
    from provenml.core.stats import Summary, paired_test, summarize, welch_test

_LAZY: dict[str, str] = {
    "SCALES": "provenml.core.config",
    "Config": "provenml.core.config",
    "Claim": "provenml.core.claims",
    "Member": "provenml.core.claims",
    "Precondition": "provenml.core.claims",
    "Published": "provenml.core.claims",
    "Result": "provenml.core.results",
    "Table": "provenml.core.results",
    "flatten_summary": "provenml.core.results",
    "ExperimentInfo": "provenml.core.registry",
    "ExperimentSpec": "provenml.core.registry",
    "Registry": "provenml.core.registry",
    "get_experiment": "provenml.core.registry",
    "list_experiments": "provenml.core.registry",
    "atomic_write_path": "provenml.core.cache",
    "cache_dir": "provenml.core.cache",
    "cache_root": "provenml.core.cache",
    "write_atomic": "provenml.core.cache",
    "ComputeLedger": "provenml.core.compute",
    "count_flops": "provenml.core.compute",
    "intra_op_threads": "provenml.core.compute",
    "peak_memory_bytes": "provenml.core.compute",
    "Memo": "provenml.core.context",
    "RunContext": "provenml.core.context",
    "progress": "provenml.core.context",
    "resolve_device": "provenml.core.policy",
    "use_agg_backend": "provenml.core.policy",
    "RunPlan": "provenml.core.run",
    "run_experiment": "provenml.core.run",
    "Summary": "provenml.core.stats",
    "paired_test": "provenml.core.stats",
    "summarize": "provenml.core.stats",
    "welch_test": "provenml.core.stats",
}

__all__ = [
    "SCALES",
    "Claim",
    "ComputeLedger",
    "Config",
    "ExperimentInfo",
    "ExperimentSpec",
    "Member",
    "Memo",
    "Precondition",
    "ProvenmlError",
    "Published",
    "Registry",
    "Result",
    "RunContext",
    "RunPlan",
    "Summary",
    "Table",
    "atomic_write_path",
    "cache_dir",
    "cache_root",
    "count_flops",
    "experiment",
    "flatten_summary",
    "get_experiment",
    "intra_op_threads",
    "list_experiments",
    "paired_test",
    "peak_memory_bytes",
    "progress",
    "registry",
    "resolve_device",
    "run_experiment",
    "summarize",
    "use_agg_backend",
    "welch_test",
    "write_atomic",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'provenml.core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
