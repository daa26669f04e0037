"""The lowering core (survey Sec. 4.3/4.4, "backend"): a planned graph IR becomes one C
translation unit with one kernel (loop nest) per fused group, all run inside a single
persistent OpenMP parallel region by one entry function, so one ctypes call runs the whole graph
and the threads are forked once per call. Heavy kernels are split over the threads (balanced
static partitions of their output tiles/rows), light ones run on thread 0, and an
``omp barrier`` separates two kernels only where one reads or overwrites memory that the other
touches on another thread (:func:`~provenml.compiler.codegen.barriers.place_barriers`).

Each node's kernel comes from the op -> handler table
:data:`provenml.compiler.codegen.kernels.KERNELS`; this module holds what every kernel shares:
pointers into the inputs, outputs, constants and arena, restrict declarations, scratch space,
and the entry function with its barriers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from provenml.compiler import loopir as L
from provenml.compiler.codegen.barriers import Access, Region, dependencies, place_barriers
from provenml.compiler.codegen.c_source import ARGS, C_HEADER, POOL_RUNTIME_C, SIGNATURE, cname
from provenml.compiler.codegen.kernels import KERNELS
from provenml.compiler.codegen.resources import PARALLEL_WORK, work_estimate
from provenml.compiler.ir import Graph, Node
from provenml.compiler.passes import storage_root
from provenml.errors import ProvenmlError

RUNTIMES = ("openmp", "pool")


# the calls by which a kernel may report a run-time error (c_source's pm_fail and its users)
RUN_TIME_CHECKS = (
    "pm_fail(",
    "pm_bounded(",
    "pm_bounded_wrap(",
    "pm_floor_divide(",
    "pm_remainder(",
    "pm_trunc_divide(",
    "pm_fmod(",
)


@dataclass
class Program:
    """The generated C source plus what the runtime needs to call it."""

    source: str
    consts: np.ndarray  # the constant blob (float32 view)
    arena_floats: int
    loop_nests: dict[str, str] = field(default_factory=dict)  # group -> printed loop IR
    # pool runtime: each stage's function and the earlier stages it waits for
    stages: list[str] = field(default_factory=list)
    stage_deps: list[list[int]] = field(default_factory=list)
    stage_nodes: list[str] = field(default_factory=list)  # the graph node each stage runs
    stage_chunks: list[int] = field(default_factory=list)
    # run-time checks (stop 60): the nodes whose kernels report bad indices (``pm_fail``'s
    # site numbers, from 1), and whether any kernel may report an error at all
    error_sites: list[str] = field(default_factory=list)
    checks_errors: bool = False


class Lowering:
    """Turns a planned graph into C source."""

    def __init__(
        self,
        g: Graph,
        prefix: str = "pm",
        parallel_work: int | None = None,
        runtime: str = "openmp",
        chunks: int = 8,
        weight_prefetch: bool = False,
    ) -> None:
        if runtime not in RUNTIMES:
            raise ProvenmlError(f"codegen: runtime must be one of {RUNTIMES}, got {runtime!r}")
        self.runtime = runtime
        self.chunks = max(1, int(chunks))  # chunks per parallel stage (pool runtime)
        self.weight_prefetch = weight_prefetch  # dense tiles prefetch the next weight panel
        self.g = g
        self.prefix = prefix
        self.parallel_work = PARALLEL_WORK if parallel_work is None else parallel_work
        self.producers = g.producers()
        self.input_index = {n: i for i, n in enumerate(g.inputs)}
        self.direct_out: dict[str, int] = {}
        for k, o in enumerate(g.outputs):
            p = self.producers.get(o)
            if p is not None and p.op != "reshape" and o not in self.direct_out:
                self.direct_out[o] = k
        self.const_offset: dict[str, int] = {}
        chunks = []
        pos = 0
        for name, arr in g.consts.items():
            raw = (
                np.ascontiguousarray(
                    arr.astype(np.int64) if arr.dtype.kind in "iu" else arr.astype(np.float32)
                )
                .view(np.float32)
                .ravel()
            )
            pad = (-raw.size) % 16
            self.const_offset[name] = pos
            chunks.append(raw)
            chunks.append(np.zeros(pad, np.float32))
            pos += raw.size + pad
        self.blob = np.concatenate(chunks) if chunks else np.zeros(16, np.float32)
        self.kernels: list[str] = []
        self.nests: dict[str, str] = {}
        self.helpers: dict[str, str] = {}  # micro-kernel helpers by name, emitted once
        # nodes whose kernels check indices at run time (``error_site``), in site order
        self.error_sites: list[str] = []

    def error_site(self, n: Node) -> int:
        """The number (from 1) by which ``n``'s kernel reports a run-time error (``pm_fail``;
        :func:`provenml.compiler.run_time_errors.run_time_error` names the node by it)."""
        self.error_sites.append(f"{n.op} node '{n.name}' (from {n.source})")
        return len(self.error_sites)

    def program(self, source: str, **pool: Any) -> Program:
        """The :class:`Program` of this lowering's ``source`` (its entry included)."""
        return Program(
            source,
            self.blob,
            int(self.g.arena_size),
            self.nests,
            **pool,
            error_sites=list(self.error_sites),
            checks_errors=any(call in source for call in RUN_TIME_CHECKS),
        )

    # -- pointers --------------------------------------------------------------------------------
    def ptr(self, name: str) -> str:
        """C pointer expression (float* or long long*) for a value."""
        v = self.g.values[name]
        ctype = "long long" if v.dtype == "int64" else "float"
        if name in self.const_offset:
            return f"((const {ctype}*)(cst + {self.const_offset[name]}))"
        if name in self.input_index:
            return f"((const {ctype}*)in[{self.input_index[name]}])"
        if name in self.direct_out:
            return f"(({ctype}*)out[{self.direct_out[name]}])"
        root = storage_root(self.g, name)
        if root != name:
            return (
                self.ptr(root)
                if v.dtype == self.g.values[root].dtype
                else f"(({ctype}*){self.ptr(root)})"
            )
        if name not in self.g.memory:
            raise ProvenmlError(f"codegen: value {name} has no storage (run plan_memory first)")
        return f"(({ctype}*)(arena + {self.g.memory[name]}))"

    def decls(
        self, node: Node, outputs: list[str], inputs: list[str]
    ) -> tuple[list[str], dict[str, str]]:
        """Local restrict pointers for a kernel (restrict dropped where buffers coincide)."""
        roots = {}
        for n in inputs + outputs:
            roots[n] = self.ptr(n)
        counts: dict[str, int] = {}
        for p in roots.values():
            counts[p] = counts.get(p, 0) + 1
        lines = []
        names = {}
        for n, p in roots.items():
            v = self.g.values[n]
            ctype = "long long" if v.dtype == "int64" else "float"
            const = "const " if n in inputs and n not in outputs else ""
            restrict = " restrict" if counts[p] == 1 else ""
            cn = cname(n)
            names[n] = cn
            lines.append(f"{const}{ctype}*{restrict} {cn} = ({const}{ctype}*){p};")
        return lines, names

    def scratch(self, n: Node) -> int:
        key = n.name + "#scratch"
        if key not in self.g.memory:
            raise ProvenmlError(
                f"codegen: node {n.name} needs scratch space (run annotate_scratch before "
                "plan_memory)"
            )
        return self.g.memory[key]

    # -- entry -----------------------------------------------------------------------------------
    def region(self, name: str) -> Region | None:
        """The memory a value occupies as ``(space, first float, end float)``; ``None`` for the
        read-only inputs and constants (they never create a hazard)."""
        v = self.g.values[name]
        if name in self.const_offset or name in self.input_index:
            return None
        floats = v.size * (2 if v.dtype == "int64" else 1)
        if name in self.direct_out:
            return (f"out{self.direct_out[name]}", 0, floats)
        root = storage_root(self.g, name)
        if root != name:
            return self.region(root)
        if name not in self.g.memory:
            raise ProvenmlError(f"codegen: value {name} has no storage (run plan_memory first)")
        return ("arena", self.g.memory[name], self.g.memory[name] + floats)

    def access(self, n: Node, single: bool) -> Access:
        """What a kernel reads and writes (its scratch space counts as written)."""
        reads = [r for r in (self.region(i) for i in dict.fromkeys(n.inputs)) if r is not None]
        writes = [r for r in [self.region(n.name)] if r is not None]
        key = n.name + "#scratch"
        if key in self.g.memory:
            off = self.g.memory[key]
            writes.append(("arena", off, off + int(n.attrs.get("scratch", 1))))
        return Access(reads, writes, single)

    def lower(self) -> Program:
        """One persistent parallel region per call: every thread runs ``<prefix>_body``, which
        calls the kernels in order. Kernels heavy enough to share (``work >= parallel_work``)
        are split (each thread takes its slice of the partition); light ones run on thread 0
        (``if (tid == 0)``), so a chain of them needs no synchronization at all. An
        ``omp barrier`` goes only before a kernel that reads or overwrites memory another
        thread may still be using (:func:`place_barriers`). With one thread the body is called
        directly, without a parallel region."""
        if self.runtime == "pool":
            return self.lower_pool()
        calls: list[tuple[str, Access]] = []
        for idx, n in enumerate(self.g.nodes):
            if n.op == "reshape":
                continue
            kname = f"{self.prefix}_k{idx}_{n.op if n.op != 'fused' else n.attrs['kind']}"
            kernel = self.kernel_for(n, kname)
            split = work_estimate(n, self.g.values) >= self.parallel_work and L.is_split(kernel)
            self.kernels.append(L.to_c(kernel, SIGNATURE, split=split))
            self.nests[n.name] = L.describe(kernel.body)
            call = f"{kname}({ARGS});" if split else f"if (tid == 0) {kname}({ARGS});"
            calls.append((call, self.access(n, single=not split)))
        body = []
        for (call, _), barrier in zip(calls, place_barriers([a for _, a in calls]), strict=True):
            if barrier:
                body.append("  #pragma omp barrier")
            body.append(f"  {call}")
        copies = self.output_copies()
        p = self.prefix
        sig = "const void** in, void** out, float* arena, const float* cst"
        entry = [
            f"static void {p}_body({SIGNATURE}) {{",
            *body,
            "}",
            "",
            f"void {p}_entry({sig}) {{",
            "  if (pm_threads <= 1) {",
            f"    {p}_body(in, out, arena, cst, 0, 1);",
            "  } else {",
            "    #pragma omp parallel num_threads(pm_threads)",
            f"    {p}_body(in, out, arena, cst, omp_get_thread_num(), omp_get_num_threads());",
            "  }",
            *copies,
            "}",
        ]
        source = "\n\n".join([*self.helpers.values(), *self.kernels])
        source += "\n\n" + "\n".join(entry) + "\n"
        return self.program(source)

    def output_copies(self) -> list[str]:
        """Copies of graph outputs that are not written straight into the caller's tensors."""
        copies = []
        for k, o in enumerate(self.g.outputs):
            if self.direct_out.get(o) == k:
                continue
            v = self.g.values[o]
            nbytes = v.size * (8 if v.dtype == "int64" else 4)
            copies.append(f"  memcpy(out[{k}], (const void*){self.ptr(o)}, {nbytes});")
        return copies

    def lower_pool(self) -> Program:
        """The worker-pool runtime (:data:`~provenml.compiler.codegen.c_source.POOL_RUNTIME_C`):
        every kernel becomes stages (:func:`~provenml.compiler.loopir.to_c_stages`); a parallel
        stage is cut into up to ``chunks`` chunks any thread may claim, a serial one is one
        chunk. A kernel's first stage waits for the completion counters of the earlier kernels
        it has a hazard with (:func:`~provenml.compiler.codegen.barriers.dependencies`), each
        later stage for the stage before it."""
        stages: list[tuple[str, int]] = []  # (function, chunks)
        stage_nodes: list[str] = []
        first_last: list[tuple[int, int]] = []  # each kernel's first and last stage
        accesses: list[Access] = []
        for idx, n in enumerate(self.g.nodes):
            if n.op == "reshape":
                continue
            kname = f"{self.prefix}_k{idx}_{n.op if n.op != 'fused' else n.attrs['kind']}"
            kernel = self.kernel_for(n, kname)
            split = work_estimate(n, self.g.values) >= self.parallel_work and L.is_split(kernel)
            pieces = L.to_c_stages(kernel, SIGNATURE, split=split)
            self.kernels += [s.source for s in pieces]
            self.nests[n.name] = L.describe(kernel.body)
            first = len(stages)
            for piece in pieces:
                # no more chunks than iterations: with 8 chunks, the 4 heads of an attention
                # stage sat in the first thread's range (PM_PART gives the first chunks the
                # extra iterations), so which thread ran which head was a race, and each
                # read the other's writes of the QKV product (stop 38)
                chunks = min(self.chunks, piece.extent or self.chunks) if piece.parallel else 1
                stages.append((piece.name, chunks))
                stage_nodes.append(n.name)
            first_last.append((first, len(stages) - 1))
            accesses.append(self.access(n, single=not split))
        deps: list[list[int]] = [[] for _ in stages]
        for k, before in enumerate(dependencies(accesses)):
            first, last = first_last[k]
            deps[first] = [first_last[j][1] for j in before]
            for s in range(first + 1, last + 1):
                deps[s] = [s - 1]
        p = self.prefix
        count = max(1, len(stages))
        table, flat = [], []
        for (fn, chunks), dep in zip(stages, deps, strict=True):
            table.append(f"  {{ {fn}, {chunks}, {len(flat)}, {len(dep)} }},")
            flat += dep
        sig = "const void** in, void** out, float* arena, const float* cst"
        dep_list = ", ".join(map(str, flat)) or "0"
        entry = [
            f"static const pm_stage_t {p}_stages[{count}] = {{",
            *(table or ["  { 0, 0, 0, 0 },"]),
            "};",
            f"static const int {p}_deps[{max(1, len(flat))}] = {{ {dep_list} }};",
            f"static unsigned long long {p}_next[{count} * PM_RANGES];",
            f"static int {p}_done[{count}];",
            "",
            f"void {p}_entry({sig}) {{",
            f"  pm_pool_run({p}_stages, {p}_deps, {len(stages)}, {p}_next, {p}_done, in, out, "
            "arena, cst);",
            *self.output_copies(),
            "}",
        ]
        source = "\n\n".join([*self.helpers.values(), *self.kernels])
        source += "\n\n" + "\n".join(entry) + "\n"
        return self.program(
            source,
            stages=[fn for fn, _ in stages],
            stage_deps=deps,
            stage_nodes=stage_nodes,
            stage_chunks=[chunks for _, chunks in stages],
        )

    def kernel_for(self, n: Node, kname: str) -> L.Kernel:
        """The loop nest of one node, from the op -> kernel table (:data:`KERNELS`), keyed by
        the fused group's kind or the op."""
        key = n.attrs["kind"] if n.op == "fused" else n.op
        handler = KERNELS.get(key)
        if handler is None:
            raise ProvenmlError(
                f"codegen: no kernel for op '{n.op}' at node {n.name} (from {n.source})"
            )
        return handler(self, n, kname)


def lower(
    g: Graph,
    prefix: str = "pm",
    header: bool = True,
    parallel_work: int | None = None,
    runtime: str = "openmp",
    chunks: int = 8,
    weight_prefetch: bool = False,
) -> Program:
    """Lower a planned graph to a C program whose entry is ``<prefix>_entry``; kernels with
    at least ``parallel_work`` operations (default :data:`PARALLEL_WORK`) are split over the
    threads: by one OpenMP region per call with barriers (``runtime="openmp"``, the default)
    or by a persistent worker pool with dynamically claimed chunks and completion counters
    (``runtime="pool"``, ``chunks`` chunks per parallel stage). ``weight_prefetch``: each row
    tile of a dense kernel software-prefetches its share of the next weight panel (off by
    default since stop 39: it slows the transformer block on the AVX-512 Xeon, docs/compiler.md)."""
    prog = Lowering(g, prefix, parallel_work, runtime, chunks, weight_prefetch).lower()
    if header:
        prog.source = C_HEADER + (POOL_RUNTIME_C if runtime == "pool" else "") + prog.source
    return prog
