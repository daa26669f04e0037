"""S10: a small deep-learning compiler (Li et al., "The Deep Learning Compiler: A Comprehensive
Survey", arXiv 2002.03794): torch.fx frontend -> typed SSA graph IR -> graph passes (constant
and batch-norm folding, simplification, CSE, DCE, fusion, layout + pre-packing, memory
planning) -> loop-level IR with schedule primitives -> C/OpenMP built with gcc, auto-tuned::

    from provenml.compiler import backend, compile, compile_onnx
    fast = compile(model.eval(), (x,))
    y = fast(x)
    print(fast.dump("fuse"))          # IR after a pass
    print(fast.profile(x).table())    # where a call's time goes, per stage
    torch.compile(model, backend=backend)    # or backend="provenml"
    fast = compile_onnx("model.onnx", (x,))   # the same pipeline from an ONNX file
    fast = compile(torch.export.export(model, (x,)), (x,))   # from torch.export's ATen graph
    fast = compile(model, example_kwargs={"input": x})       # inputs by keyword: fast(input=x)
    module = fast.as_module()                  # an nn.Module to put inside a larger model
    again = pickle.loads(pickle.dumps(fast))   # a compiled model travels (pools, Ray, files)
"""

from provenml.compiler.api import (
    Compiled,
    CompiledModule,
    CompileOptions,
    backend,
    compile,
    compile_graph,
    compile_onnx,
    optimize,
)
from provenml.compiler.frontend import UnsupportedOp, trace
from provenml.compiler.interp import interpret
from provenml.compiler.ir import Graph, Node, Value
from provenml.compiler.per_shape import CompiledPerShape
from provenml.compiler.run_time_errors import (
    IndexOutOfRange,
    IntegerDivisionByZero,
    ValueGuardFailed,
)
from provenml.compiler.runtime import Profile, StageProfile

__all__ = [
    "CompileOptions",
    "Compiled",
    "CompiledModule",
    "CompiledPerShape",
    "Graph",
    "IndexOutOfRange",
    "IntegerDivisionByZero",
    "Node",
    "Profile",
    "StageProfile",
    "UnsupportedOp",
    "Value",
    "ValueGuardFailed",
    "backend",
    "compile",
    "compile_graph",
    "compile_onnx",
    "interpret",
    "optimize",
    "trace",
]
