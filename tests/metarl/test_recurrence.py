"""The fused belief recurrences equal the step-by-step ones they replaced (issue 22)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import provenml.nn.native as nn_native
from provenml.errors import ProvenmlError
from provenml.metarl import native
from provenml.metarl.agents import RL2Agent, Rollout, make_agent
from provenml.metarl.belief import (
    BeliefEncoder,
    CellRewardDecoder,
    RewardDecoder,
    gru_states,
    gru_stepper,
)
from provenml.rl import ActorCritic, SigmoidTanh


def reference_recurrence(
    enc: BeliefEncoder, inputs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The encoder's recurrence as it was written before the fused version (git 9eb247f): a
    Python loop of ``nn.GRUCell`` steps; session-aware, both branches of the gated update
    ``h_j = (1 - c) GRU(e_j, h_{j-1}) + c GRU(e_j, h_start)``, ``c = sg[sigmoid(logit)]``.
    The cell shares the encoder's GRU parameters, so gradients can be compared too."""
    cell = nn.GRUCell(enc.gru.input_size, enc.hidden)
    del cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh
    cell.weight_ih = enc.gru.weight_ih_l0
    cell.weight_hh = enc.gru.weight_hh_l0
    cell.bias_ih = enc.gru.bias_ih_l0
    cell.bias_hh = enc.gru.bias_hh_l0
    num_envs, horizon, _ = inputs.shape
    h = enc.initial(num_envs)
    embedded = enc.embed(inputs)
    hs, logits, starts = [], [], []
    for j in range(horizon):
        e = embedded[:, j]
        if not enc.session_aware:
            h = cell(e, h)
            hs.append(h)
            continue
        h_start = enc.session_start_state(h)
        h_raw, h_new = cell(torch.cat([e, e]), torch.cat([h, h_start])).chunk(2)
        logit = enc.termination(h_raw).squeeze(-1)
        gate = torch.sigmoid(logit).detach()[:, None]
        h = (1 - gate) * h_raw + gate * h_new
        hs.append(h)
        logits.append(logit)
        starts.append(h_start)
    if not enc.session_aware:
        return torch.stack(hs, 1), None, None
    return torch.stack(hs, 1), torch.stack(logits, 1), torch.stack(starts, 1)


ENCODERS = [
    pytest.param(False, False, id="varibad"),
    pytest.param(True, True, id="dynamite"),
    pytest.param(True, False, id="dynamite_no_prior"),
]


def _loss(
    mu: torch.Tensor, logit: torch.Tensor | None, cond_mu: torch.Tensor | None
) -> torch.Tensor:
    """A loss that weighs every output differently (so no gradient path cancels)."""
    gen = torch.Generator().manual_seed(7)
    loss = (mu * torch.randn(mu.shape, generator=gen, dtype=mu.dtype)).sum()
    if logit is not None and cond_mu is not None:
        loss = loss + (logit * torch.randn(logit.shape, generator=gen, dtype=logit.dtype)).sum()
        loss = loss + (cond_mu * torch.randn(cond_mu.shape, generator=gen, dtype=mu.dtype)).sum()
    return loss


@pytest.mark.parametrize(("session_aware", "prior"), ENCODERS)
def test_fused_recurrence_equals_the_step_loop(session_aware: bool, prior: bool) -> None:
    torch.manual_seed(0)
    enc = BeliefEncoder(6, 5, session_aware=session_aware, prior_conditioning=prior).double()
    if session_aware:  # a gate far from 0 and 1, so both branches matter
        nn.init.normal_(enc.termination.weight, std=0.5)
    inputs = torch.randn(5, 23, 12, dtype=torch.float64)
    fused = enc(inputs)
    ref_h, ref_logit, ref_start = reference_recurrence(enc, inputs)
    ref_mu, ref_logvar = enc.gaussian(ref_h)
    torch.testing.assert_close(fused.mu, ref_mu, rtol=0, atol=1e-12)
    torch.testing.assert_close(fused.logvar, ref_logvar, rtol=0, atol=1e-12)
    ref_cond = None
    if session_aware:
        assert ref_logit is not None and ref_start is not None
        assert fused.termination_logit is not None and fused.cond_mu is not None
        gate = torch.sigmoid(ref_logit)
        assert 0.05 < gate.mean().item() < 0.95
        torch.testing.assert_close(fused.termination_logit, ref_logit, rtol=0, atol=1e-12)
        ref_cond = enc.gaussian(ref_start)[0]
        torch.testing.assert_close(fused.cond_mu, ref_cond, rtol=0, atol=1e-12)
    enc.zero_grad()
    _loss(fused.mu, fused.termination_logit, fused.cond_mu).backward()
    grads = {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}
    enc.zero_grad()
    _loss(ref_mu, ref_logit, ref_cond).backward()
    ref_grads = {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}
    assert sorted(grads) == sorted(ref_grads)
    for name, grad in grads.items():
        assert grad.abs().max().item() > 0.0, name
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-9, atol=1e-10, msg=name)


@pytest.mark.parametrize(("session_aware", "prior"), ENCODERS)
@pytest.mark.parametrize("native_step", [True, False])
def test_step_by_step_acting_matches_the_sequence(
    session_aware: bool, prior: bool, native_step: bool
) -> None:
    """The one-step update used while acting (one step of the C recurrence, or PyTorch's)
    gives the same beliefs and termination logits as the fused sequence."""
    torch.manual_seed(1)
    enc = BeliefEncoder(6, 5, session_aware=session_aware, prior_conditioning=prior)
    inputs = torch.randn(4, 15, 12)
    with torch.no_grad():
        fused = enc(inputs)
        enc.native = native_step
        h = enc.initial(4)
        for j in range(15):
            h, logit, _ = enc.step(h, inputs[:, j])
            torch.testing.assert_close(enc.gaussian(h)[0], fused.mu[:, j], rtol=0, atol=1e-5)
            if session_aware:
                assert logit is not None and fused.termination_logit is not None
                torch.testing.assert_close(logit, fused.termination_logit[:, j], rtol=0, atol=1e-5)


@pytest.mark.parametrize(("session_aware", "prior"), ENCODERS)
@pytest.mark.parametrize("native_step", [True, False])
def test_stepper_gives_exactly_what_step_gives(
    session_aware: bool, prior: bool, native_step: bool
) -> None:
    """``BeliefEncoder.stepper()`` (one rollout's acting step, weights copied once) returns
    bit for bit ``step``'s state, keeps the weights of its construction when the model
    trains afterwards, and takes autograd's path when gradients are on."""
    torch.manual_seed(2)
    enc = BeliefEncoder(6, 5, session_aware=session_aware, prior_conditioning=prior)
    enc.native = native_step
    inputs = torch.randn(7, 10, 12)
    with torch.no_grad():
        step = enc.stepper()
        h_ref = h = enc.initial(7)
        for j in range(10):
            h_ref = enc.step(h_ref, inputs[:, j])[0]
            h = step(h, inputs[:, j])
            assert torch.equal(h, h_ref)
        before = enc.step(h_ref, inputs[:, 0])[0]
        for param in enc.parameters():  # a training step after the rollout began
            param.add_(0.1)
        # the kernel stepper's recurrence keeps its weights (the input side is the live
        # model's); PyTorch's stepper is ``step`` itself
        kept = not torch.equal(step(h, inputs[:, 0]), enc.step(h, inputs[:, 0])[0])
        assert kept == (native_step and native.native_recurrence_available(h, 64))
        fresh = enc.stepper()
        assert torch.equal(fresh(h, inputs[:, 0]), enc.step(h, inputs[:, 0])[0])
        assert not torch.equal(fresh(h, inputs[:, 0]), before)
    h_grad = fresh(h.requires_grad_(), inputs[:, 1])  # gradients on: autograd's step
    assert h_grad.requires_grad
    h_grad.sum().backward()
    assert enc.gru.weight_hh_l0.grad is not None


def test_recurrence_stepper_rejects_mismatched_shapes() -> None:
    enc = BeliefEncoder(6, 5)
    if not native.native_recurrence_available(torch.zeros(1), 64):
        pytest.skip("no C compiler")
    stepper = native.RecurrenceStepper(enc.gru.weight_hh_l0, enc.gru.bias_hh_l0, *(None,) * 4)
    with pytest.raises(ProvenmlError, match="gi"):
        stepper(torch.zeros(3, 100), torch.zeros(3, 64))


def test_encoder_inputs_that_do_not_fit_are_refused() -> None:
    """The C paths read the encoder's inputs by its sizes: wrong widths, row counts or
    states are a ProvenmlError naming the shapes, never an out-of-bounds read."""
    enc = BeliefEncoder(6, 5, session_aware=True)
    with pytest.raises(ProvenmlError, match=r"\(N, T, 12\)"):
        enc(torch.randn(2, 5, 20))
    with torch.no_grad():
        with pytest.raises(ProvenmlError, match=r"\(N, 12\)"):
            enc.step(torch.zeros(2, 64), torch.randn(2, 20))
        with pytest.raises(ProvenmlError, match="state must be"):
            enc.stepper()(torch.zeros(3, 64), torch.randn(2, 12))
    if native.native_recurrence_available(torch.zeros(1), 64):
        gru = enc.gru
        with pytest.raises(ProvenmlError, match="recurrence needs"):
            native.NativeRecurrence.apply(
                torch.zeros(4, 2, 150), torch.zeros(2, 64), gru.weight_hh_l0, gru.bias_hh_l0,
                *(None,) * 4, True,
            )  # fmt: skip
        linear = enc.embed[0]
        with pytest.raises(ProvenmlError, match="input projection needs"):
            native.NativeInputProjection.apply(
                torch.zeros(2, 4, 20), linear.weight, linear.bias, gru.weight_ih_l0,
                gru.bias_ih_l0,
            )  # fmt: skip
        with pytest.raises(ProvenmlError, match="D <= 64"):
            wide = torch.zeros(32, 70)
            native.NativeInputProjection.apply(
                torch.zeros(2, 4, 70), wide, linear.bias, gru.weight_ih_l0, gru.bias_ih_l0
            )


def test_cell_decoder_row_gather_equals_the_expanded_gather() -> None:
    torch.manual_seed(2)
    dec = CellRewardDecoder(5, 3)
    latent = torch.randn(4, 6, 1, 3)  # (N, k, 1, D): one latent per row, as in the ELBO
    next_obs = torch.rand(4, 1, 9, 6)  # (N, 1, H, obs)
    fast = dec(latent, next_obs)  # the row gather
    slow = dec(latent.expand(4, 6, 9, 3), next_obs)  # the general path
    assert fast.shape == (4, 6, 9)
    torch.testing.assert_close(fast, slow)
    per_cell = dec.net(latent[:, 2, 0])  # latent 2 of every env, decoded at step 4
    expected = per_cell.gather(1, dec.cell_index(next_obs[:, 0, 4])[:, None])[:, 0]
    torch.testing.assert_close(fast[:, 2, 4], expected)


def test_sigmoid_tanh_is_tanh() -> None:
    x = torch.linspace(-30, 30, 20001, requires_grad=True)
    y = SigmoidTanh()(x)
    torch.testing.assert_close(y, torch.tanh(x), rtol=0, atol=3e-7)
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, 1 - torch.tanh(x.detach()) ** 2, rtol=0, atol=1e-6)
    torch.manual_seed(3)
    fast = ActorCritic(7, 5, True, 16, activation=SigmoidTanh)
    torch.manual_seed(3)
    plain = ActorCritic(7, 5, True, 16)
    obs = torch.randn(10, 7)
    torch.testing.assert_close(fast.value(obs), plain.value(obs), rtol=0, atol=1e-6)


def test_detached_termination_head_leaves_the_recurrence_alone() -> None:
    """The p = 0 diagnostic switch: the head's loss then trains the head only."""
    torch.manual_seed(4)
    inputs = torch.randn(3, 9, 12)
    grads = {}
    for into_gru in (True, False):
        enc = BeliefEncoder(6, 5, session_aware=True)
        torch.manual_seed(5)
        enc.load_state_dict(BeliefEncoder(6, 5, session_aware=True).state_dict())
        enc.termination_into_gru = into_gru
        logit = enc(inputs).termination_logit
        assert logit is not None
        logit.sum().backward()
        grads[into_gru] = {n: p.grad for n, p in enc.named_parameters()}
    assert grads[True]["gru.weight_hh_l0"].abs().max() > 0
    assert (
        grads[False]["gru.weight_hh_l0"] is None
        or grads[False]["gru.weight_hh_l0"].abs().max() == 0
    )
    torch.testing.assert_close(
        grads[False]["termination.weight"], grads[True]["termination.weight"]
    )


def test_backward_can_run_twice_with_retain_graph() -> None:
    torch.manual_seed(6)
    enc = BeliefEncoder(6, 5, session_aware=True)
    out = enc(torch.randn(2, 7, 12))
    loss = out.mu.sum() + out.termination_logit.sum()  # type: ignore[union-attr]
    (first,) = torch.autograd.grad(loss, [enc.gru.weight_hh_l0], retain_graph=True)
    (second,) = torch.autograd.grad(loss, [enc.gru.weight_hh_l0])
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def _native_calls(
    monkeypatch: pytest.MonkeyPatch, kernel: type[torch.autograd.Function] | None = None
) -> list[int]:
    """Count the calls of a native kernel's forward (``kernel.apply``; NativeRecurrence's by
    default)."""
    kernel = native.NativeRecurrence if kernel is None else kernel
    calls: list[int] = []
    apply = kernel.apply

    def counted(*args: object) -> object:
        calls.append(1)
        return apply(*args)

    monkeypatch.setattr(kernel, "apply", counted)
    return calls


@pytest.mark.parametrize(("session_aware", "prior"), ENCODERS)
def test_native_recurrence_equals_the_pytorch_one(
    session_aware: bool, prior: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The C kernel (float32) gives the PyTorch recurrence's beliefs and gradients."""
    if not native.native_recurrence_available(torch.zeros(1), 64):
        pytest.skip("no C compiler here: the PyTorch recurrence is the only one")
    calls = _native_calls(monkeypatch)
    torch.manual_seed(8)
    enc = BeliefEncoder(6, 5, session_aware=session_aware, prior_conditioning=prior)
    if session_aware:
        nn.init.normal_(enc.termination.weight, std=0.5)
    inputs = torch.randn(16, 23, 12)
    results = {}
    for use_native in (True, False):
        enc.native = use_native
        enc.zero_grad()
        out = enc(inputs)
        _loss(out.mu, out.termination_logit, out.cond_mu).backward()
        grads = {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}
        results[use_native] = (out, grads)
    assert len(calls) == 1  # the native run only
    (fast, fast_grads), (ref, ref_grads) = results[True], results[False]
    torch.testing.assert_close(fast.mu, ref.mu, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.logvar, ref.logvar, rtol=1e-5, atol=1e-5)
    if session_aware:
        torch.testing.assert_close(fast.termination_logit, ref.termination_logit)
        torch.testing.assert_close(fast.cond_mu, ref.cond_mu, rtol=1e-5, atol=1e-5)
    assert sorted(fast_grads) == sorted(ref_grads)
    for name, grad in fast_grads.items():
        assert grad.abs().max().item() > 0.0, name
        scale = ref_grads[name].abs().max().item()
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-4, atol=1e-5 * scale, msg=name)


def test_native_recurrence_only_where_it_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    """float64, a hidden size off the 16-float tile and PROVENML_NATIVE=0 keep PyTorch's."""
    calls = _native_calls(monkeypatch)
    torch.manual_seed(9)
    BeliefEncoder(6, 5, session_aware=True).double()(torch.randn(2, 5, 12, dtype=torch.float64))
    BeliefEncoder(6, 5, hidden=24, session_aware=True)(torch.randn(2, 5, 12))
    monkeypatch.setenv("PROVENML_NATIVE", "0")
    BeliefEncoder(6, 5)(torch.randn(2, 5, 12))
    assert calls == []
    assert not native.native_recurrence_available(torch.zeros(1), 64)


def test_no_c_compiler_falls_back_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_compiler(*_: object) -> None:
        raise ProvenmlError("cannot run the C compiler 'gcc'")

    monkeypatch.setattr(nn_native, "build_library", no_compiler)  # what kernel_library calls
    native._library.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="PyTorch one"):
            assert not native.native_recurrence_available(torch.zeros(1), 64)
        enc = BeliefEncoder(6, 5, session_aware=True)
        out = enc(torch.randn(2, 5, 12))  # runs, on the PyTorch recurrence
        assert out.mu.shape == (2, 5, 5)
    finally:
        native._library.cache_clear()


@pytest.mark.parametrize("agent", ["oracle", "rl2", "varibad"])
def test_training_with_the_native_kernels_tracks_pytorch(
    agent: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A few training iterations with every native kernel (PPO loss, acting, recurrence,
    input projection) against the same run in PyTorch (PROVENML_NATIVE=0): the learning
    curves agree to float32 rounding. Acting once read weights from before the fused Adam
    step; the curve then lagged by 5-10 return points within three iterations."""
    from provenml.metarl.train import TrainConfig, train_agent
    from provenml.rl import PPOConfig

    cfg = TrainConfig(
        num_envs=64,
        total_steps=64 * 60 * 4,
        model_updates=2,
        explore_envs=16 if agent == "varibad" else 0,
        ppo=PPOConfig(lr=2e-3, epochs=4),
    )
    curves = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("PROVENML_NATIVE", flag)
        curves[flag] = train_agent(agent, cfg, seed=3).curve_returns
    assert curves["1"] == pytest.approx(curves["0"], abs=0.3)
    assert curves["1"][-1] > curves["1"][0] + 2  # it learns at all


@pytest.mark.parametrize(("obs_dim", "latent_dim", "hidden"), [(6, 5, 32), (4, 4, 16), (9, 3, 48)])
def test_native_pair_decoder_equals_the_pytorch_layers(
    obs_dim: int, latent_dim: int, hidden: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ELBO's decoder pairing (N, K, 1, D) x (N, 1, T, obs) in C gives the PyTorch
    layers' rewards and every gradient (the latents' and all six parameters'), with hidden
    units that are off for some pairs and on for others."""
    if not native.native_pair_decoder_available(torch.zeros(1), hidden):
        pytest.skip("no C compiler here: the PyTorch decoder is the only one")
    calls = _native_calls(monkeypatch, native.NativePairDecoder)
    torch.manual_seed(11)
    decoder = RewardDecoder(obs_dim, latent_dim, hidden=hidden)
    nn.init.normal_(decoder.net[2].bias, std=0.3)
    latent = torch.randn(7, 5, 1, latent_dim, requires_grad=True)
    next_obs = torch.randn(7, 1, 13, obs_dim)
    weights = torch.randn(7, 5, 13, generator=torch.Generator().manual_seed(3))
    results = {}
    for use_native in (True, False):
        decoder.native = use_native
        decoder.zero_grad()
        latent.grad = None
        out = decoder(latent, next_obs)
        ((out - 0.5) ** 2 * weights).sum().backward()
        assert latent.grad is not None
        grads = {n: p.grad.clone() for n, p in decoder.named_parameters() if p.grad is not None}
        results[use_native] = (out.detach(), latent.grad.clone(), grads)
    assert len(calls) == 1  # the native run only
    (fast, fast_latent, fast_grads), (ref, ref_latent, ref_grads) = results[True], results[False]
    assert fast.shape == (7, 5, 13)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast_latent, ref_latent, rtol=1e-5, atol=1e-6)
    assert sorted(fast_grads) == sorted(ref_grads) and len(ref_grads) == 6
    for name, grad in fast_grads.items():
        assert grad.abs().max().item() > 0.0, name
        scale = ref_grads[name].abs().max().item()
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-4, atol=1e-5 * scale, msg=name)


def test_native_pair_decoder_only_where_it_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Other broadcasts, float64, a width off the 16-float tile and PROVENML_NATIVE=0 keep
    PyTorch's layers; a pairing that does not fit is refused with the shapes named."""
    calls = _native_calls(monkeypatch, native.NativePairDecoder)
    torch.manual_seed(12)
    decoder = RewardDecoder(6, 5)
    decoder(torch.randn(3, 8, 5), torch.randn(3, 8, 6))  # one latent per transition
    decoder.double()(torch.randn(3, 4, 1, 5).double(), torch.randn(3, 1, 7, 6).double())
    RewardDecoder(6, 5, hidden=24)(torch.randn(3, 4, 1, 5), torch.randn(3, 1, 7, 6))
    monkeypatch.setenv("PROVENML_NATIVE", "0")
    RewardDecoder(6, 5)(torch.randn(3, 4, 1, 5), torch.randn(3, 1, 7, 6))
    assert calls == []
    monkeypatch.delenv("PROVENML_NATIVE")
    if native.native_pair_decoder_available(torch.zeros(1), 32):
        second, third = decoder.float().net[2], decoder.net[4]
        with pytest.raises(ProvenmlError, match="pair decoder needs"):  # 3 episodes against 2
            native.NativePairDecoder.apply(
                torch.randn(3, 4, 32), torch.randn(2, 7, 32), second.weight, second.bias,
                third.weight, third.bias,
            )  # fmt: skip


def _rl2_rollout(transitions: torch.Tensor) -> Rollout:
    """A rollout whose only filled field is what RL2's features read: the transitions."""
    num_envs, horizon, _ = transitions.shape
    empty = torch.zeros(num_envs, horizon)
    return Rollout(
        obs=empty,
        actions=empty,
        rewards=empty,
        next_obs=empty,
        transitions=transitions,
        features=empty,
        logp=empty,
        values=empty,
        session_end=empty,
    )


def test_rl2_native_gru_equals_torch_nn_gru(monkeypatch: pytest.MonkeyPatch) -> None:
    """RL2's policy memory on the C recurrence (float32) gives ``torch.nn.GRU``'s features
    and, through them, the same gradients for the embedding and the GRU (the PPO loss
    trains both)."""
    if not native.native_recurrence_available(torch.zeros(1), 64):
        pytest.skip("no C compiler here: the PyTorch recurrence is the only one")
    calls = _native_calls(monkeypatch)
    torch.manual_seed(10)
    agent = make_agent("rl2", 6, 5, True, oracle_dim=2)
    assert isinstance(agent, RL2Agent)
    batch = _rl2_rollout(torch.randn(16, 23, 12))
    weights = torch.randn(16, 23, agent.feature_dim)
    results = {}
    for use_native in (True, False):
        agent.native = use_native
        agent.zero_grad()
        features = agent.policy_features(batch)
        (features * weights).sum().backward()
        grads = {n: p.grad.clone() for n, p in agent.named_parameters() if p.grad is not None}
        results[use_native] = (features.detach(), grads)
    assert len(calls) == 1  # the native run only
    (fast, fast_grads), (ref, ref_grads) = results[True], results[False]
    assert fast.shape == (16, 23, agent.feature_dim)
    assert fast[:, 0].abs().max().item() == 0.0  # nothing seen before the first action
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    assert (
        sorted(fast_grads)
        == sorted(ref_grads)
        == [
            "embed.0.bias",
            "embed.0.weight",
            "gru.bias_hh_l0",
            "gru.bias_ih_l0",
            "gru.weight_hh_l0",
            "gru.weight_ih_l0",
        ]
    )
    for name, grad in fast_grads.items():
        assert grad.abs().max().item() > 0.0, name
        scale = ref_grads[name].abs().max().item()
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-4, atol=1e-5 * scale, msg=name)


@pytest.mark.parametrize("use_native", [True, False])
def test_rl2_acting_features_are_the_ones_ppo_recomputes(use_native: bool) -> None:
    """The features RL2 acts on, one step at a time (``begin`` / ``observe``: a kernel step
    or one ``nn.GRU`` step), are the ones its PPO update recomputes over the whole episode."""
    torch.manual_seed(11)
    agent = make_agent("rl2", 6, 5, True, oracle_dim=2)
    assert isinstance(agent, RL2Agent)
    agent.native = use_native
    transitions = torch.randn(7, 15, 12)
    with torch.no_grad():
        state, feature = agent.begin(7, torch.zeros(7, 2))
        acted = [feature]
        for j in range(14):
            state, feature = agent.observe(state, transitions[:, j], torch.zeros(7, 2))
            acted.append(feature)
        recomputed = agent.policy_features(_rl2_rollout(transitions))
    torch.testing.assert_close(torch.stack(acted, 1), recomputed, rtol=0, atol=1e-5)


def test_gru_states_refuses_inputs_that_do_not_fit() -> None:
    """A sequence of the wrong width, a missing time axis or a wrong ``h0`` is named in a
    ProvenmlError, not a shape error from inside torch or the C kernel."""
    agent = make_agent("rl2", 6, 5, True, oracle_dim=2)
    assert isinstance(agent, RL2Agent)
    h0 = torch.zeros(3, agent.feature_dim)
    with pytest.raises(ProvenmlError, match=r"\(N, T, 12\)"):
        gru_states(agent.embed, agent.gru, torch.randn(3, 4, 11), h0)
    with pytest.raises(ProvenmlError, match=r"\(N, T, 12\)"):
        gru_states(agent.embed, agent.gru, torch.randn(3, 12), h0)
    with pytest.raises(ProvenmlError, match="h0 must be"):
        gru_states(agent.embed, agent.gru, torch.randn(3, 4, 12), torch.zeros(2, 64))
    assert gru_states(agent.embed, agent.gru, torch.randn(3, 4, 12), h0).shape == (3, 4, 64)


@pytest.mark.parametrize(("width", "embed", "hidden"), [(7, 16, 32), (30, 48, 48), (5, 8, 24)])
def test_gru_states_and_stepper_agree_with_nn_gru_at_other_sizes(
    width: int, embed: int, hidden: int
) -> None:
    """``gru_states`` and ``gru_stepper`` on a plain embedding and GRU of other sizes than
    RL2's (24 hidden units: off the kernel's 16-float tile, PyTorch's path), from a nonzero
    ``h0``, give ``torch.nn.GRU``'s states."""
    torch.manual_seed(12)
    embedding = nn.Sequential(nn.Linear(width, embed), nn.ReLU())
    gru = nn.GRU(embed, hidden, batch_first=True)
    inputs, h0 = torch.randn(9, 17, width), torch.randn(9, hidden)
    with torch.no_grad():
        reference = gru(embedding(inputs), h0[None])[0]
        fused = gru_states(embedding, gru, inputs, h0)
        step, h, stepped = gru_stepper(embedding, gru), h0, []
        for j in range(17):
            h = step(h, inputs[:, j])
            stepped.append(h)
    torch.testing.assert_close(fused, reference, rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.stack(stepped, 1), reference, rtol=0, atol=1e-5)
