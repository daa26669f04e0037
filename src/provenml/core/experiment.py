"""Experiment registry, scale presets, and the ``Claim`` / ``Result`` records (re-exported).

The pieces live in :mod:`provenml.core.config` (``Config``, presets, ``--set`` parsing),
:mod:`provenml.core.claims` (``Claim`` and its comparisons), :mod:`provenml.core.results`
(``Result``, ``Table``, ``flatten_summary``) and :mod:`provenml.core.registry` (``experiment``,
``get_experiment``, ``Registry``); this module keeps the old import path working.
"""

from __future__ import annotations

from provenml.core.claims import (
    COMPARISONS,
    Claim,
    Comparison,
    Member,
    Precondition,
    Published,
    Verdict,
)
from provenml.core.config import SCALES, Config, merged_presets, parse_value
from provenml.core.registry import (
    EXPERIMENTS,
    ExperimentInfo,
    ExperimentSpec,
    MergeFn,
    PartsFn,
    Registry,
    RunFn,
    SummarizeFn,
    experiment,
    get_experiment,
    list_experiments,
    registered,
    registry,
)
from provenml.core.results import Result, Table, flatten_summary
from provenml.errors import ProvenmlError

__all__ = [
    "COMPARISONS",
    "EXPERIMENTS",
    "SCALES",
    "Claim",
    "Comparison",
    "Config",
    "ExperimentInfo",
    "ExperimentSpec",
    "Member",
    "MergeFn",
    "PartsFn",
    "Precondition",
    "ProvenmlError",
    "Published",
    "Registry",
    "Result",
    "RunFn",
    "SummarizeFn",
    "Table",
    "Verdict",
    "experiment",
    "flatten_summary",
    "get_experiment",
    "list_experiments",
    "merged_presets",
    "parse_value",
    "registered",
    "registry",
]
