"""Belief models: the VariBAD encoder/decoder and DynaMITE-RL's three session-aware changes.

VariBAD (Zintgraf et al. 2020): a GRU encodes the transitions ``(a_j, r_j, s_{j+1})`` seen so
far into a Gaussian posterior ``q(m | tau_{:j})``; a decoder reconstructs rewards from a sample
of ``m``; the ELBO (VariBAD eq. 8) adds ``KL(q(m | tau_{:j}) || q(m | tau_{:j-1}))``.

DynaMITE-RL (Liang et al. 2024, Sec. 4) adds, each switchable for the ablations:

* **latent consistency** (``consistency_loss``, Sec. 4 eq. 4): within a session the KL from the
  posterior to the session's *final* posterior (detached) may only shrink;
* **session masking** (``session_reconstruction_mask``): a latent decodes only the transitions
  of its own session;
* **prior conditioning**: at a session boundary, the prior of the new session is computed from
  the previous session's final belief, ``p(m_{k+1} | m_k)``, instead of a fixed N(0, I);
* a **termination head** ``p(d_j | h_j)``, trained on the environment's session flags, which at
  run time (training rollouts and test alike) gates the recurrence into the new session: the
  true flags only ever enter the training losses, never the forward pass.

Alignment: transition ``j`` is ``(s_j, a_j, r_j, s_{j+1})``; ``post_j`` is the posterior after
transitions ``0..j`` and is what the policy sees when it acts at step ``j + 1``. The boundary
flag ``starts_j`` says that transition ``j`` is the first of a new session
(``session_end[j - 1]`` of the environment).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from provenml.errors import ProvenmlError
from provenml.metarl.native import (
    NativeInputProjection,
    NativePairDecoder,
    NativeRecurrence,
    RecurrenceStepper,
    native_pair_decoder_available,
    native_recurrence_available,
)


def gaussian_kl(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """``KL(N(mu_q, var_q) || N(mu_p, var_p))`` of diagonal Gaussians, summed over the last dim:
    ``0.5 sum(logvar_p - logvar_q + (var_q + (mu_q - mu_p)^2) / var_p - 1)`` (closed form)."""
    return 0.5 * (
        logvar_p - logvar_q + (torch.exp(logvar_q) + (mu_q - mu_p) ** 2) * torch.exp(-logvar_p) - 1
    ).sum(-1)


def session_starts(session_end: torch.Tensor) -> torch.Tensor:
    """``starts[:, j]`` is True when transition j opens a new session (j >= 1)."""
    starts = torch.zeros_like(session_end, dtype=torch.bool)
    starts[:, 1:] = session_end[:, :-1].bool()
    return starts


def session_ids(session_end: torch.Tensor) -> torch.Tensor:
    """Session index of every transition, (num_envs, horizon): 0, 0, 1, 1, 1, 2, ..."""
    return torch.cumsum(session_starts(session_end).long(), dim=1)


def session_reconstruction_mask(
    session_end: torch.Tensor, latent_steps: torch.Tensor
) -> torch.Tensor:
    """Session masking (DynaMITE-RL Sec. 4): ``mask[n, i, j]`` is True when transition ``j``
    is in the same session as ``post_{latent_steps[i]}`` of env n. Shape (N, len(steps), H)."""
    ids = session_ids(session_end)
    return ids[:, latent_steps, None] == ids[:, None, :]


def consistency_loss(
    mu: torch.Tensor, logvar: torch.Tensor, session_end: torch.Tensor
) -> torch.Tensor:
    """Latent consistency (DynaMITE-RL Sec. 4, eq. 4), mean over environments.

    With ``T_k`` the last transition of session k and ``D_j = KL(q_j || sg[q_{T_k}])`` for
    ``j`` in session k, the loss is ``sum_j max(0, D_{j+1} - D_j)`` over consecutive steps of
    the same session: the posterior may only move towards the session's final belief. The final
    posterior is detached (``sg``); letting gradients into it collapses the posterior.
    ``mu``/``logvar`` are (N, H, D) posteriors ``post_j``; ``session_end`` is (N, H).
    """
    ids = session_ids(session_end)
    num_envs, horizon = ids.shape
    ends = torch.zeros_like(ids, dtype=torch.bool)
    ends[:, :-1] = ids[:, 1:] != ids[:, :-1]
    ends[:, -1] = True
    step = torch.arange(horizon).expand(num_envs, horizon)
    end_step = torch.where(ends, step, torch.full_like(step, horizon))
    # reverse cumulative min: the first session end at or after j
    last = torch.flip(torch.cummin(torch.flip(end_step, [1]), dim=1).values, [1])
    final_mu = torch.gather(mu, 1, last[..., None].expand_as(mu)).detach()
    final_logvar = torch.gather(logvar, 1, last[..., None].expand_as(logvar)).detach()
    divergence = gaussian_kl(mu, logvar, final_mu, final_logvar)  # (N, H)
    same_session = ids[:, 1:] == ids[:, :-1]
    increase = F.relu(divergence[:, 1:] - divergence[:, :-1]) * same_session
    return increase.sum(1).mean()


@dataclass
class BeliefSequence:
    """What the encoder produced over a batch of episodes (each (N, H, ...))."""

    mu: torch.Tensor
    logvar: torch.Tensor
    prev_mu: torch.Tensor  # post_{j-1} (the initial belief for j = 0)
    prev_logvar: torch.Tensor
    cond_mu: torch.Tensor | None  # conditioned prior of a session opening at j
    cond_logvar: torch.Tensor | None
    termination_logit: torch.Tensor | None
    init_mu: torch.Tensor  # belief before any transition, (N, D)
    init_logvar: torch.Tensor


def _gru_branches(
    gi: torch.Tensor, x: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One GRU update (Cho et al. 2014, as ``torch.nn.GRUCell``) of ``B`` stacked branches
    that share the input projection ``gi = W_ih e + b_ih`` (N, 3H); ``x`` is (B, N, H).

    ``r = sig(gi_r + gh_r)``, ``z = sig(gi_z + gh_z)``, ``n = tanh(gi_n + r * gh_n)``,
    ``h' = n + z (x - n)`` with ``gh = W_hh x + b_hh``. Returns ``(h', r, z, n, gh_n)``.
    """
    hidden = x.shape[-1]
    gh = torch.matmul(x, w_hh.t()) + b_hh  # (B, N, 3H)
    rz = torch.sigmoid(gi[:, : 2 * hidden] + gh[..., : 2 * hidden])
    r, z = rz[..., :hidden], rz[..., hidden:]
    gh_n = gh[..., 2 * hidden :]
    n = torch.tanh(gi[:, 2 * hidden :] + r * gh_n)
    return n + z * (x - n), r, z, n, gh_n


class _SessionAwareRecurrence(torch.autograd.Function):
    """DynaMITE-RL's gated session recurrence over a whole sequence, with a hand-written
    backward pass through time (the graph autograd would record holds ~40 small ops per
    step; here the forward is a plain loop and the weight gradients are a few large matmuls).

    Per step j, with ``a = h_{j-1}`` and ``p = h_start = tanh(W_p a + b_p)`` (prior
    conditioning; zeros without it): ``h_raw = GRU(e_j, a)``, ``h_new = GRU(e_j, p)``,
    ``logit_j = w_d . h_raw + b_d`` (termination head), ``c = sg[sigmoid(logit_j)]`` and
    ``h_j = (1 - c) h_raw + c h_new`` (DynaMITE-RL Sec. 4; ``BeliefEncoder.step``).
    Inputs: ``gi`` (T, N, 3H) input projections, ``h0`` (N, H), the GRU's ``w_hh``/``b_hh``,
    the termination head's weight (1, H) and bias (1,), the prior net's weight/bias (or
    None). Outputs: ``h`` (T, N, H), ``logits`` (T, N), ``h_start`` (T, N, H).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        gi: torch.Tensor,
        h0: torch.Tensor,
        w_hh: torch.Tensor,
        b_hh: torch.Tensor,
        w_term: torch.Tensor,
        b_term: torch.Tensor,
        w_prior: torch.Tensor | None,
        b_prior: torch.Tensor | None,
        head_into_gru: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        steps = gi.shape[0]
        zeros = torch.zeros_like(h0)
        h = h0
        branch_in, saved, raw, gates, logits, hs = [], [], [], [], [], []
        for j in range(steps):
            start = zeros if w_prior is None else torch.tanh(torch.addmm(b_prior, h, w_prior.t()))
            x = torch.stack([h, start])
            h_out, *gru_saved = _gru_branches(gi[j], x, w_hh, b_hh)
            logit = torch.addmm(b_term, h_out[0], w_term.t())[:, 0]
            gate = torch.sigmoid(logit)[:, None]
            h = (1 - gate) * h_out[0] + gate * h_out[1]
            branch_in.append(x)
            saved.append(gru_saved)
            raw.append(h_out[0])
            gates.append(gate)
            logits.append(logit)
            hs.append(h)
        ctx.steps = (branch_in, saved, raw, gates)
        ctx.head_into_gru = head_into_gru
        ctx.save_for_backward(w_hh, w_term, w_prior)
        stacked_in = torch.stack(branch_in)
        return torch.stack(hs), torch.stack(logits), stacked_in[:, 1]

    @staticmethod
    @once_differentiable
    def backward(  # type: ignore[override]
        ctx: Any, grad_h: torch.Tensor, grad_logit: torch.Tensor, grad_start: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        w_hh, w_term, w_prior = ctx.saved_tensors
        branch_in, saved, raw, gates = ctx.steps  # kept: backward may run again (retain_graph)
        steps = len(branch_in)
        grad_gh, grad_gi, grad_prior_pre = [], [], []
        carry = torch.zeros_like(grad_h[0])
        # the termination head's gradient into the recurrence (off: the head reads sg[h_raw])
        grad_raw_from_head = grad_logit[..., None] * w_term[0] if ctx.head_into_gru else None
        for j in range(steps - 1, -1, -1):
            total = grad_h[j] + carry
            gate = gates[j]
            grad_raw = (1 - gate) * total
            if grad_raw_from_head is not None:
                grad_raw = grad_raw + grad_raw_from_head[j]
            grad_out = torch.stack([grad_raw, gate * total])
            r, z, n, gh_n = saved[j]
            x = branch_in[j]
            grad_n = grad_out * (1 - z) * (1 - n * n)
            grad_r = grad_n * gh_n * r * (1 - r)
            grad_z = grad_out * (x - n) * z * (1 - z)
            gh = torch.cat([grad_r, grad_z, grad_n * r], -1)
            grad_gh.append(gh)
            grad_gi.append(torch.cat([grad_r, grad_z, grad_n], -1).sum(0))
            grad_x = grad_out * z + torch.matmul(gh, w_hh)
            carry = grad_x[0]
            if w_prior is not None:
                start = x[1]
                pre = (grad_x[1] + grad_start[j]) * (1 - start * start)
                grad_prior_pre.append(pre)
                carry = carry + pre @ w_prior
        hidden = carry.shape[-1]
        flat_gh = torch.stack(grad_gh[::-1]).reshape(-1, 3 * hidden)
        inputs = torch.stack(branch_in)  # (T, 2, N, H)
        grad_w_hh = flat_gh.t() @ inputs.reshape(-1, hidden)
        grad_b_hh = flat_gh.sum(0)
        grad_w_term = (grad_logit[..., None] * torch.stack(raw)).sum((0, 1))[None]
        grad_b_term = grad_logit.sum().reshape(1)
        grad_w_prior = grad_b_prior = None
        if w_prior is not None:
            flat_pre = torch.stack(grad_prior_pre[::-1]).reshape(-1, hidden)
            grad_w_prior = flat_pre.t() @ inputs[:, 0].reshape(-1, hidden)
            grad_b_prior = flat_pre.sum(0)
        return (
            torch.stack(grad_gi[::-1]),
            carry,
            grad_w_hh,
            grad_b_hh,
            grad_w_term,
            grad_b_term,
            grad_w_prior,
            grad_b_prior,
            None,
        )


def _time_major_projections(
    embed: nn.Sequential, gru: nn.GRU, inputs: torch.Tensor, native: bool
) -> torch.Tensor:
    """``gi_j = W_ih relu(W_e x_j + b_e) + b_ih`` of every step of ``inputs`` (N, T, D),
    time-major (T, N, 3H): one C pass of
    :class:`~provenml.metarl.native.NativeInputProjection` where it runs (``native``, data
    inputs without gradient, ``D <= 64``, ``E`` a multiple of 16), else PyTorch's layers."""
    linear = embed[0]
    assert isinstance(linear, nn.Linear)
    if (
        native
        and not inputs.requires_grad
        and inputs.shape[-1] <= 64
        and linear.out_features % 16 == 0
    ):
        return NativeInputProjection.apply(
            inputs, linear.weight, linear.bias, gru.weight_ih_l0, gru.bias_ih_l0
        )
    embedded = embed(inputs)  # all steps at once; only the recurrence loops
    return F.linear(embedded, gru.weight_ih_l0, gru.bias_ih_l0).transpose(0, 1).contiguous()


def gru_states(
    embed: nn.Sequential,
    gru: nn.GRU,
    inputs: torch.Tensor,
    h0: torch.Tensor,
    native: bool = True,
) -> torch.Tensor:
    """The states ``h_1..h_T`` (N, T, H) of the one-layer ``gru`` (Cho et al. 2014, as
    ``torch.nn.GRU`` computes it) over ``embed(inputs)`` (``inputs`` (N, T, D), ``embed`` a
    Linear and a ReLU) from ``h0`` (N, H): VariBAD's encoder recurrence and RL2's policy
    memory. On float32 CPU tensors (``native`` and
    :func:`~provenml.metarl.native.native_recurrence_available`) the input projection and the
    recurrence run as C kernels, forward and backward; elsewhere one ``torch.nn.GRU`` call.
    ``tests/metarl/test_recurrence.py`` checks that the two agree."""
    linear = embed[0]
    assert isinstance(linear, nn.Linear)
    width, hidden = linear.in_features, gru.hidden_size
    if inputs.dim() != 3 or inputs.shape[-1] != width:
        raise ProvenmlError(f"the GRU takes sequences (N, T, {width}); got {tuple(inputs.shape)}")
    if tuple(h0.shape) != (inputs.shape[0], hidden):
        raise ProvenmlError(
            f"h0 must be (N, {hidden}) for {inputs.shape[0]} sequences; got {tuple(h0.shape)}"
        )
    if not (native and native_recurrence_available(inputs, hidden)):
        return gru(embed(inputs), h0[None])[0]
    gi = _time_major_projections(embed, gru, inputs, native=True)
    hs = NativeRecurrence.apply(gi, h0, gru.weight_hh_l0, gru.bias_hh_l0, *(None,) * 4, True)[0]
    return hs.transpose(0, 1)


def gru_stepper(
    embed: nn.Sequential, gru: nn.GRU, native: bool = True
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """One step of :func:`gru_states` for acting: ``step(h_prev, x)`` returns ``h_j`` (N, H)
    for one transition ``x`` (N, D) of every environment. Where the C recurrence runs it is
    one :class:`~provenml.metarl.native.RecurrenceStepper` call with the weights as of this
    call (build one per rollout, a new one after training); with gradients enabled, or
    where the kernel does not run, one ``torch.nn.GRU`` step."""

    def torch_step(h_prev: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return gru(embed(x)[:, None], h_prev[None])[0][:, 0]

    weight = gru.weight_hh_l0
    if not (native and native_recurrence_available(weight, gru.hidden_size)):
        return torch_step
    kernel = RecurrenceStepper(weight, gru.bias_hh_l0, None, None, None, None)

    def step(h_prev: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():  # the kernel step has no backward: autograd's path
            return torch_step(h_prev, x)
        return kernel(F.linear(embed(x), gru.weight_ih_l0, gru.bias_ih_l0), h_prev)

    return step


class BeliefEncoder(nn.Module):
    """The VariBAD GRU encoder; with ``session_aware`` it is DynaMITE-RL's (termination head,
    gated session reset, optional prior conditioning).

    Input of transition j: ``[one_hot(a_j) or a_j, r_j, s_{j+1}]`` through a ReLU embedding.
    Over a whole sequence (``forward``) both recurrences run as one C kernel, forward and
    backward (:class:`~provenml.metarl.native.NativeRecurrence`) on float32 CPU tensors;
    elsewhere VariBAD's is one fused ``torch.nn.GRU`` call and DynaMITE-RL's gated one is
    ``_SessionAwareRecurrence`` (the same maths as ``step`` repeated, with a hand-written
    backward pass); ``step`` advances one transition (acting, no gradients needed).

    ``termination_into_gru`` (default True, the method): whether the termination head's loss
    trains the recurrence; False makes the head read a detached ``h_raw`` (a diagnostic of
    the p = 0 runs in docs/metarl.md). ``gate_while_acting`` (default True): False holds the
    gate shut in ``step`` (the same weights acting on the plain GRU branch; a diagnostic).
    """

    termination_into_gru: bool = True
    # False keeps the PyTorch recurrence where the native kernel could run (native.py; the
    # tests compare the two); the kernel runs only on float32 CPU tensors in any case
    native: bool = True
    # False holds the gate shut while acting (``step`` returns ``h_raw``): a diagnostic of the
    # p = 0 runs (benchmarks/bench_metarl_p0_gate.py), never set by the method
    gate_while_acting: bool = True

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        latent_dim: int = 5,
        hidden: int = 64,
        embed: int = 32,
        *,
        session_aware: bool = False,
        prior_conditioning: bool = True,
    ) -> None:
        super().__init__()
        self.session_aware, self.prior_conditioning = session_aware, prior_conditioning
        self.hidden, self.latent_dim = hidden, latent_dim
        self.embed = nn.Sequential(nn.Linear(action_dim + 1 + obs_dim, embed), nn.ReLU())
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2 * latent_dim)
        if session_aware:
            self.termination = nn.Linear(hidden, 1)
            if prior_conditioning:
                self.prior_net = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh())

    @property
    def input_width(self) -> int:
        """The width of one transition ``[action, reward, next observation]``."""
        linear = self.embed[0]
        assert isinstance(linear, nn.Linear)
        return linear.in_features

    def _check_step(self, h_prev: torch.Tensor, x: torch.Tensor) -> None:
        """One step's inputs must fit the encoder (the C step reads them by these sizes)."""
        width = self.input_width
        if x.dim() != 2 or x.shape[1] != width:
            raise ProvenmlError(
                f"one step's transitions must be (N, {width}); got {tuple(x.shape)}"
            )
        if tuple(h_prev.shape) != (x.shape[0], self.hidden):
            raise ProvenmlError(
                f"the state must be (N, {self.hidden}) for {x.shape[0]} transitions; got "
                f"{tuple(h_prev.shape)}"
            )

    def initial(self, num_envs: int) -> torch.Tensor:
        weight = self.head.weight
        return torch.zeros(num_envs, self.hidden, dtype=weight.dtype, device=weight.device)

    def gaussian(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(h).chunk(2, dim=-1)
        return mu, logvar.clamp(-8.0, 4.0)

    def session_start_state(self, h_prev: torch.Tensor) -> torch.Tensor:
        """Hidden state opening a new session: ``prior_net(h_prev)`` (prior conditioning on the
        previous session's final belief) or the fresh initial state (ablation)."""
        if self.prior_conditioning:
            return self.prior_net(h_prev)
        return torch.zeros_like(h_prev)

    def _input_projection(self, e: torch.Tensor) -> torch.Tensor:
        """``W_ih e + b_ih`` of the GRU (both session branches read the same transition)."""
        return F.linear(e, self.gru.weight_ih_l0, self.gru.bias_ih_l0)

    def step(
        self, h_prev: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """One transition for all environments. Returns ``(h_j, termination_logit, h_start)``.

        Session-aware: ``h_j = (1 - c) GRU(x, h_{j-1}) + c GRU(x, h_start)`` with
        ``c = sigmoid(termination_logit)`` detached (the head learns only from the flags).
        """
        self._check_step(h_prev, x)
        e = self.embed(x)
        if (
            self.native
            and (self.gate_while_acting or not self.session_aware)
            and native_recurrence_available(e, self.hidden)
        ):  # one step of the C recurrence (native.py): same maths, a fraction of the ops
            prior = self.prior_net[0] if self.session_aware and self.prior_conditioning else None
            term = self.termination if self.session_aware else None
            hs, logits, starts = NativeRecurrence.apply(
                self._input_projection(e)[None],
                h_prev,
                self.gru.weight_hh_l0,
                self.gru.bias_hh_l0,
                None if term is None else term.weight,
                None if term is None else term.bias,
                None if prior is None else prior.weight,
                None if prior is None else prior.bias,
                self.termination_into_gru,
            )
            if not self.session_aware:
                return hs[0], None, None
            return hs[0], logits[0], starts[0]
        if not self.session_aware:
            return self.gru(e[:, None], h_prev[None])[0][:, 0], None, None
        h_start = self.session_start_state(h_prev)
        h_out = _gru_branches(
            self._input_projection(e),
            torch.stack([h_prev, h_start]),
            self.gru.weight_hh_l0,
            self.gru.bias_hh_l0,
        )[0]
        h_raw, h_new = h_out[0], h_out[1]
        logit = self.termination(h_raw).squeeze(-1)
        if not self.gate_while_acting:
            return h_raw, logit, h_start
        gate = torch.sigmoid(logit).detach()[:, None]
        return (1 - gate) * h_raw + gate * h_new, logit, h_start

    def stepper(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``step`` for one rollout: ``stepper(h_prev, x)`` returns ``h_j``, the first output
        of ``step(h_prev, x)``, with the same numbers. Where ``step`` would run the C
        recurrence, the kernel's weight copies are made once, here
        (:class:`~provenml.metarl.native.RecurrenceStepper`), so build the stepper where the
        weights stop changing (a rollout) and a new one after training; with gradients
        enabled it calls ``step`` itself."""
        weight = self.gru.weight_hh_l0
        if not (
            self.native
            and (self.gate_while_acting or not self.session_aware)
            and native_recurrence_available(weight, self.hidden)
        ):
            return lambda h_prev, x: self.step(h_prev, x)[0]
        prior = self.prior_net[0] if self.session_aware and self.prior_conditioning else None
        term = self.termination if self.session_aware else None
        kernel = RecurrenceStepper(
            weight,
            self.gru.bias_hh_l0,
            None if term is None else term.weight,
            None if term is None else term.bias,
            None if prior is None else prior.weight,
            None if prior is None else prior.bias,
        )

        def step(h_prev: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            if torch.is_grad_enabled():  # the kernel step has no backward: autograd's path
                return self.step(h_prev, x)[0]
            self._check_step(h_prev, x)
            return kernel(self._input_projection(self.embed(x)), h_prev)

        return step

    def forward(self, inputs: torch.Tensor) -> BeliefSequence:
        """Encode (N, H, in_dim) transitions into posteriors ``post_0..post_{H-1}``."""
        width = self.input_width
        if inputs.dim() != 3 or inputs.shape[-1] != width:
            raise ProvenmlError(
                f"the encoder takes transitions (N, T, {width}), [action, reward, next "
                f"observation] per step; got {tuple(inputs.shape)}"
            )
        num_envs = inputs.shape[0]
        h0 = self.initial(num_envs)
        init_mu, init_logvar = self.gaussian(h0)
        cond_mu = cond_logvar = term = None
        if not self.session_aware:  # the C kernels where they run (native.py), else nn.GRU
            hs = gru_states(self.embed, self.gru, inputs, h0, self.native)
        else:
            native = self.native and native_recurrence_available(inputs, self.hidden)
            gi = _time_major_projections(self.embed, self.gru, inputs, native)
            prior = self.prior_net[0] if self.prior_conditioning else None
            recurrence = NativeRecurrence if native else _SessionAwareRecurrence
            hs_t, logits_t, starts_t = recurrence.apply(
                gi,
                h0,
                self.gru.weight_hh_l0,
                self.gru.bias_hh_l0,
                self.termination.weight,
                self.termination.bias,
                None if prior is None else prior.weight,
                None if prior is None else prior.bias,
                self.termination_into_gru,
            )
            hs = hs_t.transpose(0, 1)
            cond_mu, cond_logvar = self.gaussian(starts_t.transpose(0, 1))
            term = logits_t.t()
        mu, logvar = self.gaussian(hs)
        prev_mu = torch.cat([init_mu[:, None], mu[:, :-1]], 1)
        prev_logvar = torch.cat([init_logvar[:, None], logvar[:, :-1]], 1)
        return BeliefSequence(
            mu, logvar, prev_mu, prev_logvar, cond_mu, cond_logvar, term, init_mu, init_logvar
        )


class RewardDecoder(nn.Module):
    """``p(r_j | m, s_{j+1})``: a Gaussian with unit variance, i.e. a squared-error decoder."""

    # False keeps PyTorch's layers where the native pair kernel could run (native.py; the
    # tests compare the two)
    native: bool = True

    def __init__(self, obs_dim: int, latent_dim: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(obs_dim + latent_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, latent: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """Predicted reward; ``latent`` (..., D) and ``next_obs`` (..., obs_dim) broadcast
        against each other, so every latent can decode every step without materialising the
        concatenated (latents x steps) input: the first layer is applied to each part.

        The ELBO's pairing, ``latent`` (N, K, 1, D) against ``next_obs`` (N, 1, T, obs_dim),
        runs the two layers after the first as one C kernel
        (:class:`~provenml.metarl.native.NativePairDecoder`, the same maths) on float32 CPU
        tensors where the hand-written kernels are on."""
        first, second, third = self.net[0], self.net[2], self.net[4]
        assert isinstance(first, nn.Linear)
        assert isinstance(second, nn.Linear) and isinstance(third, nn.Linear)
        latent_dim = latent.shape[-1]
        first_latent = F.linear(latent, first.weight[:, :latent_dim])
        first_transition = F.linear(next_obs, first.weight[:, latent_dim:], first.bias)
        if (
            self.native
            and latent.dim() == 4
            and next_obs.dim() == 4
            and latent.shape[2] == 1
            and next_obs.shape[1] == 1
            and latent.shape[0] == next_obs.shape[0]
            and native_pair_decoder_available(first_latent, first.out_features)
        ):
            return NativePairDecoder.apply(
                first_latent[:, :, 0],
                first_transition[:, 0],
                second.weight,
                second.bias,
                third.weight,
                third.bias,
            )
        return self.net[1:](first_latent + first_transition).squeeze(-1)


class CellRewardDecoder(nn.Module):
    """VariBAD's grid-world reward decoder (Zintgraf et al. 2020, App. B): one output head per
    grid cell, ``p(r | m, cell) = N(head_cell(m), 1)``, scored at the cell the agent entered.

    The latent alone predicts the reward of every cell, so it has to say *which* cell pays,
    a fact that holds wherever the agent stands. A decoder that also reads the state can
    settle for "the cell I am on pays", a code that loses its meaning once the agent walks
    away. ``next_obs[..., :2]`` is the agent's (x, y) divided by ``size - 1``.
    """

    def __init__(self, size: int, latent_dim: int, hidden: int = 32) -> None:
        super().__init__()
        self.size = size
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, size * size),
        )

    def cell_index(self, next_obs: torch.Tensor) -> torch.Tensor:
        xy = torch.round(next_obs[..., :2] * (self.size - 1)).long()
        return xy[..., 0] * self.size + xy[..., 1]

    def forward(self, latent: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """Predicted reward; ``latent`` (..., D) and ``next_obs`` (..., obs_dim) broadcast."""
        per_cell = self.net(latent)  # (..., cells)
        cells = self.cell_index(next_obs)
        shape = torch.broadcast_shapes(per_cell.shape[:-1], cells.shape)
        if per_cell.dim() == len(shape) + 1 and per_cell.shape[:-1] == (*shape[:-1], 1):
            # one latent per row of steps (the ELBO's (N, k, 1) x (N, 1, H)): gather the H
            # cells from each latent's row instead of expanding it to (N, k, H, cells)
            return torch.gather(per_cell[..., 0, :], -1, cells.expand(shape))
        return torch.gather(per_cell.expand(*shape, -1), -1, cells.expand(shape)[..., None])[..., 0]


@dataclass
class BeliefLossConfig:
    """Weights of the belief-model losses and which DynaMITE-RL changes are on."""

    kl_weight: float = 0.1
    consistency_weight: float = 1.0
    termination_weight: float = 1.0
    elbo_subsample: int = 12
    consistency: bool = False
    session_masking: bool = False


def belief_losses(
    encoder: BeliefEncoder,
    decoder: RewardDecoder | CellRewardDecoder,
    inputs: torch.Tensor,
    next_obs: torch.Tensor,
    rewards: torch.Tensor,
    session_end: torch.Tensor,
    cfg: BeliefLossConfig,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The VariBAD ELBO (eq. 8) with DynaMITE-RL's changes; returns (loss, parts).

    * Reconstruction: for a random subsample of ``elbo_subsample`` latent steps t (as VariBAD
      does to save compute), sample ``m ~ post_t`` and sum the squared errors of the decoded
      rewards of all transitions j (VariBAD) or of t's own session only (session masking).
    * KL: ``KL(post_j || post_{j-1})`` (VariBAD); for DynaMITE-RL, at a true session start the
      target is the session prior ``p(m | previous session's final belief)`` instead; plus
      ``KL(post_init || N(0, I))``.
    * Consistency (if on) and the termination head's cross-entropy on the env's flags.
    """
    beliefs = encoder(inputs)
    horizon = rewards.shape[1]
    steps = torch.randperm(horizon, generator=generator)[: min(cfg.elbo_subsample, horizon)]
    mu_t, logvar_t = beliefs.mu[:, steps], beliefs.logvar[:, steps]
    latent = mu_t + torch.randn(mu_t.shape, generator=generator) * torch.exp(0.5 * logvar_t)
    decoded = decoder(latent[:, :, None], next_obs[:, None])  # (N, k, H)
    squared = (decoded - rewards[:, None]) ** 2  # (N, k, H)
    if cfg.session_masking:
        squared = squared * session_reconstruction_mask(session_end, steps)
    # summed over the decoded transitions, as in the ELBO (VariBAD eq. 8): a single surprising
    # reward (the first 0 on a goal) must outweigh the KL cost of moving the posterior
    reconstruction = squared.sum(-1).mean()

    prev_mu, prev_logvar = beliefs.prev_mu, beliefs.prev_logvar
    if encoder.session_aware:
        assert beliefs.cond_mu is not None and beliefs.cond_logvar is not None
        opens = session_starts(session_end)[..., None]
        prev_mu = torch.where(opens, beliefs.cond_mu, prev_mu)
        prev_logvar = torch.where(opens, beliefs.cond_logvar, prev_logvar)
    kl = gaussian_kl(beliefs.mu, beliefs.logvar, prev_mu, prev_logvar).mean()
    zeros = torch.zeros_like(beliefs.init_mu)
    kl = kl + gaussian_kl(beliefs.init_mu, beliefs.init_logvar, zeros, zeros).mean() / horizon
    loss = reconstruction + cfg.kl_weight * kl
    parts = {"reconstruction": reconstruction.item(), "kl": kl.item()}
    if cfg.consistency:
        consistency = consistency_loss(beliefs.mu, beliefs.logvar, session_end) / horizon
        loss = loss + cfg.consistency_weight * consistency
        parts["consistency"] = consistency.item()
    if beliefs.termination_logit is not None:
        targets = session_starts(session_end).float()
        termination = F.binary_cross_entropy_with_logits(beliefs.termination_logit, targets)
        loss = loss + cfg.termination_weight * termination
        parts["termination"] = termination.item()
    return loss, parts
