"""Per-seed, per-agent wall seconds of a split run (``--jobs``): one row per seed.

Usage: ``python results/metarl_rl2_stop65/parts.py RUN_DIR`` (the run's folder under
``--out``); prints each part's agent and ``wall_time_s``, then each agent's range over
seeds and the sum of all parts (unit-seconds: the two workers' busy time together).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(run: Path) -> None:
    per_agent: dict[str, list[float]] = {}
    for seed in sorted(run.glob("seed-*")):
        row = []
        for part in sorted(seed.glob("part-*/result.json")):
            data = json.loads(part.read_text())
            agent = next(iter(data["data"]["runs"]))
            per_agent.setdefault(agent, []).append(data["wall_time_s"])
            row.append(f"{agent} {data['wall_time_s']:.0f} s")
        print(f"{seed.name}: " + ", ".join(row))
    for agent, times in per_agent.items():
        print(f"{agent}: {min(times):.0f}-{max(times):.0f} s per seed")
    total = sum(t for times in per_agent.values() for t in times)
    print(f"all parts: {total:.0f} unit-seconds, {total / 2:.0f} s per core on two")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
