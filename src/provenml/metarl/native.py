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

The same file holds the ELBO's reward decoder over every (latent, transition) pair of an
episode (:class:`NativePairDecoder`, VariBAD eq. 8's ``p(r_j | m, s_{j+1})`` on the reacher),
one block of an episode's transitions at a time, forward and backward.

The kernel is compiled once per machine with the system's C compiler
(:mod:`provenml.nn.native`, cached under ``provenml.core.cache_dir("native")``) and used for
float32 CPU tensors whose hidden size is a multiple of 16, where
:func:`provenml.nn.native.hand_kernels_enabled` says so (AVX-512 and AVX2 CPUs, or
``PROVENML_NATIVE=1``). Elsewhere, with ``PROVENML_NATIVE=0``, or where no C compiler runs
(one warning), the encoder keeps the PyTorch recurrence; ``tests/metarl/test_recurrence.py``
checks that the two agree.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any, NamedTuple

import torch
from torch.autograd.function import once_differentiable

from provenml.errors import ProvenmlError
from provenml.nn.native import MATMUL_C, hand_kernels_enabled, kernel_library
from provenml.nn.native import data_pointer as _ptr

VECTOR_FLOATS = 16  # the kernel's register tile is 16 floats wide: hidden % 16 == 0

SOURCE = (
    MATMUL_C
    + r"""
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
                  const float* gates, float* gwhhT, float* gbhh, float* ggi, float* gwpT,
                  float* gbp, float* carry) {
  const int B = aware ? 2 : 1, H3 = 3 * H, BN = B * N;
  float* go = (float*)malloc(sizeof(float) * (size_t)BN * H);
  float* gx = (float*)malloc(sizeof(float) * (size_t)BN * H);
  float* G = (float*)malloc(sizeof(float) * (size_t)BN * H3);
  float* P = (float*)malloc(sizeof(float) * (size_t)N * H);
  memset(carry, 0, sizeof(float) * (size_t)N * H);
  memset(gwhhT, 0, sizeof(float) * (size_t)H * H3);
  memset(gbhh, 0, sizeof(float) * H3);
  if (aware && prior) {
    memset(gwpT, 0, sizeof(float) * (size_t)H * H);
    memset(gbp, 0, sizeof(float) * H);
  }
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
    /* the weight gradients, summed over the steps as they pass: W_hh^T += x^T G */
    mm_at(H, H3, BN, xin + so, H, G, H3, gwhhT, H3, 1);
    for (int i = 0; i < BN; ++i)
#pragma omp simd
      for (int c = 0; c < H3; ++c) gbhh[c] += G[(size_t)i * H3 + c];
    memcpy(carry, gx, sizeof(float) * (size_t)N * H);
    if (aware && prior) {
      const float* start = xin + so + (size_t)N * H;
      const float* gs = grad_start + (size_t)j * N * H;
      for (int q = 0; q < N * H; ++q)
        P[q] = (gx[(size_t)N * H + q] + gs[q]) * (1.f - start[q] * start[q]);
      mm(N, H, H, P, H, wp, H, carry, H, 1);
      mm_at(H, H, N, xin + so, H, P, H, gwpT, H, 1); /* W_p^T += h_{j-1}^T P */
      for (int i = 0; i < N; ++i)
#pragma omp simd
        for (int c = 0; c < H; ++c) gbp[c] += P[(size_t)i * H + c];
    }
  }
  free(go);
  free(gx);
  free(G);
  free(P);
}

/* The encoder's input side over a whole batch of sequences, time-major: for the transition
   of env n at step t (row t * N + n), e = relu(W_e x + b_e) and gi = W_ih e + b_ih, read
   from x stored (N, T, D) and written (T, N, .), 32 rows at a time. */
#define PT 32

/* Rows r0 .. r0 + R - 1 of the time-major order (row t * N + n) of x stored (N, T, D). */
static void gather_time_major(int N, int T, int D, const float* x, int r0, int R, float* xb) {
  for (int r = 0; r < R; ++r) {
    const int t = (r0 + r) / N, n = (r0 + r) % N;
    memcpy(xb + r * D, x + ((size_t)n * T + t) * D, sizeof(float) * D);
  }
}

void proj_forward(int N, int T, int D, int E, int G3, const float* x, const float* weT,
                  const float* be, const float* wiT, const float* bi, float* e, float* gi) {
  float xb[PT * 64];
  const int rows = N * T;
  for (int r0 = 0; r0 < rows; r0 += PT) {
    const int R = rows - r0 < PT ? rows - r0 : PT;
    gather_time_major(N, T, D, x, r0, R, xb);
    float* er = e + (size_t)r0 * E;
    float* gr = gi + (size_t)r0 * G3;
    for (int r = 0; r < R; ++r) memcpy(er + r * E, be, sizeof(float) * E);
    mm(R, E, D, xb, D, weT, E, er, E, 1);
    for (int q = 0; q < R * E; ++q) er[q] = er[q] > 0.f ? er[q] : 0.f;
    for (int r = 0; r < R; ++r) memcpy(gr + r * G3, bi, sizeof(float) * G3);
    mm(R, G3, E, er, E, wiT, G3, gr, G3, 1);
  }
}

/* Its backward from dL/dgi (T, N, G3): the four weight gradients (the W's transposed). */
void proj_backward(int N, int T, int D, int E, int G3, const float* x, const float* e,
                   const float* wi, const float* ggi, float* gweT, float* gbe, float* gwiT,
                   float* gbi) {
  float xb[PT * 64];
  float* ge = (float*)malloc(sizeof(float) * PT * E);
  memset(gweT, 0, sizeof(float) * (size_t)D * E);
  memset(gbe, 0, sizeof(float) * E);
  memset(gwiT, 0, sizeof(float) * (size_t)E * G3);
  memset(gbi, 0, sizeof(float) * G3);
  const int rows = N * T;
  for (int r0 = 0; r0 < rows; r0 += PT) {
    const int R = rows - r0 < PT ? rows - r0 : PT;
    gather_time_major(N, T, D, x, r0, R, xb);
    const float* er = e + (size_t)r0 * E;
    const float* gr = ggi + (size_t)r0 * G3;
    mm(R, E, G3, gr, G3, wi, E, ge, E, 0);
    mm_at(E, G3, R, er, E, gr, G3, gwiT, G3, 1);
    for (int r = 0; r < R; ++r)
#pragma omp simd
      for (int c = 0; c < G3; ++c) gbi[c] += gr[r * G3 + c];
    for (int q = 0; q < R * E; ++q) ge[q] = er[q] > 0.f ? ge[q] : 0.f;
    mm_at(D, E, R, xb, D, ge, E, gweT, E, 1);
    for (int r = 0; r < R; ++r)
#pragma omp simd
      for (int c = 0; c < E; ++c) gbe[c] += ge[r * E + c];
  }
  free(ge);
}

/* The reward decoder of the ELBO (belief.py, RewardDecoder) over every pair of a sampled
   latent (n, t) and a transition (n, j) of the same episode: with the first layer split into
   its latent part a[n, t] and its transition part b[n, j] (bias included),
   x1 = relu(a + b), x2 = relu(W2 x1 + b2), out[n, t, j] = w3 . x2 + b3 (VariBAD eq. 8's
   p(r_j | m, s_{j+1})). One (n, t) block of the T transitions at a time, so the (N K T x D)
   activations PyTorch materialises (and reads back in the backward) never leave the cache;
   the backward recomputes x1 and x2 per block. D (the decoder's width) a multiple of 16. */
static void pair_layers(int T, int D, const float* ar, const float* bn, const float* w2T,
                        const float* b2, float* x1, float* x2) {
  for (int j = 0; j < T; ++j) {
    const float* restrict bj = bn + (size_t)j * D;
    float* restrict xj = x1 + (size_t)j * D;
#pragma omp simd
    for (int c = 0; c < D; ++c) {
      const float v = ar[c] + bj[c];
      xj[c] = v > 0.f ? v : 0.f;
    }
    memcpy(x2 + (size_t)j * D, b2, sizeof(float) * D);
  }
  mm(T, D, D, x1, D, w2T, D, x2, D, 1);
}

void pair_decoder_forward(int N, int K, int T, int D, const float* a, const float* b,
                          const float* w2T, const float* b2, const float* w3, float b3,
                          float* out) {
  float* x1 = (float*)malloc(sizeof(float) * (size_t)T * D);
  float* x2 = (float*)malloc(sizeof(float) * (size_t)T * D);
  for (int n = 0; n < N; ++n)
    for (int t = 0; t < K; ++t) {
      pair_layers(T, D, a + ((size_t)n * K + t) * D, b + (size_t)n * T * D, w2T, b2, x1, x2);
      float* o = out + ((size_t)n * K + t) * T;
      for (int j = 0; j < T; ++j) {
        const float* restrict xj = x2 + (size_t)j * D;
        float s = 0.f;
#pragma omp simd reduction(+:s)
        for (int c = 0; c < D; ++c) s += (xj[c] > 0.f ? xj[c] : 0.f) * w3[c];
        o[j] = s + b3;
      }
    }
  free(x1);
  free(x2);
}

/* Its backward from dL/dout (N, K, T): dL/da (N, K, D), dL/db (N, T, D), and the second and
   third layers' gradients (W2 transposed, as the forward reads it); w2 is W2 (D x D). */
void pair_decoder_backward(int N, int K, int T, int D, const float* a, const float* b,
                           const float* w2T, const float* w2, const float* b2, const float* w3,
                           const float* gout, float* ga, float* gb, float* gw2T, float* gb2,
                           float* gw3, float* gb3) {
  float* x1 = (float*)malloc(sizeof(float) * (size_t)T * D);
  float* x2 = (float*)malloc(sizeof(float) * (size_t)T * D);
  float* d2 = (float*)malloc(sizeof(float) * (size_t)T * D);
  float* d1 = (float*)malloc(sizeof(float) * (size_t)T * D);
  memset(gb, 0, sizeof(float) * (size_t)N * T * D);
  memset(gw2T, 0, sizeof(float) * (size_t)D * D);
  memset(gb2, 0, sizeof(float) * D);
  memset(gw3, 0, sizeof(float) * D);
  float bias3 = 0.f;
  for (int n = 0; n < N; ++n)
    for (int t = 0; t < K; ++t) {
      const size_t nt = (size_t)n * K + t;
      pair_layers(T, D, a + nt * D, b + (size_t)n * T * D, w2T, b2, x1, x2);
      const float* g = gout + nt * T;
      float* restrict gw3r = gw3;
      float* restrict gb2r = gb2;
      const float* restrict w3r = w3;
      for (int j = 0; j < T; ++j) {
        const float* restrict xj = x2 + (size_t)j * D;
        float* restrict dj = d2 + (size_t)j * D;
        const float gj = g[j];
        bias3 += gj;
#pragma omp simd
        for (int c = 0; c < D; ++c) {
          const int on = xj[c] > 0.f;
          const float dv = on ? gj * w3r[c] : 0.f;
          gw3r[c] += on ? gj * xj[c] : 0.f;
          dj[c] = dv;
          gb2r[c] += dv;
        }
      }
      mm_at(D, D, T, x1, D, d2, D, gw2T, D, 1);
      mm(T, D, D, d2, D, w2, D, d1, D, 0);
      float* restrict gar = ga + nt * D;
      memset(gar, 0, sizeof(float) * D);
      float* gbn = gb + (size_t)n * T * D;
      for (int j = 0; j < T; ++j) {
        const float* restrict xj = x1 + (size_t)j * D;
        const float* restrict dj = d1 + (size_t)j * D;
        float* restrict gbj = gbn + (size_t)j * D;
#pragma omp simd
        for (int c = 0; c < D; ++c) {
          const float v = xj[c] > 0.f ? dj[c] : 0.f;
          gar[c] += v;
          gbj[c] += v;
        }
      }
    }
  *gb3 = bias3;
  free(x1);
  free(x2);
  free(d2);
  free(d1);
}
"""
)


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The built kernel, or None (with one warning) where it cannot be built."""
    lib = kernel_library(SOURCE, "provenml.metarl: the native belief recurrence")
    if lib is None:
        return None
    ptr, i32, f32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
    lib.sar_forward.argtypes = [i32] * 5 + [ptr] * 5 + [f32] + [ptr] * 11
    lib.sar_forward.restype = None
    lib.sar_backward.argtypes = [i32] * 6 + [ptr] * 18
    lib.sar_backward.restype = None
    lib.proj_forward.argtypes = [i32] * 5 + [ptr] * 7
    lib.proj_forward.restype = None
    lib.proj_backward.argtypes = [i32] * 5 + [ptr] * 8
    lib.proj_backward.restype = None
    lib.pair_decoder_forward.argtypes = [i32] * 4 + [ptr] * 5 + [f32, ptr]
    lib.pair_decoder_forward.restype = None
    lib.pair_decoder_backward.argtypes = [i32] * 4 + [ptr] * 13
    lib.pair_decoder_backward.restype = None
    return lib


def native_recurrence_available(like: torch.Tensor, hidden: int) -> bool:
    """Whether :class:`NativeRecurrence` can run a recurrence of ``hidden`` units on tensors
    like ``like`` (float32 on the CPU, ``hidden`` a multiple of 16, a C compiler, and not
    switched off: :func:`~provenml.nn.native.hand_kernels_enabled`)."""
    return (
        hand_kernels_enabled()
        and like.dtype == torch.float32
        and like.device.type == "cpu"
        and hidden % VECTOR_FLOATS == 0
        and _library() is not None
    )


class _RecurrenceWeights(NamedTuple):
    """The recurrence's weights as ``sar_forward`` reads them, copied (``W_hh`` and ``W_p``
    transposed; the termination bias as a number): one copy per sequence in
    :class:`NativeRecurrence`, one per rollout in :class:`RecurrenceStepper`."""

    w_hh_t: torch.Tensor
    b_hh: torch.Tensor
    w_term: torch.Tensor | None
    b_term: float
    w_prior_t: torch.Tensor | None
    b_prior: torch.Tensor | None

    @classmethod
    def copy(
        cls,
        w_hh: torch.Tensor,
        b_hh: torch.Tensor,
        w_term: torch.Tensor | None,
        b_term: torch.Tensor | None,
        w_prior: torch.Tensor | None,
        b_prior: torch.Tensor | None,
    ) -> _RecurrenceWeights:
        with torch.no_grad():
            return cls(
                w_hh.detach().t().contiguous(),
                b_hh.detach().clone(),
                None if w_term is None else w_term.detach().clone(),
                0.0 if b_term is None else float(b_term.item()),
                None if w_prior is None else w_prior.detach().t().contiguous(),
                None if b_prior is None else b_prior.detach().clone(),
            )

    def forward(
        self,
        gi: torch.Tensor,
        h0: torch.Tensor,
        hs: torch.Tensor,
        logits: torch.Tensor,
        raw: torch.Tensor,
        saved: tuple[torch.Tensor, ...],
    ) -> None:
        """``sar_forward`` over ``gi`` (T, N, 3H) from ``h0`` (N, H) into ``hs`` (T, N, H),
        ``logits`` and ``raw``; ``saved`` = (branch inputs, r, z, n, W_hn h + b_hn, gates)."""
        lib = _library()
        assert lib is not None, "call native_recurrence_available() first"
        hidden = self.w_hh_t.shape[0]
        if gi.dim() != 3 or gi.shape[2] != 3 * hidden or tuple(h0.shape) != (gi.shape[1], hidden):
            raise ProvenmlError(
                f"the recurrence needs gi (T, N, 3H), h0 (N, H) and w_hh (3H, H); got "
                f"{tuple(gi.shape)}, {tuple(h0.shape)} and {tuple(self.w_hh_t.t().shape)}"
            )
        # every buffer the C call reads is held in a name (a temporary's memory could be
        # freed before the call reads it)
        gi, h0 = gi.contiguous(), h0.contiguous()
        lib.sar_forward(
            gi.shape[0], gi.shape[1], hidden, int(self.w_term is not None),
            int(self.w_prior_t is not None), _ptr(gi), _ptr(h0), _ptr(self.w_hh_t),
            _ptr(self.b_hh), _ptr(self.w_term), self.b_term, _ptr(self.w_prior_t),
            _ptr(self.b_prior), _ptr(hs), _ptr(logits), _ptr(raw), *map(_ptr, saved),
        )  # fmt: skip


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
        if gi.dim() != 3 or w_hh.dim() != 2 or w_hh.shape[0] != 3 * w_hh.shape[1]:
            raise ProvenmlError(
                f"the recurrence needs gi (T, N, 3H), h0 (N, H) and w_hh (3H, H); got "
                f"{tuple(gi.shape)}, {tuple(h0.shape)} and {tuple(w_hh.shape)}"
            )
        weights = _RecurrenceWeights.copy(w_hh, b_hh, w_term, b_term, w_prior, b_prior)
        steps, num_envs, hidden = gi.shape[0], gi.shape[1], w_hh.shape[1]
        aware, prior = w_term is not None, w_prior is not None
        branches = 2 if aware else 1
        hs = gi.new_empty(steps, num_envs, hidden)
        logits = gi.new_zeros(steps, num_envs)
        raw = gi.new_empty(steps, num_envs, hidden) if aware else gi.new_empty(0)
        gates = gi.new_zeros(steps, num_envs)
        # per step and branch: the branch's input state and the GRU's r, z, n and W_hn h + b_hn
        xin, r, z, n, gh_n = (gi.new_empty(steps, branches, num_envs, hidden) for _ in range(5))
        weights.forward(gi, h0, hs, logits, raw, (xin, r, z, n, gh_n, gates))
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
        steps, _, num_envs, hidden = xin.shape
        grad_w_hh_t = xin.new_empty(hidden, 3 * hidden)
        grad_b_hh = xin.new_empty(3 * hidden)
        grad_gi = xin.new_empty(steps, num_envs, 3 * hidden)
        grad_w_prior_t = xin.new_empty(hidden, hidden) if prior else None
        grad_b_prior = xin.new_empty(hidden) if prior else None
        carry = xin.new_empty(num_envs, hidden)
        grad_h = grad_h.contiguous()
        grad_logit = grad_logit.contiguous()
        grad_start = grad_start.contiguous()
        w_hh_c = w_hh.contiguous()
        w_term_c = w_term.contiguous() if aware else None
        w_prior_c = w_prior.contiguous() if prior else None
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
            _ptr(w_hh_c),
            _ptr(w_term_c),
            _ptr(w_prior_c),
            *map(_ptr, (xin, r, z, n, gh_n, gates)),
            _ptr(grad_w_hh_t),
            _ptr(grad_b_hh),
            _ptr(grad_gi),
            _ptr(grad_w_prior_t),
            _ptr(grad_b_prior),
            _ptr(carry),
        )
        # the kernel sums the weight gradients over the steps (transposed, as it reads them)
        grad_w_hh = grad_w_hh_t.t()
        grad_w_prior = None if grad_w_prior_t is None else grad_w_prior_t.t()
        grad_w_term = grad_b_term = None
        if aware:
            grad_w_term = (grad_logit[..., None] * raw).sum((0, 1))[None]
            grad_b_term = grad_logit.sum().reshape(1)
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


class RecurrenceStepper:
    """One step of :class:`NativeRecurrence`'s forward (the same C function with ``T = 1``,
    so the same numbers) for acting, without autograd: the kernel's copies of the weights
    (``W_hh`` and ``W_p`` transposed) and its scratch buffers are made once, when the
    stepper is built, not on every step. It acts with the weights *as of its construction*
    (one rollout's); build a new one after the model trains.

    ``stepper(gi, h)``: ``gi`` (N, 3H) the step's input projections, ``h`` (N, H) the
    previous state; returns the new state ``h_j`` (N, H), a fresh tensor.
    """

    def __init__(
        self,
        w_hh: torch.Tensor,
        b_hh: torch.Tensor,
        w_term: torch.Tensor | None,
        b_term: torch.Tensor | None,
        w_prior: torch.Tensor | None,
        b_prior: torch.Tensor | None,
    ) -> None:
        self.hidden = w_hh.shape[1]
        self.aware = w_term is not None
        self._weights = _RecurrenceWeights.copy(w_hh, b_hh, w_term, b_term, w_prior, b_prior)
        self._scratch: dict[int, list[torch.Tensor]] = {}

    def __call__(self, gi: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        num_envs, hidden = h.shape[0], self.hidden
        scratch = self._scratch.get(num_envs)
        if scratch is None:
            branches = 2 if self.aware else 1
            # logits, raw, then the branch inputs, the GRU's r, z, n, W_hn h + b_hn and gates
            scratch = [h.new_zeros(1, num_envs), h.new_empty(1, num_envs, hidden)]
            scratch += [h.new_empty(1, branches, num_envs, hidden) for _ in range(5)]
            scratch += [h.new_zeros(1, num_envs)]
            self._scratch[num_envs] = scratch
        logits, raw, *saved = scratch
        out = h.new_empty(1, num_envs, hidden)
        self._weights.forward(gi[None], h, out, logits, raw, tuple(saved))
        return out[0]


class NativeInputProjection(torch.autograd.Function):
    """The encoder's input side, ``gi = W_ih relu(W_e x + b_e) + b_ih``, for every
    transition of a batch of sequences at once, in C: reads ``x`` (N, T, D) and returns
    ``gi`` time-major (T, N, 3H), the layout the recurrence reads, so neither pass copies
    the large projection through a transpose. Gradients flow to the four weights, not to
    ``x`` (the encoder's inputs are data). Needs ``D <= 64`` and both widths multiples of 16.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        w_embed: torch.Tensor,
        b_embed: torch.Tensor,
        w_ih: torch.Tensor,
        b_ih: torch.Tensor,
    ) -> torch.Tensor:
        lib = _library()
        assert lib is not None
        if x.dim() != 3 or x.shape[-1] != w_embed.shape[1] or w_ih.shape[1] != w_embed.shape[0]:
            raise ProvenmlError(
                f"the input projection needs x (N, T, D), w_embed (E, D) and w_ih (3H, E); "
                f"got {tuple(x.shape)}, {tuple(w_embed.shape)} and {tuple(w_ih.shape)}"
            )
        if x.shape[-1] > 64 or w_embed.shape[0] % VECTOR_FLOATS or w_ih.shape[0] % VECTOR_FLOATS:
            raise ProvenmlError(
                "the native input projection needs D <= 64 and E, 3H multiples of 16; got "
                f"D = {x.shape[-1]}, E = {w_embed.shape[0]}, 3H = {w_ih.shape[0]}"
            )
        num_envs, steps, in_dim = x.shape
        embed, gates = w_embed.shape[0], w_ih.shape[0]
        x = x.detach().contiguous()
        e = x.new_empty(steps, num_envs, embed)
        gi = x.new_empty(steps, num_envs, gates)
        # held in names: a temporary's memory is freed before the C call would read it
        w_embed_t, w_ih_t = w_embed.detach().t().contiguous(), w_ih.detach().t().contiguous()
        b_embed, b_ih = b_embed.detach().contiguous(), b_ih.detach().contiguous()
        lib.proj_forward(
            num_envs, steps, in_dim, embed, gates, _ptr(x), _ptr(w_embed_t), _ptr(b_embed),
            _ptr(w_ih_t), _ptr(b_ih), _ptr(e), _ptr(gi),
        )  # fmt: skip
        ctx.save_for_backward(x, e, w_ih)
        return gi

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_gi: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        lib = _library()
        assert lib is not None
        x, e, w_ih = ctx.saved_tensors
        num_envs, steps, in_dim = x.shape
        embed, gates = e.shape[-1], w_ih.shape[0]
        grad_w_embed_t = x.new_empty(in_dim, embed)
        grad_b_embed = x.new_empty(embed)
        grad_w_ih_t = x.new_empty(embed, gates)
        grad_b_ih = x.new_empty(gates)
        w_ih, grad_gi = w_ih.detach().contiguous(), grad_gi.contiguous()
        lib.proj_backward(
            num_envs, steps, in_dim, embed, gates, _ptr(x), _ptr(e), _ptr(w_ih), _ptr(grad_gi),
            _ptr(grad_w_embed_t), _ptr(grad_b_embed), _ptr(grad_w_ih_t), _ptr(grad_b_ih),
        )  # fmt: skip
        return None, grad_w_embed_t.t(), grad_b_embed, grad_w_ih_t.t(), grad_b_ih


def native_pair_decoder_available(like: torch.Tensor, width: int) -> bool:
    """Whether :class:`NativePairDecoder` can run a decoder ``width`` units wide on tensors
    like ``like`` (float32 on the CPU, ``width`` a multiple of 16, a C compiler, and not
    switched off): the conditions of :func:`native_recurrence_available`."""
    return native_recurrence_available(like, width)


class NativePairDecoder(torch.autograd.Function):
    """The reward decoder :class:`~provenml.metarl.belief.RewardDecoder` (Linear, ReLU,
    Linear, ReLU, Linear to one reward) over every pair of a sampled latent and a transition
    of the same episode, in C: the ELBO's reconstruction term (VariBAD eq. 8) decodes each of
    ``K`` latents of an episode against all ``T`` of its transitions.

    Inputs: ``first_latent`` (N, K, D), the first layer applied to the latents (no bias);
    ``first_transition`` (N, T, D), the first layer applied to the transitions, with its
    bias; the second layer's weight (D, D) and bias (D,), the third's weight (1, D) and bias
    (1,). Output: the predicted rewards (N, K, T), ``w3 . relu(W2 relu(a_nk + b_nj) + b2) +
    b3``. PyTorch would hold four (N, K, T, D) activations for the backward pass; the kernel
    works one (n, k) block of T rows at a time and recomputes them in the backward.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        first_latent: torch.Tensor,
        first_transition: torch.Tensor,
        w2: torch.Tensor,
        b2: torch.Tensor,
        w3: torch.Tensor,
        b3: torch.Tensor,
    ) -> torch.Tensor:
        lib = _library()
        assert lib is not None, "call native_pair_decoder_available() first"
        num, latents, width = first_latent.shape
        if (
            first_transition.dim() != 3
            or first_transition.shape[0] != num
            or first_transition.shape[2] != width
            or tuple(w2.shape) != (width, width)
            or tuple(w3.shape) != (1, width)
        ):
            raise ProvenmlError(
                "the pair decoder needs first_latent (N, K, D), first_transition (N, T, D), "
                f"w2 (D, D) and w3 (1, D); got {tuple(first_latent.shape)}, "
                f"{tuple(first_transition.shape)}, {tuple(w2.shape)} and {tuple(w3.shape)}"
            )
        steps = first_transition.shape[1]
        a = first_latent.detach().contiguous()
        b = first_transition.detach().contiguous()
        w2_t = w2.detach().t().contiguous()
        b2_c, w3_c = b2.detach().contiguous(), w3.detach().contiguous()
        out = a.new_empty(num, latents, steps)
        lib.pair_decoder_forward(
            num, latents, steps, width, _ptr(a), _ptr(b), _ptr(w2_t), _ptr(b2_c), _ptr(w3_c),
            float(b3.item()), _ptr(out),
        )  # fmt: skip
        ctx.save_for_backward(a, b, w2_t, w2, b2_c, w3_c)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, ...]:
        lib = _library()
        assert lib is not None
        a, b, w2_t, w2, b2, w3 = ctx.saved_tensors
        num, latents, width = a.shape
        steps = b.shape[1]
        w2_c, grad_out = w2.detach().contiguous(), grad_out.contiguous()
        grad_a, grad_b = torch.empty_like(a), torch.empty_like(b)
        grad_w2_t, grad_b2 = a.new_empty(width, width), a.new_empty(width)
        grad_w3, grad_b3 = a.new_empty(1, width), a.new_empty(1)
        lib.pair_decoder_backward(
            num, latents, steps, width, _ptr(a), _ptr(b), _ptr(w2_t), _ptr(w2_c), _ptr(b2),
            _ptr(w3), _ptr(grad_out), _ptr(grad_a), _ptr(grad_b), _ptr(grad_w2_t),
            _ptr(grad_b2), _ptr(grad_w3), _ptr(grad_b3),
        )  # fmt: skip
        return grad_a, grad_b, grad_w2_t.t(), grad_b2, grad_w3, grad_b3
