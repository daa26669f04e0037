"""Stop 61: where ``compiler.end_to_end``'s time goes at ``small``: every case's
``run_case`` under cProfile (main thread; the tuner's gcc processes show as ``build_many``
waiting), empty cache. Run on an idle machine:
``.venv/bin/python results/compiler.end_to_end/profile_stop61.py`` (output beside it; the run
at stop 61 was made before the sampler change, with the doubling sampler ``_sample``)."""

from __future__ import annotations

import cProfile
import os
import pstats
import tempfile
import time

os.environ["PROVENML_CACHE"] = tempfile.mkdtemp(prefix="pm_profile_")

from provenml.compiler.experiments import (  # after the cache is set
    EndToEndConfig,
    l2_bytes,
    resolve_case,
    run_case,
)

FUNCTIONS = (
    "compile_library",
    "build_many",
    "_build",
    "optimize",
    "settle_ties",
    "tune",
    "_load",
    "_lower",
    "interleaved_samples",
    "_median_latency",
    "_sample",
    "choose_threads",
    "compile_graph",
    "compile_onnx",
    "_onnx_bytes",
    "time_interleaved",
    "calibrate_fallback",
)


def main() -> None:
    print("load", os.getloadavg())
    cfg = EndToEndConfig()
    profile = cProfile.Profile()
    for name in cfg.cases:
        case = resolve_case(name, l2_bytes())
        t0 = time.perf_counter()
        profile.enable()
        run_case(cfg, case)
        profile.disable()
        print(case, "total", round(time.perf_counter() - t0, 1), "s", flush=True)
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    for fn in FUNCTIONS:
        cumulative = sum(v[3] for k, v in stats.items() if k[2] == fn)
        calls = sum(v[1] for k, v in stats.items() if k[2] == fn)
        print(f"{fn:24s} {cumulative:7.1f} s  calls {calls}")
    print("load after", os.getloadavg())


if __name__ == "__main__":
    main()
