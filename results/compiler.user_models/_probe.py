"""The loop the stop-69 probes share: compile each case on its example inputs, run it on other
inputs, and print the largest difference to eager (``WRONG`` above the tolerance), a refusal by
name (a ``ProvenmlError`` whose message starts ``provenml.compiler:``; until stop 70 only an
``UnsupportedOp`` counted), or a crash inside the compiler; then the counts and the load
average. Imported by the probe scripts beside it (run as
``python results/compiler.user_models/<probe>.py``); since stop 70 also the ``--backend`` /
``--onnx`` compile functions and ``Apply`` / ``function_cases`` for one-function cases."""

from __future__ import annotations

import io
import os
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import nn

import provenml.compiler as pc
from provenml.errors import ProvenmlError

#: (name, model, example inputs it is compiled on, inputs it is run on)
Case = tuple[str, nn.Module, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]


class Skipped(Exception):
    """Raised by a probe's compile function when the case cannot reach provenml (e.g. PyTorch's
    ONNX exporter fails on the model): printed as skipped, counted apart."""


def load_average() -> tuple[float, ...]:
    return tuple(round(v, 2) for v in os.getloadavg())


def run_probe(
    cases: Iterable[Case],
    compile_case: Callable[[nn.Module, tuple[torch.Tensor, ...]], Any],
    *,
    width: int = 46,
    tolerance: float = 1e-4,
    relative: bool = False,
    calls: int = 1,
    show_ok: bool = True,
    header: str = "",
) -> None:
    """Run every case; ``relative``: the tolerance scales with the output's largest magnitude
    (at least 1); ``calls``: calls on the same inputs, each compared (buffers reused across
    calls); ``show_ok``: print the cases within the tolerance too."""
    print("load average at the start", load_average(), header)
    start = time.perf_counter()
    wrong = refused = crashed = skipped = guarded = total = 0
    for name, model, example, inputs in cases:
        total += 1
        try:
            compiled = compile_case(model, example)
        except Skipped as exc:
            skipped += 1
            print(f"{name:{width}s} skipped: {exc}")
            continue
        except ProvenmlError as exc:
            if not str(exc).startswith("provenml.compiler:"):  # not one of the refusals
                crashed += 1
                print(f"{name:{width}s} CRASHED: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                continue
            refused += 1  # by name: an op, or (stop 70) state the model keeps
            print(f"{name:{width}s} refused: {str(exc).splitlines()[0]}")
            continue
        except Exception as exc:  # a crash inside the compiler: what the probes look for
            crashed += 1
            print(f"{name:{width}s} CRASHED: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            continue
        with torch.no_grad():  # fresh copies: an in-place model must not change the inputs
            want = pytree.tree_leaves(model(*[t.clone() for t in inputs]))
            diffs, scale = [], 0.0
            try:
                for _ in range(calls):
                    got = pytree.tree_leaves(compiled(*[t.clone() for t in inputs]))
                    diffs += [float((g - w).abs().max()) for g, w in zip(got, want, strict=True)]
            except pc.ValueGuardFailed as exc:
                # (stop 72) compiled for the example's count, and the other input has another:
                # the guard said so, as designed; neither wrong nor a crash
                guarded += 1
                print(f"{name:{width}s} guarded: {str(exc).splitlines()[0][:150]}")
                continue
            scale = max(float(w.abs().max()) for w in want)
        diff = max(diffs)
        bound = tolerance * max(1.0, scale) if relative else tolerance
        verdict = "ok" if diff <= bound else "WRONG"
        wrong += verdict == "WRONG"
        if show_ok or verdict == "WRONG":
            shown = f" (output scale {scale:.2f})" if relative else ""
            print(f"{name:{width}s} max abs difference {diff:.2e}{shown} {verdict}")
    listed = "" if show_ok else " (only those listed)"
    skips = f", {skipped} skipped" if skipped else ""
    skips += f", {guarded} guarded (another count on the second input)" if guarded else ""
    print(
        f"{wrong} wrong, {crashed} crashed, {refused} refused{skips} of {total}{listed}; "
        f"{time.perf_counter() - start:.0f} s"
    )
    print("load average at the end", load_average())


def compile_with(**options: Any) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], Any]:
    """``pc.compile`` on 2 threads with ``options`` (e.g. ``tuning=False``)."""

    def compile_case(model: nn.Module, example: tuple[torch.Tensor, ...]) -> Any:
        return pc.compile(model, example, threads=2, **options)

    return compile_case


def compile_torch_export(model: nn.Module, example: tuple[torch.Tensor, ...]) -> Any:
    """``pc.compile(torch.export.export(model, example), example)`` (stop 74's
    ``--torch-export``); an export that fails is :class:`Skipped` (PyTorch's, before provenml
    sees the model)."""
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.export.export(model, example)
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise Skipped(f"torch.export failed: {first}") from exc
    return pc.compile(program, example, threads=2)


def compile_backend(model: nn.Module, example: tuple[torch.Tensor, ...]) -> Any:
    """``torch.compile(model, backend=pc.backend)``, compiled by a first call on ``example``
    (TorchDynamo compiles on the first call): the stop-70 probes' ``--backend``."""
    torch._dynamo.reset()
    compiled = torch.compile(model, backend=pc.backend)
    with torch.no_grad():
        compiled(*example)
    return compiled


_PARTITIONED: list[str] = []


def _recording_partitions() -> None:
    """Count the graphs the backend could not compile whole (stop 73): each goes through
    ``api._partitioned``, and one of which nothing compiled through ``_warn_left_to_pytorch``."""
    from provenml.compiler import api

    if getattr(api._partitioned, "recording", False):
        return
    partitioned, left = api._partitioned, api._warn_left_to_pytorch

    def recording_partitioned(*args: Any, **kwargs: Any) -> Any:
        _PARTITIONED.append("partitioned")
        return partitioned(*args, **kwargs)

    def recording_left(ops: list[str]) -> None:
        _PARTITIONED.append("all left to PyTorch (" + ", ".join(sorted(set(ops))) + ")")
        left(ops)

    recording_partitioned.recording = True  # type: ignore[attr-defined]
    api._partitioned, api._warn_left_to_pytorch = recording_partitioned, recording_left


def compile_backend_dynamic(model: nn.Module, example: tuple[torch.Tensor, ...]) -> Any:
    """``torch.compile(model, backend=pc.backend, dynamic=True)`` (stop 73): TorchDynamo hands
    over graphs with symbolic sizes; a line under the case's name tells where a graph was not
    compiled whole."""
    _recording_partitions()
    torch._dynamo.reset()
    _PARTITIONED.clear()
    compiled = torch.compile(model, backend=pc.backend, dynamic=True)
    with torch.no_grad():
        compiled(*example)
    if _PARTITIONED:
        print(f"    ({len(_PARTITIONED)} graph(s) not compiled whole: {'; '.join(_PARTITIONED)})")
    return compiled


def compile_onnx_export(model: nn.Module, example: tuple[torch.Tensor, ...]) -> Any:
    """The model exported by ``torch.onnx.export`` (TorchScript exporter) and compiled by
    ``pc.compile_onnx``: the stop-70 probes' ``--onnx``. An export that fails is
    :class:`Skipped` (PyTorch's exporter, before provenml sees the model), and since stop 71
    so is a file on which ONNX Runtime disagrees with eager PyTorch on the example."""
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, example, buffer, dynamo=False)
    except Exception as exc:
        raise Skipped(f"torch.onnx.export failed: {str(exc).splitlines()[0][:120]}") from exc
    exported_wrong = _onnx_runtime_differs(buffer.getvalue(), model, example)
    if exported_wrong:  # (stop 71) the file itself is wrong: nothing provenml can be judged on
        raise Skipped(exported_wrong)
    return pc.compile_onnx(buffer.getvalue(), example, threads=2, tuning=False)


def compile_onnx_dynamo_export(model: nn.Module, example: tuple[torch.Tensor, ...]) -> Any:
    """As :func:`compile_onnx_export`, through ``torch.onnx.export``'s default exporter since
    PyTorch 2.9 (``dynamo=True``: ``torch.export``, decompositions, onnxscript): what a user
    who calls ``torch.onnx.export(model, args, path)`` gets (stop 72's ``--onnx-dynamo``)."""
    import contextlib
    import logging

    quiet = io.StringIO()
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(quiet),
            contextlib.redirect_stderr(quiet),  # (the exporter prints the graph it failed on)
        ):
            warnings.simplefilter("ignore")
            logging.disable(logging.WARNING)
            program = torch.onnx.export(model, example, dynamo=True, verbose=False)
            model_bytes = program.model_proto.SerializeToString()
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise Skipped(f"torch.onnx.export (dynamo) failed: {first}") from exc
    finally:
        logging.disable(logging.NOTSET)
    exported_wrong = _onnx_runtime_differs(model_bytes, model, example)
    if exported_wrong:
        raise Skipped(exported_wrong)
    return pc.compile_onnx(model_bytes, example, threads=2, tuning=False)


def _onnx_runtime_differs(
    model_bytes: bytes, model: nn.Module, example: tuple[torch.Tensor, ...]
) -> str:
    """Why the exported file is wrong, if ONNX Runtime's result on the example differs from
    eager PyTorch's (relative 1e-4); empty if it agrees or ONNX Runtime cannot run it."""
    import numpy as np
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        feeds = dict(zip(names, (t.numpy() for t in example), strict=False))
        got = session.run(None, feeds)
    except Exception:
        return ""
    with torch.no_grad():
        want = [w.numpy() for w in pytree.tree_leaves(model(*example))]
    for g, w in zip(got, want, strict=False):
        scale = max(1.0, float(np.nanmax(np.abs(w))) if w.size else 1.0)
        diff = float(np.max(np.abs(g - w))) if w.size else 0.0
        if not diff <= 1e-4 * scale:  # NaN too
            return f"the exported file is wrong: ONNX Runtime differs from eager by {diff:.2e}"
    return ""


class Apply(nn.Module):
    """A model that applies ``fn`` to its input: one probe case per function."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def function_cases(
    functions: dict[str, Callable[[torch.Tensor], torch.Tensor]], shape: tuple[int, ...]
) -> Iterable[Case]:
    """One case per function: compiled on one random input of ``shape``, run on another."""
    g = torch.Generator().manual_seed(0)
    for name, fn in functions.items():
        example, other = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
        yield name, Apply(fn).eval(), (example,), (other,)
