"""Stop 73: stop 58's 41 ``transformers`` models through ``torch.compile(model,
backend="provenml", dynamic=True)``, the route docs/compiler.md recommends for models that
need TorchDynamo and see many shapes. Each is called on stop 58's inputs and then on inputs
cut to other lengths (text: 11 tokens of 16, the padding mask cut with them; vision and audio
inputs as they are, a second batch), each compared to eager; a line says where a graph was not
compiled whole (``_probe.compile_backend_dynamic``'s record).

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/transformers_backend_dynamic_stop73.py [NAME ...]
"""
# ruff: noqa: E501

from __future__ import annotations

import sys
import time
import warnings

import torch
from _probe import _PARTITIONED, _recording_partitions, load_average
from transformers_probe_stop58 import SPECS, TEXT, build


def main() -> None:
    warnings.filterwarnings("ignore")
    _recording_partitions()
    print("load average at the start", load_average(), flush=True)
    whole = total = wrong = failed = 0
    for name in sys.argv[1:] or list(SPECS):
        start = time.perf_counter()
        try:
            model, inputs = build(name)
        except Exception as exc:
            print(f"{name}: config did not build ({type(exc).__name__}: {str(exc)[:120]})")
            continue
        total += 1
        shorter = tuple(x[:, :11] for x in inputs) if SPECS[name][2] == TEXT else tuple(torch.cat([x, x.flip(0)]) for x in inputs)
        torch._dynamo.reset()
        _PARTITIONED.clear()
        try:
            compiled = torch.compile(model, backend="provenml", dynamic=True, options={"tuning": False, "threads": 1})
            worst = 0.0
            with torch.no_grad():
                for call in (inputs, shorter, inputs):
                    worst = max(worst, float((compiled(*call) - model(*call)).abs().max()))
            verdict = "OK" if worst < 1e-4 else "WRONG"
            wrong += verdict == "WRONG"
            whole += not _PARTITIONED
            said = f"; {len(_PARTITIONED)} graph(s) not compiled whole: {'; '.join(sorted(set(_PARTITIONED)))[:200]}" if _PARTITIONED else "; compiled whole"
            line = f"{verdict}, max difference from eager {worst:.1e}{said}"
        except Exception as exc:
            failed += 1
            line = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        print(f"{name}: {line} ({time.perf_counter() - start:.1f} s)", flush=True)
    print(f"{total} models: {whole} compiled whole, {wrong} wrong, {failed} failed")
    print("load average at the end", load_average())


if __name__ == "__main__":
    main()
