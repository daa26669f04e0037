"""The federated round: determinism, failures, bad inputs, Flower simulation == loop."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from provenml.errors import ProvenmlError
from provenml.federated.engine import (
    ARMS,
    build_federation,
    check_settings,
    failing_clients,
    run_loop,
    sample_clients,
    tiny_settings,
)

TINY = tiny_settings()


@pytest.fixture(scope="module")
def tiny_fed():  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    return build_federation(TINY, seed=0)


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_same_seed_same_weights_and_another_seed_differs(tiny_fed) -> None:  # type: ignore[no-untyped-def]
    arm = ARMS.get("full")
    first = run_loop(arm, tiny_fed)
    second = run_loop(arm, tiny_fed)
    assert _max_diff(first.state, second.state) == 0.0
    other = run_loop(arm, build_federation(TINY, seed=1))
    assert _max_diff(first.state, other.state) > 1e-3


def test_client_distillation_is_counted_as_client_compute(tiny_fed) -> None:  # type: ignore[no-untyped-def]
    plain = run_loop(ARMS.get("fedavg"), tiny_fed)
    distil = run_loop(ARMS.get("clip2fl"), tiny_fed)
    full = run_loop(ARMS.get("full"), tiny_fed)
    assert plain.teacher_client_flops == 0 and full.teacher_client_flops == 0
    assert distil.teacher_client_flops > 0
    assert distil.client_flops == pytest.approx(plain.client_flops + distil.teacher_client_flops)
    assert full.server_flops > 0 and plain.server_flops == 0


def test_sampling_and_failures_are_seeded_and_sized() -> None:
    assert sample_clients(20, 10, 3, seed=5) == sample_clients(20, 10, 3, seed=5)
    assert sample_clients(20, 10, 3, seed=5) != sample_clients(20, 10, 4, seed=5)
    sampled = sample_clients(20, 10, 1, seed=0)
    assert len(sampled) == 10 and len(set(sampled)) == 10
    failing = failing_clients(sampled, 0.2, 1, seed=0)
    assert len(failing) == 2 and set(failing) <= set(sampled)


def test_failed_clients_are_counted_and_training_goes_on(tiny_fed) -> None:  # type: ignore[no-untyped-def]
    fed = replace(tiny_fed, settings=replace(TINY, failure_rate=0.5))
    out = run_loop(ARMS.get("fedavg"), fed)
    assert out.failures == TINY.rounds * 1  # half of the 2 sampled clients, every round
    assert all(torch.isfinite(v).all() for v in out.state.values())


def test_bad_settings_give_one_clear_error() -> None:
    with pytest.raises(ProvenmlError, match="alpha must be a positive number"):
        check_settings(replace(TINY, data=replace(TINY.data, alpha=0.0)))
    with pytest.raises(ProvenmlError, match="failure_rate"):
        check_settings(replace(TINY, failure_rate=1.0))
    with pytest.raises(ProvenmlError, match="num_clients=500 is more than the"):
        build_federation(replace(TINY, data=replace(TINY.data, num_clients=500)), seed=0)


def test_teacher_of_other_classes_is_refused(tiny_fed) -> None:  # type: ignore[no-untyped-def]
    teacher = tiny_fed.teacher
    teacher_classes = teacher.classes
    try:
        teacher.classes = ("cat", "dog")
        with pytest.raises(ProvenmlError, match="teacher classes"):
            build_federation(TINY, seed=0, teacher=teacher)
    finally:
        teacher.classes = teacher_classes


@pytest.mark.slow
def test_flower_simulation_equals_the_single_process_loop(tiny_fed) -> None:  # type: ignore[no-untyped-def]
    import ray

    from provenml.federated.flower import run_flower_simulation

    reference = run_loop(ARMS.get("full"), tiny_fed)
    simulated = run_flower_simulation("full", TINY, seed=0, num_cpus=2)
    assert not ray.is_initialized()
    assert _max_diff(reference.state, simulated.state) < 1e-5
    assert simulated.client_flops == reference.client_flops
    assert simulated.bytes_sent == reference.bytes_sent
    assert simulated.failures == 0


@pytest.mark.slow
def test_flower_counts_failed_clients_like_the_loop(tiny_fed) -> None:  # type: ignore[no-untyped-def]
    from provenml.federated.flower import run_flower_simulation

    faulty = replace(TINY, failure_rate=0.5)
    reference = run_loop(ARMS.get("fedavg"), replace(tiny_fed, settings=faulty))
    simulated = run_flower_simulation("fedavg", faulty, seed=0, num_cpus=2)
    assert simulated.failures == reference.failures == TINY.rounds
    assert _max_diff(reference.state, simulated.state) < 1e-5


def test_a_ray_start_failure_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    import flwr.simulation

    from provenml.federated.flower import run_flower_simulation

    def broken(**kwargs: object) -> None:
        raise RuntimeError("Failed to start the GCS server")

    monkeypatch.setattr(flwr.simulation, "run_simulation", broken)
    with pytest.raises(ProvenmlError, match=r"ray stop.*engine=loop"):
        run_flower_simulation("fedavg", TINY, seed=0)
