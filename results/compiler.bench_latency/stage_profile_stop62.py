"""Stop 62: the transformer block's per-stage profile at one and at two threads.

One build (``threads=2``, tuned, ``tune_threads=False``), ``CompiledGraph.profile`` over 300
calls at each fixed thread count (docs/compiler.md, *Where a call's time goes*).

    PYTHONPATH=src .venv/bin/python results/compiler.bench_latency/stage_profile_stop62.py
"""

from __future__ import annotations

import provenml.compiler as pc
from provenml.compiler.models import build_model


def main() -> None:
    model, x = build_model("transformer", 1)
    for threads in (1, 2):
        fast = pc.compile(model, (x,), threads=threads, tune_threads=False)
        print(fast.profile(x, calls=300).table())


if __name__ == "__main__":
    main()
