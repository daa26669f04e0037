"""Synchronisation inside the graph's single parallel region: which kernels need an
``omp barrier`` before them (read-after-write and write-after-read/write hazards between kernels
that may run on different threads)."""

from __future__ import annotations

from dataclasses import dataclass

Region = tuple[str, int, int]  # (memory space, first float, end float)


@dataclass
class Access:
    """The memory one kernel reads and writes, and whether it runs on thread 0 alone."""

    reads: list[Region]
    writes: list[Region]
    single: bool


def overlap(a: Region, b: Region) -> bool:
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def place_barriers(accesses: list[Access]) -> list[bool]:
    """Where the entry needs an ``omp barrier`` (before kernel k when ``result[k]``).

    Since the last barrier, threads may be anywhere in the kernels issued so far. Kernel k must
    wait if it reads memory one of them writes (read after write), or writes memory one of them
    reads or writes (write after read/write: the memory planner reuses arena blocks). Two
    kernels that both run on thread 0 alone never need one between them (one thread runs them
    in program order)."""
    out = []
    pending: list[tuple[Region, bool, bool]] = []  # (region, written?, single?)
    for acc in accesses:
        hazard = False
        for region, written, single in pending:
            if single and acc.single:
                continue
            if any(overlap(region, w) for w in acc.writes) or (
                written and any(overlap(region, r) for r in acc.reads)
            ):
                hazard = True
                break
        out.append(hazard)
        if hazard:
            pending = []
        pending += [(r, False, acc.single) for r in acc.reads]
        pending += [(w, True, acc.single) for w in acc.writes]
    return out


def dependencies(accesses: list[Access]) -> list[list[int]]:
    """For the worker-pool runtime: the earlier kernels each kernel must wait for (completion
    counters instead of barriers). Kernel k depends on kernel j < k when k reads memory j
    writes, or writes memory j reads or writes (the same hazards as :func:`place_barriers`;
    any thread may run any kernel, so no kernel is exempt)."""
    out: list[list[int]] = []
    for k, acc in enumerate(accesses):
        deps = []
        for j in range(k):
            prev = accesses[j]
            if any(overlap(w, r) for w in prev.writes for r in acc.reads) or any(
                overlap(x, w) for x in (*prev.reads, *prev.writes) for w in acc.writes
            ):
                deps.append(j)
        out.append(deps)
    return out


def ordered_pairs(stage_deps: list[list[int]]) -> set[tuple[int, int]]:
    """Every (earlier, later) stage pair a schedule orders, directly or through a chain of
    waits: the transitive closure of ``stage_deps`` (each stage lists earlier stages only)."""
    before: list[set[int]] = []
    for deps in stage_deps:
        mine: set[int] = set()
        for j in deps:
            mine |= {j} | before[j]
        before.append(mine)
    return {(j, k) for k, mine in enumerate(before) for j in mine}
