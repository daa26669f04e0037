"""The method as a Flower app (Message API, flwr >= 1.20): a ``ServerApp`` and a ``ClientApp``.

The apps run the functions of :mod:`provenml.federated.engine`, so simulation, deployment and
the single-process :func:`~provenml.federated.engine.run_loop` give the same weights:

- the ``ClientApp`` answers ``query`` messages with its partition id (from the SuperNode's
  ``node_config["partition-id"]``) and ``train`` messages with
  :func:`~provenml.federated.engine.client_update` on that partition (torch threads 1);
- the ``ServerApp`` asks every node for its partition once, then each round samples clients
  with :func:`~provenml.federated.engine.sample_clients`, sends the global weights to their
  nodes, waits at most ``settings.round_timeout`` seconds for the replies (Flower's
  ``Grid.send_and_receive(..., timeout=...)``), aggregates those that came with Flower's own
  FedAvg strategy (``flwr.serverapp.strategy.FedAvg``, weighted by ``num-examples``), runs
  the server-side stage 3 (:func:`~provenml.federated.engine.server_update`) and counts the
  failed updates: an error reply (the client raised) or no reply in time (a time-out).

Injected failures (:func:`~provenml.federated.engine.failure_plan`): a client told to fail
raises; a client told to time out trains, then holds its reply until ``LATE_BY`` seconds past
the round's deadline, so the server has stopped waiting when it arrives. A reply counts only
for the round whose message it answers (its ``reply_to_message_id`` is one the round sent and
it echoes the round number), so a late reply is never aggregated into a later round.

:func:`run_flower_simulation` runs both with ``flwr.simulation.run_simulation`` on the Ray
backend (one CPU per virtual client). For a deployment (a SuperLink and SuperNodes), point
``flwr run`` at :func:`server_app` / :func:`client_app` (see docs/federated.md and
:mod:`provenml.federated.deploy`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from provenml.errors import ProvenmlError
from provenml.federated.engine import (
    ARMS,
    Federation,
    FLSettings,
    RunOutcome,
    build_federation,
    client_update,
    failure_plan,
    initial_state,
    model_bytes,
    sample_clients,
    server_update,
    timeouts_per_round,
)

LATE_BY = 1.0
"""Seconds past the server's deadline at which a client told to time out sends its reply
(it holds the reply ``round_timeout + LATE_BY`` seconds from receiving the message, and the
server's deadline runs from sending it, so the reply is late on any clock)."""

_FEDERATIONS: dict[str, Federation] = {}  # one per process (each Ray actor builds its own)


def _federation(settings_json: str, seed: int) -> Federation:
    key = f"{seed}:{settings_json}"
    if key not in _FEDERATIONS:
        _FEDERATIONS.clear()
        settings = FLSettings.from_dict(json.loads(settings_json))
        _FEDERATIONS[key] = build_federation(settings, seed)
    return _FEDERATIONS[key]


@dataclass
class RunSpec:
    """What a Flower run needs: the arm, the settings (as JSON) and the seed.

    ``connect_timeout`` bounds the wait for the SuperNodes to register and for their answer
    to the first query (when each also builds its data); a round's replies are awaited
    ``settings.round_timeout`` seconds."""

    arm: str
    settings: FLSettings
    seed: int
    connect_timeout: float = 120.0
    outcome: RunOutcome | None = field(default=None, repr=False)

    def settings_json(self) -> str:
        return json.dumps(self.settings.as_dict(), sort_keys=True)


def answer_query(msg: Any, context: Any, spec: RunSpec | None = None) -> Any:
    """The ``ClientApp``'s ``query`` handler: the node's partition id. With ``spec``, the
    process also builds its federation now, so that the first round's replies are not slowed
    by it (they have ``round_timeout`` seconds)."""
    from flwr.app import ConfigRecord, Message, RecordDict

    if spec is not None:
        _federation(spec.settings_json(), spec.seed)
    record = ConfigRecord({"partition-id": int(context.node_config["partition-id"])})
    return Message(RecordDict({"info": record}), reply_to=msg)


def hold_reply(seconds: float) -> None:
    """Wait ``seconds`` before replying (a client told to time out; replaced in tests)."""
    time.sleep(seconds)


def answer_train(spec: RunSpec, msg: Any, context: Any) -> Any:
    """The ``ClientApp``'s ``train`` handler: :func:`client_update` on the node's partition.
    The reply echoes the round; a client told to time out (``config["delay"] > 0``) holds it
    until ``delay`` seconds after receiving the message."""
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

    received = time.monotonic()
    torch.set_num_threads(1)  # one CPU per virtual client
    fed = _federation(spec.settings_json(), spec.seed)
    config = msg.content["config"]
    server_round = int(config["server-round"])
    state = msg.content["arrays"].to_torch_state_dict()
    new, n, metrics = client_update(
        state,
        int(context.node_config["partition-id"]),
        server_round,
        ARMS.get(spec.arm),
        fed,
        fail=bool(config["fail"]),
    )
    delay = float(config.get("delay", 0.0))
    if delay > 0:
        hold_reply(max(0.0, delay - (time.monotonic() - received)))
    reply = RecordDict(
        {
            "arrays": ArrayRecord(new),
            "metrics": MetricRecord({"num-examples": n, "server-round": server_round, **metrics}),
        }
    )
    return Message(reply, reply_to=msg)


def client_app(spec: RunSpec) -> Any:
    """A ``flwr.clientapp.ClientApp`` running :func:`client_update` for ``spec``."""
    from flwr.app import Context, Message
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        return answer_query(msg, context, spec)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return answer_train(spec, msg, context)

    return app


def server_app(spec: RunSpec) -> Any:
    """A ``flwr.serverapp.ServerApp`` running the rounds of ``spec``; the outcome is stored
    in ``spec.outcome`` (in simulation the ``ServerApp`` runs in the calling process)."""
    from flwr.app import Context
    from flwr.serverapp import Grid, ServerApp

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        serve(spec, grid)

    return app


def serve(spec: RunSpec, grid: Any) -> RunOutcome:
    """The ``ServerApp``'s main: the rounds of ``spec`` over ``grid``'s nodes, with one torch
    thread (as the clients and the single-process loop run), so that every runtime computes
    the same floating-point sums."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _serve(spec, grid)
    finally:
        torch.set_num_threads(threads)


def _serve(spec: RunSpec, grid: Any) -> RunOutcome:
    from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
    from flwr.serverapp.strategy import FedAvg

    arm = ARMS.get(spec.arm)
    fed = _federation(spec.settings_json(), spec.seed)
    settings = fed.settings
    nodes = list(grid.get_node_ids())
    deadline = time.monotonic() + spec.connect_timeout
    while len(nodes) < settings.data.num_clients and time.monotonic() < deadline:
        time.sleep(0.5)  # SuperNodes may still be registering
        nodes = list(grid.get_node_ids())
    replies = grid.send_and_receive(
        [Message(RecordDict(), dst_node_id=n, message_type=MessageType.QUERY) for n in nodes],
        timeout=max(spec.connect_timeout, settings.round_timeout),
    )
    node_of = {
        int(r.content["info"]["partition-id"]): r.metadata.src_node_id
        for r in replies
        if not r.has_error()
    }
    missing = sorted(set(range(settings.data.num_clients)) - set(node_of))
    if missing:
        errors = sorted({r.error.reason for r in replies if r.has_error()})
        errors.append(f"{len(nodes)} nodes connected")
        raise ProvenmlError(
            f"no SuperNode serves partitions {missing}: start one SuperNode per client "
            f"(num_clients={settings.data.num_clients}) with node_config partition-id"
            + (f"; the nodes answered with errors: {errors[:3]}" if errors else "")
        )
    partition_of = {node: partition for partition, node in node_of.items()}
    strategy = FedAvg(min_train_nodes=1, min_available_nodes=1, fraction_evaluate=0.0)
    state = initial_state(arm, fed)
    outcome = RunOutcome(state=state, rounds=settings.rounds)
    size = model_bytes(state)
    for server_round in range(1, settings.rounds + 1):
        sampled = sample_clients(
            settings.data.num_clients, settings.clients_per_round, server_round, spec.seed
        )
        plan = failure_plan(
            sampled, settings.failure_rate, settings.failure_mode, server_round, spec.seed
        )
        late = settings.round_timeout + LATE_BY
        arrays = ArrayRecord(state)
        messages = [
            Message(
                RecordDict(
                    {
                        "arrays": arrays,
                        "config": ConfigRecord(
                            {
                                "server-round": server_round,
                                "fail": plan.get(client) == "raise",
                                "delay": late if plan.get(client) == "timeout" else 0.0,
                            }
                        ),
                    }
                ),
                dst_node_id=node_of[client],
                message_type=MessageType.TRAIN,
            )
            for client in sampled
        ]
        replies = grid.send_and_receive(messages, timeout=settings.round_timeout)
        current = this_rounds_replies(replies, messages, server_round)
        errors = [r for r in current if r.has_error()]
        # replies in partition order, not arrival order: Flower sums in float32, so a fixed
        # order keeps the same seed giving the same weights
        ok = sorted(
            (r for r in current if not r.has_error()),
            key=lambda r: partition_of[r.metadata.src_node_id],
        )
        outcome.failures += len(sampled) - len(ok)
        outcome.timeouts += len(sampled) - len(ok) - len(errors)  # no reply in time
        outcome.bytes_sent += size * (len(sampled) + len(ok))
        for reply in ok:
            metrics = reply.content["metrics"]
            outcome.client_flops += float(metrics["client_flops"])
            outcome.teacher_client_flops += float(metrics["teacher_flops"])
        aggregated, _ = strategy.aggregate_train(server_round, ok)
        if aggregated is not None:
            state = aggregated.to_torch_state_dict()
        state, server_flops = server_update(state, server_round, arm, fed)
        outcome.server_flops += server_flops
    outcome.state = state
    spec.outcome = outcome
    return outcome


def this_rounds_replies(replies: Any, messages: list[Any], server_round: int) -> list[Any]:
    """The ``replies`` that answer ``messages`` (the round's), at most one per node: a reply
    to another message (a late one from an earlier round), or a reply that echoes another
    round, is dropped, so that no update is counted twice or aggregated into the wrong round.

    Flower's grid only returns replies to the messages it just sent; this check keeps that
    true whatever grid the ``ServerApp`` runs on."""
    ids = {m.metadata.message_id for m in messages}
    by_id = "" not in ids  # Flower's grids set the ids of the messages they send
    nodes = {m.metadata.dst_node_id for m in messages}
    kept: dict[int, Any] = {}
    for reply in replies:
        meta = reply.metadata
        if meta.src_node_id not in nodes or meta.src_node_id in kept:
            continue
        if by_id and meta.reply_to_message_id not in ids:
            continue
        if not reply.has_error():
            content = reply.content
            echoed = content["metrics"].get("server-round") if "metrics" in content else None
            if echoed is None or int(echoed) != server_round:
                continue
        kept[meta.src_node_id] = reply
    return list(kept.values())


def run_flower_simulation(
    arm: str,
    settings: FLSettings,
    seed: int,
    num_cpus: int | None = None,
    verbose: bool = False,
) -> RunOutcome:
    """Run ``arm`` with ``flwr.simulation.run_simulation`` on the Ray backend: one virtual
    SuperNode per client, one CPU and one torch thread per ``ClientApp``. Ray is shut down
    afterwards.

    ``num_cpus`` (default: ``clients_per_round``, at most the machine's cores) actors train;
    when clients are told to time out, Ray gets one more actor per such client of a round,
    since a client holding its reply holds an actor (but no CPU), so that it does not make
    the others late."""
    import logging

    try:
        import ray
        from flwr.simulation import run_simulation
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ProvenmlError(
            "Flower simulation needs flwr and ray: pip install 'provenml[fl]'"
        ) from None
    spec = RunSpec(arm=ARMS.get(arm).name, settings=settings, seed=seed)
    cpus = num_cpus or max(1, min(settings.clients_per_round, os.cpu_count() or 1))
    cpus += timeouts_per_round(settings)
    backend_config: dict[str, Any] = {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {"num_cpus": cpus, "include_dashboard": False, "log_to_driver": verbose},
    }
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    if not verbose:
        flwr_logger.setLevel(logging.WARNING)
    try:
        run_simulation(
            server_app=server_app(spec),
            client_app=client_app(spec),
            num_supernodes=settings.data.num_clients,
            backend_name="ray",
            backend_config=backend_config,  # type: ignore[arg-type]
            verbose_logging=verbose,
        )
    except Exception as exc:  # Ray failing to start, a crashed actor
        raise ProvenmlError(
            f"the Flower simulation failed ({type(exc).__name__}: {exc}). If Ray could not "
            "start, check free memory and /tmp space, stop stale Ray processes with "
            "`ray stop`, or run with the single-process engine (engine=loop)"
        ) from exc
    finally:
        flwr_logger.setLevel(level)
        if ray.is_initialized():
            ray.shutdown()
    if spec.outcome is None:
        raise ProvenmlError(
            "the Flower simulation ended without a result (the ServerApp failed; run with "
            "verbose=True to see Flower's log)"
        )
    return spec.outcome
