"""Stop 59's scatters, integer arithmetic and in-place calls through the torch frontend:
``index_add`` / ``scatter_add`` / ``scatter_reduce`` (the IR's one new op, ``scatter``),
``index_select``, integer ``//`` / ``%`` / clamp, ``div``'s rounding modes, in-place method
calls (their tensor rebound; refused on inputs and views), and PyTorch Geometric's
message-passing layers that these make compile, against eager and the IR interpreter."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from tests.compiler._user_models import Apply
from torch import nn

import provenml.compiler as pc
from provenml.errors import ProvenmlError

NODES, EDGES, WIDTH = 7, 19, 20  # 20 columns: two column blocks for the two threads


class Scatters(nn.Module):
    """Every scatter form, summed into one output (each term differently scaled)."""

    def forward(self, x: torch.Tensor, index: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        spread = index[:, None].expand(-1, WIDTH)
        total = x.index_add(0, index, src, alpha=0.5)
        total = total + x.t().index_add(1, index, src.t()).t() * 2
        total = total + x.scatter_add(0, spread, src) * 3  # whole rows (PyG's form)
        scattered = (spread[:NODES] * 3 + torch.arange(WIDTH)) % WIDTH  # element by element
        total = total + x.scatter_add(1, scattered, src[:NODES]) * 4
        counted = x.new_zeros(NODES)
        counted.scatter_add_(0, index, torch.ones(EDGES))  # in place, read below by its name
        total = total + counted[:, None] * 5
        reductions = [("sum", False), ("mean", True), ("mean", False), ("amax", False)]
        reductions += [("amin", True), ("prod", True), ("prod", False)]  # (prod: stop 60)
        for k, (reduce, include_self) in enumerate(reductions):
            part = torch.scatter_reduce(x, 0, spread, src, reduce, include_self=include_self)
            total = total + part * (7 + k)
        picked = src.index_select(0, index % EDGES)[:NODES] + x.index_select(
            1, index[:5] % WIDTH
        ).sum(1, keepdim=True)
        return total + picked


def _scatter_inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    index = torch.randint(0, NODES, (EDGES,), generator=g)
    index[:3] = torch.tensor([0, 0, 0])  # repeated rows; some rows left untouched
    index[index == NODES - 1] = 1
    return torch.randn(NODES, WIDTH, generator=g), index, torch.randn(EDGES, WIDTH, generator=g)


@pytest.mark.parametrize("threads", [1, 2])
def test_scatters_match_eager_and_the_interpreter(threads: int, cache: str) -> None:
    model = Scatters().eval()
    args = _scatter_inputs(0)
    compiled = pc.compile(model, args, tuning=False, threads=threads, cache_dir=cache)
    assert "= scatter(" in compiled.dump("frontend")
    for seed in (0, 1, 2):
        fresh = _scatter_inputs(seed)
        torch.testing.assert_close(compiled(*fresh), model(*fresh), rtol=1e-5, atol=1e-5)
    graph = pc.trace(model, args)
    interpreted = pc.interpret(graph, [a.numpy() for a in args])[0]
    torch.testing.assert_close(torch.from_numpy(interpreted), model(*args), rtol=1e-5, atol=1e-5)


class Integers(nn.Module):
    def forward(self, ids: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        floors = ids // other * 1000 + ids % other + torch.div(ids, 3, rounding_mode="floor")
        clamped = (ids.clamp(min=-5, max=2**41) + torch.remainder(ids, 7)).float()
        return floors.float() + clamped + (ids.float() // 2.5) + torch.remainder(ids.float(), -1.5)


def test_integer_floor_division_and_remainder_follow_python(cache: str) -> None:
    """Floor semantics for every sign combination, values past 2^24 (int64 throughout),
    float ``//`` and ``%`` by Python's rules, and an integer clamp kept integer."""
    ids = torch.tensor([-7, -6, -1, 0, 1, 5, 7, 9, 2**40 + 3, -(2**35) - 1])
    other = torch.tensor([2, -4, 3, 5, -3, 5, -2, 4, 7, 9])
    model = Integers().eval()
    compiled = pc.compile(model, (ids, other), tuning=False, threads=1, cache_dir=cache)
    torch.testing.assert_close(compiled(ids, other), model(ids, other), rtol=0, atol=0)


_Apply = Apply


def _scaled_in_place(x: torch.Tensor) -> torch.Tensor:
    y = x * 2
    y.add_(1.0)  # in place: y's later readers see it
    y.clamp_(max=2.0)
    return y + x


def test_in_place_calls_rebind_their_tensor(cache: str) -> None:
    model = _Apply(_scaled_in_place).eval()
    x = torch.randn(4, 6)
    compiled = pc.compile(model, (x,), tuning=False, threads=1, cache_dir=cache)
    x2 = torch.randn(4, 6)
    torch.testing.assert_close(compiled(x2), model(x2))


def _mutates_input(x: torch.Tensor) -> torch.Tensor:
    x.mul_(2.0)
    return x


def _mutates_a_view(x: torch.Tensor) -> torch.Tensor:
    y = x + 1
    row = y[0]
    row.add_(1.0)  # changes y too
    return y


def _view_read_after(x: torch.Tensor) -> torch.Tensor:
    y = x + 1
    view = y.view(-1)
    y.mul_(3.0)
    return view * 1.0  # sees the change through shared memory


@pytest.mark.parametrize("fn", [_mutates_a_view, _view_read_after])
def test_a_changed_view_and_a_view_read_after_compile(fn: Callable[..., torch.Tensor]) -> None:
    """Refused until stop 74 ("an in-place change of a view of another tensor", "a view of
    the tensor is read after it changes"): now the change of ``row`` is written back into
    ``y``, and ``view``, read after ``y`` changes, is taken again from the changed ``y``
    (tests/compiler/test_in_place_views.py)."""
    model = _Apply(fn).eval()
    compiled = pc.compile(model, (torch.randn(4, 6),), tuning=False, threads=1)
    x = torch.randn(4, 6)
    torch.testing.assert_close(compiled(x), model(x))


@pytest.mark.parametrize(
    ("fn", "why"),
    [
        (_mutates_input, "graph input"),
        # (x[mask] alone compiles since stop 71: tests/compiler/test_selections.py)
        (lambda x: x[x[:, 0] > 0, 1], "boolean mask computed at run time beside other indices"),
    ],
)  # fmt: skip
def test_what_cannot_be_followed_is_refused(fn: Callable[..., torch.Tensor], why: str) -> None:
    with pytest.raises(ProvenmlError, match=why):
        pc.compile(_Apply(fn).eval(), (torch.randn(4, 6),), tuning=False)


def test_pyg_message_passing_layers_compile(cache: str) -> None:
    """GCN (its normalisation's in-place masked_fill included), GraphSAGE (mean: an in-place
    count), GAT (softmax over each node's edges: scatter max and sum) and GIN, on two edge
    sets of the compiled size. Self-loop insertion selects edges by a run-time mask, a
    data-dependent size: those layers are built with ``add_self_loops=False``."""
    gnn = pytest.importorskip("torch_geometric.nn")

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gcn = gnn.GCNConv(8, 16, add_self_loops=False)
            self.sage = gnn.SAGEConv(16, 16)
            self.gat = gnn.GATConv(16, 8, heads=2, add_self_loops=False)
            mlp = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
            self.gin = gnn.GINConv(mlp)

        def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
            h = self.gcn(x, edge_index).relu()
            h = self.sage(h, edge_index).relu()
            h = self.gat(h, edge_index).relu()
            return self.gin(h, edge_index)  # type: ignore[no-any-return]

    torch.manual_seed(0)
    model = Net().eval()
    x, edges = torch.randn(12, 8), torch.randint(0, 12, (2, 40))
    compiled = pc.compile(model, (x, edges), tuning=False, threads=1, cache_dir=cache)
    for seed in (1, 2):
        g = torch.Generator().manual_seed(seed)
        x2, e2 = torch.randn(12, 8, generator=g), torch.randint(0, 12, (2, 40), generator=g)
        with torch.no_grad():
            torch.testing.assert_close(compiled(x2, e2), model(x2, e2), rtol=1e-4, atol=1e-4)
