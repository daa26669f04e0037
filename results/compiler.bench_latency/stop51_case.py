"""Shared by the stop-51 diagnostics in this folder: one case's model, input and two-thread
pool build, and calls of that build at a fixed thread count."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from provenml.compiler.api import compile as pm_compile
from provenml.compiler.experiments import _threaded
from provenml.compiler.models import build_model


@dataclass
class Case:
    """A case (``"name:batch"``) built for two threads with the pool runtime."""

    model: torch.nn.Module
    x: torch.Tensor
    compiled: Any

    @classmethod
    def build(cls, case: str) -> "Case":
        name, batch = case.split(":")
        model, x = build_model(name, batch=int(batch))
        compiled = pm_compile(model, (x,), threads=2, runtime="pool", tune_threads=False)
        return cls(model, x, compiled)

    def at(self, threads: int) -> Callable[[], object]:
        """A call of the build at ``threads`` threads (set on every call, as the benchmark does)."""

        def call() -> object:
            self.compiled.graph.set_threads(threads)
            return self.compiled(self.x)

        return call

    def eager(self, threads: int) -> Callable[[], object]:
        """A call of the eager model with ``threads`` torch threads."""
        return _threaded(torch.no_grad()(lambda: self.model(self.x)), threads)
