"""Graph passes (survey Sec. 4.2, "frontend optimizations"): each is a function IR -> IR that
returns a new graph and leaves its input unchanged, so the IR can be printed before and after.

One module per family, in pipeline order: :mod:`.shapes` (:func:`infer_shapes`),
:mod:`.folding` (:func:`fold_constants`: constants, batch-norm folding, weight
pre-transposition), :mod:`.simplify` (algebraic simplification), :mod:`.cleanup`
(:func:`common_subexpressions`, :func:`dead_code_elimination`), :mod:`.layout`
(:func:`transform_layout`: NHWC + weight pre-packing), :mod:`.fusion` (:func:`fuse`,
:func:`fuse_attention`), :mod:`.memory` (:func:`plan_memory`: liveness + best-fit arena +
in-place reuse). :mod:`.views` (strided views of operands) and :mod:`.rewrite` (graph-editing
helpers) are shared by them and by the backend.
"""

from collections.abc import Callable

from provenml.compiler.ir import Graph
from provenml.compiler.passes.cleanup import common_subexpressions, dead_code_elimination
from provenml.compiler.passes.folding import fold_constants
from provenml.compiler.passes.fusion import anchor_rows, fuse, fuse_attention
from provenml.compiler.passes.layout import (
    NHWC_OPS,
    pack_conv_weight,
    pack_dense_weight,
    transform_layout,
)
from provenml.compiler.passes.memory import (
    ALIAS_OPS,
    Buffer,
    check_memory_plan,
    direct_outputs,
    liveness,
    plan_memory,
    storage_root,
)
from provenml.compiler.passes.rewrite import is_const, is_scalar_const, replace_uses
from provenml.compiler.passes.shapes import infer_shapes, shape_of
from provenml.compiler.passes.simplify import simplify
from provenml.compiler.passes.views import (
    VIEW_OPS,
    collapse_strides,
    strided_view,
    strides_over,
)

Pass = Callable[[Graph], Graph]

__all__ = [
    "ALIAS_OPS",
    "NHWC_OPS",
    "VIEW_OPS",
    "Buffer",
    "Pass",
    "anchor_rows",
    "check_memory_plan",
    "collapse_strides",
    "common_subexpressions",
    "dead_code_elimination",
    "direct_outputs",
    "fold_constants",
    "fuse",
    "fuse_attention",
    "infer_shapes",
    "is_const",
    "is_scalar_const",
    "liveness",
    "pack_conv_weight",
    "pack_dense_weight",
    "plan_memory",
    "replace_uses",
    "shape_of",
    "simplify",
    "storage_root",
    "strided_view",
    "strides_over",
    "transform_layout",
]
