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

from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Normal, kl_divergence
from torch.nn import functional as F


def gaussian_kl(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """``KL(N(mu_q, var_q) || N(mu_p, var_p))`` of diagonal Gaussians, summed over the last dim."""
    q = Normal(mu_q, torch.exp(0.5 * logvar_q))
    p = Normal(mu_p, torch.exp(0.5 * logvar_p))
    return kl_divergence(q, p).sum(-1)


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


class BeliefEncoder(nn.Module):
    """The VariBAD GRU encoder; with ``session_aware`` it is DynaMITE-RL's (termination head,
    gated session reset, optional prior conditioning).

    Input of transition j: ``[one_hot(a_j) or a_j, r_j, s_{j+1}]`` through a ReLU embedding.
    """

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
        self.gru = nn.GRUCell(embed, hidden)
        self.head = nn.Linear(hidden, 2 * latent_dim)
        if session_aware:
            self.termination = nn.Linear(hidden, 1)
            if prior_conditioning:
                self.prior_net = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh())

    def initial(self, num_envs: int) -> torch.Tensor:
        return torch.zeros(num_envs, self.hidden)

    def gaussian(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(h).chunk(2, dim=-1)
        return mu, logvar.clamp(-8.0, 4.0)

    def session_start_state(self, h_prev: torch.Tensor) -> torch.Tensor:
        """Hidden state opening a new session: ``prior_net(h_prev)`` (prior conditioning on the
        previous session's final belief) or the fresh initial state (ablation)."""
        if self.prior_conditioning:
            return self.prior_net(h_prev)
        return torch.zeros_like(h_prev)

    def step(
        self, h_prev: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """One transition for all environments. Returns ``(h_j, termination_logit, h_start)``.

        Session-aware: ``h_j = (1 - c) GRU(x, h_{j-1}) + c GRU(x, h_start)`` with
        ``c = sigmoid(termination_logit)`` detached (the head learns only from the flags).
        """
        return self._recur(h_prev, self.embed(x))

    def _recur(
        self, h_prev: torch.Tensor, e: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``step`` on an already embedded transition ``e`` (the two GRU branches of the
        session-aware update run as one batched call)."""
        if not self.session_aware:
            return self.gru(e, h_prev), None, None
        h_start = self.session_start_state(h_prev)
        h_raw, h_new = self.gru(torch.cat([e, e]), torch.cat([h_prev, h_start])).chunk(2)
        logit = self.termination(h_raw).squeeze(-1)
        gate = torch.sigmoid(logit).detach()[:, None]
        return (1 - gate) * h_raw + gate * h_new, logit, h_start

    def forward(self, inputs: torch.Tensor) -> BeliefSequence:
        """Encode (N, H, in_dim) transitions into posteriors ``post_0..post_{H-1}``."""
        num_envs, horizon, _ = inputs.shape
        h = self.initial(num_envs)
        init_mu, init_logvar = self.gaussian(h)
        hs, logits, starts = [], [], []
        embedded = self.embed(inputs)  # all steps at once; only the recurrence loops
        for j in range(horizon):
            h, logit, h_start = self._recur(h, embedded[:, j])
            hs.append(h)
            logits.append(logit)
            starts.append(h_start)
        mu, logvar = self.gaussian(torch.stack(hs, 1))
        prev_mu = torch.cat([init_mu[:, None], mu[:, :-1]], 1)
        prev_logvar = torch.cat([init_logvar[:, None], logvar[:, :-1]], 1)
        cond_mu = cond_logvar = term = None
        if self.session_aware:
            cond_mu, cond_logvar = self.gaussian(torch.stack(starts, 1))  # type: ignore[arg-type]
            term = torch.stack(logits, 1)  # type: ignore[arg-type]
        return BeliefSequence(
            mu, logvar, prev_mu, prev_logvar, cond_mu, cond_logvar, term, init_mu, init_logvar
        )


class RewardDecoder(nn.Module):
    """``p(r_j | m, s_{j+1})``: a Gaussian with unit variance, i.e. a squared-error decoder."""

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
        concatenated (latents x steps) input: the first layer is applied to each part."""
        first = self.net[0]
        assert isinstance(first, nn.Linear)
        latent_dim = latent.shape[-1]
        hidden = F.linear(latent, first.weight[:, :latent_dim]) + F.linear(
            next_obs, first.weight[:, latent_dim:], first.bias
        )
        return self.net[1:](hidden).squeeze(-1)


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
