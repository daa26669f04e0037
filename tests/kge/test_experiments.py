"""Each reproduction's smoke preset runs end to end and reports its claims."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenml.core import get_experiment, run_experiment


@pytest.mark.parametrize(
    ("name", "claim_keys"),
    [
        ("kge.link_prediction", {"beats_chance/nations"}),
        ("kge.triple_classification", {"above_chance/nations"}),
        ("kge.relation_patterns", {"transe_fails_symmetric", "rotate_handles_composition"}),
        ("kge.relation_extraction", {"kg_improves_pr_auc"}),
    ],
)
def test_smoke(name: str, claim_keys: set[str], tmp_path: Path) -> None:
    run_dir = run_experiment(
        get_experiment(name), scale="smoke", seeds=[0], out_root=tmp_path, device="cpu"
    )
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "complete"
    keys = {c["key"] for c in result["claims"]}
    assert claim_keys <= keys
    for claim in result["claims"]:
        assert claim["verdict"] in ("holds", "fails", "inconclusive")
        assert claim["ours"] and all(v for v in claim["baselines"].values())
