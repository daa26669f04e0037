"""What every frontend shares: the unsupported-op error, the integer-operand rule, the plans
of constant padding and of einsum."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from provenml.errors import ProvenmlError


class UnsupportedOp(ProvenmlError):
    """An op the compiler cannot lower; ``op`` and ``node`` name it."""

    def __init__(self, op: str, node: str, why: str = "") -> None:
        self.op = op
        self.node = node
        self.why = why
        extra = f" ({why})" if why else ""
        super().__init__(f"provenml.compiler: unsupported op '{op}' at node '{node}'{extra}")


# integer tensors: ops that may move them, and the operand positions that may be integers
INTEGER_OPS = ("reshape", "permute", "slice", "cat")
# (argmax / argmin of integers compare them as 64-bit integers: CLIP pools at its token ids' max)
INTEGER_OPERANDS = {
    "embedding": [1],
    "to_float": [0],
    "argmax": [0],
    "argmin": [0],
    "scatter": [1],
}
# comparisons take integer operands in any position (a 0 / 1 float32 result): two integers
# compare exactly as 64-bit integers in the kernels; an integer against a float compares in
# float32, as PyTorch promotes the pair
COMPARISONS = ("gt", "ge", "lt", "le", "eq", "ne")
# integer arithmetic (stop 57): 64-bit integers in the kernels when every operand is an
# integer (an int64 result), float32 when a float meets an integer (as PyTorch promotes);
# a running count (cumsum) and a sum (a count); division, remainders and the other
# reductions of integers stay refused
INTEGER_ARITHMETIC = (
    *("add", "sub", "mul", "neg", "cumsum", "cumprod", "sum"),
    # stop 59: in 64-bit integers (floor semantics; a clamp of integer positions)
    *("floor_divide", "remainder", "maximum", "minimum"),
    "bounded",  # stop 60: a checked index (gather's)
    *("trunc_divide", "fmod"),  # stop 60
    # stop 68: |x|, sign, the max / min reductions (ids.amax(), lengths.max()) and where's
    # halves (torch.where(mask, ids, 0)) in 64-bit integers
    *("abs", "sign", "amax", "amin", "keep_where", "keep_where_not"),
    "relu",  # stop 69: (lengths - 1).clamp(min=0), which the frontend lowers as relu
)


def check_integer_operands(op: str, dtypes: list[str], node: str) -> None:
    """Integer tensors may index an embedding (or be its table), be moved, compared,
    converted, added / subtracted / multiplied / negated and summed (in 64-bit integers:
    :data:`INTEGER_ARITHMETIC`): anything else (division, remainders, other reductions) is
    refused rather than silently computed in floats."""
    ints = [k for k, d in enumerate(dtypes) if d == "int64"]
    moves_integers = op in INTEGER_OPS and len(ints) == len(dtypes)
    if ints and not moves_integers and op not in COMPARISONS + INTEGER_ARITHMETIC:
        if ints == INTEGER_OPERANDS.get(op, []) or (op == "embedding" and ints == [0, 1]):
            return  # an index; or (stop 57) rows of an integer table, gathered as integers
        raise UnsupportedOp(
            op,
            node,
            "integer tensor operand: integer tensors may only index an embedding, be "
            "reshaped, permuted, sliced, compared, added, subtracted, multiplied, floor-divided, "
            "taken modulo, clamped, summed (also cumulatively), reduced by max / min, selected "
            "by where, or converted with .float() (eager "
            "PyTorch raises or keeps "
            "integers here, the compiler would compute in float32)",
        )


def constant_pad_steps(
    shape: Sequence[int], dim: int, before: int, after: int
) -> tuple[tuple[int, int] | None, list[tuple[int, ...] | None]]:
    """How both frontends pad ``dim`` of a tensor of ``shape`` by ``before`` / ``after``
    (negative values crop): the crop first, ``(start, stop)`` of a slice or ``None``; then the
    pieces to concatenate along ``dim``, in order: ``None`` for the (cropped) tensor, else the
    shape of a constant block of the padding value."""
    shape = list(shape)
    crop = None
    if before < 0 or after < 0:
        crop = (max(0, -before), shape[dim] - max(0, -after))
        shape[dim] = crop[1] - crop[0]
    pieces: list[tuple[int, ...] | None] = []
    for size in (max(0, before), None, max(0, after)):
        if size is None:
            pieces.append(None)
        elif size:
            pieces.append((*shape[:dim], size, *shape[dim + 1 :]))
    return crop, pieces


class ConvTransposeSteps(NamedTuple):
    """How both frontends lower a transposed convolution (see :func:`conv_transpose_steps`)."""

    split: tuple[int, ...]  # the input reshaped with a 1 after each spatial dim
    onehot: np.ndarray | None  # the broadcast factor that inserts the zeros (None: stride 1)
    inserted: tuple[int, ...]  # the input with zeros inserted, ``(N, C, L_i * s_i ..)``
    pads: list[tuple[int, int]]  # per spatial dim, (before, after) pads of that (< 0 crops)
    weight: np.ndarray  # the convolution's kernel: flipped in space, channel dims swapped


def conv_transpose_steps(
    shape: Sequence[int],
    weight: np.ndarray,
    strides: Sequence[int],
    pads_begin: Sequence[int],
    out_sizes: Sequence[int],
    groups: int = 1,
    dilation: Sequence[int] | None = None,
) -> ConvTransposeSteps:
    """A transposed convolution as the convolution it is the gradient of: the input ``shape``
    ``(N, C, L ..)`` with ``stride - 1`` zeros inserted after each element (a broadcast
    multiply of the ``split`` reshape by ``onehot``, then a reshape to ``inserted``), padded by
    ``dilation * (kernel - 1) - pad_begin`` before and whatever reaches ``out_sizes`` after
    (the output padding, ONNX's asymmetric pads or ``output_shape``; a negative pad crops),
    then a stride-1 convolution with the same ``groups`` and ``dilation`` and ``weight``
    ``(C, Co / groups, k ..)`` flipped in space with its two channel dims swapped within each
    group, ``(Co, C / groups, k ..)``. The inserted zeros add exact zeros."""
    n, c, *sizes = (int(v) for v in shape)
    dilation = [1] * len(sizes) if dilation is None else [int(d) for d in dilation]
    kernel = [d * (int(k) - 1) + 1 for k, d in zip(weight.shape[2:], dilation, strict=True)]
    split, block = [n, c], [1, 1]
    for size, s in zip(sizes, strides, strict=True):
        split += [size, 1]
        block += [1, int(s)]
    onehot = None
    if any(int(s) > 1 for s in strides):
        onehot = np.zeros(block, np.float32)
        onehot[(0,) * len(block)] = 1.0
    inserted = (n, c, *[v * int(s) for v, s in zip(sizes, strides, strict=True)])
    pads = [
        (k - 1 - int(p), int(o) + int(p) - v * int(s))
        for v, s, k, p, o in zip(sizes, strides, kernel, pads_begin, out_sizes, strict=True)
    ]
    flipped = np.flip(weight, axis=tuple(range(2, weight.ndim)))
    cin, per_group_out, *taps = flipped.shape  # (C, Co / g, k ..) -> (g, Co / g, C / g, k ..)
    grouped = flipped.reshape(groups, cin // groups, per_group_out, *taps).swapaxes(1, 2)
    flipped = grouped.reshape(groups * per_group_out, cin // groups, *taps)
    return ConvTransposeSteps(
        tuple(split), onehot, inserted, pads, np.ascontiguousarray(flipped, dtype=np.float32)
    )


class ConvOps(NamedTuple):
    """A frontend's builders that :func:`lower_conv` composes."""

    emit: Emit
    shape_of: Callable[[str], Sequence[int]]
    const: Callable[[np.ndarray], str]
    # x zero-padded by (before, after) per spatial dim
    pad: Callable[[str, Sequence[tuple[int, int]]], str]
    # the IR's conv2d (attributes from :func:`conv_attrs`): x, w, bias, stride, padding, groups
    conv: Callable[[str, str, str | None, Sequence[int], Sequence[int], int], str]


def element_offsets(
    shape: Sequence[int], index_shape: Sequence[int], axis: int
) -> tuple[np.ndarray, int]:
    """Where ``gather`` along ``axis`` (``torch.gather``, ONNX GatherElements) reads in a
    tensor of ``shape`` flattened: output element ``j`` reads flat position
    ``base[j] + index[j] * stride``; returns ``(base, stride)``, ``base`` (of
    ``index_shape``) the part of ``j``'s coordinates off ``axis`` by the row-major strides."""
    strides = np.cumprod([1, *list(shape)[::-1]])[:-1][::-1].astype(np.int64)
    coords = np.indices(tuple(index_shape), dtype=np.int64)
    base = np.zeros(tuple(index_shape), np.int64)
    for d in range(len(index_shape)):
        if d != axis:
            base += coords[d] * strides[d]
    return base, int(strides[axis])


def conv_attrs(
    channels: int, out_channels: int, stride: Sequence[int], padding: Sequence[int], groups: int
) -> dict[str, Any]:
    """The IR ``conv2d``'s attributes for a convolution of ``groups`` groups: ``depthwise``
    when every channel is its own group with one kernel (``groups = C = Co``), else a
    ``groups`` attribute when above 1 (a grouped kernel: group ``g``'s ``Co / groups`` output
    channels read its ``C / groups`` input channels)."""
    depthwise = groups > 1 and groups == channels == out_channels
    attrs: dict[str, Any] = {
        "stride": tuple(stride),
        "padding": tuple(padding),
        "depthwise": depthwise,
    }
    if groups > 1 and not depthwise:
        attrs["groups"] = groups
    return attrs


def avg_pool_rescale(
    size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    count_include_pad: bool,
    divisor: int | None,
    outputs: Sequence[int] | None = None,
) -> np.ndarray | None:
    """The factor that turns the IR's ``avg_pool2d`` (every window's sum over ``kH kW``, padding
    counted) into PyTorch's / ONNX's other divisors, shaped ``(1, 1, Ho, Wo)`` to multiply the
    result by: ``kH kW / divisor`` with ``divisor_override``, else ``kH kW / n`` where ``n`` is
    the number of the window's elements inside the unpadded input (``count_include_pad=False``:
    fewer at the borders) or inside the padded one (``True``: fewer only in a ``ceil_mode``
    window that runs past the padding, whose ``outputs`` sizes are given; stop 73, PyTorch's
    ``hend = min(hstart + k, H + p)``); ``None`` when nothing changes."""
    window = float(np.prod(kernel))
    if divisor is not None:
        return np.full((1, 1, 1, 1), window / divisor, np.float32)
    counts = []
    for d, (n, k, s, p) in enumerate(zip(size, kernel, stride, padding, strict=True)):
        out = conv_output_size(n, k, s, p, 1) if outputs is None else int(outputs[d])
        start = np.arange(out) * s - p
        end = np.minimum(start + k, n + p)
        if count_include_pad:
            counts.append(end - start)
        else:
            counts.append(np.minimum(end, n) - np.maximum(start, 0))
    inside = np.outer(counts[0], counts[1]).astype(np.float64)
    if np.all(inside == window):
        return None
    return (window / inside).astype(np.float32)[None, None]


def ceil_pool_sizes(
    sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int]
) -> tuple[list[int], list[int]]:
    """A ``ceil_mode`` pool's output sizes, and how far each spatial dim must be extended past
    its end (beyond the padding) for the floor-mode pool to give them (stop 73): ``ceil((n +
    2p - k) / s) + 1`` windows, less a last one that would start in the end padding (PyTorch's
    and ONNX's rule)."""
    outputs = []
    for n, k, s, p in zip(sizes, kernel, stride, padding, strict=True):
        out = -(-(n + 2 * p - k) // s) + 1
        outputs.append(out - 1 if (out - 1) * s >= n + p else out)
    return outputs, ceil_extension(outputs, sizes, kernel, stride, padding)


def ceil_extension(
    outputs: Sequence[int],
    sizes: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
) -> list[int]:
    """How far each spatial dim of ``sizes`` must be extended past its end (beyond the
    padding) for a floor-mode pool to give ``outputs`` windows (a ``ceil_mode`` pool's partial
    last window, stop 73); the extension is filled with :func:`pool_fill`."""
    return [
        max(0, (o - 1) * s + k - (n + 2 * p))
        for o, n, k, s, p in zip(outputs, sizes, kernel, stride, padding, strict=True)
    ]


def pool_fill(op: str) -> float:
    """What a pool's extension past the input's end holds: -inf for a max (never chosen),
    zero for an average (nothing added; the divisor is :func:`avg_pool_rescale`'s)."""
    return float("-inf") if op == "max_pool2d" else 0.0


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """One spatial dim of a convolution's output (PyTorch's and ONNX's formula)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def lower_conv(
    x: str,
    w: str,
    bias: str | None,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    ops: ConvOps,
) -> str:
    """A convolution (1-D or 2-D: ``x`` is ``(N, C, L ..)``, ``w`` ``(Co, C / groups, k ..)``)
    of any ``groups`` and ``dilation`` from the IR's ``conv2d``, which has groups (depthwise
    among them) and no dilation. Every product is one the convolution makes, in another order:

    * **dilation** (TensorFlow's atrous convolution by space-to-batch): padded to a multiple
      of ``d`` per dim, the input's ``d`` phases (the elements ``r, r + d, r + 2d ..``) become
      batch entries (a reshape, a permute, a reshape); each is convolved with the undilated
      kernel, since ``y[r + d j] = sum_k w[k] x[r + d (j + k)]``; the phases are interleaved
      back and cropped to the stride-1 output. A stride above 1 then keeps every stride-th
      output (a strided slice: ``stride`` times the products per dim that a strided kernel
      would make).
    * **groups = C, Co = m C** (a depthwise multiplier): each input channel repeated ``m``
      times (a broadcast multiply by ones), then a depthwise convolution; output channel
      ``o`` reads input channel ``o // m``, as PyTorch and ONNX define it.
    * **other groups** (ResNeXt, ShuffleNet): the IR's grouped ``conv2d`` (one kernel; its
      register tiles never straddle two groups).
    """
    n, c, *sizes = (int(v) for v in ops.shape_of(x))
    co, ci, *_ = (int(v) for v in ops.shape_of(w))
    spatial = len(sizes)
    stride, padding, dilation = (tuple(int(v) for v in t) for t in (stride, padding, dilation))
    if any(d > 1 for d in dilation):
        return _dilated_conv(x, w, bias, stride, padding, dilation, groups, ops)
    if groups == c and ci == 1 and co > c:  # depthwise with a multiplier
        m = co // c
        x = ops.emit("reshape", [x], {"shape": (n, c, 1, *sizes)}, (n, c, 1, *sizes))
        ones = ops.const(np.ones((1, 1, m) + (1,) * spatial, np.float32))
        x = ops.emit("mul", [x, ones], {}, (n, c, m, *sizes))
        x = ops.emit("reshape", [x], {"shape": (n, co, *sizes)}, (n, co, *sizes))
        groups = co
    return ops.conv(x, w, bias, stride, padding, groups)


def _dilated_conv(
    x: str,
    w: str,
    bias: str | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
    ops: ConvOps,
) -> str:
    """:func:`lower_conv`'s dilated case (space-to-batch, then the undilated convolution)."""
    n, c, *sizes = (int(v) for v in ops.shape_of(x))
    co, _, *kernel = (int(v) for v in ops.shape_of(w))
    spatial = len(sizes)
    full = [  # the stride-1 output per dim
        conv_output_size(v, k, 1, p, d)
        for v, k, p, d in zip(sizes, kernel, padding, dilation, strict=True)
    ]
    if any(o < 1 for o in full):
        raise ValueError(f"a kernel {kernel} dilated by {dilation} is larger than the input")
    padded = [v + 2 * p for v, p in zip(sizes, padding, strict=True)]
    blocks = [-(-v // d) for v, d in zip(padded, dilation, strict=True)]  # ceil
    x = ops.pad(
        x,
        [(p, p + b * d - v) for p, b, d, v in zip(padding, blocks, dilation, padded, strict=True)],
    )
    split = [n, c]
    for b, d in zip(blocks, dilation, strict=True):
        split += [b, d]
    x = ops.emit("reshape", [x], {"shape": tuple(split)}, split)
    phase_axes = [3 + 2 * i for i in range(spatial)]
    block_axes = [2 + 2 * i for i in range(spatial)]
    perm = (*phase_axes, 0, 1, *block_axes)
    phases = int(np.prod(dilation))
    x = ops.emit("permute", [x], {"perm": perm}, [split[a] for a in perm])
    batched = (phases * n, c, *blocks)
    x = ops.emit("reshape", [x], {"shape": batched}, batched)
    y = lower_conv(x, w, bias, (1,) * spatial, (0,) * spatial, (1,) * spatial, groups, ops)
    per_phase = [b - k + 1 for b, k in zip(blocks, kernel, strict=True)]
    unbatched = (*dilation, n, co, *per_phase)
    y = ops.emit("reshape", [y], {"shape": unbatched}, unbatched)
    back = [spatial, spatial + 1]  # N, Co, then per dim (block, phase)
    for i in range(spatial):
        back += [spatial + 2 + i, i]
    y = ops.emit("permute", [y], {"perm": tuple(back)}, [unbatched[a] for a in back])
    interleaved = [n, co, *(o * d for o, d in zip(per_phase, dilation, strict=True))]
    y = ops.emit("reshape", [y], {"shape": tuple(interleaved)}, interleaved)
    shape = list(interleaved)
    for i, (size, step) in enumerate(zip(full, stride, strict=True)):
        if shape[2 + i] == size and step == 1:
            continue
        shape[2 + i] = -(-size // step)
        attrs = {"dim": 2 + i, "start": 0, "stop": size, "step": step}
        y = ops.emit("slice", [y], attrs, list(shape))
    return y


def broadcast_ones(shape: Sequence[int], target: Sequence[int]) -> np.ndarray | None:
    """Expanding a tensor of ``shape`` to ``target`` (NumPy broadcasting, leading dims added)
    as a broadcast multiply by ones that are 1 wide except along the dims that grow: exact
    (``x * 1``) and as small as the growth. ``None`` when nothing grows; ``ValueError`` when
    the shapes do not broadcast."""
    out = tuple(int(v) for v in np.broadcast_shapes(tuple(shape), tuple(target)))
    if out != tuple(int(v) for v in target):
        raise ValueError(f"{tuple(shape)} does not expand to {tuple(target)}")
    if out == tuple(shape):
        return None
    padded = (1,) * (len(out) - len(shape)) + tuple(int(v) for v in shape)
    return np.ones([o if p == 1 else 1 for o, p in zip(out, padded, strict=True)], np.float32)


class TileSteps(NamedTuple):
    """How both frontends tile a tensor (see :func:`tile_steps`)."""

    split: tuple[int, ...]  # the input with a 1 before each of its dims
    ones: np.ndarray  # the broadcast factor: ``reps[i]`` before dim i, 1 elsewhere
    tiled: tuple[int, ...]  # the result, ``shape[i] * reps[i]``


def tile_steps(shape: Sequence[int], reps: Sequence[int]) -> TileSteps:
    """``Tensor.repeat`` / ``torch.tile`` / ONNX Tile: ``reps`` copies along each dim (shorter
    of the two padded with leading 1s, as ``torch.tile``) as one broadcast multiply by ones
    between two reshapes: ``(1, d0, 1, d1 ..) * (r0, 1, r1, 1 ..)`` is ``(r0, d0, r1, d1 ..)``,
    whose copy ``k`` of dim ``i`` is the block ``k * d_i ..``, as tiling places it. Exact."""
    rank = max(len(shape), len(reps))
    dims = (1,) * (rank - len(shape)) + tuple(int(v) for v in shape)
    reps = (1,) * (rank - len(reps)) + tuple(int(r) for r in reps)
    if any(r < 0 for r in reps):
        raise ValueError(f"negative repeats {reps}")
    split = tuple(v for d in dims for v in (1, d))
    ones = np.ones([v for r in reps for v in (r, 1)], np.float32)
    return TileSteps(split, ones, tuple(d * r for d, r in zip(dims, reps, strict=True)))


#: non-constant pad modes (PyTorch's names; ONNX calls replicate "edge" and circular "wrap")
PAD_MODES = ("reflect", "replicate", "circular")


def mode_pad_pieces(size: int, before: int, after: int, mode: str) -> list[tuple[int, int]]:
    """The pieces that pad a dim of ``size`` by ``before`` / ``after`` in ``mode``, as
    ``(start, stop)`` slices of the unpadded dim to concatenate in order (the dim itself is
    ``(0, size)``): ``reflect`` mirrors without repeating the edge (``[x2 x1 | x0 x1 .. ]``, one
    width-1 slice per position), ``replicate`` repeats the edge, ``circular`` wraps around.
    Exact: every element is a copy of an input element."""
    if before < 0 or after < 0:
        raise ValueError("negative pads")
    limit = size - 1 if mode == "reflect" else size
    if mode not in PAD_MODES or (mode != "replicate" and max(before, after) > limit):
        raise ValueError(f"mode {mode!r} with pads ({before}, {after}) on a dim of {size}")
    if mode == "reflect":
        head = [(i, i + 1) for i in range(before, 0, -1)]
        tail = [(i, i + 1) for i in range(size - 2, size - 2 - after, -1)]
    elif mode == "replicate":
        head, tail = [(0, 1)] * before, [(size - 1, size)] * after
    else:
        head = [(size - before, size)] if before else []
        tail = [(0, after)] if after else []
    return [*head, (0, size), *tail]


#: ONNX Resize's coordinate modes that linear resizing supports
LINEAR_RESIZE_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")


def _source_coordinates(in_len: int, out_len: int, scale: float, mode: str) -> np.ndarray:
    """ONNX Resize's coordinate transform: where output ``i`` reads the input (float32)."""
    i = np.arange(out_len, dtype=np.float32)
    if mode == "align_corners":
        return i * np.float32((in_len - 1) / (out_len - 1)) if out_len > 1 else np.zeros_like(i)
    if mode == "asymmetric":
        return i / np.float32(scale)
    x = (i + np.float32(0.5)) / np.float32(scale) - np.float32(0.5)
    if mode == "pytorch_half_pixel" and out_len == 1:
        return np.zeros_like(i)
    return x


def cubic_resize_matrix(
    in_len: int, out_len: int, scale: float, mode: str, a: float = -0.75, exclude: bool = False
) -> np.ndarray:
    """The ``[out_len, in_len]`` weights of ONNX Resize in ``cubic`` mode along one dim: output
    ``i`` mixes the four inputs around ``x`` (:func:`_source_coordinates`) with Keys' cubic
    convolution kernel of coefficient ``a`` (``cubic_coeff_a``; PyTorch's bicubic is -0.75),
    indices past either end clamped to the edge, or, with ``exclude`` (``exclude_outside``),
    given weight 0 and the rest renormalised."""
    if mode not in LINEAR_RESIZE_MODES:
        raise ValueError(f"coordinate mode {mode!r}")
    x = _source_coordinates(in_len, out_len, scale, mode).astype(np.float64)
    base = np.floor(x)
    t = x - base

    def kernel(d: np.ndarray) -> np.ndarray:
        d = np.abs(d)
        near = ((a + 2) * d - (a + 3)) * d * d + 1
        far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
        return np.where(d <= 1, near, np.where(d < 2, far, 0.0))

    matrix = np.zeros((out_len, in_len), np.float64)
    rows = np.arange(out_len)
    taps = [(k, kernel(t - k)) for k in (-1, 0, 1, 2)]
    if exclude:
        inside = [(base + k >= 0) & (base + k <= in_len - 1) for k, _ in taps]
        total = sum(np.where(ok, w, 0.0) for ok, (_, w) in zip(inside, taps, strict=True))
        taps = [(k, np.where(ok, w, 0.0) / total) for ok, (k, w) in zip(inside, taps, strict=True)]
    for k, w in taps:
        index = np.clip(base + k, 0, in_len - 1).astype(np.int64)
        np.add.at(matrix, (rows, index), w)
    return matrix.astype(np.float32)


def linear_resize_matrix(in_len: int, out_len: int, scale: float, mode: str) -> np.ndarray:
    """The ``[out_len, in_len]`` weights of ONNX Resize in ``linear`` mode along one dim:
    output ``i`` reads the input at ``x = (i + 0.5) / scale - 0.5`` (``half_pixel``; and
    ``pytorch_half_pixel``, which reads 0 for a length-1 output), ``i (in_len - 1) /
    (out_len - 1)`` (``align_corners``) or ``i / scale`` (``asymmetric``), clamped to
    ``[0, in_len - 1]``, and mixes its two neighbours ``floor(x)`` and ``floor(x) + 1`` in
    proportion. ``scale`` is the given scale, or ``out_len / in_len`` when sizes were given.
    Computed in float32, as ONNX Runtime computes it."""
    if mode not in LINEAR_RESIZE_MODES:
        raise ValueError(f"coordinate mode {mode!r}")
    x = _source_coordinates(in_len, out_len, scale, mode)
    x = np.clip(x, 0, in_len - 1).astype(np.float32)
    low = np.floor(x).astype(np.int64)
    high = np.minimum(low + 1, in_len - 1)
    frac = x - low.astype(np.float32)
    matrix = np.zeros((out_len, in_len), np.float32)
    rows = np.arange(out_len)
    np.add.at(matrix, (rows, low), 1 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix


# emit(op, inputs, attrs, shape) -> the new IR value's name (a frontend's node builder)
Emit = Callable[[str, list[str], dict[str, Any], Sequence[int]], str]


def _expand_ellipsis(equation: str, shapes: list[tuple[int, ...]], where: str) -> str:
    """``equation`` with each ``...`` written out as letters the equation does not use, as
    many as the operand's unnamed dims (right-aligned across operands, as in NumPy). The
    dims an ellipsis stands for must have equal sizes in every operand that has them: a size-1
    dim broadcast against a larger one is refused."""
    lhs, _, result = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        return equation  # the caller names the operand-count mismatch
    free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in equation]
    counts = []
    for term, shape in zip(terms, shapes, strict=True):
        named = len(term.replace("...", ""))
        counts.append(max(0, len(shape) - named) if "..." in term else 0)
    width = max(counts, default=0)
    if width > len(free):
        raise UnsupportedOp("einsum", where, f"{equation!r}: too many dims under an ellipsis")
    letters = free[:width]
    sizes: dict[str, int] = {}
    expanded = []
    for term, shape, count in zip(terms, shapes, counts, strict=True):
        if "..." not in term:
            expanded.append(term)
            continue
        mine = letters[width - count :]
        start = term.index("...")
        for letter, size in zip(mine, shape[start : start + count], strict=True):
            if sizes.setdefault(letter, int(size)) != int(size):
                raise UnsupportedOp(
                    "einsum", where, f"{equation!r}: an ellipsis whose dims broadcast"
                )
        expanded.append(term.replace("...", "".join(mine)))
    return ",".join(expanded) + "->" + result.replace("...", "".join(letters))


def _einsum_diagonal(
    term: str, x: str, shape_of: Callable[[str], Sequence[int]], emit: Emit
) -> tuple[str, str]:
    """An einsum operand whose ``term`` repeats an index, reduced to its diagonal: for each
    repeated pair, the second dim is moved next to the first (a permute), the two merged (a
    reshape to ``n * n``) and every ``(n + 1)``-th element kept (a strided slice), so
    ``x[.., i, i, ..]``. Exact copies. Returns the term without repeats and its value."""
    shape = [int(v) for v in shape_of(x)]
    while len(set(term)) != len(term):
        letter = next(c for c in term if term.count(c) > 1)
        first = term.index(letter)
        second = term.index(letter, first + 1)
        n = shape[first]
        if shape[second] != n:
            raise ValueError(f"index {letter!r} has sizes {n} and {shape[second]}")
        order = [d for d in range(len(term)) if d != second]
        order.insert(first + 1, second)
        if order != list(range(len(term))):
            shape = [shape[d] for d in order]
            x = emit("permute", [x], {"perm": tuple(order)}, shape)
        term = "".join(term[d] for d in order if d != second)
        shape = [*shape[:first], n * n, *shape[first + 2 :]]
        x = emit("reshape", [x], {"shape": tuple(shape)}, shape)
        shape[first] = n
        x = emit("slice", [x], {"dim": first, "start": 0, "stop": n * n, "step": n + 1}, shape)
    return term, x


def lower_einsum(
    equation: str,
    xs: Sequence[str],
    shape_of: Callable[[str], Sequence[int]],
    emit: Emit,
    where: str,
) -> str:
    """Einsum with one or two operands and an explicit output (``"bhqd,bhkd->bhqk"``) as IR
    ops: indices only one operand has and the output lacks are summed first; a pair becomes
    one batched matmul, ``[batch, left, contracted] @ [batch, contracted, right]``, between
    permutes and reshapes; one operand is a permute (and a sum). An index repeated within an
    operand (``"ii->i"``, ``"bii,bi->b"``) takes the diagonal first
    (:func:`_einsum_diagonal`). An ellipsis is written out as letters. Implicit outputs,
    an index repeated in the output and an ellipsis whose dims broadcast are refused by name.
    Returns the result, shaped as the output's indices say."""
    equation = equation.replace(" ", "")
    if "..." in equation and "->" in equation:
        equation = _expand_ellipsis(equation, [tuple(shape_of(x)) for x in xs], where)
    lhs, arrow, result = equation.partition("->")
    terms = lhs.split(",")
    why = ""
    if not arrow or "." in equation:
        why = "an implicit output or an ellipsis without one"
    elif len(terms) != len(xs) or len(terms) not in (1, 2):
        why = "one or two operands"
    elif len(set(result)) != len(result):
        why = "an index repeated in the output"
    elif not set(result) <= set("".join(terms)):
        why = "an output index that no operand has"
    if why:
        raise UnsupportedOp("einsum", where, f"{equation!r}: {why}")
    xs = list(xs)
    for k, term in enumerate(terms):
        try:
            terms[k], xs[k] = _einsum_diagonal(term, xs[k], shape_of, emit)
        except ValueError as exc:
            raise UnsupportedOp("einsum", where, f"{equation!r}: {exc}") from exc
    sizes: dict[str, int] = {}
    for term, x in zip(terms, xs, strict=True):
        for letter, size in zip(term, shape_of(x), strict=True):
            sizes[letter] = int(size)

    def shape(letters: str) -> list[int]:
        return [sizes[c] for c in letters]

    def reduce_only(term: str, x: str, keep: set[str]) -> tuple[str, str]:
        drop = [i for i, letter in enumerate(term) if letter not in keep]
        if not drop:
            return term, x
        kept = "".join(letter for letter in term if letter in keep)
        return kept, emit("sum", [x], {"dims": tuple(drop), "keepdim": False}, shape(kept))

    def arrange(term: str, x: str, order: str) -> str:
        if term == order:
            return x
        perm = tuple(term.index(c) for c in order)
        return emit("permute", [x], {"perm": perm}, shape(order))

    def flat(letters: str) -> int:
        return int(np.prod(shape(letters), dtype=np.int64))

    if len(terms) == 1:
        term, x = reduce_only(terms[0], xs[0], set(result))
        return arrange(term, x, result)
    (ta, tb), (xa, xb) = terms, xs
    ta, xa = reduce_only(ta, xa, set(tb) | set(result))
    tb, xb = reduce_only(tb, xb, set(ta) | set(result))
    batch = "".join(c for c in ta if c in tb and c in result)
    contracted = "".join(c for c in ta if c in tb and c not in result)
    left = "".join(c for c in ta if c not in tb)
    right = "".join(c for c in tb if c not in ta)
    nb, m, k, n = flat(batch), flat(left), flat(contracted), flat(right)
    a = emit("reshape", [arrange(ta, xa, batch + left + contracted)], {}, [nb, m, k])
    c = emit("reshape", [arrange(tb, xb, batch + contracted + right)], {}, [nb, k, n])
    product = emit("matmul", [a, c], {}, [nb, m, n])
    grid = batch + left + right
    return arrange(grid, emit("reshape", [product], {}, shape(grid)), result)
