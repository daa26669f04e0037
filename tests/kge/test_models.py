"""Every scoring function against a hand-computed example, and the vectorised forms."""

from __future__ import annotations

import math

import pytest
import torch

from provenml.core import ProvenmlError
from provenml.kge import MODELS, get_model

ONE = torch.tensor([0])


def _set(param: torch.nn.Parameter, values: list) -> None:
    with torch.no_grad():
        param.copy_(torch.tensor(values, dtype=param.dtype).reshape(param.shape))


def _two_entities(name: str, dim: int, **kw):
    return get_model(name, num_entities=2, num_relations=1, dim=dim, **kw)


def test_registry_has_the_eleven_models() -> None:
    assert set(MODELS) == {
        "transe",
        "transh",
        "transr",
        "transd",
        "rescal",
        "distmult",
        "hole",
        "complex",
        "analogy",
        "simple",
        "rotate",
    }


def test_unknown_model_and_bad_hyperparameter_are_clear() -> None:
    with pytest.raises(ProvenmlError, match="did you mean transe"):
        get_model("transee", 3, 1, 4)
    with pytest.raises(ProvenmlError, match="bad hyperparameters"):
        get_model("distmult", 3, 1, 4, wrong=1)


def test_transe_by_hand() -> None:
    m = _two_entities("transe", 2, p=1, normalize=False)
    _set(m.entity, [[1, 0], [0, 0]])
    _set(m.relation, [[0, 1]])
    assert m.score_hrt(ONE, ONE, ONE + 1).item() == pytest.approx(-2.0)  # -(|1| + |1|)
    m.p = 2
    assert m.score_hrt(ONE, ONE, ONE + 1).item() == pytest.approx(-math.sqrt(2))


def test_transh_by_hand() -> None:
    m = _two_entities("transh", 2)
    _set(m.entity, [[1, 2], [3, 5]])
    _set(m.normal, [[0, 2]])  # normalised to w = (0, 1)
    _set(m.translation, [[1, 0]])
    # h⊥ = (1, 0), t⊥ = (3, 0); h⊥ + d - t⊥ = (-1, 0)
    assert m.score_hrt(ONE, ONE, ONE + 1).item() == pytest.approx(-1.0)


def test_transr_by_hand() -> None:
    m = _two_entities("transr", 2)
    _set(m.entity, [[1, 2], [3, 4]])
    _set(m.projection, [[[1, 0], [0, 0]]])
    _set(m.relation, [[1, 0]])
    # hM = (1, 0), tM = (3, 0); (1 + 1 - 3, 0)
    assert m.score_hrt(ONE, ONE, ONE + 1).item() == pytest.approx(-1.0)


def test_transd_by_hand() -> None:
    m = _two_entities("transd", 2)
    _set(m.entity, [[1, 0], [0, 1]])
    _set(m.entity_proj, [[1, 1], [1, 0]])
    _set(m.relation, [[0, 0]])
    _set(m.relation_proj, [[0, 1]])
    # h⊥ = r_p (h_p·h) + h = (1, 1); t⊥ = r_p·0 + t = (0, 1)
    assert m.score_hrt(ONE, ONE, ONE + 1).item() == pytest.approx(-1.0)


def test_rescal_by_hand() -> None:
    m = _two_entities("rescal", 2)
    _set(m.entity, [[1, 2], [1, 1]])
    _set(m.relation, [[[1, 2], [3, 4]]])
    assert m.score_hrt(ONE, ONE, ONE + 1).item() == pytest.approx(17.0)  # (7, 10)·(1, 1)


def test_distmult_by_hand() -> None:
    m = _two_entities("distmult", 2)
    _set(m.entity, [[1, 2], [5, 6]])
    _set(m.relation, [[3, 4]])
    assert m.score_hrt(ONE, ONE, ONE + 1).item() == pytest.approx(63.0)


def test_hole_by_hand() -> None:
    m = _two_entities("hole", 3)
    _set(m.entity, [[1, 2, 3], [4, 5, 6]])
    _set(m.relation, [[1, 0, 0]])
    assert m.score_hrt(ONE, ONE, ONE + 1).item() == pytest.approx(32.0, abs=1e-4)  # Σ h_i t_i
    _set(m.relation, [[0, 1, 0]])
    # (h ⋆ t)_1 = h0 t1 + h1 t2 + h2 t0 = 5 + 12 + 12
    assert m.score_hrt(ONE, ONE, ONE + 1).item() == pytest.approx(29.0, abs=1e-4)


def test_complex_by_hand() -> None:
    m = _two_entities("complex", 1)
    _set(m.entity, [[1, 2], [5, 6]])  # 1+2i, 5+6i
    _set(m.relation, [[3, 4]])  # 3+4i
    # Re((1+2i)(3+4i)(5-6i)) = Re((-5+10i)(5-6i)) = -25 + 60
    assert m.score_hrt(ONE, ONE, ONE + 1).item() == pytest.approx(35.0)


def test_analogy_by_hand() -> None:
    m = _two_entities("analogy", 3, complex_dim=1)
    _set(m.entity, [[2, 1, 2], [4, 5, 6]])  # scalar 2 | 1+2i ; scalar 4 | 5+6i
    _set(m.relation, [[3, 3, 4]])
    assert m.score_hrt(ONE, ONE, ONE + 1).item() == pytest.approx(24.0 + 35.0)


def test_simple_by_hand() -> None:
    m = _two_entities("simple", 1)
    _set(m.head, [[1], [3]])
    _set(m.tail, [[2], [4]])
    _set(m.relation, [[5]])
    _set(m.inverse, [[6]])
    # ½(h_h r t_t + t_h r⁻¹ h_t) = ½(1·5·4 + 3·6·2)
    assert m.score_hrt(ONE, ONE, ONE + 1).item() == pytest.approx(28.0)


def test_rotate_by_hand() -> None:
    m = _two_entities("rotate", 1)
    _set(m.entity, [[1, 0], [0, 0]])  # 1, 0
    _set(m.phase, [[math.pi / 2]])  # r = i
    assert m.score_hrt(ONE, ONE, ONE + 1).item() == pytest.approx(-1.0, abs=1e-6)
    _set(m.entity, [[1, 0], [0, 1]])  # t = i = h∘r
    assert m.score_hrt(ONE, ONE, ONE + 1).item() == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize(
    ("name", "extra"),
    [(name, {}) for name in sorted(MODELS)] + [("transe", {"p": 2}), ("rotate", {"p": 1})],
)
def test_vectorised_scores_match_score_hrt(name: str, extra: dict) -> None:
    torch.manual_seed(0)
    m = get_model(name, num_entities=9, num_relations=3, dim=6, **extra)
    h = torch.tensor([0, 3, 8, 5])
    r = torch.tensor([0, 2, 1, 1])
    all_e = torch.arange(9)
    tails = m.score_t(h, r)
    heads = m.score_h(r, h)
    assert tails.shape == heads.shape == (4, 9)
    for i in range(4):
        expected_t = m.score_hrt(h[i].repeat(9), r[i].repeat(9), all_e)
        expected_h = m.score_hrt(all_e, r[i].repeat(9), h[i].repeat(9))
        torch.testing.assert_close(tails[i], expected_t, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(heads[i], expected_h, atol=1e-5, rtol=1e-5)


def test_chunked_broadcast_matches_unchunked(monkeypatch: pytest.MonkeyPatch) -> None:
    import provenml.kge.models as models

    torch.manual_seed(0)
    m = get_model("transd", num_entities=20, num_relations=2, dim=4)
    h, r = torch.tensor([1, 2, 3]), torch.tensor([0, 1, 0])
    full = m.score_t(h, r)
    monkeypatch.setattr(models, "_BROADCAST_BUDGET", 64)  # forces many entity chunks
    torch.testing.assert_close(m.score_t(h, r), full)


def test_transr_batched_projection_matches_gather() -> None:
    torch.manual_seed(0)
    m = get_model("transr", num_entities=5, num_relations=2, dim=3, relation_dim=4)
    h = torch.randint(5, (40,))
    r = torch.randint(2, (40,))
    t = torch.randint(5, (40,))
    fast = m.score_hrt(h, r, t)  # 2 relations x 5 entities << 40 triples: projected once
    slow = m.interaction(m.entity_reps(h), m.relation_reps(r), m.entity_reps(t))
    torch.testing.assert_close(fast, slow)


@pytest.mark.parametrize("name", ["transe", "transh", "rotate", "complex", "simple"])
def test_scoring_names_an_id_outside_the_tables(name: str) -> None:
    """An id beyond a table (or negative) is named with the argument and the table's size,
    by the base class's methods and by a model's own fast ones alike."""
    model = get_model(name, num_entities=10, num_relations=3, dim=8)
    ok = torch.tensor([0, 1])
    with pytest.raises(ProvenmlError, match=r"r holds relation id 7, outside the model's 3"):
        model.score_t(ok, torch.tensor([0, 7]))
    with pytest.raises(ProvenmlError, match=r"t holds entity id -1, outside the model's 10"):
        model.score_h(ok, torch.tensor([-1, 2]))
    with pytest.raises(ProvenmlError, match=r"h holds entity id 10,"):
        model.score_hrt(torch.tensor([10, 0]), ok, ok)
    assert model.score_t(ok, ok).shape == (2, 10)  # in range: scores as before
