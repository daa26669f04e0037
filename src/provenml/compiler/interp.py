"""A NumPy interpreter of the graph IR: the reference every pass and the C backend are tested
against. Values are NumPy arrays in their *physical* layout (an ``NHWC`` value is stored
channels-last), so the interpreter also checks the layout and packing passes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import erf, erfc, gammaln

from provenml.compiler.ir import (
    ELEMENTWISE_BINARY,
    ELEMENTWISE_UNARY,
    MATH_UNARY,
    Graph,
    Node,
    Value,
)
from provenml.compiler.run_time_errors import (
    PM_BAD_INDEX,
    PM_BAD_ROW,
    PM_BAD_WRAPPED_INDEX,
    PM_ZERO_DIVISION,
    run_time_error,
)
from provenml.errors import ProvenmlError

SQRT_2_OVER_PI = 0.7978845608028654


def unary(op: str, x: np.ndarray) -> np.ndarray:
    """Elementwise unary ops (float32 in, float32 out; ``to_float``: int64 in; ``to_int``:
    int64 out; ``neg`` of an int64 stays int64)."""
    if op == "relu":
        return np.maximum(x, 0)
    if op == "gelu":
        return (0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))).astype(np.float32)
    if op == "gelu_tanh":
        return (0.5 * x * (1.0 + np.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x**3)))).astype(
            np.float32
        )
    if op == "silu":
        return x / (1.0 + np.exp(-x))
    if op == "tanh":
        return np.tanh(x)
    if op == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if op == "neg":
        return -x
    if op == "exp":
        return np.exp(x)
    if op == "to_float":  # int64 in
        return x.astype(np.float32)
    if op == "to_int":  # float32 in, truncated toward zero
        return np.trunc(x).astype(np.int64)
    if op == "identity":
        return x
    if op == "erf":
        return erf(x).astype(np.float32)
    if op == "sqrt":
        return np.sqrt(x)
    if op == "abs":
        return np.abs(x)
    if op == "log":
        return np.log(x)
    if op == "rsqrt":
        return (1.0 / np.sqrt(x)).astype(np.float32)
    if op == "relu6":
        return np.clip(x, 0, 6).astype(np.float32)
    if op == "hardsigmoid":
        return (np.clip(x + 3, 0, 6) / 6).astype(np.float32)
    if op == "hardswish":
        return (x * np.clip(x + 3, 0, 6) / 6).astype(np.float32)
    if op in ("floor", "ceil", "trunc", "sign"):
        return getattr(np, op)(x).astype(np.float32)
    if op == "round":
        return np.round(x).astype(np.float32)  # ties to even, as C's nearbyintf
    if op == "softplus":
        return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20)))).astype(np.float32)
    if op in MATH_UNARY:
        with np.errstate(all="ignore"):  # NaN outside a domain, infinities at poles, as C
            return MATH_NUMPY[op](x.astype(np.float64)).astype(np.float32)
    raise ProvenmlError(f"interpreter: unknown unary op {op}")


#: ir.MATH_UNARY in NumPy / SciPy, computed in float64 and rounded (lgamma: log|Gamma(x)|)
MATH_NUMPY = {
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "asinh": np.arcsinh,
    "acosh": np.arccosh,
    "atanh": np.arctanh,
    "log1p": np.log1p,
    "expm1": np.expm1,
    "log2": np.log2,
    "log10": np.log10,
    "exp2": np.exp2,
    "erfc": erfc,
    "lgamma": gammaln,
}


COMPARE = {
    "gt": np.greater,
    "ge": np.greater_equal,
    "lt": np.less,
    "le": np.less_equal,
    "eq": np.equal,
    "ne": np.not_equal,
}


# stop 67: the IR's two-argument libm functions, computed in float64
LIBM_BINARY = {"pow": np.power, "hypot": np.hypot, "copysign": np.copysign}


def binary(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if op == "div":
        return a / b
    if op == "maximum":
        return np.maximum(a, b)
    if op == "minimum":
        return np.minimum(a, b)
    if op in COMPARE:
        return COMPARE[op](a, b).astype(np.float32)
    if op == "atan2":
        return np.arctan2(a, b).astype(np.float32)
    if op in LIBM_BINARY:
        return LIBM_BINARY[op](a.astype(np.float64), b.astype(np.float64)).astype(np.float32)
    if op == "trunc_divide" and a.dtype.kind == "f":
        quotient = a.astype(np.float64) / b.astype(np.float64)
        return np.trunc(quotient.astype(np.float32))
    if op in ("floor_divide", "remainder", "trunc_divide", "fmod"):
        if a.dtype.kind == "i" and b.dtype.kind == "i":
            if np.any(b == 0):  # as the compiled kernels (and PyTorch)
                dividends, divisors = np.broadcast_arrays(a, b)
                zero = dividends[divisors == 0]
                raise run_time_error(PM_ZERO_DIVISION, 0, int(zero.flat[0]), 0, [])
            if op == "trunc_divide":  # C's: toward zero
                return np.sign(a) * np.sign(b) * (np.abs(a) // np.abs(b))
            return getattr(np, op)(a, b)
        return getattr(np, op)(a, b).astype(np.float32)
    if op == "keep_where":
        return np.where(a != 0, b, np.float32(0))
    if op == "keep_where_not":
        return np.where(a != 0, np.float32(0), b)
    raise ProvenmlError(f"interpreter: unknown binary op {op}")


def unpack_dense_weight(w: np.ndarray, n: int, nr: int) -> np.ndarray:
    """Packed [N/nr, K, nr] panels back to [K, N]."""
    if not nr:
        return w
    nb, k, _ = w.shape
    return w.transpose(1, 0, 2).reshape(k, nb * nr)[:, :n]


def unpack_conv_weight(w: np.ndarray, cout: int, groups: int = 1) -> np.ndarray:
    """Packed ``[groups * ceil(Cout_g / nr), KH, KW, Cin_g, nr]`` panels
    (:func:`~provenml.compiler.passes.layout.pack_conv_weight`) back to
    ``[Cout, Cin_g, KH, KW]``, where ``Cout_g = cout / groups``."""
    blocks, kh, kw, cin_g, nr = w.shape
    per_group = w.reshape(groups, blocks // groups, kh, kw, cin_g, nr)
    logical = per_group.transpose(0, 1, 5, 4, 2, 3).reshape(groups, -1, cin_g, kh, kw)
    return logical[:, : cout // groups].reshape(cout, cin_g, kh, kw)


def _conv_nchw(
    x: np.ndarray,
    w: np.ndarray,
    stride: tuple[int, int],
    pad: tuple[int, int],
    depthwise: bool,
    groups: int = 1,
) -> np.ndarray:
    """The IR's ``conv2d`` in NumPy: depthwise, or ``groups`` groups of ``Cin / groups``
    input and ``Cout / groups`` output channels each (1: a full convolution)."""
    _n, _c, h, wd = x.shape
    _cout, _cin_g, kh, kw = w.shape
    sh, sw = stride
    ph, pw = pad
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (wd + 2 * pw - kw) // sw + 1
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][
        :, :, :oh, :ow
    ]
    if depthwise:
        return np.einsum("nchwij,cij->nchw", win, w[:, 0], optimize=True).astype(np.float32)
    if groups > 1:
        per_in, per_out = _c // groups, _cout // groups
        parts = [
            np.einsum(
                "nchwij,ocij->nohw",
                win[:, g * per_in : (g + 1) * per_in],
                w[g * per_out : (g + 1) * per_out],
                optimize=True,
            )
            for g in range(groups)
        ]
        return np.concatenate(parts, axis=1).astype(np.float32)
    return np.einsum("nchwij,ocij->nohw", win, w, optimize=True).astype(np.float32)


def _pool_nchw(
    op: str, x: np.ndarray, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int]
) -> np.ndarray:
    fill = -np.inf if op == "max_pool2d" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=fill)
    oh = (x.shape[2] + 2 * p[0] - k[0]) // s[0] + 1
    ow = (x.shape[3] + 2 * p[1] - k[1]) // s[1] + 1
    win = np.lib.stride_tricks.sliding_window_view(xp, k, axis=(2, 3))[:, :, :: s[0], :: s[1]][
        :, :, :oh, :ow
    ]
    if op == "max_pool2d":
        return win.max(axis=(4, 5)).astype(np.float32)
    return (win.sum(axis=(4, 5)) / (k[0] * k[1])).astype(np.float32)


def to_logical(arr: np.ndarray, v: Value) -> np.ndarray:
    return arr.transpose(0, 3, 1, 2) if v.layout == "NHWC" else arr


def to_physical(arr: np.ndarray, v: Value) -> np.ndarray:
    return np.ascontiguousarray(arr.transpose(0, 2, 3, 1)) if v.layout == "NHWC" else arr


def run_node(n: Node, env: dict[str, np.ndarray], values: dict[str, Value]) -> np.ndarray:
    """Evaluate one node given the physical arrays of its inputs."""
    ins = [env[i] for i in n.inputs]
    out_v = values[n.name]
    op, a = n.op, n.attrs
    if op == "fused":
        local = dict(env)
        for inner in a["body"]:
            local[inner.name] = run_node(inner, local, values)
        return local[n.name]
    dtype = np.int64 if out_v.dtype == "int64" else np.float32  # integer arithmetic: int64
    if op in ELEMENTWISE_UNARY:
        return unary(op, ins[0]).astype(dtype)
    if op == "bounded":  # an index of a dim of size n: [0, n), or [-n, n) counted from the end
        wrap = bool(a.get("wrap_negative"))  # (stop 61)
        index, size = np.broadcast_arrays(ins[0], ins[1])
        bad = (index < (-size if wrap else 0)) | (index >= size)
        if np.any(bad):
            kind = PM_BAD_WRAPPED_INDEX if wrap else PM_BAD_INDEX
            raise run_time_error(kind, 0, int(index[bad].flat[0]), int(size[bad].flat[0]), [])
        return (np.where(index < 0, index + size, index) if wrap else index).astype(dtype)
    if op in ELEMENTWISE_BINARY:
        return binary(op, ins[0], ins[1]).astype(dtype)
    if op == "cumprod":  # float32: multiplied in double, as for cumsum
        acc = np.int64 if ins[0].dtype == np.int64 else np.float64
        return np.cumprod(ins[0], axis=a["dim"], dtype=acc).astype(ins[0].dtype)
    if op == "logcumsumexp":  # float32 in double, as the kernel
        return np.logaddexp.accumulate(ins[0].astype(np.float64), axis=a["dim"]).astype(dtype)
    if op == "cumsum":  # float32: accumulated in double, as PyTorch's CPU kernel
        acc = np.float64 if dtype == np.float32 else np.int64
        return np.cumsum(ins[0], axis=a["dim"], dtype=acc).astype(dtype)
    if op == "linear":
        y = ins[0] @ ins[1].T
        return (y + ins[2] if len(ins) > 2 else y).astype(np.float32)
    if op == "dense":
        w = unpack_dense_weight(ins[1], a["n"], a.get("packed", 0))
        y = ins[0] @ w
        return (y + ins[2] if len(ins) > 2 else y).astype(np.float32)
    if op == "matmul":
        b = np.swapaxes(ins[1], -1, -2) if a.get("trans_b") else ins[1]
        return np.matmul(ins[0], b).astype(np.float32)
    if op == "conv2d":
        x = to_logical(ins[0], values[n.inputs[0]])
        w = ins[1]
        if a.get("wlayout") == "packed":  # -> [Cout, Cin / groups, KH, KW]
            w = unpack_conv_weight(w, out_v.shape[1], a.get("groups", 1))
        elif a.get("wlayout") == "dw":  # [KH, KW, C] -> [C, 1, KH, KW]
            w = w.transpose(2, 0, 1)[:, None]
        y = _conv_nchw(x, w, a["stride"], a["padding"], a["depthwise"], a.get("groups", 1))
        if len(ins) > 2:
            y = y + ins[2].reshape(1, -1, 1, 1)
        return to_physical(y.astype(np.float32), out_v)
    if op == "batch_norm":
        x = to_logical(ins[0], values[n.inputs[0]])
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean, var, w, b = (t.reshape(shape) for t in ins[1:])
        y = (x - mean) / np.sqrt(var + a["eps"]) * w + b
        return to_physical(y.astype(np.float32), out_v)
    if op == "group_norm":  # per (sample, group) over the group's channels and positions
        x = to_logical(ins[0], values[n.inputs[0]])
        groups = a["groups"]
        grouped = x.reshape(x.shape[0], groups, -1).astype(np.float64)
        mu = grouped.mean(-1, keepdims=True)
        var = ((grouped - mu) ** 2).mean(-1, keepdims=True)
        normed = ((grouped - mu) / np.sqrt(var + a["eps"])).reshape(x.shape)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        y = normed * ins[1].reshape(shape) + ins[2].reshape(shape)
        return to_physical(y.astype(np.float32), out_v)
    if op == "layer_norm":
        x = ins[0]
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return ((x - mu) / np.sqrt(var + a["eps"]) * ins[1] + ins[2]).astype(np.float32)
    if op == "softmax":
        x = ins[0]
        top = x.max(axis=a["dim"], keepdims=True)
        dead = np.isneginf(top) if a.get("safe") else np.zeros_like(top, bool)
        with np.errstate(invalid="ignore", divide="ignore"):
            shifted = x - np.where(dead, 0.0, top)  # safe: a row of -inf gives 0 (SDPA's)
            e = np.exp(shifted)
            if a.get("log"):  # log-softmax: x - max - log(sum(exp(x - max)))
                return (shifted - np.log(e.sum(axis=a["dim"], keepdims=True))).astype(np.float32)
            total = e.sum(axis=a["dim"], keepdims=True)
            return np.where(dead, 0.0, e / np.where(dead, 1.0, total)).astype(np.float32)
    if op in ("argmax", "argmin"):  # NumPy's and PyTorch's rule: the first extremum, NaN first
        x = to_logical(ins[0], values[n.inputs[0]])
        fn = np.argmax if op == "argmax" else np.argmin
        return fn(x, axis=a["dim"], keepdims=a["keepdim"]).astype(np.int64).reshape(out_v.shape)
    if op in ("mean", "sum", "amax", "amin"):
        x = to_logical(ins[0], values[n.inputs[0]])
        fn = {"mean": np.mean, "sum": np.sum, "amax": np.max, "amin": np.min}[op]
        y = fn(x, axis=a["dims"], keepdims=a["keepdim"]).astype(dtype)
        return to_physical(y, out_v) if out_v.layout == "NHWC" else y.reshape(out_v.shape)
    if op in ("max_pool2d", "avg_pool2d"):
        x = to_logical(ins[0], values[n.inputs[0]])
        return to_physical(_pool_nchw(op, x, a["kernel"], a["stride"], a["padding"]), out_v)
    if op == "reshape":
        return ins[0].reshape(out_v.physical_shape)
    if op == "permute":
        return np.ascontiguousarray(ins[0].transpose(a["perm"]))
    if op == "slice":
        idx = [slice(None)] * ins[0].ndim
        idx[a["dim"]] = slice(a["start"], a["stop"], a["step"])
        return np.ascontiguousarray(ins[0][tuple(idx)])
    if op == "cat":
        return np.concatenate(ins, axis=a["dim"])
    if op in ("embedding", "scatter"):
        rows = ins[0].shape[0]
        bad = (ins[1] < (-rows if a.get("wrap_negative") else 0)) | (ins[1] >= rows)
        if np.any(bad):  # as the kernels' checked_row
            raise run_time_error(PM_BAD_ROW, 0, int(ins[1][bad].flat[0]), rows, [])
    if op == "embedding":
        return ins[0][ins[1]]
    if op in ("topk", "topk_indices"):  # a stable sort's first k (finite inputs)
        x = ins[0]
        order = np.argsort(-x if a["largest"] else x, axis=a["dim"], kind="stable")
        order = np.take(order, np.arange(int(a["k"])), axis=a["dim"])
        if op == "topk_indices":
            return order.astype(np.int64)
        return np.take_along_axis(x, order, axis=a["dim"])
    if op == "scatter":  # rows[q] of base combined with row q of src, in order of q
        out = ins[0].copy()
        rows = np.where(ins[1] < 0, ins[1] + out.shape[0], ins[1])
        if a["reduce"] == "replace":  # in order: the last update of a row wins
            for q, row in enumerate(rows):
                out[row] = ins[2][q]
            return out
        combine = {"add": np.add, "mul": np.multiply, "amax": np.fmax, "amin": np.fmin}[a["reduce"]]
        if not a["include_self"]:  # each touched row starts from its first update
            first = np.unique(rows, return_index=True)[1]
            out[rows[first]] = ins[2][first]
            rest = np.setdiff1d(np.arange(len(rows)), first)
            combine.at(out, rows[rest], ins[2][rest])
            return out
        combine.at(out, rows, ins[2])
        return out
    if op == "layout_transform":
        src = values[n.inputs[0]]
        return to_physical(to_logical(ins[0], src), out_v)
    raise ProvenmlError(f"interpreter: unknown op {op} at node {n.name}")


def interpret(g: Graph, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run the graph on NumPy inputs (logical layout) and return the outputs (logical layout)."""
    if len(inputs) != len(g.inputs):
        raise ProvenmlError(f"graph takes {len(g.inputs)} inputs, got {len(inputs)}")
    env: dict[str, np.ndarray] = dict(g.consts)
    for name, arr in zip(g.inputs, inputs, strict=True):
        v = g.values[name]
        arr = np.asarray(arr, dtype=np.int64 if v.dtype == "int64" else np.float32)
        if tuple(arr.shape) != v.shape:
            raise ProvenmlError(f"input {name}: expected shape {v.shape}, got {tuple(arr.shape)}")
        env[name] = to_physical(arr, v)
    for n in g.nodes:
        env[n.name] = run_node(n, env, g.values)
    return [to_logical(env[o], g.values[o]) for o in g.outputs]
