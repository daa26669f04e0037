"""The shared synthetic graph generators (their ground truth is tested in tests/explain)."""

from __future__ import annotations

import pytest
import torch

from provenml.data import GroundTruthDataset, ba_shapes
from provenml.data.graphs import DATASETS, load_dataset
from provenml.errors import ProvenmlError

SMALL = {
    "ba_shapes": {"num_base": 30, "num_motifs": 4},
    "ba_community": {"num_base": 30, "num_motifs": 4, "inter_edges": 5},
    "tree_cycles": {"depth": 3, "num_motifs": 4},
    "tree_grid": {"depth": 3, "num_motifs": 4},
    "ba_2motifs": {"num_graphs": 6},
}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_same_seed_same_graphs_and_global_rng_untouched(name: str) -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = load_dataset(name, 5, **SMALL[name])
    assert torch.equal(torch.rand(3), expected_next)  # the generators fork the global RNG
    b = load_dataset(name, 5, **SMALL[name])
    c = load_dataset(name, 6, **SMALL[name])
    assert isinstance(a, GroundTruthDataset) and a.name == name
    for ga, gb in zip(a.graphs, b.graphs, strict=True):
        assert torch.equal(ga.edge_index, gb.edge_index) and torch.equal(ga.x, gb.x)
    assert any(
        ga.edge_index.shape != gc.edge_index.shape or not torch.equal(ga.edge_index, gc.edge_index)
        for ga, gc in zip(a.graphs, c.graphs, strict=True)
    ) or not torch.equal(a.train_index, c.train_index)


def test_ba_shapes_classes_and_split() -> None:
    ds = ba_shapes(seed=0, **SMALL["ba_shapes"])
    data = ds.data
    assert ds.task == "node" and ds.num_classes == 4
    assert data.num_nodes == 30 + 4 * 5  # every house has 5 nodes
    assert int((data.y > 0).sum()) == 4 * 5 and torch.equal(data.node_gt.bool(), data.y > 0)
    assert not (data.train_mask & data.test_mask).any()
    assert (data.train_mask | data.test_mask).all()


def test_unknown_dataset_is_a_user_error() -> None:
    with pytest.raises(ProvenmlError, match="unknown dataset"):
        load_dataset("ba_houses")
