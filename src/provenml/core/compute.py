"""Compute accounting: FLOPs measured with ``torch.utils.flop_counter``, wall time, peak memory.

FLOPs are never written as formulas. :meth:`ComputeLedger.charge` runs a callable and counts the
FLOPs of its first call per ``key`` under :class:`~torch.utils.flop_counter.FlopCounterMode`
(shapes fixed per key, so later calls cost the same); later calls run at full speed and are
charged the measured amount. Pass a fresh key whenever the shapes change.
"""

from __future__ import annotations

import resource
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
from torch.utils.flop_counter import FlopCounterMode

T = TypeVar("T")


def count_flops(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, int]:
    """Run ``fn(*args, **kwargs)`` once under ``FlopCounterMode``; return (output, FLOPs)."""
    with FlopCounterMode(display=False) as counter:
        out = fn(*args, **kwargs)
    return out, int(counter.get_total_flops())


class ComputeLedger:
    """FLOPs and wall time per category (e.g. ``"learner"``, ``"scoring"``, ``"reference"``)."""

    def __init__(self) -> None:
        self.flops: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)
        self._per_call: dict[tuple[str, Hashable], int] = {}

    def charge(
        self, category: str, fn: Callable[..., T], *args: Any, key: Hashable = None, **kwargs: Any
    ) -> T:
        """Run ``fn`` and add its FLOPs (measured on the first call per key) to ``category``."""
        cache_key = (category, key)
        start = time.perf_counter()
        if cache_key in self._per_call:
            out = fn(*args, **kwargs)
            flops = self._per_call[cache_key]
        else:
            out, flops = count_flops(fn, *args, **kwargs)
            self._per_call[cache_key] = flops
        self.seconds[category] += time.perf_counter() - start
        self.flops[category] += flops
        self.calls[category] += 1
        return out

    @contextmanager
    def timed(self, category: str) -> Iterator[None]:
        """Add the wall time of the ``with`` block to ``category`` (no FLOPs)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[category] += time.perf_counter() - start

    @property
    def total_flops(self) -> int:
        return int(sum(self.flops.values()))

    def flops_per_call(self) -> dict[str, int]:
        """FLOPs of one call per category (the total over its calls, divided evenly)."""
        return {k: self.flops[k] // max(1, self.calls[k]) for k in self.flops}

    def copy(self) -> ComputeLedger:
        """An independent ledger with the same counts (and the same measured per-key FLOPs, so
        it charges known keys without measuring them again)."""
        twin = ComputeLedger()
        twin.merge(self)
        twin._per_call.update(self._per_call)
        return twin

    def merge(self, other: ComputeLedger | Mapping[str, Any], prefix: str | None = None) -> None:
        """Add ``other``'s FLOPs, calls and seconds into this ledger, each category renamed
        ``prefix/category`` when ``prefix`` is given. ``other`` is a ledger or its
        :meth:`to_dict` (e.g. from a worker's result)."""
        source = other.to_dict() if isinstance(other, ComputeLedger) else other
        for name in ("flops", "calls", "seconds"):
            target = getattr(self, name)
            for category, value in source.get(name, {}).items():
                target[f"{prefix}/{category}" if prefix else category] += value

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ComputeLedger:
        ledger = cls()
        ledger.merge(data)
        return ledger

    def to_dict(self) -> dict[str, Any]:
        return {
            "flops": dict(self.flops),
            "calls": dict(self.calls),
            "seconds": dict(self.seconds),
            "total_flops": self.total_flops,
        }


@contextmanager
def intra_op_threads(threads: int | None, device: torch.device | None = None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads on the CPU, then restore the
    setting. ``None`` or 0 keeps the current setting; on a GPU device nothing changes.

    Small models are faster with one thread per process on a busy 2-core machine: two threads
    spin-wait on each other for every tiny op.
    """
    before = torch.get_num_threads()
    change = bool(threads) and (device is None or device.type == "cpu")
    if change:
        torch.set_num_threads(int(threads))  # type: ignore[arg-type]
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(before)


def peak_memory_bytes(device: torch.device | None = None) -> int:
    """Peak memory of this process: CUDA allocator peak on a GPU, else the peak resident set."""
    if device is not None and device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)
