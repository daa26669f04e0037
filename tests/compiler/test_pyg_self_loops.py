"""PyTorch Geometric's layers on ``gcn_norm`` with their default self loops
(``provenml.compiler.frontend.pyg``): the fixed-size normalisation equals PyG's as a dense
adjacency, and the compiled layers equal eager on edge sets with and without loops."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import provenml.compiler as pc
from provenml.compiler.frontend.pyg import static_gcn_norm, static_gcn_twins

gnn = pytest.importorskip("torch_geometric.nn")
gcn_conv = pytest.importorskip("torch_geometric.nn.conv.gcn_conv")

NODES, EDGES = 9, 30


def _edges(seed: int, loops: int) -> torch.Tensor:
    """``EDGES`` random edges of which the first ``loops`` are self loops (two on node 0, so a
    node with a duplicate loop), in a shuffled order."""
    g = torch.Generator().manual_seed(seed)
    edges = torch.randint(0, NODES, (2, EDGES), generator=g)
    edges[1] = torch.where(edges[0] == edges[1], (edges[1] + 1) % NODES, edges[1])  # no loops
    nodes = torch.cat([torch.zeros(2, dtype=torch.long), torch.randperm(NODES, generator=g)])
    edges[:, :loops] = nodes[:loops]
    return edges[:, torch.randperm(EDGES, generator=g)]


def _dense(edge_index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The normalised adjacency as an (N, N) matrix, duplicate edges summed."""
    dense = torch.zeros(NODES * NODES, dtype=weight.dtype)
    dense.index_add_(0, edge_index[0] * NODES + edge_index[1], weight)
    return dense.view(NODES, NODES)


@pytest.mark.parametrize("loops", [0, 1, 4])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("improved", [False, True])
@pytest.mark.parametrize("flow", ["source_to_target", "target_to_source"])
def test_static_gcn_norm_is_pyg_normalisation(
    loops: int, weighted: bool, improved: bool, flow: str
) -> None:
    edges = _edges(loops + 10 * weighted, loops)
    weight = torch.rand(EDGES, generator=torch.Generator().manual_seed(3)) + 0.5
    weight = weight if weighted else None
    args = (edges, weight, NODES, improved, True, flow, torch.float32)
    ours_index, ours_weight = static_gcn_norm(gcn_conv.gcn_norm, *args)
    pyg_index, pyg_weight = gcn_conv.gcn_norm(*args)
    assert ours_index.shape == (2, EDGES + NODES)  # every input edge kept, one loop per node
    assert pyg_index.shape[1] == EDGES - loops + NODES
    torch.testing.assert_close(
        _dense(ours_index, ours_weight), _dense(pyg_index, pyg_weight), rtol=1e-6, atol=1e-7
    )


def test_other_inputs_go_to_pyg() -> None:
    calls = []

    def original(*args: object) -> str:
        calls.append(args)
        return "pyg"

    edges = _edges(0, 2)
    assert static_gcn_norm(original, edges, None, None) == "pyg"  # no num_nodes
    assert static_gcn_norm(original, edges, None, NODES, False, False) == "pyg"  # no loops
    assert len(calls) == 2


class _GcnFamily(nn.Module):
    """Every layer that normalises by ``gcn_norm`` with its default self loops."""

    def __init__(self) -> None:
        super().__init__()
        self.gcn = gnn.GCNConv(8, 16)
        self.improved = gnn.GCNConv(16, 16, improved=True)
        self.sg = gnn.SGConv(16, 16, K=2)
        self.tag = gnn.TAGConv(16, 16, K=2)
        self.appnp = gnn.APPNP(K=3, alpha=0.1)
        self.gcn2 = gnn.GCN2Conv(16, alpha=0.2, theta=0.5, layer=1)
        self.ssg = gnn.SSGConv(16, 16, alpha=0.1, K=2)
        self.mixhop = gnn.MixHopConv(16, 8, powers=[0, 1, 2])

    def forward(self, x: torch.Tensor, edges: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        h0 = self.gcn(x, edges).relu()
        h = self.improved(h0, edges, weight).relu()
        h = self.sg(h, edges, weight).relu()
        h = self.tag(h, edges).relu()
        h = self.appnp(h, edges, weight)
        h = self.gcn2(h, h0, edges).relu()
        h = self.ssg(h, edges)
        return self.mixhop(h, edges)  # type: ignore[no-any-return]


def test_gcn_family_with_self_loops_compiles_exactly(cache: str) -> None:
    torch.manual_seed(0)
    model = _GcnFamily().eval()
    x, weight = torch.randn(NODES, 8), torch.rand(EDGES) + 0.5
    example = (x, _edges(0, 3), weight)
    compiled = pc.compile(model, example, threads=2, tuning=False, cache_dir=cache)
    for seed, loops in ((1, 0), (2, 1), (3, 4)):
        g = torch.Generator().manual_seed(seed)
        x2, w2 = torch.randn(NODES, 8, generator=g), torch.rand(EDGES, generator=g) + 0.5
        e2 = _edges(seed, loops)
        with torch.no_grad():
            expected = model(x2, e2, w2)
        torch.testing.assert_close(compiled(x2, e2, w2), expected, rtol=1e-4, atol=1e-5)
    # the twin is only in place while the compiler traces
    assert gcn_conv.gcn_norm.__name__ == "gcn_norm"


def test_twins_are_restored_when_tracing_fails() -> None:
    with pytest.raises(RuntimeError, match="inside"), static_gcn_twins() as names:
        assert "torch_geometric.nn.conv.gcn_conv" in names
        assert gcn_conv.gcn_norm.__name__ == "twin"
        raise RuntimeError("inside")
    assert gcn_conv.gcn_norm.__name__ == "gcn_norm"


@pytest.mark.parametrize("layer", ["GATConv", "ChebConv"])
def test_layers_on_remove_self_loops_compile_for_as_many_loops(layer: str, cache: str) -> None:
    """Refused until stop 71 (``remove_self_loops`` selects the edges by a run-time mask;
    ChebConv also writes ``weight[loops] -= 1``): the count of edges kept is now the
    example's, checked on each call, so another edge set with as many loops gives eager's
    result and one with more a ``ValueGuardFailed``."""
    model = gnn.GATConv(8, 4, heads=2) if layer == "GATConv" else gnn.ChebConv(8, 4, K=3)
    model.eval()
    x = torch.randn(NODES, 8)
    compiled = pc.compile(model, (x, _edges(0, 2)), tuning=False, cache_dir=cache)
    other = _edges(1, 2)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, other), model(x, other), rtol=1e-4, atol=1e-5)
    with pytest.raises(pc.ValueGuardFailed, match="number of True elements"):
        compiled(x, _edges(2, 3))


@pytest.mark.filterwarnings("ignore:provenml.compiler.backend compiled nothing")
def test_gcn_with_its_loops_through_torch_compile_at_three_graph_sizes() -> None:
    """Through ``torch.compile(backend=pc.backend)`` dynamo breaks the graph at the edge
    selection and hands the node count to the code after it as a graph output; a new node
    count then made dynamo fail on the float32 tensor the backend returned for that size
    (stop 66: sizes are now outputs the backend leaves to PyTorch)."""
    torch.manual_seed(0)
    model = gnn.GCNConv(8, 8).eval()
    compiled = torch.compile(model, backend=pc.backend)
    for nodes in (NODES, NODES + 5, NODES + 11):
        g = torch.Generator().manual_seed(nodes)
        x, edges = torch.randn(nodes, 8, generator=g), torch.randint(0, nodes, (2, 40), generator=g)
        edges[1, :4] = edges[0, :4]
        with torch.no_grad():
            torch.testing.assert_close(compiled(x, edges), model(x, edges), rtol=1e-5, atol=1e-6)
