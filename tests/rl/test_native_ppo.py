"""The native PPO minibatch loss equals the PyTorch one it replaces (issue 22)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import provenml.nn.native as nn_native
from provenml.errors import ProvenmlError
from provenml.rl import (
    ActorCritic,
    PolicyActor,
    SigmoidTanh,
    native_ppo_available,
    policy_act,
    ppo_minibatch_backward,
    ppo_minibatch_loss,
)
from provenml.rl import native as rl_native


def _minibatch(
    policy: ActorCritic, discrete: bool, shape: tuple[int, ...], in_dim: int, seed: int
) -> dict[str, torch.Tensor]:
    """Random inputs, actions drawn near the policy (ratios around 1, both clip sides hit)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, in_dim, generator=g)
    action_dim = policy.actor[-1].out_features
    if discrete:
        actions = torch.randint(0, action_dim, shape, generator=g)
    else:
        actions = torch.randn(*shape, action_dim, generator=g)
    with torch.no_grad():
        logp = policy.distribution(x).log_prob(actions)
    return {
        "x": x,
        "actions": actions,
        "old_logp": logp + 0.4 * torch.randn(shape, generator=g),
        "advantages": torch.randn(shape, generator=g),
        "returns": torch.randn(shape, generator=g),
    }


def _loss_and_grads(
    policy: ActorCritic, batch: dict[str, torch.Tensor], native: bool, input_grad: bool
) -> tuple[list[float], list[torch.Tensor], torch.Tensor | None]:
    policy.zero_grad()
    x = batch["x"].clone().requires_grad_(input_grad)
    out = ppo_minibatch_loss(
        policy,
        x,
        batch["actions"],
        batch["old_logp"],
        batch["advantages"],
        batch["returns"],
        clip=0.2,
        value_coef=0.5,
        entropy_coef=0.03,
        native=native,
    )
    # loss.backward() as training calls it; with the input's gradient, a scaled loss too
    (2.5 * out.total if input_grad else out.total).backward()
    grads = [
        p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in policy.parameters()
    ]
    return [float(t.detach()) for t in out], grads, None if x.grad is None else x.grad.clone()


@pytest.mark.parametrize(
    ("discrete", "hidden", "shape", "in_dim", "activation"),
    [
        (True, 64, (48, 60), 17, nn.Tanh),  # the grid world's minibatch
        (False, 64, (48, 60), 9, nn.Tanh),  # the reacher's (Gaussian policy)
        (True, 32, (7, 13), 5, SigmoidTanh),  # a partial row tile, another width
        (True, 16, (3,), 70, nn.Tanh),  # fewer rows than one tile, wide input
    ],
)
@pytest.mark.parametrize("input_grad", [False, True])
def test_native_ppo_loss_equals_the_pytorch_one(
    discrete: bool,
    hidden: int,
    shape: tuple[int, ...],
    in_dim: int,
    activation: type[nn.Module],
    input_grad: bool,
) -> None:
    torch.manual_seed(0)
    action_dim = 5 if discrete else 2
    policy = ActorCritic(in_dim, action_dim, discrete, hidden, activation=activation)
    for p in policy.parameters():  # away from the near-zero initial actor head
        p.data.add_(0.3 * torch.randn_like(p))
    assert native_ppo_available(policy, torch.zeros(1))
    batch = _minibatch(policy, discrete, shape, in_dim, seed=1)
    ref_parts, ref_grads, ref_gx = _loss_and_grads(policy, batch, False, input_grad)
    parts, grads, gx = _loss_and_grads(policy, batch, True, input_grad)
    assert parts == pytest.approx(ref_parts, rel=1e-5, abs=1e-6)
    for (name, _), ref, got in zip(policy.named_parameters(), ref_grads, grads, strict=True):
        scale = ref.abs().max().clamp(min=1e-6)
        assert float((ref - got).abs().max() / scale) < 1e-4, name
    if input_grad:
        assert ref_gx is not None and gx is not None
        assert torch.allclose(gx, ref_gx, rtol=1e-4, atol=1e-6 * float(ref_gx.abs().max()))
    else:
        assert gx is None


def test_native_ppo_only_where_it_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    """float64, a hidden size off the 16-float tile, another activation and
    PROVENML_NATIVE=0 keep the PyTorch loss; ``native=True`` there says why it cannot run."""
    policy = ActorCritic(6, 3, True, 64)
    assert native_ppo_available(policy, torch.zeros(1))
    assert not native_ppo_available(policy, torch.zeros(1, dtype=torch.float64))
    assert not native_ppo_available(ActorCritic(6, 3, True, 24), torch.zeros(1))
    assert not native_ppo_available(ActorCritic(6, 3, True, 64, activation=nn.ReLU), torch.zeros(1))
    with pytest.raises(ProvenmlError, match="hidden % 16"):
        batch = _minibatch(ActorCritic(6, 3, True, 24), True, (4,), 6, seed=0)
        _loss_and_grads(ActorCritic(6, 3, True, 24), batch, True, False)
    monkeypatch.setenv("PROVENML_NATIVE", "0")
    assert not native_ppo_available(policy, torch.zeros(1))


def test_native_ppo_checks_shapes_and_actions() -> None:
    policy = ActorCritic(6, 3, True, 64)
    with pytest.raises(ProvenmlError, match=r"actions must lie in \[0, 3\)"):
        ppo_minibatch_loss(
            policy, torch.zeros(4, 6), torch.tensor([0, 1, 3, 0]), torch.zeros(4),
            torch.zeros(4), torch.zeros(4), 0.2, 0.5, 0.0, native=True,
        )  # fmt: skip
    with pytest.raises(ProvenmlError, match="actions must lie"):
        policy_act(
            policy, torch.zeros(2, 6), torch.rand(2), forced=torch.tensor([True, False]),
            forced_actions=torch.tensor([-1, 0]), native=True,
        )  # fmt: skip
    with pytest.raises(ProvenmlError, match="returns has shape"):
        ppo_minibatch_loss(
            policy, torch.zeros(4, 6), torch.zeros(4, dtype=torch.long), torch.zeros(4),
            torch.zeros(4), torch.zeros(5), 0.2, 0.5, 0.0,
        )  # fmt: skip


def test_no_c_compiler_falls_back_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_compiler(*_: object) -> None:
        raise ProvenmlError("cannot run the C compiler 'gcc'")

    monkeypatch.setattr(nn_native, "build_library", no_compiler)  # what kernel_library calls
    rl_native._library.cache_clear()
    try:
        policy = ActorCritic(6, 3, True, 64)
        with pytest.warns(RuntimeWarning, match="PyTorch one"):
            assert not native_ppo_available(policy, torch.zeros(1))
        batch = _minibatch(policy, True, (4,), 6, seed=0)
        parts, _, _ = _loss_and_grads(policy, batch, None, False)  # type: ignore[arg-type]
        assert all(torch.isfinite(torch.tensor(parts)))
    finally:
        rl_native._library.cache_clear()


@pytest.mark.parametrize("discrete", [True, False])
@pytest.mark.parametrize("with_forced", [False, True])
def test_native_acting_equals_the_pytorch_one(discrete: bool, with_forced: bool) -> None:
    """The acting step: same actions (inverse-CDF or mean + sigma noise), log-probabilities
    and values, with forced rows taking the given actions; after optimizer steps too."""
    torch.manual_seed(4)
    action_dim = 5 if discrete else 2
    policy = ActorCritic(9, action_dim, discrete, 64)
    for p in policy.parameters():
        p.data.add_(0.3 * torch.randn_like(p))
    g = torch.Generator().manual_seed(5)
    n = 300
    x, u = torch.randn(n, 9, generator=g), torch.rand(n, generator=g)
    noise = None if discrete else torch.randn(n, action_dim, generator=g)
    forced = forced_actions = None
    if with_forced:
        forced = torch.rand(n, generator=g) < 0.3
        forced_actions = (
            torch.randint(0, action_dim, (n,), generator=g)
            if discrete
            else torch.rand(n, action_dim, generator=g) * 2 - 1
        )
    # fused Adam, as training uses: it updates the weights in place without moving their
    # version counters (a cache keyed on them once made acting read stale weights)
    optimizer = torch.optim.Adam(policy.parameters(), lr=0.05, fused=True)
    for _ in range(3):  # before and after in-place updates of every weight
        ref = policy_act(policy, x, u, noise, forced, forced_actions, native=False)
        got = policy_act(policy, x, u, noise, forced, forced_actions, native=True)
        if discrete:
            assert torch.equal(got[0], ref[0])
            assert got[0].unique().numel() > 1
        else:
            torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-5)
        if forced is not None:
            assert forced_actions is not None
            assert torch.equal(got[0][forced], forced_actions[forced].to(got[0].dtype))
        torch.testing.assert_close(got[1], ref[1], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got[2], ref[2], rtol=1e-5, atol=1e-5)
        policy.zero_grad()
        policy.value(x).sum().backward()
        policy.distribution(x).entropy().sum().backward()
        optimizer.step()


@pytest.mark.parametrize("discrete", [True, False])
def test_policy_actor_acts_as_policy_act_with_the_weights_it_was_built_with(
    discrete: bool,
) -> None:
    """A ``PolicyActor`` (one rollout's acting step, the weights copied once) gives exactly
    ``policy_act``'s actions, log-probabilities and values, and keeps acting with its
    construction's weights after an optimizer step changes the policy."""
    torch.manual_seed(6)
    action_dim = 5 if discrete else 2
    policy = ActorCritic(9, action_dim, discrete, 64)
    g = torch.Generator().manual_seed(7)
    x, u = torch.randn(70, 9, generator=g), torch.rand(70, generator=g)
    noise = None if discrete else torch.randn(70, action_dim, generator=g)
    for native in (True, False):
        if native and not native_ppo_available(policy, x):
            continue
        actor = PolicyActor(policy, x, native=native)
        before = policy_act(policy, x, u, noise, native=native)
        for got, ref in zip(actor(x, u, noise), before, strict=True):
            assert torch.equal(got, ref)
        with torch.no_grad():
            for p in policy.parameters():
                p.add_(0.2)
        for got, ref in zip(actor(x, u, noise), before, strict=True):
            if native:  # the kernel's copies: the construction's weights
                assert torch.equal(got, ref)
        moved = policy_act(policy, x, u, noise, native=native)
        assert not torch.equal(moved[2], before[2])
        for got, ref in zip(PolicyActor(policy, x, native=native)(x, u, noise), moved, strict=True):
            assert torch.equal(got, ref)
    if not discrete:
        with pytest.raises(ProvenmlError, match="noise"):
            PolicyActor(policy, x)(x, u)


@pytest.mark.parametrize("discrete", [True, False])
@pytest.mark.parametrize("x_needs_grad", [False, True])
def test_minibatch_backward_leaves_what_loss_backward_leaves(
    discrete: bool, x_needs_grad: bool
) -> None:
    """``ppo_minibatch_backward`` (the kernel's gradients put into ``.grad`` without autograd
    where it can) leaves bit for bit the ``.grad`` that ``ppo_minibatch_loss(...).total
    .backward()`` leaves, into empty gradients and accumulated onto existing ones, and the
    same loss parts; with an input that needs gradients it goes through autograd."""
    torch.manual_seed(8)
    action_dim = 5 if discrete else 2
    policy = ActorCritic(10, action_dim, discrete, 64)
    batch = _minibatch(policy, discrete, (6, 20), 10, seed=9)
    hyper = (0.2, 0.5, 0.01)

    def grads_after(step: object, accumulate: bool) -> tuple[list[torch.Tensor], object]:
        policy.zero_grad()
        x = batch["x"].clone().requires_grad_(x_needs_grad)
        inputs = (x, batch["actions"], batch["old_logp"], batch["advantages"], batch["returns"])
        if accumulate:  # a first call, then a second onto its gradients
            step(policy, *inputs, *hyper)  # type: ignore[operator]
        out = step(policy, *inputs, *hyper)  # type: ignore[operator]
        got = [p.grad.clone() for p in policy.parameters()]
        if x_needs_grad:
            assert x.grad is not None
            got.append(x.grad.clone())
        return got, out

    def by_autograd(*args: object) -> object:
        loss = ppo_minibatch_loss(*args)  # type: ignore[arg-type]
        loss.total.backward()
        return loss

    for accumulate in (False, True):
        ref, ref_loss = grads_after(by_autograd, accumulate)
        got, got_loss = grads_after(ppo_minibatch_backward, accumulate)
        assert len(got) == len(ref)
        for g, r in zip(got, ref, strict=True):
            assert torch.equal(g, r)
        for name in ("total", "surrogate", "value", "entropy"):
            assert torch.equal(getattr(got_loss, name), getattr(ref_loss, name).detach())
    assert not ppo_minibatch_backward(
        policy, batch["x"], batch["actions"], batch["old_logp"], batch["advantages"],
        batch["returns"], *hyper,
    ).total.requires_grad  # fmt: skip
    with pytest.raises(ProvenmlError, match="returns"):
        ppo_minibatch_backward(
            policy, batch["x"], batch["actions"], batch["old_logp"], batch["advantages"],
            batch["returns"][:, :3], *hyper,
        )  # fmt: skip


def test_inputs_that_do_not_fit_the_policy_are_refused_before_the_kernel() -> None:
    """The kernels read their inputs by the policy's sizes: a wrong width or row count is a
    ProvenmlError naming the shapes, not an out-of-bounds read."""
    policy = ActorCritic(9, 5, True, 64)
    x, u = torch.randn(10, 9), torch.rand(10)
    rows = torch.zeros(10)
    with pytest.raises(ProvenmlError, match=r"x must be \(N, 9\)"):
        policy_act(policy, torch.randn(10, 12), u)
    with pytest.raises(ProvenmlError, match="u must be"):
        PolicyActor(policy, x)(x, torch.rand(3))
    with pytest.raises(ProvenmlError, match="forced_actions must be"):
        policy_act(policy, x, u, None, torch.zeros(10, dtype=torch.bool), torch.zeros(4))
    actions = torch.zeros(10, dtype=torch.long)
    for entry in (ppo_minibatch_loss, ppo_minibatch_backward):
        with pytest.raises(ProvenmlError, match=r"x must be \(\.\.\., 9\)"):
            entry(policy, torch.randn(10, 12), actions, rows, rows, rows, 0.2, 0.5, 0.01)
    gaussian = ActorCritic(9, 2, False, 64)
    with pytest.raises(ProvenmlError, match="noise must be"):
        policy_act(gaussian, x, u, torch.randn(10, 3))
