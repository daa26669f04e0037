"""Flower simulation against a plain single-process FedAvg loop over the same clients.

Both run the same ``client_update`` / FedAvg on the same ShapesWorld clients for ``--rounds``
rounds; the Flower run goes through ``flwr.simulation.run_simulation`` (Ray backend, one CPU
and one torch thread per virtual client), the loop through ``run_loop`` in this process. It
prints rounds per minute of each (the Flower figure includes Ray's start-up), the
largest weight difference between the two (they must agree), and the peak resident memory of
this process and of all Ray worker processes together, sampled every 0.2 s.

    .venv/bin/python benchmarks/bench_federated.py [--rounds 5] [--clients 20] [--per-round 10]

Quote the load average printed with the result: timings mean little while other jobs run.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from dataclasses import replace

import torch

from provenml.federated.engine import ARMS, DataSettings, FLSettings, build_federation, run_loop
from provenml.federated.flower import run_flower_simulation


def _rss_of_tree() -> int:
    """Resident memory (bytes) of this process and every descendant (Ray's workers)."""
    total, me = 0, os.getpid()
    parents: dict[int, int] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as handle:
                parents[int(pid)] = int(handle.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    tree, frontier = {me}, [me]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    for pid in tree:
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
    return total


class PeakMemory:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_of_tree())
            time.sleep(0.2)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = replace(
        FLSettings(),
        data=replace(DataSettings(), num_clients=args.clients),
        rounds=args.rounds,
        clients_per_round=args.per_round,
    )
    fed = build_federation(settings, args.seed)
    start = time.perf_counter()
    loop = run_loop(ARMS.get("fedavg"), fed)
    loop_s = time.perf_counter() - start
    with PeakMemory() as memory:
        start = time.perf_counter()
        flower = run_flower_simulation("fedavg", settings, args.seed)
        flower_s = time.perf_counter() - start
    diff = max((loop.state[k] - flower.state[k]).abs().max().item() for k in loop.state)
    print(f"load average before/after: {os.getloadavg()}")
    print(f"clients {args.clients}, {args.per_round} per round, {args.rounds} rounds")
    print(f"loop:   {loop_s:7.1f} s  {60 * args.rounds / loop_s:7.2f} rounds/min")
    flower_rate = 60 * args.rounds / flower_s
    print(f"flower: {flower_s:7.1f} s  {flower_rate:7.2f} rounds/min (Ray start-up included)")
    print(f"largest weight difference flower - loop: {diff:.2e}")
    print(f"peak resident memory, this process + Ray workers: {memory.peak / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
