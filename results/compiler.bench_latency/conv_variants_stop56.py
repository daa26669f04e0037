"""Stop 56, an ad-hoc check (not a benchmark): the conv-variants and indices test models
compiled with default options (tuning on), checked against eager, and the mean of 50 calls
of each against eager on one thread.

    PYTHONPATH=. .venv/bin/python results/compiler.bench_latency/conv_variants_stop56.py
"""

from __future__ import annotations

import time

import torch
from tests.compiler._user_models import user_model

import provenml.compiler as pc

CALLS = 50


def main() -> None:
    torch.set_num_threads(1)
    for name in ("conv_variants", "indices"):
        model, x = user_model(name)
        start = time.time()
        fast = pc.compile(model, (x,))
        compiled_s = time.time() - start
        with torch.no_grad():
            torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-4)
        start = time.perf_counter()
        for _ in range(CALLS):
            fast(x)
        ours = (time.perf_counter() - start) / CALLS
        with torch.no_grad():
            start = time.perf_counter()
            for _ in range(CALLS):
                model(x)
            eager = (time.perf_counter() - start) / CALLS
        print(
            f"{name}: compile {compiled_s:.1f} s, provenml {ours * 1e6:.0f} us, "
            f"eager (1 thread) {eager * 1e6:.0f} us"
        )


if __name__ == "__main__":
    main()
