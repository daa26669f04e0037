"""The graph-level IR: a typed SSA graph (survey Sec. 3.1, "high-level IR").

Every value is defined exactly once, by a graph input, a constant or one node; a node has an
operator name, its input value names, attributes, and the type of its result (shape, dtype,
physical layout). Fused groups (after :func:`provenml.compiler.passes.fuse`) are nodes whose
``attrs["body"]`` holds the inner nodes they replace, so one fused node is one loop nest.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: float32 functions of one argument that the kernels compute with C's libm (``sinf``, ...;
#: vectorised by glibc's libmvec where it has them) and the interpreter with NumPy / SciPy
MATH_UNARY = (
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "asinh",
    "acosh",
    "atanh",
    "log1p",
    "expm1",
    "log2",
    "log10",
    "exp2",
    "erfc",
    "lgamma",
)
ELEMENTWISE_UNARY = (
    "relu",
    "gelu",
    "gelu_tanh",
    "silu",
    "tanh",
    "sigmoid",
    "neg",
    "exp",
    "identity",
    "erf",
    "sqrt",
    # stop 54: the activations and maths of users' models that were refused before
    "abs",
    "log",
    "rsqrt",
    "relu6",
    "hardsigmoid",
    "hardswish",
    "softplus",
    # stop 56: an int64 tensor (argmax indices, an integer input) as float32 values
    "to_float",
    # stop 57: a float32 or 0 / 1 boolean tensor as int64 (truncated toward zero, as PyTorch's
    # .long() / .int()); integer add / sub / mul / neg compute in 64-bit integers
    "to_int",
    # stop 59: rounding (round: to nearest, ties to even, as torch.round) and the sign
    "floor",
    "ceil",
    "round",
    "trunc",
    "sign",
    # stop 66: the maths of users' models (sinusoidal time and position embeddings, SIREN and
    # Fourier-feature networks, log-likelihoods), each one C math function (MATH_UNARY)
    *MATH_UNARY,
)
ELEMENTWISE_BINARY = (
    "add",
    "sub",
    "mul",
    "div",
    "maximum",
    "minimum",
    # stop 55: comparisons give 0 / 1 (the frontends' boolean tensors), and the two halves of
    # a select: keep_where(c, x) = x where c != 0 else 0, keep_where_not(c, x) the reverse
    "gt",
    "ge",
    "lt",
    "le",
    "eq",
    "ne",
    "keep_where",
    "keep_where_not",
    # stop 59: Python's (and PyTorch's) floor division and remainder (the sign of the
    # divisor), float32 or int64 (in 64-bit integers)
    "floor_divide",
    "remainder",
    "atan2",  # stop 59
    # stop 60: bounded(i, n) = i, an int64 index of a dimension of n, checked (0 <= i < n) in
    # the kernel: an index out of range is reported to the caller, who raises; with the attr
    # wrap_negative (stop 61) -n <= i < 0 is allowed too and gives i + n
    "bounded",
    # stop 60: C's truncating division and remainder (ONNX's integer Div, Mod fmod=1;
    # PyTorch's rounding_mode="trunc", fmod), float32 or int64
    "trunc_divide",
    "fmod",
    # stop 67: libm's two-argument functions, float32 (torch.pow by any exponent, hypot,
    # copysign; ONNX Pow by a run-time exponent)
    "pow",
    "hypot",
    "copysign",
)
ELEMENTWISE = ELEMENTWISE_UNARY + ELEMENTWISE_BINARY
MATMUL_LIKE = ("linear", "dense", "matmul", "conv2d")
# argmax / argmin (stop 56): one dim, int64 indices (the first extremum; a NaN counts as one)
REDUCTION_LIKE = ("softmax", "layer_norm", "mean", "sum", "amax", "amin", "argmax", "argmin")
# the reductions over ``dims`` (their kernels reduce one run of adjacent dims; since stop 59
# the frontends permute other dims last first: ``adjacent``)
DIM_REDUCTIONS = ("sum", "mean", "amax", "amin")


def adjacent(dims: tuple[int, ...] | list[int]) -> bool:
    """Whether sorted ``dims`` are one run of neighbours (``(1, 2)``, not ``(0, 2)``)."""
    return list(dims) == list(range(dims[0], dims[-1] + 1)) if dims else True


# stop 57: cumulative sum along one dim (``dim``), float32 (accumulated in double, as PyTorch's
# CPU kernel does) or int64 (exact)
# cumprod: stop 59 (float32 in double, int64 exact); logcumsumexp: stop 62 (float32, in double)
SCANS = ("cumsum", "cumprod", "logcumsumexp")
# stop 59: scatter(base (R, W), rows (M,) int64, src (M, W)): base with src's rows combined
# into rows[q] in order (attrs reduce: add / amax / amin, include_self): index_add and the
# element scatters (scatter_add, scatter_reduce) one element per row
SCATTERS = ("scatter",)
# stop 59: the k largest (smallest) along ``dim``, sorted, ties by position (as a stable sort):
# ``topk`` gives their values, ``topk_indices`` their int64 positions (sort: k = the length)
SELECTIONS = ("topk", "topk_indices")


@dataclass
class Value:
    """A typed SSA value: ``shape`` is the logical shape; ``layout`` the physical order
    ("row" = row-major in logical order, "NHWC" = a logical NCHW tensor stored channels-last)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    layout: str = "row"

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def physical_shape(self) -> tuple[int, ...]:
        if self.layout == "NHWC":
            n, c, h, w = self.shape
            return (n, h, w, c)
        return self.shape

    def type_str(self) -> str:
        lay = "" if self.layout == "row" else f"@{self.layout}"
        return f"{self.dtype}[{','.join(map(str, self.shape))}]{lay}"


@dataclass
class Node:
    """One operation; its result value has the node's name (SSA)."""

    op: str
    name: str
    inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the torch.fx node it came from, for error messages


@dataclass(frozen=True)
class ValueGuard:
    """A Python number the model read from its inputs' values (stop 71: the number of graphs
    PyG's pooling takes from ``int(batch.max()) + 1``, a count from ``mask.sum().item()``):
    the compiled graph keeps the example's number, which may size the rest of the graph, and
    outputs the tensor it was read from, compared with ``expected`` after every call."""

    expected: int | bool
    #: what read it, for the error: the op, the node and the tensor it was read from
    what: str


@dataclass
class Graph:
    """A dataflow graph in SSA form with named inputs, constants (weights) and outputs."""

    inputs: list[str]
    outputs: list[str]
    nodes: list[Node]
    values: dict[str, Value]
    consts: dict[str, np.ndarray]
    counter: int = 0
    memory: dict[str, int] = field(default_factory=dict)  # value -> arena offset (floats)
    arena_size: int = 0
    # inputs that are boolean tensors for the caller: float32 0 / 1 inside, cast on each call
    bool_inputs: list[str] = field(default_factory=list)
    # stop 70: outputs that are Python values, not tensors (a None among the outputs, a size,
    # a number), by their place among the model's flattened outputs: returned as they are,
    # around the graph's tensor outputs (``merge_outputs``)
    constant_outputs: dict[int, Any] = field(default_factory=dict)
    # stop 71: numbers read from the inputs' values, kept as the example's; the last
    # ``len(value_guards)`` outputs are the tensors they were read from, in this order (the
    # runtime compares them and hands the caller the outputs before them)
    value_guards: list[ValueGuard] = field(default_factory=list)

    def clone(self) -> Graph:
        """A deep copy of the structure; constant arrays are shared (passes never mutate them)."""
        return Graph(
            inputs=list(self.inputs),
            outputs=list(self.outputs),
            nodes=copy.deepcopy(self.nodes),
            values=copy.deepcopy(self.values),
            consts=dict(self.consts),
            counter=self.counter,
            memory=dict(self.memory),
            arena_size=self.arena_size,
            bool_inputs=list(self.bool_inputs),
            constant_outputs=dict(self.constant_outputs),
            value_guards=list(self.value_guards),
        )

    def fresh(self, stem: str) -> str:
        """A new unique value name."""
        self.counter += 1
        name = f"{stem}_{self.counter}"
        while name in self.values:
            self.counter += 1
            name = f"{stem}_{self.counter}"
        return name

    def add_const(self, array: np.ndarray, stem: str = "c") -> str:
        """Register a constant array and return its value name. A 0-d array stays 0-d
        (``np.ascontiguousarray`` makes it 1-d, and until stop 60 ``x.sum() * 3`` then
        failed shape inference: a (1,) result recorded as ())."""
        arr = np.ascontiguousarray(array) if np.ndim(array) else np.array(array)
        name = self.fresh(stem)
        self.consts[name] = arr
        dtype = "int64" if arr.dtype.kind in "iu" else "float32"
        if dtype == "float32" and arr.dtype != np.float32:
            self.consts[name] = arr.astype(np.float32)
        self.values[name] = Value(name, tuple(arr.shape), dtype)
        return name

    def producers(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    def users(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {name: [] for name in self.values}
        for n in self.nodes:
            for i in n.inputs:
                out.setdefault(i, []).append(n)
        return out

    def __str__(self) -> str:
        return format_graph(self)


def _fmt_attr(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def format_node(n: Node, values: dict[str, Value], indent: str = "  ") -> list[str]:
    """Printable lines for one node (a fused node prints its body, indented)."""
    attrs = {k: v for k, v in n.attrs.items() if k != "body"}
    attr_s = ", ".join(f"{k}={_fmt_attr(v)}" for k, v in attrs.items())
    ty = values[n.name].type_str() if n.name in values else "?"
    line = f"{indent}%{n.name}: {ty} = {n.op}({', '.join('%' + i for i in n.inputs)})"
    if attr_s:
        line += f" {{{attr_s}}}"
    lines = [line]
    for inner in n.attrs.get("body", []):
        lines += format_node(inner, values, indent + "    | ")
    return lines


def format_graph(g: Graph) -> str:
    """The textual form of the IR, one node a line."""
    lines = ["graph("]
    for i in g.inputs:
        lines.append(f"  %{i}: {g.values[i].type_str()},")
    lines.append(") {")
    for c, _arr in g.consts.items():
        if c in g.values:
            lines.append(f"  %{c}: {g.values[c].type_str()} = const")
    for n in g.nodes:
        lines += format_node(n, g.values)
        if n.name in g.memory:
            lines[-1 - len(n.attrs.get("body", []))] += f"  @arena[{g.memory[n.name]}]"

    lines.append(f"  return {', '.join('%' + o for o in g.outputs)}")
    lines.append("}" + (f"  // arena {g.arena_size * 4} bytes" if g.arena_size else ""))
    return "\n".join(lines)


def merge_outputs(tensors: Sequence[Any], constants: dict[int, Any]) -> list[Any]:
    """The model's flattened outputs: ``tensors`` (the graph's, in order) with the Python
    values of ``constants`` put back at their places."""
    if not constants:
        return list(tensors)
    merged: list[Any] = []
    rest = iter(tensors)
    for k in range(len(tensors) + len(constants)):
        merged.append(constants[k] if k in constants else next(rest))
    return merged
