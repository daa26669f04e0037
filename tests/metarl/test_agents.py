"""PPO core, belief losses and agents: hand-computed cases and determinism."""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys

import numpy as np
import pytest
import torch

from provenml.core import ProvenmlError
from provenml.metarl.agents import AGENTS, BeliefAgent, Rollout, make_agent
from provenml.metarl.belief import (
    BeliefEncoder,
    consistency_loss,
    session_ids,
    session_reconstruction_mask,
)
from provenml.metarl.envs import SessionGridWorldVec
from provenml.metarl.train import (
    EpisodeBuffer,
    TrainConfig,
    collect,
    evaluate,
    evaluation_options,
    keep_freed_memory,
    scripted_gridworld_returns,
    scripted_gridworld_rollout,
    steps_to_goal_after_switch,
    train_agent,
)
from provenml.rl import gae, ppo_clip_loss


def test_ppo_clipped_objective_hand_computed() -> None:
    # ratios 1.5, 0.5, 1.1 with advantages +1, +1, -2 and eps = 0.2:
    # min(1.5, 1.2) = 1.2; min(0.5, 0.8) = 0.5; min(-2.2, -2.2) = -2.2 -> mean -0.1667
    old = torch.zeros(3)
    new = torch.log(torch.tensor([1.5, 0.5, 1.1]))
    adv = torch.tensor([1.0, 1.0, -2.0])
    loss = ppo_clip_loss(new, old, adv, clip=0.2)
    assert loss.item() == pytest.approx(-(1.2 + 0.5 - 2.2) / 3, abs=1e-6)
    # a negative advantage with a ratio below 1 - eps is clipped: min(-0.5, -0.8) = -0.8
    loss = ppo_clip_loss(torch.log(torch.tensor([0.5])), torch.zeros(1), torch.tensor([-1.0]), 0.2)
    assert loss.item() == pytest.approx(0.8, abs=1e-6)


def test_gae_hand_computed() -> None:
    rewards = torch.tensor([[1.0, 0.0, 2.0]])
    values = torch.tensor([[0.5, 1.0, 1.0]])
    gamma, lam = 0.9, 0.5
    d2 = 2.0 - 1.0
    d1 = 0.0 + 0.9 * 1.0 - 1.0
    d0 = 1.0 + 0.9 * 1.0 - 0.5
    a2, a1 = d2, d1 + 0.45 * d2
    a0 = d0 + 0.45 * a1
    adv, ret = gae(rewards, values, gamma, lam)
    torch.testing.assert_close(adv, torch.tensor([[a0, a1, a2]]))
    torch.testing.assert_close(ret, adv + values)


def _session_end(*lengths: int) -> torch.Tensor:
    flags = []
    for length in lengths:
        flags += [False] * (length - 1) + [True]
    flags[-1] = False
    return torch.tensor([flags])


def test_consistency_zero_when_posterior_only_sharpens() -> None:
    ends = _session_end(4, 3)  # sessions: steps 0-3 and 4-6
    # each session moves monotonically to its final posterior and sharpens
    mu = torch.tensor([[0.0, 0.5, 0.8, 1.0, -0.2, -0.6, -1.0]])[..., None]
    logvar = torch.tensor([[0.0, -0.5, -1.0, -2.0, 0.0, -1.0, -2.0]])[..., None]
    assert consistency_loss(mu, logvar, ends).item() == pytest.approx(0.0, abs=1e-7)


def test_consistency_positive_when_posterior_moves_away() -> None:
    ends = _session_end(4, 3)
    mu = torch.tensor([[0.0, 0.9, -0.5, 1.0, -0.2, -0.6, -1.0]], requires_grad=True)
    logvar = torch.tensor([[0.0, -0.5, -1.0, -2.0, 0.0, -1.0, -2.0]])[..., None]
    loss = consistency_loss(mu[..., None], logvar, ends)
    assert loss.item() > 0.1
    loss.backward()
    # the final posterior of each session is a detached target: no gradient reaches it
    assert mu.grad is not None
    assert mu.grad[0, 3].item() == 0.0 and mu.grad[0, 6].item() == 0.0
    assert mu.grad[0, 2].abs().item() > 0.0


def test_consistency_ignores_jumps_across_sessions() -> None:
    ends = _session_end(2, 2)
    mu = torch.tensor([[0.0, 1.0, 5.0, -3.0]])[..., None]  # big jump at the boundary
    logvar = torch.tensor([[0.0, -1.0, 0.0, -1.0]])[..., None]
    # inside each session: 0 -> 1 and 5 -> -3, both moving to the session's final posterior
    assert consistency_loss(mu, logvar, ends).item() == pytest.approx(0.0, abs=1e-7)


def test_session_mask_selects_only_same_session_steps() -> None:
    ends = torch.tensor([[False, True, False, False, True, False]])
    np.testing.assert_array_equal(session_ids(ends)[0].numpy(), [0, 0, 1, 1, 1, 2])
    mask = session_reconstruction_mask(ends, torch.tensor([0, 3, 5]))[0]
    expected = torch.tensor(
        [
            [True, True, False, False, False, False],
            [False, False, True, True, True, False],
            [False, False, False, False, False, True],
        ]
    )
    torch.testing.assert_close(mask, expected)


def test_belief_forward_never_sees_true_flags() -> None:
    torch.manual_seed(0)
    agent = make_agent("dynamite", 6, 5, True, oracle_dim=2)
    assert isinstance(agent, BeliefAgent)
    state, _ = agent.begin(4, torch.zeros(4, 2))
    x = torch.randn(4, 5 + 1 + 6)
    _, feat_a = agent.observe(state, x, torch.zeros(4, 2))
    _, feat_b = agent.observe(state, x, torch.ones(4, 2))  # a different true latent
    torch.testing.assert_close(feat_a, feat_b)
    enc = BeliefEncoder(6, 5, session_aware=True)
    out = enc(torch.randn(3, 10, 12))
    assert out.termination_logit is not None and out.termination_logit.shape == (3, 10)


def test_unknown_agent_is_a_user_error() -> None:
    with pytest.raises(ProvenmlError, match="did you mean varibad"):
        make_agent("varibaad", 6, 5, True, oracle_dim=2)
    for name in AGENTS:
        make_agent(name, 6, 5, True, oracle_dim=2)


def test_steps_to_goal_hand_case() -> None:
    rewards = np.zeros((1, 20))
    starts = np.zeros((1, 20), bool)
    starts[0, 5] = True  # switch at step 5, new session runs to the horizon
    reached = np.zeros((1, 20), bool)
    reached[0, 2] = True  # before the switch: ignored
    reached[0, 8] = True  # 4 steps after the switch (steps 5, 6, 7, 8)
    steps, found, count = steps_to_goal_after_switch(rewards, starts, starts, reached)
    assert (steps, found, count) == (4.0, 1.0, 1)
    reached[0, 8] = False
    steps, found, _ = steps_to_goal_after_switch(rewards, starts, starts, reached)
    assert (steps, found) == (15.0, 0.0)  # censored at the session's 15 steps


@pytest.mark.parametrize("name", ["rl2", "dynamite"])
def test_same_seed_same_returns(name: str) -> None:
    cfg = TrainConfig(num_envs=8, total_steps=8 * 60 * 2)
    options = evaluation_options("gridworld", 16, 0.07, seed=123)
    runs = []
    for _ in range(2):
        result = train_agent(name, cfg, seed=5)
        ev = evaluate(result.agent, "gridworld", options, 0.07, seed=7)
        runs.append((result.curve_returns, ev.returns))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    other = train_agent(name, cfg, seed=6)
    assert other.curve_returns != runs[0][0]
    assert all(math.isfinite(r) for r in runs[0][0])


def test_train_agent_reports_where_its_cpu_time_goes() -> None:
    """``timings`` receives the CPU seconds of each part (collection, PPO, belief model);
    asking for them changes nothing in the training."""
    cfg = TrainConfig(num_envs=8, total_steps=8 * 60 * 2)
    timings: dict[str, float] = {}
    timed = train_agent("varibad", cfg, seed=3, timings=timings)
    assert set(timings) == {"collect", "ppo", "belief"}
    assert all(v > 0 for v in timings.values())
    assert timed.curve_returns == train_agent("varibad", cfg, seed=3).curve_returns
    plain: dict[str, float] = {}
    train_agent("memoryless", cfg, seed=3, timings=plain)
    assert plain["belief"] < 0.1 * plain["ppo"]  # no belief model: only the loop's bookkeeping


def test_reacher_agents_train() -> None:
    cfg = TrainConfig(env="reacher", num_envs=4, total_steps=4 * 60, latent_dim=4)
    for name in ("oracle", "varibad", "dynamite"):
        result = train_agent(name, cfg, seed=0)
        assert len(result.curve_returns) == 1


_MALLOC_RUN = """
import json, sys
import torch
import provenml.metarl.train as train
if sys.argv[1] == "default":
    train.keep_freed_memory = lambda: False  # glibc's own thresholds
cfg = train.TrainConfig(
    env="reacher", num_envs=16, total_steps=16 * 60 * 2, latent_dim=4, model_updates=3,
    model_pretrain_updates=2, explore_envs=4,
)
torch.set_num_threads(1)
result = train.train_agent("dynamite", cfg, seed=3)
print(json.dumps([result.curve_returns, result.model_losses]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_keep_freed_memory_stops_page_faults_and_changes_no_number() -> None:
    assert keep_freed_memory() and keep_freed_memory()  # set once per process
    torch.ones(1_500_000).sum()  # 6 MB, the size of the reacher decoder's activations
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        torch.ones(1_500_000).sum()
    # served from the heap: not ~1,500 fresh zero-filled pages per tensor
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 1_500
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", _MALLOC_RUN, mode],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for mode in ("default", "tuned")
    ]
    assert runs[0] == runs[1]  # where memory comes from changes no number


def test_belief_probe_reads_informative_features_only() -> None:
    from provenml.metarl.train import belief_probe_accuracy

    rng = np.random.default_rng(0)
    latents = rng.integers(0, 2, size=(40, 30))
    informative = np.eye(2)[latents] + 0.1 * rng.standard_normal((40, 30, 2))
    assert belief_probe_accuracy(informative, latents) > 0.99
    noise = rng.standard_normal((40, 30, 3))
    assert abs(belief_probe_accuracy(noise, latents) - 0.5) < 0.1
    assert math.isnan(belief_probe_accuracy(np.zeros((40, 30, 0)), latents))


def _fake_batch(n: int, offset: float) -> Rollout:
    rewards = torch.full((n, 3), offset) + torch.arange(n, dtype=torch.float32)[:, None]
    zeros = torch.zeros(n, 3)
    return Rollout(
        obs=zeros[..., None],
        actions=zeros,
        rewards=rewards,
        next_obs=rewards[..., None],
        transitions=rewards[..., None].expand(n, 3, 2),
        features=zeros[..., None],
        logp=zeros,
        values=zeros,
        session_end=torch.zeros(n, 3, dtype=torch.bool),
    )


def test_episode_buffer_keeps_the_most_recent_episodes() -> None:
    buffer = EpisodeBuffer(5)
    buffer.add(_fake_batch(3, 0.0))  # episodes 0, 1, 2
    assert buffer.size == 3
    got = buffer.sample(10, torch.Generator().manual_seed(0))
    assert sorted(got["rewards"][:, 0].tolist()) == [0.0, 1.0, 2.0]  # only filled slots
    buffer.add(_fake_batch(4, 100.0))  # 100..103: overwrites the two oldest (0 and 1)
    assert buffer.size == 5
    got = buffer.sample(5, torch.Generator().manual_seed(0))
    assert sorted(got["rewards"][:, 0].tolist()) == [2.0, 100.0, 101.0, 102.0, 103.0]
    # episodes stay whole: every field of a sampled row comes from the same episode
    torch.testing.assert_close(got["next_obs"][..., 0], got["rewards"])
    assert got["session_end"].dtype == torch.bool
    buffer.add(_fake_batch(7, 200.0))  # more than the capacity: the last 5 survive
    got = buffer.sample(5, None)
    assert sorted(got["rewards"][:, 0].tolist()) == [202.0, 203.0, 204.0, 205.0, 206.0]
    with pytest.raises(ProvenmlError):
        EpisodeBuffer(0)
    with pytest.raises(ProvenmlError):
        EpisodeBuffer(2).sample(1, None)


def test_scripted_references_order_on_the_edge_layout() -> None:
    options = evaluation_options("gridworld", 400, 0.07, seed=3)
    ref = scripted_gridworld_returns(options, 0.07)
    # knowing the latent beats inferring it, which beats ignoring it
    assert ref["walk_to_latent"] > ref["infer_and_switch"] > ref["sit_nearest"] + 5
    # with no switches, inference reaches nearly the oracle's return
    still = evaluation_options("gridworld", 400, 0.0, seed=3)
    ref0 = scripted_gridworld_returns(still, 0.0)
    assert ref0["walk_to_latent"] - ref0["infer_and_switch"] < 2.0


def test_running_norm_standardises_and_follows_drift() -> None:
    from provenml.metarl.agents import RunningNorm

    gen = torch.Generator().manual_seed(0)
    norm = RunningNorm(2, window=1000.0)
    data = torch.randn(5000, 2, generator=gen) * torch.tensor([2.0, 0.1]) + torch.tensor(
        [3.0, -1.0]
    )
    norm.update(data)
    out = norm(data)
    torch.testing.assert_close(out.mean(0), torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(0), torch.ones(2), atol=1e-2, rtol=0)
    # merged batches give the statistics of their union
    merged = RunningNorm(2, window=1e9)
    merged.update(data[:1000])
    merged.update(data[1000:])
    torch.testing.assert_close(merged.mean, data.mean(0), atol=1e-4, rtol=0)
    torch.testing.assert_close(merged.var, data.var(0, unbiased=False), atol=1e-3, rtol=1e-3)
    # a bounded window forgets: after many batches of a shifted distribution the mean follows
    for _ in range(20):
        norm.update(data[:500] + 10.0)
    assert (norm.mean - (data.mean(0) + 10.0)).abs().max() < 0.1


def test_belief_features_stored_when_acting_are_the_ones_ppo_sees() -> None:
    torch.manual_seed(0)
    agent = make_agent("dynamite", 6, 5, True, oracle_dim=2)
    env = SessionGridWorldVec(4)
    batch = collect(agent, env, torch.Generator().manual_seed(0), seed=0)
    before = agent.policy_features(batch).clone()
    agent.end_rollout()  # the statistics move only now, after the batch was stored
    assert agent.feature_norm.count.item() == 4 * 61  # begin + 60 observations per env
    torch.testing.assert_close(agent.policy_features(batch), before)
    assert batch.features.shape == (4, 60, 10)


def test_bayes_filter_hand_computed() -> None:
    agent = make_agent("bayes_filter", 6, 5, True, oracle_dim=2, session_end_prob=0.1)
    state, feature = agent.begin(3, torch.zeros(3, 2))
    assert feature.abs().max().item() == 0.0

    def step(reward: float, off0: tuple[float, float], off1: tuple[float, float]) -> torch.Tensor:
        return torch.tensor([[1, 0, 0, 0, 0, reward, 0.5, 0.5, *off0, *off1]], dtype=torch.float32)

    x = torch.cat(
        [
            step(0.0, (0.0, 0.0), (1.0, 0.0)),  # on goal 0, paid 0: goal 1 pays
            step(1.0, (1.0, 0.0), (0.0, 0.0)),  # on goal 1, paid 1: goal 1 pays
            step(-0.1, (0.5, 0.0), (-0.5, 0.0)),  # off the goals: no evidence
        ]
    )
    state, feature = agent.observe(state, x, torch.zeros(3, 2))
    switch = 0.1 * 0.8  # P(the paying goal changes before the next step)
    torch.testing.assert_close(state[0], torch.tensor([switch, 1 - switch]))
    torch.testing.assert_close(state[1], torch.tensor([switch, 1 - switch]))
    torch.testing.assert_close(state[2], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(feature[:, 0], state[:, 0] - state[:, 1])
    # another uninformative step: the belief relaxes towards 1/2 by the switch rate
    state, _ = agent.observe(state, x[2:].expand(3, -1), torch.zeros(3, 2))
    expected = switch * (1 - switch) + (1 - switch) * switch
    torch.testing.assert_close(state[0, 0], torch.tensor(expected))
    with pytest.raises(ProvenmlError):
        make_agent("bayes_filter", 4, 2, False, oracle_dim=2)  # the reacher


def test_scripted_rollout_records_encoder_inputs() -> None:
    options = evaluation_options("gridworld", 200, 0.07, seed=4)
    inputs, latents = scripted_gridworld_rollout(options, 0.07, "infer_and_switch")
    assert inputs.shape == (200, 60, 12) and latents.shape == (200, 60)
    np.testing.assert_array_equal(latents, options["latents"])
    # the exact filter run over these inputs names the paying goal right after a 0 on a goal
    agent = make_agent("bayes_filter", 6, 5, True, oracle_dim=2)
    state, _ = agent.begin(200, torch.zeros(200, 2))
    correct, count = 0, 0
    for t in range(59):
        state, feature = agent.observe(state, inputs[:, t], torch.zeros(200, 2))
        on_goal = (inputs[:, t, 8:12].reshape(-1, 2, 2).abs().sum(-1) < 1e-6).any(-1)
        after_zero = on_goal & (inputs[:, t, 5].abs() < 0.05)
        predicted = (feature[:, 0] < 0).long().numpy()  # 0 when goal 0 is more likely
        correct += int((predicted == latents[:, t + 1])[after_zero.numpy()].sum())
        count += int(after_zero.sum())
    assert count > 50 and correct / count > 0.9
    with pytest.raises(ProvenmlError):
        scripted_gridworld_rollout(options, 0.07, "teleport")


def test_reward_decoder_broadcasts_like_the_concatenated_input() -> None:
    from provenml.metarl.belief import RewardDecoder

    torch.manual_seed(0)
    decoder = RewardDecoder(obs_dim=6, latent_dim=5)
    latent, obs = torch.randn(3, 4, 1, 5), torch.randn(3, 1, 7, 6)
    full = torch.cat([latent.expand(3, 4, 7, 5), obs.expand(3, 4, 7, 6)], -1)
    expected = decoder.net(full).squeeze(-1)
    torch.testing.assert_close(decoder(latent, obs), expected)


def test_model_pretraining_adds_steps_on_the_first_batch_only() -> None:
    base = TrainConfig(num_envs=8, total_steps=8 * 60 * 3, model_updates=2)
    plain = train_agent("varibad", base, seed=0)
    pretrained = train_agent(
        "varibad", TrainConfig(**{**base.__dict__, "model_pretrain_updates": 5}), seed=0
    )
    assert len(plain.model_losses) == 3 * 2
    assert len(pretrained.model_losses) == 3 * 2 + 5
    # the first batch is collected by the same initial policy either way
    assert plain.curve_returns[0] == pretrained.curve_returns[0]


def test_cell_decoder_reads_the_head_of_the_entered_cell() -> None:
    from provenml.metarl.belief import CellRewardDecoder

    torch.manual_seed(0)
    decoder = CellRewardDecoder(size=5, latent_dim=3)
    latent = torch.randn(2, 3)
    heads = decoder.net(latent)  # (2, 25)
    obs = torch.zeros(2, 6)
    obs[0, :2] = torch.tensor([4, 0]) / 4  # cell (4, 0)
    obs[1, :2] = torch.tensor([1, 3]) / 4  # cell (1, 3)
    torch.testing.assert_close(decoder(latent, obs), torch.stack([heads[0, 20], heads[1, 8]]))
    # broadcasting: every latent against every step, as the ELBO decodes them
    many = decoder(latent[:, None, None], obs[None, None].expand(1, 1, 2, 6))
    assert many.shape == (2, 1, 2)
    torch.testing.assert_close(many[1, 0], torch.stack([heads[1, 20], heads[1, 8]]))


def test_exploration_episodes_feed_the_model_only() -> None:
    cfg = TrainConfig(num_envs=8, total_steps=8 * 60, model_updates=1, explore_envs=3)
    torch.manual_seed(0)
    env = SessionGridWorldVec(8)
    agent = make_agent("varibad", 6, 5, True, oracle_dim=2)
    with torch.no_grad():  # a policy that always stays: random actions must come from elsewhere
        agent.policy.actor[-1].bias.copy_(torch.tensor([50.0, 0.0, 0.0, 0.0, 0.0]))
    random_envs = torch.arange(8) >= 5
    batch = collect(agent, env, torch.Generator().manual_seed(0), seed=0, random_envs=random_envs)
    assert (batch.actions[:5] == 0).all()
    # the random envs' actions are uniform: all five actions appear, in roughly equal numbers
    counts = torch.bincount(batch.actions[5:].reshape(-1), minlength=5)
    assert (counts > 0.12 * counts.sum()).all()
    result = train_agent("varibad", cfg, seed=0)  # PPO runs on the 5 policy episodes
    assert len(result.curve_returns) == 1
    with pytest.raises(ProvenmlError, match="explore_envs"):
        train_agent("varibad", TrainConfig(**{**cfg.__dict__, "explore_envs": 8}), seed=0)


def test_uneven_minibatches_train() -> None:
    # 9 PPO episodes in 4 minibatches: chunks of 2, 2, 2, 2 and a remainder of 1
    cfg = TrainConfig(num_envs=12, total_steps=12 * 60, model_updates=1, explore_envs=3)
    assert len(train_agent("dynamite", cfg, seed=0).curve_returns) == 1
    cfg = TrainConfig(num_envs=9, total_steps=9 * 60)
    assert len(train_agent("rl2", cfg, seed=0).curve_returns) == 1
