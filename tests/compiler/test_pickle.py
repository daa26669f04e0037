"""Stop 72: a compiled model pickles (``pickle``, ``copy.deepcopy``, a process pool's
arguments, Ray's object store): before, ``pickle.dumps`` failed inside ctypes ("Can't pickle
local object 'CDLL.__init__.<locals>._FuncPtr'"). Unpickling builds the generated C again (a
build-cache hit here) and keeps what was measured at compile time. Also: a model returning a
named tuple compiles (``unsupported op 'Out'`` before)."""

from __future__ import annotations

import copy
import multiprocessing
import operator
import pickle
from concurrent.futures import ProcessPoolExecutor
from typing import NamedTuple

import pytest
import torch
from torch import nn

import provenml.compiler as pc


class Heads(NamedTuple):
    logits: torch.Tensor
    extras: list[torch.Tensor]


class TwoHeads(nn.Module):
    """A dict holding a named tuple holding a list: the output structure to rebuild."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(8, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        h = self.body(x).relu()
        return {"heads": Heads(self.head(h), [h.sum(1), h.amax(1)]), "norm": h.norm(dim=1)}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return TwoHeads().eval()


def _same(a: object, b: object) -> None:
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    else:
        assert isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)


def test_a_named_tuple_output_compiles() -> None:
    model, x = _model(), torch.randn(4, 8)
    fast = pc.compile(model, (x,), tuning=False, threads=1)
    with torch.no_grad():
        _same(fast(x), model(x))
        _same(fast(-x), model(-x))


def test_pickle_round_trip_keeps_outputs_and_settings() -> None:
    model, x = _model(), torch.randn(4, 8)
    fast = pc.compile(model, (x,), tuning=False, threads=2)
    again = pickle.loads(pickle.dumps(fast))
    assert again is not fast and again.graph is not fast.graph
    with torch.no_grad():
        _same(again(x), model(x))
        _same(again(2 * x), fast(2 * x))
    assert again.graph.threads == fast.graph.threads
    assert again.graph.fallback_scale == fast.graph.fallback_scale
    assert again.graph.adaptive == fast.graph.adaptive
    assert [name for name, _ in again.stages] == [name for name, _ in fast.stages]
    assert again.source == fast.source


def test_deepcopy_is_an_independent_model() -> None:
    model, x = _model(), torch.randn(4, 8)
    fast = pc.compile(model, (x,), tuning=False, threads=1)
    twin = copy.deepcopy(fast)
    twin.graph.consts[:] = 0  # the copy's weights are its own
    with torch.no_grad():
        _same(fast(x), model(x))
    assert not torch.equal(twin(x)["norm"], fast(x)["norm"])


def test_run_time_checks_survive_pickling() -> None:
    """The index check (stop 60) and a value guard (stop 71) come back with the model."""
    table = nn.Embedding(10, 4).eval()
    ids = torch.tensor([1, 2, 3])
    fast = pickle.loads(pickle.dumps(pc.compile(table, (ids,), tuning=False, threads=1)))
    with pytest.raises(pc.IndexOutOfRange):
        fast(torch.tensor([1, 2, 10]))

    class Count(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[: int((x > 0).sum())] * 2

    x = torch.tensor([1.0, -1.0, 2.0, 3.0])
    fast = pickle.loads(pickle.dumps(pc.compile(Count().eval(), (x,), tuning=False, threads=1)))
    torch.testing.assert_close(fast(x + 1), (x + 1)[:3] * 2)
    with pytest.raises(pc.ValueGuardFailed):
        fast(-x)


def test_an_onnx_compiled_model_pickles(tmp_path: object) -> None:
    model = nn.Sequential(nn.Linear(6, 12), nn.GELU(), nn.Linear(12, 2)).eval()
    x = torch.randn(3, 6)
    path = f"{tmp_path}/m.onnx"
    torch.onnx.export(model, (x,), path, dynamo=False, input_names=["x"])
    fast = pickle.loads(pickle.dumps(pc.compile_onnx(path, (x,), tuning=False, threads=1)))
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), atol=1e-5, rtol=1e-5)


def test_a_spawned_worker_runs_the_pickled_model() -> None:
    """What a process pool or a Ray task does with its argument: a fresh interpreter."""
    model, x = _model(), torch.randn(4, 8)
    fast = pc.compile(model, (x,), tuning=False, threads=1)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        out = pool.submit(operator.call, fast, x).result(timeout=300)
    with torch.no_grad():
        _same(out, model(x))
