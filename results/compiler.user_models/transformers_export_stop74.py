"""Stop 74: stop 58's 41 ``transformers`` models through ``torch.export``, the route PyTorch
recommends for deployment: ``pc.compile(torch.export.export(model, inputs), inputs)``, each
compared to eager. With ``--dynamic`` the export makes every input dimension dynamic
(``Dim.AUTO``) and the program compiles at two shapes, each compared to eager: text at stop
58's 16 tokens and at 11; vision and audio at batch 2 and 3 (exported at 2: an export at
batch 1 specialises the batch to 1). With ``--keywords`` the backbone itself is exported as
users call it, by keyword (``torch.export.export(backbone, (), {"input_ids": ..., ...})``), and
compiled with ``example_kwargs``; its ``last_hidden_state`` compared to eager. A model the export
itself fails on is counted apart (nothing provenml can do there).

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/transformers_export_stop74.py [--dynamic | --keywords] [NAME ...]
"""
# ruff: noqa: E501

from __future__ import annotations

import sys
import time
import warnings
from collections import Counter

import torch
from _probe import load_average
from transformers_probe_stop58 import SPECS, TEXT, build

import provenml.compiler as pc


def main() -> None:
    warnings.filterwarnings("ignore")
    args = sys.argv[1:]
    dynamic = "--dynamic" in args
    keywords = "--keywords" in args
    names = [a for a in args if not a.startswith("--")] or list(SPECS)
    print("load average at the start", load_average(), flush=True)
    ok = total = wrong = refused = unexported = 0
    reasons: Counter[str] = Counter()
    for name in names:
        start = time.perf_counter()
        try:
            model, inputs = build(name)
        except Exception as exc:
            print(f"{name}: config did not build ({type(exc).__name__}: {str(exc)[:120]})")
            continue
        total += 1
        if SPECS[name][2] == TEXT:
            shorter = tuple(x[:, :11] for x in inputs)
        elif dynamic:  # (an export at batch 1 fixes the batch: Dim.AUTO specialises a 1)
            inputs, shorter = (
                tuple(torch.cat([x, x.flip(0)]) for x in inputs),
                tuple(torch.cat([x, x.flip(0), x]) for x in inputs),
            )
        else:
            shorter = inputs
        if keywords:  # (stop 74) the backbone itself, by keyword, as users export it
            backbone, given = model.backbone, dict(zip(model.names, inputs, strict=True))
            if hasattr(backbone.config, "use_cache"):  # (a cache object out: not exportable)
                backbone.config.use_cache = False
            try:
                with torch.no_grad():
                    program = torch.export.export(backbone, (), given)
            except Exception as exc:
                unexported += 1
                print(
                    f"{name}: torch.export failed ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]})",
                    flush=True,
                )
                continue
            try:
                compiled = pc.compile(program, (), example_kwargs=given, tuning=False, threads=1)
                with torch.no_grad():
                    got, want = compiled(**given), backbone(**given)
                worst = float((got["last_hidden_state"] - want["last_hidden_state"]).abs().max())
                verdict = "OK" if worst < 1e-4 else "WRONG"
                wrong += verdict == "WRONG"
                ok += verdict == "OK"
                line = f"{verdict}, max difference from eager {worst:.1e}"
            except Exception as exc:
                refused += 1
                said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                reasons[said.split(" at node")[0][-80:]] += 1
                line = f"{type(exc).__name__}: {said[:200]}"
            print(f"{name}: {line} ({time.perf_counter() - start:.1f} s)", flush=True)
            continue
        try:
            with torch.no_grad():
                # (one entry: the probe's models take ``forward(*inputs)``)
                shapes = (
                    (tuple({d: torch.export.Dim.AUTO for d in range(x.dim())} for x in inputs),)
                    if dynamic
                    else None
                )
                program = torch.export.export(model, inputs, dynamic_shapes=shapes)
        except Exception as exc:
            unexported += 1
            print(
                f"{name}: torch.export failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})",
                flush=True,
            )
            continue
        try:
            worst = 0.0
            for call in (inputs, shorter) if dynamic else (inputs,):
                compiled = pc.compile(program, call, tuning=False, threads=1)
                with torch.no_grad():
                    worst = max(worst, float((compiled(*call) - model(*call)).abs().max()))
            verdict = "OK" if worst < 1e-4 else "WRONG"
            wrong += verdict == "WRONG"
            ok += verdict == "OK"
            line = f"{verdict}, max difference from eager {worst:.1e}"
        except Exception as exc:
            refused += 1
            said = str(exc).splitlines()[0] if str(exc) else ""
            reasons[said.split(" at node")[0][-80:]] += 1
            line = f"{type(exc).__name__}: {said[:200]}"
        print(f"{name}: {line} ({time.perf_counter() - start:.1f} s)", flush=True)
    print(
        f"{total} models: {ok} compiled and right, {wrong} wrong, {refused} refused, {unexported} not exported by torch.export"
    )
    for reason, count in reasons.most_common():
        print(f"  {count} x {reason}")
    print("load average at the end", load_average())


if __name__ == "__main__":
    main()
