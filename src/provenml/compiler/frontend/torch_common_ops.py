"""Activations, norms, maths and reductions a sweep of common PyTorch calls found refused at
stop 67, each composed from the IR's ops."""

from __future__ import annotations

from typing import Any

from provenml.compiler.frontend.torch_fx import Handler

__all__ = [
    "COMMON_BOOL",
    "COMMON_FUNCTIONS",
    "COMMON_FUNCTION_NAMES",
    "COMMON_METHODS",
    "COMMON_MODULES",
]

COMMON_FUNCTIONS: dict[Any, Handler] = {}
COMMON_FUNCTION_NAMES: dict[str, Handler] = {}
COMMON_METHODS: dict[str, Handler] = {}
COMMON_MODULES: dict[type, Handler] = {}
#: handlers that take boolean masks (any / all / count_nonzero)
COMMON_BOOL: tuple[Handler, ...] = ()
