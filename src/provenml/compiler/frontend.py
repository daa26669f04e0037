"""Frontend: a PyTorch model (or a ``torch.fx.GraphModule``) to the typed SSA graph IR.

The model is traced with ``torch.fx.symbolic_trace`` and run once on the example inputs with a
``torch.fx.Interpreter``, so every node gets a concrete static shape (and every size query a
Python integer). Each fx node is then mapped to one IR op (survey Sec. 4.1, "frontend"); an op
that is not supported raises :class:`ProvenmlError` naming the op and the node.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

from provenml.compiler.ir import Graph, Node, Value
from provenml.core import ProvenmlError


class UnsupportedOp(ProvenmlError):
    """An op the compiler cannot lower; ``op`` and ``node`` name it."""

    def __init__(self, op: str, node: str, why: str = "") -> None:
        self.op = op
        self.node = node
        extra = f" ({why})" if why else ""
        super().__init__(f"provenml.compiler: unsupported op '{op}' at node '{node}'{extra}")


def _target_name(node: torch.fx.Node, gm: torch.fx.GraphModule) -> str:
    if node.op == "call_module":
        return type(gm.get_submodule(str(node.target))).__name__
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    t = node.target
    return getattr(t, "__name__", str(t))


class _Recorder(torch.fx.Interpreter):
    """Runs the graph once and keeps every node's concrete result."""

    def __init__(self, gm: torch.fx.GraphModule) -> None:
        super().__init__(gm)
        self.results: dict[str, Any] = {}

    def run_node(self, n: torch.fx.Node) -> Any:
        out = super().run_node(n)
        self.results[n.name] = out
        return out


_UNARY_FUNCS: dict[Any, str] = {
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
    F.dropout: "identity",
}
_BINARY_FUNCS: dict[Any, str] = {
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
}
_UNARY_METHODS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "exp": "exp", "neg": "neg"}
_BINARY_METHODS = {"add": "add", "sub": "sub", "mul": "mul", "div": "div"}
_UNARY_MODULES: dict[type, str] = {
    nn.ReLU: "relu",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
    nn.SiLU: "silu",
    nn.Dropout: "identity",
    nn.Identity: "identity",
}


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    return (int(v[0]), int(v[1]))


class _Builder:
    """Maps fx nodes to IR nodes, with concrete shapes from the recorded run."""

    def __init__(self, gm: torch.fx.GraphModule, results: dict[str, Any], frozen: set[str]):
        self.gm = gm
        self.results = results
        self.frozen = frozen
        self.g = Graph(inputs=[], outputs=[], nodes=[], values={}, consts={})
        self.env: dict[str, Any] = {}  # fx node name -> IR value name or Python value
        self.current = ""

    # -- helpers -------------------------------------------------------------------------------
    def emit(self, op: str, inputs: list[str], attrs: dict[str, Any], like: torch.Tensor) -> str:
        name = self.g.fresh(op)
        dtype = "int64" if like.dtype in (torch.int64, torch.int32) else "float32"
        self.g.values[name] = Value(name, tuple(like.shape), dtype)
        self.g.nodes.append(Node(op, name, list(inputs), dict(attrs), source=self.current))
        return name

    def const(self, t: Any, stem: str = "c") -> str:
        if isinstance(t, torch.Tensor):
            arr = t.detach().cpu().numpy()
        else:
            arr = np.asarray(t, dtype=np.float32)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        return self.g.add_const(arr, stem)

    def val(self, a: Any) -> Any:
        """An fx argument to an IR value name (tensors) or a Python value."""
        if isinstance(a, torch.fx.Node):
            return self.env[a.name]
        if isinstance(a, (list, tuple)):
            return type(a)(self.val(x) for x in a)
        return a

    def tensor_arg(self, a: Any) -> str:
        v = self.val(a)
        if isinstance(v, str) and v in self.g.values:
            return v
        if isinstance(v, (int, float)):
            return self.const(np.asarray(v, dtype=np.float32), "s")
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
                    continue
                if not isinstance(t, torch.Tensor):
                    self.env[node.name] = t
                    continue
                name = node.name
                dtype = "int64" if t.dtype in (torch.int64, torch.int32) else "float32"
                if t.dtype not in (torch.float32, torch.int64, torch.int32):
                    raise UnsupportedOp(f"input dtype {t.dtype}", node.name)
                self.g.values[name] = Value(name, tuple(t.shape), dtype)
                self.g.inputs.append(name)
                self.env[node.name] = name
            elif node.op == "get_attr":
                t = self.results[node.name]
                self.env[node.name] = self.const(t, "w") if isinstance(t, torch.Tensor) else t
            elif node.op == "output":
                outs = node.args[0]
                flat = outs if isinstance(outs, (tuple, list)) else (outs,)
                for o in flat:
                    v = self.tensor_arg(o)
                    self.g.outputs.append(v)
            else:
                result = self.results[node.name]
                if not isinstance(result, torch.Tensor):
                    self.env[node.name] = self.python_value(node, result)
                    continue
                if result.dtype not in (torch.float32, torch.int64):
                    raise UnsupportedOp(
                        f"{_target_name(node, self.gm)} -> {result.dtype}", node.name
                    )
                self.env[node.name] = self.convert(node, result)
        return self.g

    def python_value(self, node: torch.fx.Node, result: Any) -> Any:
        """Size queries and tuple plumbing become Python values (static shapes)."""
        if node.op == "call_function" and node.target is operator.getitem:
            base = self.val(node.args[0])
            if isinstance(base, (tuple, list)):
                return base[node.args[1]]
        if isinstance(result, (int, float, torch.Size)) or (
            isinstance(result, (tuple, list))
            and all(isinstance(x, (int, torch.Size)) for x in result)
        ):
            return tuple(result) if isinstance(result, torch.Size) else result
        raise UnsupportedOp(_target_name(node, self.gm), node.name, "non-tensor result")

    def convert(self, node: torch.fx.Node, out: torch.Tensor) -> str:
        args, kwargs = node.args, node.kwargs

        def arg(i: int, key: str, default: Any = None) -> Any:
            if i < len(args):
                return args[i]
            return kwargs.get(key, default)

        if node.op == "call_module":
            mod = self.gm.get_submodule(str(node.target))
            return self.convert_module(node, mod, out)
        target = node.target
        name = _target_name(node, self.gm)
        if node.op == "call_method":
            m = str(target)
            x = args[0]
            if m in _UNARY_METHODS:
                return self.emit(_UNARY_METHODS[m], [self.tensor_arg(x)], {}, out)
            if m in _BINARY_METHODS:
                return self.binary(_BINARY_METHODS[m], x, arg(1, "other"), out)
            if m in ("view", "reshape", "flatten", "unsqueeze", "squeeze", "expand_as"):
                if m == "expand_as":
                    raise UnsupportedOp(name, node.name)
                return self.reshape(self.tensor_arg(x), out)
            if m == "contiguous":
                return self.val(x)
            if m == "permute":
                dims = args[1:] if not isinstance(args[1], (tuple, list)) else args[1]
                return self.emit(
                    "permute",
                    [self.tensor_arg(x)],
                    {"perm": tuple(int(d) % out.dim() for d in self.val(dims))},
                    out,
                )
            if m == "transpose":
                return self.transpose(
                    self.tensor_arg(x), int(self.val(args[1])), int(self.val(args[2])), out
                )
            if m in ("mean", "sum"):
                return self.reduce(m, x, arg(1, "dim"), arg(2, "keepdim", False), out)
            if m == "softmax":
                return self.emit(
                    "softmax",
                    [self.tensor_arg(x)],
                    {"dim": int(self.val(arg(1, "dim"))) % out.dim()},
                    out,
                )
            raise UnsupportedOp(name, node.name)
        # call_function
        if target in _UNARY_FUNCS:
            return self.emit(_UNARY_FUNCS[target], [self.tensor_arg(args[0])], {}, out)
        if target in _BINARY_FUNCS:
            if kwargs.get("alpha", 1) != 1:
                raise UnsupportedOp(name, node.name, "alpha != 1")
            return self.binary(_BINARY_FUNCS[target], args[0], arg(1, "other"), out)
        if name == "gelu":
            approx = kwargs.get("approximate", "none")
            return self.emit(
                "gelu_tanh" if approx == "tanh" else "gelu", [self.tensor_arg(args[0])], {}, out
            )
        if name == "silu":
            return self.emit("silu", [self.tensor_arg(args[0])], {}, out)
        if name == "relu":
            return self.emit("relu", [self.tensor_arg(args[0])], {}, out)
        if name == "linear":
            ins = [self.tensor_arg(args[0]), self.tensor_arg(arg(1, "weight"))]
            if arg(2, "bias") is not None:
                ins.append(self.tensor_arg(arg(2, "bias")))
            return self.emit("linear", ins, {}, out)
        if target in (torch.matmul, operator.matmul, torch.bmm):
            return self.emit(
                "matmul", [self.tensor_arg(args[0]), self.tensor_arg(args[1])], {}, out
            )
        if name == "conv2d":
            ins = [self.tensor_arg(args[0]), self.tensor_arg(arg(1, "weight"))]
            if arg(2, "bias") is not None:
                ins.append(self.tensor_arg(arg(2, "bias")))
            return self.conv(
                ins,
                arg(3, "stride", 1),
                arg(4, "padding", 0),
                arg(5, "dilation", 1),
                arg(6, "groups", 1),
                out,
            )
        if name == "batch_norm":
            if self.val(arg(5, "training", False)):
                raise UnsupportedOp(name, node.name, "training-mode batch norm")
            ins = [
                self.tensor_arg(args[0]),
                self.tensor_arg(arg(1, "running_mean")),
                self.tensor_arg(arg(2, "running_var")),
            ]
            ins += [
                self.tensor_arg(arg(3, "weight"))
                if arg(3, "weight") is not None
                else self.const(np.ones(out.shape[1], np.float32))
            ]
            ins += [
                self.tensor_arg(arg(4, "bias"))
                if arg(4, "bias") is not None
                else self.const(np.zeros(out.shape[1], np.float32))
            ]
            return self.emit("batch_norm", ins, {"eps": float(self.val(arg(7, "eps", 1e-5)))}, out)
        if name == "layer_norm":
            return self.layer_norm(
                args[0],
                self.val(arg(1, "normalized_shape")),
                arg(2, "weight"),
                arg(3, "bias"),
                self.val(arg(4, "eps", 1e-5)),
                out,
            )
        if name == "softmax":
            return self.emit(
                "softmax",
                [self.tensor_arg(args[0])],
                {"dim": int(self.val(arg(1, "dim"))) % out.dim()},
                out,
            )
        if name in ("max_pool2d", "avg_pool2d"):
            return self.pool(
                name,
                args[0],
                arg(1, "kernel_size"),
                arg(2, "stride"),
                arg(3, "padding", 0),
                node,
                out,
            )
        if name == "adaptive_avg_pool2d":
            return self.adaptive(args[0], self.val(arg(1, "output_size")), out)
        if target in (torch.flatten, torch.reshape) or name in (
            "flatten",
            "reshape",
            "unsqueeze",
            "squeeze",
        ):
            return self.reshape(self.tensor_arg(args[0]), out)
        if target is torch.permute:
            return self.emit(
                "permute",
                [self.tensor_arg(args[0])],
                {"perm": tuple(int(d) % out.dim() for d in self.val(args[1]))},
                out,
            )
        if target is torch.transpose:
            return self.transpose(
                self.tensor_arg(args[0]), int(self.val(args[1])), int(self.val(args[2])), out
            )
        if target is torch.cat or name in ("cat", "concat"):
            tensors = [self.tensor_arg(t) for t in args[0]]
            dim = int(self.val(arg(1, "dim", 0))) % out.dim()
            return self.emit("cat", tensors, {"dim": dim}, out)
        if name == "embedding":
            return self.emit(
                "embedding", [self.tensor_arg(arg(1, "weight")), self.tensor_arg(args[0])], {}, out
            )
        if target in (torch.mean, torch.sum):
            return self.reduce(name, args[0], arg(1, "dim"), arg(2, "keepdim", False), out)
        if target is getattr and args[1] in ("T", "mT"):
            x = self.tensor_arg(args[0])
            rank = len(self.shape(x))
            perm = (
                tuple(reversed(range(rank)))
                if args[1] == "T"
                else (*tuple(range(rank - 2)), rank - 1, rank - 2)
            )
            return self.emit("permute", [x], {"perm": perm}, out)
        if target is operator.getitem:
            return self.getitem(self.tensor_arg(args[0]), self.val(args[1]), out)
        raise UnsupportedOp(name, node.name)

    def convert_module(self, node: torch.fx.Node, mod: nn.Module, out: torch.Tensor) -> str:
        x = node.args[0]
        name = type(mod).__name__
        for cls, op in _UNARY_MODULES.items():
            if type(mod) is cls:
                return self.emit(op, [self.tensor_arg(x)], {}, out)
        if isinstance(mod, nn.GELU):
            return self.emit(
                "gelu_tanh" if mod.approximate == "tanh" else "gelu", [self.tensor_arg(x)], {}, out
            )
        if isinstance(mod, nn.Linear):
            ins = [self.tensor_arg(x), self.const(mod.weight, "w")]
            if mod.bias is not None:
                ins.append(self.const(mod.bias, "b"))
            return self.emit("linear", ins, {}, out)
        if isinstance(mod, nn.Conv2d):
            if mod.padding_mode != "zeros" or isinstance(mod.padding, str):
                raise UnsupportedOp(name, node.name, "padding mode")
            ins = [self.tensor_arg(x), self.const(mod.weight, "w")]
            if mod.bias is not None:
                ins.append(self.const(mod.bias, "b"))
            return self.conv(ins, mod.stride, mod.padding, mod.dilation, mod.groups, out)
        if isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm1d)):
            if mod.training or mod.running_mean is None:
                raise UnsupportedOp(name, node.name, "training-mode batch norm")
            c = mod.num_features
            w = mod.weight if mod.weight is not None else torch.ones(c)
            b = mod.bias if mod.bias is not None else torch.zeros(c)
            assert mod.running_var is not None
            ins = [
                self.tensor_arg(x),
                self.const(mod.running_mean),
                self.const(mod.running_var),
                self.const(w),
                self.const(b),
            ]
            return self.emit("batch_norm", ins, {"eps": float(mod.eps)}, out)
        if isinstance(mod, nn.LayerNorm):
            return self.layer_norm(x, mod.normalized_shape, mod.weight, mod.bias, mod.eps, out)
        if isinstance(mod, nn.Softmax):
            return self.emit(
                "softmax",
                [self.tensor_arg(x)],
                {"dim": int(mod.dim if mod.dim is not None else -1) % out.dim()},
                out,
            )
        if isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
            op = "max_pool2d" if isinstance(mod, nn.MaxPool2d) else "avg_pool2d"
            if getattr(mod, "ceil_mode", False) or getattr(mod, "dilation", 1) not in (1, (1, 1)):
                raise UnsupportedOp(name, node.name, "ceil_mode/dilation")
            if isinstance(mod, nn.AvgPool2d) and (
                not mod.count_include_pad or mod.divisor_override
            ):
                raise UnsupportedOp(name, node.name, "count_include_pad=False")
            return self.pool(op, x, mod.kernel_size, mod.stride, mod.padding, node, out)
        if isinstance(mod, nn.AdaptiveAvgPool2d):
            return self.adaptive(x, mod.output_size, out)
        if isinstance(mod, nn.Flatten):
            return self.reshape(self.tensor_arg(x), out)
        if isinstance(mod, nn.Embedding):
            return self.emit(
                "embedding", [self.const(mod.weight, "w"), self.tensor_arg(x)], {}, out
            )
        raise UnsupportedOp(name, node.name)

    # -- op helpers ----------------------------------------------------------------------------
    def binary(self, op: str, a: Any, b: Any, out: torch.Tensor) -> str:
        return self.emit(op, [self.tensor_arg(a), self.tensor_arg(b)], {}, out)

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
        return self.emit(op, [xin], {"dims": dims, "keepdim": bool(self.val(keepdim))}, out)

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
            raise UnsupportedOp("conv2d", self.current, "string padding")
        if _pair(self.val(dilation)) != (1, 1):
            raise UnsupportedOp("conv2d", self.current, "dilation != 1")
        groups = int(self.val(groups))
        cin = self.shape(ins[0])[1]
        if groups not in (1, cin) or (groups == cin and out.shape[1] != cin):
            raise UnsupportedOp("conv2d", self.current, f"groups={groups} (only 1 and depthwise)")
        attrs = {
            "stride": _pair(self.val(stride)),
            "padding": _pair(self.val(padding)),
            "depthwise": groups != 1,
        }
        return self.emit("conv2d", ins, attrs, out)

    def layer_norm(self, x: Any, shape: Any, w: Any, b: Any, eps: Any, out: torch.Tensor) -> str:
        shape = tuple(shape) if isinstance(shape, (tuple, list, torch.Size)) else (shape,)
        if len(shape) != 1:
            raise UnsupportedOp(
                "layer_norm", self.current, "normalized over more than the last dim"
            )
        ins = [self.tensor_arg(x)]
        n = int(shape[0])
        ins.append(
            self.tensor_arg(w)
            if isinstance(w, torch.fx.Node)
            else self.const(w if w is not None else torch.ones(n))
        )
        ins.append(
            self.tensor_arg(b)
            if isinstance(b, torch.fx.Node)
            else self.const(b if b is not None else torch.zeros(n))
        )
        return self.emit("layer_norm", ins, {"eps": float(eps)}, out)

    def pool(
        self,
        op: str,
        x: Any,
        kernel: Any,
        stride: Any,
        padding: Any,
        node: torch.fx.Node,
        out: torch.Tensor,
    ) -> str:
        k = _pair(self.val(kernel))
        s = _pair(self.val(stride)) if self.val(stride) not in (None, ()) else k
        if node.op == "call_function":
            extra = list(node.args[4:]) + [
                v for key, v in node.kwargs.items() if key in ("ceil_mode", "dilation")
            ]
            if any(v not in (False, 1, (1, 1), None, True) for v in extra) or node.kwargs.get(
                "ceil_mode", False
            ):
                raise UnsupportedOp(op, node.name, "ceil_mode/dilation")
        return self.emit(
            op,
            [self.tensor_arg(x)],
            {"kernel": k, "stride": s, "padding": _pair(self.val(padding))},
            out,
        )

    def adaptive(self, x: Any, size: Any, out: torch.Tensor) -> str:
        if _pair(size) != (1, 1):
            raise UnsupportedOp("adaptive_avg_pool2d", self.current, "output size other than 1")
        return self.emit("mean", [self.tensor_arg(x)], {"dims": (2, 3), "keepdim": True}, out)

    def getitem(self, x: str, index: Any, out: torch.Tensor) -> str:
        """Basic indexing: ints, slices, Ellipsis and None, as a chain of slice + reshape."""
        shape = self.shape(x)
        idx = index if isinstance(index, tuple) else (index,)
        if any(not isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in idx):
            raise UnsupportedOp("getitem", self.current, "advanced (tensor) indexing")
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
                    like = torch.empty(cur_shape)
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


def _frozen_placeholders(gm: torch.fx.GraphModule, example_inputs: Sequence[Any]) -> set[str]:
    """Placeholders that are parameters or buffers (dynamo lifts them as graph inputs)."""
    frozen = set()
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for node, ex in zip(placeholders, example_inputs, strict=False):
        if isinstance(ex, nn.Parameter) or "_parameters_" in node.name or "_buffers_" in node.name:
            frozen.add(node.name)
    return frozen


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
    if isinstance(model, torch.fx.GraphModule):
        gm = model
    elif isinstance(model, nn.Module):
        if model.training:
            raise ProvenmlError("provenml.compiler compiles for inference: call model.eval() first")
        try:
            gm = torch.fx.symbolic_trace(model)
        except Exception as exc:
            raise ProvenmlError(
                f"provenml.compiler: torch.fx could not trace the model: {exc}"
            ) from exc
    else:
        raise ProvenmlError(
            "provenml.compiler.compile expects an nn.Module or a torch.fx.GraphModule"
        )
    example_inputs = list(example_inputs)
    rec = _Recorder(gm)
    with torch.no_grad():
        rec.run(*example_inputs)
    frozen = _frozen_placeholders(gm, example_inputs) if freeze_params else set()
    return _Builder(gm, rec.results, frozen).build()
