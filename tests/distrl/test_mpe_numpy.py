"""The numpy simple_tag reproduces mpe2's simple_tag_v3 step for step."""

from __future__ import annotations

import numpy as np
from mpe2 import simple_tag_v3

from provenml.distrl.mpe_numpy import SimpleTagNumpy


def test_numpy_simple_tag_equals_mpe2() -> None:
    seeds = [3, 4, 5, 6]
    ours = SimpleTagNumpy(len(seeds))
    ours.reset_envs(np.arange(len(seeds)), seeds=seeds)
    theirs = [simple_tag_v3.parallel_env(max_cycles=25) for _ in seeds]
    their_obs = [env.reset(seed=s)[0] for env, s in zip(theirs, seeds, strict=True)]
    obs = ours.observe()
    rng = np.random.default_rng(0)
    caught = 0
    for step in range(25):
        for i, o in enumerate(their_obs):
            for team, spec in ours.teams.items():
                for j, agent in enumerate(spec.agents):
                    np.testing.assert_allclose(obs[team][i, j], o[agent], rtol=0, atol=1e-5)
        actions = {
            t: rng.integers(0, 5, size=(len(seeds), len(s.agents))) for t, s in ours.teams.items()
        }
        result = ours.step(actions)
        obs = result.final_obs
        for i, env in enumerate(theirs):
            joint = {
                a: int(actions[t][i, j])
                for t, s in ours.teams.items()
                for j, a in enumerate(s.agents)
            }
            their_obs[i], rewards, _, truncs, _ = env.step(joint)
            for team, spec in ours.teams.items():
                for j, agent in enumerate(spec.agents):
                    assert abs(result.rewards[team][i, j] - rewards[agent]) < 1e-6
            assert bool(result.truncated[i]) == all(truncs.values()) == (step == 24)
            caught += int(result.rewards["adversary"][i, 0] > 0)
    assert caught > 0  # the collision rewards were exercised
