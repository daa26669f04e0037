"""PPO's minibatch loss for :class:`~provenml.rl.ActorCritic` as one native kernel.

The loss is PPO's (Schulman et al. 2017): the clipped surrogate (eq. 7), the value error and
the entropy bonus (eq. 9, with the signs of a loss to minimise),

    L = -mean(min(rho A, clip(rho, 1 - eps, 1 + eps) A)) + c_v 0.5 mean((V(x) - R)^2)
        - c_e mean(H[pi(. | x)]),      rho = exp(log pi(a | x) - log pi_old(a | x)),

for the actor-critic's two tanh MLPs (``in - H - H - out``) and its categorical or diagonal
Gaussian policy, exactly as :func:`ppo_minibatch_loss` computes it in PyTorch. In PyTorch a
minibatch of 2,880 rows is some 60 operations forward and backward, each a full pass over
2,880 x 64 activations (a few microseconds of dispatch and a round trip through memory);
here both networks run forward and backward on 32 rows at a time, which stay in the L1
cache, in one C call that returns the loss and every gradient. The derivatives it uses,
per row and with ``g = dL/d log pi(a | x)``:

* surrogate: ``g = -rho A / N`` where the unclipped term is the minimum (``rho A <=
  clip(rho) A``), else 0 (the clipped branch is constant in the parameters);
* categorical (``p = softmax(z)``): ``dL/dz_j = g (1[j = a] - p_j) + c_e / N p_j (log p_j +
  H)``;
* Gaussian (mean ``mu``, ``sigma = exp(log_std)``): ``dL/dmu = g (a - mu) / sigma^2`` and
  ``dL/dlog_std = sum_rows g ((a - mu)^2 / sigma^2 - 1) - c_e``;
* value: ``dL/dV = c_v (V - R) / N``.

It runs on float32 CPU tensors with a hidden size that is a multiple of 16 and needs the
system's C compiler (:mod:`provenml.nn.native`), and runs where
:func:`provenml.nn.native.hand_kernels_enabled` says so (AVX-512 and AVX2 CPUs, or
``PROVENML_NATIVE=1``); elsewhere, or with ``PROVENML_NATIVE=0``, :func:`ppo_minibatch_loss`
runs the PyTorch loss. ``tests/rl/test_native_ppo.py`` checks that the two agree.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from provenml.errors import ProvenmlError
from provenml.nn.native import MATMUL_C, hand_kernels_enabled, kernel_library
from provenml.nn.native import data_pointer as _ptr
from provenml.rl.policies import ActorCritic, SigmoidTanh
from provenml.rl.ppo import ppo_clip_loss

__all__ = [
    "PPOLoss",
    "PolicyActor",
    "native_ppo_available",
    "policy_act",
    "ppo_minibatch_backward",
    "ppo_minibatch_loss",
]

VECTOR_FLOATS = 16

SOURCE = (
    '#pragma GCC target("prefer-vector-width=512")\n'
    + MATMUL_C
    + r"""
/* PPO's minibatch loss and its gradients for provenml.rl.ActorCritic (rl/native.py). */
#define RT 32

/* One tanh MLP (in D -> H -> H -> O) forward on R rows: P1, H1, P2(unused), H2, OUT. */
static void mlp_forward(int R, int D, int H, int O, const float* x, const float* w1T,
                        const float* b1, const float* w2T, const float* b2, const float* w3,
                        const float* b3, float* h1, float* h2, float* out) {
  for (int r = 0; r < R; ++r) memcpy(h1 + r * H, b1, sizeof(float) * H);
  mm(R, H, D, x, D, w1T, H, h1, H, 1);
#pragma omp simd simdlen(16)
  for (int q = 0; q < R * H; ++q) h1[q] = tanhf(h1[q]);
  for (int r = 0; r < R; ++r) memcpy(h2 + r * H, b2, sizeof(float) * H);
  mm(R, H, H, h1, H, w2T, H, h2, H, 1);
#pragma omp simd simdlen(16)
  for (int q = 0; q < R * H; ++q) h2[q] = tanhf(h2[q]);
  for (int r = 0; r < R; ++r)
    for (int o = 0; o < O; ++o) {
      const float* restrict hr = h2 + r * H;
      const float* restrict wo = w3 + o * H;
      /* 16 partial sums (lane l sums k = l mod 16), added in lane order: the same sum on
         AVX-512 (one vector) and AVX2 (two) */
      pm_vec acc[16 / PM_W] = {{0}};
      for (int k = 0; k < H; k += 16)
        for (int h = 0; h < 16 / PM_W; ++h)
          acc[h] += *(const pm_vec*)(hr + k + PM_W * h) * *(const pm_vec*)(wo + k + PM_W * h);
      float s = 0.f;
      for (int h = 0; h < 16 / PM_W; ++h)
        for (int l = 0; l < PM_W; ++l) s += acc[h][l];
      out[r * O + o] = s + b3[o];
    }
}

/* Actor (O = A outputs) and critic (one output) forward on R rows; weights as in aw / cw. */
static void actor_critic_forward(int R, int D, int H, int A, const float* xt,
                                 const float* const* aw, const float* const* cw, float* ah1,
                                 float* ah2, float* aout, float* ch1, float* ch2, float* cout) {
  mlp_forward(R, D, H, A, xt, aw[0], aw[1], aw[2], aw[3], aw[5], aw[6], ah1, ah2, aout);
  mlp_forward(R, D, H, 1, xt, cw[0], cw[1], cw[2], cw[3], cw[5], cw[6], ch1, ch2, cout);
}

/* The same MLP backward on R rows from dL/dout (R x O): accumulates the weight gradients
   (gw1T is D x H, i.e. dL/dW1 transposed) and, when gx is given, adds dL/dx. */
static void mlp_backward(int R, int D, int H, int O, const float* x, const float* w2,
                         const float* w3, const float* w1, const float* h1, const float* h2,
                         const float* gout, float* dp1, float* dp2, float* gw1T, float* gb1,
                         float* gw2, float* gb2, float* gw3, float* gb3, float* gx) {
  mm(R, H, O, gout, O, w3, H, dp2, H, 0);
  mm_at(O, H, R, gout, O, h2, H, gw3, H, 1);
  for (int r = 0; r < R; ++r) {
    float* restrict d = dp2 + r * H;
    const float* restrict hr = h2 + r * H;
    for (int o = 0; o < O; ++o) gb3[o] += gout[r * O + o];
#pragma omp simd
    for (int k = 0; k < H; ++k) d[k] *= 1.f - hr[k] * hr[k];
  }
  mm_at(H, H, R, dp2, H, h1, H, gw2, H, 1);
  for (int r = 0; r < R; ++r)
#pragma omp simd
    for (int k = 0; k < H; ++k) gb2[k] += dp2[r * H + k];
  mm(R, H, H, dp2, H, w2, H, dp1, H, 0);
  for (int r = 0; r < R; ++r) {
    float* restrict d = dp1 + r * H;
    const float* restrict hr = h1 + r * H;
#pragma omp simd
    for (int k = 0; k < H; ++k) {
      d[k] *= 1.f - hr[k] * hr[k];
      gb1[k] += d[k];
    }
  }
  mm_at(D, H, R, x, D, dp1, H, gw1T, H, 1);
  if (gx)
    for (int r = 0; r < R; ++r)
      for (int k = 0; k < H; ++k) {
        const float g = dp1[r * H + k];
        const float* restrict wk = w1 + k * D;
        float* restrict gr = gx + r * D;
#pragma omp simd
        for (int c = 0; c < D; ++c) gr[c] += g * wk[c];
      }
}

/* aw / cw: actor / critic weights {w1T, b1, w2T, b2, w2, w3, b3, w1}; ag / cg: their
   gradients {gw1T, gb1, gw2, gb2, gw3, gb3}, zeroed here. stats: {total, surrogate, value,
   entropy}. act_i (discrete) or act_f (N x A, continuous with log_std). */
void ppo_minibatch(int N, int D, int H, int A, int discrete, const float* x,
                   const long long* act_i, const float* act_f, const float* old_logp,
                   const float* adv, const float* ret, const float* const* aw,
                   const float* const* cw, const float* log_std, float clip, float value_coef,
                   float ent_coef, float* stats, float* const* ag, float* const* cg,
                   float* g_log_std, float* gx) {
  const int sizes[6] = {D * H, H, H * H, H, A * H, A};
  for (int i = 0; i < 6; ++i) {
    memset(ag[i], 0, sizeof(float) * sizes[i]);
    memset(cg[i], 0, sizeof(float) * (i >= 4 ? sizes[i] / A : sizes[i]));
  }
  if (!discrete) memset(g_log_std, 0, sizeof(float) * A);
  if (gx) memset(gx, 0, sizeof(float) * (size_t)N * D);
  float* buf = (float*)malloc(sizeof(float) * (size_t)RT * (8 * H + 2 * A + 2));
  float *ah1 = buf, *ah2 = ah1 + RT * H, *ch1 = ah2 + RT * H, *ch2 = ch1 + RT * H;
  float *dp1 = ch2 + RT * H, *dp2 = dp1 + RT * H, *cdp1 = dp2 + RT * H, *cdp2 = cdp1 + RT * H;
  float *aout = cdp2 + RT * H, *gaout = aout + RT * A, *cout = gaout + RT * A, *gv = cout + RT;
  const float inv_n = 1.f / (float)N;
  float sigma2[64], prob[64], lstd_term = 0.f;
  if (!discrete)
    for (int a = 0; a < A; ++a) {
      sigma2[a] = expf(2.f * log_std[a]);
      lstd_term += log_std[a];
    }
  const float half_log_2pi = 0.91893853320467274f;
  double pg_sum = 0.0, v_sum = 0.0, ent_sum = 0.0;
  for (int i0 = 0; i0 < N; i0 += RT) {
    const int R = N - i0 < RT ? N - i0 : RT;
    const float* xt = x + (size_t)i0 * D;
    actor_critic_forward(R, D, H, A, xt, aw, cw, ah1, ah2, aout, ch1, ch2, cout);
    for (int r = 0; r < R; ++r) {
      const int i = i0 + r;
      const float* z = aout + r * A;
      float* gz = gaout + r * A;
      float logp, ent, lse = 0.f;
      if (discrete) {
        float m = z[0];
        for (int a = 1; a < A; ++a) m = z[a] > m ? z[a] : m;
        float s = 0.f;
        for (int a = 0; a < A; ++a) {
          prob[a] = expf(z[a] - m);
          s += prob[a];
        }
        lse = m + logf(s);
        ent = 0.f;
        for (int a = 0; a < A; ++a) {
          prob[a] /= s;
          ent -= prob[a] * (z[a] - lse);
        }
        logp = z[act_i[i]] - lse;
      } else {
        logp = 0.f;
        for (int a = 0; a < A; ++a) {
          const float d = act_f[(size_t)i * A + a] - z[a];
          logp += -d * d / (2.f * sigma2[a]);
        }
        logp -= lstd_term + A * half_log_2pi;
        ent = A * (0.5f + half_log_2pi) + lstd_term;
      }
      const float rho = expf(logp - old_logp[i]);
      const float lo = 1.f - clip, hi = 1.f + clip;
      const float unclipped = rho * adv[i];
      const float clipped = (rho < lo ? lo : (rho > hi ? hi : rho)) * adv[i];
      const int take_unclipped = unclipped <= clipped;
      pg_sum -= take_unclipped ? unclipped : clipped;
      ent_sum += ent;
      const float g = take_unclipped ? -unclipped * inv_n : 0.f;
      if (discrete) {
        for (int a = 0; a < A; ++a)
          gz[a] = g * ((a == act_i[i]) - prob[a]) + ent_coef * inv_n * prob[a] * (z[a] - lse + ent);
      } else {
        for (int a = 0; a < A; ++a) {
          const float d = act_f[(size_t)i * A + a] - z[a];
          gz[a] = g * d / sigma2[a];
          g_log_std[a] += g * (d * d / sigma2[a] - 1.f);
        }
      }
      const float err = cout[r] - ret[i];
      v_sum += 0.5 * (double)err * err;
      gv[r] = value_coef * err * inv_n;
    }
    float* gxt = gx ? gx + (size_t)i0 * D : 0;
    mlp_backward(R, D, H, A, xt, aw[4], aw[5], aw[7], ah1, ah2, gaout, dp1, dp2, ag[0], ag[1],
                 ag[2], ag[3], ag[4], ag[5], gxt);
    mlp_backward(R, D, H, 1, xt, cw[4], cw[5], cw[7], ch1, ch2, gv, cdp1, cdp2, cg[0], cg[1],
                 cg[2], cg[3], cg[4], cg[5], gxt);
  }
  if (!discrete)
    for (int a = 0; a < A; ++a) g_log_std[a] -= ent_coef;
  free(buf);
  stats[1] = (float)(pg_sum / N);
  stats[2] = (float)(v_sum / N);
  stats[3] = (float)(ent_sum / N);
  stats[0] = stats[1] + value_coef * stats[2] - ent_coef * stats[3];
}

/* Acting (no gradients): the policy's action for each row, drawn by inverse-CDF sampling
   from u (categorical: the number of cumulative probabilities below u) or as mean + sigma
   noise (Gaussian), except in rows where forced[i] is set, which take forced_i / forced_f;
   with the action's log-probability under the policy and the critic's value. */
void ppo_act(int N, int D, int H, int A, int discrete, const float* x, const float* u,
             const float* noise, const unsigned char* forced, const long long* forced_i,
             const float* forced_f, const float* const* aw, const float* const* cw,
             const float* log_std, long long* act_i, float* act_f, float* logp, float* value) {
  float* buf = (float*)malloc(sizeof(float) * (size_t)RT * (4 * H + A + 1));
  float *ah1 = buf, *ah2 = ah1 + RT * H, *ch1 = ah2 + RT * H, *ch2 = ch1 + RT * H;
  float *aout = ch2 + RT * H, *cout = aout + RT * A;
  const float half_log_2pi = 0.91893853320467274f;
  for (int i0 = 0; i0 < N; i0 += RT) {
    const int R = N - i0 < RT ? N - i0 : RT;
    const float* xt = x + (size_t)i0 * D;
    actor_critic_forward(R, D, H, A, xt, aw, cw, ah1, ah2, aout, ch1, ch2, cout);
    for (int r = 0; r < R; ++r) {
      const int i = i0 + r;
      const float* z = aout + r * A;
      value[i] = cout[r];
      const int force = forced && forced[i];
      if (discrete) {
        float m = z[0], s = 0.f;
        for (int a = 1; a < A; ++a) m = z[a] > m ? z[a] : m;
        for (int a = 0; a < A; ++a) s += expf(z[a] - m);
        long long action = 0;
        if (force) {
          action = forced_i[i];
        } else {
          float cdf = 0.f;
          for (int a = 0; a < A; ++a) {
            cdf += expf(z[a] - m) / s;
            action += u[i] > cdf;
          }
          if (action > A - 1) action = A - 1;
        }
        act_i[i] = action;
        logp[i] = z[action] - (m + logf(s));
      } else {
        float lp = 0.f;
        for (int a = 0; a < A; ++a) {
          const float sigma = expf(log_std[a]);
          const float act = force ? forced_f[(size_t)i * A + a]
                                  : z[a] + sigma * noise[(size_t)i * A + a];
          act_f[(size_t)i * A + a] = act;
          const float d = act - z[a];
          lp += -d * d / (2.f * sigma * sigma) - log_std[a] - half_log_2pi;
        }
        logp[i] = lp;
      }
    }
  }
  free(buf);
}
"""
)


class PPOLoss(NamedTuple):
    """PPO's minibatch loss (``total``, with gradients) and its three parts (reported only)."""

    total: torch.Tensor
    surrogate: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor


def _kernel_call(
    policy: ActorCritic,
    x: torch.Tensor,
    per_row: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    coefs: tuple[float, float, float],
    native: bool | None,
) -> tuple[tuple[float, float, float, bool], torch.Tensor | None, list[torch.Tensor]] | None:
    """Checks ``old_logp``, ``advantages`` and ``returns`` (``per_row``) against ``x``; where
    the kernel runs (``native`` as in :func:`ppo_minibatch_loss`), its arguments
    ``(hyper, log_std, params)``, else None."""
    in_dim = _actor_widths(policy)[0]
    if x.dim() < 1 or (in_dim is not None and x.shape[-1] != in_dim):
        raise ProvenmlError(f"x must be (..., {in_dim}) for this policy; got {tuple(x.shape)}")
    lead = x.shape[:-1]
    for name, t in zip(("old_logp", "advantages", "returns"), per_row, strict=True):
        if t.shape != lead:
            raise ProvenmlError(f"{name} has shape {tuple(t.shape)}; expected {tuple(lead)}")
    layers = None if native is False else _native_layers(policy, x)
    if native and layers is None:
        raise ProvenmlError(
            "the native PPO loss needs float32 CPU tensors, hidden % 16 == 0, the "
            "ActorCritic's tanh MLPs, a C compiler and an AVX2 / AVX-512 CPU or PROVENML_NATIVE=1"
        )
    if layers is None:
        return None
    clip, value_coef, entropy_coef = coefs
    hyper = (float(clip), float(value_coef), float(entropy_coef), bool(policy.discrete))
    log_std = policy.log_std if not policy.discrete else None
    return hyper, log_std, [t for layer in layers for t in (layer.weight, layer.bias)]


def ppo_minibatch_loss(
    policy: ActorCritic,
    x: torch.Tensor,
    actions: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    clip: float,
    value_coef: float,
    entropy_coef: float,
    native: bool | None = None,
) -> PPOLoss:
    """PPO's loss on one minibatch (module docstring): ``x`` (..., in_dim) policy inputs,
    ``actions`` (...) indices or (..., action_dim) values, ``old_logp``, ``advantages``
    (already normalised if wanted) and ``returns`` (...). ``native``: None runs the C kernel
    where it can (:func:`native_ppo_available`), False always PyTorch, True requires the
    kernel (:class:`ProvenmlError` where it cannot run)."""
    kernel = _kernel_call(
        policy, x, (old_logp, advantages, returns), (clip, value_coef, entropy_coef), native
    )
    if kernel is not None:
        hyper, log_std, params = kernel
        total, parts = _NativePPOLoss.apply(
            x, actions, old_logp, advantages, returns, hyper, log_std, *params
        )
        return PPOLoss(total, parts[0], parts[1], parts[2])
    dist = policy.distribution(x)
    surrogate = ppo_clip_loss(dist.log_prob(actions), old_logp, advantages, clip)
    value = 0.5 * ((policy.value(x) - returns) ** 2).mean()
    entropy = dist.entropy().mean()
    total = surrogate + value_coef * value - entropy_coef * entropy
    return PPOLoss(total, surrogate.detach(), value.detach(), entropy.detach())


def ppo_minibatch_backward(
    policy: ActorCritic,
    x: torch.Tensor,
    actions: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    clip: float,
    value_coef: float,
    entropy_coef: float,
    native: bool | None = None,
) -> PPOLoss:
    """``ppo_minibatch_loss(...).total.backward()`` in one call: PPO's loss on one minibatch,
    its gradients accumulated into the parameters' ``.grad`` (``x`` too, if it requires
    them); returns the loss and its parts, detached. Where the kernel runs and ``x`` needs no
    gradient, the kernel's gradients go into ``.grad`` directly, without autograd's graph
    (about 0.15 ms a call at these sizes): the same tensors ``backward()`` would leave there
    (``tests/rl/test_native_ppo.py``)."""
    kernel = None
    if native is not False and not x.requires_grad:
        kernel = _kernel_call(
            policy, x, (old_logp, advantages, returns), (clip, value_coef, entropy_coef), native
        )
    if kernel is not None:
        hyper, log_std, params = kernel
        out = _run_ppo_kernel(
            x, actions, old_logp, advantages, returns, hyper, log_std, params, False
        )
        grads = [*out.actor_grads, *out.critic_grads]
        if log_std is not None:
            params.append(log_std)
            assert out.log_std_grad is not None
            grads.append(out.log_std_grad)
        with torch.no_grad():
            for param, grad in zip(params, grads, strict=True):
                if not param.requires_grad:
                    continue
                if param.grad is None:  # as autograd leaves it: the parameter's layout
                    param.grad = grad.contiguous()
                else:
                    param.grad += grad
        stats = out.stats
        return PPOLoss(stats[0], stats[1], stats[2], stats[3])
    loss = ppo_minibatch_loss(
        policy, x, actions, old_logp, advantages, returns, clip, value_coef, entropy_coef, native
    )
    loss.total.backward()
    return PPOLoss(loss.total.detach(), loss.surrogate, loss.value, loss.entropy)


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The built kernel, or None (with one warning) where it cannot be built."""
    lib = kernel_library(SOURCE, "provenml.rl: the native PPO loss")
    if lib is None:
        return None
    ptr, i32, f32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
    lib.ppo_minibatch.argtypes = [i32] * 5 + [ptr] * 9 + [f32] * 3 + [ptr] * 5
    lib.ppo_minibatch.restype = None
    lib.ppo_act.argtypes = [i32] * 5 + [ptr] * 13
    lib.ppo_act.restype = None
    return lib


def _layers(net: nn.Module) -> list[nn.Linear] | None:
    """The three ``nn.Linear`` of a ``Linear, tanh, Linear, tanh, Linear`` MLP, else None."""
    mods = list(net.children()) if isinstance(net, nn.Sequential) else []
    if len(mods) != 5 or not all(isinstance(m, nn.Linear) for m in mods[::2]):
        return None
    if not all(isinstance(m, (nn.Tanh, SigmoidTanh)) for m in mods[1::2]):
        return None
    return [m for m in mods[::2] if isinstance(m, nn.Linear)]


def native_ppo_available(policy: ActorCritic, like: torch.Tensor) -> bool:
    """Whether the C kernel can compute ``policy``'s PPO loss on inputs like ``like``:
    float32 CPU tensors, the two ``in - H - H - out`` tanh MLPs with ``H % 16 == 0`` and at
    most 64 actions, a C compiler, and :func:`~provenml.nn.native.hand_kernels_enabled`."""
    return _native_layers(policy, like) is not None


def _native_layers(policy: ActorCritic, like: torch.Tensor) -> list[nn.Linear] | None:
    """The kernel's six layers where it can run (see :func:`native_ppo_available`), else
    None."""
    if not hand_kernels_enabled():
        return None
    layers = _kernel_layers(policy)
    if layers is None or like.dtype != torch.float32 or like.device.type != "cpu":
        return None
    params = [t for layer in layers for t in (layer.weight, layer.bias)]
    if policy.log_std is not None:
        params.append(policy.log_std)
    if all(p.dtype == torch.float32 and p.device.type == "cpu" for p in params) and (
        _library() is not None
    ):
        return layers
    return None


def _kernel_layers(policy: ActorCritic) -> list[nn.Linear] | None:
    """The actor's and the critic's three layers when their shapes fit the kernel, else
    None (looked up on every call: a model's layers can be replaced)."""
    actor, critic = _layers(policy.actor), _layers(policy.critic)
    if actor is None or critic is None:
        return None
    hidden = actor[0].out_features
    fits = (
        hidden % VECTOR_FLOATS == 0
        and actor[1].in_features == actor[1].out_features == hidden
        and critic[0].out_features == hidden
        and critic[1].in_features == critic[1].out_features == hidden
        and critic[2].out_features == 1
        and actor[2].out_features <= 64
    )
    return actor + critic if fits else None


def _kernel_weights(
    w1: torch.Tensor,
    b1: torch.Tensor,
    w2: torch.Tensor,
    b2: torch.Tensor,
    w3: torch.Tensor,
    b3: torch.Tensor,
) -> list[torch.Tensor]:
    """One MLP's weights as the kernel reads them: {W1^T, b1, W2^T, b2, W2, W3, b3, W1}."""
    return [
        w1.t().contiguous(),
        b1.contiguous(),
        w2.t().contiguous(),
        b2.contiguous(),
        w2.contiguous(),
        w3.contiguous(),
        b3.contiguous(),
        w1.contiguous(),
    ]


def _check_action_range(actions: torch.Tensor, action_dim: int) -> None:
    """Categorical actions must index the policy's outputs (the kernel reads them)."""
    if actions.numel():
        low, high = torch.aminmax(actions)
        if int(low) < 0 or int(high) >= action_dim:
            raise ProvenmlError(
                f"actions must lie in [0, {action_dim}); got {int(low)}..{int(high)}"
            )


def _pointers(tensors: list[torch.Tensor]) -> ctypes.Array[ctypes.c_void_p]:
    return (ctypes.c_void_p * len(tensors))(*(t.data_ptr() for t in tensors))


class PolicyActor:
    """:func:`policy_act` for a stretch in which the policy's weights do not change, such as
    one rollout: the kernel's copies of the weights (some transposed) are made once, when
    the actor is built, instead of on every call. It acts with the weights *as of its
    construction*; build a new one after an optimizer step (there is deliberately no cache
    keyed on the parameters' version counters: the fused Adam step updates weights in place
    without bumping them). Calls give exactly what :func:`policy_act` gives with the same
    weights.

        actor = PolicyActor(policy, obs_like)   # once per rollout
        action, logp, value = actor(x, u)       # each step
    """

    def __init__(self, policy: ActorCritic, like: torch.Tensor, native: bool | None = None) -> None:
        self.policy = policy
        self._widths = _actor_widths(policy)  # (in_dim, action_dim) for the shape checks
        layers = None if native is False else _native_layers(policy, like)
        if native and layers is None:
            raise ProvenmlError("the native acting step cannot run here (see native_ppo_available)")
        self.native = layers is not None
        if layers is None:
            return
        self.hidden, self.action_dim = layers[0].out_features, layers[2].out_features
        with torch.no_grad():
            params = [t.detach().clone() for layer in layers for t in (layer.weight, layer.bias)]
            self._weights = (_kernel_weights(*params[:6]), _kernel_weights(*params[6:]))
            log_std = policy.log_std
            self._log_std = None if log_std is None else log_std.detach().clone()
        self._pointer_arrays = (_pointers(self._weights[0]), _pointers(self._weights[1]))

    @torch.no_grad()
    def __call__(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        noise: torch.Tensor | None = None,
        forced: torch.Tensor | None = None,
        forced_actions: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Actions, log-probabilities and values for the inputs ``x`` (see :func:`policy_act`)."""
        policy = self.policy
        if not policy.discrete and noise is None:
            raise ProvenmlError("a Gaussian policy needs noise (N, action_dim) to act")
        if forced is not None and forced_actions is None:
            raise ProvenmlError("forced rows need forced_actions")
        _check_acting_shapes(policy.discrete, self._widths, x, u, noise, forced, forced_actions)
        if not self.native:
            return _policy_act_torch(policy, x, u, noise, forced, forced_actions)
        lib = _library()
        assert lib is not None
        n, in_dim = x.shape
        action_dim = self.action_dim
        flat_x = x.contiguous()
        uniforms = u.contiguous()
        logp, value = torch.empty(n), torch.empty(n)
        if policy.discrete:
            act_i, act_f = torch.empty(n, dtype=torch.int64), None
            f_i = None if forced_actions is None else forced_actions.to(torch.int64).contiguous()
            if f_i is not None:
                _check_action_range(f_i, action_dim)
            f_f = None
        else:
            act_i, act_f = None, torch.empty(n, action_dim)
            f_i = None
            f_f = None if forced_actions is None else forced_actions.float().contiguous()
        mask = None if forced is None else forced.to(torch.uint8).contiguous()
        noise_c = None if noise is None else noise.contiguous()
        actor_weights, critic_weights = self._pointer_arrays
        lib.ppo_act(
            n, in_dim, self.hidden, action_dim, int(policy.discrete),
            _ptr(flat_x), _ptr(uniforms), _ptr(noise_c), _ptr(mask), _ptr(f_i), _ptr(f_f),
            actor_weights, critic_weights, _ptr(self._log_std), _ptr(act_i), _ptr(act_f),
            _ptr(logp), _ptr(value),
        )  # fmt: skip
        action = act_i if act_i is not None else act_f
        assert action is not None
        return action, logp, value


def _actor_widths(policy: ActorCritic) -> tuple[int | None, int | None]:
    """The actor's input and output widths, where its first and last modules are
    ``nn.Linear`` (``ActorCritic``'s MLPs; None where a replaced module does not say)."""
    mods = list(policy.actor.children()) if isinstance(policy.actor, nn.Sequential) else []
    first = mods[0] if mods and isinstance(mods[0], nn.Linear) else None
    last = mods[-1] if mods and isinstance(mods[-1], nn.Linear) else None
    return (
        None if first is None else first.in_features,
        None if last is None else last.out_features,
    )


def _check_acting_shapes(
    discrete: bool,
    widths: tuple[int | None, int | None],
    x: torch.Tensor,
    u: torch.Tensor,
    noise: torch.Tensor | None,
    forced: torch.Tensor | None,
    forced_actions: torch.Tensor | None,
) -> None:
    """Acting's inputs must fit the policy, whose actor is ``widths`` = (in_dim, action_dim)
    wide (:func:`_actor_widths`): the kernel reads them by these sizes."""
    in_dim, action_dim = widths
    if x.dim() != 2 or (in_dim is not None and x.shape[1] != in_dim):
        raise ProvenmlError(
            f"x must be (N, {in_dim or 'in_dim'}) for this policy; got {tuple(x.shape)}"
        )
    n = x.shape[0]
    if action_dim is None:
        return
    expected = {
        "u": (u, (n,)),
        "noise": (noise, (n, action_dim)),
        "forced": (forced, (n,)),
        "forced_actions": (forced_actions, (n,) if discrete else (n, action_dim)),
    }
    for name, (t, shape) in expected.items():
        if t is not None and tuple(t.shape) != shape:
            raise ProvenmlError(f"{name} must be {shape} for {n} inputs; got {tuple(t.shape)}")


def _policy_act_torch(
    policy: ActorCritic,
    x: torch.Tensor,
    u: torch.Tensor,
    noise: torch.Tensor | None,
    forced: torch.Tensor | None,
    forced_actions: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`policy_act` in PyTorch (where the kernel does not run)."""
    dist = policy.distribution(x)
    if policy.discrete:
        cdf = torch.cumsum(dist.probs, -1)  # type: ignore[attr-defined]
        action = (u[:, None] > cdf).sum(-1).clamp(max=cdf.shape[-1] - 1)
    else:
        assert noise is not None
        action = dist.mean + dist.stddev * noise
    if forced is not None:
        assert forced_actions is not None
        mask = forced.view(-1, *[1] * (action.dim() - 1))
        action = torch.where(mask, forced_actions.to(action.dtype), action)
    return action, dist.log_prob(action), policy.value(x)


@torch.no_grad()
def policy_act(
    policy: ActorCritic,
    x: torch.Tensor,
    u: torch.Tensor,
    noise: torch.Tensor | None = None,
    forced: torch.Tensor | None = None,
    forced_actions: torch.Tensor | None = None,
    native: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The policy's actions for a batch of inputs ``x`` (N, in_dim), with their
    log-probabilities and the critic's values (no gradients): categorical actions by
    inverse-CDF sampling from ``u`` (N,) uniforms (the number of cumulative probabilities
    below ``u``), Gaussian ones as ``mean + sigma noise`` (``noise`` (N, action_dim)). Rows
    where ``forced`` (N,) bool is set take ``forced_actions`` instead (their log-probability
    is still the policy's). One C call where :func:`native_ppo_available` (``native`` as in
    :func:`ppo_minibatch_loss`), else the same in PyTorch. The weights are copied for the
    kernel on every call; a loop that acts many times with unchanged weights (a rollout)
    builds one :class:`PolicyActor` instead."""
    return PolicyActor(policy, x, native)(x, u, noise, forced, forced_actions)


class _KernelOutput(NamedTuple):
    """What one call of the kernel gives: the loss and its parts, and every gradient."""

    stats: torch.Tensor  # {total, surrogate, value, entropy}
    actor_grads: list[torch.Tensor]  # in the parameters' layout
    critic_grads: list[torch.Tensor]
    log_std_grad: torch.Tensor | None
    input_grad: torch.Tensor | None


def _run_ppo_kernel(
    x: torch.Tensor,
    actions: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    hyper: tuple[float, float, float, bool],
    log_std: torch.Tensor | None,
    params: list[torch.Tensor],
    input_grad: bool,
) -> _KernelOutput:
    """One call of ``ppo_minibatch`` (the module docstring's loss) on the actor's and the
    critic's six weights each, ``params`` in the order of :func:`_kernel_layers`."""
    lib = _library()
    assert lib is not None
    clip, value_coef, entropy_coef, discrete = hyper
    in_dim = x.shape[-1]
    flat_x = x.detach().reshape(-1, in_dim).contiguous()
    n = flat_x.shape[0]
    a_w1, a_b1, a_w2, a_b2, a_w3, a_b3, c_w1, c_b1, c_w2, c_b2, c_w3, c_b3 = (
        p.detach() for p in params
    )
    hidden, action_dim = a_w1.shape[0], a_w3.shape[0]
    if discrete:
        act_i = actions.reshape(-1).to(torch.int64).contiguous()
        if act_i.numel() != n:
            raise ProvenmlError(f"actions has {act_i.numel()} entries for {n} inputs")
        _check_action_range(act_i, action_dim)
        act_f = None
    else:
        act_f = actions.detach().reshape(-1, action_dim).to(torch.float32).contiguous()
        if act_f.shape[0] != n:
            raise ProvenmlError(f"actions has {act_f.shape[0]} rows for {n} inputs")
        act_i = None
    flat = [
        t.detach().reshape(-1).to(torch.float32).contiguous()
        for t in (old_logp, advantages, returns)
    ]

    aw = _kernel_weights(a_w1, a_b1, a_w2, a_b2, a_w3, a_b3)
    cw = _kernel_weights(c_w1, c_b1, c_w2, c_b2, c_w3, c_b3)
    ag = [
        torch.empty(in_dim, hidden),
        torch.empty(hidden),
        torch.empty(hidden, hidden),
        torch.empty(hidden),
        torch.empty(action_dim, hidden),
        torch.empty(action_dim),
    ]
    cg = [
        torch.empty(in_dim, hidden),
        torch.empty(hidden),
        torch.empty(hidden, hidden),
        torch.empty(hidden),
        torch.empty(1, hidden),
        torch.empty(1),
    ]
    g_log_std = torch.empty(action_dim)
    stats = torch.empty(4)
    gx = torch.empty(n, in_dim) if input_grad else None
    ls = None if log_std is None else log_std.detach().contiguous()

    lib.ppo_minibatch(
        n, in_dim, hidden, action_dim, int(discrete), _ptr(flat_x), _ptr(act_i), _ptr(act_f),
        _ptr(flat[0]), _ptr(flat[1]), _ptr(flat[2]), _pointers(aw), _pointers(cw), _ptr(ls),
        clip, value_coef, entropy_coef, _ptr(stats), _pointers(ag), _pointers(cg),
        _ptr(g_log_std), _ptr(gx),
    )  # fmt: skip
    # gradients in the parameters' layout (the kernel gives dL/dW1 transposed)
    ag[0], cg[0] = ag[0].t(), cg[0].t()
    return _KernelOutput(
        stats,
        ag,
        cg,
        None if log_std is None else g_log_std,
        None if gx is None else gx.reshape(x.shape),
    )


class _NativePPOLoss(torch.autograd.Function):
    """The kernel as an autograd function: forward computes the loss and every gradient at
    once (the loss is a scalar), backward scales them by the incoming gradient."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        actions: torch.Tensor,
        old_logp: torch.Tensor,
        advantages: torch.Tensor,
        returns: torch.Tensor,
        hyper: tuple[float, float, float, bool],
        log_std: torch.Tensor | None,
        *params: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = _run_ppo_kernel(
            x,
            actions,
            old_logp,
            advantages,
            returns,
            hyper,
            log_std,
            list(params),
            bool(ctx.needs_input_grad[0]),
        )
        ctx.grads = (out.actor_grads, out.critic_grads, out.log_std_grad, out.input_grad)
        parts = out.stats[1:].clone()
        ctx.mark_non_differentiable(parts)
        return out.stats[0].clone(), parts

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_total: torch.Tensor, _grad_parts: torch.Tensor) -> tuple:
        ag, cg, g_log_std, gx = ctx.grads
        unit = bool(grad_total == 1)  # loss.backward(): the gradients as computed

        def scaled(t: torch.Tensor | None) -> torch.Tensor | None:
            return t if t is None or unit else t * grad_total

        return (
            scaled(gx),
            None,
            None,
            None,
            None,
            None,
            scaled(g_log_std),
            *(scaled(t) for t in ag),
            *(scaled(t) for t in cg),
        )
