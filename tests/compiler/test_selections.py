"""Stop 71: selections by a boolean mask computed at run time (``x[mask]``, ``x[:, mask]``,
``masked_select``, ``nonzero``, ``argwhere``, ``torch.where(cond)``) compile with the example's
count of ``True`` elements kept and checked on every call: an input with as many gives eager's
result, one with another count raises ``ValueGuardFailed``; PyG's GAT layers with their
self loops (``edge_index[:, edge_index[0] != edge_index[1]]``) compile so."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
from tests.compiler._user_models import Apply

import provenml.compiler as pc

# each selects from a (6, 4) input; the example and the second input select equally many
SELECTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "x[mask] over rows": lambda x: x[x[:, 0] > 0] * 2,
    "x[mask] over every element": lambda x: x[x > 0] + 1,
    "x[:, mask]": lambda x: x[:, x[0] > 0] * 3,
    "x[:, :, mask] of a 3-d view": lambda x: x.reshape(2, 3, 4)[:, :, x[0] > 0],
    "int64 x[mask]": lambda x: (x * 10).long()[x[:, 0] > 0].float(),
    "boolean x[mask]": lambda x: (x > 0)[x[:, 0] > 0].float(),
    "nonzero": lambda x: (x > 0).nonzero().float(),
    "nonzero of a float tensor": lambda x: torch.relu(x).nonzero().float(),
    "nonzero(as_tuple=True)": lambda x: torch.stack(torch.nonzero(x > 0, as_tuple=True)).float(),
    "argwhere": lambda x: torch.argwhere(x > 0).float(),
    "masked_select": lambda x: torch.masked_select(x, x > 0),
    "masked_select, mask broadcast": lambda x: torch.masked_select(x, x[0] > 0),
    "torch.where(cond)": lambda x: torch.where(x[0] > 0)[0].float(),
    "an empty selection": lambda x: x[x > 100].sum() + x,
}


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The example, another input with as many positives in row 0, in column 0 and in all (the
    example's rows and columns permuted, the first of each kept first), and one with more."""
    g = torch.Generator().manual_seed(0)
    example = torch.randn(6, 4, generator=g)
    example[0] = torch.tensor([1.0, -1.0, 2.0, 3.0])
    example[:, 0] = torch.tensor([1.0, -1.0, 2.0, -3.0, 4.0, 5.0])
    same = example[torch.tensor([0, 3, 1, 5, 2, 4])][:, torch.tensor([0, 3, 1, 2])]
    more = example.abs() + 200.0
    return example, same, more


@pytest.mark.parametrize("name", SELECTIONS)
def test_a_selection_compiles_with_its_count_checked(name: str, cache: str) -> None:
    model = Apply(SELECTIONS[name]).eval()
    example, same, more = _inputs()
    compiled = pc.compile(model, (example,), threads=1, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(example), model(example))
    torch.testing.assert_close(compiled(same), model(same))
    with pytest.raises(pc.ValueGuardFailed, match="number of True elements"):
        compiled(more)


def test_a_mask_beside_other_indices_is_refused(cache: str) -> None:
    model = Apply(lambda x: x[x[:, 0] > 0, 1]).eval()
    with pytest.raises(pc.UnsupportedOp, match="beside other indices"):
        pc.compile(model, (_inputs()[0],), threads=1, tuning=False, cache_dir=cache)


@pytest.mark.parametrize("layer", ["GATConv", "GATv2Conv"])
def test_gat_with_its_self_loops(layer: str, cache: str) -> None:
    """``add_remaining_self_loops`` keeps the edges that are not loops: as many (here 57 of
    60) on another edge set gives eager's result; more loops, the count's error."""
    gnn = pytest.importorskip("torch_geometric.nn")
    conv = getattr(gnn, layer)(8, 8).eval()

    class Graph(torch.nn.Module):
        def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
            return conv(x, edge_index)

    model = Graph().eval()
    g = torch.Generator().manual_seed(0)

    def edges(loops: int) -> torch.Tensor:
        src = torch.randint(0, 20, (60,), generator=g)
        dst = (src + torch.randint(1, 20, (60,), generator=g)) % 20  # never a loop
        dst[:loops] = src[:loops]
        return torch.stack([src, dst])

    x = torch.randn(20, 8, generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = pc.compile(model, (x, edges(3)), threads=1, tuning=False, cache_dir=cache)
    other = edges(3)
    torch.testing.assert_close(compiled(x, other), model(x, other), rtol=1e-4, atol=1e-5)
    with pytest.raises(pc.ValueGuardFailed, match="it was 57 on the example inputs and is 55"):
        compiled(x, edges(5))


def _decrement_positives(x: torch.Tensor) -> torch.Tensor:
    w = x.clone()
    w[x > 0] -= 1  # TorchDynamo: getitem, isub, setitem (PyG's ChebConv does this)
    return w


def _tripled_where_positive(x: torch.Tensor) -> torch.Tensor:
    w = x * 2
    w[x > 0] = x[x > 0] * 3
    return w


def _rows_set_to_a_vector(x: torch.Tensor) -> torch.Tensor:
    w = x * 2
    w[x[:, 0] > 0] = torch.arange(4.0)
    return w


def _rows_set_to_a_number(x: torch.Tensor) -> torch.Tensor:
    w = x * 2
    w[x[:, 0] > 0] = 0.5
    return w


class Varargs(torch.nn.Module):
    """``forward(*inputs)``: traced by TorchDynamo, which records ``-=`` as ``operator.isub``."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.fn(*inputs)


@pytest.mark.parametrize(
    "fn",
    [_decrement_positives, _tripled_where_positive, _rows_set_to_a_vector, _rows_set_to_a_number],
)
def test_assignment_through_a_run_time_mask(
    fn: Callable[[torch.Tensor], torch.Tensor], cache: str
) -> None:
    """``t[mask] = v`` with a tensor ``v`` (the selected rows replaced, the count guarded) or a
    number (a mask over the leading dims: whole rows), and ``t[mask] -= 1``."""
    model = Varargs(fn).eval()
    example, same, more = _inputs()
    compiled = pc.compile(model, (example,), threads=1, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(same), model(same))
    if fn is not _rows_set_to_a_number:  # (a number needs no count)
        with pytest.raises(pc.ValueGuardFailed):
            compiled(more)


def test_a_selection_inside_a_nested_output(cache: str) -> None:
    """The count's extra graph output is not one of the model's: a dict comes back a dict."""

    class Outputs(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, object]:
            return {"selected": x[x[:, 0] > 0], "doubled": x * 2, "sums": [x.sum()]}

    model = Outputs().eval()
    example, same, _ = _inputs()
    compiled = pc.compile(model, (example,), threads=1, tuning=False, cache_dir=cache)
    got, want = compiled(same), model(same)
    assert isinstance(got, dict) and list(got) == list(want)
    torch.testing.assert_close(got, want)
