"""What is particular to the fewshot experiments (the contract test runs every smoke preset):
parts are independent and merge into the unsplit result, and bad choices fail before training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from provenml.core import Memo, get_experiment, run_experiment
from provenml.core.context import RunContext
from provenml.errors import ProvenmlError


def test_parts_merge_into_the_unsplit_result(tmp_path: Path) -> None:
    spec = get_experiment("fewshot.heads")
    overrides = {"heads": "protonet,gcn"}
    run_dir = run_experiment(
        spec, scale="smoke", seeds=[0], device="cpu", overrides=overrides, out_root=tmp_path
    )
    assert len(list((run_dir / "seed-0").glob("part-*/result.json"))) == 2
    merged = json.loads((run_dir / "seed-0" / "result.json").read_text())
    cfg = spec.config.from_preset("smoke", overrides)
    (tmp_path / "whole").mkdir()
    ctx = RunContext(
        tmp_path / "whole", seed=0, device=torch.device("cpu"), scale="smoke", memo=Memo()
    )
    whole = spec.run(cfg, ctx)
    ctx.close()
    for head in ("protonet", "gcn"):
        assert merged["data"]["runs"][head]["mean"] == whole.data["runs"][head]["mean"]
    claims = {c["key"]: c for c in merged["claims"]}
    assert set(claims) == {"gcn_ge_protonet/1shot", "gcn_ge_protonet/5shot"}
    assert claims["gcn_ge_protonet/1shot"]["ours"] == [whole.data["runs"]["gcn"]["mean"]["1"]]


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("fewshot.scarce_source", {"arms": "clean,dirty"}, "arms must be among"),
        ("fewshot.scarce_source", {"filter": "magic"}, "filter must be among"),
        ("fewshot.heads", {"heads": "adargcn,resnet"}, "heads must be among"),
        ("fewshot.denoising", {"filters": "ldn,oracle"}, "filters must be among"),
    ],
)
def test_bad_choices_fail_before_training(name: str, overrides: dict, message: str) -> None:
    spec = get_experiment(name)
    cfg = spec.config.from_preset("smoke", overrides)
    with pytest.raises(ProvenmlError, match=message):
        spec.parts(cfg)
