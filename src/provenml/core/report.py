"""``REPORT.md`` from run directories: one claims table, then each run's plots."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenml.core.experiment import Claim, ProvenmlError
from provenml.core.stats import summarize


@dataclass
class RunRecord:
    """One run directory as the report sees it."""

    path: Path
    result: dict[str, Any]
    env: dict[str, Any]

    @property
    def experiment(self) -> str:
        return str(self.result.get("experiment", self.path.name))

    @property
    def scale(self) -> str:
        return str(self.result.get("scale", "?"))

    @property
    def claims(self) -> list[Claim]:
        return [Claim.from_dict(c) for c in self.result.get("claims", [])]

    def plots(self) -> list[Path]:
        own = sorted(self.path.glob("*.png"))
        if own:
            return own
        seed_dirs = sorted(p for p in self.path.glob("seed-*") if p.is_dir())
        return sorted(seed_dirs[0].glob("*.png")) if seed_dirs else []


def load_runs(runs_dir: Path, latest_only: bool = True) -> list[RunRecord]:
    """Every run directory under ``runs_dir`` (the newest per experiment and scale by default)."""
    if not runs_dir.is_dir():
        raise ProvenmlError(f"runs directory {runs_dir} does not exist; run `provenml reproduce`")
    records = []
    for result_path in sorted(runs_dir.glob("*/result.json")):
        try:
            result = json.loads(result_path.read_text())
        except (json.JSONDecodeError, OSError):
            continue
        env_path = result_path.parent / "env.json"
        env = json.loads(env_path.read_text()) if env_path.exists() else {}
        records.append(RunRecord(result_path.parent, result, env))
    if latest_only:
        newest: dict[tuple[str, str], RunRecord] = {}
        for rec in records:  # directory names end in a timestamp, so sorted order is age order
            newest[(rec.experiment, rec.scale)] = rec
        records = list(newest.values())
    return sorted(records, key=lambda r: (str(r.result.get("system", "")), r.experiment))


def format_values(values: list[float]) -> str:
    """Mean ± 95% CI half-width over seeds (just the value for one seed)."""
    return summarize(values).format(3)


def claim_rows(records: list[RunRecord]) -> list[dict[str, str]]:
    rows = []
    for rec in records:
        for claim in rec.claims:
            baselines = "; ".join(
                f"{name} {format_values(vals)}" for name, vals in claim.baselines.items()
            )
            if claim.p_values:
                baselines += " (p " + ", ".join(f"{p:.3g}" for p in claim.p_values.values()) + ")"
            rows.append(
                {
                    "system": str(rec.result.get("system", "")),
                    "experiment": f"{rec.experiment} [{rec.scale}]",
                    "claim": claim.statement,
                    "metric": claim.metric,
                    "ours": f"{claim.ours_label} {format_values(claim.ours)}",
                    "comparison": claim.comparison
                    + (f" (margin {claim.margin:g})" if claim.margin else ""),
                    "baselines": baselines,
                    "verdict": claim.verdict,
                    "seeds": str(len(claim.seeds) or len(claim.ours)),
                    "status": str(rec.result.get("status", "?")),
                }
            )
    return rows


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_report(runs_dir: Path, out: Path) -> tuple[Path, list[dict[str, str]]]:
    """Write the report; return its path and the claim rows (for printing)."""
    records = load_runs(runs_dir)
    if not records:
        raise ProvenmlError(f"no run directories with a result.json under {runs_dir}")
    rows = claim_rows(records)
    env = records[-1].env
    lines = [
        "# provenml reproduction report",
        "",
        f"Generated from `{runs_dir}`. Machine: {env.get('platform', '?')}, "
        f"{env.get('cpu_count', '?')} CPUs, device {env.get('device', '?')}, "
        f"torch {env.get('torch', '?')}; latest run {env.get('date', '?')}.",
        "",
        "Values are means over seeds with a 95% Student-t confidence interval.",
        "",
        "| system | experiment | claim | metric | ours | | baselines | verdict | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        verdict = row["verdict"] if row["status"] == "complete" else f"{row['verdict']} (partial)"
        cells = [
            row[k]
            for k in ("system", "experiment", "claim", "metric", "ours", "comparison", "baselines")
        ] + [f"**{verdict}**", row["seeds"]]
        lines.append("| " + " | ".join(_escape(c) for c in cells) + " |")
    for rec in records:
        lines += ["", f"## {rec.experiment} [{rec.scale}]", ""]
        lines.append(
            f"Run directory `{rec.path}`, status {rec.result.get('status')}, "
            f"wall time {rec.result.get('wall_time_s', '?')} s."
        )
        for note in rec.result.get("notes", []):
            lines += ["", f"> {note}"]
        for plot in rec.plots():
            rel = os.path.relpath(plot.resolve(), out.resolve().parent)
            lines += ["", f"![{plot.stem}]({rel})"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out, rows
