"""The arms by name: ``ARM_POLICIES`` builds each arm's scoring policy, unknown names suggest."""

from __future__ import annotations

import pytest
import torch

from provenml.errors import ProvenmlError
from provenml.selection.policies import EasyReference, HardLearner, Learnability, RhoLoss, Uniform
from provenml.selection.runner import ARM_POLICIES, ARMS, USES_REFERENCE, Reference, make_policy

EXPECTED = {
    "uniform": Uniform,
    "learnability": Learnability,
    "learnability_topk": Learnability,
    "rho_loss": RhoLoss,
    "hard_learner": HardLearner,
    "easy_reference": EasyReference,
}


def _reference() -> Reference:
    model = torch.nn.Linear(3, 2)
    return Reference(model, torch.arange(8, dtype=torch.float32), None, 0.5)  # type: ignore[arg-type]


def test_every_arm_builds_its_policy() -> None:
    assert tuple(EXPECTED) == ARMS
    assert {"learnability", "learnability_topk", "rho_loss", "easy_reference"} == USES_REFERENCE
    for arm, kind in EXPECTED.items():
        policy = make_policy(arm, _reference(), torch.nn.Linear(3, 2), lr=0.01, temperature=2.0)
        assert type(policy) is kind, arm
    topk = make_policy(
        "learnability_topk", _reference(), torch.nn.Linear(3, 2), lr=0.1, temperature=1
    )
    plain = make_policy("learnability", _reference(), torch.nn.Linear(3, 2), lr=0.1, temperature=1)
    assert topk.topk and not plain.topk  # type: ignore[attr-defined]


def test_unknown_or_incomplete_arms_are_clear_errors() -> None:
    with pytest.raises(ProvenmlError, match=r"unknown arm 'rho_los'; did you mean rho_loss"):
        make_policy("rho_los", _reference(), None, lr=0.1, temperature=1.0)
    with pytest.raises(ProvenmlError, match="unknown arm 'Uniform'"):  # exact names only
        make_policy("Uniform", None, None, lr=0.1, temperature=1.0)
    with pytest.raises(ProvenmlError, match="'rho_loss' needs a reference model"):
        make_policy("rho_loss", None, None, lr=0.1, temperature=1.0)
    with pytest.raises(ProvenmlError, match="'learnability' needs an actor model"):
        make_policy("learnability", _reference(), None, lr=0.1, temperature=1.0)
    assert "uniform" in ARM_POLICIES and len(ARM_POLICIES) == len(ARMS)
