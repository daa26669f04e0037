"""The ONNX frontend: an ONNX model (a file, its bytes or a ``ModelProto``) to the same typed
SSA graph IR as the PyTorch frontend (survey Sec. 4.1: one high-level IR for models from several
frameworks).

Every node is mapped by the op -> handler table :data:`ONNX_OPS`. A node whose inputs are all
known at compile time (initializers, ``Constant``, ``Shape`` of a static tensor and whatever is
computed from them, as exporters emit for reshapes) is evaluated once with ONNX's own reference
evaluator (``onnx.reference``) and becomes a constant. Shapes are static: symbolic input dims
are fixed by the example inputs (or ``input_shapes``). An op with no handler raises
:class:`UnsupportedOp` naming the op type and the node.

    from provenml.compiler import compile_onnx
    fast = compile_onnx("model.onnx", (x,))   # or a ModelProto, or the file's bytes
    y = fast(x)
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from provenml.compiler.frontend.common import (
    COMPARISONS,
    LINEAR_RESIZE_MODES,
    ConvOps,
    UnsupportedOp,
    avg_pool_rescale,
    broadcast_ones,
    ceil_pool_sizes,
    check_integer_operands,
    constant_pad_steps,
    conv_attrs,
    conv_transpose_steps,
    cubic_resize_matrix,
    element_offsets,
    linear_resize_matrix,
    lower_conv,
    lower_einsum,
    mode_pad_pieces,
    pool_fill,
    tile_steps,
)
from provenml.compiler.ir import DIM_REDUCTIONS, Graph, Node, Value, ValueGuard, adjacent
from provenml.compiler.passes.shapes import shape_of
from provenml.errors import ProvenmlError

if TYPE_CHECKING:
    import onnx

# ONNX element types the IR can hold (onnx.TensorProto.FLOAT, INT64, INT32)
_FLOAT, _INT32, _INT64, _BOOL = 1, 6, 7, 9


def load_model(model: str | os.PathLike[str] | bytes | onnx.ModelProto) -> onnx.ModelProto:
    """An ONNX model from a path, serialized bytes or a ``ModelProto``."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    try:
        if isinstance(model, (bytes, bytearray)):
            return onnx.load_from_string(bytes(model))
        if isinstance(model, (str, os.PathLike)):
            return onnx.load(os.fspath(model))
    except Exception as exc:
        raise ProvenmlError(f"compile_onnx: cannot read the ONNX model: {exc}") from exc
    raise ProvenmlError(
        "compile_onnx expects a path, the bytes of an .onnx file or an onnx.ModelProto, "
        f"got {type(model).__name__}"
    )


class OnnxBuilder:
    """Maps ONNX nodes to IR nodes; ``static`` holds the values known at compile time."""

    def __init__(
        self, model: onnx.ModelProto, example: dict[str, np.ndarray] | None = None
    ) -> None:
        self.model = model
        # the example inputs by ONNX input name, and the values computed from them
        # (:meth:`example_value`; stop 72)
        self.example: dict[str, np.ndarray] = dict(example or {})
        self.producers: dict[str, onnx.NodeProto] = {
            out: node for node in model.graph.node for out in node.output if out
        }
        # the IR values holding numbers read from the inputs' values, checked on each call
        # (``Graph.value_guards``), appended to the outputs after the model's own
        self.guard_values: list[str] = []
        self.guarded: set[str] = set()  # ONNX values whose numbers are guarded already
        self.opset = next(
            (o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13
        )
        self.g = Graph(inputs=[], outputs=[], nodes=[], values={}, consts={})
        self.env: dict[str, str] = {}  # ONNX value name -> IR value name
        self.static: dict[str, np.ndarray] = {}  # ONNX value name -> compile-time array
        # IR values that are boolean tensors (0 / 1 floats here): comparisons, logical ops and
        # what moves them; only BOOL_OPS read them
        self.bools: set[str] = set()
        self.current = ""

    # -- helpers ---------------------------------------------------------------------------------
    def emit(self, op: str, inputs: list[str], attrs: dict[str, Any] | None = None) -> str:
        """Append an IR node; its shape comes from static shape inference. A reduction over
        dims that are not adjacent (ReduceMean over axes 0 and 2) permutes them last first
        (since stop 59; the kernels reduce one adjacent run)."""
        dims = tuple((attrs or {}).get("dims", ()))
        if op in DIM_REDUCTIONS and not adjacent(dims):
            x = inputs[0]
            shape = self.g.values[x].shape
            kept = [d for d in range(len(shape)) if d not in dims]
            moved = self.emit("permute", [x], {"perm": (*kept, *sorted(dims))})
            tail = tuple(range(len(kept), len(shape)))
            reduced = self.emit(op, [moved], {**(attrs or {}), "dims": tail, "keepdim": False})
            if not (attrs or {}).get("keepdim"):
                return reduced
            return self.reshape(reduced, [1 if d in dims else n for d, n in enumerate(shape)])
        dtypes = [self.g.values[i].dtype for i in inputs]
        check_integer_operands(op, dtypes, self.current)
        name = self.g.fresh(op)
        node = Node(op, name, list(inputs), dict(attrs or {}), source=self.current)
        try:
            shape = shape_of(node, self.g.values)
        except ProvenmlError as exc:
            raise UnsupportedOp(op, self.current, str(exc)) from exc
        dtype = (
            "int64"
            if op in ("argmax", "argmin", "to_int", "topk_indices")
            or (op == "embedding" and dtypes[0] == "int64")  # rows of an integer table
            or (
                op not in ("embedding", "to_float", *COMPARISONS)
                and dtypes
                and all(d == "int64" for d in dtypes)
            )
            else "float32"
        )
        self.g.values[name] = Value(name, tuple(int(d) for d in shape), dtype)
        self.g.nodes.append(node)
        return name

    def emit_shaped(
        self, op: str, inputs: list[str], attrs: dict[str, Any], shape: Sequence[int]
    ) -> str:
        """:meth:`emit` as the shared lowerings call it (``common.Emit``: the result's shape
        given, which this builder infers anyway; a reshape takes it as its target)."""
        if op == "reshape":
            return self.reshape(inputs[0], shape)
        return self.emit(op, inputs, attrs)

    def tensor(self, onnx_name: str) -> str:
        """The IR value of an ONNX input (a compile-time value becomes a constant)."""
        if onnx_name in self.env:
            return self.env[onnx_name]
        if onnx_name in self.static:
            arr = self.static[onnx_name]
            if arr.dtype == np.bool_ or arr.dtype.kind == "f":
                arr = arr.astype(np.float32)
            elif arr.dtype.kind in "iu":
                arr = arr.astype(np.int64)
            name = self.g.add_const(np.ascontiguousarray(arr), "k")
            self.env[onnx_name] = name
            return name
        raise UnsupportedOp("missing input", self.current, f"value '{onnx_name}' is not defined")

    def shape(self, onnx_name: str) -> tuple[int, ...]:
        if onnx_name in self.static:
            return tuple(self.static[onnx_name].shape)
        return self.g.values[self.tensor(onnx_name)].shape

    def const_input(self, node: onnx.NodeProto, i: int) -> np.ndarray | None:
        """Input ``i`` as a compile-time array (``None`` when absent). One computed at run time
        from the inputs' values (a shape from ``ReduceMax`` of graph ids) is taken from the
        example inputs when it is a small integer array, and each of its numbers is guarded:
        the graph computes it on every call and a different one raises
        :class:`~provenml.compiler.ValueGuardFailed` (stop 72; ``pc.compile``'s integer
        ``.item()`` rule, stop 71)."""
        if i >= len(node.input) or not node.input[i]:
            return None
        name = node.input[i]
        if name in self.static:
            return self.static[name]
        ir = self.env.get(name)
        if not self.example or ir is None:
            raise UnsupportedOp(
                node.op_type,
                self.current,
                f"input {i} must be known at compile time"
                + ("" if self.example else " (or given example inputs to read it from)"),
            )
        if self.g.values[ir].dtype != "int64" or ir in self.bools:
            raise UnsupportedOp(
                node.op_type, self.current, f"input {i} is computed from float values at run time"
            )
        value = self.example_value(name)
        if value.size > GUARDED_NUMBERS:
            raise UnsupportedOp(
                node.op_type,
                self.current,
                f"input {i} is computed at run time ({value.size} numbers; at most "
                f"{GUARDED_NUMBERS} are taken from the example and checked on each call)",
            )
        if name in self.guarded:  # (read by an earlier handler: one check per value)
            return value
        self.guarded.add(name)
        flat = self.reshape(ir, (value.size,))
        for j, number in enumerate(value.reshape(-1)):
            element = self.reshape(self.slice(flat, 0, j, j + 1), ())
            what = f"{node.op_type} input {i} ('{name}') at node {self.current}"
            where = f", element {j}" if value.size > 1 else ""
            self.g.value_guards.append(ValueGuard(int(number), what + where))
            self.guard_values.append(element)
        return value

    def example_value(self, name: str) -> np.ndarray:
        """The value of ``name`` on the example inputs: the nodes it depends on evaluated
        once each, inputs first, with ONNX's reference evaluator (only those; every value
        computed is kept for the next call)."""
        from onnx.reference import ReferenceEvaluator

        values = self.example
        stack = [(name, False)]
        while stack:
            current, inputs_done = stack.pop()
            if current in values or current in self.static:
                continue
            node = self.producers.get(current)
            if node is None:
                raise ProvenmlError(f"compile_onnx: no node computes '{current}'")
            if not inputs_done:
                stack.append((current, True))
                stack.extend((i, False) for i in node.input if i)
                continue
            feeds = {i: values[i] if i in values else self.static[i] for i in node.input if i}
            try:
                outs = ReferenceEvaluator(node).run(None, feeds)
            except Exception as exc:
                raise UnsupportedOp(
                    node.op_type, self.current, f"evaluating the example inputs: {exc}"
                ) from exc
            for out, value in zip(node.output, outs, strict=False):
                if out:
                    values[out] = np.asarray(value)
        return np.asarray(values[name] if name in values else self.static[name])

    def reshape(self, x: str, shape: Sequence[int]) -> str:
        shape = tuple(int(s) for s in shape)
        if self.g.values[x].shape == shape:
            return x
        return self.emit("reshape", [x], {"shape": shape})

    def slice(self, x: str, dim: int, start: int, stop: int, step: int = 1) -> str:
        if (start, stop, step) == (0, self.g.values[x].shape[dim], 1):
            return x
        return self.emit("slice", [x], {"dim": dim, "start": start, "stop": stop, "step": step})

    # -- conversion ------------------------------------------------------------------------------
    def build(self, input_shapes: dict[str, tuple[int, ...]]) -> Graph:
        from onnx import numpy_helper

        graph = self.model.graph
        for init in graph.initializer:
            self.static[init.name] = numpy_helper.to_array(init)
        for inp in graph.input:
            if inp.name in self.static:
                continue  # an initializer listed as an input (older exporters)
            self.add_input(inp, input_shapes)
        for node in graph.node:
            self.current = node.name or (node.output[0] if node.output else node.op_type)
            if node.domain not in ("", "ai.onnx"):
                raise UnsupportedOp(f"{node.domain}.{node.op_type}", self.current)
            present = [i for i in node.input if i]
            if all(i in self.static for i in present) and node.op_type not in NEVER_FOLD:
                self.fold(node)
                continue
            handler = ONNX_OPS.get(node.op_type)
            if handler is None:
                raise UnsupportedOp(node.op_type, self.current, DATA_SIZED.get(node.op_type, ""))
            boolean = [i for i in present if self.env.get(i) in self.bools]
            if boolean and node.op_type not in BOOL_OPS:
                raise UnsupportedOp(
                    node.op_type,
                    self.current,
                    "a boolean tensor operand (comparisons feed Where, And, Or, Not, Cast, "
                    "reshapes and slices only)",
                )
            outs = handler(self, node)
            if boolean and node.op_type in BOOL_MOVES:
                self.bools.update(outs)
            for name, value in zip(node.output, outs, strict=False):
                if name:
                    self.env[name] = value
        for out in graph.output:
            name = self.tensor(out.name)
            if name in self.bools:
                raise UnsupportedOp("output", out.name, "a boolean output")
            self.g.outputs.append(name)
        self.g.outputs += self.guard_values  # after the model's (Graph.value_guards)
        return self.g

    def add_input(self, inp: onnx.ValueInfoProto, input_shapes: dict[str, tuple[int, ...]]) -> None:
        ttype = inp.type.tensor_type
        if ttype.elem_type not in (_FLOAT, _INT64, _INT32, _BOOL):
            raise UnsupportedOp(f"input element type {ttype.elem_type}", inp.name)
        if inp.name in input_shapes:
            shape = tuple(int(s) for s in input_shapes[inp.name])
        else:
            dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
            if any(d is None for d in dims):
                raise ProvenmlError(
                    f"compile_onnx: input '{inp.name}' has symbolic dims "
                    f"{[d.dim_param or d.dim_value for d in ttype.shape.dim]}: pass example "
                    "inputs (or input_shapes=) to fix them"
                )
            shape = tuple(int(d) for d in dims)  # type: ignore[arg-type]
        name = self.g.fresh(re.sub(r"\W", "_", inp.name) or "input")
        dtype = "float32" if ttype.elem_type in (_FLOAT, _BOOL) else "int64"
        self.g.values[name] = Value(name, shape, dtype)
        self.g.inputs.append(name)
        if ttype.elem_type == _BOOL:  # a mask: 0 / 1 floats inside, cast on each call
            self.g.bool_inputs.append(name)
            self.bools.add(name)
        self.env[inp.name] = name

    def fold(self, node: onnx.NodeProto) -> None:
        """Evaluate a node whose inputs are all known, with ONNX's reference evaluator."""
        from onnx.reference import ReferenceEvaluator

        feeds = {i: self.static[i] for i in node.input if i}
        if node.op_type == "GatherElements":
            # onnx 1.23's reference GatherElements fails when the gathered axis is longer than
            # 32 (np.choose's limit; its fallback reshapes wrongly): transformers' exported
            # BERT gathers its token-type buffer (1, 512) this way. NumPy's take_along_axis is
            # the op (negative indices counted from the end)
            data, index = (feeds[i] for i in node.input[:2])
            axis = int(attrs_of(node).get("axis", 0)) % data.ndim
            index = np.where(index < 0, index + data.shape[axis], index)
            self.static[node.output[0]] = np.take_along_axis(data, index, axis=axis)
            return
        try:
            outs = ReferenceEvaluator(node).run(None, feeds)
        except Exception as exc:
            raise UnsupportedOp(node.op_type, self.current, f"constant folding: {exc}") from exc
        for name, value in zip(node.output, outs, strict=False):
            if name:
                self.static[name] = np.asarray(value)


def attrs_of(node: onnx.NodeProto) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


# ------------------------------------------------------------------------------------------------
# the op -> handler table
# ------------------------------------------------------------------------------------------------
OnnxHandler = Callable[[OnnxBuilder, "onnx.NodeProto"], list[str]]


def _unary(op: str) -> OnnxHandler:
    def handle(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
        return [b.emit(op, [b.tensor(node.input[0])])]

    return handle


def _binary(op: str) -> OnnxHandler:
    def handle(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
        return [b.emit(op, [b.tensor(node.input[0]), b.tensor(node.input[1])])]

    return handle


def _identity(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    return [b.tensor(node.input[0])]


def _gelu(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    op = "gelu_tanh" if attrs_of(node).get("approximate", b"none") in (b"tanh", "tanh") else "gelu"
    return [b.emit(op, [b.tensor(node.input[0])])]


def _scale(b: OnnxBuilder, x: str, factor: float) -> str:
    if factor == 1.0:
        return x
    return b.emit("mul", [x, b.g.add_const(np.float32(factor), "s")])


def _gemm(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """``Y = alpha * A' @ B' + beta * C``: a linear layer when B is a constant."""
    at = attrs_of(node)
    alpha, beta = float(at.get("alpha", 1.0)), float(at.get("beta", 1.0))
    a = b.tensor(node.input[0])
    if at.get("transA", 0):
        a = b.emit("permute", [a], {"perm": (1, 0)})
    c = node.input[2] if len(node.input) > 2 and node.input[2] else None
    weight = b.static.get(node.input[1])
    if weight is not None:  # W as [N, K] for a linear layer
        w = weight if at.get("transB", 0) else weight.T
        ins = [a, b.g.add_const(np.ascontiguousarray(w, dtype=np.float32) * np.float32(alpha), "w")]
        bias = b.static.get(c) if c is not None else None
        if bias is not None and bias.shape in ((w.shape[0],), (1, w.shape[0])):
            ins.append(b.g.add_const((bias.reshape(-1) * beta).astype(np.float32), "b"))
            c = None
        y = b.emit("linear", ins)
    else:
        y = b.emit("matmul", [a, b.tensor(node.input[1])], {"trans_b": bool(at.get("transB", 0))})
        y = _scale(b, y, alpha)
    if c is not None:
        y = b.emit("add", [y, _scale(b, b.tensor(c), beta)])
    return [y]


def _matmul(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """A linear layer where the right operand is a constant matrix, else a matmul; a 1-D
    operand is a row (left) or a column (right), the added dim dropped (numpy's rule)."""
    a = b.tensor(node.input[0])
    weight = b.static.get(node.input[1])
    if weight is not None and weight.ndim == 2 and len(b.g.values[a].shape) >= 2:
        w = b.g.add_const(np.ascontiguousarray(weight.T, dtype=np.float32), "w")
        return [b.emit("linear", [a, w])]  # a constant right operand: a linear layer
    right = b.tensor(node.input[1])
    a_shape, right_shape = b.g.values[a].shape, b.g.values[right].shape
    if len(a_shape) >= 2 and len(right_shape) >= 2:
        return [b.emit("matmul", [a, right])]
    if len(a_shape) == 1 and len(right_shape) == 1:
        raise UnsupportedOp("MatMul", b.current, "1-D @ 1-D (a 0-d result)")
    if len(a_shape) == 1:
        a = b.emit("reshape", [a], {"shape": (1, *a_shape)})
        drop = -2
    else:
        right = b.emit("reshape", [right], {"shape": (*right_shape, 1)})
        drop = -1
    product = b.emit("matmul", [a, right])
    shape = list(b.g.values[product].shape)
    del shape[drop]
    return [b.emit("reshape", [product], {"shape": tuple(shape)})]


def _pads(node: onnx.NodeProto, at: dict[str, Any], spatial: int) -> tuple[int, ...]:
    if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise UnsupportedOp(node.op_type, node.name, "auto_pad SAME_*")
    pads = list(at.get("pads", [0] * (2 * spatial)))
    if pads[:spatial] != pads[spatial:]:
        raise UnsupportedOp(node.op_type, node.name, f"asymmetric pads {pads}")
    return tuple(int(p) for p in pads[:spatial])


def _conv_pads(
    at: dict[str, Any],
    sizes: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilation: Sequence[int],
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A Conv's begin and end pads per spatial dim: ``pads``, or ``auto_pad`` ``SAME_UPPER`` /
    ``SAME_LOWER`` (the output ``ceil(size / stride)`` long, the odd pad at the end / the
    beginning), or ``VALID`` (none)."""
    spatial = len(sizes)
    auto = at.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto == "VALID":
        return (0,) * spatial, (0,) * spatial
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for v, k, s, d in zip(sizes, kernel, strides, dilation, strict=True):
            total = max(0, (-(-v // s) - 1) * s + d * (k - 1) + 1 - v)
            small, large = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else large)
            end.append(large if auto == "SAME_UPPER" else small)
        return tuple(begin), tuple(end)
    pads = [int(p) for p in at.get("pads", [0] * (2 * spatial))]
    return tuple(pads[:spatial]), tuple(pads[spatial:])


def _conv(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Conv (1-d or 2-d; any group and dilation: :func:`~provenml.compiler.frontend.common
    .lower_conv`)."""
    at = attrs_of(node)
    x = b.tensor(node.input[0])
    xs = b.g.values[x].shape
    spatial = len(xs) - 2
    if spatial not in (1, 2):
        raise UnsupportedOp("Conv", b.current, f"{spatial}-d convolution")
    dilation = tuple(int(d) for d in at.get("dilations", [1] * spatial))
    strides = tuple(int(s) for s in at.get("strides", [1] * spatial))
    w = b.tensor(node.input[1])
    begin, end = _conv_pads(at, xs[2:], b.g.values[w].shape[2:], strides, dilation)
    pads = begin
    if begin != end:  # asymmetric (or SAME_* auto padding): pad first, then convolve
        x = _constant_pad(b, x, [(0, 0), (0, 0), *zip(begin, end, strict=True)], 0.0)
        pads = (0,) * spatial
    group = int(at.get("group", 1))
    if xs[1] % group or b.g.values[w].shape[1] * group != xs[1]:
        raise UnsupportedOp("Conv", b.current, f"group={group} for {xs[1]} input channels")
    bias = b.tensor(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    try:
        return [lower_conv(x, w, bias, strides, pads, dilation, group, _conv_ops(b))]
    except ValueError as exc:
        raise UnsupportedOp("Conv", b.current, str(exc)) from exc


def _conv_ops(b: OnnxBuilder) -> ConvOps:
    """The ONNX builder's ops for :func:`~provenml.compiler.frontend.common.lower_conv`."""

    def pad(x: str, pads: Sequence[tuple[int, int]]) -> str:
        return _constant_pad(b, x, [(0, 0), (0, 0), *pads], 0.0)

    return ConvOps(
        b.emit_shaped,
        lambda v: b.g.values[v].shape,
        lambda a: b.g.add_const(a, "ones"),
        pad,
        functools.partial(_conv2d, b),  # its 1-d inputs go through a height-1 conv2d
    )


def _conv2d(
    b: OnnxBuilder,
    x: str,
    w: str,
    bias: str | None,
    strides: Sequence[int],
    pads: Sequence[int],
    groups: int,
) -> str:
    """The IR's ``conv2d`` (a 1-d convolution as a height-1 2-d one, reshaped back)."""
    xs, ws = b.g.values[x].shape, b.g.values[w].shape
    ins = [x, w] + ([] if bias is None else [bias])
    if len(xs) == 3:
        ins[0] = b.reshape(x, (xs[0], xs[1], 1, xs[2]))
        ins[1] = b.reshape(w, (ws[0], ws[1], 1, ws[2]))
        pads, strides = (0, pads[0]), (1, strides[0])
    attrs = conv_attrs(xs[1], ws[0], strides, pads, groups)
    y = b.emit("conv2d", ins, attrs)
    if len(xs) == 3:
        ys = b.g.values[y].shape
        y = b.reshape(y, (ys[0], ys[1], ys[3]))
    return y


def _pool(op: str) -> OnnxHandler:
    """MaxPool / AveragePool, 2-d, or 1-d (stop 67) as a 2-d pool over a height of 1 as
    :func:`_conv2d` does, reshaped back."""

    def handle(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
        at = attrs_of(node)
        if any(int(d) != 1 for d in at.get("dilations", [1, 1])):
            raise UnsupportedOp(node.op_type, b.current, "dilation")
        x = b.tensor(node.input[0])
        shape = b.g.values[x].shape
        if len(shape) not in (3, 4):
            raise UnsupportedOp(node.op_type, b.current, "only 1-d and 2-d pooling")
        spatial = len(shape) - 2
        pads = _pads(node, at, spatial)
        kernel = tuple(int(k) for k in at["kernel_shape"])
        stride = tuple(int(s) for s in at.get("strides", [1] * spatial))
        if spatial == 1:
            x = b.reshape(x, (shape[0], shape[1], 1, shape[2]))
            pads, kernel, stride = (0, *pads), (1, *kernel), (1, *stride)
        sizes = b.g.values[x].shape[2:]
        outputs = None
        if at.get("ceil_mode", 0):
            # (stop 73; refused before, even where it changed nothing) a last, partial window:
            # the input extended past its end, -inf for a max, zeros for an average
            outputs, extra = ceil_pool_sizes(sizes, kernel, stride, pads)
            if any(extra):
                pads4 = [(0, 0), (0, 0), (0, extra[0]), (0, extra[1])]
                x = _constant_pad(b, x, pads4, pool_fill(op))
        y = b.emit(op, [x], {"kernel": kernel, "stride": stride, "padding": pads})
        # AveragePool's count_include_pad=0 (the default) divides by the window's elements
        # inside the input: the padded-window average rescaled at the borders
        rescale = (
            avg_pool_rescale(
                sizes,
                kernel,
                stride,
                pads,
                bool(at.get("count_include_pad", 0)),
                None,
                outputs,
            )
            if op == "avg_pool2d"
            else None
        )
        if rescale is not None:
            y = b.emit("mul", [y, b.g.add_const(rescale, "pool")])
        if spatial == 1:
            ys = b.g.values[y].shape
            y = b.reshape(y, (ys[0], ys[1], ys[3]))
        return [y]

    return handle


def _global_average_pool(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """GlobalAveragePool and GlobalMaxPool: a mean / amax over the spatial dims."""
    x = b.tensor(node.input[0])
    dims = tuple(range(2, len(b.g.values[x].shape)))
    op = "amax" if node.op_type == "GlobalMaxPool" else "mean"
    return [b.emit(op, [x], {"dims": dims, "keepdim": True})]


def _softmax(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Softmax and LogSoftmax (a softmax with ``log=True``)."""
    x = b.tensor(node.input[0])
    shape = b.g.values[x].shape
    rank = len(shape)
    axis = int(attrs_of(node).get("axis", -1 if b.opset >= 13 else 1)) % rank
    log = {"log": True} if node.op_type == "LogSoftmax" else {}
    if b.opset >= 13 or axis == rank - 1:
        return [b.emit("softmax", [x], {"dim": axis, **log})]
    # opset < 13: softmax over the flattened trailing dims [axis:]
    flat = b.reshape(x, (int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))))
    return [b.reshape(b.emit("softmax", [flat], {"dim": 1, **log}), shape)]


def _instance_norm(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """InstanceNormalization: a group norm with one channel per group (PyTorch exports
    ``GroupNorm`` as one on the input reshaped to ``(N, groups, -1)``, then a Mul and an Add)."""
    x = b.tensor(node.input[0])
    shape = b.g.values[x].shape
    if len(shape) < 3:
        raise UnsupportedOp("InstanceNormalization", b.current, f"input of rank {len(shape)}")
    eps = float(attrs_of(node).get("epsilon", 1e-5))
    ins = [x, b.tensor(node.input[1]), b.tensor(node.input[2])]
    return [b.emit("group_norm", ins, {"groups": int(shape[1]), "eps": eps})]


def _layer_norm(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """LayerNormalization from ``axis`` to the last dim; over several dims (stop 69; refused
    before) the IR's last-dim layer norm on the input with them merged, the scale and bias
    flattened alike."""
    at = attrs_of(node)
    x = b.tensor(node.input[0])
    shape = tuple(b.g.values[x].shape)
    rank = len(shape)
    axis = int(at.get("axis", -1)) % rank
    n = int(np.prod(shape[axis:]))
    if len(node.output) > 1 and any(node.output[1:]):
        raise UnsupportedOp("LayerNormalization", b.current, "mean / inv_std_dev outputs")
    merged = (*shape[:axis], n)
    flat = b.reshape(x, merged) if axis < rank - 1 else x
    scale = b.tensor(node.input[1])
    if len(node.input) > 2 and node.input[2]:
        bias = b.tensor(node.input[2])
    else:
        bias = b.g.add_const(np.zeros(n, np.float32), "b")
    params = [
        b.reshape(p, (n,)) if tuple(b.g.values[p].shape) != (n,) else p for p in (scale, bias)
    ]
    y = b.emit("layer_norm", [flat, *params], {"eps": float(at.get("epsilon", 1e-5))})
    return [b.reshape(y, shape) if axis < rank - 1 else y]


def _batch_norm(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    at = attrs_of(node)
    if at.get("training_mode", 0):
        raise UnsupportedOp("BatchNormalization", b.current, "training mode")
    x, scale, bias, mean, var = (b.tensor(i) for i in node.input[:5])
    return [
        b.emit("batch_norm", [x, mean, var, scale, bias], {"eps": float(at.get("epsilon", 1e-5))})
    ]


def _reshape(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    x = b.tensor(node.input[0])
    shape = b.const_input(node, 1)
    assert shape is not None
    src = b.g.values[x].shape
    target = [int(s) for s in shape.reshape(-1)]
    if not attrs_of(node).get("allowzero", 0):
        target = [src[i] if s == 0 else s for i, s in enumerate(target)]
    if -1 in target:
        known = int(np.prod([s for s in target if s != -1]))
        target[target.index(-1)] = int(np.prod(src)) // max(known, 1)
    return [b.reshape(x, target)]


def _flatten(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    x = b.tensor(node.input[0])
    shape = b.g.values[x].shape
    axis = int(attrs_of(node).get("axis", 1)) % (len(shape) + 1)
    return [b.reshape(x, (int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))))]


def _raw_axes(b: OnnxBuilder, node: onnx.NodeProto) -> list[int] | None:
    """The ``axes`` of Squeeze / Unsqueeze / Reduce*: an attribute, or input 1 (newer opsets)."""
    at = attrs_of(node)
    if "axes" in at:
        return [int(a) for a in at["axes"]]
    if len(node.input) > 1 and node.input[1]:
        axes = b.const_input(node, 1)
        return [int(a) for a in np.asarray(axes).reshape(-1)]
    return None


def _axes(b: OnnxBuilder, node: onnx.NodeProto, rank: int) -> list[int] | None:
    raw = _raw_axes(b, node)
    return None if raw is None else sorted(a % rank for a in raw)


def _squeeze(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    x = b.tensor(node.input[0])
    shape = b.g.values[x].shape
    axes = _axes(b, node, len(shape))
    keep = [s for d, s in enumerate(shape) if (s != 1 if axes is None else d not in axes)]
    return [b.reshape(x, keep)]


def _unsqueeze(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    x = b.tensor(node.input[0])
    shape = list(b.g.values[x].shape)
    raw = _raw_axes(b, node)
    if raw is None:
        raise UnsupportedOp("Unsqueeze", b.current, "no axes")
    for a in sorted(a % (len(shape) + len(raw)) for a in raw):
        shape.insert(a, 1)
    return [b.reshape(x, shape)]


def _transpose(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    x = b.tensor(node.input[0])
    rank = len(b.g.values[x].shape)
    perm = tuple(int(p) for p in attrs_of(node).get("perm", list(reversed(range(rank)))))
    return [b.emit("permute", [x], {"perm": perm})]


def _concat(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    ins = [b.tensor(i) for i in node.input if i]
    rank = len(b.g.values[ins[0]].shape)
    return [b.emit("cat", ins, {"dim": int(attrs_of(node)["axis"]) % rank})]


def _slice(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    x = b.tensor(node.input[0])
    shape = b.g.values[x].shape
    at = attrs_of(node)
    if b.opset < 10:
        starts, ends = at["starts"], at["ends"]
        axes = at.get("axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = b.const_input(node, 1), b.const_input(node, 2)
        axes = b.const_input(node, 3)
        steps = b.const_input(node, 4)
        assert starts is not None and ends is not None
        axes = list(range(len(starts))) if axes is None else axes
        steps = [1] * len(starts) if steps is None else steps
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        dim = int(a) % len(shape)
        start, stop, step = slice(int(s), int(e), int(st)).indices(shape[dim])
        if step < 0:  # (PyTorch exports flip so): the rows picked by a constant gather
            x = _reverse_slice(b, x, dim, range(start, stop, step))
            shape = b.g.values[x].shape
            continue
        x = b.slice(x, dim, start, max(stop, start), step)
    return [x]


def _reverse_slice(b: OnnxBuilder, x: str, dim: int, picked: range) -> str:
    """A Slice with a negative step along ``dim``: the IR's row gather (``embedding``) of
    ``x`` viewed as rows over its dims up to ``dim``, by constant row numbers (stop 59)."""
    shape = b.g.values[x].shape
    lead = tuple(shape[: dim + 1])
    rows = np.take(np.arange(int(np.prod(lead))).reshape(lead), list(picked), axis=dim)
    width = int(np.prod(shape[dim + 1 :], dtype=np.int64))
    table = b.reshape(x, (int(np.prod(lead)), width))
    gathered = b.emit(
        "embedding", [table, b.g.add_const(np.ascontiguousarray(rows, np.int64), "rows")]
    )
    y = b.reshape(gathered, (*rows.shape, *shape[dim + 1 :]))
    if x in b.bools:
        b.bools.add(y)
    return y


def _split(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    x = b.tensor(node.input[0])
    shape = b.g.values[x].shape
    at = attrs_of(node)
    dim = int(at.get("axis", 0)) % len(shape)
    sizes = at.get("split")
    if sizes is None and len(node.input) > 1 and node.input[1]:
        sizes = b.const_input(node, 1)
    if sizes is None:
        parts = len(node.output)
        step = -(-shape[dim] // parts)
        sizes = [min(step, shape[dim] - k * step) for k in range(parts)]
    outs, start = [], 0
    for size in (int(s) for s in np.asarray(sizes).reshape(-1)):
        outs.append(b.slice(x, dim, start, start + size))
        start += size
    return outs


#: how many numbers of a run-time value a handler may take from the example inputs as
#: compile-time constants (each checked on every call): shapes and counts are short
GUARDED_NUMBERS = 8

# ONNX's Gather counts a negative index from the end (PyTorch's gathers refuse one)
WRAP_NEGATIVE = {"wrap_negative": True}

#: ONNX ops whose output size depends on the data: why they are refused, and the way round
#: (stop 71: PyG's self-loop selection exports to NonZero)
DATA_SIZED = {
    op: (
        "its output's size depends on the data; pc.compile on the PyTorch model keeps the "
        "example's count and checks it on each call (x[mask], nonzero, masked_select)"
    )
    for op in ("NonZero", "Compress", "Unique")  # (NonZero: with example inputs, stop 72)
}


def _gather(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Gather as the IR's row gather (``embedding``): an embedding lookup (a constant table,
    run-time indices, axis 0); a constant scalar index (a slice); run-time indices of the
    first axis of any tensor (its rows: the trailing dims); constant indices of any axis of a
    run-time tensor (each element's source position found by the same Gather on an
    ``arange`` in NumPy; transformers' exported attention mask). A boolean tensor stays
    boolean; an integer one gathers integers."""
    axis = int(attrs_of(node).get("axis", 0))
    data, idx = node.input[0], node.input[1]
    if data in b.static and idx not in b.static and axis == 0 and b.static[data].ndim == 2:
        return [b.emit("embedding", [b.tensor(data), b.tensor(idx)], WRAP_NEGATIVE)]
    x = b.tensor(data)
    shape = b.g.values[x].shape
    dim = axis % len(shape)
    if idx in b.static and b.static[idx].ndim == 0:
        i = int(b.static[idx]) % shape[dim]
        y = b.slice(x, dim, i, i + 1)
        return [b.reshape(y, shape[:dim] + shape[dim + 1 :])]
    size = int(np.prod(shape, dtype=np.int64))
    if idx in b.static:  # constant indices: each output element's position in x, one a row
        index = b.static[idx].astype(np.int64)
        index = np.where(index < 0, index + shape[dim], index)
        flat = np.arange(size, dtype=np.int64).reshape(shape)
        positions = b.g.add_const(np.ascontiguousarray(np.take(flat, index, axis=dim)), "rows")
        table_shape, row_shape = (size, 1), ()
    elif dim == 0:  # run-time row ids, rows of the trailing dims
        positions = b.tensor(idx)
        table_shape = (shape[0], int(np.prod(shape[1:], dtype=np.int64)))
        row_shape = tuple(shape[1:])
    else:  # (stop 72) run-time ids on another axis: that axis moved first, gathered, moved back
        is_bool = x in b.bools
        others = [d for d in range(len(shape)) if d != dim]
        moved = b.emit("permute", [x], {"perm": (dim, *others)})
        if is_bool:
            b.bools.add(moved)
        rows = _gather_rows(b, moved, b.tensor(idx))
        ids_rank = len(b.g.values[b.tensor(idx)].shape)
        # (ids dims.., the other dims..) -> (others before dim.., ids dims.., others after..)
        before = tuple(range(ids_rank, ids_rank + dim))
        after = tuple(range(ids_rank + dim, ids_rank + len(others)))
        y = b.emit("permute", [rows], {"perm": (*before, *range(ids_rank), *after)})
        if is_bool:
            b.bools.add(y)
        return [y]
    gathered = b.emit("embedding", [b.reshape(x, table_shape), positions], WRAP_NEGATIVE)
    y = b.reshape(gathered, (*b.g.values[positions].shape, *row_shape))
    if x in b.bools:
        b.bools.add(y)
    return [y]


def _gather_rows(b: OnnxBuilder, x: str, positions: str) -> str:
    """``x[positions]`` along its first axis (run-time row ids, negative ones from the end):
    the IR's row gather over ``x`` viewed as rows of its trailing dims."""
    shape = b.g.values[x].shape
    table = b.reshape(x, (shape[0], int(np.prod(shape[1:], dtype=np.int64))))
    gathered = b.emit("embedding", [table, positions], WRAP_NEGATIVE)
    return b.reshape(gathered, (*b.g.values[positions].shape, *shape[1:]))


def _reduce(op: str) -> OnnxHandler:
    def handle(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
        x = b.tensor(node.input[0])
        rank = len(b.g.values[x].shape)
        axes = _axes(b, node, rank)
        if not axes:  # none given, or an empty list (as PyTorch exports x.amax()): every dim
            if attrs_of(node).get("noop_with_empty_axes", 0):
                return [x]
            axes = list(range(rank))
        keep = bool(attrs_of(node).get("keepdims", 1))
        return [b.emit(op, [x], {"dims": tuple(axes), "keepdim": keep})]

    return handle


def _arg_reduce(op: str) -> OnnxHandler:
    """ArgMax / ArgMin (``axis``, ``keepdims``; the first extremum: ``select_last_index=0``)."""

    def handle(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
        at = attrs_of(node)
        if int(at.get("select_last_index", 0)):
            raise UnsupportedOp(node.op_type, b.current, "select_last_index=1")
        x = b.tensor(node.input[0])
        dim = int(at.get("axis", 0)) % len(b.g.values[x].shape)
        return [b.emit(op, [x], {"dim": dim, "keepdim": bool(at.get("keepdims", 1))})]

    return handle


def _pow(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """``x ** e``: for a constant scalar ``e`` in the torch frontend's ``POW_EXPONENTS`` the
    same products and roots, else (stop 67) C's ``powf`` elementwise, float32."""
    exponent = b.static.get(node.input[1])
    x = b.tensor(node.input[0])
    e = float(exponent.reshape(-1)[0]) if exponent is not None and exponent.size == 1 else None
    if e == 0.5:
        return [b.emit("sqrt", [x])]
    if e == -0.5:
        return [b.emit("rsqrt", [x])]
    if e == 1.0:
        return [x]
    if e in (2.0, 3.0, -1.0, -2.0):
        square = b.emit("mul", [x, x]) if e != -1.0 else x
        if e == 3.0:
            return [b.emit("mul", [square, x])]
        if e < 0:
            return [b.emit("div", [b.g.add_const(np.float32(1.0), "one"), square])]
        return [square]
    return [b.emit("pow", [x, b.tensor(node.input[1])])]


def _hard_sigmoid(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """PyTorch's hardsigmoid as exported: ``alpha = 1/6``, ``beta = 0.5``."""
    at = attrs_of(node)
    alpha, beta = float(at.get("alpha", 0.2)), float(at.get("beta", 0.5))
    if abs(alpha - 1 / 6) > 1e-6 or beta != 0.5:
        raise UnsupportedOp("HardSigmoid", b.current, f"alpha={alpha}, beta={beta}")
    return [b.emit("hardsigmoid", [b.tensor(node.input[0])])]


def _clip(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """``Clip`` to constant bounds (the inputs of opset 11 on, or the attributes before): relu6
    for [0, 6] (as PyTorch exports ReLU6), relu for [0, inf), else maximum then minimum."""
    at = attrs_of(node)
    bounds: list[float | str | None] = []
    for i, key in ((1, "min"), (2, "max")):
        given = len(node.input) > i and node.input[i]
        value = b.static.get(node.input[i]) if given else None
        if given and value is None:  # a bound computed at run time
            bounds.append(b.tensor(node.input[i]))
        elif value is not None:
            bounds.append(float(value.reshape(-1)[0]))
        else:
            bounds.append(at.get(key))
    low, high = bounds
    x = b.tensor(node.input[0])
    if low == 0.0 and high == 6.0:
        return [b.emit("relu6", [x])]
    if low == 0.0 and high is None:
        return [b.emit("relu", [x])]
    for op, bound in (("maximum", low), ("minimum", high)):
        if bound is not None:
            operand = bound if isinstance(bound, str) else b.g.add_const(np.float32(bound), "c")
            x = b.emit(op, [x, operand])
    return [x]


def _pad(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Pad with constant pads (``[begin_1 .. begin_n, end_1 .. end_n]``): ``constant`` mode with
    its value (negative pads crop), constant blocks concatenated on either side; ``reflect``,
    ``edge`` and ``wrap`` as slices of the input concatenated."""
    at = attrs_of(node)
    mode = at.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    x = b.tensor(node.input[0])
    rank = len(b.g.values[x].shape)
    pads = [int(p) for p in (b.const_input(node, 1) if len(node.input) > 1 else at["pads"])]
    if len(node.input) > 3 and node.input[3]:
        raise UnsupportedOp("Pad", b.current, "an axes input")
    torch_mode = {"reflect": "reflect", "edge": "replicate", "wrap": "circular"}.get(mode)
    if torch_mode is not None:  # slices of x concatenated (mode_pad_pieces)
        for dim in range(rank):
            size = b.g.values[x].shape[dim]
            try:
                pieces = mode_pad_pieces(size, pads[dim], pads[rank + dim], torch_mode)
            except ValueError as exc:
                raise UnsupportedOp("Pad", b.current, str(exc)) from exc
            if len(pieces) > 1:
                parts = [b.slice(x, dim, start, stop) for start, stop in pieces]
                x = b.emit("cat", parts, {"dim": dim})
        return [x]
    if mode != "constant":
        raise UnsupportedOp("Pad", b.current, f"mode {mode!r}")
    value = b.const_input(node, 2) if len(node.input) > 2 and node.input[2] else 0.0
    fill = float(np.asarray(value).reshape(-1)[0]) if np.size(value) else 0.0
    return [_constant_pad(b, x, list(zip(pads[:rank], pads[rank:], strict=True)), fill)]


def _constant_pad(b: OnnxBuilder, x: str, pads: Sequence[tuple[int, int]], fill: float) -> str:
    """``x`` padded with ``fill`` by ``(before, after)`` per dim from dim 0 on (negative pads
    crop): constant blocks concatenated on either side (``constant_pad_steps``)."""
    for dim, (before, after) in enumerate(pads):
        crop, pieces = constant_pad_steps(b.g.values[x].shape, dim, before, after)
        if crop is not None:
            x = b.slice(x, dim, crop[0], crop[1])
        parts = [
            x if block is None else b.g.add_const(np.full(block, fill, np.float32), "pad")
            for block in pieces
        ]
        if len(parts) > 1:
            x = b.emit("cat", parts, {"dim": dim})
    return x


# coordinate modes under which nearest upsampling by an integer factor repeats each pixel
REPEATING_NEAREST = {
    ("asymmetric", "floor"),
    ("half_pixel", "round_prefer_floor"),
    ("pytorch_half_pixel", "round_prefer_floor"),
}


def _resize(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Resize in nearest mode by integer factors where the coordinate mode makes it a
    repetition of each pixel (:data:`REPEATING_NEAREST`; PyTorch's export of nearest
    ``interpolate`` is ``asymmetric`` / ``floor``): reshapes around a broadcast multiply."""
    at = attrs_of(node)

    def text(key: str, default: str) -> str:
        value = at.get(key, default)
        return value.decode() if isinstance(value, bytes) else str(value)

    mode = text("mode", "nearest")
    coords = (
        text("coordinate_transformation_mode", "half_pixel"),
        text("nearest_mode", "round_prefer_floor"),
    )
    if int(at.get("antialias", 0)) or len(at.get("axes", [])):
        raise UnsupportedOp("Resize", b.current, "antialias or axes")
    linear = mode in ("linear", "cubic") and coords[0] in LINEAR_RESIZE_MODES
    if not linear and (mode != "nearest" or coords not in REPEATING_NEAREST):
        raise UnsupportedOp("Resize", b.current, f"mode {mode}, {coords[0]} / {coords[1]}")
    x = b.tensor(node.input[0])
    shape = b.g.values[x].shape
    scales = b.const_input(node, 2)
    sizes = b.const_input(node, 3)
    if sizes is not None and np.size(sizes):
        out = [int(v) for v in np.asarray(sizes).reshape(-1)]
        factors = [o / n for o, n in zip(out, shape, strict=True)]
    elif scales is not None and np.size(scales):
        factors = [float(f) for f in np.asarray(scales).reshape(-1)]
        rounding = math.floor if linear else round
        out = [int(rounding(n * f)) for n, f in zip(shape, factors, strict=True)]
    else:
        raise UnsupportedOp("Resize", b.current, "neither scales nor sizes")
    if linear:
        if mode == "cubic":
            cubic = (float(at.get("cubic_coeff_a", -0.75)), bool(at.get("exclude_outside", 0)))
            return [_linear_resize(b, x, out, factors, coords[0], cubic)]
        return [_linear_resize(b, x, out, factors, coords[0])]
    factors = [o // n for o, n in zip(out, shape, strict=True)]
    if any(o != n * f or f < 1 for o, n, f in zip(out, shape, factors, strict=True)):
        raise UnsupportedOp(
            "Resize", b.current, f"{tuple(shape)} -> {tuple(out)}: not an integer upscale"
        )
    split = [v for n in shape for v in (n, 1)]
    ones = np.ones([v for f in factors for v in (1, f)], np.float32)
    grown = b.emit("mul", [b.reshape(x, split), b.g.add_const(ones, "rep")])
    return [b.reshape(grown, out)]


def _linear_resize(
    b: OnnxBuilder,
    x: str,
    out: Sequence[int],
    factors: Sequence[float],
    mode: str,
    cubic: tuple[float, bool] | None = None,
) -> str:
    """Resize in ``linear`` or ``cubic`` mode (``cubic``: its coefficient and
    ``exclude_outside``): separable, one constant matrix per resized dim
    (:func:`~provenml.compiler.frontend.common.linear_resize_matrix`,
    :func:`~provenml.compiler.frontend.common.cubic_resize_matrix`) applied as a matmul along
    that dim (the einsum plan)."""
    shape = b.g.values[x].shape
    letters = "abcdefgh"[: len(shape)]
    if len(shape) > len(letters):
        raise UnsupportedOp("Resize", b.current, f"a rank-{len(shape)} input")

    for dim, (n, o, f) in enumerate(zip(shape, out, factors, strict=True)):
        if n == o and f == 1.0:
            continue
        weights = (
            linear_resize_matrix(n, o, f, mode)
            if cubic is None
            else cubic_resize_matrix(n, o, f, mode, cubic[0], cubic[1])
        )
        matrix = b.g.add_const(weights, "interp")
        result = letters[:dim] + "z" + letters[dim + 1 :]
        equation = f"{letters},z{letters[dim]}->{result}"
        x = lower_einsum(
            equation, [x, matrix], lambda v: b.g.values[v].shape, b.emit_shaped, b.current
        )
    return x


def _conv_transpose(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """ConvTranspose (1-d or 2-d, any group and dilation, a constant weight) as the
    convolution it is the gradient of, the torch frontend's plan
    (:func:`~provenml.compiler.frontend.common.conv_transpose_steps`), with ONNX's begin pads
    and the output size its pads, output padding or ``output_shape`` give."""
    at = attrs_of(node)
    x = b.tensor(node.input[0])
    n, c, *sizes = b.g.values[x].shape
    spatial = len(sizes)
    if spatial not in (1, 2):
        raise UnsupportedOp("ConvTranspose", b.current, f"{spatial}-d convolution")
    dilation = [int(d) for d in at.get("dilations", [1] * spatial)]
    group = int(at.get("group", 1))
    if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise UnsupportedOp("ConvTranspose", b.current, "auto_pad SAME_*")
    if node.input[1] not in b.static:
        raise UnsupportedOp("ConvTranspose", b.current, "a weight computed at run time")
    weight = b.static[node.input[1]].astype(np.float32)
    if c % group or weight.shape[0] != c:
        raise UnsupportedOp("ConvTranspose", b.current, f"group={group} for {c} input channels")
    kernel = [d * (int(k) - 1) + 1 for k, d in zip(weight.shape[2:], dilation, strict=True)]
    strides = [int(s) for s in at.get("strides", [1] * spatial)]
    pads = [int(p) for p in at.get("pads", [0] * (2 * spatial))]
    extra = [int(p) for p in at.get("output_padding", [0] * spatial)]
    if "output_shape" in at:  # the pads follow from it (ONNX: pads are then ignored)
        out = [int(v) for v in at["output_shape"]][-spatial:]
        for i, (v, s, k) in enumerate(zip(sizes, strides, kernel, strict=True)):
            total = s * (v - 1) + extra[i] + k - out[i]
            pads[i], pads[spatial + i] = total - total // 2, total // 2
    else:
        out = [
            (v - 1) * s + k - pads[i] - pads[spatial + i] + extra[i]
            for i, (v, s, k) in enumerate(zip(sizes, strides, kernel, strict=True))
        ]
    steps = conv_transpose_steps(
        (n, c, *sizes), weight, strides, pads[:spatial], out, group, dilation
    )
    if steps.onehot is not None:
        x = b.reshape(x, steps.split)
        x = b.emit("mul", [x, b.g.add_const(steps.onehot, "zeros_between")])
        x = b.reshape(x, steps.inserted)
    x = _constant_pad(b, x, [(0, 0), (0, 0), *steps.pads], 0.0)
    w = b.g.add_const(steps.weight, "w")
    bias = b.tensor(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    flat = (1,) * spatial, (0,) * spatial
    return [lower_conv(x, w, bias, *flat, dilation, group, _conv_ops(b))]


class _StepBuilder:
    """The few :class:`~provenml.compiler.frontend.torch_fx.FxBuilder` methods the recurrent
    unroll (:func:`~provenml.compiler.frontend.torch_recurrent.unroll`) calls, over an
    :class:`OnnxBuilder` (which infers shapes instead of taking them)."""

    def __init__(self, b: OnnxBuilder) -> None:
        self.b = b

    def emit(self, op: str, inputs: list[str], attrs: dict[str, Any], like: Any) -> str:
        return self.b.emit(op, inputs, attrs)

    def const(self, t: Any, stem: str = "c") -> str:
        arr = t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
        return self.b.g.add_const(np.ascontiguousarray(arr, dtype=np.float32), stem)

    def reshape(self, x: str, like: Any) -> str:
        return self.b.reshape(x, tuple(like.shape))

    def shape(self, x: str) -> tuple[int, ...]:
        return self.b.g.values[x].shape


# ONNX's gate blocks in PyTorch's order: LSTM i, o, f, c -> i, f, g(c), o; GRU z, r, h -> r, z, n
_GATE_ORDER = {"LSTM": (0, 2, 3, 1), "GRU": (1, 0, 2)}


def _recurrent(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """LSTM and GRU (default activations, ``linear_before_reset=1`` for a GRU as PyTorch
    exports it, no clip, no ``sequence_lens``): the gate blocks put in PyTorch's order and
    unrolled as the torch frontend unrolls ``nn.LSTM`` / ``nn.GRU``. Outputs ``Y``
    ``(T, D, N, H)``, ``Y_h`` and ``Y_c`` ``(D, N, H)`` (``layout=0``, as PyTorch exports)."""
    from provenml.compiler.frontend.torch_recurrent import unroll

    kind, at = node.op_type, attrs_of(node)
    lstm = kind == "LSTM"
    refused = [k for k in ("activations", "clip", "activation_alpha", "activation_beta") if k in at]
    if lstm and int(at.get("input_forget", 0)):
        refused.append("input_forget")
    if not lstm and not int(at.get("linear_before_reset", 0)):
        refused.append("linear_before_reset=0")
    if len(node.input) > 4 and node.input[4]:
        refused.append("sequence_lens")
    if lstm and len(node.input) > 7 and node.input[7]:
        refused.append("peepholes")
    if refused:
        raise UnsupportedOp(kind, b.current, ", ".join(refused))
    if any(name not in b.static for name in node.input[1:3]):
        raise UnsupportedOp(kind, b.current, "weights computed at run time")
    if int(at.get("layout", 0)):
        raise UnsupportedOp(kind, b.current, "layout=1 (batch-major; PyTorch exports layout 0)")
    x = b.emit("permute", [b.tensor(node.input[0])], {"perm": (1, 0, 2)})  # (N, T, F)
    batch, steps, _ = b.g.values[x].shape
    hidden = int(at["hidden_size"])
    direction = at.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else str(direction)
    reverses = {"forward": [False], "reverse": [True], "bidirectional": [False, True]}[direction]
    gate_count = 4 if lstm else 3
    w, r = b.static[node.input[1]], b.static[node.input[2]]
    bias = (
        b.static[node.input[3]]
        if len(node.input) > 3 and node.input[3] and node.input[3] in b.static
        else np.zeros((len(reverses), 2 * gate_count * hidden), np.float32)
    )

    def torch_order(block: np.ndarray) -> np.ndarray:
        parts = np.split(block, gate_count, axis=0)
        return np.concatenate([parts[k] for k in _GATE_ORDER[kind]], axis=0)

    def initial(i: int, d: int) -> str:
        if len(node.input) > i and node.input[i]:
            state = b.tensor(node.input[i])
            row = b.slice(state, 0, d, d + 1)
            return b.reshape(row, (batch, hidden))
        return b.g.add_const(np.zeros((batch, hidden), np.float32), "h0")

    fx = _StepBuilder(b)
    seqs, finals_h, finals_c = [], [], []
    for d, reverse in enumerate(reverses):
        weights = (
            torch_order(w[d]),
            torch_order(bias[d][: gate_count * hidden]),
            torch_order(r[d]),
            torch_order(bias[d][gate_count * hidden :]),
        )
        c0 = initial(6, d) if lstm else None
        seq, h, c = unroll(fx, x, weights, initial(5, d), c0, reverse=reverse)
        seqs.append(b.reshape(seq, (batch, steps, 1, hidden)))
        finals_h.append(b.reshape(h, (1, batch, hidden)))
        finals_c.append(b.reshape(c, (1, batch, hidden)) if c is not None else "")
    y = seqs[0] if len(seqs) == 1 else b.emit("cat", seqs, {"dim": 2})  # (N, T, D, H)
    y = b.emit("permute", [y], {"perm": (1, 2, 0, 3)})  # (T, D, N, H)
    y_h = finals_h[0] if len(finals_h) == 1 else b.emit("cat", finals_h, {"dim": 0})
    outs = [y, y_h]
    if lstm:
        outs.append(finals_c[0] if len(finals_c) == 1 else b.emit("cat", finals_c, {"dim": 0}))
    return outs


def _einsum(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Einsum (:func:`~provenml.compiler.frontend.common.lower_einsum`)."""
    equation = attrs_of(node).get("equation", b"")
    equation = equation.decode() if isinstance(equation, bytes) else str(equation)
    xs = [b.tensor(i) for i in node.input]

    return [lower_einsum(equation, xs, lambda x: b.g.values[x].shape, b.emit_shaped, b.current)]


def _extremum(op: str) -> OnnxHandler:
    """Max / Min / Sum of any number of inputs, elementwise with broadcasting (a chain of
    binary ops, left to right)."""

    def handle(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
        acc = b.tensor(node.input[0])
        for other in node.input[1:]:
            acc = b.emit(op, [acc, b.tensor(other)])
        return [acc]

    return handle


def _leaky_relu(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """``max(x, alpha x)`` for alpha in [0, 1]."""
    alpha = float(attrs_of(node).get("alpha", 0.01))
    if not 0.0 <= alpha <= 1.0:
        raise UnsupportedOp("LeakyRelu", b.current, f"alpha {alpha}")
    x = b.tensor(node.input[0])
    return [b.emit("maximum", [x, b.emit("mul", [x, b.g.add_const(np.float32(alpha), "a")])])]


def _elu(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """``relu(x) + min(0, alpha (exp(x) - 1))``."""
    alpha = float(attrs_of(node).get("alpha", 1.0))
    x = b.tensor(node.input[0])
    negative = b.emit("sub", [b.emit("exp", [x]), b.g.add_const(np.float32(1.0), "one")])
    negative = b.emit("mul", [negative, b.g.add_const(np.float32(alpha), "a")])
    negative = b.emit("minimum", [negative, b.g.add_const(np.float32(0.0), "zero")])
    return [b.emit("add", [b.emit("relu", [x]), negative])]


def _cast(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """A no-op Cast, a boolean tensor (0 / 1) to float, int64 to float, or a number to
    boolean (``x != 0``, flagged boolean: transformers' exported attention mask)."""
    x = b.tensor(node.input[0])
    to = int(attrs_of(node)["to"])
    if x in b.bools:
        if to == _BOOL:
            return [x]
        if to == _FLOAT:
            return [b.emit("identity", [x])]
    if to == _BOOL:
        integer = b.g.values[x].dtype == "int64"
        zero = b.g.add_const(np.asarray(0, np.int64 if integer else np.float32), "zero")
        y = b.emit("ne", [x, zero])
        b.bools.add(y)
        return [y]
    if to == _FLOAT and b.g.values[x].dtype == "int64":
        return [b.emit("to_float", [x])]
    if to in (_INT64, _INT32) and b.g.values[x].dtype != "int64":  # int32 widened to int64
        return [b.emit("to_int", [x])]  # truncated toward zero; a boolean's 0 / 1
    if to == _INT32 and b.g.values[x].dtype == "int64":
        return [x]
    want = {_FLOAT: "float32", _INT64: "int64"}.get(to)
    if x in b.bools or want != b.g.values[x].dtype:
        raise UnsupportedOp("Cast", b.current, f"a runtime cast to element type {to}")
    return [x]


def element_positions(b: OnnxBuilder, shape: Sequence[int], index: str, axis: int) -> str:
    """The flat positions in a tensor of ``shape`` that a run-time ``index`` names along
    ``axis`` (GatherElements, ScatterElements): each element's constant part (its coordinates
    off the axis, by the strides) plus its index, checked and negative ones counted from the
    end (``bounded`` with ``wrap_negative``: outside ``[-n, n)`` the call raises, naming the
    index as given), times the axis' stride."""
    base, stride = element_offsets(shape, b.g.values[index].shape, axis)

    def const(value: int | np.ndarray, stem: str) -> str:
        return b.g.add_const(np.asarray(value, np.int64), stem)

    checked = b.emit("bounded", [index, const(shape[axis], "n")], WRAP_NEGATIVE)
    return b.emit("add", [b.emit("mul", [checked, const(stride, "stride")]), const(base, "base")])


def _gather_elements(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """GatherElements (``out[.., j, ..] = data[.., index[.., j, ..], ..]`` along ``axis``) of
    a run-time index or data, as the row gather of the data flattened to one element per row
    (as the torch frontend's ``torch.gather``) at :func:`element_positions`. RoBERTa's export
    gathers its token-type buffer by the position ids so."""
    data = b.tensor(node.input[0])
    shape = b.g.values[data].shape
    axis = int(attrs_of(node).get("axis", 0)) % len(shape)
    index = b.tensor(node.input[1])
    table = b.reshape(data, (int(np.prod(shape)), 1))
    gathered = b.emit("embedding", [table, element_positions(b, shape, index, axis)])
    y = b.reshape(gathered, b.g.values[index].shape)
    if data in b.bools:
        b.bools.add(y)
    return [y]


def _cumsum(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """CumSum along a constant axis (``exclusive`` and ``reverse`` 0): float32 accumulated in
    double, int64 exact (:func:`~provenml.compiler.codegen.kernels.reduction.cumsum`)."""
    at = attrs_of(node)
    if int(at.get("exclusive", 0)) or int(at.get("reverse", 0)):
        raise UnsupportedOp("CumSum", b.current, "exclusive or reverse")
    if node.input[1] not in b.static:
        raise UnsupportedOp("CumSum", b.current, "an axis computed at run time")
    x = b.tensor(node.input[0])
    dim = int(b.static[node.input[1]]) % len(b.g.values[x].shape)
    return [b.emit("cumsum", [x], {"dim": dim})]


def _compare(op: str) -> OnnxHandler:
    """Greater, Less, GreaterOrEqual, LessOrEqual, Equal: a 0 / 1 tensor, flagged boolean."""

    def handle(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
        y = b.emit(op, [b.tensor(node.input[0]), b.tensor(node.input[1])])
        b.bools.add(y)
        return [y]

    return handle


def _expand(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Expand to a constant shape (numpy broadcasting: :func:`~provenml.compiler.frontend
    .common.broadcast_ones`)."""
    x = b.tensor(node.input[0])
    shape = b.g.values[x].shape
    target = [int(v) for v in np.asarray(b.const_input(node, 1)).reshape(-1)]
    try:  # ONNX's Expand broadcasts both ways: the result may keep a dim the target has as 1
        ones = broadcast_ones(shape, np.broadcast_shapes(tuple(shape), tuple(target)))
    except ValueError as exc:
        raise UnsupportedOp("Expand", b.current, f"{shape} to {target}") from exc
    return [x if ones is None else b.emit("mul", [x, b.g.add_const(ones, "expand")])]


def _tile(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Tile by constant repeats (:func:`~provenml.compiler.frontend.common.tile_steps`)."""
    x = b.tensor(node.input[0])
    reps = [int(v) for v in np.asarray(b.const_input(node, 1)).reshape(-1)]
    try:
        steps = tile_steps(b.g.values[x].shape, reps)
    except ValueError as exc:
        raise UnsupportedOp("Tile", b.current, str(exc)) from exc
    y = b.emit("mul", [b.reshape(x, steps.split), b.g.add_const(steps.ones, "tile")])
    return [b.reshape(y, steps.tiled)]


def _is_nan(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """IsNaN as ``x != x`` (true only for NaN), flagged boolean."""
    x = b.tensor(node.input[0])
    y = b.emit("ne", [x, x])
    b.bools.add(y)
    return [y]


def _bool_input(b: OnnxBuilder, node: onnx.NodeProto, i: int) -> str:
    """A boolean operand: a flagged value or a boolean constant (0 / 1 once a constant)."""
    name = node.input[i]
    static = b.static.get(name)
    x = b.tensor(name)
    if x in b.bools or (static is not None and static.dtype == np.bool_):
        return x
    raise UnsupportedOp(node.op_type, b.current, f"input {i} is not boolean")


def _logical(kind: str) -> OnnxHandler:
    """Not, And, Or on booleans: ``1 - x``, a product, a maximum of 0 / 1 values."""

    def handle(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
        x = _bool_input(b, node, 0)
        if kind == "not":
            y = b.emit("sub", [b.g.add_const(np.float32(1.0), "one"), x])
        else:
            other = _bool_input(b, node, 1)
            y = b.emit("mul" if kind == "and" else "maximum", [x, other])
        b.bools.add(y)
        return [y]

    return handle


def _where(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Where(cond, x, y): ``keep_where(cond, x) + keep_where_not(cond, y)`` (one half is
    exactly 0 at each element)."""
    cond = _bool_input(b, node, 0)
    yes = b.emit("keep_where", [cond, b.tensor(node.input[1])])
    no = b.emit("keep_where_not", [cond, b.tensor(node.input[2])])
    return [b.emit("add", [yes, no])]


def _dropout(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    if len(node.output) > 1 and node.output[1]:
        raise UnsupportedOp("Dropout", b.current, "mask output")
    return [b.tensor(node.input[0])]


def _shape(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    """Shapes are static: ``Shape`` (and ``Size``) of any tensor is a compile-time constant."""
    shape = np.array(b.shape(node.input[0]), np.int64)
    if node.op_type == "Size":
        b.static[node.output[0]] = np.array(int(np.prod(shape)), np.int64)
        return []
    at = attrs_of(node)
    rank = len(shape)
    start = int(at.get("start", 0))
    end = int(at.get("end", rank))
    b.static[node.output[0]] = shape[slice(start, end)]
    return []


def _reciprocal(b: OnnxBuilder, node: onnx.NodeProto) -> list[str]:
    return [b.emit("div", [b.g.add_const(np.float32(1.0), "one"), b.tensor(node.input[0])])]


ONNX_OPS: dict[str, OnnxHandler] = {
    "Relu": _unary("relu"),
    "Sigmoid": _unary("sigmoid"),
    "Tanh": _unary("tanh"),
    "Exp": _unary("exp"),
    "Neg": _unary("neg"),
    "Erf": _unary("erf"),
    "Sqrt": _unary("sqrt"),
    "Abs": _unary("abs"),
    "Log": _unary("log"),
    "Softplus": _unary("softplus"),
    "HardSwish": _unary("hardswish"),
    "HardSigmoid": _hard_sigmoid,
    "Clip": _clip,
    "Pad": _pad,
    "Resize": _resize,
    "ConvTranspose": _conv_transpose,
    "Einsum": _einsum,
    "Max": _extremum("maximum"),
    "Sum": _extremum("add"),
    "CumSum": _cumsum,
    "GatherElements": _gather_elements,
    "Min": _extremum("minimum"),
    "LeakyRelu": _leaky_relu,
    "Elu": _elu,
    "Gelu": _gelu,
    "Identity": _identity,
    "Dropout": _dropout,
    "Add": _binary("add"),
    "Sub": _binary("sub"),
    "Mul": _binary("mul"),
    "Div": _binary("div"),
    "Pow": _pow,
    "Reciprocal": _reciprocal,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Conv": _conv,
    "MaxPool": _pool("max_pool2d"),
    "AveragePool": _pool("avg_pool2d"),
    "GlobalAveragePool": _global_average_pool,
    "Softmax": _softmax,
    "LogSoftmax": _softmax,
    "LayerNormalization": _layer_norm,
    "BatchNormalization": _batch_norm,
    "InstanceNormalization": _instance_norm,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Transpose": _transpose,
    "Concat": _concat,
    "Slice": _slice,
    "Split": _split,
    "Gather": _gather,
    "ReduceMean": _reduce("mean"),
    "ReduceSum": _reduce("sum"),
    "ReduceMax": _reduce("amax"),
    "ArgMax": _arg_reduce("argmax"),
    "ArgMin": _arg_reduce("argmin"),
    "ReduceMin": _reduce("amin"),
    "GlobalMaxPool": _global_average_pool,
    "Cast": _cast,
    "Greater": _compare("gt"),
    "GreaterOrEqual": _compare("ge"),
    "Less": _compare("lt"),
    "LessOrEqual": _compare("le"),
    "Equal": _compare("eq"),
    "Not": _logical("not"),
    "And": _logical("and"),
    "Or": _logical("or"),
    "Where": _where,
    "IsNaN": _is_nan,
    "Expand": _expand,
    "Tile": _tile,
    "LSTM": _recurrent,
    "GRU": _recurrent,
    "Shape": _shape,
    "Size": _shape,
}
# evaluated by their handler even when every input is a constant (their output feeds a kernel)
NEVER_FOLD: frozenset[str] = frozenset()
#: ops that move a boolean tensor (their output is one too)
BOOL_MOVES = frozenset(("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice",
                        "Identity", "Expand"))  # fmt: skip
#: ops that may read a boolean tensor
BOOL_OPS = BOOL_MOVES | {
    "Cast",
    "Not",
    "And",
    "Or",
    "Xor",
    "Where",
    "Shape",
    "Size",
    "Gather",
    "GatherND",  # (stop 74: transformers' masks, ``mask[batch, positions]``; handler keeps it)
    "NonZero",
}


def onnx_to_graph(
    model: str | os.PathLike[str] | bytes | onnx.ModelProto,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    example: dict[str, np.ndarray] | None = None,
) -> Graph:
    """Convert an ONNX model to the graph IR; ``input_shapes`` fixes symbolic input dims (by
    ONNX input name); ``example`` (arrays by input name) gives the values of run-time
    numbers that size the graph (:meth:`OnnxBuilder.const_input`)."""
    proto = load_model(model)
    return OnnxBuilder(proto, example).build(dict(input_shapes or {}))


def onnx_input_names(model: onnx.ModelProto) -> list[str]:
    """The graph inputs that are not initializers, in order."""
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]
