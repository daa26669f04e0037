"""Stop 58: what the tuner's timing rounds show, and what screening out slow candidates after
a few rounds would have changed.

``record OUT.json`` runs ``compiler.end_to_end`` at ``small`` (one seed, in this process, an
empty cache) with ``tune.time_interleaved`` replaced by a recorder that times every candidate
in every round (no screening, as the tuner did before stop 58) and keeps each round's sample,
the calls per sample and the wall time of each tuning and settling call. ``analyse OUT.json``
replays the tuner's kernels with screening rules (after ``s`` rounds, drop the candidates
whose median is more than ``m`` above the fastest) and prints, per rule, the share of the
rounds' time saved, how many kernels would pick another candidate (and how much slower it is
by the full 9-round medians) and which 9-round near ties (within 3%) would be dropped.

    PYTHONPATH=src .venv/bin/python results/compiler.bench_compile/tuning_rounds_stop58.py \
        record rounds.json
    PYTHONPATH=src .venv/bin/python results/compiler.bench_compile/tuning_rounds_stop58.py \
        analyse results/compiler.bench_compile/tuning_rounds_stop58.json.gz
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def record(out_path: Path) -> None:
    cache = tempfile.mkdtemp(prefix="pm-cache-")
    os.environ["PROVENML_CACHE"] = cache
    from provenml.compiler import api, tune
    from provenml.core.registry import get_experiment
    from provenml.core.run import run_experiment

    records: list[dict[str, Any]] = []

    def recording(calls, rounds=tune.TIMING_ROUNDS, sample_time=0.002, after_sample=None, **_):
        # the tuner's timing with every candidate in every round (no screening: the screening
        # arguments are ignored), keeping each round's samples
        t0 = time.perf_counter()
        counts = tune.sample_counts(calls, sample_time, after_sample)
        calibrate = time.perf_counter() - t0
        samples = tune.interleaved_rounds(calls, counts, rounds, after_sample)
        records.append(
            {
                "caller": sys._getframe(1).f_code.co_name,
                "counts": counts,
                "samples": samples,
                "calibrate_s": calibrate,
                "wall_s": time.perf_counter() - t0,
            }
        )
        return [float(np.median(s)) for s in samples]

    tune.time_interleaved = recording
    api.time_interleaved = recording
    spec = get_experiment("compiler.end_to_end")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as runs:
        run_experiment(spec, scale="small", seeds=(0,), out_root=Path(runs))
    total = time.perf_counter() - start
    with gzip.open(out_path, "wt") as f:
        json.dump({"total_s": total, "load": os.getloadavg(), "records": records}, f)
    timed = sum(r["wall_s"] for r in records)
    print(f"experiment {total:.1f} s; {len(records)} timing calls, {timed:.1f} s in them")


def analyse(path: Path) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        data = json.load(f)
    kernels = [r for r in data["records"] if r["caller"] == "tune_node"]
    settles = [r for r in data["records"] if r["caller"] == "settle_ties"]
    rounds_s = sum(
        float(np.sum(np.median(r["samples"], 1) * r["counts"])) * len(r["samples"][0])
        for r in kernels
    )
    print(
        f"experiment {data['total_s']:.0f} s; {len(kernels)} kernels tuned: "
        f"{sum(r['wall_s'] for r in kernels):.1f} s timing them "
        f"({sum(r['calibrate_s'] for r in kernels):.1f} s sizing samples, about "
        f"{rounds_s:.1f} s in rounds); {len(settles)} settlings: "
        f"{sum(r['wall_s'] for r in settles):.1f} s timing"
    )
    walls = sorted(kernels, key=lambda r: -r["wall_s"])[:5]
    for r in walls:
        medians = np.median(r["samples"], 1)
        print(
            f"  costliest: {r['wall_s']:.1f} s, {len(medians)} candidates, fastest "
            f"{medians.min() * 1e3:.2f} ms, slowest {medians.max() * 1e3:.2f} ms a call"
        )
    print("rounds s, margin m: saved share of round time | picks changed (loss) | ties dropped")
    for screen in (2, 3, 4):
        for margin in (0.1, 0.2, 0.3):
            saved = total = 0.0
            changed, dropped = [], []
            for r in kernels:
                samples = np.array(r["samples"])
                full = np.median(samples, 1)
                first = np.median(samples[:, :screen], 1)
                keep = first <= first.min() * (1 + margin)
                per_sample = full * np.array(r["counts"])
                total += per_sample.sum() * samples.shape[1]
                saved += per_sample[~keep].sum() * (samples.shape[1] - screen)
                pick = int(np.argmin(np.where(keep, full, np.inf)))
                if pick != int(np.argmin(full)):
                    changed.append(f"{full[pick] / full.min() - 1:+.1%}")
                ties = (full <= full.min() * 1.03) & ~keep
                dropped += [f"{full[i] / full.min() - 1:+.1%}" for i in np.where(ties)[0]]
            print(
                f"  s={screen} m={margin:.0%}: {saved / total:.0%} | {len(changed)} "
                f"{changed} | {len(dropped)} {dropped}"
            )


if __name__ == "__main__":
    {"record": record, "analyse": analyse}[sys.argv[1]](Path(sys.argv[2]))
