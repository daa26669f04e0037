"""The PyTorch frontend: a model (or a ``torch.fx.GraphModule``) to the typed SSA graph IR.

The model is traced with ``torch.fx.symbolic_trace`` and run once on the example inputs with a
``torch.fx.Interpreter``, so every node gets a concrete static shape (and every size query a
Python integer). Each fx node is then mapped to IR ops (survey Sec. 4.1, "frontend") by
op -> handler tables, tinygrad-style: :data:`FUNCTIONS` (by the called object),
:data:`FUNCTION_NAMES` (by its ``__name__``, so ``torch.relu`` and ``F.relu`` share a row),
:data:`METHODS` (Tensor methods) and :data:`MODULES` (``nn.Module`` classes, looked up along the
class's MRO). An op with no row raises :class:`UnsupportedOp` naming the op and the node.
"""

from __future__ import annotations

import inspect
import operator
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
import torch.utils._pytree as pytree

from provenml.compiler.frontend.common import (
    PAD_MODES,
    ConvOps,
    UnsupportedOp,
    avg_pool_rescale,
    broadcast_ones,
    ceil_extension,
    check_integer_operands,
    constant_pad_steps,
    conv_attrs,
    conv_output_size,
    conv_transpose_steps,
    element_offsets,
    lower_conv,
    lower_einsum,
    mode_pad_pieces,
    pool_fill,
    tile_steps,
)
from provenml.compiler.frontend.torch_state import clones
from provenml.compiler.ir import DIM_REDUCTIONS, Graph, Node, Value, ValueGuard, adjacent
from provenml.errors import ProvenmlError

# calls never evaluated at compile time even when their inputs are constants
RANDOM_OPS = frozenset(
    {
        "rand",
        "randn",
        "randint",
        "randperm",
        "rand_like",
        "randn_like",
        "randint_like",
        "normal",
        "bernoulli",
        "multinomial",
        "poisson",
    }
)
# an additive mask's masked value: -inf since stop 68 (the kernels keep infinities); before, the
# float32 minimum, which gave a fully masked row a uniform distribution
MASKED = float("-inf")


def _first(v: Any) -> Any:
    """The one entry of a 1-d conv's size tuple."""
    return int(v[0]) if isinstance(v, (tuple, list)) else v


def _is_tensor_sequence(x: Any) -> bool:
    """A tuple or list of tensors, or of such tuples (an LSTM's ``(output, (h_n, c_n))``);
    ``None`` allowed beside them (an attention module's weights when not asked for)."""
    return (
        isinstance(x, (tuple, list))
        and any(isinstance(t, torch.Tensor) or _is_tensor_sequence(t) for t in x)
        and all(isinstance(t, torch.Tensor) or t is None or _is_tensor_sequence(t) for t in x)
    )


#: outputs that are Python values: returned as they are (``Graph.constant_outputs``)
PYTHON_OUTPUTS = (int, float, bool, str)


def _is_namedtuple_class(target: Any) -> bool:
    """A ``collections.namedtuple`` / ``typing.NamedTuple`` class (``torch.fx`` records the
    construction of one that holds proxies as a call of the class, e.g. a model's output)."""
    return isinstance(target, type) and issubclass(target, tuple) and hasattr(target, "_fields")


def _namedtuple(b: FxBuilder, node: torch.fx.Node, out: Any) -> Any:
    """A named tuple of the model's values, built as the model builds it (stop 72: refused as
    ``unsupported op 'Out'`` before); its leaves become outputs as a tuple's do, and
    ``Compiled.output_structure`` gives the caller the named tuple back."""
    return node.target(*b.val(node.args), **{k: b.val(v) for k, v in node.kwargs.items()})


def _flat(value: Any) -> list[Any]:
    """The leaves of nested tuples / lists, in order."""
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in _flat(item)]
    return [value]


# ops that move their input's elements unchanged: the result has the input's dtype, whatever
# the ``like`` tensor a handler passes says
MOVES_DTYPE = ("reshape", "permute", "slice", "identity")


def meta_like(shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A shape-only tensor (``meta`` device) for :meth:`FxBuilder.emit`'s ``like``."""
    return torch.empty(list(shape), device="meta", dtype=dtype)


def target_name(node: torch.fx.Node, gm: torch.fx.GraphModule) -> str:
    """The name an error message uses for a node's op."""
    if node.op == "call_module":
        return type(gm.get_submodule(str(node.target))).__name__
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    t = node.target
    name = getattr(t, "__name__", str(t))
    if name.startswith("wrapped_") and getattr(t, "__module__", "") == "torch._dynamo.utils":
        # (stop 73) TorchDynamo's stand-in for a NumPy call on a tensor's .numpy(): the
        # refusal said "unsupported op 'wrapped_mean'"
        return f"NumPy's {name.removeprefix('wrapped_')} (on a tensor's .numpy(), in forward)"
    return name


#: call_function targets that change their first argument and return None (stop 69:
#: ``operator.setitem``, filled by :mod:`.torch_setitem`): converted into that argument's new
#: value; before, dropped as calls with no result
SIDE_EFFECTS: dict[Any, Callable[[FxBuilder, torch.fx.Node], str]] = {}


#: calls whose Python result depends on a tensor's shape (or type) only, not its values
SHAPE_QUERIES = frozenset(
    {
        *("getattr", "size", "dim", "ndimension", "numel", "nelement", "stride"),
        *("Tensor.size", "Tensor.dim", "Tensor.ndimension", "Tensor.numel", "Tensor.nelement"),
        *("Tensor.stride", "Tensor.is_floating_point", "Tensor.is_complex", "Tensor.get_device"),
        *("Tensor.element_size", "len", "sym_size", "sym_size.int", "sym_numel", "sym_stride"),
        *("is_floating_point", "is_complex", "numel", "is_tensor", "Tensor.is_contiguous"),
    }
)


#: Python's augmented assignments (``t += u``, ``t *= 2``), which change a *tensor* in place
#: (not an int, which they rebind), as the in-place methods of the same op
#: (:func:`.torch_setitem.in_place_augmented` makes them those calls before conversion; stop
#: 74: ``v = y[:, :2]; v *= 2; return y`` compiled as if ``v *= 2`` made a new tensor, ``y``
#: unchanged, 0.87 off, silently); ``&=`` / ``|=`` / ``^=`` as the logical ops, which the
#: frontend has for boolean tensors (an int tensor's bitwise ops are refused, as before)
AUGMENTED_ASSIGNMENTS = {
    operator.iadd: "add_",
    operator.isub: "sub_",
    operator.imul: "mul_",
    operator.itruediv: "div_",
    operator.ifloordiv: "floor_divide_",
    operator.imod: "remainder_",
    operator.ipow: "pow_",
    operator.iand: "logical_and_",
    operator.ior: "logical_or_",
    operator.ixor: "logical_xor_",
}


def in_place_target(node: torch.fx.Node, augmented: bool = False) -> torch.fx.Node | None:
    """The tensor an in-place method call (``t.add_(..)``, ``t.scatter_add_(..)``) or an item
    assignment (``t[i] = v``, :data:`SIDE_EFFECTS`) changes; with ``augmented``, also the
    first argument of an augmented assignment (``t *= 2``: a tensor or a number)."""
    writes = augmented and node.op == "call_function" and node.target in AUGMENTED_ASSIGNMENTS
    if node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload):
        # an ATen operator that writes its first argument (``aten.add_.Tensor``, before
        # :func:`.torch_aten.normalise_calls` makes it ``Tensor.add_``; stop 74)
        arguments = node.target._schema.arguments
        info = arguments[0].alias_info if arguments else None
        writes = info is not None and info.is_write
    if writes or (node.op == "call_function" and node.target in SIDE_EFFECTS):
        target = node.args[0] if node.args else None
        return target if isinstance(target, torch.fx.Node) else None
    name = str(node.target)
    if node.op != "call_method" or not name.endswith("_") or name.endswith("__"):
        return None
    target = node.args[0] if node.args else None
    return target if isinstance(target, torch.fx.Node) else None


#: ``Node.meta`` keys (:func:`.torch_setitem.write_back_views`, stop 74): on an in-place call
#: whose change of a view ``base[index]`` the next node writes back into ``base``, the view's
#: node name; on that inserted item assignment, the name of the view it writes
WRITE_BACK = "provenml_write_back"
WRITTEN_FROM = "provenml_written_from"


# calls whose result may share memory with their input: an in-place change of one would show
# through the other, which the IR (values, no aliasing) cannot follow
VIEW_CALLS = frozenset(
    {
        *("view", "reshape", "getitem", "squeeze", "unsqueeze", "transpose", "permute", "t"),
        *("expand", "expand_as", "narrow", "select", "flatten", "view_as", "reshape_as"),
        *("split", "chunk", "unbind", "contiguous", "detach", "T", "mT", "as_strided"),
    }
)


def call_name(node: torch.fx.Node) -> str:
    """The bare name of the op a call node calls (``Tensor.view`` and ``torch.view`` alike:
    ``view``; an ATen overload's last part); empty for a node that calls nothing."""
    if node.op == "call_method":
        return str(node.target)
    if node.op != "call_function":
        return ""
    return str(getattr(node.target, "__name__", node.target)).split(".")[-1]


def is_view_call(node: torch.fx.Node) -> bool:
    """Whether ``node`` calls an op whose result may share its input's memory
    (:data:`VIEW_CALLS`)."""
    return call_name(node) in VIEW_CALLS


def aliases_of(
    start: torch.fx.Node, shares_memory: dict[str, bool] | None = None
) -> set[torch.fx.Node]:
    """``start`` and the nodes whose result may share its memory: the views taken of it and
    of them, the in-place calls on any of them (their results are their targets), and the
    bases up the chain of view calls (with ``shares_memory``, the example run's record, only
    those links that shared memory there; stop 74)."""

    def links(n: torch.fx.Node) -> bool:
        return is_view_call(n) or in_place_target(n) is not None

    aliases, stack = {start}, [start]
    while stack:
        n = stack.pop()
        linked = [u for u in n.users if links(u) and u.args and u.args[0] is n]
        source = n.args[0] if n.args else None
        shared = shares_memory is None or shares_memory.get(n.name, True)
        if links(n) and isinstance(source, torch.fx.Node) and shared:
            linked.append(source)
        for m in linked:
            if m not in aliases:
                aliases.add(m)
                stack.append(m)
    return aliases


def changed_views(gm: torch.fx.GraphModule) -> set[str]:
    """The names of the view calls (:data:`VIEW_CALLS`) whose result may share memory with a
    tensor that an in-place call of ``gm`` changes (:func:`aliases_of` that tensor), and of
    the in-place calls on such views: to run in PyTorch, where the backend partitions a
    graph; compiled, a view would be a copy, and the change would not show (stop 74: the
    backend's partitions left ``y.t().add_(1)``'s ``add_`` to PyTorch on a compiled copy of
    ``y.t()``; ``y`` came out unchanged, silently)."""
    found: set[torch.fx.Node] = set()
    for node in gm.graph.nodes:
        target = in_place_target(node)
        if target is not None:
            found |= aliases_of(target)
    views = {n for n in found if is_view_call(n) and in_place_target(n) is None}
    changes = {n for n in gm.graph.nodes if in_place_target(n) in views}
    return {n.name for n in views | changes}


class _Recorder(torch.fx.Interpreter):
    """Runs the graph once and keeps every node's concrete result (a tensor that a later
    in-place call changes is kept as it was when made)."""

    def __init__(self, gm: torch.fx.GraphModule) -> None:
        super().__init__(gm)
        self.results: dict[str, Any] = {}
        self.mutated = {
            t.name for n in gm.graph.nodes if (t := in_place_target(n, True)) is not None
        }
        #: for a changed tensor made by a call that may return a view (:data:`VIEW_CALLS`):
        #: whether it did share memory with its input in the example run (``contiguous()`` of
        #: a permuted tensor, a ``reshape`` that had to copy, did not; stop 70)
        self.shares_memory: dict[str, bool] = {}

    def run_node(self, n: torch.fx.Node) -> Any:
        out = super().run_node(n)
        if n.op == "get_attr" and n.name in self.mutated and isinstance(out, torch.Tensor):
            # (stop 74) a tensor torch.fx keeps as an attribute (``torch.zeros(3, 4)`` made in
            # forward) and the graph changes in place: changed on a copy, so that running the
            # graph again (the faithfulness check, a run after a rewrite) starts from it as
            # the model's forward does
            out = out.clone()
        keep = n.name in self.mutated and isinstance(out, torch.Tensor)
        # (stop 74) every view call's sharing too: a view read after its base changes is
        # taken again from the changed base only where it did share (:func:`.torch_setitem
        # .write_back_views`)
        if (keep or is_view_call(n)) and n.args and isinstance(n.args[0], torch.fx.Node):
            source = self.env.get(n.args[0])
            if isinstance(source, torch.Tensor) and isinstance(out, torch.Tensor):
                same = out.untyped_storage().data_ptr() == source.untyped_storage().data_ptr()
                self.shares_memory[n.name] = same
        self.results[n.name] = out.clone() if keep else out
        return out

    def call_module(self, target: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        """A module's call; in a graph whose forward hooks were traced into it
        (:mod:`.torch_hooks`), its ``forward`` alone: calling the module would apply them a
        second time (stop 70: a hooked embedding of constant positions, folded from this run,
        came out 150 off)."""
        if self.module.meta.get(HOOKS_TRACED):
            return self.fetch_attr(str(target)).forward(*args, **kwargs)
        return super().call_module(target, args, kwargs)


#: ``GraphModule.meta`` flag: the graph holds its modules' forward hooks (:mod:`.torch_hooks`)
HOOKS_TRACED = "provenml_hooks_traced"


def pair(v: Any) -> tuple[int, int]:
    """An int or a pair as a pair of ints."""
    if isinstance(v, int):
        return (v, v)
    return (int(v[0]), int(v[1]))


# the NumPy-style keyword aliases PyTorch accepts (``torch.cat(xs, axis=1)``: Funnel)
KEYWORD_ALIASES = {"dim": "axis", "keepdim": "keepdims"}


def arg(node: torch.fx.Node, i: int, key: str, default: Any = None) -> Any:
    """Positional argument ``i`` of a call, or its keyword ``key`` (or that keyword's
    NumPy-style alias, :data:`KEYWORD_ALIASES`)."""
    if i < len(node.args):
        return node.args[i]
    if key not in node.kwargs and KEYWORD_ALIASES.get(key) in node.kwargs:
        return node.kwargs[KEYWORD_ALIASES[key]]
    return node.kwargs.get(key, default)


class FxBuilder:
    """Maps fx nodes to IR nodes, with concrete shapes from the recorded run."""

    def __init__(
        self,
        gm: torch.fx.GraphModule,
        results: dict[str, Any],
        frozen: set[str],
        shares_memory: dict[str, bool] | None = None,
    ):
        self.gm = gm
        self.results = results
        self.frozen = frozen
        # a changed tensor made by a view call: whether it shared memory with its input in the
        # example run (:class:`_Recorder`); unknown counts as shared
        self.shares_memory = shares_memory or {}
        self.g = Graph(inputs=[], outputs=[], nodes=[], values={}, consts={})
        self.env: dict[str, Any] = {}  # fx node name -> IR value name or Python value
        self.static: set[str] = set()  # fx nodes whose value is known at compile time
        self.folded: dict[str, str] = {}  # folded fx node -> its IR constant (made on first use)
        # IR values that are boolean tensors in PyTorch (0 / 1 floats here): comparisons and
        # what moves or combines them; only BOOL_HANDLERS may read them
        self.bools: set[str] = set()
        # the IR tensors of ``g.value_guards``, in order: outputs after the model's (stop 71)
        self.guard_values: list[str] = []
        self.current = ""
        self.order = {n: i for i, n in enumerate(gm.graph.nodes)}  # for in-place calls

    # -- helpers -------------------------------------------------------------------------------
    def emit(self, op: str, inputs: list[str], attrs: dict[str, Any], like: torch.Tensor) -> str:
        check_integer_operands(op, [self.g.values[i].dtype for i in inputs], self.current)
        if op in DIM_REDUCTIONS and not adjacent(attrs["dims"]):
            return self._adjacent_reduction(op, inputs[0], attrs, like)
        name = self.g.fresh(op)
        dtype = "int64" if like.dtype in (torch.int64, torch.int32) else "float32"
        if op in MOVES_DTYPE:  # (stop 60: a reshape given a float ``like`` moved int64 bits
            dtype = self.g.values[inputs[0]].dtype  # as float32, and a gather read garbage)
        self.g.values[name] = Value(name, tuple(like.shape), dtype)
        self.g.nodes.append(Node(op, name, list(inputs), dict(attrs), source=self.current))
        return name

    def _adjacent_reduction(
        self, op: str, x: str, attrs: dict[str, Any], like: torch.Tensor
    ) -> str:
        """A reduction over dims that are not adjacent (``x.mean((0, 2))``, ``std_mean`` over
        two): the kernels reduce one run of adjacent dims, so the reduced dims are permuted to
        the end first (since stop 59; before, codegen refused it)."""
        shape = self.shape(x)
        dims = sorted(attrs["dims"])
        kept = [d for d in range(len(shape)) if d not in dims]
        dtype = torch.int64 if self.g.values[x].dtype == "int64" else torch.float32
        moved = self.emit(
            "permute",
            [x],
            {"perm": (*kept, *dims)},
            meta_like([shape[d] for d in (*kept, *dims)], dtype),
        )
        tail = tuple(range(len(kept), len(shape)))
        reduced = self.emit(
            op,
            [moved],
            {**attrs, "dims": tail, "keepdim": False},
            meta_like([shape[d] for d in kept], like.dtype),
        )
        return reduced if self.shape(reduced) == tuple(like.shape) else self.reshape(reduced, like)

    def emit_shaped(
        self, op: str, inputs: list[str], attrs: dict[str, Any], shape: Sequence[int]
    ) -> str:
        """:meth:`emit` as the shared lowerings call it (``common.Emit``: a shape, not a
        tensor, for the result; a reshape takes it as its target)."""
        if op == "reshape":
            return self.reshape(inputs[0], meta_like(shape))
        return self.emit(op, inputs, attrs, meta_like(shape))

    def const(self, t: Any, stem: str = "c") -> str:
        if isinstance(t, torch.Tensor):
            arr = t.detach().cpu().numpy()
        else:
            arr = np.asarray(t, dtype=np.float32)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        return self.g.add_const(arr, stem)

    def val(self, a: Any) -> Any:
        """An fx argument to an IR value name (tensors) or a Python value (sizes and slice
        bounds computed from ``x.shape`` are concrete integers from the example run)."""
        if isinstance(a, torch.fx.Node):
            return self.env[a.name]
        if isinstance(a, (list, tuple)):
            return type(a)(self.val(x) for x in a)
        if isinstance(a, slice):
            return slice(self.val(a.start), self.val(a.stop), self.val(a.step))
        return a

    def tensor_arg(self, a: Any) -> str:
        if isinstance(a, torch.fx.Node) and a.name in self.folded:
            return self.folded[a.name]
        v = self.val(a)
        if isinstance(v, str) and v in self.g.values:
            return v
        if isinstance(v, torch.Tensor):  # a constant computed at compile time
            arr = v.detach().cpu()
            if arr.dtype == torch.bool or arr.is_floating_point():
                arr = arr.to(torch.float32)
            name = self.const(arr, "k")
            if isinstance(a, torch.fx.Node):
                self.folded[a.name] = name
            return name
        if isinstance(v, (int, float)):
            return self.const(np.asarray(v, dtype=np.float32), "s")
        from provenml.compiler.frontend.torch_spectral import SUPPORTED, Spectrum

        if isinstance(v, Spectrum):  # a complex tensor, used otherwise than torch_spectral's
            raise UnsupportedOp("a complex tensor", self.current, SUPPORTED)
        raise UnsupportedOp(f"non-tensor argument {type(v).__name__}", self.current)

    def is_tensor(self, a: Any) -> bool:
        v = self.val(a)
        return isinstance(v, str) and v in self.g.values

    def shape(self, name: str) -> tuple[int, ...]:
        return self.g.values[name].shape

    # -- conversion -----------------------------------------------------------------------------
    def build(self) -> Graph:
        for node in self.gm.graph.nodes:
            self.current = node.name
            if node.op == "placeholder":
                t = self.results[node.name]
                if node.name in self.frozen:
                    self.env[node.name] = self.const(t, "w")
                    self.static.add(node.name)
                    continue
                if not isinstance(t, torch.Tensor):
                    self.env[node.name] = int(t) if isinstance(t, torch.SymInt) else t
                    self.static.add(node.name)
                    continue
                name = node.name
                dtype = "int64" if t.dtype in (torch.int64, torch.int32) else "float32"
                if t.dtype not in (torch.float32, torch.int64, torch.int32, torch.bool):
                    raise UnsupportedOp(f"input dtype {t.dtype}", node.name)
                self.g.values[name] = Value(name, tuple(t.shape), dtype)
                self.g.inputs.append(name)
                if t.dtype == torch.bool:  # a mask: 0 / 1 floats inside, cast on each call
                    self.g.bool_inputs.append(name)
                    self.bools.add(name)
                self.env[node.name] = name
            elif node.op == "get_attr":
                t = self.results[node.name]
                # a boolean tensor stays a tensor until a use converts it: made a float
                # constant here, an attention mask read it as 1 / 0 scores (SDPA's and
                # nn.MultiheadAttention's masks; found at stop 54)
                is_tensor = isinstance(t, torch.Tensor)
                keep = not is_tensor or t.dtype == torch.bool
                self.env[node.name] = t if keep else self.const(t, "w")
                self.static.add(node.name)
            elif node.op == "output":
                outs = node.args[0]
                # nested tuples, lists and dicts of outputs (a detection head's dict): their
                # leaves, in torch.utils._pytree's order, which the caller's structure
                # (``Compiled.output_structure``) puts back together (stop 69)
                flat = pytree.tree_leaves(outs)
                position = 0  # among the model's flattened outputs
                for o in flat:
                    value = self.env.get(o.name) if isinstance(o, torch.fx.Node) else None
                    # a module's tuple returned as it is (nn.MultiheadAttention's (out, w))
                    for piece in _flat(value) if isinstance(value, (tuple, list)) else (o,):
                        position += 1
                        if isinstance(piece, torch.fx.Node):
                            example = self.results.get(piece.name)
                        elif isinstance(piece, str) and piece in self.g.values:
                            example = self.g.values[piece]  # an IR value of a module's tuple
                        else:
                            example = piece  # a Python value in the returned structure
                        if example is None or isinstance(example, PYTHON_OUTPUTS):
                            # a None, a size or a number (stop 70: refused, or a number made
                            # a 0-d tensor, before), returned as it is; one read from an
                            # input's values was refused where it was made
                            self.g.constant_outputs[position - 1] = example
                            continue
                        if not isinstance(example, (torch.Tensor, Value)):
                            raise UnsupportedOp(
                                "output", "output", f"a {type(example).__name__} output"
                            )
                        name = self.tensor_arg(piece)
                        if name in self.bools:
                            raise UnsupportedOp(
                                "output", "output", "a boolean output (return mask.float())"
                            )
                        self.g.outputs.append(name)
                if not self.g.outputs:
                    raise UnsupportedOp("output", "output", "no tensor among the outputs")
                self.g.outputs += self.guard_values  # after the model's (Graph.value_guards)
            else:
                if node.op == "call_function" and node.target in SIDE_EFFECTS:
                    self.env[node.name] = SIDE_EFFECTS[node.target](self, node)
                    if isinstance(self.env[node.name], torch.Tensor):  # folded (stop 70)
                        self.static.add(node.name)
                    self.rebind_in_place(node)
                    continue
                result = self.results[node.name]
                if self.foldable(node, result):
                    # computed from constants and static sizes only: its value (from the
                    # example run) is a compile-time constant, e.g. a causal mask built from
                    # ``x.shape`` or a slice of a parameter
                    self.env[node.name] = result
                    self.static.add(node.name)
                    self.rebind_in_place(node)
                    continue
                if _is_tensor_sequence(result):
                    self.env[node.name] = self.convert(node, result)
                    continue
                if not isinstance(result, torch.Tensor):
                    self.refuse_data_dependent(node, result)
                    self.env[node.name] = self.python_value(node, result)
                    self.static.add(node.name)
                    continue
                if result.is_complex():  # stop 71: a spectrum of a circular convolution
                    from provenml.compiler.frontend.torch_spectral import spectral_value

                    self.env[node.name] = spectral_value(self, node, result)
                    continue
                # int32 results (``.int()``, arithmetic on int32 inputs) are int64 in the IR,
                # as int32 inputs are widened
                if result.dtype not in (torch.float32, torch.int64, torch.int32, torch.bool):
                    raise UnsupportedOp(
                        f"{target_name(node, self.gm)} -> {result.dtype}", node.name
                    )
                converted = self.convert(node, result)
                if result.dtype == torch.bool and converted not in self.bools:
                    raise UnsupportedOp(
                        f"{target_name(node, self.gm)} -> {result.dtype}", node.name
                    )
                self.env[node.name] = converted
                self.rebind_in_place(node)
        return self.g

    def refuse_script_module(self, node: torch.fx.Node) -> None:
        """A call of a TorchScript module inside the model (``torch.jit.script`` /
        ``torch.jit.trace``; ``torch.fx`` records it as a ``forward`` call on an attribute),
        refused naming what it is (stop 70: the error said ``Tensor.forward`` before)."""
        owner = node.args[0] if node.op == "call_method" and node.args else None
        if not (isinstance(owner, torch.fx.Node) and owner.op == "get_attr"):
            return
        value: Any = self.gm
        for part in str(owner.target).split("."):
            value = getattr(value, part, None)
        # fx reads the TorchScript module's C++ object (``inner._c``, or a ``_torchbind_obj``)
        if isinstance(value, (torch.jit.ScriptModule, torch._C.ScriptModule)):
            raise UnsupportedOp(
                "TorchScript module",
                node.name,
                "made by torch.jit.script / torch.jit.trace: compile the nn.Module it was made "
                "from",
            )

    def rebind_in_place(self, node: torch.fx.Node) -> None:
        """After an in-place call ``t.op_(..)`` (converted as ``op``), the later readers of
        ``t`` read its result: the IR has values, not memory, so the change becomes a new
        value that ``t``'s name now stands for. Refused where that would differ from PyTorch:
        a graph input changed in place (the compiled model leaves its inputs alone), a
        parameter or buffer changed in place (state PyTorch keeps for the next call; stop
        70), or ``t`` a view of another tensor, or a view of ``t`` taken before and read
        after (PyTorch's change shows through the shared memory)."""
        target = in_place_target(node)
        if target is None:
            return
        op = target_name(node, self.gm)
        if target.op == "placeholder" and target.name not in self.frozen:
            raise UnsupportedOp(op, node.name, "an in-place change of a graph input")
        # stop 70: model state (not a tensor torch.fx made while tracing, ``torch.zeros(..)``
        # in forward, which it keeps as a ``_tensor_constant`` attribute: a new one per call)
        made_by_fx = str(target.target).rsplit(".", 1)[-1].startswith("_tensor_constant")
        if (target.op == "get_attr" and not made_by_fx) or target.op == "placeholder":
            raise UnsupportedOp(
                op,
                node.name,
                f"an in-place change of the model's tensor {str(target.target)!r} (PyTorch keeps "
                "the change for the next call; the compiled model freezes the tensor)",
            )
        order = self.order
        here = order[node]
        # (stop 74) a view ``base[index]`` changed in place whose change the next node writes
        # back into ``base``, and the view such a write-back assignment writes
        # (:func:`.torch_setitem.write_back_views`)
        written_back = node.meta.get(WRITE_BACK) is not None
        written_from = node.meta.get(WRITTEN_FROM)
        is_view = is_view_call(target)
        shared = self.shares_memory.get(target.name, True)
        if target.op != "placeholder" and is_view and shared and not written_back:
            # (stop 74) refused only where PyTorch's change would show: a tensor sharing the
            # view's memory read afterwards (Funnel's ``attn = attn.reshape(..)[..., :n];
            # attn *= mask`` reads nothing else after: TorchDynamo's ``imul``, in place)
            reader = self.alias_read_after(target, here, written_from)
            if reader is not None:
                raise UnsupportedOp(
                    op,
                    node.name,
                    f"an in-place change of a view of another tensor, read after it ({reader})",
                )
        for user in target.users:
            is_view = is_view_call(user)
            if user.name == written_from:  # (the view written back: its name has the change)
                continue
            if order[user] < here and is_view and any(order[u] > here for u in user.users):
                raise UnsupportedOp(
                    op,
                    node.name,
                    f"a view of the tensor ({user.name}) is read after it changes",
                )
        # ``t.sub_(a).div_(b)``: div_ changes what sub_ returned, which is ``t`` itself, so
        # every tensor up the chain of in-place calls stands for the new value (stop 69:
        # before, ``t`` kept the value after ``sub_``)
        changed: torch.fx.Node | None = target
        while changed is not None:
            self.env[changed.name] = self.env[node.name]
            self.folded.pop(changed.name, None)
            if node.name not in self.static:
                self.static.discard(changed.name)
            changed = in_place_target(changed)

    def alias_read_after(
        self, view: torch.fx.Node, here: int, written_from: str | None = None
    ) -> str | None:
        """The name of a node that reads, after position ``here``, a tensor that may share
        ``view``'s memory (its bases up the chain of view calls that shared memory in the
        example run, the views taken of any of them, the in-place calls' results, which are
        their targets), ``view`` itself excepted (its name stands for the changed value);
        None if there is none."""
        order = self.order
        aliases = aliases_of(view, self.shares_memory)
        # the names that stand for the changed memory already: ``view``, the view an item
        # assignment writes back (stop 74), and the in-place calls made on either before
        fresh = {view} | {n for n in aliases if n.name == written_from}
        for n in sorted(aliases, key=order.__getitem__):
            if order[n] <= here and in_place_target(n) in fresh:
                fresh.add(n)
        for alias in aliases - fresh:
            for user in alias.users:
                if order[user] > here and user not in aliases:
                    return user.name
        return None

    def foldable(self, node: torch.fx.Node, result: Any) -> bool:
        """Whether a call's tensor result depends on no graph input (only on constants and
        static sizes) and is deterministic, so it can be taken from the example run."""
        if not (isinstance(result, torch.Tensor) or _is_tensor_sequence(result)):
            return False
        if target_name(node, self.gm) in RANDOM_OPS:
            return False
        return all(i.name in self.static for i in node.all_input_nodes)

    def refuse_data_dependent(self, node: torch.fx.Node, result: Any) -> None:
        """Refuse a Python number computed from a graph input's values (``x.max().item()``,
        ``int(mask.sum())``, ``x.argmax().item()``): the compiled graph would keep the
        example's number as a constant (stop 69; before, silently). Sizes (``x.shape``,
        ``x.size(0)``, ``x.dim()``, ``x.numel()``) depend on the shapes only, which the graph
        fixes anyway."""
        numbers = (int, float, bool)
        is_number = isinstance(result, numbers) or (
            isinstance(result, (tuple, list)) and any(isinstance(v, numbers) for v in result)
        )
        if not is_number or target_name(node, self.gm) in SHAPE_QUERIES:
            return
        dynamic = [
            i.name
            for i in node.all_input_nodes
            if i.name not in self.static and isinstance(self.env.get(i.name), str)
        ]
        if not dynamic:
            return
        op = target_name(node, self.gm)
        source = node.all_input_nodes[0] if len(node.all_input_nodes) == 1 else None
        tensor = self.env.get(source.name) if source is not None else None
        if (
            op == "Tensor.item"
            and isinstance(result, (int, bool))
            and isinstance(tensor, str)
            and self.g.values[tensor].size == 1
        ):
            # stop 71: an integer (a count, a size: PyG's ``int(batch.max()) + 1`` graphs)
            # is kept as the example's and checked after each call (``ValueGuard``); a
            # float is refused below, as a new input would almost never give the same one
            self.g.value_guards.append(
                ValueGuard(result, f"{op}() of {_describe(source, self.gm)} at node {node.name}")
            )
            self.guard_values.append(tensor)
            return
        raise UnsupportedOp(
            op,
            node.name,
            f"a Python number computed from the values of {dynamic[0]} (the compiled graph "
            "would keep the example's number as a constant); keep it a tensor",
        )

    def python_value(self, node: torch.fx.Node, result: Any) -> Any:
        """Size queries and tuple plumbing become Python values (static shapes)."""
        if node.op == "call_function" and node.target is operator.getitem:
            base = self.val(node.args[0])
            if isinstance(base, (tuple, list)):
                return base[self.val(node.args[1])]
        if isinstance(result, (int, float, torch.Size)) or (
            isinstance(result, (tuple, list))
            and all(isinstance(x, (int, torch.Size)) for x in result)
        ):
            return tuple(result) if isinstance(result, torch.Size) else result
        if isinstance(result, (torch.dtype, torch.device)):  # x.dtype for .to(x.dtype)
            return result
        if result is None and not node.users:
            # a call for its side effect alone, e.g. the usage logging of a module built
            # inside forward (``nn.ReLU6()(x)``): nothing reads it, nothing to compute
            return None
        raise UnsupportedOp(target_name(node, self.gm), node.name, "non-tensor result")

    def convert(self, node: torch.fx.Node, out: Any) -> Any:
        """One fx call node to IR, through the handler tables."""
        handler: Handler | None = None
        if node.op == "call_module":
            mod = self.gm.get_submodule(str(node.target))
            handler = next((MODULES[c] for c in type(mod).__mro__ if c in MODULES), None)
        elif node.op == "call_method":
            handler = METHODS.get(str(node.target))
            if handler is None and in_place_target(node) is not None:
                handler = METHODS.get(str(node.target)[:-1])  # t.add_(..): as t.add(..)
        else:
            try:
                handler = FUNCTIONS.get(node.target)
            except TypeError:  # an unhashable target
                handler = None
            if handler is None:
                handler = FUNCTION_NAMES.get(target_name(node, self.gm))
        if handler is None and node.op == "call_function" and _is_namedtuple_class(node.target):
            handler = _namedtuple
        if handler is None:
            self.refuse_script_module(node)
            raise UnsupportedOp(target_name(node, self.gm), node.name)
        bool_inputs = [n for n in node.all_input_nodes if self.env.get(n.name) in self.bools]
        if bool_inputs and handler not in BOOL_HANDLERS:
            raise UnsupportedOp(
                target_name(node, self.gm),
                node.name,
                "a boolean tensor operand (a comparison's result feeds where, masked_fill, "
                "logical ops, casts, arithmetic with a float tensor, reshapes and slices, and "
                "attention masks)",
            )
        result = handler(self, node, out)
        if bool_inputs:  # PyTorch's result says what came out: a mask, or float32 values
            names = result if isinstance(result, (tuple, list)) else (result,)
            tensors = out if isinstance(out, (tuple, list)) else (out,)
            for name, t in zip(names, tensors, strict=False):
                if isinstance(t, torch.Tensor) and t.dtype == torch.bool:
                    self.bools.add(name)
                elif isinstance(t, torch.Tensor) and t.dtype in (torch.int64, torch.int32):
                    if self.g.values[name].dtype != "int64":  # an integer the IR lacks
                        raise UnsupportedOp(
                            target_name(node, self.gm), node.name, f"a boolean operand -> {t.dtype}"
                        )
                elif isinstance(t, torch.Tensor) and t.dtype != torch.float32:
                    raise UnsupportedOp(
                        target_name(node, self.gm), node.name, f"a boolean operand -> {t.dtype}"
                    )
        return result

    # -- op helpers ----------------------------------------------------------------------------
    def reshape(self, x: str, out: torch.Tensor) -> str:
        return self.emit("reshape", [x], {"shape": tuple(out.shape)}, out)

    def transpose(self, x: str, d0: int, d1: int, out: torch.Tensor) -> str:
        perm = list(range(out.dim()))
        d0, d1 = d0 % out.dim(), d1 % out.dim()
        perm[d0], perm[d1] = perm[d1], perm[d0]
        return self.emit("permute", [x], {"perm": tuple(perm)}, out)

    def reduce(self, op: str, x: Any, dim: Any, keepdim: Any, out: torch.Tensor) -> str:
        xin = self.tensor_arg(x)
        rank = len(self.shape(xin))
        d = self.val(dim)
        dims = tuple(range(rank)) if d is None else ((d,) if isinstance(d, int) else tuple(d))
        dims = tuple(sorted(int(i) % rank for i in dims))
        if op == "sum" and xin in self.bools and out.dtype in (torch.int64, torch.int32):
            # PyTorch counts a mask's True values as an int64: counted in integers here too
            xin = self.emit("to_int", [xin], {}, meta_like(self.shape(xin), torch.int64))
        return self.emit(op, [xin], {"dims": dims, "keepdim": bool(self.val(keepdim))}, out)

    def arg_reduce(self, op: str, x: Any, dim: Any, keepdim: Any, out: torch.Tensor) -> str:
        """``argmax`` / ``argmin`` along ``dim`` (an int64 result); ``dim=None`` flattens."""
        xin = self.tensor_arg(x)
        d = self.val(dim)
        if d is None:
            size = int(np.prod(self.shape(xin), dtype=np.int64))
            dtype = torch.int64 if self.g.values[xin].dtype == "int64" else torch.float32
            flat = self.reshape(xin, meta_like([size], dtype))
            like = torch.empty([1], dtype=torch.int64, device="meta")
            index = self.emit(op, [flat], {"dim": 0, "keepdim": True}, like)
            return self.reshape(index, out)
        rank = len(self.shape(xin))
        attrs = {"dim": int(d) % rank, "keepdim": bool(self.val(keepdim))}
        return self.emit(op, [xin], attrs, out)

    def conv(
        self,
        ins: list[str],
        stride: Any,
        padding: Any,
        dilation: Any,
        groups: Any,
        out: torch.Tensor,
    ) -> str:
        if isinstance(padding, str):
            kernel = tuple(int(s) for s in self.shape(ins[1])[2:4])
            padding = self.string_padding(padding, kernel, self.val(dilation))
        groups = int(self.val(groups))
        x, w, *bias = ins
        y = lower_conv(
            x,
            w,
            bias[0] if bias else None,
            pair(self.val(stride)),
            pair(self.val(padding)),
            pair(self.val(dilation)),
            groups,
            self._conv_ops(),
        )
        if self.shape(y) != tuple(out.shape):  # PyTorch checked the shapes when tracing
            raise ProvenmlError(f"conv2d at {self.current}: {self.shape(y)} != {tuple(out.shape)}")
        return y

    def _conv_ops(self) -> ConvOps:
        """This builder's ops for :func:`~provenml.compiler.frontend.common.lower_conv`."""

        def pad(x: str, pads: Sequence[tuple[int, int]]) -> str:
            flat = [p for before_after in reversed(pads) for p in before_after]  # F.pad order
            return constant_pad(self, x, flat, 0.0, "conv2d", self.current)

        def conv(
            x: str,
            w: str,
            bias: str | None,
            stride: Sequence[int],
            padding: Sequence[int],
            groups: int,
        ) -> str:
            (n, c, *sizes), (co, _, *kernel) = self.shape(x), self.shape(w)
            shape = [n, co] + [
                conv_output_size(v, k, s, p, 1)
                for v, k, s, p in zip(sizes, kernel, stride, padding, strict=True)
            ]
            attrs = conv_attrs(c, co, stride, padding, groups)
            inputs = [x, w] + ([] if bias is None else [bias])
            return self.emit("conv2d", inputs, attrs, meta_like(shape))

        return ConvOps(self.emit_shaped, self.shape, lambda a: self.const(a, "ones"), pad, conv)

    def layer_norm(self, x: Any, shape: Any, w: Any, b: Any, eps: Any, out: torch.Tensor) -> str:
        """``F.layer_norm`` / ``nn.LayerNorm`` over the last ``len(shape)`` dims. Over several
        (``nn.LayerNorm([C, H, W])``, stop 69; refused before) the IR's last-dim layer norm
        runs on the input with those dims merged, the affine parameters flattened alike."""
        shape = tuple(shape) if isinstance(shape, (tuple, list, torch.Size)) else (shape,)
        xin = self.tensor_arg(x)
        dims = self.shape(xin)
        k = len(shape)
        if k > len(dims) or tuple(dims[len(dims) - k :]) != tuple(int(v) for v in shape):
            raise UnsupportedOp(
                "layer_norm", self.current, f"normalized shape {shape} for an input of {dims}"
            )
        n = int(np.prod(shape))
        merged = meta_like((*dims[: len(dims) - k], n))
        ins = [self.reshape(xin, merged) if k > 1 else xin]
        for param, fill in ((w, torch.ones), (b, torch.zeros)):
            if isinstance(param, torch.fx.Node):
                p = self.tensor_arg(param)
                ins.append(self.reshape(p, meta_like((n,))) if k > 1 else p)
            else:
                ins.append(self.const(param.reshape(n) if param is not None else fill(n)))
        if k == 1:
            return self.emit("layer_norm", ins, {"eps": float(eps)}, out)
        y = self.emit("layer_norm", ins, {"eps": float(eps)}, merged)
        return self.reshape(y, out)

    def pool(
        self,
        op: str,
        x: Any,
        kernel: Any,
        stride: Any,
        padding: Any,
        node: torch.fx.Node,
        out: torch.Tensor,
        options: dict[str, Any] | None = None,
    ) -> str:
        """``max_pool2d`` / ``avg_pool2d``. ``options``: the module's (``ceil_mode``,
        ``dilation``, ``return_indices``, ``count_include_pad``, ``divisor_override``); a
        function's are read from its call (positional after ``padding``, in the function's own
        order, or keywords). A dilation and ``return_indices`` are refused by name;
        ``ceil_mode=True`` where it adds a partial last window extends the input past its end
        (stop 73; where the windows fit evenly it changes nothing); average pooling's
        ``count_include_pad=False`` and ``divisor_override`` rescale the padded-window average
        (:func:`~provenml.compiler.frontend.common.avg_pool_rescale`)."""
        xin = self.tensor_arg(x)
        if len(self.shape(xin)) == 3:  # unbatched (C, H, W), as PyTorch takes it
            x4 = self.reshape(xin, meta_like((1, *self.shape(xin))))
            like = meta_like((1, *out.shape))
            return self.reshape(
                self.pool(op, x4, kernel, stride, padding, node, like, options), out
            )
        k = pair(self.val(kernel))
        given_stride = self.val(stride)  # (torch.export passes [] for "the kernel size")
        s = pair(given_stride) if given_stride not in (None, (), []) else k
        pad = pair(self.val(padding))
        if options is None:  # F.max_pool2d(x, k, s, p, dilation, ceil_mode, return_indices)
            names = (  # F.avg_pool2d(x, k, s, p, ceil_mode, count_include_pad, divisor_override)
                ("dilation", "ceil_mode", "return_indices")
                if op == "max_pool2d"
                else ("ceil_mode", "count_include_pad", "divisor_override")
            )
            options = {name: self.val(arg(node, 4 + i, name, None)) for i, name in enumerate(names)}
        dilation = options.get("dilation")  # (a list in torch.export's graphs: [1, 1])
        plain = tuple(dilation) if isinstance(dilation, list) else dilation
        if plain not in (None, 1, (1,), (1, 1)):
            raise UnsupportedOp(op, node.name, f"a dilation of {dilation}")
        size = self.shape(xin)[2:]
        floor = [conv_output_size(n, *kps, 1) for n, *kps in zip(size, k, s, pad, strict=True)]
        if options.get("return_indices"):
            raise UnsupportedOp(op, node.name, "return_indices=True")
        if options.get("ceil_mode") and list(out.shape[2:]) != floor:
            # (stop 73) ceil_mode's last, partial window (where the windows do not fit
            # evenly; refused before, Funnel at odd lengths): the input extended past its
            # end, with -inf for a max and zeros for an average (whose divisor counts only
            # what lies inside the padded input: avg_pool_rescale's ``outputs``)
            extra = ceil_extension(out.shape[2:], size, k, s, pad)
            xin = constant_pad(self, xin, [0, extra[1], 0, extra[0]], pool_fill(op), op, node.name)
        y = self.emit(op, [xin], {"kernel": k, "stride": s, "padding": pad}, out)
        if op != "avg_pool2d":
            return y
        include = options.get("count_include_pad")
        rescale = avg_pool_rescale(
            size,
            k,
            s,
            pad,
            True if include is None else bool(include),
            options.get("divisor_override"),
            out.shape[2:],
        )
        return y if rescale is None else self.emit("mul", [y, self.const(rescale, "pool")], {}, out)

    def pool1d(
        self,
        op: str,
        x: Any,
        kernel: Any,
        stride: Any,
        padding: Any,
        node: torch.fx.Node,
        out: torch.Tensor,
        options: dict[str, Any] | None = None,
    ) -> str:
        """``max_pool1d`` / ``avg_pool1d`` (stop 67) as the 2-d pool (``op``) over a height of
        1, as :meth:`conv1d` does: ``[N, C, L] -> [N, C, 1, L]`` (an unbatched ``[C, L]`` as a
        batch of one), the result reshaped back; options and refusals as :meth:`pool`'s."""
        xin = self.tensor_arg(x)
        *lead, length = self.shape(xin)
        batch = tuple(lead) if len(lead) == 2 else (1, *lead)
        x4 = self.reshape(xin, meta_like((*batch, 1, length)))
        step = self.val(stride)
        y4 = self.pool(
            op,
            x4,
            (1, _first(self.val(kernel))),
            None if step in (None, ()) else (1, _first(step)),
            (0, _first(self.val(padding))),
            node,
            meta_like((*batch, 1, out.shape[-1])),
            options,
        )
        return self.reshape(y4, out)

    def adaptive1d(
        self, x: Any, size: Any, out: torch.Tensor, op: str = "mean", indices: Any = False
    ) -> str:
        """Adaptive 1-d pooling (stop 67; output size 1 since stop 52) as :meth:`adaptive`
        over a height of 1: the same windows where the size divides the length, the rest
        refused by name."""
        xin = self.tensor_arg(x)
        *lead, length = self.shape(xin)
        size = length if _first(size) is None else int(_first(size))
        name = "adaptive_avg_pool1d" if op == "mean" else "adaptive_max_pool1d"
        if indices:
            raise UnsupportedOp(name, self.current, "return_indices")
        if length % size:
            why = f"output size {size} that does not divide the length {length}"
            raise UnsupportedOp(name, self.current, why)
        x4 = self.reshape(xin, meta_like((*lead, 1, length)))
        y4 = self.adaptive(x4, (1, size), meta_like((*lead, 1, out.shape[-1])), op, indices)
        return self.reshape(y4, out)

    def adaptive(
        self, x: Any, size: Any, out: torch.Tensor, op: str = "mean", indices: Any = False
    ) -> str:
        """Adaptive average (``op="mean"``) or max (``"amax"``) pooling: to 1x1 a reduction
        over the spatial dims; to a size that divides the input's (since stop 59) the same
        windows as PyTorch's (``k = H / h`` rows each), the input split ``(N, C, h, k, w, l)``,
        permuted to ``(N, C, h, w, k, l)`` and reduced over the last two. Other sizes
        (overlapping windows) are refused."""
        name = "adaptive_avg_pool2d" if op == "mean" else "adaptive_max_pool2d"
        if indices:
            raise UnsupportedOp(name, self.current, "return_indices")
        xin = self.tensor_arg(x)
        *lead, height, width = self.shape(xin)
        wanted = size if isinstance(size, (tuple, list)) else (size, size)
        rows, cols = (
            full if s is None else int(s) for s, full in zip(wanted, (height, width), strict=True)
        )
        if (rows, cols) == (1, 1):
            spatial = (len(lead), len(lead) + 1)
            return self.emit(op, [xin], {"dims": spatial, "keepdim": True}, out)
        if height % rows or width % cols:
            why = f"output size {(rows, cols)} that does not divide {(height, width)}"
            raise UnsupportedOp(name, self.current, why)
        k, j, n = height // rows, width // cols, len(lead)  # window rows, columns; lead dims
        grid = self.reshape(xin, meta_like((*lead, rows, k, cols, j)))
        perm = (*range(n), n, n + 2, n + 1, n + 3)  # the window's dims last, adjacent
        windows = self.emit("permute", [grid], {"perm": perm}, meta_like((*lead, rows, cols, k, j)))
        return self.emit(op, [windows], {"dims": (n + 2, n + 3), "keepdim": False}, out)

    def conv1d(
        self,
        ins: list[str],
        stride: Any,
        padding: Any,
        dilation: Any,
        groups: Any,
        out: torch.Tensor,
    ) -> str:
        """A 1-d convolution as a 2-d one over a height of 1: ``[N, C, L] -> [N, C, 1, L]``,
        weight ``[Co, Ci, K] -> [Co, Ci, 1, K]``, result reshaped back."""
        x, w, *bias = ins
        (n, c, length), wshape = self.shape(x), self.shape(w)
        single = _first
        padding = single(padding)
        if isinstance(padding, str):
            padding = self.string_padding(padding, (int(wshape[2]),), single(dilation))[0]
        x4 = self.emit("reshape", [x], {"shape": (n, c, 1, length)}, torch.empty(n, c, 1, length))
        w4 = self.emit(
            "reshape",
            [w],
            {"shape": (*wshape[:2], 1, wshape[2])},
            torch.empty(*wshape[:2], 1, wshape[2]),
        )
        y4 = self.conv(
            [x4, w4, *bias],
            (1, int(single(stride))),
            (0, int(padding)),
            (1, int(single(dilation))),
            groups,
            torch.empty(out.shape[0], out.shape[1], 1, out.shape[2]),
        )
        return self.reshape(y4, out)

    def string_padding(self, mode: str, kernel: tuple[int, ...], dilation: Any) -> tuple[int, ...]:
        """``padding="valid"`` or ``"same"`` as explicit zero padding per spatial dim."""
        if mode == "valid":
            return (0,) * len(kernel)
        dil = (dilation,) * len(kernel) if isinstance(dilation, int) else tuple(dilation)
        total = [d * (k - 1) for k, d in zip(kernel, dil, strict=True)]
        if mode != "same" or any(t % 2 for t in total):
            raise UnsupportedOp("conv", self.current, f"padding={mode!r} (asymmetric)")
        return tuple(t // 2 for t in total)

    def softmax(self, x: Any, dim: Any, out: torch.Tensor, log: bool = False) -> str:
        attrs: dict[str, Any] = {"dim": int(dim) % out.dim()}
        if log:
            attrs["log"] = True
        return self.emit("softmax", [self.tensor_arg(x)], attrs, out)

    def getitem(self, x: str, index: Any, out: torch.Tensor) -> str:
        """Basic indexing: ints, slices, Ellipsis and None, as a chain of slice + reshape.
        Advanced indexing by tensors known at compile time, and by one int64 tensor computed
        at run time on the first dim, is a gather (:meth:`gather_index`)."""
        shape = self.shape(x)
        idx = index if isinstance(index, tuple) else (index,)
        if any(not isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in idx):
            return self.gather_index(x, idx, out)
        n_real = sum(1 for i in idx if i is not None and i is not Ellipsis)
        expanded: list[Any] = []
        for i in idx:
            if i is Ellipsis:
                expanded += [slice(None)] * (len(shape) - n_real)
            else:
                expanded.append(i)
        cur = x
        dim = 0
        for i in expanded:
            if i is None:
                continue
            if isinstance(i, (int, slice)):
                size = shape[dim]
                if isinstance(i, int):
                    start = i % size
                    rng = (start, start + 1, 1)
                else:
                    rng = i.indices(size)
                if rng != (0, size, 1):
                    if rng[2] <= 0:
                        raise UnsupportedOp("getitem", self.current, "negative step")
                    cur_shape = list(self.shape(cur))
                    cur_shape[dim] = len(range(*rng))
                    # an int64 tensor's slice stays int64 (before stop 58 it was declared
                    # float32: ids[0] read half of each 8-byte id as a float)
                    integer = self.g.values[cur].dtype == "int64"
                    like = meta_like(cur_shape, torch.int64 if integer else torch.float32)
                    cur = self.emit(
                        "slice",
                        [cur],
                        {"dim": dim, "start": rng[0], "stop": rng[1], "step": rng[2]},
                        like,
                    )
                dim += 1
        if self.shape(cur) != tuple(out.shape):
            cur = self.reshape(cur, out)
        return cur

    def _flat_rows(self, idx: tuple[Any, ...], shape: Sequence[int]) -> str:
        """The row numbers of ``x`` viewed as ``(prod(shape[:k]), rest)`` that the index
        tensors ``idx`` (IR int64 values computed at run time, or integer arrays known at
        compile time; dim ``k`` indexed by ``idx[k]``) select: ``sum_k idx_k * stride_k`` in
        int64, broadcast as PyTorch broadcasts the indices, a negative index counted from the
        dim's end (``bounded`` with ``wrap_negative``: one outside ``[-n, n)`` makes the call
        raise). Anything else
        among them (a slice, None, a boolean mask) is refused."""
        where = self.current
        if len(idx) > len(shape):
            raise UnsupportedOp("getitem", where, "more indices than dims")
        strides = [int(np.prod(shape[k + 1 : len(idx)], dtype=np.int64)) for k in range(len(idx))]
        terms: list[str] = []
        shapes: list[tuple[int, ...]] = []
        for k, index in enumerate(idx):
            if isinstance(index, str):
                if self.g.values[index].dtype != "int64":
                    raise UnsupportedOp("getitem", where, "a run-time index that is not int64")
                ishape = tuple(self.shape(index))
                meta = meta_like(ishape, torch.int64)
                size = self.g.add_const(np.int64(shape[k]), "size")
                # -n <= index < 0 counts from the end; outside [-n, n) the call raises
                index = self.emit("bounded", [index, size], {"wrap_negative": True}, meta)
                scale = self.g.add_const(np.int64(strides[k]), "stride")
                terms.append(self.emit("mul", [index, scale], {}, meta))
            else:
                values = np.asarray(
                    index.detach().cpu().numpy() if isinstance(index, torch.Tensor) else index
                )
                if values.dtype.kind not in "iu":
                    raise UnsupportedOp(
                        "getitem",
                        where,
                        "advanced indexing mixing a run-time index with slices, None, Ellipsis "
                        "or a boolean mask",
                    )
                ishape = values.shape
                values = np.where(values < 0, values + shape[k], values) * strides[k]
                terms.append(self.g.add_const(np.ascontiguousarray(values, np.int64), "rows"))
            shapes.append(ishape)
        # the known terms summed in NumPy, then added to the run-time ones, broadcast
        known = [t for t in terms if t in self.g.consts]
        rows_shape = tuple(np.broadcast_shapes(*shapes))
        total = sum((self.g.consts[t] for t in known), np.zeros((), np.int64))
        rows = self.g.add_const(np.ascontiguousarray(np.broadcast_to(total, rows_shape)), "rows")
        for term in terms:
            if term not in known:
                rows = self.emit("add", [term, rows], {}, meta_like(rows_shape, torch.int64))
        return rows

    def gather_index(self, x: str, idx: tuple[Any, ...], out: torch.Tensor) -> str:
        """Advanced indexing as the IR's row gather (``embedding``) of ``x`` viewed as a table
        whose rows are the trailing dims the index leaves whole:

        * index tensors known at compile time (transformers' attention masks take
          ``mask[batch_arange[:, None, None, None], kv_arange[None, None, None, :]]``), mixed
          with ints, slices and None: the rows each result element reads are found by applying
          the same index to ``arange`` of the leading dims in NumPy (whose advanced-indexing
          rules PyTorch shares), a constant int64 tensor;
        * one int64 tensor computed at run time as the only index (``table[ids]``): the
          ids themselves, rows of the first dim.

        * several index tensors, one or more computed at run time, each indexing one of the
          leading dims (CLIP's ``hidden[torch.arange(batch), ids.argmax(-1)]``): the rows
          are ``sum_k index_k * stride_k``, broadcast together (:meth:`_flat_rows`).

        A boolean ``x`` stays boolean; an integer ``x`` gathers integers."""
        shape = self.shape(x)
        # a tensor index may be an IR constant (a buffer, a folded torch.tensor(..)): its values
        idx = tuple(
            self.g.consts[i] if isinstance(i, str) and i in self.g.consts else i for i in idx
        )
        runtime = [i for i in idx if isinstance(i, str)]
        if any(i in self.bools for i in runtime):
            at = next(k for k, i in enumerate(idx) if isinstance(i, str))
            whole = all(i == slice(None) for i in idx[:at]) and all(
                i == slice(None) or i is Ellipsis for i in idx[at + 1 :]
            )
            if len(runtime) == 1 and idx[at] in self.bools and whole:
                # stop 71: ``x[mask]`` / ``x[:, mask]`` with the example's count kept and checked
                from provenml.compiler.frontend.torch_selections import selected_rows

                return selected_rows(self, x, idx[at], out, "getitem (x[mask])", dim=at)
            raise UnsupportedOp(
                "getitem",
                self.current,
                "a boolean mask computed at run time beside other indices (a mask alone after "
                "full slices, x[mask] or x[:, mask], compiles, the example's count of True "
                "elements kept and checked on each call)",
            )
        if runtime and len(idx) == 1 and self.g.values[runtime[0]].dtype == "int64":
            rows = runtime[0]
            lead = 1
        elif runtime:
            rows = self._flat_rows(idx, shape)
            lead = len(idx)
        else:
            if any(i is Ellipsis for i in idx):
                raise UnsupportedOp("getitem", self.current, "advanced indexing with Ellipsis")
            lead = sum(1 for i in idx if i is not None)  # the dims the index names
            if lead > len(shape):
                raise UnsupportedOp("getitem", self.current, "more indices than dims")
            np_index = tuple(
                i.detach().cpu().numpy() if isinstance(i, torch.Tensor) else i for i in idx
            )
            np_index = tuple(  # a boolean index stored as 0 / 1 floats selects as booleans
                i.astype(bool) if isinstance(i, np.ndarray) and i.dtype == np.float32 else i
                for i in np_index
            )
            positions = np.arange(int(np.prod(shape[:lead]))).reshape(shape[:lead])[np_index]
            rows = self.g.add_const(np.ascontiguousarray(positions, dtype=np.int64), "rows")
        width = int(np.prod(shape[lead:], dtype=np.int64))
        table_shape = (int(np.prod(shape[:lead], dtype=np.int64)), width)
        dtype = torch.int64 if self.g.values[x].dtype == "int64" else torch.float32
        table = self.reshape(x, meta_like(table_shape, dtype))
        # x[ids]: a negative id counts from the end, as in Python (the gathers refuse one)
        gathered = self.emit(
            "embedding",
            [table, rows],
            {"wrap_negative": True} if lead == 1 and runtime else {},
            meta_like([*self.shape(rows), width], dtype),
        )
        result = self.reshape(gathered, out)
        if x in self.bools:
            self.bools.add(result)
        return result


# ------------------------------------------------------------------------------------------------
# the op -> handler tables
# ------------------------------------------------------------------------------------------------
Handler = Callable[[FxBuilder, torch.fx.Node, torch.Tensor], str]


def _unary(op: str) -> Handler:
    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        return b.emit(op, [b.tensor_arg(node.args[0])], {}, out)

    return handle


def _binary(op: str, check_alpha: bool) -> Handler:
    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        if check_alpha and node.kwargs.get("alpha", 1) != 1:
            raise UnsupportedOp(target_name(node, b.gm), node.name, "alpha != 1")
        integer = out.dtype in (torch.int64, torch.int32)
        left, right = _integer_operands(b, node.args[0], arg(node, 1, "other"), integer)
        if op == "div":  # true division: integers divide as floats (stop 60; refused before)
            left, right = (_as_float(b, v) for v in (left, right))
        return b.emit(op, [left, right], {}, out)

    return handle


def _as_float(b: FxBuilder, x: str) -> str:
    """``x`` as float32 (an int64 tensor converted, as PyTorch's true division promotes)."""
    if b.g.values[x].dtype != "int64":
        return x
    return b.emit("to_float", [x], {}, meta_like(b.shape(x)))


def _integer_operands(
    b: FxBuilder, left: Any, right: Any, integer_result: bool = False
) -> tuple[str, str]:
    """Two operands as IR values; a Python int beside an int64 tensor becomes an int64
    constant (PyTorch keeps such a pair integer: compared, added or multiplied exactly),
    any other Python number a float32 one. Where PyTorch's result is an integer
    (``integer_result``: a boolean mask times an int), a mask's 0 / 1 become int64 too, so
    the arithmetic is integer throughout."""
    operands = [b.tensor_arg(v) if b.is_tensor(v) else None for v in (left, right)]
    if integer_result:
        for k, x in enumerate(operands):
            if x is not None and x in b.bools:
                operands[k] = b.emit("to_int", [x], {}, meta_like(b.shape(x), torch.int64))
    integer = any(x is not None and b.g.values[x].dtype == "int64" for x in operands)
    for k, v in enumerate((left, right)):
        value = b.val(v)
        if operands[k] is None and integer and isinstance(value, int):
            operands[k] = b.g.add_const(np.asarray(value, dtype=np.int64), "s")
        elif operands[k] is None:
            operands[k] = b.tensor_arg(v)
    assert operands[0] is not None and operands[1] is not None
    return operands[0], operands[1]


def _reshape(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    return b.reshape(b.tensor_arg(node.args[0]), out)


def broadcast_copy(b: FxBuilder, x: str, ones: np.ndarray, stem: str) -> str:
    """``x`` broadcast to a larger shape, as a multiply by ``ones`` (1s of the grown shape's
    extra dims) in ``x``'s own dtype: an integer tensor (an index that ``expand`` / ``repeat``
    spreads before a gather) stays int64 and exact (until stop 60 the repeat moved its bits
    as float32, and the gather read the garbage)."""
    integer = b.g.values[x].dtype == "int64"
    factor = b.g.add_const(ones.astype(np.int64 if integer else np.float32), stem)
    grown = np.broadcast_shapes(b.shape(x), ones.shape)
    like = meta_like(grown, torch.int64 if integer else torch.float32)
    result = b.emit("mul", [x, factor], {}, like)
    if x in b.bools:
        b.bools.add(result)
    return result


def _expand(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``expand`` / ``expand_as`` / ``broadcast_to`` to the traced output's shape
    (:func:`~provenml.compiler.frontend.common.broadcast_ones`)."""
    x = b.tensor_arg(node.args[0])
    ones = broadcast_ones(b.shape(x), tuple(out.shape))
    return x if ones is None else broadcast_copy(b, x, ones, "expand")


def _tile(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``Tensor.repeat`` / ``torch.tile`` / ``Tensor.tile``
    (:func:`~provenml.compiler.frontend.common.tile_steps`)."""
    x = b.tensor_arg(node.args[0])
    rest = node.args[1:] or (node.kwargs.get("dims", node.kwargs.get("repeats")),)
    reps = b.val(rest[0] if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else rest)
    steps = tile_steps(b.shape(x), [int(r) for r in reps])
    tiled = broadcast_copy(b, b.reshape(x, meta_like(steps.split)), steps.ones, "tile")
    return b.reshape(tiled, out)


def _contiguous(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    return b.val(node.args[0])  # type: ignore[no-any-return]


def _permute_method(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    args = node.args
    dims = args[1:] if not isinstance(args[1], (tuple, list)) else args[1]
    perm = tuple(int(d) % out.dim() for d in b.val(dims))
    return b.emit("permute", [b.tensor_arg(args[0])], {"perm": perm}, out)


def _permute_function(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    perm = tuple(int(d) % out.dim() for d in b.val(node.args[1]))
    return b.emit("permute", [b.tensor_arg(node.args[0])], {"perm": perm}, out)


def _transpose(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    a = node.args
    return b.transpose(b.tensor_arg(a[0]), int(b.val(a[1])), int(b.val(a[2])), out)


def _reduction(op: str) -> Handler:
    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        return b.reduce(op, node.args[0], arg(node, 1, "dim"), arg(node, 2, "keepdim", False), out)

    return handle


def _softmax(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    return b.softmax(node.args[0], b.val(arg(node, 1, "dim")), out)


def _log_softmax(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    return b.softmax(node.args[0], b.val(arg(node, 1, "dim")), out, log=True)


def _group_norm_op(
    b: FxBuilder,
    node: torch.fx.Node,
    groups: int,
    weight: Any,
    bias: Any,
    eps: float,
    out: torch.Tensor,
) -> str:
    """Group norm over dim 1's channels in ``groups`` groups (instance norm: a group per
    channel); a missing weight is ones, a missing bias zeros."""
    channels = out.shape[1] if out.dim() >= 2 else 0
    if out.dim() < 2 or channels % groups:
        raise UnsupportedOp(
            target_name(node, b.gm), node.name, f"{channels} channels in {groups} groups"
        )
    ins = [
        b.tensor_arg(node.args[0]),
        b.tensor_arg(weight) if weight is not None else b.const(torch.ones(channels)),
        b.tensor_arg(bias) if bias is not None else b.const(torch.zeros(channels)),
    ]
    return b.emit("group_norm", ins, {"groups": int(groups), "eps": float(eps)}, out)


def _group_norm(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    return _group_norm_op(
        b,
        node,
        int(b.val(arg(node, 1, "num_groups"))),
        arg(node, 2, "weight"),
        arg(node, 3, "bias"),
        float(b.val(arg(node, 4, "eps", 1e-5))),
        out,
    )


def _gelu(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    op = "gelu_tanh" if node.kwargs.get("approximate", "none") == "tanh" else "gelu"
    return b.emit(op, [b.tensor_arg(node.args[0])], {}, out)


def _linear(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    ins = [b.tensor_arg(node.args[0]), b.tensor_arg(arg(node, 1, "weight"))]
    if arg(node, 2, "bias") is not None:
        ins.append(b.tensor_arg(arg(node, 2, "bias")))
    return b.emit("linear", ins, {}, out)


def flat_positions(b: FxBuilder, shape: Sequence[int], index: str, dim: int) -> str:
    """The flat positions in a tensor of ``shape`` that ``index`` names along ``dim`` (as
    ``gather`` and ``scatter_add`` read it): each element's constant part (its coordinates
    off ``dim``, by the strides) plus its index times ``dim``'s stride; a run-time index is
    checked against ``dim``'s size first (``bounded``: one out of range makes the call raise,
    as PyTorch does, where its flat position would reach another element)."""
    index_shape = b.shape(index)
    base, stride = element_offsets(shape, index_shape, dim)
    if index in b.g.consts:
        return b.g.add_const(base + b.g.consts[index].astype(np.int64) * stride, "rows")
    like = meta_like(index_shape, torch.int64)
    size = b.g.add_const(np.asarray(shape[dim], np.int64), "n")
    checked = b.emit("bounded", [index, size], {}, like)
    step = b.g.add_const(np.asarray(stride, np.int64), "stride")
    scaled = b.emit("mul", [checked, step], {}, like)
    return b.emit("add", [scaled, b.g.add_const(base, "base")], {}, like)


def _gather(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.gather(x, dim, index)``: ``out[.., j, ..] = x[.., index[.., j, ..], ..]`` along
    ``dim``, as the IR's row gather of ``x`` flattened to one element per row: the flat
    position of each output element is a constant part (its coordinates off ``dim``, by
    ``x``'s strides) plus ``index`` times the stride of ``dim``, an int64 multiply-add when
    ``index`` is given at run time (RoBERTa gathers its token-type buffer by the position
    ids), a constant when it is known. PyTorch refuses negative indices here, so no wrap; a
    run-time index is checked against ``dim``'s size (``bounded``: out of range, the call
    raises, as PyTorch does, where the flat position would read another element)."""
    if node.kwargs.get("sparse_grad"):
        raise UnsupportedOp("gather", node.name, "sparse_grad")
    x = b.tensor_arg(node.args[0])
    shape = b.shape(x)
    dim = int(b.val(arg(node, 1, "dim"))) % len(shape)
    index = b.tensor_arg(arg(node, 2, "index"))
    index_shape = b.shape(index)
    flat = flat_positions(b, shape, index, dim)
    size = int(np.prod(shape, dtype=np.int64))
    table = b.reshape(x, meta_like((size, 1), out.dtype))
    gathered = b.emit("embedding", [table, flat], {}, meta_like([*index_shape, 1], out.dtype))
    return b.reshape(gathered, out)


def _cumsum(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.cumsum(x, dim)`` / ``x.cumsum(dim)``: float32 (accumulated in double) or int64
    (exact); a boolean mask is counted as int64, as PyTorch does (RoBERTa's position ids
    count the unpadded tokens so). ``cumprod`` and ``logcumsumexp`` (float32) take the same
    arguments."""
    if node.kwargs.get("dtype") is not None and node.kwargs["dtype"] != out.dtype:
        raise UnsupportedOp(target_name(node, b.gm), node.name, "a dtype= conversion")
    x = b.tensor_arg(node.args[0])
    dim = int(b.val(arg(node, 1, "dim"))) % len(b.shape(x))
    if out.dtype in (torch.int64, torch.int32) and b.g.values[x].dtype != "int64":
        x = b.emit("to_int", [x], {}, meta_like(b.shape(x), torch.int64))
    elif out.dtype not in (torch.int64, torch.int32, torch.float32):
        raise UnsupportedOp(target_name(node, b.gm), node.name, f"a {out.dtype} result")
    name = target_name(node, b.gm)
    # cumprod: stop 59; logcumsumexp: stop 62 (float32 only, as in PyTorch)
    op = next((scan for scan in ("logcumsumexp", "cumprod") if scan in name), "cumsum")
    if op == "logcumsumexp" and b.g.values[x].dtype != "float32":
        raise UnsupportedOp(name, node.name, f"a {b.g.values[x].dtype} input")
    return b.emit(op, [x], {"dim": dim}, out)


def _scaled_product_plus(
    b: FxBuilder, node: torch.fx.Node, bias_arg: Any, x: str, w: str, out: torch.Tensor
) -> str:
    """``beta * bias + alpha * (x @ w)``, ``alpha`` and ``beta`` the call's scalars (default 1);
    ``beta = 0`` drops the bias (its NaNs and infinities too, as PyTorch specifies)."""
    alpha, beta = b.val(node.kwargs.get("alpha", 1)), b.val(node.kwargs.get("beta", 1))
    if isinstance(alpha, torch.fx.Node) or isinstance(beta, torch.fx.Node):
        raise UnsupportedOp(
            target_name(node, b.gm), node.name, "alpha or beta computed at run time"
        )
    product = b.emit("matmul", [x, w], {}, meta_like(out.shape))
    if alpha != 1:
        product = b.emit("mul", [product, b.const(np.float32(alpha))], {}, out)
    if beta == 0:
        return product
    bias = b.tensor_arg(bias_arg)
    if beta != 1:
        bias = b.emit("mul", [bias, b.const(np.float32(beta))], {}, meta_like(b.shape(bias)))
    return b.emit("add", [product, bias], {}, out)


def _addmm(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.addmm(bias, x, w, beta=, alpha=)`` (GPT-2's ``Conv1D`` layers):
    ``beta * bias + alpha * (x @ w)``."""
    x, w = b.tensor_arg(node.args[1]), b.tensor_arg(node.args[2])
    return _scaled_product_plus(b, node, node.args[0], x, w, out)


def _baddbmm(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.baddbmm(input, batch1, batch2, beta=, alpha=)`` / ``input.baddbmm(...)`` (BLOOM's
    attention scores on its ALiBi bias): ``beta * input + alpha * (batch1 @ batch2)``."""
    b1 = arg(node, 1, "batch1")
    b2 = arg(node, 2, "batch2")
    return _scaled_product_plus(b, node, node.args[0], b.tensor_arg(b1), b.tensor_arg(b2), out)


NORM_ORDERS = (1, 1.0, 2, 2.0, float("inf"))


def _norm(b: FxBuilder, x: str, order: Any, attrs: dict[str, Any], out: Any) -> str:
    """The ``order`` norm of ``x`` over ``attrs["dims"]`` (1, 2 or inf, :data:`NORM_ORDERS`):
    ``sqrt(sum(x * x))``, ``sum(|x|)`` or ``amax(|x|)``."""
    like = meta_like(b.shape(x))
    if order in (2, 2.0):
        return b.emit(
            "sqrt", [b.emit("sum", [b.emit("mul", [x, x], {}, like)], attrs, out)], {}, out
        )
    magnitude = b.emit("abs", [x], {}, like)
    return b.emit("sum" if order in (1, 1.0) else "amax", [magnitude], attrs, out)


def _vector_norm(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.linalg.vector_norm(x, ord, dim, keepdim)``, ``torch.norm`` / ``Tensor.norm``
    (``p``; ``"fro"`` is 2) over ``dim`` (all dims when None), by :func:`_norm` (ConvNeXt
    V2's global response normalisation); other orders and a ``dtype=`` are refused by name."""
    name = target_name(node, b.gm)
    is_linalg = "vector_norm" in name
    order = b.val(arg(node, 1, "ord" if is_linalg else "p", 2))
    order = 2 if order == "fro" else order
    dim = b.val(arg(node, 2, "dim"))
    keepdim = bool(b.val(arg(node, 3, "keepdim", False)))
    if node.kwargs.get("dtype") is not None or order not in NORM_ORDERS:
        raise UnsupportedOp(name, node.name, f"ord={order!r} or a dtype= (orders 1, 2, inf)")
    x = b.tensor_arg(node.args[0])
    rank = len(b.shape(x))
    dims = tuple(range(rank)) if dim is None else (dim,) if isinstance(dim, int) else dim
    attrs = {"dims": tuple(sorted(int(d) % rank for d in dims)), "keepdim": keepdim}
    return _norm(b, x, order, attrs, out)


def _normalize(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.normalize(x, p, dim, eps)``: ``x / max(||x||_p, eps)`` along ``dim``, the norm by
    :func:`_norm` (orders 1, 2, inf)."""
    order = b.val(arg(node, 1, "p", 2.0))
    dim = b.val(arg(node, 2, "dim", 1))
    eps = b.val(arg(node, 3, "eps", 1e-12))
    if order not in NORM_ORDERS or node.kwargs.get("out") is not None:
        raise UnsupportedOp("normalize", node.name, f"p={order!r} (orders 1, 2, inf)")
    x = b.tensor_arg(node.args[0])
    shape = b.shape(x)
    dims = (int(dim) % len(shape),)
    kept = meta_like([1 if d in dims else n for d, n in enumerate(shape)])
    norm = _norm(b, x, order, {"dims": dims, "keepdim": True}, kept)
    floor = b.emit("maximum", [norm, b.const(np.float32(eps))], {}, kept)
    return b.emit("div", [x, floor], {}, out)


def _repeat_interleave(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``x.repeat_interleave(r, dim)`` / ``torch.repeat_interleave`` with an integer ``r``
    (Funnel's upsampling): each element along ``dim`` ``r`` times, as a broadcast multiply by
    ones over a new dim after ``dim`` and a reshape that merges the two; ``dim=None`` flattens
    first. Per-element repeats (a tensor) are refused by name."""
    repeats = b.val(arg(node, 1, "repeats"))
    if not isinstance(repeats, int) or isinstance(repeats, bool):
        raise UnsupportedOp(target_name(node, b.gm), node.name, "repeats other than one integer")
    x = b.tensor_arg(node.args[0])
    dim = b.val(arg(node, 2, "dim"))
    if dim is None:
        x = b.reshape(x, meta_like([int(np.prod(b.shape(x), dtype=np.int64))]))
        dim = 0
    shape = list(b.shape(x))
    dim = int(dim) % len(shape)
    spread = [*shape[: dim + 1], 1, *shape[dim + 1 :]]
    wide = [*shape[: dim + 1], repeats, *shape[dim + 1 :]]
    ones = broadcast_ones(spread, wide)
    spread_x = b.reshape(x, meta_like(spread))
    tiled = spread_x if ones is None else broadcast_copy(b, spread_x, ones, "repeat")
    return b.reshape(tiled, out)


def _new_filled(fill: float | None, value_position: int = 2) -> Handler:
    """``x.new_ones(size)`` / ``new_zeros`` / ``new_full(size, value)`` (Funnel's attention
    masks) and, since stop 66, ``torch.zeros_like(x)`` / ``ones_like`` / ``full_like(x,
    value)``: a constant of the traced result's shape and dtype (``fill`` None: the value is
    the call's argument at ``value_position``)."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        value = b.val(arg(node, value_position, "fill_value")) if fill is None else fill
        if isinstance(value, torch.Tensor) and value.numel() == 1:  # (a constant 0-d tensor)
            value = value.item()
        # (stop 74) ``t.fill_(v)`` with a one-element float ``v`` computed in the graph
        computed = isinstance(value, str) and value in b.g.values
        one_float = computed and b.g.values[value].dtype == "float32"
        if one_float and out.dtype == torch.float32 and int(np.prod(b.shape(value))) == 1:
            one = b.reshape(value, meta_like((1,) * out.dim()))
            ones = broadcast_ones((1,) * out.dim(), tuple(out.shape))
            return one if ones is None else broadcast_copy(b, one, ones, "filled")
        if isinstance(value, str | torch.fx.Node | torch.Tensor):
            raise UnsupportedOp(
                target_name(node, b.gm), node.name, "a fill value computed at run time"
            )
        if out.dtype not in (torch.float32, torch.int64, torch.bool):
            raise UnsupportedOp(target_name(node, b.gm), node.name, f"a {out.dtype} result")
        return b.const(torch.full(tuple(out.shape), value, dtype=out.dtype))

    return handle


def _matmul(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.matmul``'s rules for 1-D operands: a 1-D left operand is a row ``[1, K]`` and
    a 1-D right one a column ``[K, 1]``, the added dim dropped from the result."""
    left, right = b.tensor_arg(node.args[0]), b.tensor_arg(node.args[1])
    left_1d, right_1d = len(b.shape(left)) == 1, len(b.shape(right)) == 1
    if not (left_1d or right_1d):
        return b.emit("matmul", [left, right], {}, out)
    if left_1d and right_1d:
        raise UnsupportedOp(target_name(node, b.gm), node.name, "1-D @ 1-D (a 0-d result)")
    if left_1d:
        left = b.reshape(left, meta_like([1, *b.shape(left)]))
        full = (*out.shape[:-1], 1, out.shape[-1])
    else:
        right = b.reshape(right, meta_like([*b.shape(right), 1]))
        full = (*out.shape, 1)
    product = b.emit("matmul", [left, right], {}, meta_like(full))
    return b.reshape(product, out)


# x ** e for the scalar exponents PyTorch's own pow kernel special-cases, in its forms
POW_EXPONENTS = (0.5, -0.5, 1, 2, 3, -1, -2)


def _pow(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``x ** e`` (``torch.pow``, ``Tensor.pow``, ``**``): for a tensor ``x`` and a scalar ``e``
    in :data:`POW_EXPONENTS` sqrt, rsqrt, x, x x, x x x, 1 / x, 1 / (x x); any other exponent,
    a tensor exponent or a scalar base (``2 ** x``) since stop 67 through C's ``powf``
    elementwise, float32 (an int64 operand converted, as PyTorch promotes it beside a float;
    integer powers of integers are refused)."""
    base, exponent = node.args[0], arg(node, 1, "exponent")
    if b.is_tensor(base) and not b.is_tensor(exponent):
        e = b.val(exponent)
        if not isinstance(e, bool) and not isinstance(e, torch.Tensor) and e in POW_EXPONENTS:
            return _pow_by_products(b, b.tensor_arg(base), e, out)
    if out.dtype != torch.float32:
        raise UnsupportedOp(target_name(node, b.gm), node.name, f"an integer power ({out.dtype})")
    left, right = (
        _as_float(b, b.tensor_arg(v)) if b.is_tensor(v) else b.const(np.float32(b.val(v)))
        for v in (base, exponent)
    )
    return b.emit("pow", [left, right], {}, out)


def _pow_by_products(b: FxBuilder, x: str, exponent: float, out: torch.Tensor) -> str:
    """``x ** exponent`` for an exponent in :data:`POW_EXPONENTS`, as roots and products."""
    if exponent == 0.5:
        return b.emit("sqrt", [x], {}, out)
    if exponent == -0.5:
        return b.emit("rsqrt", [x], {}, out)
    if exponent == 1:
        return b.emit("identity", [x], {}, out)
    square = b.emit("mul", [x, x], {}, out) if exponent in (2, 3, -2) else x
    if exponent == 3:
        return b.emit("mul", [square, x], {}, out)
    if exponent in (-1, -2):
        return b.emit("div", [b.tensor_arg(1.0), square], {}, out)
    return square


def _bounded(b: FxBuilder, node: torch.fx.Node, low: Any, high: Any, out: torch.Tensor) -> str:
    """A clamp to ``[low, high]`` (scalars or tensors, either may be None): relu6 for [0, 6],
    relu for [0, inf), else ``minimum(maximum(x, low), high)``."""
    x = b.tensor_arg(node.args[0])
    if not b.is_tensor(low) and not b.is_tensor(high):
        low, high = b.val(low), b.val(high)
        # a bound may be a tensor known at compile time (made in forward): no shortcut then
        scalars = not isinstance(low, torch.Tensor) and not isinstance(high, torch.Tensor)
        if scalars and low == 0 and high == 6:
            return b.emit("relu6", [x], {}, out)
        if scalars and low == 0 and high is None:
            return b.emit("relu", [x], {}, out)
    if low is None and high is None:
        raise UnsupportedOp(target_name(node, b.gm), node.name, "no bound given")
    # torch.clamp's order: the lower bound first, then the upper one; an int64 tensor's
    # integer bounds stay integers (stop 59)
    integer = out.dtype in (torch.int64, torch.int32)
    if low is not None:
        x = b.emit("maximum", list(_integer_operands(b, x, low, integer)), {}, out)
    if high is not None:
        x = b.emit("minimum", list(_integer_operands(b, x, high, integer)), {}, out)
    return x


def _hardtanh(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.hardtanh`` (what ``nn.ReLU6`` and ``F.relu6`` call): a clamp to its bounds."""
    return _bounded(b, node, arg(node, 1, "min_val", -1.0), arg(node, 2, "max_val", 1.0), out)


def _clamp(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    return _bounded(b, node, arg(node, 1, "min"), arg(node, 2, "max"), out)


def _leaky_relu_op(b: FxBuilder, node: torch.fx.Node, slope: Any, out: torch.Tensor) -> str:
    """``max(x, slope x)``: leaky ReLU for a slope in [0, 1], exact (x and slope x are both
    PyTorch's two branches)."""
    slope = float(b.val(slope))
    if not 0.0 <= slope <= 1.0:
        raise UnsupportedOp(target_name(node, b.gm), node.name, f"negative_slope {slope}")
    x = b.tensor_arg(node.args[0])
    scaled = b.emit("mul", [x, b.tensor_arg(slope)], {}, out)
    return b.emit("maximum", [x, scaled], {}, out)


def _leaky_relu(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    return _leaky_relu_op(b, node, arg(node, 1, "negative_slope", 0.01), out)


def _elu_op(b: FxBuilder, node: torch.fx.Node, alpha: Any, out: torch.Tensor) -> str:
    """``relu(x) + min(0, alpha (exp(x) - 1))`` (Clevert et al. 2016), for alpha >= 0."""
    alpha = float(b.val(alpha))
    if alpha < 0:
        raise UnsupportedOp(target_name(node, b.gm), node.name, f"alpha {alpha}")
    return elu_form(b, b.tensor_arg(node.args[0]), alpha, 1.0, 1.0, out)


def elu_form(
    b: FxBuilder, x: str, alpha: float, divide_by: float, scale: float, out: torch.Tensor
) -> str:
    """``scale (max(0, x) + min(0, alpha (exp(x / divide_by) - 1)))``: ELU's form, which SELU
    (``scale`` and ``alpha`` fixed) and CELU (``divide_by = alpha``) share (stop 67)."""
    like = meta_like(b.shape(x))
    inner = x if divide_by == 1.0 else b.emit("div", [x, b.tensor_arg(divide_by)], {}, like)
    negative = b.emit("sub", [b.emit("exp", [inner], {}, like), b.tensor_arg(1.0)], {}, like)
    negative = b.emit("mul", [negative, b.tensor_arg(alpha)], {}, like)
    negative = b.emit("minimum", [negative, b.tensor_arg(0.0)], {}, like)
    total = b.emit(
        "add", [b.emit("relu", [x], {}, like), negative], {}, out if scale == 1.0 else like
    )
    return total if scale == 1.0 else b.emit("mul", [total, b.tensor_arg(scale)], {}, out)


def _elu(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    return _elu_op(b, node, arg(node, 1, "alpha", 1.0), out)


def _square(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    x = b.tensor_arg(node.args[0])
    return b.emit("mul", [x, x], {}, out)


def _softplus(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    beta, threshold = b.val(arg(node, 1, "beta", 1.0)), b.val(arg(node, 2, "threshold", 20.0))
    return _softplus_op(b, node, beta, threshold, out)


def _softplus_op(
    b: FxBuilder, node: torch.fx.Node, beta: Any, threshold: Any, out: torch.Tensor
) -> str:
    """``softplus(x; beta, threshold)``: ``log(1 + exp(beta x)) / beta``, and ``x`` itself
    where ``beta x > threshold`` (PyTorch's definition). The IR's ``softplus`` is the
    ``beta = 1, threshold = 20`` case; the others (since stop 59) scale around it and
    select."""
    x = b.tensor_arg(node.args[0])
    if isinstance(beta, torch.fx.Node) or isinstance(threshold, torch.fx.Node):
        raise UnsupportedOp(target_name(node, b.gm), node.name, "beta or threshold at run time")
    if beta == 1 and threshold == 20:
        return b.emit("softplus", [x], {}, out)
    like = meta_like(b.shape(x))
    scaled = b.emit("mul", [x, b.const(np.float32(beta))], {}, like)
    smooth = b.emit("softplus", [scaled], {}, like)
    smooth = b.emit("div", [smooth, b.const(np.float32(beta))], {}, like)
    linear = b.emit("gt", [scaled, b.const(np.float32(threshold))], {}, like)
    return _select(b, linear, x, smooth, out)


def conv_call(b: FxBuilder, node: torch.fx.Node) -> tuple[list[str], list[Any]]:
    """An ``F.conv1d`` / ``conv2d`` / ``conv3d`` call's tensors (input, weight, the bias if
    given) and its ``stride``, ``padding``, ``dilation``, ``groups`` (fx arguments)."""
    ins = [b.tensor_arg(node.args[0]), b.tensor_arg(arg(node, 1, "weight"))]
    if b.val(arg(node, 2, "bias")) is not None:
        ins.append(b.tensor_arg(arg(node, 2, "bias")))
    names = (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1))
    return ins, [arg(node, 3 + k, name, default) for k, (name, default) in enumerate(names)]


def _conv2d(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    ins, settings = conv_call(b, node)
    return b.conv(ins, *settings, out)


def running_stats_norm(
    b: FxBuilder, x: Any, mean: Any, var: Any, weight: Any, bias: Any, eps: float, out: Any
) -> str:
    """The IR's ``batch_norm`` of ``x`` with running statistics ``mean`` / ``var`` (fx
    arguments or tensors); a missing ``weight`` / ``bias`` is 1 / 0 per channel (dim 1)."""
    channels = out.shape[1]
    ins = [b.tensor_arg(x), b.tensor_arg(mean), b.tensor_arg(var)]
    ins += [b.tensor_arg(weight) if weight is not None else b.const(np.ones(channels, np.float32))]
    ins += [b.tensor_arg(bias) if bias is not None else b.const(np.zeros(channels, np.float32))]
    return b.emit("batch_norm", ins, {"eps": float(eps)}, out)


def _batch_norm(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    if b.val(arg(node, 5, "training", False)):
        raise UnsupportedOp(target_name(node, b.gm), node.name, "training-mode batch norm")
    return running_stats_norm(
        b,
        node.args[0],
        arg(node, 1, "running_mean"),
        arg(node, 2, "running_var"),
        arg(node, 3, "weight"),
        arg(node, 4, "bias"),
        b.val(arg(node, 7, "eps", 1e-5)),
        out,
    )


def _layer_norm(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    return b.layer_norm(
        node.args[0],
        b.val(arg(node, 1, "normalized_shape")),
        arg(node, 2, "weight"),
        arg(node, 3, "bias"),
        b.val(arg(node, 4, "eps", 1e-5)),
        out,
    )


def pool_window(node: torch.fx.Node) -> tuple[Any, Any, Any]:
    """An ``F.*_pool1d`` / ``2d`` / ``3d`` call's ``kernel_size``, ``stride``, ``padding``
    (fx arguments)."""
    return arg(node, 1, "kernel_size"), arg(node, 2, "stride"), arg(node, 3, "padding", 0)


def _pool(op: str) -> Handler:
    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        return b.pool(op, node.args[0], *pool_window(node), node, out)

    return handle


def _pool1d(op: str) -> Handler:
    """``F.max_pool1d`` / ``F.avg_pool1d`` (their arguments in ``F.max_pool2d``'s order)."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        try:
            return b.pool1d(op, node.args[0], *pool_window(node), node, out)
        except UnsupportedOp as refused:  # named as the user wrote it
            raise UnsupportedOp(target_name(node, b.gm), node.name, refused.why) from None

    return handle


def _adaptive_avg_pool2d(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    return b.adaptive(node.args[0], b.val(arg(node, 1, "output_size")), out)


def _adaptive_pool1d(op: str) -> Handler:
    """``F.adaptive_avg_pool1d`` / ``F.adaptive_max_pool1d`` and their modules: to size 1 the
    mean (max) over the last dim (Swin's pooled output), to a size dividing the length its
    equal windows (stop 67)."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: Any) -> str:
        if node.op == "call_module":
            mod = _module(node, b)
            size, indices = mod.output_size, getattr(mod, "return_indices", False)
        else:
            size = b.val(arg(node, 1, "output_size"))
            indices = b.val(arg(node, 2, "return_indices", False))
        return b.adaptive1d(node.args[0], size, out, op, indices)

    return handle


def constant_pad(
    b: FxBuilder, x: str, pads: Sequence[int], value: float, op: str, where: str
) -> str:
    """``x`` padded with ``value``: ``pads`` as ``F.pad`` takes them (last dim first, a
    (before, after) pair per dim); positive pads are constant blocks concatenated on either
    side, negative ones crop (a slice)."""
    if len(pads) % 2 or len(pads) // 2 > len(b.shape(x)):
        raise UnsupportedOp(op, where, f"pads {tuple(pads)} for a rank-{len(b.shape(x))} input")
    for k in range(len(pads) // 2):
        dim = len(b.shape(x)) - 1 - k
        crop, pieces = constant_pad_steps(b.shape(x), dim, int(pads[2 * k]), int(pads[2 * k + 1]))
        if crop is not None:
            shape = list(b.shape(x))
            shape[dim] = crop[1] - crop[0]
            attrs = {"dim": dim, "start": crop[0], "stop": crop[1], "step": 1}
            x = b.emit("slice", [x], attrs, meta_like(shape))
        parts = [
            x if block is None else b.const(np.full(block, value, np.float32), "pad")
            for block in pieces
        ]
        if len(parts) > 1:
            shape = list(b.shape(x))
            shape[dim] = sum(b.shape(t)[dim] for t in parts)
            x = b.emit("cat", parts, {"dim": dim}, meta_like(shape))
    return x


def _pad(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.pad``: ``constant`` mode (any value; negative pads crop), and ``reflect``,
    ``replicate`` and ``circular`` (:func:`mode_pad`)."""
    mode = b.val(arg(node, 2, "mode", "constant"))
    x = b.tensor_arg(node.args[0])
    pads = [int(p) for p in b.val(arg(node, 1, "pad"))]
    if mode in PAD_MODES:
        return mode_pad(b, x, pads, mode, "pad", node.name)
    if mode != "constant":
        raise UnsupportedOp("pad", node.name, f"mode {mode!r}")
    value = b.val(arg(node, 3, "value", None))
    return constant_pad(b, x, pads, 0.0 if value is None else float(value), "pad", node.name)


def mode_pad(b: FxBuilder, x: str, pads: Sequence[int], mode: str, op: str, where: str) -> str:
    """``x`` padded in a non-constant ``mode`` (``pads`` as ``F.pad`` takes them, last dim
    first): per dim, slices of ``x`` concatenated (:func:`~provenml.compiler.frontend.common
    .mode_pad_pieces`), so every element is a copy of an input element."""
    if len(pads) % 2 or len(pads) // 2 > len(b.shape(x)):
        raise UnsupportedOp(op, where, f"pads {tuple(pads)} for a rank-{len(b.shape(x))} input")
    for k in range(len(pads) // 2):
        dim = len(b.shape(x)) - 1 - k
        shape = list(b.shape(x))
        try:
            pieces = mode_pad_pieces(shape[dim], int(pads[2 * k]), int(pads[2 * k + 1]), mode)
        except ValueError as exc:
            raise UnsupportedOp(op, where, str(exc)) from exc
        if len(pieces) == 1:
            continue
        parts = []
        for start, stop in pieces:
            if (start, stop) == (0, shape[dim]):
                parts.append(x)
                continue
            piece = [*shape[:dim], stop - start, *shape[dim + 1 :]]
            attrs = {"dim": dim, "start": start, "stop": stop, "step": 1}
            parts.append(b.emit("slice", [x], attrs, meta_like(piece)))
        grown = list(shape)
        grown[dim] = sum(b.shape(t)[dim] for t in parts)
        x = b.emit("cat", parts, {"dim": dim}, meta_like(grown))
    return x


def _nearest_upsample(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.interpolate`` / ``nn.Upsample`` in ``nearest`` mode with integer factors: each
    pixel repeated ``s`` times along each spatial dim, as a broadcast multiply by ones between
    two reshapes (exact)."""
    x = b.tensor_arg(node.args[0])
    shape = b.shape(x)
    spatial = shape[2:]
    if not spatial or len(out.shape) != len(shape):
        raise UnsupportedOp("interpolate", node.name, "no spatial dims")
    factors = [o // i for o, i in zip(out.shape[2:], spatial, strict=True)]
    if any(o != i * f for o, i, f in zip(out.shape[2:], spatial, factors, strict=True)):
        raise UnsupportedOp("interpolate", node.name, "a non-integer scale")
    split = [*shape[:2]]
    for size in spatial:
        split += [size, 1]
    grown = [*shape[:2]]
    for size, f in zip(spatial, factors, strict=True):
        grown += [size, f]
    ones = np.ones([1, 1, *[v for f in factors for v in (1, f)]], np.float32)
    x = b.reshape(x, meta_like(split))
    x = b.emit("mul", [x, b.const(ones, "rep")], {}, meta_like(grown))
    return b.reshape(x, out)


#: F.interpolate's modes, each a separable linear map (one matrix per spatial dim)
INTERPOLATION_MODES = (
    "nearest",
    "nearest-exact",
    "linear",
    "bilinear",
    "trilinear",
    "bicubic",
    "area",
)


def interpolation_matrix(
    mode: str,
    spatial: int,
    dim: int,
    in_len: int,
    out_len: int,
    scale: float | None,
    align_corners: bool | None,
    recompute_scale_factor: bool | None,
    antialias: bool,
) -> np.ndarray:
    """The ``[out_len, in_len]`` matrix of ``F.interpolate`` in ``mode`` along spatial dim
    ``dim`` (of ``spatial``): PyTorch's own interpolation applied to the identity, laid out
    along that dim with every other spatial dim kept at its size (which each mode maps to
    itself), so the weights are exactly PyTorch's: its source-index rule for ``align_corners``, a
    ``scale_factor`` used as given unless ``recompute_scale_factor``, the bicubic kernel,
    area averaging, antialiasing."""
    # the other spatial dims are 2 wide and kept at 2 (each mode maps them to themselves; at
    # width 1 PyTorch's antialiased kernels give other weights), and read at index 0
    along = [1] * spatial
    along[dim] = in_len
    probe = [2] * spatial
    probe[dim] = in_len
    eye = (
        torch.eye(in_len, dtype=torch.float32).reshape(in_len, 1, *along).expand(in_len, 1, *probe)
    )
    sizes = [2] * spatial
    sizes[dim] = out_len
    kwargs: dict[str, Any] = {"mode": mode}
    if mode in ("linear", "bilinear", "trilinear", "bicubic"):
        kwargs["align_corners"] = align_corners
        kwargs["antialias"] = antialias
    if scale is None or recompute_scale_factor:
        kwargs["size"] = tuple(sizes)
    else:
        factors = [1.0] * spatial
        factors[dim] = scale
        kwargs["scale_factor"] = tuple(factors)
    with torch.no_grad():
        rows = F.interpolate(eye.contiguous(), **kwargs)
    index = tuple(slice(None) if k == dim else 0 for k in range(spatial))
    return rows[(slice(None), 0, *index)].T.contiguous().numpy()


class ResizeArgs(NamedTuple):
    """What ``F.interpolate`` / ``nn.Upsample`` were asked for, besides the input and size."""

    mode: str
    scale_factor: Any
    align_corners: bool | None
    recompute_scale_factor: bool | None
    antialias: bool


def _interpolate_by_matrices(
    b: FxBuilder, node: torch.fx.Node, x: str, resize: ResizeArgs, out: torch.Tensor
) -> str:
    """``F.interpolate`` / ``nn.Upsample`` in any mode, each separable: one constant matrix per
    resized spatial dim (:func:`interpolation_matrix`, the weights PyTorch uses), applied as a
    matmul along its dim (the einsum plan). Per-dim weights summed in another order than
    PyTorch's, so equal to rounding (nearest: exact); each output reads a dense row of the
    matrix, not the few taps a dedicated kernel would."""
    mode, scale_factor = resize.mode, resize.scale_factor
    shape = b.shape(x)
    spatial = len(shape) - 2
    if spatial < 1 or len(out.shape) != len(shape):
        raise UnsupportedOp("interpolate", node.name, "no spatial dims")
    if mode == "bicubic" and spatial != 2:
        raise UnsupportedOp("interpolate", node.name, "bicubic on a non-4-d input")
    scales = scale_factor if isinstance(scale_factor, (list, tuple)) else [scale_factor] * spatial
    letters = "abcdefgh"[: len(shape)]
    y = x
    for i in range(spatial):
        dim = 2 + i
        in_len, out_len = int(shape[dim]), int(out.shape[dim])
        if in_len == out_len and scales[i] in (None, 1, 1.0):
            continue
        scale = None if scales[i] is None else float(scales[i])
        matrix = interpolation_matrix(
            mode, spatial, i, in_len, out_len, scale, resize.align_corners,
            resize.recompute_scale_factor, resize.antialias,
        )  # fmt: skip
        if matrix.shape != (out_len, in_len):
            raise UnsupportedOp("interpolate", node.name, "an output size PyTorch did not give")
        result = letters[:dim] + "z" + letters[dim + 1 :]
        equation = f"{letters},z{letters[dim]}->{result}"
        y = _einsum_plan(b, equation, [y, b.const(matrix, "interp")], node.name)
    return y if b.shape(y) == tuple(out.shape) else b.reshape(y, out)


def _integer_repeat(x_shape: Sequence[int], out: torch.Tensor) -> bool:
    """Whether nearest upsampling from ``x_shape`` to ``out`` repeats each pixel (integer
    factors), which :func:`_nearest_upsample` does with a broadcast multiply."""
    return len(out.shape) == len(x_shape) and all(
        o >= i and o % i == 0 for o, i in zip(out.shape[2:], x_shape[2:], strict=True)
    )


def _einsum_plan(b: FxBuilder, equation: str, xs: list[str], where: str) -> str:
    """:func:`~provenml.compiler.frontend.common.lower_einsum` on IR values."""

    return lower_einsum(equation, xs, b.shape, b.emit_shaped, where)


def _interpolate(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.interpolate`` (:func:`_resize`)."""
    resize = ResizeArgs(
        b.val(arg(node, 3, "mode", "nearest")),
        b.val(arg(node, 2, "scale_factor", None)),
        b.val(arg(node, 4, "align_corners", None)),
        b.val(arg(node, 5, "recompute_scale_factor", None)),
        bool(b.val(arg(node, 6, "antialias", False))),
    )
    return _resize(b, node, b.tensor_arg(node.args[0]), resize, out)


def _resize(
    b: FxBuilder, node: torch.fx.Node, x: str, resize: ResizeArgs, out: torch.Tensor
) -> str:
    """Nearest by integer factors as a repetition (where PyTorch's index rule makes it one: no
    non-integer scale given), every other case through :func:`_interpolate_by_matrices`."""
    if resize.mode not in INTERPOLATION_MODES:
        raise UnsupportedOp("interpolate", node.name, f"mode {resize.mode!r}")
    factors = resize.scale_factor
    given = factors if isinstance(factors, (list, tuple)) else [factors]
    whole = all(f is None or float(f).is_integer() for f in given)
    if resize.mode == "nearest" and whole and _integer_repeat(b.shape(x), out):
        return _nearest_upsample(b, node, out)
    return _interpolate_by_matrices(b, node, x, resize, out)


def _conv_transpose(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.conv_transpose1d/2d`` (what dynamo hands over for the modules) with a weight known
    at compile time (a parameter)."""
    op = target_name(node, b.gm)
    weight = b.tensor_arg(arg(node, 1, "weight"))
    if weight not in b.g.consts:
        raise UnsupportedOp(op, node.name, "a weight computed at run time")
    bias = arg(node, 2, "bias")
    spatial = out.dim() - 2
    return conv_transpose(
        b, op, node.name, b.tensor_arg(node.args[0]), b.g.consts[weight],
        None if bias is None else b.tensor_arg(bias),
        _per_dim(b.val(arg(node, 3, "stride", 1)), spatial),
        _per_dim(b.val(arg(node, 4, "padding", 0)), spatial),
        _per_dim(b.val(arg(node, 7, "dilation", 1)), spatial),
        int(b.val(arg(node, 6, "groups", 1))), out,
    )  # fmt: skip


def _per_dim(value: Any, spatial: int) -> tuple[int, ...]:
    return (
        tuple(int(v) for v in value)
        if isinstance(value, (list, tuple))
        else (int(value),) * spatial
    )


def conv_transpose(
    b: FxBuilder,
    op: str,
    where: str,
    x: str,
    weight: np.ndarray,
    bias: str | None,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    out: torch.Tensor,
) -> str:
    """A transposed convolution (1-D or 2-D, any groups and dilation) as the convolution it
    is the gradient of (:func:`~provenml.compiler.frontend.common.conv_transpose_steps`); the
    output padding is read from the output's size, so ``output_size=`` works too. The
    convolution does ``prod(stride)`` times the products a dedicated kernel would."""
    shape = b.shape(x)
    spatial = weight.ndim - 2
    if spatial not in (1, 2) or len(shape) != spatial + 2:
        raise UnsupportedOp(op, where, f"a rank-{len(shape)} input (batched 1-D or 2-D only)")
    steps = conv_transpose_steps(
        shape, weight, stride, padding, out.shape[2:], groups, [int(d) for d in dilation]
    )
    if steps.onehot is not None:
        x = b.reshape(x, meta_like(steps.split))
        grown = np.broadcast_shapes(steps.split, steps.onehot.shape)
        x = b.emit("mul", [x, b.const(steps.onehot, "zeros_between")], {}, meta_like(grown))
        x = b.reshape(x, meta_like(steps.inserted))
    pads = [p for before_after in reversed(steps.pads) for p in before_after]  # F.pad order
    x = constant_pad(b, x, pads, 0.0, op, where)
    ins = [x, b.const(steps.weight, "w")] + ([] if bias is None else [bias])
    if spatial == 1:
        return b.conv1d(ins, 1, 0, dilation, groups, out)
    return b.conv(ins, 1, 0, dilation, groups, out)


def _einsum(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.einsum`` (:func:`~provenml.compiler.frontend.common.lower_einsum`)."""
    operands = node.args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    xs = [b.tensor_arg(o) for o in operands]
    y = _einsum_plan(b, str(b.val(node.args[0])), xs, node.name)
    return b.reshape(y, out) if b.shape(y) != tuple(out.shape) else y


def tensor_sequence(b: FxBuilder, a: Any) -> list[str]:
    """The tensors of ``cat`` / ``stack``'s first argument: a list of them, or one node that
    stands for a sequence (``x.chunk(3)[::-1]``, a split's result; stop 69: it crashed with
    ``'Node' object is not iterable``)."""
    items = b.val(a) if isinstance(a, torch.fx.Node) else a
    if not isinstance(items, (list, tuple)):
        raise UnsupportedOp("cat", b.current, f"a {type(items).__name__} of tensors")
    return [b.tensor_arg(t) for t in items]


def _cat(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.cat``; a 1-d empty tensor among the pieces is left out, as PyTorch leaves it
    (transformers' key-value cache starts as ``torch.tensor([])`` and is concatenated)."""
    tensors = tensor_sequence(b, node.args[0])
    tensors = [t for t in tensors if b.shape(t) != (0,)] or tensors[:1]
    dim = int(b.val(arg(node, 1, "dim", 0))) % out.dim()
    if len(tensors) == 1 and b.shape(tensors[0]) == tuple(out.shape):
        return tensors[0]
    return b.emit("cat", tensors, {"dim": dim}, out)


def _stack(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.stack``: each tensor given a new dim of size 1 (a reshape), then ``cat``."""
    tensors = tensor_sequence(b, node.args[0])
    dim = int(b.val(arg(node, 1, "dim", 0))) % out.dim()
    pieces = []
    for t in tensors:
        shape = list(b.shape(t))
        pieces.append(b.reshape(t, meta_like([*shape[:dim], 1, *shape[dim:]])))
    return pieces[0] if len(pieces) == 1 else b.emit("cat", pieces, {"dim": dim}, out)


def _embedding(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    ins = [b.tensor_arg(arg(node, 1, "weight")), b.tensor_arg(node.args[0])]
    return b.emit("embedding", ins, {}, out)


def _getattr(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    base = b.val(node.args[0])
    if isinstance(base, _ValuesIndices):  # .values / .indices of max(x, dim) / min(x, dim)
        return base.get(str(node.args[1]), node.name)
    if node.args[1] not in ("T", "mT"):
        raise UnsupportedOp(target_name(node, b.gm), node.name)
    x = b.tensor_arg(node.args[0])
    rank = len(b.shape(x))
    if node.args[1] == "T":
        perm = tuple(reversed(range(rank)))
    else:
        perm = (*tuple(range(rank - 2)), rank - 1, rank - 2)
    return b.emit("permute", [x], {"perm": perm}, out)


class _ValuesIndices(tuple):  # type: ignore[type-arg]
    """``max(x, dim)`` / ``min(x, dim)``: (values, indices); the one not read is dead code.
    ``FIELDS`` names the two as PyTorch's named tuple does."""

    FIELDS: tuple[str, str] = ("values", "indices")

    def get(self, key: str | int, where: str) -> str:
        for k, field in enumerate(self.FIELDS):
            if key in (field, k):
                return self[k]  # type: ignore[no-any-return]
        raise UnsupportedOp("max/min", where, f"no field {key!r}")


class _MinMax(_ValuesIndices):
    """``torch.aminmax``'s ``(min, max)``."""

    FIELDS = ("min", "max")


def _extremum(op: str) -> Handler:
    """``max`` / ``min``: of a whole tensor (a single value), along ``dim`` (values and
    indices: ``amax`` and ``argmax``), or of two tensors (elementwise)."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: Any) -> Any:
        other = arg(node, 1, "dim")
        if other is not None and b.is_tensor(other):  # max(a, b): elementwise
            both = [b.tensor_arg(node.args[0]), b.tensor_arg(other)]
            return b.emit("maximum" if op == "max" else "minimum", both, {}, out)
        reduction = "amax" if op == "max" else "amin"
        if other is None:
            return b.reduce(reduction, node.args[0], None, False, out)
        keepdim = arg(node, 2, "keepdim", False)
        values = b.reduce(reduction, node.args[0], other, keepdim, out[0])
        indices = b.arg_reduce(f"arg{op}", node.args[0], other, keepdim, out[1])
        return _ValuesIndices((values, indices))

    return handle


def _arg_extremum(op: str) -> Handler:
    """``argmax`` / ``argmin`` (``dim=None``: of the flattened tensor)."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        dim, keepdim = arg(node, 1, "dim", None), arg(node, 2, "keepdim", False)
        return b.arg_reduce(op, node.args[0], dim, keepdim, out)

    return handle


def _amax(op: str) -> Handler:
    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        dim = b.val(arg(node, 1, "dim", ()))
        dim = None if dim in ((), []) else dim  # amax(x) and amax(x, ()) reduce every dim
        return b.reduce(op, node.args[0], dim, arg(node, 2, "keepdim", False), out)

    return handle


def _moments(
    b: FxBuilder, node: torch.fx.Node, out: torch.Tensor, take_root: bool
) -> tuple[str, str]:
    """``var`` / ``std`` of a call (``unbiased`` or ``correction``, ``dim``, ``keepdim``) as
    ``sum((x - mean(x))^2) / (n - correction)`` (and its square root), with the mean it
    centred on (dims kept)."""
    x = b.tensor_arg(node.args[0])
    shape = b.shape(x)
    dim = b.val(arg(node, 1, "dim"))
    if len(node.args) > 2 or isinstance(dim, bool):  # var(x, unbiased) / (x, dim, unbiased)
        raise UnsupportedOp(
            target_name(node, b.gm), node.name, "unbiased / keepdim given by position"
        )
    correction = b.val(node.kwargs.get("correction"))
    if correction is None:
        correction = 1 if b.val(node.kwargs.get("unbiased", True)) else 0
    keepdim = bool(b.val(node.kwargs.get("keepdim", False)))
    if dim is None:
        dim = tuple(range(len(shape)))
    dims = tuple(
        sorted(int(d) % len(shape) for d in (dim if isinstance(dim, (tuple, list)) else (dim,)))
    )
    denominator = int(np.prod([shape[d] for d in dims])) - float(correction)
    kept = meta_like([1 if d in dims else n for d, n in enumerate(shape)])
    like = meta_like(shape)
    mean = b.emit("mean", [x], {"dims": dims, "keepdim": True}, kept)
    centred = b.emit("sub", [x, mean], {}, like)
    square = b.emit("mul", [centred, centred], {}, like)
    total = b.emit("sum", [square], {"dims": dims, "keepdim": keepdim}, out)
    # n - correction <= 0: inf (0 * inf = nan for a constant input), as PyTorch gives
    scale = b.const(np.float32(1.0 / denominator if denominator > 0 else np.inf))
    var = b.emit("mul", [total, scale], {}, out)
    return (b.emit("sqrt", [var], {}, out) if take_root else var), mean


def _variance(take_root: bool, with_mean: bool = False) -> Handler:
    """``var`` / ``std`` (:func:`_moments`); ``with_mean``: ``var_mean`` / ``std_mean``, the
    pair (that, the mean)."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: Any) -> Any:
        if not with_mean:
            return _moments(b, node, out, take_root)[0]
        spread, mean = _moments(b, node, out[0], take_root)
        return spread, b.reshape(mean, out[1]) if b.shape(mean) != tuple(out[1].shape) else mean

    return handle


def _adaptive_max_pool2d(b: FxBuilder, node: torch.fx.Node, out: Any) -> str:
    size, indices = b.val(arg(node, 1, "output_size")), b.val(arg(node, 2, "return_indices"))
    return b.adaptive(node.args[0], size, out, "amax", indices)


def _getitem(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    base = b.val(node.args[0])
    if isinstance(base, _ValuesIndices):
        return base.get(b.val(node.args[1]), node.name)
    if isinstance(base, (tuple, list)):  # one piece of a split / chunk / unbind
        return base[b.val(node.args[1])]  # type: ignore[no-any-return]
    return b.getitem(b.tensor_arg(node.args[0]), b.val(node.args[1]), out)


def _pieces(
    b: FxBuilder, node: torch.fx.Node, out: Any, dim: Any, keep_dim: bool
) -> tuple[str, ...]:
    """The pieces of a split along ``dim`` as slices of the input; their sizes are those of the
    recorded results (``keep_dim=False`` drops the dim, as ``unbind`` does)."""
    x = b.tensor_arg(node.args[0])
    rank = len(b.shape(x))
    d = int(b.val(dim)) % rank
    pieces, start = [], 0
    for piece in out:
        size = piece.shape[d] if keep_dim else 1
        like = torch.empty(
            [*piece.shape[:d], size, *piece.shape[d:]] if not keep_dim else piece.shape
        )
        cur = x
        if (start, size) != (0, b.shape(x)[d]):
            attrs = {"dim": d, "start": start, "stop": start + size, "step": 1}
            cur = b.emit("slice", [x], attrs, like)
        if not keep_dim:
            cur = b.reshape(cur, piece)
        pieces.append(cur)
        start += size
    return tuple(pieces)


def _split(b: FxBuilder, node: torch.fx.Node, out: Any) -> tuple[str, ...]:
    """``split`` / ``chunk`` (method or function): the dim is argument 2 or ``dim=``."""
    return _pieces(b, node, out, arg(node, 2, "dim", 0), keep_dim=True)


def _unbind(b: FxBuilder, node: torch.fx.Node, out: Any) -> tuple[str, ...]:
    return _pieces(b, node, out, arg(node, 1, "dim", 0), keep_dim=False)


def _conv1d(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    ins, settings = conv_call(b, node)
    return b.conv1d(ins, *(b.val(v) for v in settings), out)


def _sdpa(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale)`` as
    ``softmax(q @ kᵀ * scale + mask) @ v`` (Vaswani et al. 2017, Eq. 1), which the fusion pass
    turns into one attention kernel; a causal or boolean mask becomes an additive one."""
    name = target_name(node, b.gm)
    if float(b.val(arg(node, 4, "dropout_p", 0.0))) != 0.0:
        raise UnsupportedOp(name, node.name, "dropout_p != 0 (inference only)")
    q, k, v = (b.tensor_arg(a) for a in node.args[:3])
    if b.val(node.kwargs.get("enable_gqa", False)):  # stop 70 (refused before)
        k, v = _grouped_heads(b, node, name, q, k, v)
    qs, ks, vs = b.shape(q), b.shape(k), b.shape(v)
    if len(qs) < 2 or qs[:-2] != ks[:-2] or ks[:-2] != vs[:-2]:
        raise UnsupportedOp(name, node.name, "q, k and v need one batch shape")
    scale = b.val(arg(node, 6, "scale", None))
    mask_arg = arg(node, 3, "attn_mask", None)
    causal = bool(b.val(arg(node, 5, "is_causal", False)))
    if causal and mask_arg is not None:
        raise UnsupportedOp(name, node.name, "attn_mask together with is_causal")
    mask = None if mask_arg is None else attention_mask(b, mask_arg, name, node.name)
    return attention(b, q, k, v, out, scale=scale, mask=mask, causal=causal, op=name, safe=True)[0]


def _grouped_heads(
    b: FxBuilder, node: torch.fx.Node, name: str, q: str, k: str, v: str
) -> tuple[str, str]:
    """SDPA's ``enable_gqa`` (grouped-query attention, Ainslie et al. 2023): ``k`` and ``v``
    with ``H_kv`` heads (dim -3) each serve ``H_q / H_kv`` consecutive query heads, as
    PyTorch's ``repeat_interleave(H_q // H_kv, -3)``: a reshape to ``(.., H_kv, 1, S, D)``,
    a broadcast over the group and a reshape back to ``H_q`` heads."""
    query_heads = b.shape(q)[-3] if len(b.shape(q)) >= 3 else 0
    grown = []
    for x in (k, v):
        shape = b.shape(x)
        if len(shape) < 3 or not query_heads or query_heads % shape[-3]:
            raise UnsupportedOp(
                name,
                node.name,
                f"enable_gqa with {query_heads} query heads "
                f"and a key / value of shape {tuple(shape)}",
            )
        groups = query_heads // shape[-3]
        if groups == 1:
            grown.append(x)
            continue
        *lead, heads, length, width = shape
        grid = b.reshape(x, meta_like((*lead, heads, 1, length, width)))
        ones = broadcast_ones(b.shape(grid), (*lead, heads, groups, length, width))
        assert ones is not None
        spread = broadcast_copy(b, grid, ones, "gqa")
        grown.append(b.reshape(spread, meta_like((*lead, query_heads, length, width))))
    return grown[0], grown[1]


def attention_mask(
    b: FxBuilder, mask_arg: Any, op: str, where: str, true_masks: bool = False
) -> str:
    """An attention mask as an additive float mask: a boolean one known at compile time (a
    buffer, a mask built from sizes) becomes 0 / ``-inf`` (``True`` keeps a position,
    SDPA's rule; with ``true_masks`` it masks it, ``nn.MultiheadAttention``'s rule); a float
    graph input is taken as it is; a boolean graph input is refused."""
    value = b.val(mask_arg)
    if isinstance(value, torch.Tensor):  # known at compile time (a buffer, a built mask)
        arr = value.detach().cpu().numpy()
        if arr.dtype == np.bool_:
            arr = np.where(arr, MASKED, 0.0) if true_masks else np.where(arr, 0.0, MASKED)
        return b.const(arr.astype(np.float32), "mask")
    mask = b.tensor_arg(mask_arg)
    if mask in b.bools:  # computed at run time by a comparison: 0 / 1 -> additive
        fill = b.const(np.float32(MASKED), "masked")
        select = "keep_where" if true_masks else "keep_where_not"
        return b.emit(select, [mask, fill], {}, meta_like(b.shape(mask)))
    if b.g.values[mask].dtype != "float32":
        raise UnsupportedOp(op, where, "a boolean attn_mask that is a graph input")
    return mask


def attention(
    b: FxBuilder,
    q: str,
    k: str,
    v: str,
    out: Any,
    scale: float | None = None,
    mask: str | None = None,
    causal: bool = False,
    op: str = "attention",
    safe: bool = False,
) -> tuple[str, str]:
    """``softmax(q @ kᵀ * scale + mask) @ v`` (Vaswani et al. 2017, Eq. 1) on IR values
    ``[..., L, D]``, ``[..., S, D]``, ``[..., S, Dv]``, emitted as the fusion pass's attention
    pattern; ``scale`` defaults to ``1 / sqrt(D)``, ``causal`` adds the lower-triangular
    mask, ``mask`` must broadcast to the ``[..., L, S]`` scores without growing them (errors
    name ``op``). ``safe``: a row whose scores are all ``-inf`` (every key masked) gives
    probabilities 0, as PyTorch's ``scaled_dot_product_attention`` computes it (its "safe
    softmax"); otherwise NaN, as ``torch.softmax``. Returns (the output, the attention
    probabilities)."""
    qs, ks = b.shape(q), b.shape(k)
    m, n = qs[-2], ks[-2]
    scale = 1.0 / float(np.sqrt(qs[-1])) if scale is None else float(scale)
    scores_like = meta_like([*qs[:-1], n])
    s = b.emit("matmul", [q, k], {"trans_b": True}, scores_like)  # q @ kᵀ, k read transposed
    s = b.emit("mul", [s, b.const(np.float32(scale), "scale")], {}, scores_like)
    if causal:
        mask = b.const(np.where(np.tril(np.ones((m, n), bool)), 0.0, MASKED).astype(np.float32))
    if mask is not None:
        try:
            shape = np.broadcast_shapes(b.shape(mask), tuple(scores_like.shape))
        except ValueError as exc:
            raise UnsupportedOp(op, b.current, "attn_mask does not broadcast") from exc
        if shape != tuple(scores_like.shape):
            raise UnsupportedOp(op, b.current, "attn_mask broadcasts the scores")
        s = b.emit("add", [s, mask], {}, scores_like)
    attrs: dict[str, Any] = {"dim": len(qs) - 1, **({"safe": True} if safe else {})}
    p = b.emit("softmax", [s], attrs, scores_like)
    return b.emit("matmul", [p, v], {}, out), p


UNARY_FUNCTIONS: dict[Any, str] = {
    torch.relu: "relu",
    F.relu: "relu",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    F.silu: "silu",
    torch.neg: "neg",
    operator.neg: "neg",
    torch.exp: "exp",
    torch.abs: "abs",
    operator.abs: "abs",
    torch.log: "log",
    torch.sqrt: "sqrt",
    torch.rsqrt: "rsqrt",
    F.relu6: "relu6",
    F.hardsigmoid: "hardsigmoid",
    F.hardswish: "hardswish",
}
BINARY_FUNCTIONS: dict[Any, str] = {
    operator.add: "add",
    torch.add: "add",
    operator.sub: "sub",
    torch.sub: "sub",
    operator.mul: "mul",
    torch.mul: "mul",
    operator.truediv: "div",
    torch.div: "div",
    operator.iadd: "add",
    operator.imul: "mul",
    operator.isub: "sub",  # stop 71: ``t[mask] -= 1`` (PyG's ChebConv) as TorchDynamo records it
    operator.itruediv: "div",
}


def _compare(op: str) -> Handler:
    """``x > y`` and the other comparisons (operators, functions, methods): a 0 / 1 float
    tensor in the IR, flagged boolean, so only the ops that take PyTorch's boolean tensors
    read it (:data:`BOOL_HANDLERS`). Integer tensors compare too (``ids != pad``: a padding
    mask from token ids): with an integer tensor or a Python int on the other side as 64-bit
    integers (exact), with a float as float32 (as PyTorch promotes the pair)."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        left, right = _integer_operands(b, node.args[0], arg(node, 1, "other"))
        name = b.emit(op, [left, right], {}, out)
        b.bools.add(name)
        return name

    return handle


def _bool_operand(b: FxBuilder, a: Any, op: str, where: str) -> str:
    """A boolean operand: a flagged IR value, or a boolean constant (0 / 1)."""
    value = b.val(a)
    name = b.tensor_arg(a)
    if name in b.bools or (isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        return name
    raise UnsupportedOp(op, where, "a non-boolean condition")


def _logical(kind: str) -> Handler:
    """``&`` / ``|`` / ``~`` / ``^`` and ``logical_and`` / ``logical_or`` / ``logical_not`` /
    ``logical_xor`` on boolean tensors: a product, a maximum, ``1 - x``, ``x != y`` of 0 / 1
    values (exact; xor since stop 68)."""

    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        op = target_name(node, b.gm)
        if out.dtype != torch.bool:
            raise UnsupportedOp(op, node.name, "a bitwise op on non-boolean tensors")
        x = _bool_operand(b, node.args[0], op, node.name)
        if kind == "not":
            one = b.const(np.float32(1.0), "one")
            name = b.emit("sub", [one, x], {}, out)
        else:
            y = _bool_operand(b, arg(node, 1, "other"), op, node.name)
            op_of = {"and": "mul", "or": "maximum", "xor": "ne"}
            name = b.emit(op_of[kind], [x, y], {}, out)
        b.bools.add(name)
        return name

    return handle


def _select(b: FxBuilder, cond: str, yes: Any, no: Any, out: torch.Tensor) -> str:
    """``where(cond, yes, no)`` as ``keep_where(cond, yes) + keep_where_not(cond, no)``: one
    half is exactly 0 at each element, so the sum is the chosen value (a -0.0 becomes +0.0)."""
    halves = []
    dtype = torch.int64 if out.dtype == torch.int64 else torch.float32  # integers as integers
    for op, operand in (("keep_where", yes), ("keep_where_not", no)):
        x = b.tensor_arg(operand)
        shape = np.broadcast_shapes(b.shape(cond), b.shape(x))
        halves.append(b.emit(op, [cond, x], {}, meta_like(shape, dtype)))
    return b.emit("add", halves, {}, out)


def _where(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.where(cond, x, y)`` / ``x.where(cond, y)``, scalars or tensors on either side;
    ``torch.where(cond)`` (the indices) is refused."""
    if node.op == "call_method":  # x.where(cond, y)
        x, cond, y = node.args[0], node.args[1], arg(node, 2, "other")
    else:
        if len(node.args) + len(node.kwargs) < 3:
            raise UnsupportedOp("where", node.name, "the one-argument form (indices)")
        cond, x, y = node.args[0], arg(node, 1, "input"), arg(node, 2, "other")
    return _select(b, _bool_operand(b, cond, "where", node.name), x, y, out)


def _masked_fill(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``x.masked_fill(mask, value)``: ``where(mask, value, x)``."""
    mask = _bool_operand(b, arg(node, 1, "mask"), "masked_fill", node.name)
    return _select(b, mask, arg(node, 2, "value"), node.args[0], out)


def _cast(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``.float()``, ``.to(torch.float32)`` / ``.to(x)`` / ``.to(x.dtype)``, ``.type_as(x)``:
    a float32 result (a boolean tensor's 0 / 1 become its values; an int64 tensor's values
    are converted, exactly up to 2^24; a float32 tensor is unchanged). ``.bool()`` /
    ``.to(torch.bool)`` (an attention mask of 0 / 1 integers made boolean, as transformers'
    BERT does): ``x != 0``, flagged boolean (a NaN is True, as in PyTorch). Other target
    dtypes and devices are refused."""
    if out.dtype == torch.bool:
        x = b.tensor_arg(node.args[0])
        if x in b.bools:
            return x
        integer = b.g.values[x].dtype == "int64"
        zero = b.g.add_const(np.asarray(0, np.int64 if integer else np.float32), "s")
        name = b.emit("ne", [x, zero], {}, out)
        b.bools.add(name)
        return name
    if out.dtype in (torch.int64, torch.int32):  # int32 is widened to int64, as inputs are
        x = b.tensor_arg(node.args[0])
        if b.g.values[x].dtype == "int64":
            return x
        return b.emit("to_int", [x], {}, out)  # truncated toward zero; a mask's 0 / 1
    if out.dtype != torch.float32:
        raise UnsupportedOp(str(node.target), node.name, f"a cast to {out.dtype}")
    x = b.tensor_arg(node.args[0])
    if b.g.values[x].dtype == "int64":
        return b.emit("to_float", [x], {}, out)
    return b.emit("identity", [x], {}, out) if x in b.bools else x


COMPARE_OPS = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le,
               "eq": operator.eq, "ne": operator.ne}  # fmt: skip


# calls by the called object (first) ...
FUNCTIONS: dict[Any, Handler] = {
    **{f: _unary(op) for f, op in UNARY_FUNCTIONS.items()},
    **{f: _binary(op, check_alpha=True) for f, op in BINARY_FUNCTIONS.items()},
    **{f: _compare(op) for op, f in COMPARE_OPS.items()},
    **{getattr(torch, op): _compare(op) for op in COMPARE_OPS},
    torch.greater: _compare("gt"),
    torch.greater_equal: _compare("ge"),
    torch.less: _compare("lt"),
    torch.less_equal: _compare("le"),
    torch.not_equal: _compare("ne"),
    operator.and_: _logical("and"),
    operator.or_: _logical("or"),
    operator.invert: _logical("not"),
    operator.xor: _logical("xor"),
    torch.logical_xor: _logical("xor"),
    torch.logical_and: _logical("and"),
    torch.logical_or: _logical("or"),
    torch.logical_not: _logical("not"),
    torch.where: _where,
    torch.masked_fill: _masked_fill,
    torch.matmul: _matmul,
    torch.addmm: _addmm,
    torch.baddbmm: _baddbmm,
    torch.repeat_interleave: _repeat_interleave,
    torch.norm: _vector_norm,
    torch.linalg.vector_norm: _vector_norm,
    torch.cumsum: _cumsum,
    torch.gather: _gather,
    operator.matmul: _matmul,
    torch.bmm: _matmul,
    torch.pow: _pow,
    torch.einsum: _einsum,
    torch.maximum: _binary("maximum", check_alpha=False),
    torch.minimum: _binary("minimum", check_alpha=False),
    torch.clamp: _clamp,
    torch.clip: _clamp,
    torch.square: _square,
    operator.pow: _pow,
    F.softplus: _softplus,
    F.normalize: _normalize,
    torch.flatten: _reshape,
    torch.reshape: _reshape,
    torch.permute: _permute_function,
    torch.transpose: _transpose,
    torch.cat: _cat,
    torch.stack: _stack,
    torch.mean: _reduction("mean"),
    torch.sum: _reduction("sum"),
    torch.amax: _amax("amax"),
    torch.argmax: _arg_extremum("argmax"),
    torch.tile: _tile,
    torch.broadcast_to: _expand,
    torch.argmin: _arg_extremum("argmin"),
    torch.amin: _amax("amin"),
    torch.max: _extremum("max"),
    torch.min: _extremum("min"),
    torch.var: _variance(take_root=False),
    torch.std: _variance(take_root=True),
    torch.var_mean: _variance(take_root=False, with_mean=True),
    torch.std_mean: _variance(take_root=True, with_mean=True),
    getattr: _getattr,
    operator.getitem: _getitem,
}
# ... then by the called object's name (``F.gelu`` and ``torch._C._nn.gelu`` alike)
FUNCTION_NAMES: dict[str, Handler] = {
    "gelu": _gelu,
    "silu": _unary("silu"),
    "relu": _unary("relu"),
    "relu6": _unary("relu6"),
    "hardtanh": _hardtanh,
    "leaky_relu": _leaky_relu,
    "elu": _elu,
    "clamp": _clamp,
    "clip": _clamp,
    "hardsigmoid": _unary("hardsigmoid"),
    "hardswish": _unary("hardswish"),
    "softplus": _softplus,
    "linear": _linear,
    "conv2d": _conv2d,
    "conv1d": _conv1d,
    "scaled_dot_product_attention": _sdpa,
    "split": _split,
    "chunk": _split,
    "unbind": _unbind,
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "group_norm": _group_norm,
    "max_pool2d": _pool("max_pool2d"),
    "avg_pool2d": _pool("avg_pool2d"),
    "adaptive_avg_pool2d": _adaptive_avg_pool2d,
    "adaptive_avg_pool1d": _adaptive_pool1d("mean"),
    "adaptive_max_pool1d": _adaptive_pool1d("amax"),
    "adaptive_max_pool2d": _adaptive_max_pool2d,
    "max_pool1d": _pool1d("max_pool2d"),
    "avg_pool1d": _pool1d("avg_pool2d"),
    "pad": _pad,
    "interpolate": _interpolate,
    "conv_transpose1d": _conv_transpose,
    "conv_transpose2d": _conv_transpose,
    "einsum": _einsum,
    "flatten": _reshape,
    "reshape": _reshape,
    "unsqueeze": _reshape,
    "squeeze": _reshape,
    "cat": _cat,
    "concat": _cat,
    "embedding": _embedding,
}
METHODS: dict[str, Handler] = {
    **{m: _unary(m) for m in ("relu", "tanh", "sigmoid", "exp", "neg")},
    **{m: _unary(m) for m in ("abs", "log", "sqrt", "rsqrt")},
    "pow": _pow,
    "square": _square,
    "maximum": _binary("maximum", check_alpha=False),
    "minimum": _binary("minimum", check_alpha=False),
    "clamp": _clamp,
    "clip": _clamp,
    "matmul": _matmul,
    "bmm": _matmul,
    "baddbmm": _baddbmm,
    "norm": _vector_norm,
    "repeat_interleave": _repeat_interleave,
    "new_ones": _new_filled(1),
    "new_zeros": _new_filled(0),
    "fill": _new_filled(None, value_position=1),  # t.fill_(v), in place (stop 74: export)
    "new_full": _new_filled(None),
    **{m: _binary(m, check_alpha=True) for m in ("add", "sub", "mul", "div")},
    **dict.fromkeys(("view", "reshape", "flatten", "unsqueeze", "squeeze"), _reshape),
    **dict.fromkeys(("view_as", "reshape_as"), _reshape),
    "contiguous": _contiguous,
    "expand": _expand,
    "expand_as": _expand,
    "broadcast_to": _expand,
    "repeat": _tile,
    "tile": _tile,
    "permute": _permute_method,
    "transpose": _transpose,
    "mean": _reduction("mean"),
    "sum": _reduction("sum"),
    "amax": _amax("amax"),
    "argmax": _arg_extremum("argmax"),
    "argmin": _arg_extremum("argmin"),
    "amin": _amax("amin"),
    "max": _extremum("max"),
    "min": _extremum("min"),
    "var": _variance(take_root=False),
    "std": _variance(take_root=True),
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "split": _split,
    "chunk": _split,
    "unbind": _unbind,
    **{m: _compare(m) for m in COMPARE_OPS},
    "logical_and": _logical("and"),
    "logical_or": _logical("or"),
    "logical_not": _logical("not"),
    "logical_xor": _logical("xor"),
    "where": _where,
    "masked_fill": _masked_fill,
    "float": _cast,
    "bool": _cast,
    "long": _cast,
    "int": _cast,
    "cumsum": _cumsum,
    "gather": _gather,
    "to": _cast,
    "type_as": _cast,
}

#: the handlers that may read a boolean IR value (FxBuilder.convert refuses the others): moves
#: (the result is a mask too), arithmetic with float tensors (0 / 1, as PyTorch promotes;
#: ``mask * mask`` is a logical and), logical ops, where / masked_fill, casts, attention
BOOL_HANDLERS: set[Handler] = {
    *(METHODS[m] for m in ("view", "reshape", "flatten", "unsqueeze", "squeeze", "contiguous")),
    *(METHODS[m] for m in ("permute", "transpose", "add", "sub", "mul", "div")),
    *(METHODS[m] for m in ("where", "masked_fill", "float", "to", "type_as")),
    *(METHODS[m] for m in ("int", "long", "bool", "cumsum", "sum")),
    FUNCTIONS[torch.sum],
    FUNCTIONS[torch.cumsum],
    *(METHODS[m] for m in ("logical_and", "logical_or", "logical_not", "logical_xor")),
    *(FUNCTIONS[f] for f in (torch.reshape, torch.flatten, torch.permute, torch.transpose)),
    *(FUNCTIONS[f] for f in (operator.getitem, operator.add, torch.add, operator.sub)),
    *(FUNCTIONS[f] for f in (torch.sub, operator.mul, torch.mul, operator.truediv, torch.div)),
    *(FUNCTIONS[f] for f in (operator.and_, operator.or_, operator.invert, operator.xor)),
    FUNCTIONS[torch.logical_xor],
    *(FUNCTIONS[f] for f in (torch.logical_and, torch.logical_or, torch.logical_not)),
    *(FUNCTIONS[f] for f in (torch.where, torch.masked_fill)),
    _sdpa,
    _expand,  # a mask broadcast over heads or repeated: 0 / 1 times ones
    _tile,
}


# -- modules --------------------------------------------------------------------------------------
def _module(node: torch.fx.Node, b: FxBuilder) -> nn.Module:
    return b.gm.get_submodule(str(node.target))


def _module_unary(op: str) -> Handler:
    def handle(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
        return b.emit(op, [b.tensor_arg(node.args[0])], {}, out)

    return handle


def _leaky_relu_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    mod = _module(node, b)
    assert isinstance(mod, nn.LeakyReLU)
    return _leaky_relu_op(b, node, mod.negative_slope, out)


def _elu_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    mod = _module(node, b)
    assert isinstance(mod, nn.ELU)
    return _elu_op(b, node, mod.alpha, out)


def _hardtanh_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    mod = _module(node, b)
    assert isinstance(mod, nn.Hardtanh)
    return _bounded(b, node, mod.min_val, mod.max_val, out)


def _softplus_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    mod = _module(node, b)
    assert isinstance(mod, nn.Softplus)
    return _softplus_op(b, node, mod.beta, mod.threshold, out)


def _gelu_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    mod = _module(node, b)
    op = "gelu_tanh" if mod.approximate == "tanh" else "gelu"
    return b.emit(op, [b.tensor_arg(node.args[0])], {}, out)


def _linear_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    mod = _module(node, b)
    ins = [b.tensor_arg(node.args[0]), b.const(mod.weight, "w")]
    if mod.bias is not None:
        ins.append(b.const(mod.bias, "b"))
    return b.emit("linear", ins, {}, out)


def _conv_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    mod = _module(node, b)
    assert isinstance(mod, (nn.Conv1d, nn.Conv2d))
    x = b.tensor_arg(node.args[0])
    padding: Any = mod.padding
    if mod.padding_mode != "zeros":  # as PyTorch: the mode's F.pad, then no padding
        pads = list(mod._reversed_padding_repeated_twice)
        x = mode_pad(b, x, pads, mod.padding_mode, type(mod).__name__, node.name)
        padding = 0
    ins = [x, b.const(mod.weight, "w")]
    if mod.bias is not None:
        ins.append(b.const(mod.bias, "b"))
    make = b.conv1d if isinstance(mod, nn.Conv1d) else b.conv
    return make(ins, mod.stride, padding, mod.dilation, mod.groups, out)


def _batch_norm_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    mod = _module(node, b)
    assert isinstance(mod, nn.modules.batchnorm._BatchNorm)
    if mod.training or mod.running_mean is None:
        raise UnsupportedOp(type(mod).__name__, node.name, "training-mode batch norm")
    c = mod.num_features
    w = mod.weight if mod.weight is not None else torch.ones(c)
    bias = mod.bias if mod.bias is not None else torch.zeros(c)
    assert mod.running_var is not None
    ins = [
        b.tensor_arg(node.args[0]),
        b.const(mod.running_mean),
        b.const(mod.running_var),
        b.const(w),
        b.const(bias),
    ]
    return b.emit("batch_norm", ins, {"eps": float(mod.eps)}, out)


def _layer_norm_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    mod = _module(node, b)
    assert isinstance(mod, nn.LayerNorm)
    return b.layer_norm(node.args[0], mod.normalized_shape, mod.weight, mod.bias, mod.eps, out)


def _softmax_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    mod = _module(node, b)
    assert isinstance(mod, nn.Softmax)
    return b.softmax(node.args[0], _module_softmax_dim(mod.dim, out), out)


def _module_softmax_dim(dim: int | None, out: torch.Tensor) -> int:
    """``nn.Softmax`` / ``nn.LogSoftmax``'s dim; without one, PyTorch's legacy implicit
    choice (dim 0 for 0-, 1- and 3-d inputs, else 1; it warns when it makes it)."""
    if dim is not None:
        return dim
    return 0 if out.dim() in (0, 1, 3) else 1


def _group_norm_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    mod = _module(node, b)
    assert isinstance(mod, nn.GroupNorm)
    return _group_norm_op(b, node, mod.num_groups, mod.weight, mod.bias, mod.eps, out)


def _instance_norm_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``nn.InstanceNorm1d/2d`` in inference: a group norm with one channel per group, where
    it normalises with the input's own statistics; with ``track_running_stats=True`` (stop
    70; refused before) inference uses the running statistics, as PyTorch does: a batch norm."""
    mod = _module(node, b)
    assert isinstance(mod, nn.modules.instancenorm._InstanceNorm)
    if not mod.track_running_stats:
        return _group_norm_op(b, node, out.shape[1], mod.weight, mod.bias, mod.eps, out)
    if len(b.shape(b.tensor_arg(node.args[0]))) != mod._get_no_batch_dim() + 1:
        raise UnsupportedOp(type(mod).__name__, node.name, "an unbatched input")
    return running_stats_norm(
        b, node.args[0], mod.running_mean, mod.running_var, mod.weight, mod.bias, mod.eps, out
    )


def _log_softmax_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    mod = _module(node, b)
    assert isinstance(mod, nn.LogSoftmax)
    return b.softmax(node.args[0], _module_softmax_dim(mod.dim, out), out, log=True)


POOL_DIVISOR_OPTIONS = ("count_include_pad", "divisor_override")


def _pool_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    mod = _module(node, b)
    assert isinstance(mod, (nn.MaxPool1d, nn.AvgPool1d, nn.MaxPool2d, nn.AvgPool2d))
    name = type(mod).__name__
    op = "max_pool2d" if isinstance(mod, (nn.MaxPool1d, nn.MaxPool2d)) else "avg_pool2d"
    options = {
        key: getattr(mod, key)
        for key in (*("ceil_mode", "dilation", "return_indices"), *POOL_DIVISOR_OPTIONS)
        if hasattr(mod, key)
    }
    pool = b.pool1d if isinstance(mod, (nn.MaxPool1d, nn.AvgPool1d)) else b.pool
    try:
        return pool(op, node.args[0], mod.kernel_size, mod.stride, mod.padding, node, out, options)
    except UnsupportedOp as refused:  # named by the module, as the user wrote it
        raise UnsupportedOp(name, node.name, refused.why) from None


def _upsample_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    mod = _module(node, b)
    assert isinstance(mod, nn.Upsample)
    resize = ResizeArgs(
        mod.mode, mod.scale_factor, mod.align_corners, mod.recompute_scale_factor, False
    )
    return _resize(b, node, b.tensor_arg(node.args[0]), resize, out)


def _conv_transpose_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    mod = _module(node, b)
    assert isinstance(mod, (nn.ConvTranspose1d, nn.ConvTranspose2d))
    name = type(mod).__name__
    if mod.padding_mode != "zeros":
        raise UnsupportedOp(name, node.name, f"padding_mode={mod.padding_mode!r}")
    bias = None if mod.bias is None else b.const(mod.bias, "b")
    return conv_transpose(
        b, name, node.name, b.tensor_arg(node.args[0]), mod.weight.detach().numpy(), bias,
        mod.stride, mod.padding, mod.dilation, mod.groups, out,
    )  # fmt: skip


def _adaptive_max_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    mod = _module(node, b)
    assert isinstance(mod, nn.AdaptiveMaxPool2d)
    return b.adaptive(node.args[0], mod.output_size, out, "amax", mod.return_indices)


def _adaptive_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    mod = _module(node, b)
    assert isinstance(mod, nn.AdaptiveAvgPool2d)
    return b.adaptive(node.args[0], mod.output_size, out)


def _embedding_module(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    mod = _module(node, b)
    ins = [b.const(mod.weight, "w"), b.tensor_arg(node.args[0])]
    return b.emit("embedding", ins, {}, out)


MODULES: dict[type, Handler] = {
    nn.ReLU: _module_unary("relu"),
    nn.Tanh: _module_unary("tanh"),
    nn.Sigmoid: _module_unary("sigmoid"),
    nn.SiLU: _module_unary("silu"),
    nn.ReLU6: _module_unary("relu6"),
    nn.Hardtanh: _hardtanh_module,
    nn.LeakyReLU: _leaky_relu_module,
    nn.ELU: _elu_module,
    nn.Hardsigmoid: _module_unary("hardsigmoid"),
    nn.Hardswish: _module_unary("hardswish"),
    nn.Softplus: _softplus_module,
    nn.Dropout: _module_unary("identity"),
    nn.Identity: _module_unary("identity"),
    nn.GELU: _gelu_module,
    nn.Linear: _linear_module,
    nn.Conv1d: _conv_module,
    nn.Conv2d: _conv_module,
    nn.BatchNorm2d: _batch_norm_module,
    nn.BatchNorm1d: _batch_norm_module,
    nn.LayerNorm: _layer_norm_module,
    nn.Softmax: _softmax_module,
    nn.LogSoftmax: _log_softmax_module,
    nn.GroupNorm: _group_norm_module,
    nn.InstanceNorm1d: _instance_norm_module,
    nn.InstanceNorm2d: _instance_norm_module,
    nn.MaxPool2d: _pool_module,
    nn.AvgPool2d: _pool_module,
    nn.AdaptiveAvgPool2d: _adaptive_module,
    nn.AdaptiveAvgPool1d: _adaptive_pool1d("mean"),
    nn.AdaptiveMaxPool1d: _adaptive_pool1d("amax"),
    nn.MaxPool1d: _pool_module,
    nn.AvgPool1d: _pool_module,
    nn.AdaptiveMaxPool2d: _adaptive_max_module,
    nn.Upsample: _upsample_module,
    nn.ConvTranspose1d: _conv_transpose_module,
    nn.ConvTranspose2d: _conv_transpose_module,
    nn.Flatten: _reshape,
    nn.Embedding: _embedding_module,
}


def _frozen_placeholders(gm: torch.fx.GraphModule, example_inputs: Sequence[Any]) -> set[str]:
    """Placeholders that are parameters or buffers (dynamo lifts them as graph inputs)."""
    frozen = set()
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for node, ex in zip(placeholders, example_inputs, strict=False):
        if isinstance(ex, nn.Parameter) or "_parameters_" in node.name or "_buffers_" in node.name:
            frozen.add(node.name)
    return frozen


#: the modules :func:`_export` traced through TorchDynamo (``torch.fx`` could not, or its
#: trace computed other values): ``Compiled.traced_by_dynamo`` (stop 74)
DYNAMO_TRACED: weakref.WeakSet[nn.Module] = weakref.WeakSet()


def _export(
    model: nn.Module, example_inputs: Sequence[torch.Tensor], fx_error: Exception
) -> torch.fx.GraphModule:
    """The model's graph through TorchDynamo, specialised to the example inputs' shapes: the
    fallback when ``torch.fx.symbolic_trace`` fails (factory calls or control flow on sizes).
    PyG's ``gcn_norm`` is traced as its fixed-size twin and its ``scatter`` with the output size
    it reads from the index known to be positive (:mod:`~.frontend.pyg`)."""
    import torch._dynamo

    from provenml.compiler.frontend.pyg import sized_scatter_twins, static_gcn_twins

    try:
        # allow_rnn: nn.GRU / nn.LSTM / nn.RNN traced into their calls (refused by default;
        # stop 71: S2's belief encoder, whose shape checks send it here)
        with (
            torch.no_grad(),
            static_gcn_twins(),
            sized_scatter_twins(),
            torch._dynamo.config.patch(allow_rnn=True),
        ):
            gm, _ = torch._dynamo.export(model, aten_graph=False)(*clones(example_inputs))
        DYNAMO_TRACED.add(model)
    except Exception as exc:
        said = str(exc).splitlines()[0] if str(exc) else repr(exc)
        raise ProvenmlError(
            f"provenml.compiler: torch.fx could not trace the model ({fx_error}), "
            f"and neither could TorchDynamo ({said}){_data_dependence_hint(str(exc))}"
        ) from exc
    return gm


def _data_dependence_hint(dynamo_error: str) -> str:
    """A way round, where TorchDynamo stopped at control flow on the inputs' values (stop 73:
    ``if x.sum() > 0``, a loop count from ``.item()``, ``.tolist()``; the refusal named
    TorchDynamo's words alone)."""
    text = dynamo_error.lower()
    if not any(k in text for k in ("data-dependent", "data dependent", "tolist", ".item()")):
        return ""
    return (
        "; the model's control flow depends on its inputs' values, which one static graph "
        "cannot follow: write the choice with torch.where or a mask, or compile it through "
        "torch.compile(model, backend='provenml'), which compiles the graphs on either side "
        "of the branch and leaves the branch itself to Python"
    )


def _symbolic_trace(model: nn.Module, example_inputs: Sequence[Any]) -> torch.fx.GraphModule:
    """``model``'s graph by ``torch.fx`` with its forward hooks applied (:mod:`.torch_hooks`),
    else through TorchDynamo (:func:`_export`). Warns once, naming them, where hooks were
    traced: only what they return is compiled."""
    from provenml.compiler.frontend.torch_attention import as_traceable
    from provenml.compiler.frontend.torch_hooks import (
        AttributeGuard,
        AutocastWatch,
        HookTracer,
        called_root,
        refuse_hidden_hooks,
        takes_varargs,
        traced_hooks,
    )

    if takes_varargs(model):  # forward(*inputs): one fx placeholder for them all (stop 70)
        return _export(model, example_inputs, ProvenmlError("forward takes *args"))
    root = as_traceable(called_root(model, len(example_inputs)))
    tracer: HookTracer = HookTracer()
    guard, autocast = AttributeGuard(model), AutocastWatch()
    try:
        with guard, autocast:
            graph = tracer.trace(root)
    except Exception as exc:  # e.g. torch.ones(t, t) with t from x.shape
        try:
            return _export(model, example_inputs, exc)
        except ProvenmlError as refusal:
            # (stop 72) neither traced: once more with the example's shapes known while
            # tracing, so that code checking them (``if q.shape != k.shape: raise``) traces
            # where TorchDynamo stopped at something else (DenseCL's loss: a step counter
            # read with ``int(buffer)``); a test of values still fails (a meta tensor has
            # none), and a graph that writes into a tensor it made from those shapes is
            # refused (:func:`_meta_trace`)
            tracer, graph = _meta_trace(root, example_inputs, guard, autocast, refusal)
    guard.check(tracer)
    if autocast.dtypes:
        warnings.warn(
            f"provenml.compiler: the model's torch.autocast regions "
            f"({', '.join(sorted(set(autocast.dtypes)))}) compile in float32, as the rest of "
            "the model: the results are the float32 ones, not the lower-precision ones eager "
            "PyTorch computes there",
            stacklevel=4,
        )
    gm = torch.fx.GraphModule(tracer.root, graph, type(root).__name__)
    gm.meta[HOOKS_TRACED] = True
    refuse_hidden_hooks(gm)
    if not autocast.dtypes and not _computes_as(gm, model, example_inputs):
        # (stop 74) torch.fx records ``v *= 2`` on a tensor as ``v * 2``, a new tensor: where
        # ``v`` is a view (``v = y[:, :2]``) the change of ``y`` is lost and the trace computes
        # other values than the model (0.87 off, silently); TorchDynamo records it in place
        return _export(
            model,
            example_inputs,
            ProvenmlError(
                "its graph computes other values than the model on the example inputs, e.g. "
                "an augmented assignment (v *= 2) changing a view in place, which torch.fx "
                "records as a new tensor"
            ),
        )
    hooked = traced_hooks(model)
    if hooked:
        warnings.warn(
            f"provenml.compiler: the forward hooks of {', '.join(hooked)} are "
            "compiled into the model: what they return is kept; anything else they do (store a "
            "tensor, count calls, print) ran once, while tracing, and will not run per call",
            stacklevel=4,
        )
    return gm


def _computes_as(gm: torch.fx.GraphModule, model: nn.Module, example_inputs: Sequence[Any]) -> bool:
    """Whether the traced ``gm`` computes what ``model`` does on copies of the example inputs
    (the same random draws for both; float outputs to 1e-5 of their scale, others exactly):
    a trace that is not faithful is taken again through TorchDynamo (stop 74)."""
    try:
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(0)
            expected = model(*clones(example_inputs))
            torch.manual_seed(0)
            traced = _Recorder(gm).run(*clones(example_inputs))  # (hooks applied once)
    except Exception:  # (the conversion reports what fails, as before)
        return True
    want, got = pytree.tree_leaves(expected), pytree.tree_leaves(traced)
    if len(want) != len(got):
        return False
    for a, b in zip(want, got, strict=True):
        if isinstance(a, torch.Tensor) != isinstance(b, torch.Tensor):
            return False
        if not isinstance(a, torch.Tensor):
            continue
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.is_floating_point() or a.is_complex():
            finite = a[a.isfinite()].abs()  # (NaN and infinities compared as themselves)
            scale = float(finite.max()) if finite.numel() else 0.0
            if not torch.allclose(a, b, rtol=1e-5, atol=1e-5 * max(scale, 1.0), equal_nan=True):
                return False
        elif not torch.equal(a, b):
            return False
    return True


def _meta_trace(
    root: nn.Module,
    example_inputs: Sequence[Any],
    guard: Any,
    autocast: Any,
    refusal: ProvenmlError,
) -> tuple[Any, torch.fx.Graph]:
    """``root`` traced by :class:`~.torch_hooks.MetaHookTracer` (the tracer and its graph),
    or ``refusal`` raised. Under it a tensor made from the shapes (``torch.zeros(x.shape[0],
    20)``) is made for real, a constant of the graph, and an in-place write into it is
    recorded against that constant while later reads fetch the constant afresh: the write
    would be lost (stop 72's tests found it: wrong results), so such a graph is refused."""
    from provenml.compiler.frontend.torch_hooks import MetaHookTracer

    tracer = MetaHookTracer()
    try:
        with guard, autocast, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (the shapes it could not compute: none kept)
            graph = tracer.trace(root, meta_args=_meta_args(root, example_inputs))
    except Exception:
        raise refusal from None
    for node in graph.nodes:
        name = getattr(node.target, "__name__", str(node.target))
        writes = name in ("__setitem__", "setitem") or (
            node.op == "call_method" and name.endswith("_") and not name.startswith("_")
        )
        target = node.args[0] if node.args else None
        if writes and isinstance(target, torch.fx.Node) and target.op == "get_attr":
            raise refusal
    return tracer, graph


def _meta_args(root: nn.Module, example_inputs: Sequence[Any]) -> dict[str, Any]:
    """The example inputs as meta tensors (shape and dtype, no values), by the names of
    ``root.forward``'s positional parameters (the placeholders ``torch.fx`` makes)."""
    names = [
        p.name
        for p in inspect.signature(root.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return {
        name: x.to("meta") if isinstance(x, torch.Tensor) else x
        for name, x in zip(names, example_inputs, strict=False)
    }


def _describe(node: torch.fx.Node, gm: torch.fx.GraphModule) -> str:
    """``op(input, ...)`` for an error message: what a node computed from which nodes."""
    op = target_name(node, gm).split(".")[-1]

    def name(i: torch.fx.Node) -> str:  # TorchDynamo names an input ``x`` ``l_x_``
        plain = i.op == "placeholder" and i.name.startswith("l_") and i.name.endswith("_")
        return i.name[2:-1] if plain and len(i.name) > 3 else i.name

    return f"{op}({', '.join(name(i) for i in node.all_input_nodes)})"


def trace(
    model: nn.Module | Callable[..., Any],
    example_inputs: Sequence[torch.Tensor],
    freeze_params: bool = False,
) -> Graph:
    """Trace ``model`` and convert it to the IR with the example inputs' static shapes.

    ``model`` may be an ``nn.Module`` (traced with ``torch.fx.symbolic_trace``) or an existing
    ``GraphModule`` (as ``torch.compile`` hands to a backend). With ``freeze_params``, inputs that
    are parameters or buffers become constants.
    """
    if isinstance(model, torch.export.ExportedProgram):
        gm = exported_module(model)
    elif isinstance(model, torch.fx.GraphModule):
        gm = model
    elif isinstance(model, nn.Module):
        if model.training:
            raise ProvenmlError("provenml.compiler compiles for inference: call model.eval() first")
        gm = _symbolic_trace(model, example_inputs)
    else:
        raise ProvenmlError(
            "provenml.compiler.compile expects an nn.Module or a torch.fx.GraphModule"
        )
    example_inputs = list(example_inputs)
    rec = _Recorder(gm)
    with torch.no_grad():  # on copies: a model that changes an input must not change the example
        rec.run(*clones(example_inputs))
    frozen = _frozen_placeholders(gm, example_inputs) if freeze_params else set()
    # ATen calls (torch.export) and torch built-ins ordered unlike their functional namesake,
    # as the torch-level calls the tables know (stop 72)
    from provenml.compiler.frontend.torch_aten import normalise_calls

    gm = normalise_calls(gm, FUNCTIONS, FUNCTION_NAMES, rec.results)
    # (stop 74) ``t *= 2`` on a tensor is in place; an in-place change of ``base[index]`` is
    # written back into ``base``; the graph run again where either changed it
    gm, rec = _with_changes_written_back(gm, rec, example_inputs)
    return FxBuilder(gm, rec.results, frozen, rec.shares_memory).build()


def _with_changes_written_back(
    gm: torch.fx.GraphModule, rec: _Recorder, example_inputs: Sequence[Any]
) -> tuple[torch.fx.GraphModule, _Recorder]:
    """``gm`` with its augmented assignments on tensors made in-place calls and the changes
    of views written back into their bases (:mod:`.torch_setitem`), and the recorder of its
    run; ``gm`` and ``rec`` as given where the rewritten graph does not run (an ATen call
    rewritten into a form PyTorch cannot call, ``x.to(layout=...)``: converted as before)."""
    from provenml.compiler.frontend.torch_setitem import in_place_augmented, write_back_views

    given = (gm, rec)
    changed = write_back_views(in_place_augmented(gm, rec.results), rec)
    for _ in range(8):  # (a change of a view of a view of ..., one level a run; 8 at most)
        if changed is gm:
            return gm, rec
        gm, rec = changed, _Recorder(changed)
        try:
            with torch.no_grad():
                rec.run(*clones(example_inputs))
        except Exception:
            return given
        changed = write_back_views(gm, rec)
    return gm, rec


def is_exported_module(model: Any) -> bool:
    """Whether ``model`` is a ``torch.export`` program's ``.module()`` (its layers' modes
    fixed in its graph when it was exported; its ``training`` flag means nothing)."""
    stateful = getattr(getattr(torch.export, "_unlift", None), "_StatefulGraphModule", None)
    return stateful is not None and isinstance(model, stateful)


def exported_module(program: torch.export.ExportedProgram) -> torch.fx.GraphModule:
    """The graph module of a ``torch.export`` program (its ATen graph with the weights as
    attributes), marked for inference: the program fixed each layer's mode when it was
    exported, and its module refuses ``.eval()`` (stop 72)."""
    gm = program.module()
    gm.training = False  # (what nn.Module.eval() would set; ``train`` is refused on it)
    return gm
