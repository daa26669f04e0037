"""The learner's advantage estimators and the single-process mode's determinism."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from provenml.distrl.envs import make_env
from provenml.distrl.learner import (
    Learner,
    NumpyTeamPolicy,
    TeamPolicy,
    gae_with_dones,
    numpy_weights,
    vtrace,
)
from provenml.distrl.training import TrainSettings, train
from provenml.errors import ProvenmlError
from provenml.rl import PPOConfig, gae


def test_gae_with_dones_hand_computed() -> None:
    # one column, gamma 0.5, lambda 1: the episode ends after t=1, a new one starts at t=2
    rewards = torch.tensor([[1.0], [2.0], [4.0]])
    values = torch.tensor([[0.0], [0.0], [0.0]])
    dones = torch.tensor([[False], [True], [False]])
    adv, ret = gae_with_dones(rewards, values, dones, torch.tensor([8.0]), gamma=0.5, lam=1.0)
    # t=2: 4 + 0.5*8 = 8; t=1: 2 (cut); t=0: 1 + 0.5*2 = 2
    torch.testing.assert_close(adv[:, 0], torch.tensor([2.0, 2.0, 8.0]))
    torch.testing.assert_close(ret, adv + values)


def test_gae_with_dones_matches_the_fixed_horizon_core() -> None:
    gen = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(6, 5, generator=gen), torch.randn(6, 5, generator=gen)
    dones = torch.zeros(6, 5, dtype=torch.bool)
    dones[-1] = True
    ours, _ = gae_with_dones(rewards, values, dones, torch.zeros(5), 0.9, 0.8)
    core, _ = gae(rewards.T, values.T, gamma=0.9, lam=0.8)  # (num_envs, horizon)
    torch.testing.assert_close(ours, core.T)


def test_vtrace_on_policy_equals_discounted_returns() -> None:
    gen = torch.Generator().manual_seed(1)
    rewards, values = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    dones = torch.zeros(5, 3, dtype=torch.bool)
    dones[2, 1] = True
    last = torch.randn(3, generator=gen)
    adv, vs = vtrace(torch.zeros(5, 3), rewards, values, dones, last, gamma=0.9)
    gae_adv, returns = gae_with_dones(rewards, values, dones, last, 0.9, 1.0)
    torch.testing.assert_close(vs, returns)
    torch.testing.assert_close(adv, gae_adv)
    # off-policy: a sample the learner finds 4x less likely is clipped by rho, never up-weighted
    adv_off, _ = vtrace(torch.full((5, 3), np.log(4.0)), rewards, values, dones, last, 0.9)
    torch.testing.assert_close(adv_off, adv)


def _small(seed: int, **kw: object) -> TrainSettings:
    return TrainSettings(
        env="wargame",
        mode="vs_scripted",
        iterations=2,
        envs_per_worker=4,
        fragment=16,
        seed=seed,
        ppo=PPOConfig(epochs=2, minibatches=2, hidden=16),
        **kw,  # type: ignore[arg-type]
    )


def test_single_process_mode_same_seed_same_numbers() -> None:
    a, b, c = train(_small(3)), train(_small(3)), train(_small(4))
    for key, value in a.weights["red"].items():
        np.testing.assert_array_equal(value, b.weights["red"][key])
    assert a.outcomes == b.outcomes
    for key in ("policy_loss", "value_loss", "entropy"):
        assert a.iterations[-1]["updates"]["red"][key] == b.iterations[-1]["updates"]["red"][key]
    assert any(not np.array_equal(v, c.weights["red"][k]) for k, v in a.weights["red"].items())


def test_bad_settings_are_clear_errors() -> None:
    with pytest.raises(ProvenmlError, match="unknown env 'simple_tagg'"):
        train(TrainSettings(env="simple_tagg"))
    with pytest.raises(ProvenmlError, match="mode"):
        train(TrainSettings(mode="league"))
    with pytest.raises(ProvenmlError, match="needs env 'wargame'"):
        train(TrainSettings(env="simple_tag", mode="self_play"))
    with pytest.raises(ProvenmlError, match="unknown scripted policy"):
        train(_small(0, opponent="rushh"))


def test_learner_checkpoint_resumes(tmp_path: Path) -> None:
    path = str(tmp_path / "ckpt.pkl")
    first = train(_small(5, checkpoint_path=path))  # iterations 0, 1
    # the checkpoint holds the first run's final learner exactly
    blob = pickle.loads(Path(path).read_bytes())
    learner = Learner(make_env("wargame", 1).teams["red"], _small(5).ppo)
    learner.load_state(blob["learners"]["red"])
    for key, value in first.weights["red"].items():
        np.testing.assert_array_equal(learner.weights()[key], value)
    assert learner.version == 2 and blob["iteration"] == 2
    resumed = train(
        TrainSettings(
            **{**vars(_small(5)), "iterations": 4, "checkpoint_path": path, "resume": True}
        )
    )
    assert [r["iteration"] for r in resumed.iterations] == [2, 3]
    assert resumed.iterations[-1]["updates"]["red"]["version"] == 4.0


@pytest.mark.parametrize("central_critic", [False, True])
def test_numpy_inference_matches_the_torch_policy(central_critic: bool) -> None:
    spec = make_env("simple_tag", 1).teams["adversary"]
    policy = TeamPolicy(spec, hidden=32, central_critic=central_critic)
    for p in policy.parameters():  # move off the near-zero initial actor head
        torch.nn.init.normal_(p, std=0.3)
    fast = NumpyTeamPolicy(len(spec.agents))
    fast.load(numpy_weights(policy))
    obs = np.random.default_rng(0).normal(size=(5, len(spec.agents), spec.obs_dim))
    obs = obs.astype(np.float32)
    logits, values = fast.forward(obs)
    with torch.no_grad():
        ref_logits, ref_values = policy.logits_and_value(torch.from_numpy(obs))
    np.testing.assert_allclose(logits, ref_logits.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(values, ref_values.numpy(), rtol=1e-4, atol=1e-5)
    # sampled actions follow the policy: empirical frequencies against the softmax
    many = np.repeat(obs[:1], 20_000, 0)
    actions, logp, _ = fast.act(many, np.random.default_rng(1))
    probs = torch.softmax(ref_logits[0, 0], -1).numpy()
    freq = np.bincount(actions[:, 0], minlength=len(probs)) / len(actions)
    np.testing.assert_allclose(freq, probs, atol=0.01)
    np.testing.assert_allclose(np.exp(logp[:, 0]), probs[actions[:, 0]], rtol=1e-4)


def test_central_critic_sees_teammates_and_trains() -> None:
    spec = make_env("wargame", 1).teams["red"]
    policy = TeamPolicy(spec, hidden=16, central_critic=True)
    obs = torch.randn(2, len(spec.agents), spec.obs_dim)
    _, value = policy.logits_and_value(obs)
    changed = obs.clone()
    changed[:, 1] += 1.0  # a teammate's observation moves agent 0's value, not its policy
    logits2, value2 = policy.logits_and_value(changed)
    assert not torch.allclose(value[:, 0], value2[:, 0])
    torch.testing.assert_close(policy.logits_and_value(obs)[0][:, 0], logits2[:, 0])
    result = train(_small(2, central_critic=True))
    assert any(k.startswith("central.") for k in result.weights["red"])
    assert np.isfinite(result.iterations[-1]["updates"]["red"]["value_loss"])
