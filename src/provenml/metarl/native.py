"""The belief recurrences as a native kernel (issue 22): DynaMITE-RL's gated session update
and VariBAD's GRU over a whole sequence, forward and backward through time, in C.

The maths is :class:`~provenml.metarl.belief._SessionAwareRecurrence`'s (DynaMITE-RL,
Liang et al. 2024, Sec. 4; the GRU of Cho et al. 2014 as ``torch.nn.GRU`` computes it): per
step ``j``, ``h_start = tanh(W_p h_{j-1} + b_p)`` (prior conditioning, else zeros),
``h_raw = GRU(e_j, h_{j-1})``, ``h_new = GRU(e_j, h_start)``, ``c = sg[sigmoid(w_d . h_raw +
b_d)]`` and ``h_j = (1 - c) h_raw + c h_new``; VariBAD's is ``h_j = GRU(e_j, h_{j-1})``. In
PyTorch each step is some 40 small operations (forward and backward), each a few microseconds
of dispatch on 64 x 64 tensors; here a step is two register-blocked matrix products and one
pass over the gates. The weight gradients stay large PyTorch products over all steps.

The kernel is compiled once per machine with the system's C compiler
(:mod:`provenml.nn.native`, cached under ``provenml.core.cache_dir("native")``) and used for
float32 CPU tensors whose hidden size is a multiple of 16. Elsewhere, with
``PROVENML_NATIVE=0``, or where no C compiler runs (one warning), the encoder keeps the
PyTorch recurrence; ``tests/metarl/test_recurrence.py`` checks that the two agree.
"""

from __future__ import annotations

import ctypes
import functools
import os
import warnings
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from provenml.core.cache import cache_dir
from provenml.errors import ProvenmlError
from provenml.nn.native import MATMUL_C, build_library

VECTOR_FLOATS = 16  # the kernel's register tile is 16 floats wide: hidden % 16 == 0

SOURCE = MATMUL_C + r"""
/* The belief recurrences of provenml.metarl (belief.py, _SessionAwareRecurrence) as plain
   loops: the gated session update of DynaMITE-RL (Liang et al. 2024, Sec. 4) over T steps,
   forward and backward through time, and VariBAD's GRU (aware = 0: one branch, no gate). */
static inline float sigm(float x) { return 1.f / (1.f + expf(-x)); }

/* Forward over T steps (see belief.py). B = 2 branches when aware, else 1. */
void sar_forward(int T, int N, int H, int aware, int prior, const float* gi, const float* h0,
                 const float* whhT, const float* bhh, const float* wterm, float bterm,
                 const float* wpT, const float* bp, float* hs, float* logits, float* raw,
                 float* xin, float* rr, float* zz, float* nn, float* ghn, float* gates) {
  const int B = aware ? 2 : 1, H3 = 3 * H, BN = B * N;
  float* gh = (float*)malloc(sizeof(float) * (size_t)BN * H3);
  float* hout = (float*)malloc(sizeof(float) * (size_t)BN * H);
  for (int j = 0; j < T; ++j) {
    const float* a = j == 0 ? h0 : hs + (size_t)(j - 1) * N * H;
    float* X = xin + (size_t)j * BN * H;
    memcpy(X, a, sizeof(float) * (size_t)N * H);
    if (aware) {
      float* S = X + (size_t)N * H;
      if (prior) {
        for (int i = 0; i < N; ++i) memcpy(S + i * H, bp, sizeof(float) * H);
        mm(N, H, H, a, H, wpT, H, S, H, 1);
        _Pragma("omp simd simdlen(16)") for (int q = 0; q < N * H; ++q) S[q] = tanhf(S[q]);
      } else {
        memset(S, 0, sizeof(float) * (size_t)N * H);
      }
    }
    for (int i = 0; i < BN; ++i) memcpy(gh + (size_t)i * H3, bhh, sizeof(float) * H3);
    mm(BN, H3, H, X, H, whhT, H3, gh, H3, 1);
    const float* g = gi + (size_t)j * N * H3;
    float* R = rr + (size_t)j * BN * H;
    float* Z = zz + (size_t)j * BN * H;
    float* Nn = nn + (size_t)j * BN * H;
    float* G = ghn + (size_t)j * BN * H;
    for (int b = 0; b < B; ++b)
      for (int i = 0; i < N; ++i) {
        const float* restrict gr = g + (size_t)i * H3;
        const float* restrict hh = gh + ((size_t)b * N + i) * H3;
        const float* restrict x = X + ((size_t)b * N + i) * H;
        const size_t o = ((size_t)b * N + i) * H;
        float* restrict Ro = R + o; float* restrict Zo = Z + o; float* restrict No = Nn + o;
        float* restrict Go = G + o; float* restrict Ho = hout + o;
#pragma omp simd simdlen(16)
        for (int c = 0; c < H; ++c) {
          const float r = sigm(gr[c] + hh[c]);
          const float z = sigm(gr[H + c] + hh[H + c]);
          const float n = tanhf(gr[2 * H + c] + r * hh[2 * H + c]);
          Ro[c] = r;
          Zo[c] = z;
          No[c] = n;
          Go[c] = hh[2 * H + c];
          Ho[c] = n + z * (x[c] - n);
        }
      }
    float* h = hs + (size_t)j * N * H;
    if (!aware) {
      memcpy(h, hout, sizeof(float) * (size_t)N * H);
      continue;
    }
    memcpy(raw + (size_t)j * N * H, hout, sizeof(float) * (size_t)N * H);
    for (int i = 0; i < N; ++i) {
      const float* h0r = hout + (size_t)i * H;
      const float* h1r = hout + ((size_t)N + i) * H;
      float s = 0.f;
#pragma omp simd reduction(+:s)
      for (int c = 0; c < H; ++c) s += h0r[c] * wterm[c];
      const float logit = s + bterm;
      const float gate = sigm(logit);
      logits[(size_t)j * N + i] = logit;
      gates[(size_t)j * N + i] = gate;
      for (int c = 0; c < H; ++c) h[i * H + c] = (1.f - gate) * h0r[c] + gate * h1r[c];
    }
  }
  free(gh);
  free(hout);
}

void sar_backward(int T, int N, int H, int aware, int prior, int head_into_gru,
                  const float* grad_h, const float* grad_logit, const float* grad_start,
                  const float* whh, const float* wterm, const float* wp, const float* xin,
                  const float* rr, const float* zz, const float* nn, const float* ghn,
                  const float* gates, float* ggh, float* ggi, float* pre, float* carry) {
  const int B = aware ? 2 : 1, H3 = 3 * H, BN = B * N;
  float* go = (float*)malloc(sizeof(float) * (size_t)BN * H);
  float* gx = (float*)malloc(sizeof(float) * (size_t)BN * H);
  memset(carry, 0, sizeof(float) * (size_t)N * H);
  for (int j = T - 1; j >= 0; --j) {
    const float* gh_ = grad_h + (size_t)j * N * H;
    const size_t so = (size_t)j * BN * H;
    if (aware) {
      for (int i = 0; i < N; ++i) {
        const float gate = gates[(size_t)j * N + i];
        const float gl = head_into_gru ? grad_logit[(size_t)j * N + i] : 0.f;
        for (int c = 0; c < H; ++c) {
          const float total = gh_[i * H + c] + carry[i * H + c];
          go[i * H + c] = (1.f - gate) * total + gl * wterm[c];
          go[(N + i) * H + c] = gate * total;
        }
      }
    } else {
      for (int q = 0; q < N * H; ++q) go[q] = gh_[q] + carry[q];
    }
    float* G = ggh + (size_t)j * BN * H3;
    float* GI = ggi + (size_t)j * N * H3;
    for (int b = 0; b < B; ++b)
      for (int i = 0; i < N; ++i) {
        const size_t o = ((size_t)b * N + i) * H;
        const float* restrict r = rr + so + o;
        const float* restrict z = zz + so + o;
        const float* restrict n = nn + so + o;
        const float* restrict hn = ghn + so + o;
        const float* restrict x = xin + so + o;
        const float* restrict g = go + o;
        float* restrict gg = G + ((size_t)b * N + i) * H3;
        float* restrict gi = GI + (size_t)i * H3;
#pragma omp simd
        for (int c = 0; c < H; ++c) {
          const float gn = g[c] * (1.f - z[c]) * (1.f - n[c] * n[c]);
          const float gr = gn * hn[c] * r[c] * (1.f - r[c]);
          const float gz = g[c] * (x[c] - n[c]) * z[c] * (1.f - z[c]);
          gg[c] = gr;
          gg[H + c] = gz;
          gg[2 * H + c] = gn * r[c];
          if (b == 0) {
            gi[c] = gr;
            gi[H + c] = gz;
            gi[2 * H + c] = gn;
          } else {
            gi[c] += gr;
            gi[H + c] += gz;
            gi[2 * H + c] += gn;
          }
        }
        for (int c = 0; c < H; ++c) gx[o + c] = g[c] * z[c];
      }
    mm(BN, H, H3, G, H3, whh, H, gx, H, 1);
    memcpy(carry, gx, sizeof(float) * (size_t)N * H);
    if (aware && prior) {
      float* P = pre + (size_t)j * N * H;
      const float* start = xin + so + (size_t)N * H;
      const float* gs = grad_start + (size_t)j * N * H;
      for (int q = 0; q < N * H; ++q)
        P[q] = (gx[(size_t)N * H + q] + gs[q]) * (1.f - start[q] * start[q]);
      mm(N, H, H, P, H, wp, H, carry, H, 1);
    }
  }
  free(go);
  free(gx);
}
"""


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The built kernel, or None (with one warning) where it cannot be built."""
    try:
        lib = build_library(SOURCE, cache_dir("native"))
    except ProvenmlError as err:
        warnings.warn(
            f"provenml.metarl: the native belief recurrence is not available ({err}); "
            "using the PyTorch one (same results, slower)",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    ptr, i32, f32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
    lib.sar_forward.argtypes = [i32] * 5 + [ptr] * 5 + [f32] + [ptr] * 11
    lib.sar_forward.restype = None
    lib.sar_backward.argtypes = [i32] * 6 + [ptr] * 16
    lib.sar_backward.restype = None
    return lib


def native_recurrence_available(like: torch.Tensor, hidden: int) -> bool:
    """Whether :class:`NativeRecurrence` can run a recurrence of ``hidden`` units on tensors
    like ``like`` (float32 on the CPU, ``hidden`` a multiple of 16, a C compiler, and not
    switched off with ``PROVENML_NATIVE=0``)."""
    return (
        os.environ.get("PROVENML_NATIVE", "1") != "0"
        and like.dtype == torch.float32
        and like.device.type == "cpu"
        and hidden % VECTOR_FLOATS == 0
        and _library() is not None
    )


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


class NativeRecurrence(torch.autograd.Function):
    """The recurrence of :class:`~provenml.metarl.belief._SessionAwareRecurrence` (same
    inputs and outputs) in C; with ``w_term=None`` VariBAD's plain GRU, whose only output
    that matters is ``h``. Inputs: ``gi`` (T, N, 3H) input projections, ``h0`` (N, H), the
    GRU's ``w_hh`` (3H, H) / ``b_hh``, the termination head's weight (1, H) and bias (1,) or
    None, the prior net's weight (H, H) and bias or None, ``head_into_gru``. Outputs:
    ``h`` (T, N, H), ``logits`` (T, N), ``h_start`` (T, N, H)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        gi: torch.Tensor,
        h0: torch.Tensor,
        w_hh: torch.Tensor,
        b_hh: torch.Tensor,
        w_term: torch.Tensor | None,
        b_term: torch.Tensor | None,
        w_prior: torch.Tensor | None,
        b_prior: torch.Tensor | None,
        head_into_gru: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lib = _library()
        assert lib is not None, "call native_recurrence_available() first"
        steps, num_envs, three_h = gi.shape
        hidden = three_h // 3
        aware, prior = w_term is not None, w_prior is not None
        branches = 2 if aware else 1
        gi, h0 = gi.contiguous(), h0.contiguous()
        hs = gi.new_empty(steps, num_envs, hidden)
        logits = gi.new_zeros(steps, num_envs)
        raw = gi.new_empty(steps, num_envs, hidden) if aware else gi.new_empty(0)
        gates = gi.new_zeros(steps, num_envs)
        # per step and branch: the branch's input state and the GRU's r, z, n and W_hn h + b_hn
        xin, r, z, n, gh_n = (gi.new_empty(steps, branches, num_envs, hidden) for _ in range(5))
        w_hh_t = w_hh.t().contiguous()
        w_prior_t = w_prior.t().contiguous() if w_prior is not None else None
        lib.sar_forward(
            steps,
            num_envs,
            hidden,
            int(aware),
            int(prior),
            _ptr(gi),
            _ptr(h0),
            _ptr(w_hh_t),
            _ptr(b_hh.contiguous()),
            _ptr(w_term.contiguous()) if w_term is not None else None,
            float(b_term.item()) if b_term is not None else 0.0,
            _ptr(w_prior_t),
            _ptr(b_prior.contiguous()) if b_prior is not None else None,
            _ptr(hs),
            _ptr(logits),
            _ptr(raw),
            *map(_ptr, (xin, r, z, n, gh_n, gates)),
        )
        ctx.save_for_backward(w_hh, w_term, w_prior, xin, r, z, n, gh_n, gates, raw)
        ctx.flags = (aware, prior, head_into_gru)
        start = xin[:, 1] if aware else gi.new_empty(0)
        return hs, logits, start

    @staticmethod
    @once_differentiable
    def backward(  # type: ignore[override]
        ctx: Any, grad_h: torch.Tensor, grad_logit: torch.Tensor, grad_start: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        lib = _library()
        assert lib is not None
        w_hh, w_term, w_prior, xin, r, z, n, gh_n, gates, raw = ctx.saved_tensors
        aware, prior, head_into_gru = ctx.flags
        steps, branches, num_envs, hidden = xin.shape
        grad_gh = xin.new_empty(steps, branches, num_envs, 3 * hidden)
        grad_gi = xin.new_empty(steps, num_envs, 3 * hidden)
        grad_prior_pre = xin.new_empty(steps, num_envs, hidden) if prior else None
        carry = xin.new_empty(num_envs, hidden)
        grad_h = grad_h.contiguous()
        grad_logit = grad_logit.contiguous()
        grad_start = grad_start.contiguous()
        lib.sar_backward(
            steps,
            num_envs,
            hidden,
            int(aware),
            int(prior),
            int(head_into_gru),
            _ptr(grad_h),
            _ptr(grad_logit),
            _ptr(grad_start),
            _ptr(w_hh.contiguous()),
            _ptr(w_term.contiguous()) if aware else None,
            _ptr(w_prior.contiguous()) if prior else None,
            *map(_ptr, (xin, r, z, n, gh_n, gates)),
            _ptr(grad_gh),
            _ptr(grad_gi),
            _ptr(grad_prior_pre),
            _ptr(carry),
        )
        # the weight gradients: a few large products over all steps and branches
        flat_gh = grad_gh.reshape(-1, 3 * hidden)
        grad_w_hh = flat_gh.t() @ xin.reshape(-1, hidden)
        grad_b_hh = flat_gh.sum(0)
        grad_w_term = grad_b_term = grad_w_prior = grad_b_prior = None
        if aware:
            grad_w_term = (grad_logit[..., None] * raw).sum((0, 1))[None]
            grad_b_term = grad_logit.sum().reshape(1)
        if grad_prior_pre is not None:
            flat_pre = grad_prior_pre.reshape(-1, hidden)
            grad_w_prior = flat_pre.t() @ xin[:, 0].reshape(-1, hidden)
            grad_b_prior = flat_pre.sum(0)
        return (
            grad_gi,
            carry,
            grad_w_hh,
            grad_b_hh,
            grad_w_term,
            grad_b_term,
            grad_w_prior,
            grad_b_prior,
            None,
        )
