"""Three ways to cut the transformer block's two-thread time, each timed against the standard
build in one process (stop 38, docs/compiler.md): none helped, which is why none is built.

* ``head-major``: the QKV product's output columns placed head by head (``[q_h k_h v_h]``
  per head, ``reshape(b, s, h, 3, d)``), emulated exactly at the model level (the QKV weight
  rows permuted): each thread's attention heads then read only the columns it wrote.
* ``chunks``: each parallel stage cut into ``4, 8, 16 x threads`` chunks (the default is 4):
  finer claiming to even out the threads' shares. The standard build's planned graph is
  lowered again with each count.
* ``prefetch`` (stop 39): every dense row tile software-prefetching its share of the next
  weight panel (``weight_prefetch=True``, the default until stop 39) against no software
  prefetch, the same planned graph lowered both ways, at 1 and 2 threads, on ``--cases``
  (default ``transformer:1,mlp_wide:1,transformer_long:1``).
* ``balance`` (stop 39): the tuner's tile choice scaled by how evenly a dense kernel's tiles
  split over the two pool threads (``tune.balance_factor``, the default since stop 39)
  against the choice by one-thread time alone, re-made from the same tuning run's timings
  (so tuning noise does not differ between the two), both built for 2 threads; prints the
  dense schedules that differ.
* ``alone`` (stop 39): what the pool's fallback path costs against the one-thread path on
  ``mlp:1``: the same build called at 1 thread (``pm_pool_run`` returns at once) and at 2
  threads with every verdict forced lost (the caller alone under the call lock, the
  fallback's counters kept, one probe of 4 team calls per 1,028 calls once the back-off has
  reached its cap), interleaved rounds of ``--alone-calls`` calls, CPU-time free of eager.
* ``hugepages`` (stop 40): the constants and the arena on 2 MiB transparent huge pages
  (``huge_pages=True``, the default since stop 40) against numpy's 4 KiB pages, the same
  build's library with two sets of blocks, at 2 threads, on ``--cases``; prints how much of
  the process's anonymous memory the kernel backed with huge pages.
* ``recip`` (stop 66): the compiler's ``-mno-recip -fno-reciprocal-math`` (exact division and
  square roots) against the shared flags' approximate reciprocals, the same lowered source
  built both ways, at 1 and 2 threads, on ``--cases``.
* ``nan`` (stop 67): the NaN-propagating ``pm_maxf`` / ``pm_minf`` (ReLU, clamps, maximum,
  amax) and max pooling's NaN flags against ``pm_maxf`` / ``pm_minf`` without the NaN tests
  (``a > b ? a : b``, what the kernels computed before) and the flags never set, the same
  lowered source built both ways, at 1 and 2 threads, on ``--cases``; ``stem:1`` is
  ResNet-18's stem (7x7 convolution, ReLU, 3x3 max pool) at 224.
* ``finite`` (stop 68): the compiler's ``-fno-finite-math-only`` (infinities and NaN through
  arithmetic as eager) against the same lowered source built with finite-math, at 1 and 2
  threads, on ``--cases``.
* ``tiles`` (stop 69): permutes and layout transforms that change the innermost dim as tiled
  transposes against the plain copy in output order, the same planned graph lowered both
  ways, at 1 and 2 threads, on ``--cases`` (``video:1``: a C3D-style clip classifier).
* ``rowpools`` (stop 69): pools whose input is in rows kept in rows against every pool
  channels-last between two layout transforms, each compiled, at 2 threads, on ``--cases``.
* ``pinning``: the caller on CPU 0 and every other thread of the process (the pool's worker)
  on CPU 1 (``os.sched_setaffinity``), against no affinity; per-stage work from
  ``profile()``, with the one-thread build's as the reference.

    .venv/bin/python benchmarks/bench_compiler_levers.py [--check head-major,chunks,pinning]
    .venv/bin/python benchmarks/bench_compiler_levers.py --check prefetch [--cases transformer:1]
    .venv/bin/python benchmarks/bench_compiler_levers.py --check hugepages --cases transformer:1
    .venv/bin/python benchmarks/bench_compiler_levers.py --check recip --cases transformer:1,mlp:1
    .venv/bin/python benchmarks/bench_compiler_levers.py --check nan --cases mlp:1,resnet:1,stem:1
    .venv/bin/python benchmarks/bench_compiler_levers.py --check finite \
        --cases transformer:1,mlp:1,resnet:1,stem:1
    .venv/bin/python benchmarks/bench_compiler_levers.py --check tiles,rowpools \
        --cases video:1,resnet:1,stem:1

Latency: median of ``--rounds`` interleaved rounds with eager PyTorch (2 threads) in the same
rounds as the anchor; ratios are medians of the per-round ratios. Quote the load average
printed at the end.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

import provenml.compiler.tune as pc_tune
from provenml.compiler import compile as pm_compile
from provenml.compiler.build import FLAGS, SHARED_FLAGS, build
from provenml.compiler.codegen import lower
from provenml.compiler.codegen.kernels import movement
from provenml.compiler.experiments import interleaved_samples
from provenml.compiler.models import TransformerBlock, build_model
from provenml.compiler.passes import layout as layout_pass
from provenml.compiler.passes.fusion import anchor_of
from provenml.compiler.runtime import CompiledGraph


class HeadMajorBlock(torch.nn.Module):
    """``TransformerBlock`` with the QKV output columns in head-major order: the same maths
    (the weight rows permuted, the reshape changed to match)."""

    def __init__(self, base: TransformerBlock) -> None:
        super().__init__()
        self.base = copy.deepcopy(base)
        d = base.qkv.in_features
        h, dh = base.heads, d // base.heads
        perm = [w * d + head * dh + j for head in range(h) for w in range(3) for j in range(dh)]
        with torch.no_grad():
            self.base.qkv.weight.copy_(base.qkv.weight[perm])
            self.base.qkv.bias.copy_(base.qkv.bias[perm])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.base
        b, s, d = x.shape
        h = m.heads
        qkv = m.qkv(m.ln1(x)).reshape(b, s, h, 3, d // h).permute(3, 0, 2, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(q @ k.transpose(-2, -1) * (1.0 / math.sqrt(d // h)), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, s, d)
        x = x + m.proj(y)
        return x + m.fc2(F.gelu(m.fc1(m.ln2(x))))


def timed(
    arms: dict[str, Any], model: torch.nn.Module, x: torch.Tensor, rounds: int
) -> dict[str, list[float]]:
    """Interleaved latency of ``arms`` (callables of x) with eager as the anchor; the first
    arm is the reference of the last column. Returns the samples by arm (seconds)."""
    calls = {"eager (anchor)": lambda: model(x)}
    calls.update({k: (lambda f=f: f(x)) for k, f in arms.items()})
    torch.set_num_threads(2)
    with torch.no_grad():
        samples = interleaved_samples(calls, rounds, 0.02)
    eager = np.array(samples["eager (anchor)"])
    ref = np.array(samples[next(iter(arms))])
    print(f"{'arm':28s} {'median us':>10s} {'/ eager':>8s} {'/ first arm':>12s}")
    for key, vals in samples.items():
        arr = np.array(vals)
        print(
            f"{key:28s} {np.median(arr) * 1e6:10.1f} {np.median(arr / eager):8.3f}"
            f" {np.median(arr / ref):12.3f}"
        )
    return samples


class Stem(torch.nn.Module):
    """ResNet-18's stem: 7x7 stride-2 convolution to 64 channels, ReLU, 3x3 stride-2 max
    pool (the ``nan`` check's pooling case)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 64, 7, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.conv(x)), 3, 2, 1)


class Video(torch.nn.Module):
    """A C3D-style clip classifier (stop 69's ``tiles`` / ``rowpools`` case): three blocks of
    3x3x3 Conv3d, BatchNorm3d, ReLU and a 2x2x2 max pool, a global mean, a linear head;
    ``video:1`` is one 16-frame 112x112 clip."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        for cin, cout in ((3, 16), (16, 32), (32, 64)):
            layers += [
                torch.nn.Conv3d(cin, cout, 3, padding=1, bias=False),
                torch.nn.BatchNorm3d(cout),
                torch.nn.ReLU(),
                torch.nn.MaxPool3d(2),
            ]
        self.features = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3, 4)))


def case_model(case: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """``case`` (``name:batch``): ``stem``, ``video`` or a :func:`build_model` name."""
    name, _, batch = case.partition(":")
    if name == "stem":
        return Stem().eval(), torch.randn(int(batch or 1), 3, 224, 224)
    if name == "video":
        torch.manual_seed(0)
        return Video().eval(), torch.randn(int(batch or 1), 3, 16, 112, 112)
    return build_model(name, int(batch or 1))


def planned(case: str) -> tuple[torch.nn.Module, torch.Tensor, Any]:
    """``case`` (``name:batch``) built, compiled for 2 threads, and its planned graph."""
    model, x = case_model(case)
    build_ = pm_compile(model, (x,), threads=2, tune_threads=False)
    return model, x, build_.graph.graph


def prefetch(args: argparse.Namespace) -> None:
    """The weight-panel prefetch on and off, one planned graph lowered both ways, at 1 and 2
    threads, interleaved with eager (2 threads) as the anchor."""
    for case in args.cases.split(","):
        model, x, final = planned(case)
        arms: dict[str, Any] = {}
        for threads in (1, 2):
            for on in (False, True):
                program = lower(final, runtime="pool", chunks=4 * threads, weight_prefetch=on)
                path, _ = build(program.source)
                arms[f"{threads}T prefetch {'on' if on else 'off'}"] = CompiledGraph(
                    final, program, path, threads
                )
        with torch.no_grad():
            err = max(float((f(x)[0] - model(x)).abs().max()) for f in arms.values())
        print(f"\n== weight-panel prefetch, {case} (max abs difference to eager {err:.1e})")
        samples = timed(arms, model, x, args.rounds)
        for threads in (1, 2):
            paired_ratio(samples, f"{threads}T prefetch off", f"{threads}T prefetch on")


def paired_ratio(samples: dict[str, list[float]], first: str, second: str) -> None:
    """Prints the per-round ratio ``first / second``: its median, its 10-90% range over the
    rounds and in how many rounds ``first`` was faster."""
    ratio = np.array(samples[first]) / np.array(samples[second])
    lo, hi = np.quantile(ratio, [0.1, 0.9])
    print(
        f"{first} / {second}: median {np.median(ratio):.3f} (10-90% of rounds {lo:.3f}-"
        f"{hi:.3f}), the first faster in {int((ratio < 1).sum())} of {len(ratio)}"
    )


#: builds of one lowered source: (label, C source, gcc flags), from the compiler's source
Variants = Callable[[str], list[tuple[str, str, tuple[str, ...]]]]


def compare_builds(
    args: argparse.Namespace,
    title: str,
    variants: Variants,
    pairs: list[tuple[str, str]],
    describe: Callable[[str], str] = lambda source: "",
) -> None:
    """For each of ``--cases``: one planned graph lowered once per thread count, built as
    ``variants`` says, every build at 1 and 2 threads timed in interleaved rounds with eager
    (2 threads) as the anchor; prints each build's largest difference to eager (and
    ``describe(source)``) and the paired ratio of each ``(first, second)`` label pair."""
    for case in args.cases.split(","):
        model, x, final = planned(case)
        arms: dict[str, Any] = {}
        for threads in (1, 2):
            program = lower(final, runtime="pool", chunks=4 * threads)
            for label, source, flags in variants(program.source):
                path, _ = build(source, flags)
                arms[f"{threads}T {label}"] = CompiledGraph(final, program, path, threads)
        with torch.no_grad():
            err = {k: float((f(x)[0] - model(x)).abs().max()) for k, f in arms.items()}
        print(
            f"\n== {title}, {case} ({describe(program.source)}max abs difference to eager: {err})"
        )
        samples = timed(arms, model, x, args.rounds)
        for threads in (1, 2):
            for first, second in pairs:
                paired_ratio(samples, f"{threads}T {first}", f"{threads}T {second}")


def recip(args: argparse.Namespace) -> None:
    """The compiler's exact division (stop 66: ``-mno-recip -fno-reciprocal-math``, IEEE's
    infinities and zeros) against the shared flags' approximate reciprocals plus a Newton
    step, the same lowered source built both ways (:func:`compare_builds`)."""

    def variants(source: str) -> list[tuple[str, str, tuple[str, ...]]]:
        return [("exact", source, FLAGS), ("approximate", source, SHARED_FLAGS)]

    compare_builds(args, "exact division", variants, [("exact", "approximate")])


# the bodies of the NaN-propagating max / min (stop 68: one NaN test, IEEE comparisons), the
# same without the NaN tests, and stop 67's (both operands tested, for finite-math builds)
NAN_AWARE = {
    name: f"return pm_isnan(b) ? b : (b {op} a ? b : a);"
    for name, op in (("pm_maxf", ">"), ("pm_minf", "<"))
}
STOP67_MAX_MIN = {
    name: f"return pm_isnan(a) ? pm_as_nan(a) : (pm_isnan(b) ? pm_as_nan(b) : (a {op} b ? a : b));"
    for name, op in (("pm_maxf", ">"), ("pm_minf", "<"))
}
NAN_BLIND = {"pm_maxf": "return a > b ? a : b;", "pm_minf": "return a < b ? a : b;"}
# max pooling's NaN flag (stop 67: a plain maximum plus a flag tested at the end)
POOL_NAN_FLAG = r"seen(\[ch\])? \|= pm_isnan\(v_\);"


def max_min_as(source: str, bodies: dict[str, str]) -> str:
    """``source`` with ``pm_maxf`` / ``pm_minf``'s bodies (:data:`NAN_AWARE`) replaced."""
    for function, body in NAN_AWARE.items():
        assert source.count(body) == 1, f"{function}'s body not found in the source"
        source = source.replace(body, bodies[function])
    return source


def finite(args: argparse.Namespace) -> None:
    """The compiler's flags (stop 68: ``-fno-finite-math-only``, infinities and NaN kept
    through arithmetic) against the same source built with finite-math (gcc may assume no
    infinity or NaN), and against stop 67's state (its two-test ``pm_maxf`` / ``pm_minf``,
    finite-math) (:func:`compare_builds`)."""
    finite_math = tuple(f for f in FLAGS if f != "-fno-finite-math-only")

    def variants(source: str) -> list[tuple[str, str, tuple[str, ...]]]:
        return [
            ("infinities", source, FLAGS),
            ("finite-math", source, finite_math),
            ("stop 67", max_min_as(source, STOP67_MAX_MIN), finite_math),
        ]

    pairs = [("infinities", "finite-math"), ("infinities", "stop 67")]
    compare_builds(args, "infinities kept", variants, pairs)


class Permute(torch.nn.Module):
    def __init__(self, perm: tuple[int, ...]) -> None:
        super().__init__()
        self.perm = perm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.perm).contiguous()


#: (shape, perm) of the ``tiles`` check's single permutes: the layout transforms of the video
#: and ResNet cases, an RGB input, a matrix transpose, a sequence's (0, 2, 1)
PERMUTES = [
    ((16, 112, 112, 16), (0, 3, 1, 2)),
    ((8, 56, 56, 32), (0, 3, 1, 2)),
    ((4, 28, 28, 64), (0, 3, 1, 2)),
    ((1, 3, 224, 224), (0, 2, 3, 1)),
    ((16, 9, 112, 112), (0, 2, 3, 1)),
    ((8, 48, 56, 56), (0, 2, 3, 1)),
    ((1, 64, 56, 56), (0, 2, 3, 1)),
    ((512, 512), (1, 0)),
    ((1, 64, 3136), (0, 2, 1)),
]


def tiles(args: argparse.Namespace) -> None:
    """Permutes that change the innermost dim as tiled transposes (stop 69,
    ``movement.tiled_transpose``) against the plain copy in output order (before): first each
    of :data:`PERMUTES` alone, one thread, both ways, with which one ``movement.tiles_pay``
    picks; then each of ``--cases``, one planned graph lowered both ways, at 1 and 2 threads
    (the layout transforms and permutes are the only kernels that differ)."""
    forced = {"tiled": (1, 0, 1 << 30), "plain copy": (1 << 62, 0, 0)}
    print("\n== single permutes, one thread: tiled / plain copy (median of per-round ratios)")
    for shape, perm in PERMUTES:
        x, model = torch.randn(*shape), Permute(perm).eval()
        builds: dict[str, Any] = {}
        for label, (start, lines, short) in forced.items():
            saved = (movement.TILED_FROM, movement.REUSED_LINES, movement.SHORT_ROWS)
            movement.TILED_FROM, movement.REUSED_LINES, movement.SHORT_ROWS = start, lines, short
            try:
                builds[label] = pm_compile(model, (x,), threads=1, tune_threads=False, tuning=False)
            finally:
                movement.TILED_FROM, movement.REUSED_LINES, movement.SHORT_ROWS = saved
        calls = {k: (lambda f=f, x=x: f(x)) for k, f in builds.items()}
        samples = interleaved_samples(calls, args.rounds * 3, 0.02)
        ratio = np.array(samples["tiled"]) / np.array(samples["plain copy"])
        pick = "tiled" if movement.tiles_pay(tuple(shape[p] for p in perm), perm) else "plain"
        print(
            f"{shape!s:20s} {perm!s:14s} plain {np.median(samples['plain copy']) * 1e6:8.1f}"
            f" us, tiled / plain {np.median(ratio):.2f} (10-90% {np.quantile(ratio, 0.1):.2f}-"
            f"{np.quantile(ratio, 0.9):.2f}); tiles_pay picks {pick}"
        )
    for case in args.cases.split(","):
        model, x, final = planned(case)
        arms: dict[str, Any] = {}
        for threads in (1, 2):
            for label, start in (("tiled", movement.TILED_FROM), ("plain copy", 1 << 62)):
                saved, movement.TILED_FROM = movement.TILED_FROM, start
                try:
                    program = lower(final, runtime="pool", chunks=4 * threads)
                finally:
                    movement.TILED_FROM = saved
                path, _ = build(program.source)
                arms[f"{threads}T {label}"] = CompiledGraph(final, program, path, threads)
                if label == "tiled":
                    count = program.source.count("for (long b = b0; b < b1; ++b)")
        with torch.no_grad():
            err = {k: float((f(x)[0] - model(x)).abs().max()) for k, f in arms.items()}
        print(f"\n== tiled transposes, {case} ({count} tiled kernels; max abs difference {err})")
        samples = timed(arms, model, x, args.rounds)
        for threads in (1, 2):
            paired_ratio(samples, f"{threads}T tiled", f"{threads}T plain copy")


def rowpools(args: argparse.Namespace) -> None:
    """Pools on row-layout inputs kept in rows (stop 69, ``layout._stays_in_rows``) against
    every pool channels-last with layout transforms around it (before), each graph compiled
    for 2 threads (the graphs differ, so each arm is its own compile), timed at 2 threads."""
    for case in args.cases.split(","):
        model, x = case_model(case)
        model.eval()
        arms: dict[str, Any] = {}
        for label, keep in (("row pools", layout_pass._stays_in_rows), ("NHWC pools", None)):
            saved = layout_pass._stays_in_rows
            layout_pass._stays_in_rows = keep or (lambda n, v: False)
            try:
                arms[label] = pm_compile(model, (x,), threads=2, tune_threads=False)
            finally:
                layout_pass._stays_in_rows = saved
        with torch.no_grad():
            err = {k: float((f(x) - model(x)).abs().max()) for k, f in arms.items()}
        counts = {
            k: sum(n.op == "layout_transform" for n in f.graph.graph.nodes) for k, f in arms.items()
        }
        print(f"\n== pools in rows, {case} (layout transforms {counts}; max abs difference {err})")
        samples = timed(arms, model, x, args.rounds)
        paired_ratio(samples, "row pools", "NHWC pools")


def nan(args: argparse.Namespace) -> None:
    """ReLU, the clamps, maximum, max pooling and amax with their NaN tests (stop 67) against
    the same source with ``pm_maxf`` / ``pm_minf`` reduced to ``a > b ? a : b`` and max
    pooling's NaN flags never set (:func:`compare_builds`)."""

    def variants(source: str) -> list[tuple[str, str, tuple[str, ...]]]:
        blind = re.sub(POOL_NAN_FLAG, "", max_min_as(source, NAN_BLIND))
        return [("NaN-aware", source, FLAGS), ("NaN-blind", blind, FLAGS)]

    def describe(source: str) -> str:
        uses = source.count("pm_maxf(") + source.count("pm_minf(") - 2
        flags = len(re.findall(POOL_NAN_FLAG, source))
        return f"{uses} uses of pm_maxf / pm_minf, {flags} max-pool NaN flags; "

    compare_builds(args, "NaN tests", variants, [("NaN-aware", "NaN-blind")], describe)


def hugepages(args: argparse.Namespace) -> None:
    """The constants and arena on huge pages and on numpy's pages: one build, a second
    ``CompiledGraph`` of its library with ``huge_pages=False``, interleaved with eager."""
    for case in args.cases.split(","):
        name, _, batch = case.partition(":")
        model, x = build_model(name, int(batch or 1))
        build_ = pm_compile(model, (x,), threads=2, tune_threads=False)
        g = build_.graph
        arms: dict[str, Any] = {
            "4 KiB pages": CompiledGraph(g.graph, g.program, g.library, 2, huge_pages=False),
            "huge pages": CompiledGraph(g.graph, g.program, g.library, 2, huge_pages=True),
        }
        with torch.no_grad():
            err = max(float((f(x)[0] - model(x)).abs().max()) for f in arms.values())
        huge_kib = 0
        with open("/proc/self/smaps_rollup") as smaps:
            for line in smaps:
                if line.startswith("AnonHugePages:"):
                    huge_kib = int(line.split()[1])
        print(
            f"\n== huge pages, {case} (max abs difference to eager {err:.1e}; constants "
            f"{g.consts.nbytes / 2**20:.2f} MiB, arena {g.arena.nbytes / 2**20:.2f} MiB; "
            f"AnonHugePages of this process {huge_kib} KiB)"
        )
        samples = timed(arms, model, x, args.rounds)
        ratio = np.array(samples["huge pages"]) / np.array(samples["4 KiB pages"])
        lo, hi = np.quantile(ratio, [0.1, 0.9])
        p = float(stats.ttest_1samp(np.log(ratio), 0.0).pvalue)
        print(
            f"huge / 4 KiB: median {np.median(ratio):.3f} (10-90% of rounds {lo:.3f}-{hi:.3f}), "
            f"huge faster in {int((ratio < 1).sum())} of {len(ratio)}, paired t-test p {p:.3g}"
        )


def balance(model: torch.nn.Module, x: torch.Tensor, rounds: int) -> None:
    """Tile choice with and without the tuner's two-thread balance factor, from the same
    timings: the model is tuned once (a fresh tuning cache) with every candidate's time
    recorded, then built again with each dense kernel's choice re-made from those times by
    one-thread time alone, so only the balance factor differs between the two builds."""
    timings: dict[str, dict[str, float]] = {}
    original = pc_tune.tune_node

    def recording(g: Any, node: Any, *a: Any, **k: Any) -> Any:
        best, times = original(g, node, *a, **k)
        timings[node.name] = times
        return best, times

    def replaying(g: Any, node: Any, *a: Any, **k: Any) -> Any:
        times = timings[node.name]
        return pc_tune.best_schedule(g, node, times, 1), times

    builds = {}
    for key, tune_node in (("balanced (default)", recording), ("one-thread time alone", replaying)):
        pc_tune.tune_node = tune_node
        try:
            with tempfile.TemporaryDirectory() as cache:
                # no settling in the graph (stop 46): it would re-make both builds' choices
                builds[key] = pm_compile(
                    model, (x,), threads=2, tune_threads=False, cache_dir=cache, settle_ties=False
                )
        finally:
            pc_tune.tune_node = original

    def schedules(build_: Any) -> dict[str, Any]:
        anchors = {n.name: anchor_of(n) for n in build_.graph.graph.nodes}
        return {k: a.attrs["schedule"] for k, a in anchors.items() if a.op == "dense"}

    mine, theirs = (
        schedules(builds["balanced (default)"]),
        schedules(builds["one-thread time alone"]),
    )
    differ = {k: (theirs[k], mine[k]) for k in mine if mine[k] != theirs[k]}
    print("\n== tile choice (one tuning run): one-thread time alone -> with the balance factor")
    for node, (old, new) in differ.items():
        print(f"{node}: {old} -> {new}")
    if not differ:
        print("the same dense schedules (the fastest one-thread tiles split evenly)")
    timed(builds, model, x, rounds)


def alone_path(args: argparse.Namespace) -> None:
    """``mlp:1`` at one thread against the fallback's alone path at two threads."""
    model, x = build_model("mlp", 1)
    built = pm_compile(model, (x,), threads=2, tune_threads=False)
    g = built.graph
    g.set_threads(2)
    g.lib.pm_debug_force_verdict(1)  # every verdict lost: the back-off doubles to its cap
    try:
        for _ in range(4000):
            built(x)

        def block(threads: int) -> float:
            g.set_threads(threads)
            start = time.perf_counter()
            for _ in range(args.alone_calls):
                built(x)
            return (time.perf_counter() - start) / args.alone_calls

        before = g.pool_stats()
        one, alone = [], []
        for _ in range(args.rounds):
            one.append(block(1))
            alone.append(block(2))
        after = g.pool_stats()
    finally:
        g.lib.pm_debug_force_verdict(0)
        g.set_threads(2)
    assert before is not None and after is not None
    ratio = np.array(alone) / np.array(one)
    p = float(stats.ttest_1samp(np.log(ratio), 0.0).pvalue)
    team = after["team"] - before["team"]
    solo = after["alone"] - before["alone"]
    print(f"\n== the fallback's alone path against one thread, mlp:1, {args.rounds} rounds")
    print(
        f"one thread {np.median(one) * 1e9:.0f} ns a call, alone at 2 threads "
        f"{np.median(alone) * 1e9:.0f} ns; alone / one median {np.median(ratio):.4f} "
        f"(10-90% {np.quantile(ratio, 0.1):.4f}-{np.quantile(ratio, 0.9):.4f}, two-sided "
        f"paired t-test p {p:.3g}); the 2-thread calls: {solo} alone, {team} team (probes)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", default="head-major,chunks,pinning")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--profile-calls", type=int, default=400)
    parser.add_argument("--alone-calls", type=int, default=2000, help="per sample, for alone")
    parser.add_argument(
        "--cases", default="transformer:1,mlp_wide:1,transformer_long:1", help="for prefetch"
    )
    args = parser.parse_args()
    print("load average at the start", tuple(round(v, 2) for v in os.getloadavg()))
    model, x = build_model("transformer", 1)
    model.eval()
    checks = args.check.split(",")
    if {"head-major", "chunks", "pinning"} & set(checks):
        standard = pm_compile(model, (x,), threads=2, tune_threads=False)
    if "head-major" in checks:
        head_major = HeadMajorBlock(model).eval()
        other = pm_compile(head_major, (x,), threads=2, tune_threads=False)
        with torch.no_grad():
            err = float((other(x) - model(x)).abs().max())
        print(f"== head-major QKV columns (max abs difference to eager {err:.1e})")
        timed({"standard": standard, "head-major": other}, model, x, args.rounds)
        for key, build_ in (("standard", standard), ("head-major", other)):
            prof = build_.profile(x, calls=args.profile_calls)
            att = [s.work_us for s in prof.stages if "attention" in s.function]
            print(f"{key}: attention stage work {att[0]:.1f} us, all stages {prof.work_us:.1f}")
    if "chunks" in checks:
        final = standard.graph.graph
        arms: dict[str, Any] = {}
        for per_thread in (4, 8, 16):
            program = lower(final, runtime="pool", chunks=per_thread * 2)
            path, _ = build(program.source)
            arms[f"{per_thread} x threads chunks"] = CompiledGraph(final, program, path, 2)
        print("\n== chunks per parallel stage")
        timed(arms, model, x, args.rounds)
    if "hugepages" in checks:
        hugepages(args)
    if "prefetch" in checks:
        prefetch(args)
    if "recip" in checks:
        recip(args)
    if "nan" in checks:
        nan(args)
    if "finite" in checks:
        finite(args)
    if "tiles" in checks:
        tiles(args)
    if "rowpools" in checks:
        rowpools(args)
    if "balance" in checks:
        balance(model, x, args.rounds)
    if "alone" in checks:
        alone_path(args)
    if "pinning" in checks:
        graph = standard.graph
        graph.set_adaptive(False)  # every call by the team, as profiled
        for _ in range(50):
            standard(x)
        me = threading.get_native_id()
        tids = [int(t) for t in os.listdir("/proc/self/task")]
        print("\n== threads pinned to cores (work per stage, us; median of the profiled calls)")

        def show(tag: str) -> None:
            prof = standard.profile(x, calls=args.profile_calls)
            cells = " ".join(f"{s.function.split('_')[2]} {s.work_us:.1f}" for s in prof.stages)
            print(f"{tag:8s} work {prof.work_us:6.1f} call {prof.call_us:6.1f}: {cells}")

        for _ in range(2):
            for t in tids:
                os.sched_setaffinity(t, {0, 1})
            show("free")
            for t in tids:
                os.sched_setaffinity(t, {0} if t == me else {1})
            show("pinned")
        for t in tids:
            os.sched_setaffinity(t, {0, 1})
        graph.set_threads(1)
        show("1 thread")
        graph.set_adaptive(True)
    print("load average", tuple(round(v, 2) for v in os.getloadavg()))


if __name__ == "__main__":
    main()
