"""Errors raised on bad user input.

This module imports nothing, so any component can raise these without loading the harness
(``provenml.core``), rich or scipy. ``provenml.core`` re-exports them.
"""

from __future__ import annotations

__all__ = ["ProvenmlError"]


class ProvenmlError(Exception):
    """An error caused by the user's input; the CLI prints it as one line, without a traceback."""
