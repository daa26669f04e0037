"""The backend (survey Sec. 4.3/4.4): lowering of the planned graph IR to the loop IR and then
to one C translation unit, one kernel per fused group, in one persistent OpenMP region.

Modules, in pipeline order: :mod:`.resources` (work and scratch per kernel, before memory
planning), :mod:`.lowering` (the core: pointers, declarations, the entry function and the
op -> kernel table), :mod:`.kernels` (one module per kernel kind: elementwise, matmul, conv,
attention, reduction, movement, pool; the register tile in :mod:`.kernels.tiles`),
:mod:`.barriers` (where the entry synchronises), :mod:`.c_source` (C text: header, op
expressions, the micro-kernel helper), :mod:`.nests` (shared loop-nest builders).
"""

from provenml.compiler.codegen.barriers import (
    Access,
    Region,
    dependencies,
    ordered_pairs,
    place_barriers,
)
from provenml.compiler.codegen.c_source import (
    ARGS,
    C_HEADER,
    POOL_RUNTIME_C,
    SIGNATURE,
    VLEN,
    c_binary,
    c_unary,
    microkernel,
)
from provenml.compiler.codegen.kernels import KERNELS
from provenml.compiler.codegen.lowering import RUNTIMES, Lowering, Program, lower
from provenml.compiler.codegen.resources import (
    DEFAULT_SCHEDULE,
    PARALLEL_WORK,
    annotate_scratch,
    attention_parts,
    attention_scratch,
    scratch_floats,
    work_estimate,
)

__all__ = [
    "ARGS",
    "C_HEADER",
    "DEFAULT_SCHEDULE",
    "KERNELS",
    "PARALLEL_WORK",
    "POOL_RUNTIME_C",
    "RUNTIMES",
    "SIGNATURE",
    "VLEN",
    "Access",
    "Lowering",
    "Program",
    "Region",
    "annotate_scratch",
    "attention_parts",
    "attention_scratch",
    "c_binary",
    "c_unary",
    "dependencies",
    "lower",
    "microkernel",
    "ordered_pairs",
    "place_barriers",
    "scratch_floats",
    "work_estimate",
]
