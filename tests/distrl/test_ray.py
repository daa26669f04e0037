"""Ray mode: actors train, a killed rollout actor is restarted without double counting, too
many actors is a clear error, and every Ray process started here is shut down."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from provenml.distrl.training import TrainSettings, train
from provenml.errors import ProvenmlError
from provenml.rl import PPOConfig

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

FRAGMENT, ENVS = 8, 4


def _ray_children() -> list[str]:
    names = []
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            names.append(child.name())
        except psutil.Error:
            continue
    return names


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    before = set(_ray_children())
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    deadline = time.monotonic() + 20
    while (left := set(_ray_children()) - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not ray.is_initialized()
    assert not left, f"Ray processes left running: {sorted(left)}"


def _settings(**kw: object) -> TrainSettings:
    return TrainSettings(
        env="wargame",
        mode="vs_scripted",
        opponent="rush",
        envs_per_worker=ENVS,
        fragment=FRAGMENT,
        ppo=PPOConfig(epochs=1, minibatches=1, hidden=16),
        **kw,  # type: ignore[arg-type]
    )


def test_killed_actor_is_restarted_and_no_sample_counted_twice(local_ray: None) -> None:
    result = train(_settings(num_workers=1, iterations=4, kill_worker_at=1, max_restarts=1))
    assert result.restarts == 1 and result.lost_fragments == 1
    # 4 iterations, one fragment lost with the killed actor: 3 fragments learnt from
    assert result.env_steps == 3 * FRAGMENT * ENVS
    assert [r["iteration"] for r in result.iterations] == [0, 1, 2, 3]
    assert result.iterations[-1]["updates"]["red"]["version"] == 3.0  # no update on nothing


@pytest.mark.slow
def test_two_actors_feed_one_learner(local_ray: None) -> None:
    result = train(_settings(num_workers=2, iterations=2))
    assert result.env_steps == 2 * 2 * FRAGMENT * ENVS
    assert result.policy_lag == 0.0


def test_more_actors_than_cpus_is_a_clear_error(local_ray: None) -> None:
    with pytest.raises(ProvenmlError, match=r"num_workers=3 .* need 3 CPUs; the Ray cluster has 2"):
        train(_settings(num_workers=3, iterations=1))
