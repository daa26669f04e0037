"""The methods by name: ``EXPLAINERS`` (``METHODS``) and the benchmark config's builder."""

from __future__ import annotations

import pytest

from provenml.errors import ProvenmlError
from provenml.explain import (
    EXPLAINERS,
    METHODS,
    GNNExplainer,
    IntegratedGradients,
    PGMExplainer,
    SubgraphX,
)
from provenml.explain.experiments import BenchmarkConfig


def test_every_method_is_registered_under_its_name_in_benchmark_order() -> None:
    assert METHODS is EXPLAINERS
    assert EXPLAINERS.names() == list(BenchmarkConfig().methods)
    for name, cls in EXPLAINERS.items():
        assert cls.name == name


def test_the_config_builds_each_method_with_its_budgets() -> None:
    cfg = BenchmarkConfig.from_preset(
        "small", {"gnn_epochs": "7", "ig_steps": "5", "pgm_samples": "9", "sx_rollouts": "6"}
    )
    gnn = cfg.build("gnnexplainer", 3, "node")
    assert isinstance(gnn, GNNExplainer) and gnn.epochs == 7
    ig = cfg.build("integrated_gradients", 3, "node")
    assert isinstance(ig, IntegratedGradients) and ig.n_steps == 5
    pgm = cfg.build("pgm_explainer", 3, "graph")
    assert isinstance(pgm, PGMExplainer) and pgm.num_samples == 9
    node_sx, graph_sx = cfg.build("subgraphx", 3, "node"), cfg.build("subgraphx", 3, "graph")
    assert isinstance(node_sx, SubgraphX) and (node_sx.rollouts, graph_sx.rollouts) == (3, 6)


def test_unknown_methods_suggest_close_names() -> None:
    with pytest.raises(ProvenmlError, match=r"unknown explainer 'gnnexplainr'; did you mean"):
        EXPLAINERS.get("gnnexplainr")
    with pytest.raises(ProvenmlError, match=r"methods: unknown 'subgraph_x'; did you mean"):
        BenchmarkConfig.from_preset("small", {"methods": "random,subgraph_x"})
    with pytest.raises(ProvenmlError, match="methods must name at least one value"):
        BenchmarkConfig.from_preset("small", {"methods": ""})
    with pytest.raises(
        ProvenmlError, match=r"datasets: unknown 'ba_shape'; did you mean ba_shapes"
    ):
        BenchmarkConfig.from_preset("small", {"datasets": "ba_shape"})
