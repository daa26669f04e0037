"""Every model of the experiment compiled and compared with eager; the torch.compile backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import provenml.compiler as pc
from provenml.compiler.models import MODELS, SMALL_MODELS, build_model
from provenml.errors import ProvenmlError


@pytest.mark.parametrize(
    "name",
    [
        *SMALL_MODELS,
        *(pytest.param(m, marks=pytest.mark.slow) for m in MODELS if m not in SMALL_MODELS),
    ],
)
def test_model_matches_eager(name: str, cache: str) -> None:
    model, x = build_model(name, batch=2 if name == "mlp" else 1)
    with torch.no_grad():
        ref = model(x).numpy()
    compiled = pc.compile(model, (x,), tuning=False, cache_dir=cache)
    np.testing.assert_allclose(
        compiled(x).numpy(), ref, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(ref).max()))
    )


def test_tuned_mlp_matches_eager(cache: str) -> None:
    model, x = build_model("mlp", batch=1)
    compiled = pc.compile(model, (x,), tuning=True, cache_dir=cache)
    assert any("mr" in line for line in compiled.tuning_log)
    with torch.no_grad():
        np.testing.assert_allclose(compiled(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)
    again = pc.compile(model, (x,), tuning=True, cache_dir=cache)
    assert not any("tried" in line for line in again.tuning_log)  # tuning came from the cache


class WithUnsupported(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 16)
        self.b = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.special.bessel_j0(F.relu(self.a(x)))  # an op the compiler refuses
        return torch.sigmoid(self.b(h))


def test_torch_compile_backend_falls_back(cache: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVENML_CACHE", cache)
    model = WithUnsupported().eval()
    x = torch.randn(4, 8)
    compiled_parts: list[int] = []
    original = pc.api.compile_graph

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        compiled_parts.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(pc.api, "compile_graph", counting)
    torch._dynamo.reset()
    fast = torch.compile(model, backend=pc.backend)
    with torch.no_grad():
        np.testing.assert_allclose(fast(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-6)
    assert len(compiled_parts) == 2  # the parts before and after bessel_j0


def test_torch_compile_backend_partitions_anew_for_each_batch_size(
    cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partitioned graph at four batch sizes (dynamo's symbolic graph after the second):
    each size's partitions come from the graph as dynamo gave it, not from the previous
    size's fused one (stop 66: the third size got the second's compiled parts)."""
    monkeypatch.setenv("PROVENML_CACHE", cache)
    model = WithUnsupported().eval()
    torch._dynamo.reset()
    fast = torch.compile(model, backend=pc.backend)
    with torch.no_grad():
        for batch in (4, 6, 9, 3):
            x = torch.randn(batch, 8)
            np.testing.assert_allclose(fast(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_torch_compile_backend_whole_graph(cache: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVENML_CACHE", cache)
    model, x = build_model("mlp", batch=3)
    torch._dynamo.reset()
    fast = torch.compile(model, backend=pc.backend)
    with torch.no_grad():
        np.testing.assert_allclose(fast(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)


def test_loading_a_build_keeps_denormals(cache: str) -> None:
    """A build must not switch the process to flush-to-zero (crtfastmath.o would)."""
    model, x = build_model("transformer", batch=1)
    pc.compile(model, (x[:, :4],), tuning=False, cache_dir=cache)(x[:, :4])
    tiny = np.array([1e-40], dtype=np.float32)
    assert float((tiny * np.float32(1.0))[0]) != 0.0
    assert float(np.float32(1e-38) / np.float32(100.0)) != 0.0


def test_a_call_checks_inputs_and_converts_what_it_may(cache: str) -> None:
    """The fast path takes contiguous float32 CPU tensors as they are; everything else goes
    through the checked path: NumPy arrays and strided tensors are converted, and a wrong
    count, shape or dtype is one clear error."""
    model, x = build_model("mlp")
    compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
    with torch.no_grad():
        want = model(x)
    torch.testing.assert_close(compiled(x), want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        compiled(x.requires_grad_(False).numpy()), want, rtol=1e-4, atol=1e-5
    )
    strided = torch.cat([x, x], dim=1)[:, ::2]  # same values, not contiguous
    torch.testing.assert_close(compiled(strided), model(strided), rtol=1e-4, atol=1e-5)
    with pytest.raises(ProvenmlError, match="takes 1 inputs, got 2"):
        compiled(x, x)
    with pytest.raises(ProvenmlError, match="compiled for shape"):
        compiled(torch.randn(2, 784))
    with pytest.raises(ProvenmlError, match="compiled for dtype"):
        compiled(x.double())


def test_threads_calling_one_compiled_graph_get_their_own_results(cache: str) -> None:
    """ctypes releases the GIL during the C call: two Python threads calling one compiled
    graph with different inputs must each get the result for their input (the graph's
    pointer arrays and arena are used by one call at a time)."""
    import threading

    model, x = build_model("mlp", batch=4)
    compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
    inputs = [torch.randn(4, 784, generator=torch.Generator().manual_seed(k)) for k in range(2)]
    with torch.no_grad():
        wants = [model(i) for i in inputs]
    wrong: list[int] = []

    def hammer(k: int) -> None:
        for _ in range(300):
            if not torch.allclose(compiled(inputs[k]), wants[k], rtol=1e-4, atol=1e-5):
                wrong.append(k)

    workers = [threading.Thread(target=hammer, args=(k,)) for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not wrong
