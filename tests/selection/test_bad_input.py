"""Bad input to every public entry point of ``provenml.selection`` is one clear ProvenmlError
naming the argument, raised before any work is done (issue 20); step budgets work."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import TensorDataset

from provenml.core import ProvenmlError, get_experiment
from provenml.core.run import plan_run
from provenml.nn import mlp
from provenml.selection import (
    EasyReference,
    Learnability,
    OnlineBatchSelector,
    OnlineReference,
    Uniform,
    classification_loss,
    corrupt_sequences,
    precompute_losses,
    small_cnn,
    symmetric_label_noise,
    train_reference,
)
from provenml.selection.experiments import (
    CleanControlConfig,
    ImagesConfig,
    NoisyLabelsConfig,
    ScorerSizeConfig,
    TextConfig,
)


def data(n: int = 256) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long())


def selector(batch_size: object = 8) -> OnlineBatchSelector:
    return OnlineBatchSelector(mlp(6, [8], 2), classification_loss, Uniform(), batch_size)  # type: ignore[arg-type]


# Not positive integers: negatives, zero, floats (also whole ones), bools, strings, None.
not_positive_int = st.one_of(
    st.integers(max_value=0),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)


@settings(max_examples=40, deadline=None)
@given(value=not_positive_int)
def test_batch_size_must_be_a_positive_integer(value: object) -> None:
    with pytest.raises(ProvenmlError, match="batch_size"):
        selector(value)


def test_batch_size_of_two_and_a_half_is_refused_not_truncated() -> None:
    with pytest.raises(ProvenmlError, match=r"batch_size must be a positive integer, got 2\.5"):
        selector(2.5)
    assert selector(np.int64(4)).batch_size == 4  # numpy integers are integers


@settings(max_examples=40, deadline=None)
@given(value=not_positive_int.filter(lambda v: v is not None))
def test_epochs_must_be_a_positive_integer(value: object) -> None:
    with pytest.raises(ProvenmlError, match="epochs"):
        next(selector().batches(data(), epochs=value))  # type: ignore[arg-type]


def test_negative_epochs_is_an_error_not_an_empty_stream() -> None:
    with pytest.raises(ProvenmlError, match="epochs must be a positive integer, got -1"):
        list(selector().batches(data(), epochs=-1))


def test_endless_stream_needs_a_step_budget() -> None:
    with pytest.raises(ProvenmlError, match="max_steps"):
        next(selector().batches(data(), epochs=None))
    with pytest.raises(ProvenmlError, match="max_steps"):
        next(selector().batches(data(), max_steps=-3))
    with pytest.raises(ProvenmlError, match="max_steps"):
        next(selector().batches(data(), max_steps=2.0))  # type: ignore[arg-type]


def test_max_steps_stops_after_exactly_n_batches() -> None:
    # 256 examples, super-batches of 16: 16 per epoch
    assert sum(1 for _ in selector().batches(data(), epochs=None, max_steps=37)) == 37
    assert sum(1 for _ in selector().batches(data(), epochs=1, max_steps=10)) == 10
    assert sum(1 for _ in selector().batches(data(), epochs=2, max_steps=100)) == 32  # epochs end
    assert list(selector().batches(data(), max_steps=0)) == []
    # the same first batches as an unbudgeted stream with the same seed
    budgeted = [s.indices.tolist() for s in selector().selections(data(), None, max_steps=20)]
    plain = [s.indices.tolist() for s in itertools.islice(selector().selections(data(), 2), 20)]
    assert budgeted == plain


def test_endless_stream_over_an_iterable_source_stops_when_it_runs_dry() -> None:
    one_shot = iter([data(32).tensors] * 3)  # a generator: spent after one pass
    assert sum(1 for _ in selector().batches(one_shot, epochs=None, max_steps=100)) == 6


def test_other_selector_arguments() -> None:
    with pytest.raises(ProvenmlError, match="rho"):
        OnlineBatchSelector(mlp(6, [8], 2), classification_loss, Uniform(), 8, rho=True)
    with pytest.raises(ProvenmlError, match="policy"):
        OnlineBatchSelector(mlp(6, [8], 2), classification_loss, "uniform", 8)  # type: ignore[arg-type]
    with pytest.raises(ProvenmlError, match="loss_fn"):
        OnlineBatchSelector(mlp(6, [8], 2), None, Uniform(), 8)  # type: ignore[arg-type]


@pytest.mark.parametrize("steps", [0, -5, 2.5, True])
def test_train_reference_needs_positive_integer_steps(steps: object) -> None:
    model = mlp(6, [8], 2)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ProvenmlError, match="steps"):
        train_reference(model, data(), classification_loss, steps=steps)  # type: ignore[arg-type]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_train_reference_other_arguments() -> None:
    with pytest.raises(ProvenmlError, match="batch_size"):
        train_reference(mlp(6, [8], 2), data(), classification_loss, steps=5, batch_size=0)
    with pytest.raises(ProvenmlError, match="lr"):
        train_reference(mlp(6, [8], 2), data(), classification_loss, steps=5, lr=-1.0)
    with pytest.raises(ProvenmlError, match="weight_decay"):
        train_reference(mlp(6, [8], 2), data(), classification_loss, steps=5, weight_decay=-1)
    with pytest.raises(ProvenmlError, match="holdout must be a map-style Dataset"):
        train_reference(mlp(6, [8], 2), [data().tensors], classification_loss, steps=5)  # type: ignore[arg-type]


@pytest.mark.parametrize("batch_size", [0, -1, 1.5])
def test_precompute_losses_needs_a_positive_batch_size(batch_size: object) -> None:
    with pytest.raises(ProvenmlError, match="batch_size"):
        precompute_losses(mlp(6, [8], 2), data(), classification_loss, batch_size=batch_size)  # type: ignore[arg-type]
    with pytest.raises(ProvenmlError, match="empty"):
        precompute_losses(mlp(6, [8], 2), data(0), classification_loss)


def test_policy_arguments() -> None:
    actor = mlp(6, [8], 2)
    with pytest.raises(ProvenmlError, match="lr"):
        Learnability(actor, torch.zeros(4), lr=0.0)
    with pytest.raises(ProvenmlError, match="temperature"):
        Learnability(actor, torch.zeros(4), temperature=-1.0)
    with pytest.raises(ProvenmlError, match="actor"):
        Learnability("mlp", torch.zeros(4))  # type: ignore[arg-type]
    with pytest.raises(ProvenmlError, match="reference"):
        Learnability(actor, [0.1, 0.2])  # type: ignore[arg-type]
    with pytest.raises(ProvenmlError, match="1-d"):
        EasyReference(torch.zeros(3, 2))
    with pytest.raises(ProvenmlError, match="lr"):
        OnlineReference(actor, [data().tensors], classification_loss, lr=-1.0)


def test_nn_mlp_sizes() -> None:  # provenml.nn.mlp, which selection re-exports
    with pytest.raises(ProvenmlError, match="in_features"):
        mlp(-5, [8], 3)
    with pytest.raises(ProvenmlError, match="in_features must be an integer"):
        mlp(2.5, [8], 3)  # type: ignore[arg-type]
    with pytest.raises(ProvenmlError, match="hidden"):
        mlp(4, 8, 3)  # type: ignore[arg-type]
    with pytest.raises(ProvenmlError, match="hidden"):
        mlp(4, [8.5], 3)  # type: ignore[list-item]


def test_noise_helpers_and_cnn() -> None:
    labels = torch.arange(10)
    with pytest.raises(ProvenmlError, match="noise fraction"):
        symmetric_label_noise(labels, 1.5, 10, torch.Generator())
    with pytest.raises(ProvenmlError, match="corruption"):
        corrupt_sequences(torch.zeros(4, 8, dtype=torch.uint8), 0.5, "reverse", torch.Generator())  # type: ignore[arg-type]
    with pytest.raises(ProvenmlError, match="channels"):
        small_cnn([16, 0])
    with pytest.raises(ProvenmlError, match="divisible"):
        small_cnn([4, 8], size=10)


# -- experiment configs: --set values out of range, before any run directory exists ---------


CONFIGS = [NoisyLabelsConfig, ScorerSizeConfig, CleanControlConfig, TextConfig, ImagesConfig]
BAD_OVERRIDES = [
    {"steps": "-5"},
    {"steps": "0"},
    {"lr": "-1"},
    {"batch_size": "0"},
    {"rho": "1.5"},
    {"noise": "1.0"},
    {"scorer_width": "0"},
    {"eval_every": "0"},
    {"reference_steps": "-1"},
    {"temperature": "0"},
    {"arms": "uniform,bogus"},
    {"arms": ""},
    {"only": "nothing"},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("override", BAD_OVERRIDES, ids=lambda o: str(next(iter(o.items()))))
def test_config_refuses_out_of_range_values(config: type, override: dict[str, str]) -> None:
    with pytest.raises(ProvenmlError, match=next(iter(override))):
        config.from_preset("small", override)


@pytest.mark.parametrize(
    ("config", "override", "field"),
    [
        (ScorerSizeConfig, {"widths": ""}, "widths"),
        (ScorerSizeConfig, {"widths": "32,32"}, "widths"),
        (NoisyLabelsConfig, {"holdout": "50000"}, "holdout"),
        (NoisyLabelsConfig, {"learner_hidden": "512,0"}, "learner_hidden"),
        (TextConfig, {"corruption": "reverse"}, "corruption"),
        (TextConfig, {"learner_dim": "30"}, "heads"),
        (ImagesConfig, {"size": "18"}, "size"),
        (ImagesConfig, {"copies": "0"}, "copies"),
    ],
)
def test_task_specific_fields(config: type, override: dict[str, str], field: str) -> None:
    with pytest.raises(ProvenmlError, match=field):
        config.from_preset("small", override)


def test_bad_set_value_fails_before_a_run_directory_exists(tmp_path: Path) -> None:
    spec = get_experiment("selection.noisy_labels")
    with pytest.raises(ProvenmlError, match="steps"):
        plan_run(spec, scale="smoke", overrides={"steps": "-5"}, out_root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_every_preset_is_valid() -> None:
    for config in CONFIGS:
        for scale in ("smoke", "small", "paper"):
            cfg = config.from_preset(scale)
            assert dataclasses.replace(cfg) == cfg  # validate() passes on a copy, too


def test_parts_name_one_run_each() -> None:
    spec = get_experiment("selection.scorer_size")
    cfg = ScorerSizeConfig.from_preset("small")
    parts = spec.parts(cfg)  # type: ignore[misc]
    assert sorted(p["only"][0] for p in parts) == sorted(
        ["uniform", "width_8", "width_32", "width_128", "width_256"]
    )
    assert parts[0]["only"] == ("width_256",)  # the costliest first


def test_an_untrained_module_is_not_a_dataset() -> None:
    with pytest.raises(ProvenmlError, match="Dataset"):
        precompute_losses(mlp(6, [8], 2), nn.Linear(2, 2), classification_loss)  # type: ignore[arg-type]
