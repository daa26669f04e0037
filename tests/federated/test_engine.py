"""The federated round: determinism, failures (raised and timed out), bad inputs, Flower
simulation == loop."""

from __future__ import annotations

import time
from dataclasses import replace
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest
import torch

from provenml.errors import ProvenmlError
from provenml.federated import flower
from provenml.federated.engine import (
    ARMS,
    ClientFailure,
    Federation,
    FLSettings,
    build_federation,
    check_settings,
    client_update,
    failing_clients,
    failure_plan,
    fedavg,
    initial_state,
    model_bytes,
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


def test_failure_modes_split_the_failing_clients_by_seed() -> None:
    sampled = sample_clients(20, 10, 1, seed=0)
    failing = failing_clients(sampled, 0.2, 1, seed=0)
    for mode in ("raise", "timeout"):
        plan = failure_plan(sampled, 0.2, mode, 1, seed=0)
        assert sorted(plan) == failing and set(plan.values()) == {mode}
    mixed = failure_plan(sampled, 0.2, "mixed", 1, seed=0)
    assert sorted(mixed) == failing and sorted(mixed.values()) == ["raise", "timeout"]
    assert mixed == failure_plan(sampled, 0.2, "mixed", 1, seed=0)
    # one failing client per round: it times out in one round and raises in the next
    kinds = [failure_plan([0, 1], 0.5, "mixed", r, seed=3) for r in (1, 2)]
    assert sorted(k for plan in kinds for k in plan.values()) == ["raise", "timeout"]
    assert failure_plan(sampled, 0.0, "timeout", 1, seed=0) == {}


def _received_mean(
    fed: Federation, state: dict[str, torch.Tensor], server_round: int
) -> dict[str, torch.Tensor]:
    """FedAvg's weighted mean of the updates of the round's clients that do not fail."""
    s = fed.settings
    sampled = sample_clients(s.data.num_clients, s.clients_per_round, server_round, fed.seed)
    plan = failure_plan(sampled, s.failure_rate, s.failure_mode, server_round, fed.seed)
    arm = ARMS.get("fedavg")
    updates = [client_update(state, c, server_round, arm, fed) for c in sampled if c not in plan]
    return fedavg([u for u, _, _ in updates], [n for _, n, _ in updates])


# three clients, all sampled, one of them failing: the mean is over the other two
ONE_OF_THREE = replace(TINY, clients_per_round=3, failure_rate=1 / 3)
# two of three clients sampled, one failing: it times out in round 1 and raises in round 2
_MIXED: dict[str, Any] = {"failure_rate": 0.5, "failure_mode": "mixed"}


def test_timed_out_clients_are_counted_apart_and_only_the_others_averaged(tiny_fed) -> None:  # type: ignore[no-untyped-def]
    settings = replace(ONE_OF_THREE, rounds=1, failure_mode="timeout")
    fed = replace(tiny_fed, settings=settings)
    out = run_loop(ARMS.get("fedavg"), fed)
    assert (out.failures, out.timeouts, out.raised) == (1, 1, 0)
    expected = _received_mean(fed, initial_state(ARMS.get("fedavg"), fed), 1)
    assert _max_diff(out.state, expected) == 0.0
    size = model_bytes(out.state)
    assert out.bytes_sent == size * (3 + 2)  # down to all three, up from the two in time
    mixed = run_loop(ARMS.get("fedavg"), replace(tiny_fed, settings=replace(TINY, **_MIXED)))
    assert (mixed.failures, mixed.timeouts, mixed.raised) == (2, 1, 1)


def test_bad_settings_give_one_clear_error() -> None:
    with pytest.raises(ProvenmlError, match="alpha must be a positive number"):
        check_settings(replace(TINY, data=replace(TINY.data, alpha=0.0)))
    with pytest.raises(ProvenmlError, match="failure_rate"):
        check_settings(replace(TINY, failure_rate=1.0))
    with pytest.raises(ProvenmlError, match="failure_mode must be one of raise, timeout, mixed"):
        check_settings(replace(TINY, failure_mode="sometimes"))  # type: ignore[arg-type]
    with pytest.raises(ProvenmlError, match="failure_mode must be one of"):
        failure_plan([0, 1], 0.5, "late", 1, seed=0)
    with pytest.raises(ProvenmlError, match="round_timeout must be a positive number"):
        check_settings(replace(TINY, round_timeout=0.0))
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


class _LeakyGrid:
    """A grid that runs the ``ClientApp``'s handlers in this process. It holds back the
    replies of clients told to time out and hands them over with the next round's replies,
    as a grid that leaked late replies would (Flower's own grids drop them)."""

    def __init__(self, spec: flower.RunSpec) -> None:
        self.spec = spec
        self.partition = {1000 + p: p for p in range(spec.settings.data.num_clients)}
        self.held: list[Any] = []
        self.leaked = 0

    def get_node_ids(self) -> list[int]:
        return list(self.partition)

    def send_and_receive(self, messages: Any, *, timeout: float | None = None) -> list[Any]:
        from flwr.app import Error, Message, MessageType

        replies, self.held = self.held, []
        self.leaked += len(replies)
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = str(uuid4())  # as Flower's grids do
            context = SimpleNamespace(
                node_config={"partition-id": self.partition[msg.metadata.dst_node_id]}
            )
            if msg.metadata.message_type == MessageType.QUERY:
                replies.append(flower.answer_query(msg, context))
                continue
            late = float(msg.content["config"]["delay"]) > 0
            try:
                reply = flower.answer_train(self.spec, msg, context)
            except ClientFailure as exc:
                reply = Message(Error(code=2, reason=str(exc)), reply_to=msg)
            (self.held if late else replies).append(reply)
        return replies


def test_server_counts_failures_by_kind_and_never_aggregates_a_late_reply(
    tiny_fed,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flwr.supercore.task_identity import TaskIdentity

    for name, value in (("_run_id", 1), ("_node_id", 1), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)  # what a ServerApp process is given
    # all three clients sampled in both rounds, one failing: round 1's times out (its reply is
    # leaked into round 2, where that client is sampled again), round 2's raises
    settings = replace(ONE_OF_THREE, failure_mode="mixed", round_timeout=0.5)
    held: list[float] = []
    monkeypatch.setattr(flower, "hold_reply", held.append)
    spec = flower.RunSpec(arm="fedavg", settings=settings, seed=0, connect_timeout=1.0)
    grid = _LeakyGrid(spec)
    outcome = flower.serve(spec, grid)
    assert (outcome.failures, outcome.timeouts, outcome.raised) == (2, 1, 1)
    assert grid.leaked == 1 and len(held) == 1 and held[0] > settings.round_timeout
    # the leaked reply of round 1 is not in round 2's mean: the weights are the loop's
    reference = run_loop(ARMS.get("fedavg"), replace(tiny_fed, settings=settings))
    assert (reference.failures, reference.timeouts) == (2, 1)
    assert _max_diff(reference.state, outcome.state) < 1e-5


@pytest.mark.slow
def test_flower_simulation_stops_waiting_for_a_late_client(tiny_fed) -> None:  # type: ignore[no-untyped-def]
    """Through Ray: one of three clients holds its reply past the deadline in both rounds;
    the run finishes, counts two time-outs, and averages only the replies that came."""
    from provenml.federated.flower import run_flower_simulation

    settings: FLSettings = replace(ONE_OF_THREE, failure_mode="timeout", round_timeout=2.0)
    started = time.monotonic()  # one actor trains, Ray gets one more for the late client
    simulated = run_flower_simulation("fedavg", settings, seed=0, num_cpus=1)
    elapsed = time.monotonic() - started
    assert (simulated.failures, simulated.timeouts, simulated.raised) == (2, 2, 0)
    assert elapsed > settings.rounds * settings.round_timeout  # the server did wait
    fed = replace(tiny_fed, settings=settings)
    state = initial_state(ARMS.get("fedavg"), fed)
    for server_round in (1, 2):  # round 1's late reply comes in during round 2
        state = _received_mean(fed, state, server_round)
    assert _max_diff(state, simulated.state) < 1e-5


def test_client_updates_return_states_that_later_updates_leave_alone(tiny_fed) -> None:  # type: ignore[no-untyped-def]
    arm = ARMS.get("fedavg")
    start = initial_state(arm, tiny_fed)
    first, _, _ = client_update(start, 0, 1, arm, tiny_fed)
    kept = {k: v.clone() for k, v in first.items()}
    again, _, _ = client_update(start, 1, 1, arm, tiny_fed)  # the same scratch model
    assert all(torch.equal(first[k], kept[k]) for k in first)
    assert not all(torch.equal(first[k], again[k]) for k in first)
    repeat, _, _ = client_update(start, 0, 1, arm, tiny_fed)  # no state carried between calls
    assert all(torch.equal(first[k], repeat[k]) for k in first)
    assert all(torch.equal(start[k], initial_state(arm, tiny_fed)[k]) for k in start)
