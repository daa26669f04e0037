"""Rearrangements a sweep of common PyTorch calls found refused at stop 67, each composed from
the IR's existing ops (no new kernel)."""

from __future__ import annotations

from typing import Any

from provenml.compiler.frontend.torch_fx import Handler

__all__ = ["MOVE_BOOL", "MOVE_FUNCTIONS", "MOVE_FUNCTION_NAMES", "MOVE_METHODS", "MOVE_MODULES"]

MOVE_FUNCTIONS: dict[Any, Handler] = {}
MOVE_FUNCTION_NAMES: dict[str, Handler] = {}
MOVE_METHODS: dict[str, Handler] = {}
MOVE_MODULES: dict[type, Handler] = {}
#: handlers a boolean tensor may pass through (pure moves keep a mask a mask)
MOVE_BOOL: tuple[Handler, ...] = ()
