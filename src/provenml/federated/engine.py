"""The arms and the federated round, shared by the Flower apps and the single-process loop.

A round is: the server samples ``clients_per_round`` clients (seeded by the run seed and the
round), each sampled client runs :func:`client_update` from the global weights, the server
averages the replies weighted by example counts (FedAvg) and, for arms with stage 3, aligns
the average on its balanced set (:func:`server_update`). :func:`run_loop` runs rounds in this
process; :mod:`provenml.federated.flower` runs the very same functions as a Flower
``ServerApp`` / ``ClientApp``, so the two give the same weights for the same seed.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from provenml.core.registry import Registry
from provenml.errors import ProvenmlError
from provenml.federated.data import FederatedData, make_federated_data
from provenml.federated.methods import (
    AlignSettings,
    LocalSettings,
    PretrainSettings,
    align,
    evaluate,
    fedavg,
    local_train,
    logit_adjusted,
    predict_logits,
    pretrain,
)
from provenml.federated.models import FLModel
from provenml.federated.teacher import (
    PROMPT,
    OfflineTeacher,
    TeacherSettings,
    build_offline_teacher,
    check_teacher_classes,
    embed_sentences,
    web_caption_embeddings,
)


@dataclass(frozen=True)
class Arm:
    """One strategy: which of the method's stages it uses and which baseline tricks."""

    name: str
    label: str
    pretrain: bool = False  # stage 1 (server): web image-text pre-training
    align: bool = False  # stage 3 (server): CE + beta KL(q || p) after each aggregation
    prox_mu: float = 0.0  # FedProx
    client_distill: bool = False  # CLIP2FL-style: clients distil the teacher locally
    logit_adjust: bool = False  # post-hoc logit adjustment at test time
    trains_like: str | None = None  # an arm whose training this one shares (only test differs)


ARMS = Registry[Arm]("arm")
for _arm in (
    Arm("fedavg", "FedAvg"),
    Arm("fedprox", "FedProx", prox_mu=0.01),
    Arm("fedavg_la", "FedAvg + logit adjustment", logit_adjust=True, trains_like="fedavg"),
    Arm("clip2fl", "CLIP2FL-style (client distillation)", client_distill=True),
    Arm("full", "MLLM-assisted (pre-training + alignment)", pretrain=True, align=True),
    Arm("pretrain_only", "pre-training only", pretrain=True),
    Arm("align_only", "alignment only", align=True),
):
    ARMS.register(_arm.name, _arm)


@dataclass(frozen=True)
class DataSettings:
    """The ShapesWorld benchmark (see :func:`~provenml.federated.data.make_federated_data`)."""

    n_max: int = 500
    imbalance: float = 100.0
    num_clients: int = 20
    alpha: float = 0.1
    web_size: int = 4000
    align_per_class: int = 10
    test_per_class: int = 100


FailureMode = Literal["raise", "timeout", "mixed"]
FAILURE_MODES: tuple[str, ...] = get_args(FailureMode)
"""How the failing clients of a round fail: they ``raise`` (an error reply), ``timeout`` (no
reply before the server's deadline) or, ``mixed``, half of them each (see
:func:`failure_plan`)."""


@dataclass(frozen=True)
class FLSettings:
    """Everything one federated run needs besides the arm and the seed."""

    data: DataSettings = field(default_factory=DataSettings)
    teacher: TeacherSettings = field(default_factory=TeacherSettings)
    pretrain: PretrainSettings = field(default_factory=PretrainSettings)
    local: LocalSettings = field(default_factory=LocalSettings)
    align: AlignSettings = field(default_factory=AlignSettings)
    widths: tuple[int, ...] = (16, 32, 64)
    rounds: int = 15
    clients_per_round: int = 10
    distill_beta: float = 1.0  # CLIP2FL-style client distillation weight
    la_tau: float = 1.0
    failure_rate: float = 0.0  # fraction of sampled clients that fail each round
    failure_mode: FailureMode = "raise"  # how they fail: raise, timeout or mixed
    round_timeout: float = 600.0  # Flower: seconds the server waits for a round's replies

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FLSettings:
        parts = {
            "data": DataSettings,
            "teacher": TeacherSettings,
            "pretrain": PretrainSettings,
            "local": LocalSettings,
            "align": AlignSettings,
        }
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in parts:
                sub = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
                kwargs[key] = parts[key](**sub)
            else:
                kwargs[key] = tuple(value) if isinstance(value, list) else value
        return cls(**kwargs)


def tiny_settings(num_clients: int = 3) -> FLSettings:
    """A seconds-long configuration (two rounds of tiny models on a few images) for tests,
    deployment checks and examples; it measures nothing."""
    return FLSettings(
        data=DataSettings(
            n_max=20,
            imbalance=10,
            num_clients=num_clients,
            web_size=64,
            align_per_class=2,
            test_per_class=2,
        ),
        teacher=TeacherSettings(epochs=1, batch_size=32),
        pretrain=PretrainSettings(epochs=1, batch_size=32),
        local=LocalSettings(epochs=1),
        align=AlignSettings(steps=2, batch_size=10),
        rounds=2,
        clients_per_round=2,
        widths=(8, 8, 8),
    )


# --------------------------------------------------------------------------------------------
# The federation: data plus what the teacher computed on it, once per seed
# --------------------------------------------------------------------------------------------


@dataclass
class Federation:
    """The data of one seed and the teacher's outputs the arms need."""

    data: FederatedData
    teacher: OfflineTeacher
    align_probs: Tensor  # q on the alignment set (server)
    client_probs: list[Tensor]  # q on each client's images (CLIP2FL-style clients only)
    teacher_flops_per_image: int
    settings: FLSettings
    seed: int
    _pretrained: dict[str, Tensor] | None = None

    @property
    def class_prior(self) -> Tensor:
        counts = torch.tensor(self.data.class_counts, dtype=torch.float32)
        return counts / counts.sum()

    def pretrained_state(self) -> dict[str, Tensor]:
        """Stage 1's weights (computed once per federation)."""
        if self._pretrained is None:
            self._pretrained = pretrained_model(self).state_dict()
        return {k: v.clone() for k, v in self._pretrained.items()}


def build_federation(settings: FLSettings, seed: int, teacher: Any = None) -> Federation:
    """Generate the seed's data, build (or take) the teacher and compute its outputs."""
    ds = settings.data
    data = make_federated_data(
        n_max=ds.n_max,
        imbalance=ds.imbalance,
        num_clients=ds.num_clients,
        alpha=ds.alpha,
        web_size=ds.web_size,
        align_per_class=ds.align_per_class,
        test_per_class=ds.test_per_class,
        seed=seed,
    )
    if teacher is None:
        teacher = build_offline_teacher(data.web, data.classes, settings.teacher)
    check_teacher_classes(teacher, data.classes)
    return Federation(
        data=data,
        teacher=teacher,
        align_probs=teacher.class_probs(data.align.images),
        client_probs=[teacher.class_probs(c.images) for c in data.clients],
        teacher_flops_per_image=teacher.flops_per_image(),
        settings=settings,
        seed=seed,
    )


def new_model(settings: FLSettings, num_classes: int, seed: int) -> FLModel:
    torch.manual_seed(seed)
    return FLModel(num_classes, settings.widths)


def pretrained_model(fed: Federation) -> FLModel:
    """Stage 1 on the web pool (server side)."""
    settings = fed.settings
    model = new_model(settings, fed.data.num_classes, fed.seed)
    captions, _ = web_caption_embeddings(fed.data.web, settings.teacher)
    prompts = embed_sentences([PROMPT.format(c) for c in fed.data.classes])
    features = fed.teacher.image_features(fed.data.web.images)
    pretrain(
        model,
        fed.data.web.images,
        captions,
        features,
        prompts,
        settings.pretrain,
        torch.Generator().manual_seed(fed.seed + 7),
    )
    return model


# --------------------------------------------------------------------------------------------
# One round's pieces
# --------------------------------------------------------------------------------------------


def sample_clients(num_clients: int, per_round: int, server_round: int, seed: int) -> list[int]:
    """The clients sampled in ``server_round`` (seeded, the same in every engine)."""
    gen = torch.Generator().manual_seed(seed * 100_003 + server_round)
    k = min(per_round, num_clients)
    return sorted(torch.randperm(num_clients, generator=gen)[:k].tolist())


def failing_clients(sampled: list[int], rate: float, server_round: int, seed: int) -> list[int]:
    """The ``round(rate * len(sampled))`` sampled clients that fail this round (seeded)."""
    if rate <= 0:
        return []
    gen = torch.Generator().manual_seed(seed * 7_919 + server_round + 1)
    k = round(rate * len(sampled))
    order = torch.randperm(len(sampled), generator=gen)[:k].tolist()
    return sorted(sampled[i] for i in order)


def check_failure_mode(mode: object) -> None:
    """One clear error for a ``failure_mode`` that is not one of :data:`FAILURE_MODES`."""
    if mode not in FAILURE_MODES:
        raise ProvenmlError(f"failure_mode must be one of {', '.join(FAILURE_MODES)}, got {mode!r}")


def failure_plan(
    sampled: list[int], rate: float, mode: str, server_round: int, seed: int
) -> dict[int, str]:
    """How each failing client of ``server_round`` fails: ``"raise"`` or ``"timeout"``.

    The failing clients are :func:`failing_clients`'s. ``mode="mixed"`` makes half of them
    time out, chosen by a permutation seeded by ``seed`` and the round; an odd one out times
    out in the rounds where ``seed + server_round`` is odd and raises in the others, so that
    over the rounds half of the failures are of each kind."""
    check_failure_mode(mode)
    failing = failing_clients(sampled, rate, server_round, seed)
    if mode != "mixed":
        return {client: mode for client in failing}
    k = len(failing)
    n_timeouts = k // 2 + (k % 2) * ((seed + server_round) % 2)
    gen = torch.Generator().manual_seed(seed * 104_729 + server_round + 50_021)
    late = {failing[i] for i in torch.randperm(k, generator=gen)[:n_timeouts].tolist()}
    return {client: "timeout" if client in late else "raise" for client in failing}


def timeouts_per_round(settings: FLSettings) -> int:
    """The most clients that time out in one round under ``settings`` (0 unless
    ``failure_mode`` is ``timeout`` or ``mixed``): :func:`failure_plan`'s count, which depends
    only on the number sampled and, in ``mixed`` mode, on the parity of seed + round."""
    sampled = list(range(min(settings.clients_per_round, settings.data.num_clients)))
    return max(
        sum(
            kind == "timeout"
            for kind in failure_plan(
                sampled, settings.failure_rate, settings.failure_mode, server_round, seed=0
            ).values()
        )
        for server_round in (1, 2)
    )


class ClientFailure(RuntimeError):
    """An injected client failure (the faults experiment)."""


_FLOPS_PER_EXAMPLE: dict[tuple[int, ...], int] = {}


def train_flops_per_example(settings: FLSettings, num_classes: int) -> int:
    """FLOPs of one example's forward and backward pass of the FL model (measured once)."""
    key = (*settings.widths, num_classes)
    if key not in _FLOPS_PER_EXAMPLE:
        model = FLModel(num_classes, settings.widths)
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, 32, 32)).sum().backward()
        _FLOPS_PER_EXAMPLE[key] = int(counter.get_total_flops())
    return _FLOPS_PER_EXAMPLE[key]


_SCRATCH = threading.local()


def scratch_model(
    state: Mapping[str, Tensor], num_classes: int, widths: tuple[int, ...]
) -> FLModel:
    """An :class:`FLModel` holding a copy of ``state``, reused by the calls of this thread
    (building one draws its random initialisation, which ``state`` then overwrites: a
    measurable cost when every client of every round builds one). Its gradients are
    cleared; what it returns must be copied out (:func:`_detached_state`) before its next
    use."""
    models: dict[tuple[int, tuple[int, ...]], FLModel] = _SCRATCH.__dict__.setdefault("models", {})
    key = (num_classes, tuple(widths))
    if key not in models:
        models[key] = FLModel(num_classes, tuple(widths))
    model = models[key]
    model.load_state_dict(state)
    model.zero_grad(set_to_none=True)
    return model


def _detached_state(model: FLModel) -> dict[str, Tensor]:
    """A copy of ``model``'s weights that later uses of the model cannot change."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def client_update(
    global_state: Mapping[str, Tensor],
    client: int,
    server_round: int,
    arm: Arm,
    fed: Federation,
    fail: bool = False,
) -> tuple[dict[str, Tensor], int, dict[str, float]]:
    """One client's round: local training from the global weights. Returns the new weights,
    the number of examples (FedAvg's weight) and metrics (client FLOPs: its training passes,
    plus the teacher's forward passes on its images for the CLIP2FL-style arm)."""
    if fail:
        raise ClientFailure(f"client {client} failed in round {server_round} (injected)")
    settings = fed.settings
    data = fed.data.clients[client]
    model = scratch_model(global_state, fed.data.num_classes, settings.widths)
    local = replace(
        settings.local,
        prox_mu=arm.prox_mu,
        distill_beta=settings.distill_beta if arm.client_distill else 0.0,
    )
    gen = torch.Generator().manual_seed(fed.seed * 1_000_003 + server_round * 1_009 + client)
    probs = fed.client_probs[client] if arm.client_distill else None
    local_train(model, data, local, gen, teacher_probs=probs)
    seen = len(data) * local.epochs
    flops = seen * train_flops_per_example(settings, fed.data.num_classes)
    teacher_flops = len(data) * fed.teacher_flops_per_image if arm.client_distill else 0
    metrics = {"client_flops": float(flops + teacher_flops), "teacher_flops": float(teacher_flops)}
    return _detached_state(model), len(data), metrics


def server_update(
    state: Mapping[str, Tensor], server_round: int, arm: Arm, fed: Federation
) -> tuple[dict[str, Tensor], float]:
    """Stage 3 after aggregation (arms with ``align``); returns the weights and server FLOPs."""
    if not arm.align:
        return dict(state), 0.0
    settings = fed.settings
    model = scratch_model(state, fed.data.num_classes, settings.widths)
    gen = torch.Generator().manual_seed(fed.seed * 31 + server_round)
    align(model, fed.data.align, fed.align_probs, settings.align, gen)
    flops = (
        settings.align.steps
        * min(settings.align.batch_size, len(fed.data.align))
        * train_flops_per_example(settings, fed.data.num_classes)
    )
    return _detached_state(model), float(flops)


def initial_state(arm: Arm, fed: Federation) -> dict[str, Tensor]:
    if arm.pretrain:
        return fed.pretrained_state()
    return new_model(fed.settings, fed.data.num_classes, fed.seed).state_dict()


def model_bytes(state: Mapping[str, Tensor]) -> int:
    return int(sum(t.numel() * t.element_size() for t in state.values()))


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    """What one arm's federated run produced."""

    state: dict[str, Tensor]
    rounds: int
    failures: int = 0  # client updates that did not reach the server (raised or timed out)
    timeouts: int = 0  # of which timed out (no reply before the round's deadline)
    client_flops: float = 0.0
    teacher_client_flops: float = 0.0
    server_flops: float = 0.0
    bytes_sent: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def raised(self) -> int:
        """The failed updates whose client raised (an error reply)."""
        return self.failures - self.timeouts


Callback = Callable[[int, dict[str, Tensor]], None]


def run_loop(arm: Arm, fed: Federation, on_round: Callback | None = None) -> RunOutcome:
    """The federated run in this process: the same sampling, client update, FedAvg and
    server update as the Flower apps, without Flower (the reference the simulation is
    checked against, and the fast engine for the experiments).

    A client that the failure plan times out is simulated without waiting: its update is
    dropped as if it had arrived after the round's deadline (its training is not run, since
    nothing of it reaches the server) and counted in ``failures`` and ``timeouts``."""
    settings = fed.settings
    state = initial_state(arm, fed)
    outcome = RunOutcome(state=state, rounds=settings.rounds)
    size = model_bytes(state)
    for server_round in range(1, settings.rounds + 1):
        sampled = sample_clients(
            settings.data.num_clients, settings.clients_per_round, server_round, fed.seed
        )
        plan = failure_plan(
            sampled, settings.failure_rate, settings.failure_mode, server_round, fed.seed
        )
        states, weights = [], []
        for client in sampled:
            outcome.bytes_sent += size  # the global model goes down to every sampled client
            if plan.get(client) == "timeout":  # its reply would come after the deadline
                outcome.failures += 1
                outcome.timeouts += 1
                continue
            try:
                new, n, metrics = client_update(
                    state, client, server_round, arm, fed, fail=plan.get(client) == "raise"
                )
            except ClientFailure:
                outcome.failures += 1
                continue
            outcome.bytes_sent += size  # and comes back up
            outcome.client_flops += metrics["client_flops"]
            outcome.teacher_client_flops += metrics["teacher_flops"]
            states.append(new)
            weights.append(n)
        if states:  # every sampled client failed: keep the global model
            state = fedavg(states, weights)
        state, server_flops = server_update(state, server_round, arm, fed)
        outcome.server_flops += server_flops
        if on_round is not None:
            on_round(server_round, state)
    outcome.state = state
    return outcome


def test_scores(arm: Arm, fed: Federation, state: Mapping[str, Tensor]) -> dict[str, float]:
    """Balanced accuracy and its many / medium / few split on the balanced test set."""
    model = FLModel(fed.data.num_classes, fed.settings.widths)
    model.load_state_dict(state)
    logits = predict_logits(model, fed.data.test.images)
    if arm.logit_adjust:
        logits = logit_adjusted(logits, fed.class_prior, fed.settings.la_tau)
    return evaluate(logits, fed.data.test.labels, fed.data.splits, fed.data.num_classes)


def teacher_scores(fed: Federation) -> dict[str, float]:
    """The teacher's own zero-shot scores on the test set (a reference row)."""
    logits = fed.teacher.class_logits(fed.data.test.images)
    return evaluate(logits, fed.data.test.labels, fed.data.splits, fed.data.num_classes)


def check_settings(settings: FLSettings) -> None:
    """One clear error for settings no run can use."""
    ds = settings.data
    if not ds.alpha > 0 or not math.isfinite(ds.alpha):
        raise ProvenmlError(f"alpha must be a positive number, got {ds.alpha}")
    if settings.rounds < 1:
        raise ProvenmlError(f"rounds must be >= 1, got {settings.rounds}")
    if settings.clients_per_round < 1:
        raise ProvenmlError(f"clients_per_round must be >= 1, got {settings.clients_per_round}")
    if not 0 <= settings.failure_rate < 1:
        raise ProvenmlError(f"failure_rate must be in [0, 1), got {settings.failure_rate}")
    check_failure_mode(settings.failure_mode)
    if not settings.round_timeout > 0 or not math.isfinite(settings.round_timeout):
        raise ProvenmlError(
            f"round_timeout must be a positive number of seconds, got {settings.round_timeout}"
        )
