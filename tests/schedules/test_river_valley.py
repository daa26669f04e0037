"""The river-valley toy: the exact loss split, the hill share and the excess drop against
hand-computed cases; the language generator's structure; the control branch; bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch

from provenml.core.testing import smoke_run
from provenml.errors import ProvenmlError
from provenml.schedules import BigramLanguage, BigramModel, loss_split, make_bigram_language
from provenml.schedules.river_valley import hill_share, relative_excess_drop


def _three_token_language() -> BigramLanguage:
    # tokens 0, 1 are river tokens, 2 is a hill token; pi = (0.5, 0.25, 0.25)
    transition = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.2, 0.8], [0.5, 0.25, 0.25]])
    return BigramLanguage(
        transition=transition,
        is_river=torch.tensor([True, True, False]),
        start=torch.tensor([0.5, 0.25, 0.25]),
    )


def _model(probabilities: list[list[float]]) -> BigramModel:
    model = BigramModel(len(probabilities))
    with torch.no_grad():
        model.logits.copy_(torch.tensor(probabilities).log())
    return model


def test_loss_split_matches_a_hand_computed_case() -> None:
    q = [[0.8, 0.1, 0.1], [0.25, 0.25, 0.5], [0.5, 0.3, 0.2]]
    split = loss_split(_model(q), _three_token_language())
    # l(c) = -sum_n P(n|c) log q(n|c), by hand:
    l0 = -(0.9 * math.log(0.8) + 0.1 * math.log(0.1))
    l1 = -(0.2 * math.log(0.25) + 0.8 * math.log(0.5))
    l2 = -(0.5 * math.log(0.5) + 0.25 * math.log(0.3) + 0.25 * math.log(0.2))
    assert split["w_river"] == pytest.approx(0.75)
    assert split["w_hill"] == pytest.approx(0.25)
    assert split["river"] == pytest.approx((0.5 * l0 + 0.25 * l1) / 0.75, rel=1e-6)
    assert split["hill"] == pytest.approx(l2, rel=1e-6)
    assert split["total"] == pytest.approx(0.5 * l0 + 0.25 * l1 + 0.25 * l2, rel=1e-6)


def test_the_loss_of_the_true_model_is_the_entropy_floor() -> None:
    language = _three_token_language()
    entropy = language.entropy()
    by_hand = [
        -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)),
        -(0.2 * math.log(0.2) + 0.8 * math.log(0.8)),
        -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)),
    ]
    assert entropy.tolist() == pytest.approx(by_hand, rel=1e-6)
    # a model that knows the transitions (zeros as a tiny probability) sits on the floor
    exact = _model([[0.9, 0.1, 1e-30], [1e-30, 0.2, 0.8], [0.5, 0.25, 0.25]])
    assert loss_split(exact, language)["hill"] == pytest.approx(by_hand[2], rel=1e-6)


def test_hill_share_by_hand() -> None:
    before = {"total": 2.0, "river": 1.0, "hill": 3.0, "w_river": 0.5, "w_hill": 0.5}
    after = {"total": 1.8, "river": 0.9, "hill": 2.7, "w_river": 0.5, "w_hill": 0.5}
    assert hill_share(before, after) == pytest.approx(0.15 / 0.2)  # 0.5 * 0.3 of a 0.2 drop
    river_rose = {"total": 1.8, "river": 1.1, "hill": 2.5, "w_river": 0.5, "w_hill": 0.5}
    assert hill_share(before, river_rose) == pytest.approx(0.25 / 0.2)  # above 1
    only_river = {"total": 1.9, "river": 0.8, "hill": 3.0, "w_river": 0.5, "w_hill": 0.5}
    assert hill_share(before, only_river) == pytest.approx(0.0)
    assert math.isnan(hill_share(before, before))


def test_relative_excess_drop_by_hand() -> None:
    floor = {"river": 0.1, "hill": 2.0}
    before, after = {"river": 0.5, "hill": 3.0}, {"river": 0.3, "hill": 3.2}
    assert relative_excess_drop(before, after, floor, "river") == pytest.approx(0.5)
    assert relative_excess_drop(before, after, floor, "hill") == pytest.approx(-0.2)
    with pytest.raises(ProvenmlError, match="floor"):
        relative_excess_drop(floor, after, floor, "river")


def test_generated_language_has_the_structure_it_promises() -> None:
    language = make_bigram_language(
        vocab=40, river_fraction=0.25, river_confidence=0.99, hill_support=8, seed=3
    )
    rows = language.transition
    assert int(language.is_river.sum()) == 10
    assert rows.sum(-1).tolist() == pytest.approx([1.0] * 40)
    river, hill = rows[language.is_river], rows[~language.is_river]
    assert river.max(-1).values.tolist() == pytest.approx([0.99] * 10)
    assert ((hill > 0).sum(-1) == 8).all()
    assert hill[hill > 0].tolist() == pytest.approx([1 / 8] * (30 * 8))
    same = make_bigram_language(40, 0.25, 0.99, 8, seed=3)
    assert torch.equal(same.transition, rows) and torch.equal(same.is_river, language.is_river)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"vocab": 1}, "vocab"),
        ({"vocab": 12.5}, "vocab"),
        ({"river_fraction": 0.0}, "river_fraction"),
        ({"river_fraction": 1.0}, "river_fraction"),
        ({"river_fraction": "half"}, "river_fraction"),
        ({"river_confidence": 0.0}, "river_confidence"),
        ({"river_confidence": 1.5}, "river_confidence"),
        ({"hill_support": 0}, "hill_support"),
        ({"hill_support": 500}, "hill_support"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_language_arguments_are_refused_by_name(kwargs: dict, argument: str) -> None:
    with pytest.raises(ProvenmlError, match=argument):
        make_bigram_language(**{"vocab": 16, "hill_support": 4, **kwargs})


def test_bad_model_and_split_arguments() -> None:
    with pytest.raises(ProvenmlError, match="vocab"):
        BigramModel(0)
    with pytest.raises(ProvenmlError, match="vocabulary"):
        loss_split(BigramModel(4), _three_token_language())


def test_the_control_branch_starts_where_the_decay_starts() -> None:
    run = smoke_run("wsd.river_valley")
    data = run.seed_result()["data"]
    start = data["decay_start"]
    at_start = next(p for p in data["curve"] if p["step"] == start)
    control = data["control_curve"]
    assert control[0]["step"] == start
    for part in ("total", "river", "hill"):  # a copy of the same model: equal, not close
        assert control[0][part] == at_start[part]
    assert control[-1]["step"] == data["curve"][-1]["step"] == data["steps"]
    lr = json.loads((run.seed_dir / "config.json").read_text())["config"]["lr"]
    assert {p["lr"] for p in control} == {lr}  # the control keeps the peak rate
    assert min(p["lr"] for p in data["curve"] if p["step"] > start) < lr  # the WSD arm decays
