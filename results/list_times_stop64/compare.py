"""Compare this stop's re-runs with the committed result files, claim by claim.

Usage: ``python results/list_times_stop64/compare.py RUNS_DIR`` (the ``--out`` of
``batch.sh``); prints, per experiment, the committed run's commit and seeds and each claim's
verdict then and now, with the measured values of both.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1]


def _values(claim: dict) -> str:
    ours = claim.get("ours") or []
    mean = sum(ours) / len(ours) if ours else float("nan")
    baselines = {
        name: round(sum(v) / len(v), 3) for name, v in (claim.get("baselines") or {}).items() if v
    }
    members = {
        name: [round(sum(v) / len(v), 3) for v in (m["ours"], *m.get("baselines", {}).values())]
        for name, m in (claim.get("members") or {}).items()
        if m.get("ours")
    }
    text = f"ours {mean:.3f}" if ours else ""
    if baselines:
        text += f" vs {baselines}"
    if members:
        text += f" members {members}"
    return text


def main(runs: Path) -> None:
    for run in sorted(runs.glob("*/result.json")):
        new = json.loads(run.read_text())
        name = new["experiment"]
        committed = RESULTS / name / "result.json"
        if not committed.exists():
            print(f"{name}: no committed result file")
            continue
        old = json.loads(committed.read_text())
        commit = json.loads((committed.parent / "env.json").read_text()).get("git_commit", "?")
        print(
            f"{name}: {new.get('wall_time_s')} s in the harness; committed {commit[:7]} "
            f"seeds {old['seeds']}, now {new['seeds']}"
        )
        before = {claim["key"]: claim for claim in old["claims"]}
        for claim in new["claims"]:
            was = before.get(claim["key"], {})
            changed = "" if was.get("verdict") == claim["verdict"] else "   <- verdict changed"
            print(f"  {claim['key']}: {was.get('verdict')} -> {claim['verdict']}{changed}")
            print(f"      then: {_values(was)}")
            print(f"      now:  {_values(claim)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
