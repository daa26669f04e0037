"""Stop 62: does a row split of the transformer block's products beat the column split?

The dense kernel walks its tiles as ``t -> (jo = t / mb, io = t % mb)``: each thread's
contiguous chunk range is a set of column blocks over all rows, so every thread first reads the
rows of the input the other thread wrote (docs/compiler.md, *Stop 62*). This script compiles
the block once (``threads=2``, tuned), rewrites the tile order of the chosen dense kernels in
the generated C to ``io = t / nb, jo = t % nb`` (each thread's range is then a set of row
blocks over all columns: it reads only rows it wrote, and all of the weights), builds it, checks
the outputs are identical, and times both builds in one process, 31 interleaved rounds of 50
calls at two threads (orders alternating), with a paired Wilcoxon test.

    PYTHONPATH=src .venv/bin/python results/compiler.bench_latency/row_split_stop62.py [K,K..]

K numbers the dense kernels in program order (1 QKV, 2 output projection, 3 up projection,
4 down projection); none given: all four.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time

import numpy as np
import torch
from scipy import stats

import provenml.compiler as pc
from provenml.compiler.build import build
from provenml.compiler.models import build_model
from provenml.compiler.runtime import CompiledGraph

TILE_ORDER = re.compile(r"const long jo = t / (\d+), io = t % \1;(.*?)NB_FULL = (\d+) \}", re.S)


def main() -> None:
    only = {int(v) for v in sys.argv[1].split(",")} if len(sys.argv) > 1 else None
    torch.set_num_threads(1)
    model, x = build_model("transformer", 1)
    column = pc.compile(model, (x,), threads=2, tune_threads=False).graph
    seen = 0

    def by_rows(m: re.Match[str]) -> str:
        nonlocal seen
        seen += 1
        if only is not None and seen not in only:
            return m.group(0)
        nb = m.group(3)  # the column blocks (every N of this block divides by its nr)
        return f"const long io = t / {nb}, jo = t % {nb};{m.group(2)}NB_FULL = {nb} }}"

    source = TILE_ORDER.sub(by_rows, column.program.source)
    path, _ = build(source)
    row = CompiledGraph(column.graph, dataclasses.replace(column.program, source=source), path, 2)
    arms = {"col": column, "row": row}
    print(f"dense kernels reordered: {sorted(only) if only else 'all'} of {seen}")
    print("max |row - col|", (column(x)[0] - row(x)[0]).abs().max().item())
    for arm in arms.values():
        arm.set_threads(2)
        for _ in range(300):
            arm(x)
    samples: dict[str, list[float]] = {k: [] for k in arms}
    for r in range(31):
        for key in list(arms) if r % 2 == 0 else list(arms)[::-1]:
            arm = arms[key]
            arm(x)
            start = time.perf_counter()
            for _ in range(50):
                arm(x)
            samples[key].append((time.perf_counter() - start) / 50 * 1e6)
            time.sleep(0.005)
    col, rows = np.array(samples["col"]), np.array(samples["row"])
    print(
        f"median us col {np.median(col):.1f} row {np.median(rows):.1f}; paired median row/col "
        f"{np.median(rows / col):.3f}; row faster in {int((rows < col).sum())} of {len(col)}; "
        f"Wilcoxon p {stats.wilcoxon(np.log(rows / col)).pvalue:.2g}"
    )


if __name__ == "__main__":
    main()
