"""Claim semantics: two-sided closeness, "for each", constant thresholds, preconditions, and
their round trip through result.json. Expected verdicts and p-values are worked out by hand or
with scipy directly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from provenml.core import Claim, Member, Precondition, Published, Result, Table
from provenml.core.audit import threshold_violations
from provenml.core.run import aggregate_claims


def claim(ours=None, baselines=None, comparison="<", **kw) -> Claim:
    return Claim(
        key="k",
        statement="s",
        metric="m",
        ours_label="o",
        ours=[] if ours is None else ours,
        baselines={} if baselines is None else baselines,
        comparison=comparison,
        **kw,
    )


# -- closeness ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ours", "reference", "verdict"),
    [
        (1.005, 1.0, "holds"),  # 0.005 above
        (0.995, 1.0, "holds"),  # 0.005 below
        (1.02, 1.0, "fails"),  # 0.02 above
        (0.90, 1.0, "fails"),  # beating the reference by 0.10 is not "within 0.01" of it
    ],
)
def test_within_is_two_sided(ours: float, reference: float, verdict: str) -> None:
    assert claim(ours, {"oracle": reference}, "within", margin=0.01).verdict == verdict


def test_the_one_sided_form_is_what_within_replaces() -> None:
    # "<=" with a margin holds for a run far below the reference: the bug of issue 27
    assert claim(0.90, {"oracle": 1.0}, "<=", margin=0.01).verdict == "holds"
    assert claim(0.90, {"oracle": 1.0}, "within", margin=0.01).verdict == "fails"


def test_within_needs_a_non_negative_margin() -> None:
    with pytest.raises(ValueError, match="margin >= 0"):
        claim(1.0, {"b": 1.0}, "within", margin=-0.1)


def test_within_with_a_test_is_two_one_sided_tests() -> None:
    ours, base, margin = [1.00, 1.02, 0.99, 1.01], [1.00, 1.00, 1.00, 1.00], 0.05
    c = claim(ours, {"b": base}, "within", margin=margin, test="paired")
    diff = np.subtract(ours, base)
    lower = sps.ttest_1samp(diff, -margin, alternative="greater").pvalue
    upper = sps.ttest_1samp(diff, margin, alternative="less").pvalue
    assert c.p_values["b"] == pytest.approx(max(lower, upper))
    assert c.verdict == "holds"  # both one-sided tests reject: the gap is inside +-0.05
    wide = claim([1.0, 1.2, 0.8, 1.1], {"b": base}, "within", margin=margin, test="paired")
    assert wide.verdict == "fails"  # the mean gap is 0.025 but the noise does not show it


# -- for each -----------------------------------------------------------------------------------
def test_for_each_holds_only_if_every_member_holds_and_names_the_failures() -> None:
    members = {
        "gnnexplainer/ba_shapes": Member([0.91, 0.93], {"random": [0.5, 0.5]}),
        "pgexplainer/tree_grid": Member([0.31, 0.30], {"random": [0.5, 0.51]}),
        "pgexplainer/ba_2motifs": Member([0.456, 0.46], {"random": [0.5, 0.49]}),
        "saliency/ba_shapes": Member([0.8, 0.82], {"random": [0.5, 0.5]}),
    }
    c = claim(None, None, ">", members=members)
    # the mean over members is above Random (0.617 > 0.5), the claim is not
    assert np.mean([m.ours_mean for m in members.values()]) > 0.5
    assert c.verdict == "fails"
    assert c.failing == ["pgexplainer/tree_grid", "pgexplainer/ba_2motifs"]
    assert c.members["saliency/ba_shapes"].verdict == "holds"
    held = claim(None, None, ">", members={k: members[k] for k in ("saliency/ba_shapes",)})
    assert held.verdict == "holds" and held.failing == []


def test_for_each_members_can_share_the_claims_reference() -> None:
    c = claim(
        None,
        None,
        ">",
        threshold=0.5,
        members={"transe": Member([0.7]), "distmult": Member([0.45]), "complex": Member([0.6])},
    )
    assert c.verdict == "fails" and c.failing == ["distmult"]
    with pytest.raises(ValueError, match="has no reference"):
        claim(None, None, ">", members={"a": Member([0.7])})
    with pytest.raises(ValueError, match="ours per member"):
        claim([1.0], None, ">", members={"a": Member([0.7], {"b": [0.1]})})


def test_for_each_is_inconclusive_only_without_a_failure() -> None:
    members = {"a": Member([1.0], {"b": [2.0]}), "c": Member([math.nan], {"b": [2.0]})}
    c = claim(None, None, "<", members=members)
    assert c.verdict == "inconclusive" and "c: no finite value" in c.reason
    members["d"] = Member([3.0], {"b": [2.0]})
    assert claim(None, None, "<", members=members).verdict == "fails"


# -- thresholds ---------------------------------------------------------------------------------
def test_a_published_threshold_is_tested_and_recorded() -> None:
    published = Published(0.925, source="GNNExplainer paper, Table 1")
    c = claim([0.916], None, ">=", threshold=published)
    assert c.verdict == "fails"  # 0.916 is below the published 0.925
    assert c.to_dict()["threshold"] == {"value": 0.925, "source": "GNNExplainer paper, Table 1"}
    assert "0.925 (GNNExplainer paper, Table 1)" in c.comparison_text()
    assert claim([0.93], None, ">=", threshold=published).verdict == "holds"


def test_a_literal_threshold_is_recorded_without_a_source() -> None:
    c = claim([0.6, 0.7], None, ">", threshold=0.5)
    assert c.verdict == "holds"
    assert c.to_dict()["threshold"] == {"value": 0.5, "source": None}
    # with two seeds the p-value is the one-sample t-test against the constant
    expected = sps.ttest_1samp([0.6, 0.7], 0.5, alternative="greater").pvalue
    assert c.p_values["threshold"] == pytest.approx(expected)


@pytest.mark.parametrize(
    "derived",
    [np.float64(0.5), np.float32(0.5), torch.tensor(0.5), True],
)
def test_a_threshold_computed_from_measurements_is_refused(derived: object) -> None:
    with pytest.raises(TypeError, match="number literal or Published"):
        claim([0.6], None, ">", threshold=derived)
    with pytest.raises(TypeError, match="number literal"):
        Published(derived, source="paper")  # type: ignore[arg-type]


def test_threshold_and_baselines_do_not_mix_and_a_reference_is_needed() -> None:
    with pytest.raises(ValueError, match="baselines or a threshold"):
        claim([0.6], {"b": [0.5]}, ">", threshold=0.5)
    with pytest.raises(ValueError, match="needs baselines, a threshold or members"):
        claim([0.6], None, ">")
    with pytest.raises(ValueError, match="source"):
        Published(0.9, source="")


def test_the_source_audit_accepts_constants_and_flags_derived_thresholds() -> None:
    source = """
PUBLISHED = {"gnn": Published(0.925, source="paper Table 1")}
CHANCE = 0.5
def claims(values, cfg, measured):
    Claim(threshold=0.5)
    Claim(threshold=-1 / 10)
    Claim(threshold=Published(0.963, source="PGExplainer paper"))
    Claim(threshold=PUBLISHED["gnn"])
    Member([1.0], threshold=CHANCE)
    Claim(threshold=float(np.mean(measured)))
    Claim(threshold=cfg.chance)
    Member([1.0], threshold=measured * 0.9)
    Claim(threshold=Published(measured, source="x"))
"""
    problems = threshold_violations(source, "exp.py")
    assert [p.split(":")[1] for p in problems] == ["10", "11", "12", "13"]
    assert "threshold=cfg.chance" in problems[1]
    named_source = 'SOURCE = "paper, Table 2"\nClaim(threshold=Published(0.857, source=SOURCE))\n'
    assert threshold_violations(named_source) == []
    assert len(threshold_violations("Claim(threshold=Published(0.857, source=where))")) == 1


# -- preconditions ------------------------------------------------------------------------------
def test_a_failed_precondition_makes_the_claim_inconclusive_with_its_reason() -> None:
    reason = "the oracle is more than 0.02 behind WSD"
    # oracle loss 1.55 vs WSD 1.50: the oracle is 0.05 behind, the regime does not hold
    behind = Precondition.compare(reason, [1.55], "<=", [1.50], margin=0.02)
    c = claim([1.551], {"oracle": [1.55]}, "within", margin=0.01, precondition=behind)
    assert c.verdict == "inconclusive" and c.reason == reason
    fine = Precondition.compare(reason, [1.51], "<=", [1.50], margin=0.02)
    assert (
        claim([1.515], {"oracle": [1.51]}, "within", margin=0.01, precondition=fine).verdict
        == "holds"
    )
    assert claim([1.0], {"b": [2.0]}, precondition=Precondition("x", holds=False)).reason == "x"


def test_a_precondition_is_rechecked_on_the_means_over_seeds() -> None:
    reason = "the oracle is more than 0.02 behind WSD"

    def seed_claim(oracle: float) -> Claim:
        regime = Precondition.compare(reason, [oracle], "<=", [1.50], margin=0.02)
        return claim([1.0], {"b": [1.0]}, "within", margin=0.01, precondition=regime)

    per_seed = [(0, seed_claim(1.53)), (1, seed_claim(1.49))]
    assert per_seed[0][1].verdict == "inconclusive" and per_seed[1][1].verdict == "holds"
    (merged,) = aggregate_claims([(s, Result(claims=[c])) for s, c in per_seed])
    assert merged.precondition is not None and merged.precondition.left == [1.53, 1.49]
    assert merged.verdict == "holds"  # mean oracle 1.51 is within 0.02 of WSD's 1.50


def test_merged_per_seed_preconditions_give_the_failing_seeds_reasons() -> None:
    def seed_claim(ok: bool, reason: str) -> Claim:
        return claim([1.0], {"b": [2.0]}, precondition=Precondition(reason, holds=ok))

    per_seed = [seed_claim(True, "all checks held"), seed_claim(False, "loss did not fall")]
    per_seed.append(seed_claim(False, "probe saturated"))
    (merged,) = aggregate_claims([(s, Result(claims=[c])) for s, c in enumerate(per_seed)])
    assert merged.verdict == "inconclusive"
    assert merged.reason == "loss did not fall | probe saturated"


def test_inconclusive_verdicts_always_say_why() -> None:
    assert "needs two or more" in claim([1.0], {"b": [2.0]}, test="welch").reason
    assert "no finite value for ours" in claim([math.nan], {"b": [2.0]}).reason
    assert claim([1.0], {"b": [2.0]}).reason == ""


# -- old usage and serialisation ----------------------------------------------------------------
def test_old_positional_and_keyword_claims_keep_their_meaning() -> None:
    old = Claim("k", "s", "m", "o", [1.0, 1.1], {"b": [2.0, 2.1]}, "<", 0.0, "paired")
    assert old.verdict == "holds" and old.p_values["b"] == 0.0  # constant gap of -1
    legacy = {
        "key": "k",
        "statement": "s",
        "metric": "m",
        "ours_label": "o",
        "ours": [1.0],
        "baselines": {"b": [2.0]},
        "comparison": "<",
        "margin": 0.0,
        "test": None,
        "alpha": 0.05,
        "seeds": [0],
        "p_values": {},
        "verdict": "holds",
    }  # a result.json claim written before the new fields
    assert Claim.from_dict(legacy).verdict == "holds"


def test_every_new_field_survives_result_json() -> None:
    claims = [
        claim([1.005, 0.998], {"oracle": [1.0, 1.0]}, "within", margin=0.01, test="paired"),
        claim([0.93], None, ">=", threshold=Published(0.925, source="paper Table 1")),
        claim(
            None,
            None,
            ">",
            members={"a": Member([0.7], threshold=0.5), "b": Member([0.2], {"r": [0.5]})},
        ),
        claim([1.0], {"b": [2.0]}, precondition=Precondition.compare("r", [1.0], "<", [0.5])),
        claim([1.0], {"b": [2.0]}, precondition=Precondition("bool", holds=[True, False])),
    ]
    result = Result(claims=claims, tables=[Table("t", ["a", "b"], [[1, np.float32(0.5)]])])
    restored = Result.from_dict(json.loads(json.dumps(result.to_dict())))
    assert [c.to_dict() for c in restored.claims] == [c.to_dict() for c in claims]
    assert [c.verdict for c in restored.claims] == [
        "fails",  # 1.005 and 0.998 are within 0.01, but two seeds cannot show it (TOST)
        "holds",
        "fails",
        "inconclusive",
        "inconclusive",
    ]
    assert restored.claims[2].failing == ["b"]
    assert restored.tables[0].to_dict() == {"title": "t", "columns": ["a", "b"], "rows": [[1, 0.5]]}


def test_aggregation_pools_members_over_seeds() -> None:
    def seed_claim(a: float, b: float) -> Claim:
        return claim(
            None,
            None,
            ">",
            members={"x": Member([a], {"r": [0.5]}), "y": Member([b], {"r": [0.5]})},
        )

    merged = Claim.combine([(0, seed_claim(0.6, 0.7)), (1, seed_claim(0.8, 0.2))])
    assert merged.members["x"].ours == [0.6, 0.8] and merged.members["y"].ours == [0.7, 0.2]
    assert merged.seeds == [0, 1]
    assert merged.verdict == "fails" and merged.failing == ["y"]  # mean 0.45 is below 0.5
