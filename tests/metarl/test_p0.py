"""What of DynaMITE-RL is active when no session ever ends (p = 0; issue 22, item 2).

With one session per episode, session masking and the conditioned-prior KL target are inert
and, once the gate is shut, the gated recurrence is VariBAD's GRU. Two parts are not inert:
the termination head's loss (targets all 0) and the latent-consistency hinge (within the one
session) both send gradients into the shared GRU. docs/metarl.md has the runs that measure
what each does to the return.
"""

from __future__ import annotations

import torch

from provenml.metarl.belief import BeliefEncoder, BeliefLossConfig, CellRewardDecoder, belief_losses


def _batch(num_envs: int = 4, horizon: int = 20) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    inputs = torch.randn(num_envs, horizon, 12)
    next_obs = torch.rand(num_envs, horizon, 6)
    rewards = torch.randn(num_envs, horizon)
    no_session_end = torch.zeros(num_envs, horizon, dtype=torch.bool)
    return inputs, next_obs, rewards, no_session_end


def _grads(
    encoder: BeliefEncoder, decoder: CellRewardDecoder, cfg: BeliefLossConfig
) -> dict[str, torch.Tensor]:
    inputs, next_obs, rewards, ends = _batch()
    encoder.zero_grad()
    decoder.zero_grad()
    loss, _ = belief_losses(
        encoder, decoder, inputs, next_obs, rewards, ends, cfg, torch.Generator().manual_seed(1)
    )
    loss.backward()
    return {
        n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
        for n, p in encoder.named_parameters()
    }


def _models(**flags: bool) -> tuple[BeliefEncoder, CellRewardDecoder]:
    torch.manual_seed(2)
    return BeliefEncoder(6, 5, session_aware=True, **flags), CellRewardDecoder(5, 5)


def test_shut_gate_at_p0_is_varibads_gru() -> None:
    encoder, _ = _models()
    torch.nn.init.constant_(encoder.termination.bias, -1e4)  # sigmoid(-1e4) == 0.0
    plain = BeliefEncoder(6, 5)
    plain.load_state_dict(
        {k: v for k, v in encoder.state_dict().items() if k in plain.state_dict()}
    )
    inputs = _batch()[0]
    torch.testing.assert_close(encoder(inputs).mu, plain(inputs).mu, rtol=0, atol=1e-6)


def test_masking_and_the_prior_target_are_inert_at_p0() -> None:
    off = BeliefLossConfig(consistency=False, session_masking=False, termination_weight=0.0)
    masked = BeliefLossConfig(consistency=False, session_masking=True, termination_weight=0.0)
    encoder, decoder = _models()
    a, b = _grads(encoder, decoder, off), _grads(encoder, decoder, masked)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    # with the gate shut the prior net gets no gradient at all: no session opens
    torch.nn.init.constant_(encoder.termination.bias, -1e4)
    grads = _grads(encoder, decoder, off)
    assert grads["prior_net.0.weight"].abs().max().item() == 0.0


def test_termination_and_consistency_train_the_gru_at_p0() -> None:
    base = BeliefLossConfig(consistency=False, session_masking=True, termination_weight=0.0)
    with_head = BeliefLossConfig(consistency=False, session_masking=True)
    with_consistency = BeliefLossConfig(
        consistency=True, session_masking=True, termination_weight=0.0
    )
    encoder, decoder = _models()
    reference = _grads(encoder, decoder, base)["gru.weight_hh_l0"]
    for cfg in (with_head, with_consistency):
        changed = _grads(encoder, decoder, cfg)["gru.weight_hh_l0"] - reference
        assert changed.abs().max().item() > 1e-6  # exactly 0 if the term did not reach it
    # detached, the head's loss no longer reaches the GRU
    encoder.termination_into_gru = False
    changed = _grads(encoder, decoder, with_head)["gru.weight_hh_l0"] - reference
    assert changed.abs().max().item() == 0.0


def test_gate_held_shut_while_acting_steps_the_plain_gru_branch() -> None:
    """``gate_while_acting = False`` (the diagnostic of bench_metarl_p0_gate.py): ``step``
    returns the GRU update of the previous state, whatever the termination head says."""
    torch.manual_seed(0)
    encoder = BeliefEncoder(6, 5, session_aware=True)
    torch.nn.init.constant_(encoder.termination.bias, 5.0)  # a gate of ~0.99: wide open
    h_prev, x = torch.randn(3, encoder.hidden), torch.randn(3, 12)
    with torch.no_grad():
        gated, logit, _ = encoder.step(h_prev, x)
        encoder.gate_while_acting = False
        shut, logit_shut, _ = encoder.step(h_prev, x)
        plain = encoder.gru(encoder.embed(x)[:, None], h_prev[None])[0][:, 0]
    torch.testing.assert_close(shut, plain, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logit_shut, logit)
    assert (gated - shut).abs().max() > 1e-3  # with the gate open, step differs
