"""Frontends (survey Sec. 4.1): models from a framework into the one graph IR
(:mod:`provenml.compiler.ir`), every value with a static shape.

:mod:`.torch_fx`: PyTorch modules through ``torch.fx`` (and the graphs ``torch.compile`` hands
to a backend), with :mod:`.torch_attention` for PyTorch's attention modules; :mod:`.onnx`: ONNX
models (``onnx`` is imported only when it is used). Each frontend maps source ops to IR ops
through an op -> handler table and raises :class:`UnsupportedOp` naming the op and the node it
cannot map.
"""

from provenml.compiler.frontend.common import UnsupportedOp
from provenml.compiler.frontend.torch_attention import ATTENTION_FUNCTIONS, ATTENTION_MODULES
from provenml.compiler.frontend.torch_fx import BOOL_HANDLERS, FUNCTIONS, MODULES, trace
from provenml.compiler.frontend.torch_recurrent import RECURRENT_MODULES

MODULES.update(ATTENTION_MODULES)  # nn.MultiheadAttention and the transformer encoder
MODULES.update(RECURRENT_MODULES)  # nn.GRU and nn.LSTM, unrolled
FUNCTIONS.update(ATTENTION_FUNCTIONS)  # F.multi_head_attention_forward called as a function
BOOL_HANDLERS.update(ATTENTION_MODULES.values())  # they take boolean (key padding) masks
BOOL_HANDLERS.update(ATTENTION_FUNCTIONS.values())

__all__ = ["UnsupportedOp", "trace"]
