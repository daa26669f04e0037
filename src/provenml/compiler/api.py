"""``compile(model, example_inputs)`` and the ``torch.compile`` backend."""

from __future__ import annotations

import inspect
import operator
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.nn as nn
import torch.utils._pytree as pytree

from provenml.compiler import passes as P
from provenml.compiler.build import build, build_many
from provenml.compiler.codegen import RUNTIMES, Program, annotate_scratch, lower
from provenml.compiler.frontend import UnsupportedOp, trace
from provenml.compiler.frontend.torch_aten import graph_copy
from provenml.compiler.frontend.torch_fx import is_exported_module, target_name
from provenml.compiler.frontend.torch_inputs import (
    InputStructure,
    dump_treespec,
    is_flat,
    load_treespec,
    positional_names,
    structured_call,
)
from provenml.compiler.frontend.torch_keywords import keyword_call, order_inputs
from provenml.compiler.frontend.torch_state import check_stateless, clones, state_fingerprint
from provenml.compiler.ir import Graph, merge_outputs
from provenml.compiler.per_shape import (
    MAX_SPECIALISATIONS,
    CompiledPerShape,
    input_signature,
    watch_reloads,
)
from provenml.compiler.progress import SILENT, BuildProgress
from provenml.compiler.runtime import CompiledGraph, Profile
from provenml.compiler.tune import (
    Contest,
    default_schedules,
    record_settled,
    time_interleaved,
    tune,
)
from provenml.errors import ProvenmlError


@dataclass
class CompileOptions:
    """Which optimizations run. Each flag switches one of the survey's optimizations."""

    fusion: bool = True
    memory_planning: bool = True
    layout: bool = True
    tuning: bool = True
    threads: int = 2
    tune_threads: bool = True  # pick 1..threads by timing the whole graph on the examples
    cache_dir: str | None = None
    parallel_work: int | None = None  # kernels with fewer operations run on one thread
    # "pool" (default): persistent workers that claim chunks and wait on completion counters,
    # so a thread that loses its core delays only its chunk (issue 23, item 1); "openmp": one
    # parallel region per call with barriers (docs/compiler.md, "Threads": measured against
    # each other idle and under a background load)
    runtime: str = "pool"
    # pool runtime only: run a call on the caller alone while the thread team is measured to
    # lose against one thread (a worker sharing a busy core), probing the team again after a
    # back-off that doubles (docs/compiler.md, "The worker-pool runtime"); never changes results
    adaptive: bool = True
    # each row tile of a dense kernel software-prefetches its share of the next weight panel;
    # it helped on the AMD EPYC of earlier rounds (2-8%, docs/compiler_history.md) and slows
    # every dense-heavy model on the AVX-512 Xeon (3-10%, docs/compiler_history.md, *Stop 39*)
    weight_prefetch: bool = False
    # the constants and the arena on 2 MiB transparent huge pages where they are 256 KiB or
    # more (Linux, madvise; runtime.block_zeros); never changes results
    huge_pages: bool = True
    # time the tuner's near-tied candidates (within tune.TIE_MARGIN of each other alone) inside
    # the whole graph at the build's thread count and keep the fastest there (settle_ties):
    # choices that tie alone moved whole models by up to 17% (docs/compiler_history.md, *Stop 46*)
    settle_ties: bool = True
    # a transient line on standard error with the build's phase (tuning, settling ties, gcc,
    # the thread choice), its count and the time elapsed: None shows it when standard error
    # is a terminal (provenml.compiler.progress)
    progress: bool | None = None

    def __post_init__(self) -> None:
        flags = ("fusion", "memory_planning", "layout", "tuning", "tune_threads", "adaptive")
        for flag in (*flags, "weight_prefetch", "huge_pages", "settle_ties"):
            if not isinstance(getattr(self, flag), bool):
                raise ProvenmlError(f"compile option {flag}= must be True or False")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ProvenmlError(
                f"compile option threads= must be an integer >= 1, got {self.threads!r}"
            )
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ProvenmlError("compile option progress= must be True, False or None")
        if self.runtime not in RUNTIMES:
            raise ProvenmlError(f"compile option runtime= must be one of {RUNTIMES}")
        if self.parallel_work is not None and (
            isinstance(self.parallel_work, bool)
            or not isinstance(self.parallel_work, int)
            or self.parallel_work < 0
        ):
            raise ProvenmlError(
                f"compile option parallel_work= must be an integer >= 0, got {self.parallel_work!r}"
            )

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> CompileOptions:
        """Options from keyword arguments; an unknown name is a clear error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ProvenmlError(f"unknown compile option(s) {unknown}; options: {sorted(known)}")
        return cls(**options)


@dataclass(repr=False)
class Compiled:
    """A compiled model: call it like the model. ``stages`` holds the IR after every pass."""

    graph: CompiledGraph
    stages: list[tuple[str, Graph]]
    compile_seconds: float
    options: CompileOptions
    tuning_log: list[str] = field(default_factory=list)
    single_output: bool = True
    #: the model's output nesting (``torch.utils._pytree``'s spec of the eager output: a
    #: tensor, a tuple, a list, a dict, nested), rebuilt around the graph's flat outputs;
    #: None: a tensor (``single_output``) or a tuple of them
    output_structure: Any = None
    #: outputs that are Python values (``Graph.constant_outputs``, stop 70) by their place
    constant_outputs: dict[int, Any] = field(default_factory=dict)
    #: inputs compiled by keyword (``compile(example_kwargs=...)``), after the positional
    #: ones, of which there are ``positional_inputs``
    keyword_names: tuple[str, ...] = ()
    positional_inputs: int = 0
    #: inputs that are not one tensor each (nested lists and dicts of tensors, numbers,
    #: ``None``; stop 73): how a call's arguments flatten to the graph's tensor inputs
    input_structure: InputStructure | None = None
    #: set once the call-time warning about inputs that require grad was given
    warned_detached: bool = field(default=False, repr=False)
    #: set when the model it compiled from had weights loaded (``load_state_dict``) after
    #: it compiled; the next call warns once that it still computes with the old ones
    reloaded: bool = field(default=False, repr=False)
    #: whether the model needed TorchDynamo to trace (``torch.fx`` could not, or computed
    #: other values): ``compile(dynamic=True)`` then builds later shapes from one export
    #: with dynamic shapes instead of a trace each (stop 74)
    traced_by_dynamo: bool = field(default=False, repr=False)

    def __reduce__(self) -> tuple[Callable[..., Compiled], tuple[dict[str, Any]]]:
        """Pickling (``pickle``, ``copy.deepcopy``, Ray's object store, a process pool's
        arguments) keeps the optimized graph, its generated C and the choices measured at
        compile time (threads, the fallback's calibration); unpickling builds the C again
        (a cache hit where this machine built it before, else one gcc run), without tracing,
        tuning or timing: :func:`_restore_compiled`."""
        cg = self.graph
        state = {
            "stages": self.stages,
            "compile_seconds": self.compile_seconds,
            "options": self.options,
            "tuning_log": self.tuning_log,
            "single_output": self.single_output,
            "output_structure": dump_treespec(self.output_structure),
            "constant_outputs": self.constant_outputs,
            "keyword_names": self.keyword_names,
            "positional_inputs": self.positional_inputs,
            "input_structure": self.input_structure,
            "final": cg.graph,
            "program": cg.program,
            "threads": cg._guard[1] if cg._guard is not None else cg.threads,
            "guard_seconds": cg._guard[0] if cg._guard is not None else None,
            "adaptive": cg.adaptive,
            "fallback_scale": cg.fallback_scale,
            "recycle_outputs": cg.recycle_outputs,
        }
        return _restore_compiled, (state,)

    def _warn_detached(self, inputs: Sequence[Any]) -> None:
        """One warning: an input requires grad, but the compiled code computes no gradients
        (the result carries no ``grad_fn``; a loss built on it would silently not reach
        the model's inputs)."""
        if not torch.is_grad_enabled():
            return
        self.warned_detached = True
        first = next(k for k, x in enumerate(inputs) if getattr(x, "requires_grad", False))
        warnings.warn(
            f"provenml.compiler: input {first} requires grad, but the compiled model computes "
            "no gradients: its outputs are detached (it compiles for inference; run the eager "
            "model where gradients are needed, or call this one under torch.no_grad())",
            RuntimeWarning,
            stacklevel=3,
        )

    def _warn_reloaded(self) -> None:
        """One warning: weights were loaded into the model after it compiled (stop 73: the
        compiled model went on with the old ones without a word)."""
        self.reloaded = False
        warnings.warn(
            "provenml.compiler: the model's load_state_dict() ran after it compiled; this "
            "compiled model holds the weights it compiled with, not the loaded ones: compile "
            "again (pc.compile(..., dynamic=True) and the torch.compile backend follow reloads)",
            RuntimeWarning,
            stacklevel=3,
        )

    def __call__(self, *inputs: Any, **keywords: Any) -> Any:
        if self.input_structure is not None:
            inputs = self.input_structure.flatten(inputs, keywords)
        elif keywords:
            inputs = order_inputs(inputs, keywords, self.keyword_names, self.positional_inputs)
        if self.reloaded:
            self._warn_reloaded()
        if not self.warned_detached:
            for x in inputs:  # (a loop, not any(): 0.13 us a call against about 0.5)
                if getattr(x, "requires_grad", False):
                    self._warn_detached(inputs)
                    break
        outs = self.graph(*inputs)
        if self.constant_outputs:
            outs = merge_outputs(outs, self.constant_outputs)
        if self.output_structure is not None:
            return pytree.tree_unflatten(list(outs), self.output_structure)
        return outs[0] if self.single_output else tuple(outs)

    def profile(self, *inputs: torch.Tensor, calls: int = 100) -> Profile:
        """Per-stage timing of ``calls`` calls on ``inputs`` (worker-pool runtime): work,
        span and each thread's share per stage; ``print(compiled.profile(x).table())``."""
        return self.graph.profile(inputs, calls=calls)

    @property
    def source(self) -> str:
        """The generated C."""
        return self.graph.program.source

    def dump(self, stage: str | None = None) -> str:
        """The IR after ``stage`` (a pass name), or after every pass."""
        parts = [f"== after {name}\n{g}" for name, g in self.stages if stage in (None, name)]
        if not parts:
            raise ProvenmlError(f"no stage '{stage}'; stages: {[n for n, _ in self.stages]}")
        return "\n\n".join(parts)

    def loop_nests(self) -> str:
        """The loop-level IR of every kernel."""
        return "\n\n".join(f"-- {k}\n{v}" for k, v in self.graph.program.loop_nests.items())

    def __repr__(self) -> str:
        """One line (stop 72: the dataclass's own repr printed every stage's IR, weights and
        all: 99 KB for a two-layer MLP in a notebook cell)."""

        def typed(values: list[Any]) -> str:
            return ", ".join(f"{v.dtype}{list(v.shape)}" for v in values)

        g = self.graph
        keywords = f", keywords {list(self.keyword_names)}" if self.keyword_names else ""
        if self.input_structure is not None:
            keywords = f", called as {self.input_structure.description}"
        return (
            f"Compiled(inputs [{typed(g.in_types)}]{keywords} -> outputs "
            f"[{typed(g.out_types[: g._visible])}], {len(g.graph.nodes)} kernels, "
            f"threads={g.threads}, runtime={self.options.runtime!r}, compiled in "
            f"{self.compile_seconds:.2f} s; .dump() for the IR, .source for the C)"
        )

    def as_module(self) -> CompiledModule:
        """This compiled model as an ``nn.Module``, to stand in for the module it was
        compiled from inside a larger model (``model.encoder = fast.as_module()``; assigning
        the compiled model itself raises PyTorch's "cannot assign ... as child module").
        It holds no parameters: the weights are frozen inside the compiled code."""
        return CompiledModule(self)


class CompiledModule(nn.Module):
    """A :class:`Compiled` model as an ``nn.Module`` (:meth:`Compiled.as_module`; stop 72)."""

    def __init__(self, compiled: Compiled) -> None:
        super().__init__()
        self.compiled = compiled
        self.eval()  # (it computes for inference whatever the mode)

    def forward(self, *inputs: torch.Tensor, **keywords: torch.Tensor) -> Any:
        return self.compiled(*inputs, **keywords)

    def extra_repr(self) -> str:
        return repr(self.compiled)


def _restore_compiled(state: dict[str, Any]) -> Compiled:
    """A pickled :class:`Compiled` loaded again: its C built (or found in the build cache)
    and loaded, with the thread count and fallback settings it was pickled with."""
    options: CompileOptions = state["options"]
    program: Program = state["program"]
    path, _ = build(program.source, cache=options.cache_dir)
    cg = CompiledGraph(state["final"], program, path, options.threads, options.huge_pages)
    cg.set_adaptive(state["adaptive"])
    if state["fallback_scale"] is not None:
        cg.set_fallback_scale(state["fallback_scale"])
    if state["guard_seconds"] is not None:
        cg.guard_threads(state["threads"], state["guard_seconds"])
    else:
        cg.set_threads(state["threads"])
    cg.recycle_outputs = state["recycle_outputs"]
    return Compiled(
        cg,
        state["stages"],
        state["compile_seconds"],
        options,
        state["tuning_log"],
        state["single_output"],
        output_structure=load_treespec(state["output_structure"]),
        constant_outputs=state["constant_outputs"],
        keyword_names=state["keyword_names"],
        positional_inputs=state["positional_inputs"],
        input_structure=state.get("input_structure"),
    )


def optimize(
    g: Graph,
    options: CompileOptions,
    log: list[str] | None = None,
    overrides: dict[str, dict[str, int]] | None = None,
    contests: dict[str, Contest] | None = None,
    progress: BuildProgress = SILENT,
) -> list[tuple[str, Graph]]:
    """Run the pass pipeline; returns (pass name, IR after it) for every stage. ``overrides``,
    ``contests`` and ``progress`` go to :func:`~provenml.compiler.tune.tune` (see
    :func:`settle_ties`)."""
    stages: list[tuple[str, Graph]] = [("frontend", g)]

    def run(name: str, fn: Callable[[Graph], Graph]) -> None:
        stages.append((name, fn(stages[-1][1])))

    run("infer_shapes", P.infer_shapes)
    run("fold_constants", P.fold_constants)
    run("simplify", P.simplify)
    run("common_subexpressions", P.common_subexpressions)
    run("dead_code_elimination", P.dead_code_elimination)
    if options.tuning:
        run(
            "tune",
            lambda x: tune(
                x,
                options.layout,
                1,
                options.cache_dir,
                log,
                options.weight_prefetch,
                balance_threads=options.threads if options.runtime == "pool" else 1,
                settled_as=settled_as(options),
                overrides=overrides,
                contests=contests,
                progress=progress,
            ),
        )
    else:
        run("tune", default_schedules)
    if options.layout:
        run("transform_layout", P.transform_layout)
        run("simplify_layout", P.simplify)
    if options.fusion:
        run("fuse", P.fuse)
    run(
        "plan_memory",
        lambda x: P.plan_memory(
            annotate_scratch(x), reuse=options.memory_planning, parallel=options.threads > 1
        ),
    )
    return stages


def compile_graph(
    g: Graph,
    options: CompileOptions,
    single_output: bool = True,
    example_inputs: Sequence[torch.Tensor] | None = None,
) -> Compiled:
    """Optimize, lower, build (cached) and load an IR graph. With example inputs, the thread
    count (1..``options.threads``) is chosen by timing the whole graph (:func:`choose_threads`)
    and, if more than one, guarded at run time (``CompiledGraph.guard_threads``)."""
    t0 = time.perf_counter()
    with BuildProgress(options.progress) as progress:
        cg, stages, log = _build(g, options, example_inputs, progress)
    seconds = time.perf_counter() - t0
    return Compiled(
        cg, stages, seconds, options, log, single_output, constant_outputs=dict(g.constant_outputs)
    )


def _build(
    g: Graph,
    options: CompileOptions,
    example_inputs: Sequence[torch.Tensor] | None,
    progress: BuildProgress,
) -> tuple[CompiledGraph, list[tuple[str, Graph]], list[str]]:
    """:func:`compile_graph`'s work: (the loaded build, the stages, the tuning log)."""
    log: list[str] = []
    contests: dict[str, Contest] = {}
    progress.phase("optimizing the graph")
    stages = optimize(g, options, log, contests=contests, progress=progress)
    settle = contests and options.settle_ties and example_inputs is not None
    if settle and settle_ties(g, options, example_inputs, contests, log, progress=progress):
        stages = optimize(g, options)  # the settled picks, from the tuning cache
    final = stages[-1][1]
    progress.phase("building the model (gcc)")
    cg = _load(final, options)
    cg.set_adaptive(options.adaptive)
    if cg.is_pool and options.adaptive and options.threads > 1 and example_inputs is not None:
        scale = cg.calibrate_fallback(example_inputs)
        log.append(f"fallback: one-thread estimate scaled by {scale:.3f} (calibrated)")
    if options.tune_threads and options.threads > 1 and example_inputs is not None:
        progress.phase("choosing the thread count")
        adaptive = cg.is_pool and cg.adaptive
        best, samples = choose_threads(cg, example_inputs, options.threads, adaptive=adaptive)
        if adaptive:
            # the pool's adaptive fallback already runs a call alone whenever the team is
            # measured to lose; the stall guard on top judged single slow calls (a wake-up
            # after an idle gap, a page fault) as stalls on an idle machine and sent whole
            # builds to one thread for thousands of calls (docs/compiler_history.md, *Stop 36*)
            cg.set_threads(best)
        else:
            # more threads than one: guard them (a call slower than twice the one-thread
            # median means a stall; fall back to one thread for a while)
            cg.guard_threads(best, 2.0 * float(np.median(samples[1])))
        log.append(
            "threads (median / 80th percentile of "
            f"{len(samples[1])} interleaved rounds): "
            + ", ".join(
                f"{t}: {np.median(v) * 1e6:.1f} / {np.quantile(v, 0.8) * 1e6:.1f} us"
                for t, v in samples.items()
            )
            + f" -> {best}"
        )
    return cg, stages, log


def settled_as(options: CompileOptions) -> str:
    """The key under which the tuning cache keeps the picks settled in builds like these
    (runtime and thread count, e.g. ``pool2``)."""
    return f"{options.runtime}{options.threads}"


def _lower(final: Graph, options: CompileOptions) -> Program:
    """Lower an optimized graph to C for ``options``' runtime and thread count."""
    return lower(
        final,
        parallel_work=options.parallel_work,
        runtime=options.runtime,
        chunks=4 * options.threads,
        weight_prefetch=options.weight_prefetch,
    )


def _load(final: Graph, options: CompileOptions, program: Program | None = None) -> CompiledGraph:
    """Build (cached) and load an optimized graph (lowered here unless ``program`` is given)."""
    program = program or _lower(final, options)
    path, _ = build(program.source, cache=options.cache_dir)
    return CompiledGraph(final, program, path, options.threads, options.huge_pages)


# a kernel whose fastest candidate takes less than this share of the graph's tuned kernels'
# time alone is not settled in the graph (its choice cannot move the call by much)
SETTLE_MIN_SHARE = 0.05
SETTLE_ROUNDS = 15


def settle_ties(
    g: Graph,
    options: CompileOptions,
    inputs: Sequence[torch.Tensor],
    contests: dict[str, Contest],
    log: list[str] | None = None,
    rounds: int = SETTLE_ROUNDS,
    min_time: float = 0.01,
    progress: BuildProgress = SILENT,
) -> bool:
    """Settle the tuner's near ties in the graph they run in (auto-tuning with the whole
    program as the measure, survey Sec. 4.4.2); returns whether any pick moved.

    The tuner times each kernel's candidates alone, where the fastest few often lie within
    1-3% of each other; inside the graph, at the build's thread count, the same choices differ
    by more (the operands' cache state, the split over the pool's threads): a 56x56 ResNet
    stage ran 17% slower with the other of two candidates that tied alone (docs/compiler.md,
    *Stop 44*). Coordinate by coordinate, the costliest kernel first, every tied candidate of a
    signature is built into the whole graph (the other signatures at their picks so far) and
    the builds are timed in ``rounds`` interleaved rounds (:func:`~provenml.compiler.tune.
    time_interleaved`, every call run by the whole team: the adaptive fallback off; each
    build's workers parked after its sample, :meth:`~provenml.compiler.runtime.CompiledGraph.
    park_workers`); the fastest median is kept and recorded in the tuning cache under
    :func:`settled_as`, so later builds with that signature (the ablation builds, a rebuild)
    take it without timing.
    Signatures with no tie, or whose fastest candidate is under :data:`SETTLE_MIN_SHARE` of
    the contested kernels' summed time alone, are settled at their fastest-alone pick without
    timing."""
    total = sum(c.seconds * len(c.nodes) for c in contests.values())
    picks: dict[str, dict[str, int]] = {}
    builds: dict[str, CompiledGraph] = {}  # by generated source: a build is loaded once
    moved = False

    def timed(contest: Contest) -> bool:  # whether the contest is settled by timing
        share = contest.seconds * len(contest.nodes) / total
        return len(contest.ties) > 1 and share >= SETTLE_MIN_SHARE

    progress.phase(
        "settling near-tied tiles in the whole graph",
        total=sum(timed(c) for c in contests.values()),
    )
    for key in sorted(contests, key=lambda k: -contests[k].seconds * len(contests[k].nodes)):
        contest = contests[key]
        if not timed(contest):
            picks[key] = contest.ties[0]
            continue
        variants = []
        lowered = []
        for sched in contest.ties:
            final = optimize(g, options, overrides={**picks, key: sched})[-1][1]
            lowered.append((final, _lower(final, options)))
        # the tied builds' gcc runs at once (none is timed before all are built)
        build_many([program.source for _, program in lowered], cache=options.cache_dir)
        for final, program in lowered:
            if program.source not in builds:
                cg = _load(final, options, program)
                cg.set_adaptive(False)
                builds[program.source] = cg
            variants.append(builds[program.source])
        seconds = time_interleaved(
            [(cg, tuple(inputs)) for cg in variants],
            rounds=rounds,
            sample_time=min_time,
            after_sample=[cg.park_workers for cg in variants],
        )
        best = int(np.argmin(seconds))
        progress.advance()
        picks[key] = contest.ties[best]
        moved = moved or best != 0
        if log is not None:
            log.append(
                f"settled in the graph ({', '.join(contest.nodes)}): "
                + ", ".join(
                    f"{s['mr']}x{s['nr']} ku={s['ku']} vec={s.get('vec', 8)}: {t * 1e6:.1f} us"
                    for s, t in zip(contest.ties, seconds, strict=True)
                )
                + f" -> {picks[key]}"
            )
    record_settled(options.cache_dir, picks, settled_as(options))
    return moved


def choose_threads(
    cg: CompiledGraph,
    inputs: Sequence[torch.Tensor],
    max_threads: int,
    rounds: int = 9,
    min_time: float = 0.004,
    margin: float = 0.05,
    adaptive: bool = False,
) -> tuple[int, dict[int, list[float]]]:
    """Pick the thread count (1..``max_threads``) by timing the whole graph.

    Every round times each count once (one sample = the mean time of the calls made until
    ``min_time`` has passed), in an order that rotates from round to round, so load that
    drifts during the choice hits every count alike. A count beats the best smaller one only
    if its median is at least ``margin`` lower *and* its 80th percentile is not higher: on a
    shared machine extra threads can be fast in most samples and stall in the rest (a barrier
    waits for a thread that lost its core), and the tail guards against picking them then.

    ``adaptive`` (the worker pool with its fallback, which decides per call whether the team
    or the caller alone runs it): the most threads whose median is within ``margin`` of the
    fastest count's. A count is then dropped only when it is slower in most of the rounds; load
    that passes (the choice takes about 0.1 s of a build's lifetime) is the fallback's to
    handle, where the rule above would pin the build to fewer threads for good
    (docs/compiler_history.md, *Stop 50*).
    Returns the choice and the samples (seconds per call) of every count."""
    counts = list(range(1, max_threads + 1))
    for t in counts:  # warm up every count (thread pools, caches)
        cg.set_threads(t)
        for _ in range(3):
            cg(*inputs)
    samples: dict[int, list[float]] = {t: [] for t in counts}
    for r in range(rounds):
        for t in counts[r % len(counts) :] + counts[: r % len(counts)]:
            cg.set_threads(t)
            calls, start = 0, time.perf_counter()
            while True:  # calls until min_time has passed (a stalling count cannot run long)
                cg(*inputs)
                calls += 1
                elapsed = time.perf_counter() - start
                if elapsed >= min_time:
                    break
            samples[t].append(elapsed / calls)
    if adaptive:
        fastest = min(float(np.median(samples[t])) for t in counts)
        return max(t for t in counts if np.median(samples[t]) <= (1 + margin) * fastest), samples
    best = 1
    for t in counts[1:]:
        med, tail = np.median(samples[t]), np.quantile(samples[t], 0.8)
        if med < (1 - margin) * np.median(samples[best]) and tail <= np.quantile(
            samples[best], 0.8
        ):
            best = t
    return best, samples


def compile(
    model: nn.Module | torch.fx.GraphModule | torch.export.ExportedProgram,
    example_inputs: Sequence[torch.Tensor] = (),
    *,
    example_kwargs: dict[str, torch.Tensor] | None = None,
    dynamic: bool = False,
    max_shapes: int = MAX_SPECIALISATIONS,
    **options: Any,
) -> Compiled | CompiledPerShape:
    """Compile ``model`` for the shapes of ``example_inputs``; returns a callable.

    Options (see :class:`CompileOptions`): ``fusion``, ``memory_planning``, ``layout``,
    ``tuning``, ``threads``, ``cache_dir``. Raises :class:`ProvenmlError` naming the op and
    node for an unsupported op. ``example_kwargs`` are inputs the model takes by keyword
    (``model(input_ids=ids, attention_mask=mask)``); the compiled model takes them by the
    same keywords (:mod:`~provenml.compiler.frontend.torch_keywords`). A ``torch.export``
    program compiles from its ATen graph (:mod:`~provenml.compiler.frontend.torch_aten`).
    With ``dynamic=True`` the result compiles again, once, for each new input signature
    (:class:`~provenml.compiler.per_shape.CompiledPerShape`), up to ``max_shapes`` of them,
    after which new signatures run in PyTorch (one warning); else a call with other shapes
    is an error naming them. Inputs may be nested lists, tuples and dicts of tensors, and
    numbers or ``None`` (constants of the compiled code, checked on every call:
    :mod:`~provenml.compiler.frontend.torch_inputs`).
    """
    if dynamic:
        if isinstance(example_inputs, (torch.Tensor, np.ndarray)):
            example_inputs = (example_inputs,)
        first = compile(model, example_inputs, example_kwargs=example_kwargs, **options)
        assert isinstance(first, Compiled)
        return CompiledPerShape(
            model,
            options,
            first,
            tuple(example_inputs),
            example_kwargs,
            max_shapes,
        )
    if max_shapes != MAX_SPECIALISATIONS:
        raise ProvenmlError("compile(max_shapes=...) applies with dynamic=True")
    if isinstance(example_inputs, (torch.Tensor, np.ndarray)):
        example_inputs = (example_inputs,)
    # (stop 72) NumPy arrays as tensors, as compile_onnx and the compiled model take them
    example_inputs = tuple(
        torch.from_numpy(x) if isinstance(x, np.ndarray) else x for x in example_inputs
    )
    if isinstance(model, (torch.jit.ScriptModule, torch._C.ScriptModule)):
        raise ProvenmlError(
            "provenml.compiler: a TorchScript module (torch.jit.script / torch.jit.trace) has "
            "no Python forward to trace: compile the nn.Module it was made from, or export it "
            "with torch.onnx.export(module, args, path, dynamo=False) and compile that file "
            "with compile_onnx(path, args)"
        )
    user_model = model
    if isinstance(model, torch.export.ExportedProgram):  # (stop 72: its ATen graph)
        from provenml.compiler.frontend.torch_fx import exported_module

        model = exported_module(model)
    if is_exported_module(model) and model.training:
        # (stop 74) a program's ``.module()``: its layers' modes are fixed in its graph, its
        # ``training`` flag means nothing and ``.eval()`` is refused; unset, so that the
        # wrappers for keyword or nested inputs, which copy it, are not taken for training
        model.training = False
    opts = CompileOptions.from_kwargs(options)
    keywords = dict(example_kwargs or {})
    call_structure = None
    if isinstance(model, nn.Module) and not is_flat(example_inputs, keywords):
        # (stop 73) lists / dicts of tensors, numbers, None: the tensors become the inputs
        model, call_structure, example_inputs = structured_call(model, example_inputs, keywords)
        keywords = {}
    elif not keywords and _takes_more(model, len(example_inputs)):
        # (stop 73) forward(x, mask=None) given x: the model called with x alone, so that
        # mask keeps its default while tracing (fx made it a placeholder, never None)
        given = len(example_inputs)
        model = keyword_call(model, given, [], positional_names(model, given))
    if not all(isinstance(x, torch.Tensor) for x in (*example_inputs, *keywords.values())):
        raise ProvenmlError(
            "compile(model, example_inputs, example_kwargs=...): the example inputs must be tensors"
        )
    if not example_inputs and not keywords:
        raise ProvenmlError("compile(model, example_inputs): no example inputs given")
    _refuse_float_dtypes(model, (*example_inputs, *keywords.values()))
    if isinstance(model, nn.Module) and model.training and not is_exported_module(model):
        raise ProvenmlError("provenml.compiler compiles for inference: call model.eval() first")
    if keywords:
        if not isinstance(model, nn.Module):
            raise ProvenmlError("compile(example_kwargs=...) takes an nn.Module")
        positional = len(example_inputs)
        model = keyword_call(model, positional, list(keywords))
        example_inputs = (*example_inputs, *keywords.values())
    before = state_fingerprint(model)

    def eager() -> Any:
        with torch.no_grad():
            return model(*clones(example_inputs))

    try:
        out = eager()
    except Exception as exc:  # e.g. a matmul on an int64 input: eager raises, so do we
        said = str(exc).splitlines()[0] if str(exc) else ""
        exported = isinstance(user_model, torch.export.ExportedProgram) or is_exported_module(
            user_model
        )
        if exported and "guard" in said.lower():
            # (stop 74) the program's shape guards: "fails in eager PyTorch" misled
            raise ProvenmlError(
                f"provenml.compiler: the exported program does not take inputs of these "
                f"shapes ({', '.join(str(tuple(x.shape)) for x in example_inputs)}; "
                f"torch.export's check: {said.removeprefix('Guard failed: ')}): export it "
                "with dynamic_shapes= for the dims that vary (a dim the export saw as 1, or "
                "that the model's code fixes, stays fixed), or compile it at the shapes it "
                "was exported for"
            ) from exc
        raise ProvenmlError(
            f"provenml.compiler: the model fails in eager PyTorch on the example inputs "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    check_stateless(model, eager, before, out)  # stop 70: refused where state changes results
    single = isinstance(out, torch.Tensor)
    leaves, structure = pytree.tree_flatten(out)
    from provenml.compiler.frontend.torch_fx import DYNAMO_TRACED

    g = trace(model, example_inputs)
    compiled = compile_graph(g, opts, single_output=single, example_inputs=example_inputs)
    compiled.traced_by_dynamo = isinstance(model, nn.Module) and model in DYNAMO_TRACED
    tensors = len(g.outputs) - len(g.value_guards)  # (the guards' outputs are not the model's)
    if len(leaves) == tensors + len(g.constant_outputs) and not single:
        compiled.output_structure = structure
    if keywords:
        compiled.keyword_names = tuple(keywords)
        compiled.positional_inputs = positional
    compiled.input_structure = call_structure
    watch_reloads(user_model, compiled, _mark_reloaded)
    return compiled


def _mark_reloaded(compiled: Compiled) -> None:
    compiled.reloaded = True


def _refuse_float_dtypes(model: Any, inputs: Sequence[torch.Tensor]) -> None:
    """One error for floating inputs other than float32 (stop 73: a ``model.half()`` /
    ``.bfloat16()`` / ``.double()`` model was refused as "unsupported op 'input dtype
    torch.bfloat16' at node 'input_1'", naming no way round)."""
    other = [
        (k, x.dtype)
        for k, x in enumerate(inputs)
        if x.is_floating_point() and x.dtype != torch.float32
    ]
    if not other:
        return
    k, dtype = other[0]
    params = sorted(
        {str(p.dtype) for p in model.parameters() if p.is_floating_point()}
        if isinstance(model, nn.Module)
        else set()
    )
    held = f" (the model's parameters are {', '.join(params)})" if params else ""
    raise ProvenmlError(
        f"provenml.compiler compiles in float32: input {k} is {dtype}{held}; compile "
        "model.float() with float32 inputs (its results are then float32's, not the "
        f"{dtype} ones eager computes)"
    )


def _takes_more(model: Any, given: int) -> bool:
    """Whether ``model`` is a module (not a graph) whose ``forward`` has parameters after the
    ``given`` positional ones (with defaults: a call without them is the model's own)."""
    if not isinstance(model, nn.Module) or isinstance(model, torch.fx.GraphModule):
        return False
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind == p.VAR_POSITIONAL for p in params[:given]):
        return False
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        for p in params[given:]
    )


def compile_onnx(
    model: str | os.PathLike[str] | bytes | Any,
    example_inputs: Sequence[Any] | None = None,
    *,
    input_shapes: dict[str, Sequence[int]] | None = None,
    dynamic: bool = False,
    max_shapes: int = MAX_SPECIALISATIONS,
    **options: Any,
) -> Compiled | CompiledPerShape:
    """Compile an ONNX model (a path, the file's bytes or an ``onnx.ModelProto``) through the
    ONNX frontend (:mod:`provenml.compiler.frontend.onnx`) into the same IR and pipeline as
    :func:`compile`. ``example_inputs`` (tensors or arrays, in the graph's input order) fix
    symbolic dims and are used to choose the thread count; without them every input dim must
    be static or given in ``input_shapes`` (by input name). Returns a callable taking tensors
    (or NumPy arrays) of those shapes; with ``dynamic=True`` (and example inputs) one that
    compiles again for each new input signature, up to ``max_shapes``, after which new
    signatures run in ONNX Runtime (one warning; stop 73: the shape error suggested
    ``dynamic=True``, which ``compile_onnx`` did not take)."""
    from provenml.compiler.frontend.onnx import load_model, onnx_input_names, onnx_to_graph

    CompileOptions.from_kwargs(options)
    proto = load_model(model)
    if dynamic:
        if example_inputs is None:
            raise ProvenmlError("compile_onnx(dynamic=True) needs example_inputs")
        if isinstance(example_inputs, (torch.Tensor, np.ndarray)):
            example_inputs = (example_inputs,)
        example = tuple(
            torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
            for x in example_inputs
        )
        first = compile_onnx(proto, example, input_shapes=input_shapes, **options)
        assert isinstance(first, Compiled)
        return CompiledPerShape(
            proto,
            options,
            first,
            example,
            None,
            max_shapes,
            build=_OnnxBuild(proto, options),
            fallback=_onnx_runtime_fallback(proto, first.single_output),
        )
    if max_shapes != MAX_SPECIALISATIONS:
        raise ProvenmlError("compile_onnx(max_shapes=...) applies with dynamic=True")
    opts = CompileOptions.from_kwargs(options)
    names = onnx_input_names(proto)
    shapes = {k: tuple(int(s) for s in v) for k, v in (input_shapes or {}).items()}
    tensors: list[torch.Tensor] | None = None
    if example_inputs is not None:
        if isinstance(example_inputs, (torch.Tensor, np.ndarray)):
            example_inputs = (example_inputs,)
        if len(example_inputs) != len(names):
            raise ProvenmlError(
                f"compile_onnx: the model takes {len(names)} inputs {names}, "
                f"got {len(example_inputs)} example inputs"
            )
        tensors = [
            torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
            for x in example_inputs
        ]
        shapes.update({n: tuple(t.shape) for n, t in zip(names, tensors, strict=True)})
    unknown = sorted(set(shapes) - set(names))
    if unknown:
        raise ProvenmlError(f"compile_onnx: input_shapes names {unknown}, inputs are {names}")
    example = (
        {n: t.detach().cpu().numpy() for n, t in zip(names, tensors, strict=True)}
        if tensors is not None
        else None
    )
    g = onnx_to_graph(proto, shapes, example)
    if tensors is None:  # thread choice on zero inputs of the right shapes
        tensors = [
            torch.zeros(
                g.values[i].shape,
                dtype=torch.int64 if g.values[i].dtype == "int64" else torch.float32,
            )
            for i in g.inputs
        ]
    single = len(g.outputs) - len(g.value_guards) == 1  # (the guards' are not the model's)
    return compile_graph(g, opts, single_output=single, example_inputs=tensors)


class _OnnxBuild:
    """``compile_onnx`` of one ONNX model for a new signature's inputs (a class, not a closure,
    so that a ``compile_onnx(..., dynamic=True)`` model pickles)."""

    def __init__(self, proto: Any, options: dict[str, Any]) -> None:
        self.proto, self.options = proto, dict(options)

    def __call__(self, *inputs: Any) -> Compiled:
        built = compile_onnx(self.proto, inputs, **self.options)
        assert isinstance(built, Compiled)
        return built


class _OnnxRuntimeRun:
    """An ONNX model run by ONNX Runtime, the session made on first use and not pickled."""

    def __init__(self, proto: Any, single_output: bool) -> None:
        self.proto, self.single_output = proto, single_output
        self.session: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "session": None}

    def __call__(self, *inputs: Any) -> Any:
        import onnxruntime

        if self.session is None:
            self.session = onnxruntime.InferenceSession(
                self.proto.SerializeToString(), providers=["CPUExecutionProvider"]
            )
        names = [i.name for i in self.session.get_inputs()]
        feed = {
            n: (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x))
            for n, x in zip(names, inputs, strict=True)
        }
        outs = [torch.from_numpy(np.asarray(o)) for o in self.session.run(None, feed)]
        return outs[0] if self.single_output else tuple(outs)


def _onnx_runtime_fallback(proto: Any, single_output: bool) -> _OnnxRuntimeRun | None:
    """What runs an ONNX model's signatures past ``max_shapes``: ONNX Runtime on the same
    model (None where it is not installed: then every signature compiles)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    return _OnnxRuntimeRun(proto, single_output)


# ------------------------------------------------------------------------------------------------
# torch.compile backend with fallback
# ------------------------------------------------------------------------------------------------
def _supported(gm: torch.fx.GraphModule, node: torch.fx.Node, example: dict[str, Any]) -> bool:
    """Whether the frontend can convert this node on its own (tried on a one-node graph)."""
    if node.op in ("placeholder", "output", "get_attr"):
        return True
    g = torch.fx.Graph()
    env: dict[torch.fx.Node, torch.fx.Node] = {}
    args = []
    for inp in node.all_input_nodes:
        p = g.placeholder(inp.name)
        env[inp] = p
        args.append(example.get(inp.name))
    if any(a is None for a in args):
        return False
    new = g.node_copy(node, lambda n: env[n])
    g.output(new)
    sub = torch.fx.GraphModule(gm, g)
    try:
        trace(sub, args, freeze_params=False)
    except Exception:
        return False
    return True


def backend(
    gm: torch.fx.GraphModule, example_inputs: Sequence[Any], **options: Any
) -> Callable[..., Any]:
    """A ``torch.compile`` backend: ``torch.compile(model, backend=provenml.compiler.backend)``.

    Supported parts of the graph are compiled (parameters and buffers that dynamo lifts to
    inputs are frozen as constants, once per set of them: :class:`_PerWeights`; it compiles
    for inference); unsupported ops stay in PyTorch:
    the graph is partitioned and only the supported partitions are replaced by compiled code.
    When dynamo hands over a graph with symbolic sizes (it does after a call with a new batch
    size), the returned function compiles one specialisation per concrete input shape, on its
    first call with that shape. A graph of which nothing can be compiled runs in PyTorch, with
    one warning naming its unsupported ops. So does, with one warning, a graph that needs
    gradients (grad mode on and an input or parameter that requires grad): the compiled code
    has no backward, and TorchDynamo keeps that graph apart from the one it traces under
    ``torch.no_grad()``, which is compiled.

    By name (the ``torch_dynamo_backends`` entry point, no import needed):
    ``torch.compile(model, backend="provenml", options={"threads": 1})``; ``options`` holds
    :class:`CompileOptions` fields, and ``mode`` is accepted as PyTorch's modes are named
    (:data:`TORCH_COMPILE_MODES`; they change nothing here: the compiler always tunes, and has
    no graph-capture overhead to reduce).
    """
    options = _torch_compile_options(options)
    opts = {"threads": _env_threads(), **options}
    CompileOptions.from_kwargs(opts)  # refuse bad options now, not at the first call
    if torch.is_grad_enabled() and any(
        isinstance(x, torch.Tensor) and x.requires_grad for x in example_inputs
    ):
        # TorchDynamo guards its graphs on grad mode: this graph is the one for calls that
        # build an autograd graph (training, or inference without torch.no_grad()); the
        # compiled kernels have no backward, so PyTorch runs it (stop 72: its outputs were
        # detached, and a model trained through the backend silently got no gradients)
        _warn_needs_gradients()
        return gm.forward
    if any(_is_symbolic(x) for x in example_inputs):
        return _Specialising(gm, opts)
    return _compile_static(gm, example_inputs, opts)


#: ``torch.compile``'s ``mode`` names, accepted by :func:`backend` and ignored
TORCH_COMPILE_MODES = (
    "default",
    "reduce-overhead",
    "max-autotune",
    "max-autotune-no-cudagraphs",
)


def _torch_compile_options(options: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments ``torch.compile(..., backend="provenml", mode=..., options=...)``
    passes to :func:`backend` as compile options: ``options``' entries, ``mode`` checked."""
    options = dict(options)
    mode = options.pop("mode", None)
    if mode is not None and mode not in TORCH_COMPILE_MODES:
        raise ProvenmlError(
            f"provenml.compiler.backend: unknown torch.compile mode {mode!r}; modes: "
            f"{list(TORCH_COMPILE_MODES)} (none changes what it compiles: pass options=, "
            "e.g. options={'tuning': False, 'threads': 1})"
        )
    nested = options.pop("options", None) or {}
    if not isinstance(nested, dict):
        raise ProvenmlError(f"torch.compile options= must be a dict, got {type(nested).__name__}")
    both = sorted(set(nested) & set(options))
    if both:
        raise ProvenmlError(f"compile option(s) {both} given twice")
    return {**options, **nested}


def _env_threads() -> int:
    raw = os.environ.get("PROVENML_THREADS", "2")
    try:
        return int(raw)
    except ValueError as exc:
        raise ProvenmlError(f"PROVENML_THREADS must be an integer >= 1, got {raw!r}") from exc


def _is_symbolic(x: Any) -> bool:
    """A size or a tensor whose shape dynamo left symbolic."""
    if isinstance(x, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        return True
    return isinstance(x, torch.Tensor) and any(isinstance(d, torch.SymInt) for d in x.shape)


class _Specialising:
    """Compiles ``gm`` once per concrete input signature (shapes, dtypes, size values) on its
    first call with it: the compiled kernels have static shapes. After
    :data:`MAX_SPECIALISATIONS` signatures a new one runs in PyTorch (one warning)."""

    def __init__(self, gm: torch.fx.GraphModule, opts: dict[str, Any]) -> None:
        self.gm = gm
        self.opts = opts
        self.compiled: dict[tuple[Any, ...], Callable[..., Any]] = {}
        self.warned = False

    def __call__(self, *args: Any) -> Any:
        key = input_signature(args)
        fn = self.compiled.get(key)
        if fn is None:
            if len(self.compiled) >= MAX_SPECIALISATIONS:
                self.warned = self.warned or _warn_too_many("input shapes", args)
                return self.gm.forward(*args)
            fn = self.compiled[key] = _compile_static(self.gm, args, self.opts)
        return fn(*args)


def _warn_too_many(what: str, args: Sequence[Any]) -> bool:
    """The one warning of a specialising graph that stopped compiling; returns True."""
    shapes = ", ".join(
        str(list(x.shape)) if isinstance(x, torch.Tensor) else repr(x)
        for x in args
        if not isinstance(x, nn.Parameter) and (not isinstance(x, torch.Tensor) or x.dim())
    )
    warnings.warn(
        f"provenml.compiler.backend: a graph met more than {MAX_SPECIALISATIONS} {what} "
        f"(now {shapes}); the compiled code has static shapes, so it compiled once per "
        "signature: new ones run in PyTorch from here on (pad inputs to a few fixed shapes "
        "to keep them compiled)",
        RuntimeWarning,
        stacklevel=3,
    )
    return True


def _scalar_places(gm: torch.fx.GraphModule, example_inputs: Sequence[Any]) -> list[int]:
    """The graph's inputs that the compiled code is specialised to by value: Python numbers
    (a size TorchDynamo left symbolic arrives as an int) and 0-d tensors read only through
    ``.item()`` (a float attribute of a module, ``eps`` or a dropout ``p``, that TorchDynamo
    lifts to a float64 input under ``dynamic=True``)."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    places = []
    for k, (node, x) in enumerate(zip(placeholders, example_inputs, strict=False)):
        number = isinstance(x, (bool, int, float, torch.SymInt, torch.SymFloat, torch.SymBool))
        if number or (
            isinstance(x, torch.Tensor)
            and not isinstance(x, nn.Parameter)
            and x.dim() == 0
            and node.users
            and all(u.op == "call_method" and u.target == "item" for u in node.users)
        ):
            places.append(k)
    return places


def _scalar_values(args: Sequence[Any], places: Sequence[int]) -> tuple[Any, ...]:
    return tuple(args[k].item() if isinstance(args[k], torch.Tensor) else args[k] for k in places)


def _with_scalars(
    gm: torch.fx.GraphModule, places: Sequence[int], values: Sequence[Any]
) -> torch.fx.GraphModule:
    """A copy of ``gm`` whose inputs at ``places`` are the constants ``values`` (their
    ``.item()`` reads too): the sizes and masks built from them fold at compile time."""
    graph = graph_copy(gm.graph)
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]

    def substitute(node: torch.fx.Node, value: Any) -> None:
        for user in list(node.users):
            user.args = torch.fx.node.map_arg(user.args, lambda a: value if a is node else a)
            user.kwargs = torch.fx.node.map_arg(user.kwargs, lambda a: value if a is node else a)

    for k, value in zip(places, values, strict=True):
        node = placeholders[k]
        for user in list(node.users):
            if user.op == "call_method" and user.target == "item":
                substitute(user, value)
                graph.erase_node(user)
        substitute(node, value)
        graph.erase_node(node)
    return torch.fx.GraphModule(gm, graph)


class _PerScalars:
    """``gm`` compiled once per value of its scalar inputs (:func:`_scalar_places`), as
    constants: under ``torch.compile(..., dynamic=True)`` TorchDynamo passes the sequence
    length as an int and the modules' float attributes as 0-d float64 tensors, and the
    attention masks a model builds from the length (``arange``, comparisons, ``&``) were left
    to PyTorch with the whole graph (stop 73: nothing of a GPT-2 compiled)."""

    def __init__(
        self, gm: torch.fx.GraphModule, opts: dict[str, Any], places: list[int], nargs: int
    ) -> None:
        self.gm, self.opts, self.places = gm, opts, places
        kept = [k for k in range(nargs) if k not in set(places)]
        self.pick = operator.itemgetter(*kept, kept[0]) if kept else None
        self.compiled: dict[tuple[Any, ...], Callable[..., Any]] = {}
        self.warned = False

    def __call__(self, *args: Any) -> Any:
        values = _scalar_values(args, self.places)
        fn = self.compiled.get(values)
        if fn is None:
            if len(self.compiled) >= MAX_SPECIALISATIONS:
                self.warned = self.warned or _warn_too_many("values of its scalar inputs", args)
                return self.gm.forward(*args)
            rest = self._rest(args)
            fn = self.compiled[values] = _compile_static(
                _with_scalars(self.gm, self.places, values), rest, self.opts
            )
        return fn(*self._rest(args))

    def _rest(self, args: Sequence[Any]) -> list[Any]:
        return [] if self.pick is None else list(self.pick(args)[:-1])


def _compile_static(
    gm: torch.fx.GraphModule, example_inputs: Sequence[Any], opts: dict[str, Any]
) -> Callable[..., Any]:
    """The whole graph compiled for the example inputs' shapes, else its supported parts;
    specialised to the parameters and buffers dynamo lifted to inputs (:class:`_PerWeights`)."""
    from provenml.compiler.frontend.torch_fx import _frozen_placeholders

    places = _scalar_places(gm, example_inputs)
    if places:
        specialised = _PerScalars(gm, opts, places, len(example_inputs))
        specialised(*example_inputs)  # (compiled now, as a static graph is)
        return specialised
    frozen = _frozen_placeholders(gm, example_inputs)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    weights = [
        k
        for k, (node, x) in enumerate(zip(placeholders, example_inputs, strict=False))
        if node.name in frozen and isinstance(x, torch.Tensor)
    ]
    first = _compile_for_weights(gm, example_inputs, opts)
    return _PerWeights(gm, opts, weights, example_inputs, first) if weights else first


class _PerWeights:
    """A graph compiled with the parameters and buffers dynamo lifted to inputs frozen into it,
    once per set of them (their tensors' addresses and version counters).

    TorchDynamo reuses one graph for every module whose code it is (since PyTorch inlines
    ``nn.Module`` calls, the weights are inputs, not guards): two ``GCNConv`` layers in a
    model ran the first one's compiled graph, with the first one's frozen weights, for both
    (stop 71: silently wrong through ``torch.compile(backend=...)``). An in-place change of
    a weight (``optimizer.step()``) bumps its version counter and compiles again; at most
    :attr:`KEEP` sets are kept, the oldest dropped, with one warning: the backend compiles
    for inference."""

    KEEP = 8

    def __init__(
        self,
        gm: torch.fx.GraphModule,
        opts: dict[str, Any],
        weights: list[int],
        example_inputs: Sequence[Any],
        first: Callable[..., Any],
    ) -> None:
        self.gm, self.opts, self.weights = gm, opts, weights
        # (one C call picks the weights out of the arguments: the key is read on every call,
        # about 0.3 us per weight with the lookup; docs/compiler.md, "Stop 71")
        self.pick = operator.itemgetter(*weights, weights[0])  # a tuple even for one weight
        self.compiled: dict[Any, Callable[..., Any]] = {self.key(example_inputs): first}
        self.warned = False

    def key(self, args: Sequence[Any]) -> Any:
        picked = self.pick(args)
        return tuple(map(torch.Tensor.data_ptr, picked)), tuple([t._version for t in picked])

    def __call__(self, *args: Any) -> Any:
        key = self.key(args)
        fn = self.compiled.get(key)
        if fn is None:
            if len(self.compiled) >= self.KEEP:
                del self.compiled[next(iter(self.compiled))]
                if not self.warned:
                    self.warned = True
                    warnings.warn(
                        "provenml.compiler.backend: the weights of one graph changed more than "
                        f"{self.KEEP} times (training?); each change compiles it again, as it "
                        "freezes them (it compiles for inference)",
                        RuntimeWarning,
                        stacklevel=2,
                    )
            fn = self.compiled[key] = _compile_for_weights(self.gm, args, self.opts)
        return fn(*args)


def _compile_for_weights(
    gm: torch.fx.GraphModule, example_inputs: Sequence[Any], opts: dict[str, Any]
) -> Callable[..., Any]:
    """:func:`_compile_static` for the example inputs' weights."""
    try:
        g = trace(gm, example_inputs, freeze_params=True)
    except UnsupportedOp:
        return _partitioned(gm, example_inputs, opts)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    idx = [k for k, n in enumerate(placeholders) if n.name in g.inputs]
    compiled = compile_graph(
        g,
        CompileOptions(**opts),
        single_output=False,
        example_inputs=[example_inputs[k] for k in idx],
    )

    def run(*args: Any) -> tuple[Any, ...]:
        outs = compiled.graph(*[args[k] for k in idx])
        return tuple(merge_outputs(outs, compiled.constant_outputs))

    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    if isinstance(out_node.args[0], (tuple, list)):
        return run
    return lambda *args: run(*args)[0]


_WARNED: set[frozenset[str]] = set()
_WARNED_GRADIENTS: list[bool] = []


def _warn_needs_gradients() -> None:
    """One warning per process: a graph that needs gradients runs in PyTorch."""
    if _WARNED_GRADIENTS:
        return
    _WARNED_GRADIENTS.append(True)
    warnings.warn(
        "provenml.compiler.backend compiles for inference: a graph called with grad mode on "
        "and inputs or parameters that require grad runs in PyTorch, so that autograd sees "
        "it (call the model under torch.no_grad() or torch.inference_mode() to run compiled "
        "code)",
        RuntimeWarning,
        stacklevel=3,
    )


def _warn_left_to_pytorch(ops: list[str]) -> None:
    """One warning per set of unsupported ops: nothing of the graph was compiled."""
    key = frozenset(ops)
    if key in _WARNED:
        return
    _WARNED.add(key)
    warnings.warn(
        "provenml.compiler.backend compiled nothing in this graph; it runs in PyTorch "
        f"(unsupported: {', '.join(sorted(key)) or 'no compilable partition'})",
        RuntimeWarning,
        stacklevel=3,
    )


def _partitioned(
    gm: torch.fx.GraphModule, example_inputs: Sequence[Any], opts: dict[str, Any]
) -> Callable[..., Any]:
    """Fallback: compile the maximal supported partitions, run the rest with PyTorch."""
    from torch.fx.passes.utils.fuser_utils import fuse_by_partitions

    # a graph module of its own: fuse_by_partitions rewrites the one it is given, and
    # _Specialising partitions the same ``gm`` again for every new input shape (stop 66: the
    # third shape found the second's compiled partitions in it)
    gm = torch.fx.GraphModule(gm, graph_copy(gm.graph))

    rec: dict[str, Any] = {}

    class Rec(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> Any:
            out = super().run_node(n)
            rec[n.name] = out
            return out

    with torch.no_grad():
        Rec(gm).run(*example_inputs)
    # (stop 74) views of tensors changed in place, and the changes of such views, stay in
    # PyTorch, where they share memory (``t *= 2`` on a tensor made an in-place call first)
    from provenml.compiler.frontend.torch_fx import changed_views
    from provenml.compiler.frontend.torch_setitem import in_place_augmented

    gm = in_place_augmented(gm, rec)
    pinned = changed_views(gm)

    # maximal runs of supported nodes, consecutive in topological order (so no cycles)
    runs: list[list[torch.fx.Node]] = [[]]
    unsupported: list[str] = []
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "get_attr", "output"):
            continue
        ok = (
            node.op in ("call_function", "call_method")
            and isinstance(rec.get(node.name), torch.Tensor)
            and node.name not in pinned
        )
        if ok and _supported(gm, node, rec):
            runs[-1].append(node)
        else:
            if isinstance(rec.get(node.name), torch.Tensor) and node.name not in pinned:
                unsupported.append(target_name(node, gm))
            if runs[-1]:
                runs.append([])
    partitions = [dict.fromkeys(r) for r in runs if r]
    if not partitions:
        if unsupported:
            _warn_left_to_pytorch(unsupported)
        # else no tensor is computed (stop 73: under dynamic=True TorchDynamo hands over
        # graphs that return a size alone, ``(30,)``): nothing to compile, nothing to say
        return gm.forward
    fused = fuse_by_partitions(gm, partitions)
    compiled_any = False
    failures: list[str] = []
    for node in list(fused.graph.nodes):
        if node.op == "call_module" and str(node.target).startswith("fused_"):
            sub = fused.get_submodule(str(node.target))
            sub_inputs = []
            for a in node.args:
                sub_inputs.append(
                    rec[a.name] if isinstance(a, torch.fx.Node) and a.name in rec else None
                )
            if not all(isinstance(x, torch.Tensor) for x in sub_inputs):
                continue  # a size or a tuple in (it may change per call): left to PyTorch
            try:
                fn = _compile_static(sub, sub_inputs, opts)
            except ProvenmlError as exc:
                # (stop 73) named in the warning where no op was unsupported: "a boolean
                # output" said more than "no compilable partition"
                failures.append(str(exc).removeprefix("provenml.compiler: ").split(" at node")[0])
                continue
            setattr(fused, str(node.target), _Wrapped(fn))
            compiled_any = True
    if not compiled_any:
        _warn_left_to_pytorch(unsupported or failures[:1])
        return gm.forward
    fused.recompile()
    return fused.forward


class _Wrapped(nn.Module):
    """A compiled partition standing in for a fused submodule."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)
