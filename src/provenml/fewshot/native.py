"""The first layer of :class:`~provenml.fewshot.graph.EdgeMLP` over every (row, column) pair,
in C: ``z_ij = |h_i - h_j| W + b`` without the ``(..., R, C, d)`` difference tensor.

AdarGCN's and the few-shot GNN's learnt adjacency (Zhang et al., WACV 2021, Sec. 3; Garcia &
Bruna, ICLR 2018, eq. 3) scores each pair of nodes by an MLP of ``|h_i - h_j|``. PyTorch
materialises the difference, its absolute value and, for the backward pass, the sign and the
gradient, each ``d`` floats per pair: with 100 episodes of 100 nodes against 25 support
columns and ``d = 128`` that is 128 MB per tensor, and the layer's cost is memory traffic.
Here one node row at a time builds its ``C x d`` block of absolute differences in a buffer
that stays in cache and multiplies it by ``W`` with the register-blocked products of
:data:`provenml.nn.native.MATMUL_C`; the backward pass rebuilds the block and forms
``dL/dW = A^T G``, ``dL/dA = G W^T`` and, through the sign of each difference,
``dL/dh_i`` and ``dL/dh_j``. Only the ``h``-wide pre-activations ``z`` leave the kernel (a
sixteenth of ``d = 128`` floats per pair with ``h = 16``). The same maths as the PyTorch
layers, another summation order: ``tests/fewshot/test_native.py`` checks outputs and every
gradient against them.

The kernel is built once per machine with the system's C compiler (:mod:`provenml.nn.native`,
cached under ``provenml.core.cache_dir("native")``) and used for float32 CPU tensors (widths
padded to its multiples of 16: :func:`abs_diff_linear`) where
:func:`provenml.nn.native.hand_kernels_enabled` says so; elsewhere (``PROVENML_NATIVE=0``,
no C compiler: one warning) :class:`EdgeMLP` keeps its PyTorch layers.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from provenml.errors import ProvenmlError
from provenml.nn.native import MATMUL_C, hand_kernels_enabled, kernel_library
from provenml.nn.native import data_pointer as _ptr

VECTOR_FLOATS = 16  # the products' columns: d and h must be multiples of 16

SOURCE = (
    MATMUL_C
    + r"""
/* EdgeMLP's first layer over all pairs (provenml.fewshot.native): rows [G, M, R, D],
   cols [G, M, C, D], weight [G, D, H], bias [G, H] -> z [G, M, R, C, H],
   z[g, m, i, j] = |rows[g, m, i] - cols[g, m, j]| @ weight[g] + bias[g]. */
static void absdiff_block(int C, int D, const float* r, const float* cm, float* a) {
  for (int j = 0; j < C; ++j)
    for (int k = 0; k < D; ++k) a[j * D + k] = fabsf(r[k] - cm[j * D + k]);
}

void absdiff_forward(int G, int M, int R, int C, int D, int H, const float* rows,
                     const float* cols, const float* w, const float* b, float* z) {
  float* a = (float*)malloc(sizeof(float) * (size_t)C * D);
  for (int g = 0; g < G; ++g)
    for (int m = 0; m < M; ++m) {
      const size_t gm = (size_t)g * M + m;
      const float* cm = cols + gm * C * D;
      for (int i = 0; i < R; ++i) {
        const float* r = rows + (gm * R + i) * D;
        float* zi = z + (gm * R + i) * (size_t)C * H;
        absdiff_block(C, D, r, cm, a);
        for (int j = 0; j < C; ++j)
          memcpy(zi + (size_t)j * H, b + (size_t)g * H, sizeof(float) * H);
        mm(C, H, D, a, D, w + (size_t)g * D * H, H, zi, H, 1);
      }
    }
  free(a);
}

/* The backward pass: gz [G, M, R, C, H] -> g_rows, g_cols, g_w, g_b (all overwritten). wT is
   weight[g] transposed, [G, H, D]. */
void absdiff_backward(int G, int M, int R, int C, int D, int H, const float* rows,
                      const float* cols, const float* wT, const float* gz, float* g_rows,
                      float* g_cols, float* g_w, float* g_b) {
  float* a = (float*)malloc(sizeof(float) * (size_t)C * D);
  float* ga = (float*)malloc(sizeof(float) * (size_t)C * D);
  memset(g_rows, 0, sizeof(float) * (size_t)G * M * R * D);
  memset(g_cols, 0, sizeof(float) * (size_t)G * M * C * D);
  memset(g_w, 0, sizeof(float) * (size_t)G * D * H);
  memset(g_b, 0, sizeof(float) * (size_t)G * H);
  for (int g = 0; g < G; ++g)
    for (int m = 0; m < M; ++m) {
      const size_t gm = (size_t)g * M + m;
      const float* cm = cols + gm * C * D;
      float* gcm = g_cols + gm * C * D;
      for (int i = 0; i < R; ++i) {
        const float* r = rows + (gm * R + i) * D;
        float* gr = g_rows + (gm * R + i) * D;
        const float* gzi = gz + (gm * R + i) * (size_t)C * H;
        absdiff_block(C, D, r, cm, a);
        mm_at(D, H, C, a, D, gzi, H, g_w + (size_t)g * D * H, H, 1);  /* dW += A^T G */
        for (int j = 0; j < C; ++j)
          for (int h = 0; h < H; ++h) g_b[(size_t)g * H + h] += gzi[(size_t)j * H + h];
        mm(C, D, H, gzi, H, wT + (size_t)g * H * D, D, ga, D, 0);     /* dA = G W^T */
        for (int j = 0; j < C; ++j)
          for (int k = 0; k < D; ++k) {
            const float diff = r[k] - cm[j * D + k];
            const float v = diff > 0.f ? ga[j * D + k] : (diff < 0.f ? -ga[j * D + k] : 0.f);
            gr[k] += v;
            gcm[j * D + k] -= v;
          }
      }
    }
  free(a);
  free(ga);
}
"""
)


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The built kernel, or None (with one warning) where it cannot be built."""
    lib = kernel_library(SOURCE, "provenml.fewshot: the native edge layer")
    if lib is None:
        return None
    ptr, i32 = ctypes.c_void_p, ctypes.c_int
    lib.absdiff_forward.argtypes = [i32] * 6 + [ptr] * 5
    lib.absdiff_forward.restype = None
    lib.absdiff_backward.argtypes = [i32] * 6 + [ptr] * 8
    lib.absdiff_backward.restype = None
    return lib


def native_edge_layer_available(like: torch.Tensor) -> bool:
    """Whether :func:`abs_diff_linear` can run on tensors like ``like``: float32 on the CPU, a
    C compiler, and the hand kernels not switched off
    (:func:`~provenml.nn.native.hand_kernels_enabled`)."""
    return (
        like.dtype == torch.float32
        and like.device.type == "cpu"
        and hand_kernels_enabled()
        and _library() is not None
    )


def abs_diff_linear(
    rows: torch.Tensor, cols: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """:class:`AbsDiffLinear` for any widths: ``d`` and ``h`` are padded with zeros to the
    kernel's multiples of 16 and the padding cut from the result. A zero feature adds
    ``|0 - 0| * 0`` to every output and a zero weight column gives an output that is dropped,
    so the result and the gradients of the real entries are the unpadded layer's (the label
    denoiser's edge MLPs are 8 units wide)."""
    width, out = weight.shape[1], weight.shape[2]
    pad_in, pad_out = -width % VECTOR_FLOATS, -out % VECTOR_FLOATS
    if pad_in:
        rows, cols = F.pad(rows, (0, pad_in)), F.pad(cols, (0, pad_in))
        weight = F.pad(weight, (0, 0, 0, pad_in))
    if pad_out:
        weight, bias = F.pad(weight, (0, pad_out)), F.pad(bias, (0, pad_out))
    z = AbsDiffLinear.apply(rows, cols, weight, bias)
    return z[..., :out] if pad_out else z


class AbsDiffLinear(torch.autograd.Function):
    """``z[g, m, i, j] = |rows[g, m, i] - cols[g, m, j]| @ weight[g] + bias[g]``: the first
    layer of :class:`~provenml.fewshot.graph.EdgeMLP` on every pair, in C (module docstring).

    Inputs: ``rows`` (G, M, R, D), ``cols`` (G, M, C, D), ``weight`` (G, D, H), ``bias``
    (G, H); ``G`` is the number of weight groups (1 for an ordinary layer), ``M`` the batch of
    graphs per group. Output (G, M, R, C, H).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        rows: torch.Tensor,
        cols: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
    ) -> torch.Tensor:
        lib = _library()
        assert lib is not None, "call native_edge_layer_available() first"
        groups, batch, num_rows, width = rows.shape
        num_cols, out = cols.shape[2], weight.shape[2]
        if (
            cols.dim() != 4
            or tuple(cols.shape[:2]) != (groups, batch)
            or cols.shape[3] != width
            or tuple(weight.shape) != (groups, width, out)
            or tuple(bias.shape) != (groups, out)
            or width % VECTOR_FLOATS
            or out % VECTOR_FLOATS
        ):
            raise ProvenmlError(
                "the edge layer needs rows (G, M, R, D), cols (G, M, C, D), weight (G, D, H) "
                f"and bias (G, H), D and H multiples of {VECTOR_FLOATS} (abs_diff_linear "
                f"pads); got {tuple(rows.shape)}, {tuple(cols.shape)}, "
                f"{tuple(weight.shape)} and {tuple(bias.shape)}"
            )
        r, c = rows.detach().contiguous(), cols.detach().contiguous()
        w, b = weight.detach().contiguous(), bias.detach().contiguous()
        z = r.new_empty(groups, batch, num_rows, num_cols, out)
        lib.absdiff_forward(
            groups, batch, num_rows, num_cols, width, out, _ptr(r), _ptr(c), _ptr(w), _ptr(b),
            _ptr(z),
        )  # fmt: skip
        ctx.save_for_backward(r, c, w)
        return z

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        lib = _library()
        assert lib is not None
        r, c, w = ctx.saved_tensors
        groups, batch, num_rows, width = r.shape
        num_cols, out = c.shape[2], w.shape[2]
        w_t = w.transpose(1, 2).contiguous()
        grad_z = grad_z.contiguous()
        g_rows, g_cols = torch.empty_like(r), torch.empty_like(c)
        g_w, g_b = torch.empty_like(w), r.new_empty(groups, out)
        lib.absdiff_backward(
            groups, batch, num_rows, num_cols, width, out, _ptr(r), _ptr(c), _ptr(w_t),
            _ptr(grad_z), _ptr(g_rows), _ptr(g_cols), _ptr(g_w), _ptr(g_b),
        )  # fmt: skip
        return g_rows, g_cols, g_w, g_b


__all__ = ["AbsDiffLinear", "abs_diff_linear", "native_edge_layer_available"]
