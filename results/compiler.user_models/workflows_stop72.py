"""Stop 72: what users do with a compiled model besides calling it, each tried once and
reported as it went (``ok`` with the largest difference to eager, or the error's first
line). Run at stop 71's last commit (66cd952) for ``workflows_stop72_before.txt`` and at this
stop's code for ``workflows_stop72.txt``:

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/workflows_stop72.py
"""
# ruff: noqa: E501

from __future__ import annotations

import collections
import copy
import multiprocessing
import operator
import os
import pickle
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils._pytree as pytree
from torch import nn

import provenml.compiler as pc


def _diff(a: Any, b: Any) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(pytree.tree_leaves(a), pytree.tree_leaves(b), strict=True))


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))


def train_through_backend() -> str:
    eager, trained = _mlp(), _mlp()
    compiled = torch.compile(trained, backend=pc.backend)
    x, y = torch.randn(32, 8), torch.randn(32, 1)
    for model in (eager, compiled):
        opt = torch.optim.SGD((eager if model is eager else trained).parameters(), lr=0.1)
        for _ in range(3):
            loss = ((model(x) - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return f"ok, parameters after 3 SGD steps {_diff(list(eager.parameters()), list(trained.parameters())):.1e} from eager's"


def second_loss_term() -> str:
    model = _mlp()
    compiled = torch.compile(model, backend=pc.backend)
    extra = torch.ones(1, requires_grad=True)
    (compiled(torch.randn(4, 8)).sum() + extra.sum()).backward()
    got = [p.grad for p in model.parameters()]
    return "ok, the model got gradients" if all(g is not None for g in got) else "SILENT: no gradient reached the model's parameters"


def requires_grad_input() -> str:
    model = _mlp().eval()
    x = torch.randn(4, 8)
    fast = pc.compile(model, (x,), tuning=False, threads=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fast(x.clone().requires_grad_(True))
    said = [str(w.message) for w in caught if "grad" in str(w.message)]
    return f"result detached ({out.grad_fn is None}); warning: {said[0][:90] if said else 'none'}"


def pickled() -> str:
    model = _mlp().eval()
    x = torch.randn(4, 8)
    fast = pc.compile(model, (x,), tuning=False, threads=1)
    again = pickle.loads(pickle.dumps(fast))
    twin = copy.deepcopy(fast)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        remote = pool.submit(operator.call, fast, x).result(timeout=300)
    with torch.no_grad():
        return f"ok, pickle {_diff(again(x), model(x)):.1e}, deepcopy {_diff(twin(x), model(x)):.1e}, spawned worker {_diff(remote, model(x)):.1e}"


def backend_by_name() -> str:
    torch._dynamo.reset()
    model, x = _mlp().eval(), torch.randn(4, 8)
    compiled = torch.compile(model, backend="provenml", options={"tuning": False, "threads": 1})
    with torch.no_grad():
        return f"ok {_diff(compiled(x), model(x)):.1e}"


Pair = collections.namedtuple("Pair", "logits features")


class NamedOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body, self.head = nn.Linear(8, 16), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> Pair:
        h = self.body(x).relu()
        return Pair(self.head(h), h)


def named_tuple_output() -> str:
    torch.manual_seed(0)
    model, x = NamedOutput().eval(), torch.randn(4, 8)
    fast = pc.compile(model, (x,), tuning=False, threads=1)
    out = fast(x)
    with torch.no_grad():
        return f"ok {type(out).__name__} {_diff(tuple(out), tuple(model(x))):.1e}"


def keyword_inputs() -> str:
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    bert = transformers.BertModel(config).eval()
    batch = {"input_ids": torch.randint(0, 100, (2, 12)), "attention_mask": torch.ones(2, 12, dtype=torch.long)}
    fast = pc.compile(bert, example_kwargs=batch, tuning=False, threads=1)
    with torch.no_grad():
        return f"ok {_diff(fast(**batch).last_hidden_state, bert(**batch).last_hidden_state):.1e}"


def torch_export_program() -> str:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.GELU(), nn.Linear(16, 2)).eval()
    x = torch.randn(4, 8)
    fast = pc.compile(torch.export.export(model, (x,)), (x,), tuning=False, threads=1)
    with torch.no_grad():
        return f"ok {_diff(fast(-x), model(-x)):.1e}"


class TorchBatchNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w, self.b = nn.Parameter(torch.rand(4) + 0.5), nn.Parameter(torch.randn(4))
        self.register_buffer("mean", torch.randn(4))
        self.register_buffer("var", torch.rand(4) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.batch_norm(x, self.w, self.b, self.mean, self.var, False, 0.1, 1e-5, False)


def torch_batch_norm() -> str:
    torch.manual_seed(0)
    model, x = TorchBatchNorm().eval(), torch.randn(3, 4)
    fast = pc.compile(model, (x,), tuning=False, threads=1)
    with torch.no_grad():
        d = _diff(fast(x), model(x))
    return f"ok {d:.1e}" if d <= 1e-4 else f"WRONG {d}"


class RandomDropout(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, 0.5)  # training defaults to True: random in eager, even in eval()


def dropout_training_default() -> str:
    x = torch.randn(4, 8)
    fast = pc.compile(RandomDropout().eval(), (x,), tuning=False, threads=1)
    return f"compiled: the identity where eager drops half ({_diff(fast(x), x):.1e} from x)"


def other_batch_sizes() -> str:
    model = _mlp().eval()
    fast = pc.compile(model, (torch.randn(4, 8),), tuning=False, threads=1, dynamic=True)
    with torch.no_grad():
        diffs = [_diff(fast(x), model(x)) for x in (torch.randn(n, 8) for n in (1, 4, 7))]
    return f"ok, batches 1, 4, 7: {max(diffs):.1e}"


CASES: dict[str, Callable[[], str]] = {
    "train through torch.compile(backend=pc.backend)": train_through_backend,
    "a second loss term beside the compiled model": second_loss_term,
    "pc.compile's model on an input requiring grad": requires_grad_input,
    "pickle / deepcopy / a spawned process pool": pickled,
    'torch.compile(backend="provenml", options=...)': backend_by_name,
    "a model returning a named tuple": named_tuple_output,
    "a Hugging Face BERT by keyword inputs": keyword_inputs,
    "pc.compile(torch.export.export(model, args))": torch_export_program,
    "torch.batch_norm(x, w, b, mean, var, ...)": torch_batch_norm,
    "F.dropout(x, 0.5) in forward (training=True)": dropout_training_default,
    "pc.compile(..., dynamic=True), batches 1, 4, 7": other_batch_sizes,
}

if __name__ == "__main__":
    print("load average at the start", tuple(round(v, 2) for v in os.getloadavg()))
    warnings.simplefilter("ignore")
    for name, case in CASES.items():
        try:
            result = case()
        except Exception as exc:  # reported, not raised: the point is what a user sees
            first = (str(exc).strip().splitlines() or [""])[0]
            result = f"{type(exc).__name__}: {first[:150]}"
        print(f"{name:52s} {result}")
    print("load average at the end", tuple(round(v, 2) for v in os.getloadavg()))
