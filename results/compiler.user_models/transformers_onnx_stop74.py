"""Stop 74: stop 58's 41 ``transformers`` models exported to ONNX and compiled by
``pc.compile_onnx``, compared to eager: through ``torch.onnx.export``'s default exporter
(``dynamo=True``, what ``torch.onnx.export(model, args, path)`` gives since PyTorch 2.9) or,
with ``--torchscript``, its TorchScript exporter (``dynamo=False``). A model the exporter
fails on, or whose file ONNX Runtime runs to other values than eager, is counted apart
(``_probe.compile_onnx_dynamo_export`` / ``compile_onnx_export``: nothing provenml is judged
on).

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/transformers_onnx_stop74.py [--torchscript] [NAME ...]
"""
# ruff: noqa: E501

from __future__ import annotations

import sys
import time
import warnings
from collections import Counter

import torch
from _probe import Skipped, compile_onnx_dynamo_export, compile_onnx_export, load_average
from transformers_probe_stop58 import SPECS, build


def main() -> None:
    warnings.filterwarnings("ignore")
    args = sys.argv[1:]
    export = compile_onnx_export if "--torchscript" in args else compile_onnx_dynamo_export
    names = [a for a in args if not a.startswith("--")] or list(SPECS)
    print("load average at the start", load_average(), flush=True)
    ok = total = wrong = refused = skipped = 0
    reasons: Counter[str] = Counter()
    for name in names:
        start = time.perf_counter()
        try:
            model, inputs = build(name)
        except Exception as exc:
            print(f"{name}: config did not build ({type(exc).__name__}: {str(exc)[:120]})")
            continue
        total += 1
        try:
            compiled = export(model, inputs)
            with torch.no_grad():
                worst = float((compiled(*inputs) - model(*inputs)).abs().max())
            verdict = "OK" if worst < 1e-4 else "WRONG"
            ok += verdict == "OK"
            wrong += verdict == "WRONG"
            line = f"{verdict}, max difference from eager {worst:.1e}"
        except Skipped as exc:
            skipped += 1
            line = f"skipped: {exc}"
        except Exception as exc:
            refused += 1
            said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            reasons[said.split(" at node")[0][-90:]] += 1
            line = f"{type(exc).__name__}: {said[:200]}"
        print(f"{name}: {line} ({time.perf_counter() - start:.1f} s)", flush=True)
    print(f"{total} models: {ok} compiled and right, {wrong} wrong, {refused} refused, {skipped} skipped (export failed or its file wrong)")
    for reason, count in reasons.most_common():
        print(f"  {count} x {reason}")
    print("load average at the end", load_average())


if __name__ == "__main__":
    main()
