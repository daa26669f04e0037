"""Stop 71: ``torch.compile(model, backend=provenml.compiler.backend)`` froze the weights
TorchDynamo lifts to graph inputs, but TorchDynamo reuses one graph for every module whose code
it is (it inlines ``nn.Module`` calls: the weights are inputs, not guards), so a model with two
blocks of the same class, each split by a graph break (two PyG ``GCNConv`` layers), ran the
first block's weights for both, and a weight changed in place kept its old value: silently
wrong. The backend now compiles once per set of weights (addresses and version counters)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import provenml.compiler as pc


class Block(nn.Module):
    """A linear layer, then a graph break: TorchDynamo compiles this frame once, for both."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x).relu()
        torch._dynamo.graph_break()
        return h * 2


class TwoBlocks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = Block(), Block()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> None:
    torch._dynamo.reset()


def test_two_blocks_of_one_class_keep_their_own_weights() -> None:
    torch.manual_seed(0)
    model = TwoBlocks().eval()
    compiled = torch.compile(model, backend=pc.backend)
    x = torch.randn(4, 8)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
        torch.testing.assert_close(compiled(-x), model(-x))


def test_a_weight_changed_in_place_is_compiled_again() -> None:
    torch.manual_seed(0)
    model = TwoBlocks().eval()
    compiled = torch.compile(model, backend=pc.backend)
    x = torch.randn(4, 8)
    with torch.no_grad():
        compiled(x)
        model.first.lin.weight.mul_(-1.5)  # as optimizer.step() does
        torch.testing.assert_close(compiled(x), model(x))


def test_two_gcn_layers() -> None:
    gnn = pytest.importorskip("torch_geometric.nn")

    class TwoLayers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first, self.second = gnn.GCNConv(8, 8), gnn.GCNConv(8, 8)

        def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
            return self.second(self.first(x, edge_index).relu(), edge_index)

    torch.manual_seed(0)
    model = TwoLayers().eval()
    compiled = torch.compile(model, backend=pc.backend)
    g = torch.Generator().manual_seed(0)
    x, edges = torch.randn(20, 8, generator=g), torch.randint(0, 20, (2, 50), generator=g)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(compiled(x, edges), model(x, edges))


def test_weights_changing_every_call_warn_once() -> None:
    torch.manual_seed(0)
    model = TwoBlocks().eval()
    compiled = torch.compile(model, backend=pc.backend)
    x = torch.randn(4, 8)
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(10):
            model.first.lin.bias.add_(0.1)
            torch.testing.assert_close(compiled(x), model(x))
    said = [w for w in caught if "changed more than" in str(w.message)]
    assert len(said) == 1
