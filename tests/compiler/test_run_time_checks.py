"""Stop 60: an index out of range or an integer division by zero at run time makes a compiled
graph raise, as PyTorch does, instead of reading or writing outside a tensor (the kernels
record the first such error, ``pm_fail``, and the caller raises after the call). Each test
feeds one bad value and checks the exception, the message, that eager PyTorch refuses the
same input, and that the next good call is right (the error does not stick)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import onnx
import pytest
import torch
from tests.compiler._user_models import Call
from torch import nn

import provenml.compiler as pc
from provenml.compiler.interp import interpret

ROWS, WIDTH = 6, 20  # 20 columns: two column blocks of the scatter kernel for two threads


class Embed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Embedding(ROWS, WIDTH)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table(ids) * 2


X = torch.randn(ROWS, WIDTH, generator=torch.Generator().manual_seed(0))
SRC = torch.randn(4, WIDTH, generator=torch.Generator().manual_seed(1))
GOOD = torch.tensor([0, 5, 2, 5])

# (model, inputs with the index last, where the index goes in the call)
CASES: dict[str, tuple[nn.Module, Callable[[torch.Tensor], tuple[torch.Tensor, ...]]]] = {
    "embedding": (Embed(), lambda i: (i,)),
    "index_select": (Call(lambda x, i: x.index_select(0, i) + 1), lambda i: (X, i)),
    "index_add": (Call(lambda x, i, s: x.index_add(0, i, s)), lambda i: (X, i, SRC)),
    "scatter_add rows": (
        Call(lambda x, i, s: x.scatter_add(0, i[:, None].expand(-1, WIDTH), s)),
        lambda i: (X, i, SRC),
    ),
    "gather": (Call(lambda x, i: torch.gather(x, 0, i[:, None].repeat(1, 3))), lambda i: (X, i)),
    "scatter_add elements": (
        Call(lambda x, i, s: x.scatter_add(0, i[:, None].repeat(1, 3), s[:, :3])),
        lambda i: (X, i, SRC),
    ),
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_an_index_out_of_range_raises(case: str, threads: int, cache: str) -> None:
    """Ids ``n``, ``-1``, ``-n - 1`` and ``2**40`` (eager refuses each) make the call raise;
    the good call after each is right."""
    model, inputs = CASES[case]
    model.eval()
    compiled = pc.compile(model, inputs(GOOD), tuning=False, threads=threads, cache_dir=cache)
    for bad in (ROWS, -1, -ROWS - 1, 1 << 40):
        wrong = GOOD.clone()
        wrong[2] = bad
        with pytest.raises((IndexError, RuntimeError)):  # eager refuses it too
            model(*inputs(wrong))
        with pytest.raises(pc.IndexOutOfRange, match=f"index {bad} is out of"):
            compiled(*inputs(wrong))
        with torch.no_grad():
            torch.testing.assert_close(compiled(*inputs(GOOD)), model(*inputs(GOOD)))


@pytest.mark.parametrize("runtime", ["pool", "openmp"])
def test_the_message_names_the_node_and_the_size(runtime: str, cache: str) -> None:
    compiled = pc.compile(
        Embed().eval(), (GOOD,), tuning=False, threads=2, runtime=runtime, cache_dir=cache
    )
    with pytest.raises(IndexError, match=rf"index 9 is out of range for a tensor of {ROWS} rows "
                       r"in embedding node '\w+' \(from table\)"):  # fmt: skip
        compiled(torch.tensor([0, 9, 1, 2]))


def test_a_gather_index_names_its_dimension_and_the_call(cache: str) -> None:
    model = Call(lambda x, i: torch.gather(x, 1, i[:, None].repeat(1, 3)) + 1).eval()
    compiled = pc.compile(model, (X, GOOD), tuning=False, threads=1, cache_dir=cache)
    message = rf"index {WIDTH} is out of bounds for a dimension of size {WIDTH} in bounded node"
    with pytest.raises(pc.IndexOutOfRange, match=message + r" '\w+' \(from gather"):
        compiled(X, torch.tensor([0, WIDTH, 1, 2]))


def test_only_graphs_with_run_time_indices_check() -> None:
    """Constant indices (a flip's gather) are checked once, when the graph is built; a graph
    with none asks the library nothing after a call."""
    flip = pc.compile(Call(lambda x: x.flip(0) * 2).eval(), (X,), tuning=False, threads=1)
    assert "= embedding(" in flip.dump("frontend")
    assert not flip.graph.program.checks_errors
    torch.testing.assert_close(flip(X), X.flip(0) * 2)
    embed = pc.compile(Embed().eval(), (GOOD,), tuning=False, threads=1)
    assert embed.graph.program.checks_errors


@pytest.mark.parametrize("threads", [1, 2])
def test_an_integer_division_by_zero_raises(threads: int, cache: str) -> None:
    model = Call(lambda a, b: (a // b) * 10 + a % b).eval()
    a, b = torch.tensor([7, -7, 5, 9]), torch.tensor([2, 3, -4, 5])
    compiled = pc.compile(model, (a, b), tuning=False, threads=threads, cache_dir=cache)
    torch.testing.assert_close(compiled(a, b), model(a, b))
    zero = torch.tensor([2, 0, -4, 5])
    with pytest.raises(RuntimeError):
        model(a, zero)
    with pytest.raises(pc.IntegerDivisionByZero, match="division by zero"):
        compiled(a, zero)
    with pytest.raises(ZeroDivisionError):  # the exception is also Python's own kind
        compiled(a, zero)
    torch.testing.assert_close(compiled(a, b), model(a, b))


def test_the_interpreter_raises_the_same() -> None:
    model = Call(lambda x, i: torch.gather(x, 0, i[:, None].repeat(1, 3))).eval()
    traced = pc.trace(model, (X, GOOD))
    wrong = GOOD.clone()
    wrong[0] = ROWS
    with pytest.raises(pc.IndexOutOfRange, match=f"index {ROWS} is out of bounds"):
        interpret(traced, [X.numpy(), wrong.numpy()])
    two = pc.trace(Call(lambda x, i: x[i, i * 3 - 1]).eval(), (X, GOOD))
    wrong[0] = -ROWS - 1  # as given, with the valid range of a wrapped index
    with pytest.raises(pc.IndexOutOfRange, match=rf"index -{ROWS + 1} .*\(valid: -{ROWS} to"):
        interpret(two, [X.numpy(), wrong.numpy()])
    division = pc.trace(Call(lambda a, b: a // b).eval(), (GOOD, GOOD + 1))
    with pytest.raises(pc.IntegerDivisionByZero):
        interpret(division, [GOOD.numpy(), np.zeros(4, np.int64)])


def _onnx_gather(op: str, **attrs: int) -> bytes:
    helper = onnx.helper
    node = helper.make_node(op, ["data", "index"], ["y"], **attrs)
    shape = [4] if op == "Gather" else [4, 3]
    graph = helper.make_graph(
        [node],
        "gather",
        [
            helper.make_tensor_value_info("data", onnx.TensorProto.FLOAT, [ROWS, WIDTH]),
            helper.make_tensor_value_info("index", onnx.TensorProto.INT64, shape),
        ],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


@pytest.mark.parametrize("op", ["Gather", "GatherElements"])
def test_onnx_counts_negative_indices_from_the_end_and_refuses_the_rest(
    op: str, cache: str
) -> None:
    """ONNX's gathers take ``[-n, n)``: -1 is the last row; ``n`` and ``-n - 1`` raise, the
    message naming the index as given (before stop 61 GatherElements wrapped it first and
    reported ``-n - 1`` as -1) and, for an element gather, the valid range."""
    index = GOOD if op == "Gather" else GOOD[:, None].repeat(1, 3)
    compiled = pc.compile_onnx(_onnx_gather(op), (X, index), tuning=False, cache_dir=cache)
    negative = index.clone()
    negative[1] = -1
    want = X[[0, ROWS - 1, 2, 5]] if op == "Gather" else X[[0, ROWS - 1, 2, 5], :3]
    torch.testing.assert_close(compiled(X, negative), want)
    valid = "" if op == "Gather" else rf".*\(valid: -{ROWS} to {ROWS - 1}\)"
    for bad in (ROWS, -ROWS - 1):
        negative[1] = bad
        with pytest.raises(pc.IndexOutOfRange, match=rf"index {bad} is out of{valid}"):
            compiled(X, negative)


@pytest.mark.parametrize("two_indices", [False, True])
def test_advanced_indexing_counts_negatives_from_the_end_and_refuses_the_rest(
    two_indices: bool, cache: str
) -> None:
    """``x[ids]`` and ``x[ids, cols]`` take ``[-n, n)`` per dim, as Python does; the message
    names a bad index as given (of either dim: both are checked in one elementwise kernel)."""
    if two_indices:
        model = Call(lambda x, i: x[i, i * 3 - 1] * 2).eval()
    else:
        model = Call(lambda x, i: x[i] * 2).eval()
    compiled = pc.compile(model, (X, GOOD), tuning=False, threads=1, cache_dir=cache)
    negative = torch.tensor([0, -1, -ROWS, 3])
    torch.testing.assert_close(compiled(X, negative), model(X, negative))
    for bad in (ROWS, -ROWS - 1):
        wrong = negative.clone()
        wrong[2] = bad
        with pytest.raises(IndexError):
            model(X, wrong)
        named = rf"({bad}|{bad * 3 - 1})" if two_indices else str(bad)
        with pytest.raises(pc.IndexOutOfRange, match=rf"index {named} is out of"):
            compiled(X, wrong)
    torch.testing.assert_close(compiled(X, negative), model(X, negative))


@pytest.mark.parametrize(
    "spread",
    [
        lambda i: i[:, None].repeat(1, 3),
        lambda i: i[:, None].expand(-1, 3),
        lambda i: i.repeat_interleave(2),
        lambda i: torch.tile(i, (2,)),
    ],
    ids=["repeat", "expand", "repeat_interleave", "tile"],
)
def test_integer_tensors_spread_exactly(spread: Callable[..., torch.Tensor], cache: str) -> None:
    """Until stop 60 ``repeat`` moved an int64 tensor's bits as float32 (the gather after it
    read garbage, which the index check then caught); beyond 2**24 a float would also round."""
    model = Call(lambda i: spread(i * 100_000_007 + 1)).eval()
    compiled = pc.compile(model, (GOOD,), tuning=False, threads=1, cache_dir=cache)
    assert compiled(GOOD).dtype == torch.int64
    assert torch.equal(compiled(GOOD), model(GOOD))


def test_two_builds_of_one_library_called_from_two_threads_keep_their_errors(
    cache: str,
) -> None:
    """Builds of the same source load one library, whose error record is one C global: a call
    of one build must not clear or take the other's error. Two threads call two such builds
    at once, one with a bad id every call, the other with good ids: every bad call raises and
    every good call returns the right rows (before stop 61 each build had its own lock, and a
    good call could take the bad call's error or clear it before it was read)."""
    model = Embed().eval()
    builds = [
        pc.compile(model, (GOOD,), tuning=False, threads=1, cache_dir=cache) for _ in range(2)
    ]
    assert builds[0].graph.library == builds[1].graph.library  # one library, loaded twice
    bad = GOOD.clone()
    bad[1] = ROWS
    with torch.no_grad():
        expected = model(GOOD)
    calls = 3000
    outcomes: dict[str, list[int]] = {"missed": [], "wrong": []}

    def call_bad() -> None:
        for k in range(calls):
            try:
                builds[0](bad)
            except pc.IndexOutOfRange:
                continue
            outcomes["missed"].append(k)

    def call_good() -> None:
        for k in range(calls):
            try:
                if not torch.equal(builds[1](GOOD), expected):
                    outcomes["wrong"].append(k)
            except pc.IndexOutOfRange:
                outcomes["wrong"].append(k)

    threads = [threading.Thread(target=call_bad), threading.Thread(target=call_good)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == {"missed": [], "wrong": []}
