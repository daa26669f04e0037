"""Auto-tuning (survey Sec. 4.4.2): for every matmul-like kernel, try micro-kernel tile sizes
(``mr`` rows x ``nr`` columns) and k-loop unroll factors on the kernel's real shapes, timing
each compiled candidate, and keep the fastest; results are cached on disk by kernel signature.
On a build machine with AVX-512 the candidates include 512-bit tiles (``vec=16``)."""

from __future__ import annotations

import ctypes
import heapq
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from provenml.compiler.build import FLAGS, build, build_many, cache_dir, native_vector_floats
from provenml.compiler.codegen import C_HEADER, DEFAULT_SCHEDULE, annotate_scratch, lower
from provenml.compiler.ir import Graph, Value
from provenml.compiler.loopir import partition
from provenml.compiler.passes import plan_memory, transform_layout
from provenml.compiler.passes.fusion import anchor_of
from provenml.compiler.progress import SILENT, BuildProgress
from provenml.compiler.runtime import HUGE_PAGE_MIN_BYTES, aligned_copy, block_zeros

PAGE = 4096  # bytes

TUNABLE = ("dense", "matmul", "conv2d")
# bumped whenever the generated matmul/conv kernels or the way they are timed change, so cached
# choices are re-tuned (6: no weight-panel prefetch by default, stop 39; 7: candidates timed in
# interleaved rounds on buffers at one placement, stop 44; 8: entries keep the near-tied
# candidates, settled in the graph, stop 46; 9: the slowest candidates screened out after
# SCREEN_ROUNDS rounds, stop 58; 10: ReLU and clamp epilogues propagate NaN through pm_maxf /
# pm_minf, stop 67)
KERNEL_VERSION = 10
# candidates whose (balance-scaled) time alone is within this fraction of the fastest are a tie
# that only the whole graph can settle (stop 44: choices within 3% alone moved the transformer
# block by up to 5.5% and a 56x56 ResNet stage by 17%); at most MAX_TIES of them, fastest first
TIE_MARGIN = 0.03
MAX_TIES = 3
# 512-bit tiles (mr, nr, ku) tried on AVX-512 build machines: mr * nr/16 zmm accumulators plus
# nr/16 B vectors and a broadcast stay within the 32 zmm registers (8x32: 16 + 2 + 1, 12x32:
# 24 + 2 + 1, 8x48: 24 + 3 + 1, 6x64: 24 + 4 + 1); 4x32 for kernels with few rows, 12x16 for
# narrow outputs (16 columns).
WIDE_TILES = (
    (4, 32, 4),
    (8, 32, 4),
    (8, 32, 1),
    (12, 32, 4),
    (8, 48, 4),
    (6, 64, 4),
    (6, 64, 1),
    (12, 16, 4),
)


def candidates(rows: int, cols: int, vector_floats: int | None = None) -> list[dict[str, int]]:
    """Schedules to try for a kernel with ``rows`` output rows (pixels along a row for convs).

    The 256-bit grid (``vec=8``, ``mr <= 6`` so 16 ymm registers suffice) always; with
    ``vector_floats=16`` (default: :func:`~provenml.compiler.build.native_vector_floats`, 16 on
    an AVX-512 build machine) also the 512-bit :data:`WIDE_TILES` (``vec=16``), ``mr`` capped
    at ``rows`` and ``nr`` at ``cols`` rounded up to 16 (duplicates dropped)."""
    mrs = [m for m in (1, 2, 4, 6) if m <= max(1, rows)]
    nrs = [n for n in (8, 16, 32) if n <= max(8, -(-cols // 8) * 8)]
    grid = [{"mr": m, "nr": n, "ku": 4, "vec": 8} for m in mrs for n in nrs]
    grid += [{"mr": mrs[-1] if len(mrs) < 3 else 4, "nr": n, "ku": 1, "vec": 8} for n in nrs]
    if (native_vector_floats() if vector_floats is None else vector_floats) == 16:
        for mr, nr, ku in WIDE_TILES:
            cand = {"mr": min(mr, max(1, rows)), "nr": nr, "ku": ku, "vec": 16}
            if nr <= max(16, -(-cols // 16) * 16) and cand not in grid:
                grid.append(cand)
    return grid


def _signature(g: Graph, node: Any, layout: bool, threads: int) -> str:
    shapes = [g.values[i].shape for i in node.inputs]
    attrs = {k: v for k, v in node.attrs.items() if k not in ("schedule", "body")}
    return json.dumps(
        [
            node.op,
            shapes,
            sorted((k, str(v)) for k, v in attrs.items()),
            layout,
            threads,
            FLAGS,
            KERNEL_VERSION,
            native_vector_floats(),
        ]
    )


def _kernel_graph(g: Graph, node: Any, schedule: dict[str, int], layout: bool) -> Graph:
    sub = Graph(inputs=[], outputs=[node.name], nodes=[], values={}, consts={})
    for i in node.inputs:
        if i in g.consts:
            sub.consts[i] = g.consts[i]
        elif i not in sub.inputs:
            sub.inputs.append(i)
        sub.values[i] = Value(i, g.values[i].shape, g.values[i].dtype, "row")
    n2 = type(node)(
        node.op, node.name, list(node.inputs), {**node.attrs, "schedule": schedule}, node.source
    )
    sub.values[node.name] = Value(node.name, g.values[node.name].shape)
    sub.nodes = [n2]
    if layout:
        sub = transform_layout(sub)
    return plan_memory(annotate_scratch(sub))


def pool_span(work: Sequence[float], threads: int, chunks: int) -> float:
    """The span of one parallel stage on the pool runtime, simulated: ``work[i]`` is the cost
    of parallel iteration ``i``; the iterations are cut into ``min(chunks, len(work))`` chunks
    (:func:`~provenml.compiler.loopir.partition`, as ``PM_PART``), the chunks into one
    contiguous range per thread, and each thread claims the next chunk of its own range, then
    of the others' (``pm_work`` in :data:`~provenml.compiler.codegen.c_source.POOL_RUNTIME_C`),
    all threads starting together at the same speed. Returns when the last chunk ends."""
    n = min(chunks, len(work))
    if n == 0:
        return 0.0
    chunk_work = [sum(work[slice(*partition(len(work), c, n))]) for c in range(n)]
    nr = min(threads, n)
    bounds = [(r * n // nr, (r + 1) * n // nr) for r in range(nr)]
    claimed = [lo for lo, _ in bounds]  # the next unclaimed chunk of each range
    free = [(0.0, tid) for tid in range(threads)]  # (when the thread is free, its id)
    span = 0.0
    while free:
        now, tid = heapq.heappop(free)
        for k in range(nr):
            r = (tid + k) % nr
            if claimed[r] < bounds[r][1]:
                end = now + chunk_work[claimed[r]]
                claimed[r] += 1
                span = max(span, end)
                heapq.heappush(free, (end, tid))
                break
    return span


def dense_tile_work(node: Any, g: Graph, schedule: dict[str, int]) -> list[float]:
    """Relative cost of each parallel iteration (register tile) of a dense kernel under
    ``schedule``: rows x columns of the tile, columns rounded up to whole vectors (tile ``t``
    is row tile ``t % mb`` of column panel ``t // mb``, as ``kernels.matmul.dense`` orders them)."""
    anchor = anchor_of(node)
    cols, k = int(anchor.attrs["n"]), int(anchor.attrs["k"])
    rows = g.values[anchor.inputs[0]].size // k
    mr = max(1, min(int(schedule["mr"]), rows))
    nr = int(anchor.attrs.get("packed", 0)) or int(schedule["nr"])
    vec = int(schedule.get("vec", 8))
    mb, nb = -(-rows // mr), -(-cols // nr)
    work = []
    for t in range(nb * mb):
        jo, io = divmod(t, mb)
        tile_cols = min(nr, cols - jo * nr)
        work.append(min(mr, rows - io * mr) * -(-tile_cols // vec) * vec)
    return work


def balance_factor(work: Sequence[float], threads: int) -> float:
    """How much longer than a perfect split a stage of this ``work`` runs on ``threads``
    threads of the pool runtime, with its ``4 x threads`` chunks (1.0 at one thread)."""
    if threads <= 1 or not work:
        return 1.0
    return pool_span(work, threads, 4 * threads) / (sum(work) / threads)


# Each candidate is sampled once per round, in rounds; a kernel's candidates time within 1-3% of
# each other at one thread, and timed one after the other (the rule before stop 44) the winner
# was whichever a burst of noise favoured: four tunings of the transformer block picked four
# different schedule sets, and the whole block's latency spread 5.5% between them.
TIMING_ROUNDS = 9
# After SCREEN_ROUNDS rounds, candidates whose median so far is more than SCREEN_MARGIN above the
# fastest median so far sit out the remaining rounds (their time is that median): the slowest
# candidates of a large kernel take 5-15x the fastest's time per sample and used most of the
# tuner's rounds. Stop 58 replayed every candidate sample of one `compiler.end_to_end` at
# `small` (66 kernels, results/compiler.bench_compile/tuning_rounds_stop58.txt): with 4 rounds
# and 30% no kernel's pick and no 9-round near tie (within TIE_MARGIN) would have been lost, and
# 46% of the rounds' time would have gone; after 3 rounds, or within 20%, the first rounds' noise
# dropped near ties (+0.8 to +1.6%) or a kernel's fastest candidate (25% slow in 3 rounds).
SCREEN_ROUNDS = 4
SCREEN_MARGIN = 0.3


def calls_per_sample(
    fn: Any, args: tuple[Any, ...], sample_time: float, limit: int = 1 << 14
) -> int:
    """How many back-to-back calls of ``fn`` last at least ``sample_time`` seconds, after one
    warm-up call (the tuner's buffers are already written, so touched, when it places them)."""
    fn(*args)
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn(*args)
        if time.perf_counter() - t >= sample_time or n >= limit:
            return n
        n *= 2


def sample_counts(
    calls: Sequence[tuple[Any, tuple[Any, ...]]],
    sample_time: float,
    after_sample: Sequence[Any] | None = None,
) -> list[int]:
    """Calls per sample of each ``(fn, args)`` (:func:`calls_per_sample`), sized one after
    the other; ``after_sample[i]()`` (when given) runs after candidate ``i``'s sizing."""
    counts = []
    for i, (fn, args) in enumerate(calls):
        counts.append(calls_per_sample(fn, args, sample_time))
        if after_sample is not None:
            after_sample[i]()
    return counts


def interleaved_rounds(
    calls: Sequence[tuple[Any, tuple[Any, ...]]],
    counts: Sequence[int],
    rounds: int = TIMING_ROUNDS,
    after_sample: Sequence[Any] | None = None,
    screen_rounds: int | None = None,
    screen_margin: float = SCREEN_MARGIN,
) -> list[list[float]]:
    """Every round's sample (seconds per call, ``counts[i]`` calls each) of every
    ``(fn, args)``: :func:`time_interleaved`'s rounds, which it reduces to medians."""
    samples: list[list[float]] = [[] for _ in calls]
    active = list(range(len(calls)))
    rng = np.random.default_rng(0)
    for r in range(rounds):
        if screen_rounds is not None and r == screen_rounds and r > 0:
            medians = [float(np.median(s)) for s in samples]
            limit = min(medians) * (1 + screen_margin)
            active = [i for i in active if medians[i] <= limit]
        order = list(active)
        rng.shuffle(order)
        for i in order:
            fn, args = calls[i]
            t = time.perf_counter()
            for _ in range(counts[i]):
                fn(*args)
            samples[i].append((time.perf_counter() - t) / counts[i])
            if after_sample is not None:
                after_sample[i]()
    return samples


def time_interleaved(
    calls: Sequence[tuple[Any, tuple[Any, ...]]],
    rounds: int = TIMING_ROUNDS,
    sample_time: float = 0.002,
    after_sample: Sequence[Any] | None = None,
    screen_rounds: int | None = None,
    screen_margin: float = SCREEN_MARGIN,
) -> list[float]:
    """Median seconds per call of each ``(fn, args)``: one sample of every candidate in each of
    ``rounds`` rounds, in a shuffled order each round, so that drift in the machine's speed
    (frequency, a neighbour's load) hits every candidate alike instead of whichever was being
    timed when it happened; the median drops the rounds a burst of noise slowed.
    ``after_sample[i]()`` (when given) runs after each of candidate ``i``'s samples, untimed.
    ``screen_rounds`` (successive halving's first cut): after that many rounds, a candidate
    whose median is more than ``screen_margin`` above the fastest median is not sampled again
    and keeps that median (None: every candidate runs every round)."""
    counts = sample_counts(calls, sample_time, after_sample)
    samples = interleaved_rounds(calls, counts, rounds, after_sample, screen_rounds, screen_margin)
    return [float(np.median(s)) for s in samples]


def _placed(values: np.ndarray) -> np.ndarray:
    """A flat float32 copy of ``values`` at a fixed placement: on 2 MiB transparent huge pages
    when it is at least ``HUGE_PAGE_MIN_BYTES`` (:func:`~provenml.compiler.runtime.block_zeros`),
    else at the start of a 4 KiB page."""
    flat = np.asarray(values, np.float32).reshape(-1)
    if flat.nbytes >= HUGE_PAGE_MIN_BYTES:
        out = block_zeros(flat.size)
        out[:] = flat
        return out
    return aligned_copy(flat, PAGE)


def output_tiling(g: Graph, node: Any) -> tuple[int, int]:
    """``(rows, cols)`` of the output that a kernel's register tiles cover: a dense kernel's
    rows are all leading dims flattened; a conv's are the pixels along an output row."""
    ov = g.values[node.name]
    if node.op == "conv2d":  # a grouped conv's tiles cover one group's output channels
        return ov.shape[3], ov.shape[1] // int(node.attrs.get("groups", 1))
    cols = ov.shape[-1]
    if node.op == "dense":
        return ov.size // cols, cols
    return (ov.shape[-2] if len(ov.shape) > 1 else 1), cols


def candidate_programs(
    g: Graph, node: Any, layout: bool, weight_prefetch: bool = False
) -> tuple[list[dict[str, int]], list[Graph], list[Any], str]:
    """``node``'s candidate schedules (:func:`candidates`), each as a one-kernel graph and its
    lowered program (entry ``c{k}_entry``), and the C source that holds them all: what
    :func:`tune_node` builds and times."""
    cands = candidates(*output_tiling(g, node))
    graphs = [_kernel_graph(g, node, sched, layout) for sched in cands]
    progs = [
        lower(sg, prefix=f"c{k}", header=False, weight_prefetch=weight_prefetch)
        for k, sg in enumerate(graphs)
    ]
    return cands, graphs, progs, "\n".join([C_HEADER, *(prog.source for prog in progs)])


def prebuild_candidates(
    g: Graph,
    nodes: Sequence[Any],
    layout: bool,
    weight_prefetch: bool = False,
    cache: Any = None,
) -> dict[str, Any]:
    """Build the candidate libraries of every node in ``nodes`` before any is timed, several
    gcc processes at once (:func:`~provenml.compiler.build.build_many`); returns each node's
    :func:`candidate_programs` by name, for :func:`tune_node` (which then finds its library in
    the build cache). Timing stays one node at a time, after every build has ended, so no
    compiler shares the cores with a timed candidate. (Stop 54: gcc took 42 of
    ``compiler.end_to_end``'s 376 seconds in the tuner, one library after the other.) With one
    node there is nothing to overlap: an empty dict."""
    if len(nodes) <= 1:
        return {}
    programs = {n.name: candidate_programs(g, n, layout, weight_prefetch) for n in nodes}
    build_many([p[3] for p in programs.values()], cache=cache)
    return programs


def tune_node(
    g: Graph,
    node: Any,
    layout: bool,
    threads: int,
    cache: Any = None,
    weight_prefetch: bool = False,
    balance_threads: int = 1,
    programs: Any = None,
) -> tuple[dict[str, int], dict[str, float]]:
    """Time every candidate schedule for ``node`` and return the best (and all timings),
    lowered as the build will be (``weight_prefetch``). With ``balance_threads > 1`` a dense
    kernel's timing is scaled by how evenly its tiles split over that many pool threads
    (:func:`balance_factor`): candidates time within a few percent of each other at one thread,
    but one whose last column panel is narrow leaves a thread idle at the end of the stage
    (stop 39: ``8x48`` tiles on a 256-wide output, 11% longer at two threads). ``programs``:
    the node's :func:`candidate_programs` when already lowered (:func:`prebuild_candidates`)."""
    cands, graphs, progs, source = programs or candidate_programs(g, node, layout, weight_prefetch)
    path, _ = build(source, cache=cache)
    lib = ctypes.CDLL(str(path))
    lib.pm_set_threads(threads)
    rng = np.random.default_rng(0)
    calls, keep = [], []
    for k, (sg, prog) in enumerate(zip(graphs, progs, strict=True)):
        # every buffer where it starts for every other candidate: on a page boundary, or on
        # a 2 MiB huge page when it is large (as the runtime places a build's weights), so no
        # candidate's operands straddle lines (up to 13% slow) or alias in the caches'
        # sets differently from the others' (stop 44: picks that changed between tunings)
        ins = [
            _placed(rng.standard_normal(sg.values[i].physical_shape).astype(np.float32))
            for i in sg.inputs
        ]
        outs = [_placed(np.zeros(sg.values[o].physical_shape, np.float32)) for o in sg.outputs]
        arena = _placed(np.zeros(max(16, sg.arena_size) + 16, np.float32))
        consts = _placed(np.asarray(prog.consts, np.float32))
        in_arr = (ctypes.c_void_p * max(1, len(ins)))(*[a.ctypes.data for a in ins])
        out_arr = (ctypes.c_void_p * 1)(outs[0].ctypes.data)
        fn = getattr(lib, f"c{k}_entry")
        fn.argtypes = [ctypes.c_void_p] * 4
        keep.append((ins, outs, arena, consts))
        calls.append((fn, (in_arr, out_arr, arena.ctypes.data, consts.ctypes.data)))
    seconds = time_interleaved(calls, screen_rounds=SCREEN_ROUNDS)
    timings = {json.dumps(sched): t for sched, t in zip(cands, seconds, strict=True)}
    return best_schedule(g, node, timings, balance_threads), timings


def ranked_schedules(
    g: Graph, node: Any, timings: dict[str, float], balance_threads: int = 1
) -> list[tuple[dict[str, int], float]]:
    """Every candidate (JSON key of ``timings``) with its score, least first: its time, a dense
    kernel's scaled by :func:`balance_factor` at ``balance_threads`` threads."""
    scores = dict(timings)
    if balance_threads > 1 and anchor_of(node).op == "dense":
        for key in scores:
            work = dense_tile_work(node, g, json.loads(key))
            scores[key] *= balance_factor(work, balance_threads)
    return [(dict(json.loads(k)), scores[k]) for k in sorted(scores, key=scores.__getitem__)]


def best_schedule(
    g: Graph, node: Any, timings: dict[str, float], balance_threads: int = 1
) -> dict[str, int]:
    """The candidate (JSON key of ``timings``) with the least time, a dense kernel's time
    scaled by :func:`balance_factor` at ``balance_threads`` threads."""
    return ranked_schedules(g, node, timings, balance_threads)[0][0]


def near_ties(ranked: Sequence[tuple[dict[str, int], float]]) -> list[dict[str, int]]:
    """The candidates of ``ranked`` (:func:`ranked_schedules`) whose score is within
    :data:`TIE_MARGIN` of the fastest, at most :data:`MAX_TIES`, fastest first."""
    limit = ranked[0][1] * (1 + TIE_MARGIN)
    return [sched for sched, score in ranked[:MAX_TIES] if score <= limit]


@dataclass
class Contest:
    """A tuned kernel signature whose near-tied candidates are not yet settled in the graph:
    ``ties`` (fastest alone first), the fastest one's time alone, and the nodes that share it."""

    ties: list[dict[str, int]]
    seconds: float
    nodes: list[str] = field(default_factory=list)


def _tuning_db(cache: Any) -> tuple[Path, dict[str, Any]]:
    db_path = cache_dir(cache) / "tuning.json"
    try:
        db = json.loads(db_path.read_text()) if db_path.exists() else {}
    except (OSError, json.JSONDecodeError):
        db = {}
    return db_path, db


def _write_db(db_path: Path, db: dict[str, Any]) -> None:
    tmp = db_path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(db))
    tmp.replace(db_path)


def record_settled(cache: Any, picks: dict[str, dict[str, int]], settled_as: str) -> None:
    """Store the candidates the whole graph chose (:func:`provenml.compiler.api.settle_ties`)
    for kernel signatures (keys of the tuning cache) under ``settled_as`` (runtime and thread
    count): :func:`tune` then gives them to every build with that signature, as it gives the
    fastest-alone candidate to the rest."""
    db_path, db = _tuning_db(cache)
    for key, sched in picks.items():
        if key in db:
            db[key].setdefault("settled", {})[settled_as] = dict(sched)
    _write_db(db_path, db)


def tune(
    g: Graph,
    layout: bool = True,
    threads: int = 2,
    cache: Any = None,
    log: list[str] | None = None,
    weight_prefetch: bool = False,
    balance_threads: int = 1,
    settled_as: str | None = None,
    overrides: dict[str, dict[str, int]] | None = None,
    contests: dict[str, Contest] | None = None,
    progress: BuildProgress = SILENT,
) -> Graph:
    """Attach a tuned ``schedule`` to every matmul-like node (cached by kernel signature);
    ``weight_prefetch`` and ``balance_threads`` as in :func:`tune_node`; ``progress`` counts
    the kernels tuned (:class:`~provenml.compiler.progress.BuildProgress`).

    A signature's schedule is, first found: ``overrides[key]``; the candidate the whole graph
    chose for it under ``settled_as`` (:func:`record_settled`); the fastest alone. Signatures
    not yet settled under ``settled_as`` are added to ``contests`` (when given), keyed by
    signature, with their near-tied candidates (:func:`near_ties`; one when none ties)."""
    out = g.clone()
    db_path, db = _tuning_db(cache)
    changed = False
    keys = {
        n.name: _signature(out, n, layout, threads)
        + (":prefetch" if weight_prefetch else "")
        + (f":balance{balance_threads}" if balance_threads > 1 else "")
        for n in out.nodes
        if _tunable(out, n, layout)
    }
    untuned: dict[str, Any] = {}  # signature -> the first node with it (the one tuned)
    for n in out.nodes:
        if n.name in keys and keys[n.name] not in db:
            untuned.setdefault(keys[n.name], n)
    if untuned:
        progress.phase(f"building the tile candidates of {len(untuned)} kernels (gcc)")
    prebuilt = prebuild_candidates(out, list(untuned.values()), layout, weight_prefetch, cache)
    if untuned:
        progress.phase("timing the tile candidates", total=len(untuned))
    for n in out.nodes:
        if n.name not in keys:
            continue
        key = keys[n.name]
        if key not in db:
            lowered = (prebuilt or {}).get(n.name)
            best, timings = tune_node(
                out,
                n,
                layout,
                threads,
                cache,
                weight_prefetch,
                balance_threads,
                **({"programs": lowered} if lowered is not None else {}),
            )
            ranked = ranked_schedules(out, n, timings, balance_threads)
            db[key] = {"best": best, "ties": near_ties(ranked), "seconds": ranked[0][1]}
            changed = True
            progress.advance()
            if log is not None:
                fastest, slowest = min(timings.values()), max(timings.values())
                log.append(
                    f"{n.name}: {best} {fastest * 1e6:.1f} us (slowest candidate "
                    f"{slowest * 1e6:.1f} us, {len(timings)} tried, "
                    f"{len(db[key]['ties'])} within {TIE_MARGIN:.0%})"
                )
        entry = db[key]
        settled = entry.get("settled", {})
        if overrides and key in overrides:
            n.attrs["schedule"] = dict(overrides[key])
        elif settled_as is not None and settled_as in settled:
            n.attrs["schedule"] = dict(settled[settled_as])
        else:
            n.attrs["schedule"] = dict(entry["best"])
            if contests is not None and settled_as is not None:
                contest = contests.setdefault(key, Contest(entry["ties"], entry["seconds"]))
                contest.nodes.append(n.name)
    if changed:
        _write_db(db_path, db)
    return out


def _tunable(g: Graph, n: Any, layout: bool) -> bool:
    """Whether :func:`tune` gives ``n`` a tuned schedule: a matmul-like kernel (not a
    depthwise conv, nor a conv without the layout pass) whose dense or conv weight is a
    constant."""
    if n.op not in TUNABLE or (n.op == "conv2d" and (n.attrs.get("depthwise") or not layout)):
        return False
    return not (n.op in ("dense", "conv2d") and n.inputs[1] not in g.consts)


def default_schedules(g: Graph) -> Graph:
    """The untuned schedule on every matmul-like node (the tuning ablation)."""
    out = g.clone()
    for n in out.nodes:
        if n.op in TUNABLE:
            n.attrs["schedule"] = dict(DEFAULT_SCHEDULE)
    return out
