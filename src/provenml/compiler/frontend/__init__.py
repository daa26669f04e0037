"""Frontends (survey Sec. 4.1): models from a framework into the one graph IR
(:mod:`provenml.compiler.ir`), every value with a static shape.

:mod:`.torch_fx`: PyTorch modules through ``torch.fx`` (and the graphs ``torch.compile`` hands
to a backend), with :mod:`.torch_attention` for PyTorch's attention modules,
:mod:`.torch_recurrent` for its RNNs, :mod:`.torch_more_ops` for ops composed from the IR's
(flip, roll, tril, logsumexp, one_hot, pixel shuffle, GLU, Mish, PReLU, ...), and, since stop 67,
:mod:`.torch_common_ops` (RMSNorm, SELU, lerp, pow, prod, any / all, bucketize, LP pooling, ...)
and :mod:`.torch_moves` (diagonal, diff, outer, narrow, movedim, rot90, ...), and
:mod:`.torch_volumes` (3-d convolution, pooling and batch norm, from the 2-d ops), and
:mod:`.torch_setitem` (item assignment, ``t[index] = value``, stop 69); :mod:`.onnx`:
ONNX models (``onnx`` is imported only when it is used), rank-5 Conv / pools in
:mod:`.onnx_volumes`. Each frontend maps source ops to IR ops
through an op -> handler table and raises :class:`UnsupportedOp` naming the op and the node it
cannot map.
"""

import operator

import torch

from provenml.compiler.frontend.common import UnsupportedOp
from provenml.compiler.frontend.onnx import ONNX_OPS
from provenml.compiler.frontend.onnx_more_ops import MORE_ONNX_OPS
from provenml.compiler.frontend.onnx_volumes import volume_onnx_ops
from provenml.compiler.frontend.torch_attention import ATTENTION_FUNCTIONS, ATTENTION_MODULES
from provenml.compiler.frontend.torch_common_ops import (
    COMMON_BOOL,
    COMMON_FUNCTION_NAMES,
    COMMON_FUNCTIONS,
    COMMON_METHODS,
    COMMON_MODULES,
)
from provenml.compiler.frontend.torch_fx import (
    BOOL_HANDLERS,
    FUNCTION_NAMES,
    FUNCTIONS,
    METHODS,
    MODULES,
    SIDE_EFFECTS,
    trace,
)
from provenml.compiler.frontend.torch_more_ops import (
    MORE_FUNCTION_NAMES,
    MORE_FUNCTIONS,
    MORE_METHODS,
    MORE_MODULES,
    MOVES,
)
from provenml.compiler.frontend.torch_moves import (
    MOVE_BOOL,
    MOVE_FUNCTION_NAMES,
    MOVE_FUNCTIONS,
    MOVE_METHODS,
    MOVE_MODULES,
)
from provenml.compiler.frontend.torch_recurrent import RECURRENT_FUNCTION_NAMES, RECURRENT_MODULES
from provenml.compiler.frontend.torch_selections import (
    SELECTION_FUNCTION_NAMES,
    SELECTION_FUNCTIONS,
    SELECTION_METHODS,
)
from provenml.compiler.frontend.torch_setitem import SIDE_EFFECT_FUNCTIONS, WRITE_METHODS
from provenml.compiler.frontend.torch_spectral import SPECTRAL_FUNCTION_NAMES
from provenml.compiler.frontend.torch_volumes import VOLUME_FUNCTION_NAMES, VOLUME_MODULES

MODULES.update(ATTENTION_MODULES)  # nn.MultiheadAttention and the transformer encoder
MODULES.update(RECURRENT_MODULES)  # nn.GRU and nn.LSTM, unrolled; the cells (stop 70)
FUNCTION_NAMES.update(RECURRENT_FUNCTION_NAMES)  # torch.gru_cell & co., as dynamo records them
FUNCTIONS.update(ATTENTION_FUNCTIONS)  # F.multi_head_attention_forward called as a function
BOOL_HANDLERS.update(ATTENTION_MODULES.values())  # they take boolean (key padding) masks
BOOL_HANDLERS.update(ATTENTION_FUNCTIONS.values())
FUNCTIONS.update(MORE_FUNCTIONS)  # flip, roll, tril / triu, logsumexp, one_hot, ... (stop 59)
FUNCTION_NAMES.update(MORE_FUNCTION_NAMES)
METHODS.update(MORE_METHODS)
MODULES.update(MORE_MODULES)
BOOL_HANDLERS.update(MOVES)  # flip, roll, clone, t, div move or combine a mask's values
# stop 67: RMSNorm, SELU / CELU / logsigmoid & co., lerp, addcmul, pow by a tensor, prod, any /
# all, ... (torch_common_ops); diagonal, diff, outer, narrow, movedim, ... (torch_moves)
FUNCTIONS.update(COMMON_FUNCTIONS)
FUNCTION_NAMES.update(COMMON_FUNCTION_NAMES)
METHODS.update(COMMON_METHODS)
MODULES.update(COMMON_MODULES)
BOOL_HANDLERS.update(COMMON_BOOL)
FUNCTIONS.update(MOVE_FUNCTIONS)
FUNCTION_NAMES.update(MOVE_FUNCTION_NAMES)
METHODS.update(MOVE_METHODS)
MODULES.update(MOVE_MODULES)
BOOL_HANDLERS.update(MOVE_BOOL)
# Conv3d, 3-d max / average / adaptive pooling, BatchNorm3d (torch_volumes)
FUNCTION_NAMES.update(VOLUME_FUNCTION_NAMES)
MODULES.update(VOLUME_MODULES)
SIDE_EFFECTS.update(SIDE_EFFECT_FUNCTIONS)  # t[index] = value (torch_setitem, stop 69)
METHODS.update(WRITE_METHODS)  # t.copy_(u) (stop 74)
FUNCTION_NAMES.update(SPECTRAL_FUNCTION_NAMES)  # irfft(rfft(a) * rfft(b)) (stop 71)
# stop 71: x[mask], masked_select, nonzero, argwhere, torch.where(cond), count guarded
FUNCTIONS.update(SELECTION_FUNCTIONS)
FUNCTION_NAMES.update(SELECTION_FUNCTION_NAMES)
METHODS.update(SELECTION_METHODS)
BOOL_HANDLERS.update(
    (*SELECTION_FUNCTIONS.values(), *SELECTION_FUNCTION_NAMES.values(), *SELECTION_METHODS.values())
)
# stop 70: a mask through the pure moves of attention-mask building (a 0 / 1 float32 moves as
# its values do) and masks compared with each other (0 / 1 order as False / True)
BOOL_HANDLERS.update(
    handler
    for table, keys in (
        (FUNCTIONS, (torch.cat, torch.stack, torch.gather, torch.repeat_interleave)),
        (FUNCTION_NAMES, ("cat", "concat", "split", "chunk", "unbind", "index_select")),
        (FUNCTION_NAMES, ("_new_index_select",)),
        (METHODS, ("repeat_interleave", "gather", "index_select", "split", "chunk", "unbind")),
        (FUNCTIONS, (operator.eq, operator.ne, torch.eq, torch.ne)),
        (METHODS, ("eq", "ne")),
    )
    for key in keys
    if (handler := table.get(key)) is not None  # type: ignore[attr-defined]
)
ONNX_OPS.update(MORE_ONNX_OPS)  # PRelu, ReduceLogSumExp, Mod, Trilu, ScatterElements, ...
ONNX_OPS.update(volume_onnx_ops(ONNX_OPS))  # rank-5 Conv, MaxPool, AveragePool (onnx_volumes)

__all__ = ["UnsupportedOp", "trace"]
