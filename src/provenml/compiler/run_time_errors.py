"""The errors a compiled graph reports at run time (stop 60): a kernel that meets an index out
of range or an integer division by zero records it (``pm_fail`` in
:data:`provenml.compiler.codegen.c_source.C_HEADER`), skips the bad element, and the caller
raises one of these after the call, as PyTorch raises on the same input."""

from __future__ import annotations

from collections.abc import Sequence

from provenml.errors import ProvenmlError

__all__ = [
    "PM_BAD_INDEX",
    "PM_BAD_ROW",
    "PM_BAD_WRAPPED_INDEX",
    "PM_ZERO_DIVISION",
    "IndexOutOfRange",
    "IntegerDivisionByZero",
    "ValueGuardFailed",
    "run_time_error",
]


class IndexOutOfRange(ProvenmlError, IndexError):
    """A compiled graph met an index out of its tensor's range at run time (PyTorch raises
    there too); the kernel skipped it, so nothing outside the tensor was read or written."""


class IntegerDivisionByZero(ProvenmlError, ZeroDivisionError):
    """A compiled graph divided an integer by zero (``//`` or ``%``; PyTorch raises too)."""


class ValueGuardFailed(ProvenmlError, ValueError):
    """A number the model reads from its inputs' values (``int(batch.max()) + 1``,
    ``mask.sum().item()``), which the compiled graph keeps as it was on the example inputs
    (stop 71), is different on this call's inputs: the compiled graph does not fit them."""


def value_guard_failed(what: str, expected: int | bool, got: float) -> ValueGuardFailed:
    """The error for a failed :class:`~provenml.compiler.ir.ValueGuard`."""
    shown = int(got) if float(got).is_integer() else got
    return ValueGuardFailed(
        f"compiled graph: the model reads a number from its inputs' values ({what}): it was "
        f"{expected} on the example inputs and is {shown} on these, and the compiled graph "
        f"keeps the example's {expected} (it may size the tensors after it); compile again "
        f"with example inputs where it is {shown}"
    )


# the kinds of run-time error a kernel records (``pm_fail`` in codegen.c_source.C_HEADER)
PM_BAD_ROW, PM_ZERO_DIVISION, PM_BAD_INDEX, PM_BAD_WRAPPED_INDEX = 1, 2, 3, 4


def run_time_error(
    kind: int, site: int, value: int, limit: int, sites: Sequence[str]
) -> ProvenmlError:
    """The exception for an error a kernel recorded: ``kind`` (``PM_*``), ``site`` (a number
    in ``sites``, from 1; 0 for none), the offending ``value`` and the dimension's size."""
    if kind == PM_ZERO_DIVISION:
        return IntegerDivisionByZero(
            f"compiled graph: integer division by zero ({value} // 0 or {value} % 0)"
        )
    where = f" in {sites[site - 1]}" if 0 < site <= len(sites) else ""
    if kind == PM_BAD_ROW:
        return IndexOutOfRange(
            f"compiled graph: index {value} is out of range for a tensor of {limit} rows{where}"
        )
    lowest = -limit if kind == PM_BAD_WRAPPED_INDEX else 0
    return IndexOutOfRange(
        f"compiled graph: index {value} is out of bounds for a dimension of size {limit}"
        f"{where} (valid: {lowest} to {limit - 1})"
    )
