"""The smoke preset of compiler.end_to_end runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenml.core import get_experiment, run_experiment


def test_end_to_end_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVENML_CACHE_DIR", str(tmp_path / "cache"))
    run_experiment(
        get_experiment("compiler.end_to_end"),
        scale="smoke",
        seeds=[0],
        out_root=tmp_path,
        device="cpu",
    )
    results = list(tmp_path.rglob("seed-0/result.json"))
    assert len(results) == 1
    result = json.loads(results[0].read_text())
    keys = {c["key"] for c in result["claims"]}
    assert keys == {
        "fusion_reduces_latency",
        "memory_planning_reduces_latency",
        "faster_than_eager_batch1",
    }
    assert any(k.startswith("latency_us/mlp:1/provenml") for k in result["summary"])
    # the ONNX frontend's row: provenml on the file ONNX Runtime runs
    assert result["summary"]["ratio/mlp:1/provenml_onnx_over_onnxruntime"] > 0
    assert (results[0].parent / "latency.png").exists() and (
        results[0].parent / "ablation.png"
    ).exists()
