"""Stop 73: the arguments users' models take besides one tensor each, and the loops that
call a compiled model with a new shape every time (a decoder generating token by token),
each tried once and reported as it went (``ok`` with the largest difference to eager, or the
error's first line). Run at stop 72's last commit (b096f94) for
``workflows_stop73_before.txt`` and at this stop's code for ``workflows_stop73.txt``:

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/workflows_stop73.py
"""
# ruff: noqa: E501

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import nn

import provenml.compiler as pc

OPTS = {"tuning": False, "threads": 1}


def _diff(a: Any, b: Any) -> float:
    return max(float((x - y).detach().abs().max()) for x, y in zip(pytree.tree_leaves(a), pytree.tree_leaves(b), strict=True))


class OptionalMask(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.linear(x)
        return y if mask is None else y * mask


class ListInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 4)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return self.linear(xs[0] + xs[1])


class DictBatch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 4)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        y = self.linear(batch["x"])
        return {"y": y, "masked": y * batch["mask"]}


class TopK(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 6)

    def forward(self, x: torch.Tensor, k: int) -> torch.Tensor:
        return self.linear(x)[:, :k]


def default_parameter() -> str:
    torch.manual_seed(0)
    model, x = OptionalMask().eval(), torch.randn(3, 8)
    return f"ok {_diff(pc.compile(model, (x,), **OPTS)(x), model(x)):.1e}"


def list_input() -> str:
    torch.manual_seed(0)
    model, xs = ListInput().eval(), [torch.randn(3, 8), torch.randn(3, 8)]
    return f"ok {_diff(pc.compile(model, (xs,), **OPTS)(xs), model(xs)):.1e}"


def dict_batch() -> str:
    torch.manual_seed(0)
    model, batch = DictBatch().eval(), {"x": torch.randn(3, 8), "mask": torch.ones(3, 4)}
    return f"ok {_diff(pc.compile(model, (batch,), **OPTS)(batch), model(batch)):.1e}"


def int_argument() -> str:
    torch.manual_seed(0)
    model, x = TopK().eval(), torch.randn(3, 8)
    fast = pc.compile(model, (x, 2), **OPTS)
    line = f"ok {_diff(fast(x, 2), model(x, 2)):.1e}"
    try:
        fast(x, 3)
        return line + "; k=3: SILENT (no error)"
    except Exception as exc:
        return line + f"; k=3: {type(exc).__name__}: {str(exc)[:80]}"


def int_argument_dynamic() -> str:
    torch.manual_seed(0)
    model, x = TopK().eval(), torch.randn(3, 8)
    fast = pc.compile(model, (x, 2), dynamic=True, **OPTS)
    worst = max(_diff(fast(x, k), model(x, k)) for k in (1, 4, 2))
    return f"ok, k = 1, 4, 2: {worst:.1e}, {len(fast.compiled)} builds"


def _gpt2() -> nn.Module:
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=500, n_positions=128)
    gpt = transformers.GPT2LMHeadModel(config).eval()

    class Logits(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gpt = gpt

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.gpt(input_ids=ids, use_cache=False).logits

    return Logits().eval()


TOKENS = 16


def _generate(step: Callable[[torch.Tensor], torch.Tensor], prompt: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    ids, times = prompt, []
    with torch.no_grad():
        for _ in range(TOKENS):
            start = time.perf_counter()
            logits = step(ids)
            times.append(time.perf_counter() - start)
            ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], 1)
    return ids, times


def _generation_line(step: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, setup: float, caught: list[Any]) -> str:
    prompt = torch.randint(0, 500, (1, 4), generator=torch.Generator().manual_seed(0))
    eager_ids, eager_times = _generate(model, prompt)
    ids, times = _generate(step, prompt)
    same = torch.equal(ids, eager_ids)
    warned = [str(w.message) for w in caught if "provenml" in str(w.message)]
    said = "; ".join(sorted({w[:90] for w in warned})) or "no warning"
    return (
        f"{'same tokens' if same else 'OTHER TOKENS'}; setup {setup:.1f} s, {TOKENS} tokens {sum(times):.1f} s "
        f"(first 4: {', '.join(f'{t:.2f}' for t in times[:4])} s; last: {times[-1] * 1e3:.1f} ms), "
        f"eager {sum(eager_times) * 1e3:.0f} ms; {said}"
    )


def generation_pc_dynamic() -> str:
    model = _gpt2()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        fast = pc.compile(model, (torch.randint(0, 500, (1, 4)),), dynamic=True, **OPTS)
        setup = time.perf_counter() - start
        line = _generation_line(fast, model, setup, caught)
    return line + f"; {len(fast.compiled)} builds"


def _generation_backend(dynamic: bool | None) -> str:
    model = _gpt2()
    torch._dynamo.reset()
    fast = torch.compile(model, backend="provenml", dynamic=dynamic, options=OPTS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _generation_line(fast, model, 0.0, caught)
    return line


def generation_backend() -> str:
    return _generation_backend(None)


def generation_backend_dynamic() -> str:
    return _generation_backend(True)


def threads_sharing_one_model() -> str:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 64)).eval()
    fast = pc.compile(model, (torch.randn(8, 64),), tuning=False, threads=2)
    xs = [torch.randn(8, 64) for _ in range(4)]
    with torch.no_grad():
        want = [model(x) for x in xs]
    wrong = [0]

    def worker(k: int) -> None:
        for _ in range(250):
            if float((fast(xs[k]) - want[k]).abs().max()) > 1e-4:
                wrong[0] += 1

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return f"{'ok' if wrong[0] == 0 else 'WRONG'}: {wrong[0]} wrong of 1000 calls from 4 Python threads"


def weights_changed_after_compile() -> str:
    torch.manual_seed(0)
    model, x = nn.Linear(8, 4).eval(), torch.randn(3, 8)
    fast = pc.compile(model, (x,), **OPTS)
    with torch.no_grad():
        model.weight.mul_(2)
        return f"as documented (weights read at compile time): {_diff(fast(x), model(x)):.2f} from the changed model"


PROBES: list[tuple[str, Callable[[], str]]] = [
    ("forward(x, mask=None) compiled with x alone", default_parameter),
    ("forward(xs) with a list of tensors", list_input),
    ("forward(batch) with a dict in, a dict out", dict_batch),
    ("forward(x, k: int), then called with k=3", int_argument),
    ("... with dynamic=True, k = 1, 4, 2", int_argument_dynamic),
    ("GPT-2 generation, pc.compile(dynamic=True)", generation_pc_dynamic),
    ("GPT-2 generation, torch.compile(backend)", generation_backend),
    ("GPT-2 generation, backend, dynamic=True", generation_backend_dynamic),
    ("one compiled model, four Python threads", threads_sharing_one_model),
    ("a weight changed in place after compiling", weights_changed_after_compile),
]


def main() -> None:
    print(f"load average at the start {os.getloadavg()}", flush=True)
    for name, probe in PROBES:
        try:
            line = probe()
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            line = f"{type(exc).__name__}: {first[:160]}"
        print(f"{name:46s} {line}", flush=True)
    print(f"load average at the end {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
