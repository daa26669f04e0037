"""The op -> kernel table of the lowering (tinygrad-style: one handler per op kind, no
if-chain). A key is a fused group's ``kind`` or a lone node's op; a handler takes the
:class:`~provenml.compiler.codegen.lowering.Lowering` state, the node and the kernel's name and
returns its loop nest."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from provenml.compiler import loopir as L
from provenml.compiler.codegen.kernels.attention import lower_attention
from provenml.compiler.codegen.kernels.conv import lower_conv
from provenml.compiler.codegen.kernels.elementwise import lower_elementwise
from provenml.compiler.codegen.kernels.matmul import lower_dense, lower_matmul
from provenml.compiler.codegen.kernels.movement import (
    cat,
    embedding,
    permute,
    scatter,
    slice_copy,
)
from provenml.compiler.codegen.kernels.pool import pool
from provenml.compiler.codegen.kernels.reduction import (
    arg_reduce,
    cumsum,
    group_norm,
    logcumsumexp,
    lower_fused_reduction,
    lower_row_op,
    reduce,
    topk,
)
from provenml.compiler.ir import ELEMENTWISE, Node

if TYPE_CHECKING:
    from provenml.compiler.codegen.lowering import Lowering

KernelHandler = Callable[["Lowering", Node, str], L.Kernel]

KERNELS: dict[str, KernelHandler] = {
    **dict.fromkeys(ELEMENTWISE, lower_elementwise),
    "elementwise": lower_elementwise,
    "dense": lower_dense,
    "matmul": lower_matmul,
    "conv2d": lower_conv,
    "attention": lower_attention,
    "reduction": lower_fused_reduction,
    "softmax": lower_row_op,
    "layer_norm": lower_row_op,
    "group_norm": group_norm,
    "mean": reduce,
    "sum": reduce,
    "amax": reduce,
    "amin": reduce,
    "argmax": arg_reduce,
    "cumsum": cumsum,
    "cumprod": cumsum,
    "logcumsumexp": logcumsumexp,
    "argmin": arg_reduce,
    "permute": permute,
    "layout_transform": permute,
    "slice": slice_copy,
    "cat": cat,
    "embedding": embedding,
    "scatter": scatter,
    "topk": topk,
    "topk_indices": topk,
    "max_pool2d": pool,
    "avg_pool2d": pool,
}

__all__ = ["KERNELS", "KernelHandler"]
