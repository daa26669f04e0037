"""Calling a built graph: one ctypes call per inference, no Python per op."""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from provenml.compiler.build import load
from provenml.compiler.codegen import Program
from provenml.compiler.ir import Graph
from provenml.compiler.run_time_errors import run_time_error, value_guard_failed
from provenml.errors import ProvenmlError

_TORCH_DTYPE = {"float32": torch.float32, "int64": torch.int64}
# the fields of ``pm_pool_stats`` (codegen.c_source.POOL_RUNTIME_C), in order
POOL_STATS = (
    "team",
    "alone",
    "backoff",
    "left",
    "lost",
    "ratio_permille",
    "adaptive",
    "alone_ns",
    "team_ns",
    "scale_permille",
    "skipped",
)


@dataclass(slots=True)
class LoadedLibrary:
    """What the builds of one library share, one per loaded library path (:data:`_LIBRARIES`).

    Builds of the same source load the same library, whose thread count and run-time error
    record (``pm_error``) are C globals:

    * ``threads``: the count the library last ran with. Each :class:`CompiledGraph` re-applies
      its own before a call when another build of the library changed it (before stop 34 an
      ablation build silently ran at the count the main build's stall guard had set).
    * ``lock``: one call at a time. A call's caller reads ``pm_error`` after the call; with a
      lock per CompiledGraph (before stop 61) a call of another build of the same library could
      clear or set that record between a call and its read (an index out of range went
      unreported, or a correct call raised), and each build could run at the other's thread
      count. The pool runtime serialises calls of one library in C anyway (``pm_call_lock``);
      builds of different libraries still run at once.
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: int = 0


_LIBRARIES: dict[str, LoadedLibrary] = {}


CACHE_LINE = 64  # bytes
# The lowest scale of the fallback's one-thread estimate taken as measured: the builds' bias
# is 0-14% (scales 0.86-1.0 on an idle AVX2 EPYC, 0.895-0.898 for the transformer block on the
# AVX-512 Xeon); a lower ratio is a disturbed measurement (CompiledGraph.calibrate_fallback)
FALLBACK_SCALE_FLOOR = 0.8
# Output recycling (stop 38): graphs whose outputs total at most this many bytes hand out an
# earlier call's output tensors again once nothing outside the graph refers to them (larger
# outputs take long enough to compute that a fresh allocation does not show, and keeping two
# calls' worth of them alive would).
RECYCLE_MAX_BYTES = 4 << 20
_STORAGE_USE_COUNT = getattr(torch._C, "_storage_Use_Count", None)


def _reusable(
    outs: list[torch.Tensor], ptrs: list[int], spec: list[tuple[torch.Size, torch.dtype]]
) -> int:
    """Whether an earlier call's outputs may be handed out again: 1 yes, 0 not now (still
    held), -1 never (changed in place).

    Held: a tensor referenced by anything but ``outs`` (a Python name, container, view, NumPy
    array, DLPack capsule): two references each (the list's and ``getrefcount``'s argument)
    and two storage uses (the tensor's and the temporary storage object); indexing, not a loop
    variable, keeps the counts exact. A storage that lost its resizability (DLPack export marks
    it so) counts as held: a fresh output can be ``resize_``d, so a recycled one must be too.
    Changed: a caller dropped it after ``squeeze_``, ``transpose_``, ``resize_``, ``set_``,
    ``requires_grad_`` or a ``resize_`` of its storage (which always moves the data): its
    address, shape or layout is no longer the one made, and writing into it could run past
    its memory."""
    if _STORAGE_USE_COUNT is None:  # a torch without the counter: never recycle
        return 0
    for k in range(len(outs)):
        if sys.getrefcount(outs[k]) != 2:
            return 0
        storage = outs[k].untyped_storage()
        if _STORAGE_USE_COUNT(storage._cdata) != 2 or not storage.resizable():
            return 0
        t = outs[k]
        if (
            t.data_ptr() != ptrs[k]
            or t.shape != spec[k][0]
            or t.requires_grad
            or not t.is_contiguous()
        ):
            return -1
    return 1


def aligned_zeros(size: int, align: int = CACHE_LINE) -> np.ndarray:
    """``size`` float32 zeros whose first element sits at a multiple of ``align`` bytes."""
    raw = np.zeros(size + align // 4, np.float32)
    skip = (-raw.ctypes.data % align) // 4
    out = raw[skip : skip + size]
    assert out.ctypes.data % align == 0
    return out


HUGE_PAGE = 2 << 20  # bytes in an x86-64 transparent huge page
HUGE_PAGE_MIN_BYTES = 256 << 10  # smaller blocks are not worth a 2 MiB page


def block_zeros(size: int, huge_pages: bool = True) -> np.ndarray:
    """``size`` float32 zeros for a build's long-lived block (its constants or its arena).

    With ``huge_pages`` and a block of at least 256 KiB on Linux, the block lies in a private
    anonymous mapping, starts on a 2 MiB boundary and is advised ``MADV_HUGEPAGE``, so that the
    kernel may back it with transparent huge pages (where they are enabled, ``always`` or
    ``madvise``; else the advice is ignored and 4 KiB pages back it, as with numpy). A 2 MiB
    page is contiguous in physical memory: the block's lines then spread evenly over the L2
    cache's sets whatever the process, where 4 KiB pages place them by chance, and the TLB
    holds the whole weight blob in one or two entries (*Stop 40* in docs/compiler_history.md: calls
    1-2% faster on the transformer block, ResNet and the MLP at two threads). Otherwise
    :func:`aligned_zeros` (one cache line of alignment)."""
    nbytes = size * 4
    advise = getattr(mmap, "MADV_HUGEPAGE", None)
    if not huge_pages or nbytes < HUGE_PAGE_MIN_BYTES or advise is None:
        return aligned_zeros(size)
    span = -(-nbytes // HUGE_PAGE) * HUGE_PAGE
    try:
        region = mmap.mmap(-1, span + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except (OSError, ValueError):  # the mapping refused (no anonymous mmap, no memory):
        return aligned_zeros(size)
    raw = np.frombuffer(region, dtype=np.uint8)  # keeps the mapping alive as its base
    start = -raw.ctypes.data % HUGE_PAGE
    # a kernel without transparent huge pages refuses the advice: 4 KiB pages, same block
    with contextlib.suppress(OSError):
        region.madvise(advise, start, span)
    return raw[start : start + nbytes].view(np.float32)  # fresh anonymous memory is zero


def aligned_copy(values: np.ndarray, align: int = CACHE_LINE) -> np.ndarray:
    """A float32 copy of ``values`` (flattened) starting at a multiple of ``align`` bytes."""
    out = aligned_zeros(values.size, align)
    out[:] = values.ravel()
    return out


class CompiledGraph:
    """A graph built to a shared library; call it with tensors of the example shapes."""

    def __init__(
        self,
        graph: Graph,
        program: Program,
        library: Path,
        threads: int,
        huge_pages: bool = True,
    ) -> None:
        self.graph = graph
        self.program = program
        self.library = library
        self.lib, self.entry = load(library)
        # both blocks start on a cache line: the planner and the lowering place every buffer
        # and constant at a multiple of 16 floats from these bases, so the kernels' 64-byte
        # vector loads stay inside one line (numpy alone gives 16-byte alignment, and a
        # misaligned weight blob made the same build 13% slower, see docs/compiler_history.md)
        # (both on 2 MiB transparent huge pages where they are large enough: block_zeros)
        consts = np.asarray(program.consts, np.float32).ravel()
        self.huge_pages = bool(huge_pages)
        self.consts = block_zeros(consts.size, self.huge_pages)
        self.consts[:] = consts
        self.arena = block_zeros(max(program.arena_floats, 16) + 16, self.huge_pages)
        self.in_types = [graph.values[i] for i in graph.inputs]
        # boolean inputs (a key padding mask): cast to float32 0 / 1 on each call
        self._bool_in = {k for k, i in enumerate(graph.inputs) if i in graph.bool_inputs}
        self.out_types = [graph.values[o] for o in graph.outputs]
        self._in = (ctypes.c_void_p * max(1, len(graph.inputs)))()
        self._out = (ctypes.c_void_p * max(1, len(graph.outputs)))()
        # the call's fast path: inputs that need no check beyond these (see __call__)
        self._in_spec = [
            (torch.Size(v.shape), None if k in self._bool_in else _TORCH_DTYPE[v.dtype])
            for k, v in enumerate(self.in_types)
        ]  # no dtype is None: a boolean input always takes the checked path (its cast)
        self._out_spec = [(torch.Size(v.shape), _TORCH_DTYPE[v.dtype]) for v in self.out_types]
        # shared with every other build of this library (LoadedLibrary); the lock is kept
        # apart as well, for the call's fast path
        self._library = _LIBRARIES.setdefault(str(library), LoadedLibrary())
        self._lock = self._library.lock
        out_bytes = sum(shape.numel() * dtype.itemsize for shape, dtype in self._out_spec)
        # see _outputs: on by default for outputs of at most RECYCLE_MAX_BYTES
        self.recycle_outputs = out_bytes <= RECYCLE_MAX_BYTES
        # the last two calls' outputs with their data addresses (see _reusable)
        self._recent: list[tuple[list[torch.Tensor], list[int]]] = []
        self._in_addr = ctypes.addressof(self._in)
        self._out_addr = ctypes.addressof(self._out)
        self._arena = self.arena.ctypes.data
        self._consts = self.consts.ctypes.data
        self.threads = threads
        self._guard: tuple[float, int] | None = None  # (stall limit in s, guarded count)
        self._calls = 0
        self._retry_at = 0
        self._backoff = 0
        self.stalls = 0  # calls that exceeded the guard's limit (see guard_threads)
        self.fallback_scale: float | None = None  # calibrate_fallback's, once measured
        self.set_threads(threads)
        self.adaptive = False  # set_adaptive: on by default for the pool runtime
        self.set_adaptive(True)
        # run-time checks (stop 60): a graph whose kernels may record an error (an index out
        # of range, an integer division by zero) asks the library after each call
        self._checks_errors = program.checks_errors
        # (kind, site, value, limit) of the call's first error; kind 0: none
        self._error = (ctypes.c_longlong * 4).in_dll(self.lib, "pm_error")
        # stop 71: the trailing outputs that hold the numbers read from the inputs' values
        # (``Graph.value_guards``), compared after each call and not handed to the caller
        self.value_guards = list(graph.value_guards)
        self._visible = len(graph.outputs) - len(self.value_guards)

    @property
    def is_pool(self) -> bool:
        """Whether the library runs the worker-pool runtime (``runtime="pool"``)."""
        return hasattr(self.lib, "pm_pool_stats")

    def set_adaptive(self, on: bool) -> None:
        """Switch the pool runtime's adaptive fallback on (the default) or off; resets its
        measurements and back-off. On, a call with more than one thread runs on the calling
        thread alone while the team has been measured to lose against one thread (see
        docs/compiler.md, "The worker-pool runtime"); off, the team runs every call. No effect
        on the OpenMP runtime. The state lives in the loaded library, so builds of the same
        source in one process share it (as they share :meth:`set_threads`)."""
        if not self.is_pool:
            return
        self.adaptive = bool(on)
        self.lib.pm_set_adaptive(int(self.adaptive))

    def park_workers(self) -> None:
        """Send the pool's idle workers to sleep now rather than after their few milliseconds
        of spinning (pool runtime; no-op for OpenMP): between samples of builds timed against
        each other, so one build's spinning workers do not take a core from the next's call."""
        if hasattr(self.lib, "pm_pool_park"):
            self.lib.pm_pool_park()

    def calibrate_fallback(
        self,
        inputs: Sequence[torch.Tensor],
        rounds: int = 5,
        min_time: float = 0.002,
        attempts: int = 3,
    ) -> float:
        """Scale the adaptive fallback's one-thread estimate to this build (pool runtime,
        more than one thread; else a no-op returning 1.0).

        The fallback judges the team against "the caller's chunk time x all chunks / chunks
        it ran", but in a team the caller's chunks run 5-10% longer than alone (they read
        what the other core wrote), so that estimate overstates a one-thread call and the
        team was kept while up to ~13% slower than one thread (docs/compiler_history.md, *Stop 39*).
        :meth:`_calibration_ratio` measures the bias; the scale is that ratio, at most 1 (never
        loosening the verdict). A ratio below :data:`FALLBACK_SCALE_FLOOR` is no bias the
        builds show (0.86-1.0 measured) but a disturbed measurement: it is taken again, up to
        ``attempts`` times, and the floor is used if none is plausible. Before stop 50 such a
        ratio was kept down to 0.5, and on an idle machine the team then lost every verdict
        and the build ran alone for its lifetime (*Stop 50*). Meant for an idle machine:
        :func:`~provenml.compiler.api.compile` calls it once after building. Returns the
        scale."""
        if not self.is_pool or self.threads < 2 or not hasattr(self.lib, "pm_set_one_scale"):
            return 1.0
        scale = FALLBACK_SCALE_FLOOR
        for _ in range(max(1, attempts)):
            ratio = self._calibration_ratio(inputs, rounds, min_time)
            if ratio is None:
                scale = 1.0
                break
            if ratio >= FALLBACK_SCALE_FLOOR:
                scale = min(1.0, ratio)
                break
        self.set_fallback_scale(scale)
        return scale

    def set_fallback_scale(self, scale: float) -> None:
        """Set the adaptive fallback's one-thread estimate scale (what
        :meth:`calibrate_fallback` measured; pool runtime, else a no-op)."""
        if hasattr(self.lib, "pm_set_one_scale"):
            self.lib.pm_set_one_scale(ctypes.c_double(scale))
            self.fallback_scale = float(scale)

    def _calibration_ratio(
        self, inputs: Sequence[torch.Tensor], rounds: int, min_time: float
    ) -> float | None:
        """One measurement of the one-thread estimate's bias: ``rounds`` interleaved pairs,
        one-thread calls against team calls (every team call measured, none sent alone), and
        the median one-thread time over the median of the fallback's running-mean estimate
        read after each round (``None`` if the fallback reported no estimate)."""
        threads = self.threads
        # unscaled, the fallback's running means forgotten once; they then run on across the
        # rounds (switching between one thread and the team does not reset them: only a new
        # team size does), so each round reads the running mean of the estimates so far
        self.lib.pm_set_one_scale(ctypes.c_double(1.0))
        ones, estimates = [], []
        self.lib.pm_debug_force_verdict(-1)  # judge every team call, send none alone
        try:
            for _ in range(rounds):
                self._use(1)
                ones.append(self.benchmark(inputs, repeat=1, min_time=min_time))
                self._use(threads)
                self.benchmark(inputs, repeat=1, min_time=min_time)
                stats = self.pool_stats()
                assert stats is not None
                if stats["team_ns"] > 0 and stats["ratio_permille"] > 0:
                    estimates.append(stats["team_ns"] * 1e-6 / stats["ratio_permille"])
        finally:
            self.lib.pm_debug_force_verdict(0)
            self._use(threads)
        if not ones or not estimates:
            return None
        return float(np.median(ones) / np.median(estimates))

    def pool_stats(self) -> dict[str, int] | None:
        """The pool runtime's counters (``None`` for the OpenMP runtime): ``team`` calls run by
        the thread team, ``alone`` calls the fallback ran on the caller alone, ``backoff`` the
        length of the last back-off in calls (0 after a won probe), ``left`` calls still to run
        alone, ``lost`` verdicts the team lost, ``ratio_permille`` 1000 x the running mean of
        team call times over that of their one-thread estimates (-1 before any),
        ``adaptive`` 1 if the fallback is on, ``alone_ns`` the running mean of the calls run
        alone in ns (-1 before any), ``team_ns`` the running mean of the team's call times in ns
        (-1 before any), ``scale_permille`` 1000 x the scale of the one-thread estimate
        (:meth:`calibrate_fallback`), ``skipped`` probes skipped because the machine's other
        cores were busy over the back-off (/proc/stat). ``team`` and ``alone`` only grow
        (calls at one thread count in neither)."""
        if not self.is_pool:
            return None
        raw = (ctypes.c_longlong * len(POOL_STATS))()
        self.lib.pm_pool_stats(raw)
        return dict(zip(POOL_STATS, (int(v) for v in raw), strict=True))

    def set_threads(self, threads: int) -> None:
        """Run every call with ``threads`` threads (and switch off :meth:`guard_threads`)."""
        self._guard = None
        self._use(threads)

    def _use(self, threads: int) -> None:
        self.threads = int(threads)
        self.lib.pm_set_threads(self.threads)
        self._library.threads = self.threads

    def guard_threads(self, threads: int, stall_seconds: float, backoff: int = 64) -> None:
        """Run with ``threads`` threads, but fall back to one thread whenever a call takes
        longer than ``stall_seconds`` (a barrier waited for a thread that lost its core: the
        load changed after the thread count was chosen). After a stall the next ``backoff``
        calls run on one thread, then ``threads`` is tried again; each further stall doubles
        the wait (up to 65536 calls)."""
        self._use(threads)
        self._guard = (stall_seconds, int(threads)) if threads > 1 else None
        self._backoff = max(1, backoff)
        self._retry_at = 0

    def _guarded_entry(self) -> None:
        assert self._guard is not None
        limit, want = self._guard
        self._calls += 1
        if self.threads != want:
            if self._calls >= self._retry_at:
                self._use(want)
            else:
                self.entry(self._in_addr, self._out_addr, self._arena, self._consts)
                return
        start = time.perf_counter()
        self.entry(self._in_addr, self._out_addr, self._arena, self._consts)
        if time.perf_counter() - start > limit:
            self.stalls += 1
            self._use(1)
            self._retry_at = self._calls + self._backoff
            self._backoff = min(2 * self._backoff, 65536)

    def __call__(self, *inputs: torch.Tensor | np.ndarray) -> list[torch.Tensor]:
        # One call at a time per library (LoadedLibrary.lock): ctypes releases the GIL during the
        # C call, and two threads would otherwise share this graph's pointer arrays and arena,
        # and the library's thread count and error record (builds of different libraries may
        # run at once). Fast path (a call costs ~15 us of Python otherwise, 4% of a 350 us
        # transformer block): contiguous CPU tensors of the compiled shapes and dtypes go
        # straight in.
        self._lock.acquire()  # (``with`` costs 75 ns more, 0.7% of an mlp:1 call)
        try:
            if len(inputs) != len(self._in_spec):
                return self._call_checked(inputs)
            for k, (x, (shape, dtype)) in enumerate(zip(inputs, self._in_spec, strict=True)):
                if (
                    type(x) is not torch.Tensor
                    or x.dtype is not dtype
                    or x.shape != shape
                    or not x.is_cpu
                    or not x.is_contiguous()
                ):
                    return self._call_checked(inputs)
                self._in[k] = x.data_ptr()
            return self._run()
        finally:
            self._lock.release()

    def _call_checked(self, inputs: Sequence[torch.Tensor | np.ndarray]) -> list[torch.Tensor]:
        """(Lock held.) Every input checked, with a clear error naming the first that does not
        fit, and converted where it may be (NumPy arrays, int32 indices, strided or non-CPU
        tensors)."""
        if len(inputs) != len(self.in_types):
            raise ProvenmlError(
                f"compiled graph takes {len(self.in_types)} inputs, got {len(inputs)}"
            )
        keep = []
        for k, (x, v) in enumerate(zip(inputs, self.in_types, strict=True)):
            if isinstance(x, np.ndarray):
                x = torch.from_numpy(x)
                keep.append(x)
            if tuple(x.shape) != v.shape:
                raise ProvenmlError(
                    f"input {k}: compiled for shape {v.shape}, got {tuple(x.shape)} (compile "
                    "with dynamic=True, or through torch.compile(model, backend='provenml'), "
                    "for one build per input shape)"
                )
            want = _TORCH_DTYPE[v.dtype]
            if k in self._bool_in and x.dtype != torch.bool:
                raise ProvenmlError(f"input {k}: compiled for a boolean tensor, got {x.dtype}")
            if x.dtype != want and not (
                (want == torch.int64 and x.dtype == torch.int32) or k in self._bool_in
            ):
                raise ProvenmlError(
                    f"input {k}: compiled for dtype {v.dtype}, got {x.dtype} (the compiled "
                    "graph does not cast; recompile with example inputs of this dtype)"
                )
            if x.dtype != want or not x.is_contiguous() or x.device.type != "cpu":
                x = x.to("cpu", want).contiguous()
                keep.append(x)
            self._in[k] = x.data_ptr()
        outs = self._run()
        del keep  # the converted inputs lived until the call returned
        return outs

    def _run(self) -> list[torch.Tensor]:
        """Allocate the outputs and call the entry on the inputs already in ``self._in``."""
        outs = self._outputs()
        for k, o in enumerate(outs):
            self._out[k] = o.data_ptr()
        if self._library.threads != self.threads:  # another build of this library set it
            self._use(self.threads)
        if self._guard is None:
            self.entry(self._in_addr, self._out_addr, self._arena, self._consts)
        else:
            self._guarded_entry()
        if self.value_guards:
            outs = self._check_value_guards(outs)
        if self._checks_errors and self._error[0]:
            kind, site, value, limit = (int(v) for v in self._error)
            self._error[0] = 0
            raise run_time_error(kind, site, value, limit, self.program.error_sites)
        return outs

    def _check_value_guards(self, outs: list[torch.Tensor]) -> list[torch.Tensor]:
        """(Lock held.) The caller's outputs, once every number the graph read from its inputs'
        values is the example's; else :class:`~provenml.compiler.ValueGuardFailed`, first
        (an index out of range the wrong size caused was only its consequence)."""
        for guard, tensor in zip(self.value_guards, outs[self._visible :], strict=True):
            got = tensor.item()
            if got != guard.expected:
                self._error[0] = 0
                raise value_guard_failed(guard.what, guard.expected, got)
        return outs[: self._visible]

    def _outputs(self) -> list[torch.Tensor]:
        """(Lock held.) Tensors for this call's outputs. With ``recycle_outputs`` (the default
        when the outputs total at most ``RECYCLE_MAX_BYTES``), the graph keeps the output
        tensors of its last two calls and hands one set out again once nothing else refers to
        it (``_reusable``): a caller that drops each result (``loss += f(x).sum()``) or
        rebinds one name (``y = f(x)``) gets the same memory back, anything it still holds is
        never written. A fresh output costs a tensor's creation and the last one's
        destruction every call (1.4 µs of ``mlp:1``'s 11), more for a 64 KiB block between
        calls (likely glibc, which consolidates its free lists whenever a block of 64 KiB or
        more is freed; not isolated); the checks cost about half of that: recycled,
        ``mlp:1`` is 6% faster and the transformer block 1.5% (docs/compiler_history.md, stop 38).
        The cost: the graph keeps up to two calls' outputs alive."""
        if self.recycle_outputs:
            for k in range(len(self._recent)):
                verdict = _reusable(self._recent[k][0], self._recent[k][1], self._out_spec)
                if verdict == 0:
                    continue  # still held by the caller
                entry = self._recent.pop(k)
                if verdict < 0:
                    break  # changed in place, then dropped: forget it, make new ones
                self._recent.append(entry)
                return list(entry[0])  # the caller's own list: its references count
        outs = [torch.empty(shape, dtype=dtype) for shape, dtype in self._out_spec]
        if self.recycle_outputs:
            self._recent.append((outs, [t.data_ptr() for t in outs]))
            if len(self._recent) > 2:
                del self._recent[0]
        return list(outs)

    def benchmark(
        self,
        inputs: Sequence[torch.Tensor],
        repeat: int = 5,
        min_time: float = 0.02,
        quantile: float = 0.5,
    ) -> float:
        """A quantile (default the median) of seconds per call over ``repeat`` samples, each
        averaging enough calls to fill ``min_time``."""
        for _ in range(3):
            self(*inputs)
        n = 1
        while True:
            t = time.perf_counter()
            for _ in range(n):
                self(*inputs)
            if time.perf_counter() - t >= min_time or n >= 4096:
                break
            n *= 2
        samples = []
        for _ in range(repeat):
            t = time.perf_counter()
            for _ in range(n):
                self(*inputs)
            samples.append((time.perf_counter() - t) / n)
        return float(np.quantile(samples, quantile))

    def profile(
        self, inputs: Sequence[torch.Tensor], calls: int = 100, warmup: int = 20
    ) -> Profile:
        """Where a call's time goes, per stage of the worker-pool runtime: every chunk a
        thread runs is timed in C (two clock reads per chunk, only while profiling), over
        ``calls`` calls after ``warmup``. Per stage, *work* is the summed time of its chunks
        (all threads) and *span* the time from its first chunk's start to its last one's end;
        work / span near the thread count means the stage kept every thread busy. The call
        time includes Python and the output allocation, the kernel window only the stages.
        Medians over the calls."""
        if not self.is_pool or not self.program.stages:
            raise ProvenmlError("profile() needs the worker-pool runtime (runtime='pool')")
        if calls < 1:
            raise ProvenmlError(f"profile(calls=...) must be >= 1, got {calls}")
        for _ in range(warmup):
            self(*inputs)
        marks, walls = [0], []
        self.lib.pm_profile(1)
        try:
            for _ in range(calls):
                t = time.perf_counter_ns()
                self(*inputs)
                walls.append(time.perf_counter_ns() - t)
                marks.append(int(self.lib.pm_profile_count()))
        finally:
            self.lib.pm_profile(0)
        raw = (ctypes.c_longlong * (5 * marks[-1]))()
        got = self.lib.pm_profile_get(raw, marks[-1])
        if got < marks[-1]:
            raise ProvenmlError("profile: the chunk log filled up; profile fewer calls")
        rec = np.frombuffer(raw, dtype=np.int64).reshape(-1, 5)
        nstages, threads = len(self.program.stages), max(1, self.threads)
        call = np.searchsorted(marks, np.arange(len(rec)), side="right") - 1
        thread, stage, chunk, start, end = rec.T
        work = np.zeros((calls, nstages))
        np.add.at(work, (call, stage), end - start)
        per_thread = np.zeros((calls, nstages, threads))
        np.add.at(per_thread, (call, stage, thread), end - start)
        first = np.full((calls, nstages), np.iinfo(np.int64).max)
        np.minimum.at(first, (call, stage), start)
        last = np.full((calls, nstages), np.iinfo(np.int64).min)
        np.maximum.at(last, (call, stage), end)
        span = last - first
        window = last.max(axis=1) - first.min(axis=1)
        # each thread's first chunk of a stage (in a call) against its later ones
        dur = end - start
        order = np.lexsort((start, thread, stage, call))
        key = np.stack([call, stage, thread], axis=1)[order]
        is_first = np.ones(len(order), dtype=bool)
        is_first[1:] = np.any(key[1:] != key[:-1], axis=1)
        opening = np.zeros(len(rec), dtype=bool)
        opening[order] = is_first

        def med_us(sel: np.ndarray) -> float:
            return float(np.median(dur[sel])) / 1e3 if sel.any() else float("nan")

        rows = [
            StageProfile(
                stage=s,
                function=self.program.stages[s],
                node=self.program.stage_nodes[s],
                chunks=self.program.stage_chunks[s],
                work_us=float(np.median(work[:, s])) / 1e3,
                span_us=float(np.median(span[:, s])) / 1e3,
                thread_work_us=tuple(float(v) / 1e3 for v in per_thread[:, s].mean(axis=0)),
                chunk_us=tuple(
                    med_us((stage == s) & (chunk == c)) for c in range(self.program.stage_chunks[s])
                ),
                first_chunk_us=med_us((stage == s) & opening),
                later_chunk_us=med_us((stage == s) & ~opening),
            )
            for s in range(nstages)
        ]
        return Profile(
            threads=self.threads,
            calls=calls,
            call_us=float(np.median(walls)) / 1e3,
            kernels_us=float(np.median(window)) / 1e3,
            stages=rows,
        )


@dataclass
class StageProfile:
    """One stage of a profiled call (see :meth:`CompiledGraph.profile`)."""

    stage: int
    function: str  # the generated C function
    node: str  # the graph node (fused group) it runs
    chunks: int
    work_us: float  # summed chunk time, all threads (median over calls)
    span_us: float  # first chunk start to last chunk end (median over calls)
    thread_work_us: tuple[float, ...]  # mean chunk time per thread (0 = the caller)
    chunk_us: tuple[float, ...] = ()  # median time of each chunk, whichever thread ran it
    # median time of the first chunk each thread ran in the stage, and of its later chunks:
    # a first chunk reads what other threads wrote in earlier stages
    # (docs/compiler_history.md, Stop 40)
    first_chunk_us: float = float("nan")
    later_chunk_us: float = float("nan")


@dataclass
class Profile:
    """Per-stage timing of a compiled graph's calls (:meth:`CompiledGraph.profile`)."""

    threads: int
    calls: int
    call_us: float  # a whole call from Python (median)
    kernels_us: float  # first stage's start to last stage's end (median)
    stages: list[StageProfile]

    @property
    def work_us(self) -> float:
        return sum(s.work_us for s in self.stages)

    @property
    def span_us(self) -> float:
        return sum(s.span_us for s in self.stages)

    def table(self) -> str:
        """A plain-text table, one row per stage, then the totals."""
        lines = [
            f"{'stage':>5}  {'function':<34} {'chunks':>6} {'work us':>9} {'span us':>9} "
            f"{'work/span':>9}  {'first/later chunk us':>20}  per-thread work us"
        ]
        for s in self.stages:
            ratio = s.work_us / s.span_us if s.span_us > 0 else float("nan")
            threads = "/".join(f"{w:.1f}" for w in s.thread_work_us)
            chunk = f"{s.first_chunk_us:.1f}/{s.later_chunk_us:.1f}"
            lines.append(
                f"{s.stage:>5}  {s.function:<34} {s.chunks:>6} {s.work_us:>9.1f} "
                f"{s.span_us:>9.1f} {ratio:>9.2f}  {chunk:>20}  {threads}"
            )
        lines.append(
            f"{self.threads} thread(s), {self.calls} calls: work {self.work_us:.1f} us, "
            f"spans {self.span_us:.1f} us, kernel window {self.kernels_us:.1f} us, "
            f"whole call {self.call_us:.1f} us (Python, outputs and waits: "
            f"{self.call_us - self.span_us:.1f} us)"
        )
        return "\n".join(lines)
