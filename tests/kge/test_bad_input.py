"""Bad input to every public KGE entry point: one ProvenmlError naming the argument (issue 20)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from provenml.errors import ProvenmlError
from provenml.kge import (
    TrainingConfig,
    TripleClassifier,
    evaluate_link_prediction,
    get_model,
    train,
)
from provenml.kge.experiments import (
    LinkPredictionConfig,
    RelationExtractionConfig,
    RelationPatternsConfig,
)

E, R = 6, 2
GOOD = torch.tensor([[0, 0, 1], [1, 1, 2], [2, 0, 3], [4, 1, 5]])


def _model() -> Any:
    torch.manual_seed(0)
    return get_model("distmult", E, R, 4)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"lr": -1.0}, "lr"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"loss": "bogus"}, "loss"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"sampler": "weird"}, "sampler"),
        ({"regularizer": "l1"}, "regularizer"),
        ({"loop": "1vsall"}, "loop"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -3}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"num_negatives": 0}, "num_negatives"),
        ({"margin": -1.0}, "margin"),
        ({"reg_weight": -0.1}, "reg_weight"),
        ({"loop": "kvsall", "loss": "bce", "label_smoothing": 1.0}, "label_smoothing"),
        ({"eval_every": -1}, "eval_every"),
        ({"patience": 0}, "patience"),
        ({"filter_negatives": "yes"}, "filter_negatives"),
    ],
)
def test_training_config_refuses_at_construction(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ProvenmlError, match=named):
        TrainingConfig(**kwargs)


def test_unknown_names_get_a_suggestion() -> None:
    with pytest.raises(ProvenmlError, match="did you mean 'adam'"):
        TrainingConfig(optimizer="adamm")
    with pytest.raises(ProvenmlError, match="did you mean transe"):
        get_model("transee", E, R, 4)


@pytest.mark.parametrize(
    ("args", "named"),
    [((0, R, 4), "num_entities"), ((E, 0, 4), "num_relations"), ((E, R, 0), "dim")],
)
def test_model_sizes(args: tuple[int, int, int], named: str) -> None:
    for name in ("transe", "complex", "rotate"):
        with pytest.raises(ProvenmlError, match=named):
            get_model(name, *args)
    with pytest.raises(ProvenmlError, match="dim"):
        get_model("distmult", E, R, -4)
    with pytest.raises(ProvenmlError, match="dim"):
        get_model("distmult", E, R, 2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([-1, 0, 1], "a negative entity id"),
        ([0, 0, -2], "a negative entity id"),
        ([0, -1, 1], "a negative relation id"),
        ([E, 0, 1], f"entity id {E}"),
        ([0, R, 1], f"relation id {R}"),
    ],
)
def test_train_refuses_ids_out_of_range(row: list[int], message: str) -> None:
    bad = torch.cat([GOOD, torch.tensor([row])])
    with pytest.raises(ProvenmlError, match=f"train_triples holds {message}"):
        train(_model(), bad, TrainingConfig(epochs=1))
    with pytest.raises(ProvenmlError, match=f"valid holds {message}"):
        train(_model(), GOOD, TrainingConfig(epochs=1, eval_every=1), valid=bad)


def test_train_refuses_empty_float_and_misshaped_triples() -> None:
    model = _model()
    with pytest.raises(ProvenmlError, match="train_triples is empty"):
        train(model, GOOD[:0], TrainingConfig(epochs=1))
    with pytest.raises(ProvenmlError, match="train_triples must hold integer ids"):
        train(model, GOOD.float(), TrainingConfig(epochs=1))
    with pytest.raises(ProvenmlError, match=r"train_triples must be a \(n, 3\)"):
        train(model, GOOD[:, :2], TrainingConfig(epochs=1))
    with pytest.raises(ProvenmlError, match="config must be a TrainingConfig"):
        train(model, GOOD, {"epochs": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([-1, 0, 1], "triples holds a negative entity id"),
        ([0, 0, E + 3], f"triples holds entity id {E + 3}"),
        ([0, R, 1], f"triples holds relation id {R}"),
    ],
)
def test_evaluation_refuses_ids_out_of_range(row: list[int], message: str) -> None:
    bad = torch.cat([GOOD, torch.tensor([row])])
    with pytest.raises(ProvenmlError, match=message):
        evaluate_link_prediction(_model(), bad, [GOOD])
    with pytest.raises(ProvenmlError, match=f"filter_{message}"):
        evaluate_link_prediction(_model(), GOOD, [GOOD, bad])


def test_evaluation_refuses_an_empty_test_set() -> None:
    with pytest.raises(ProvenmlError, match="triples is empty"):
        evaluate_link_prediction(_model(), GOOD[:0], [GOOD])
    with pytest.raises(ProvenmlError, match="batch_size"):
        evaluate_link_prediction(_model(), GOOD, [GOOD], batch_size=0)


def test_triple_classifier_refuses_bad_triples() -> None:
    clf = TripleClassifier(_model())
    with pytest.raises(ProvenmlError, match="valid_pos holds entity id"):
        clf.fit(torch.tensor([[0, 0, 99]]), GOOD)
    clf.fit(GOOD, torch.tensor([[5, 0, 0], [3, 1, 0]]))
    with pytest.raises(ProvenmlError, match="triples holds a negative entity id"):
        clf.predict(torch.tensor([[-1, 0, 1]]))
    with pytest.raises(ProvenmlError, match="pos and neg are empty"):
        clf.accuracy(GOOD[:0], GOOD[:0])


@settings(max_examples=25, deadline=None)
@given(
    head=st.integers(-50, 50),
    relation=st.integers(-5, 5),
    tail=st.integers(-50, 50),
)
def test_any_id_is_accepted_or_refused_clearly(head: int, relation: int, tail: int) -> None:
    """Property: an id triple either evaluates (all in range) or gets one ProvenmlError."""
    triple = torch.tensor([[head, relation, tail]])
    in_range = 0 <= head < E and 0 <= tail < E and 0 <= relation < R
    if in_range:
        result = evaluate_link_prediction(_model(), triple, [triple])
        assert len(result.head.better) == 1
    else:
        with pytest.raises(ProvenmlError, match="triples holds"):
            evaluate_link_prediction(_model(), triple, [triple])


@pytest.mark.parametrize(
    ("config", "overrides", "named"),
    [
        (LinkPredictionConfig, {"epochs": "-5"}, "epochs"),
        (LinkPredictionConfig, {"lr": "-1"}, "lr"),
        (LinkPredictionConfig, {"dim": "0"}, "dim"),
        (LinkPredictionConfig, {"models": "transe,bogus"}, "models"),
        (LinkPredictionConfig, {"models": "transee"}, "did you mean 'transe'"),
        (LinkPredictionConfig, {"datasets": "nation"}, "did you mean 'nations'"),
        (RelationPatternsConfig, {"pool": "3"}, "pool"),
        (RelationPatternsConfig, {"models": "transh"}, "models"),
        (RelationExtractionConfig, {"wrong_label": "1.5"}, "wrong_label"),
        (RelationExtractionConfig, {"kg_model": "complx"}, "kg_model"),
    ],
)
def test_experiment_configs_validate_set_values(
    config: Any, overrides: dict[str, str], named: str
) -> None:
    with pytest.raises(ProvenmlError, match=named):
        config.from_preset("smoke", overrides)


def test_experiment_configs_refuse_an_empty_list() -> None:
    with pytest.raises(ProvenmlError, match="models must list at least one"):
        LinkPredictionConfig(models=())
