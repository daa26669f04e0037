"""``REPORT.md`` (and ``--html``) from run directories, written for people.

Layout of the report:

1. a top table, one row per system: its headline experiment's claim, the verdict over that
   experiment's claims, the seeds and the wall time;
2. one section per system: for each run, its claims table (scale, seeds and ``--set``
   overrides on every row), the key plot inline, the tables the experiment recorded, the
   command that reproduces the run, and the run's environment (commit, versions, machine).

A run made with ``--set`` overrides is a different run from the preset one: it gets its own
heading, says which fields it changed, and never stands in for the preset run of the same
experiment and scale (nor for the headline row of the top table). For each (experiment,
scale, overrides) the newest complete run is shown (the newest partial one when none
finished).

The document is built once as a list of blocks and rendered twice: Markdown (plots linked
relative to the report) and one self-contained HTML page (plots embedded as base64).
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenml.core.experiment import SCALES, Claim
from provenml.core.stats import summarize
from provenml.errors import ProvenmlError

# --------------------------------------------------------------------------------------------
# Run directories
# --------------------------------------------------------------------------------------------


@dataclass
class RunRecord:
    """One run directory as the report sees it (``result.json``, ``env.json``, ``config.json``)."""

    path: Path
    result: dict[str, Any]
    env: dict[str, Any]
    config: dict[str, Any]

    @property
    def experiment(self) -> str:
        return str(self.result.get("experiment", self.path.name))

    @property
    def system(self) -> str:
        return str(self.result.get("system", ""))

    @property
    def scale(self) -> str:
        return str(self.result.get("scale", "?"))

    @property
    def status(self) -> str:
        return str(self.result.get("status", "?"))

    @property
    def overrides(self) -> dict[str, str]:
        """The ``--set key=value`` overrides of this run (empty for the preset run)."""
        raw = self.result.get("overrides", self.config.get("overrides")) or {}
        return {str(k): str(v) for k, v in raw.items()}

    @property
    def is_preset(self) -> bool:
        return not self.overrides

    @property
    def seeds_planned(self) -> list[int]:
        return [int(s) for s in self.result.get("seeds", self.config.get("seeds", []))]

    @property
    def seeds(self) -> list[int]:
        """The seeds whose results are in the aggregate."""
        finished = self.result.get("seeds_finished")
        return [int(s) for s in (self.seeds_planned if finished is None else finished)]

    @property
    def label(self) -> str:
        """``NAME [scale]``, or ``NAME [scale, --set k=v ...]`` for a run with overrides."""
        return f"{self.experiment} [{run_variant(self.scale, self.overrides)}]"

    @property
    def claims(self) -> list[Claim]:
        return [Claim.from_dict(c) for c in self.result.get("claims", [])]

    @property
    def wall_time_s(self) -> float | None:
        value = self.result.get("wall_time_s")
        return float(value) if isinstance(value, int | float) else None

    def plots(self) -> list[Path]:
        """The run's plots over all seeds, else those of its first seed."""
        own = sorted(self.path.glob("*.png"))
        if own:
            return own
        seed_dirs = sorted(p for p in self.path.glob("seed-*") if p.is_dir())
        return sorted(seed_dirs[0].glob("*.png")) if seed_dirs else []

    def command(self) -> str:
        """The ``provenml reproduce`` command line that repeats this run."""
        parts = ["provenml", "reproduce", self.experiment, "--scale", self.scale]
        seeds = self.seeds_planned
        if seeds and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
            if len(seeds) > 1:
                parts += ["--seeds", str(len(seeds))]
            if seeds[0] != 0:
                parts += ["--seed", str(seeds[0])]
        device = str(self.env.get("device", "cpu"))
        if device.startswith("cuda"):
            parts += ["--device", device]
        for key, value in self.overrides.items():
            parts += ["--set", f"{key}={value}"]
        return shlex.join(parts)


def run_variant(scale: str, overrides: Mapping[str, str]) -> str:
    """``small`` or ``small, --set steps=60 lr=0.1``: what was run, in one phrase."""
    if not overrides:
        return scale
    return f"{scale}, --set " + " ".join(f"{k}={v}" for k, v in overrides.items())


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def _system_order(system: str) -> tuple[int, str]:
    digits = re.sub(r"\D", "", system)
    return (int(digits) if digits else 10**6, system)


def _run_key(rec: RunRecord) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    return (rec.experiment, rec.scale, tuple(sorted(rec.overrides.items())))


def load_run(run_dir: Path) -> RunRecord | None:
    """The run in ``run_dir``, or ``None`` when it has no readable ``result.json``."""
    result = _read_json(run_dir / "result.json")
    if not result:
        return None
    return RunRecord(
        run_dir, result, _read_json(run_dir / "env.json"), _read_json(run_dir / "config.json")
    )


def load_runs(runs_dir: Path, latest_only: bool = True) -> list[RunRecord]:
    """Every run directory under ``runs_dir``.

    With ``latest_only`` one run per (experiment, scale, overrides): the newest complete one,
    or the newest partial one when none completed. A run with ``--set`` overrides is never
    merged with the preset run of the same experiment and scale.
    """
    if not runs_dir.is_dir():
        raise ProvenmlError(f"runs directory {runs_dir} does not exist; run `provenml reproduce`")
    records = [
        rec
        for rec in (load_run(path.parent) for path in sorted(runs_dir.glob("*/result.json")))
        if rec is not None
    ]
    if latest_only:
        chosen: dict[tuple[str, str, tuple[tuple[str, str], ...]], RunRecord] = {}
        for rec in records:  # directory names end in a timestamp: sorted order is age order
            key = _run_key(rec)
            previous = chosen.get(key)
            if previous is None or rec.status == "complete" or previous.status != "complete":
                chosen[key] = rec
        records = list(chosen.values())
    scale_rank = {s: i for i, s in enumerate(SCALES)}
    return sorted(
        records,
        key=lambda r: (
            _system_order(r.system),
            r.experiment,
            not r.is_preset,
            scale_rank.get(r.scale, len(SCALES)),
            sorted(r.overrides.items()),
        ),
    )


# --------------------------------------------------------------------------------------------
# Claims as rows
# --------------------------------------------------------------------------------------------


def format_values(values: list[float]) -> str:
    """Mean ± 95% CI half-width over seeds (just the value for one seed)."""
    return summarize(values).format(3)


def format_seeds(seeds: Sequence[int]) -> str:
    """``3 (0, 1, 2)``: how many seeds and which."""
    if not seeds:
        return "0"
    return f"{len(seeds)} ({', '.join(str(s) for s in seeds)})"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _p_text(p_values: Mapping[str, float]) -> str:
    return " (p " + ", ".join(f"{p:.3g}" for p in p_values.values()) + ")" if p_values else ""


def _ours_text(claim: Claim) -> str:
    if claim.is_for_each:
        held = sum(m.verdict == "holds" for m in claim.members.values())
        return f"{claim.ours_label}: {held} of {len(claim.members)} hold"
    return f"{claim.ours_label} {format_values(claim.ours)}"


def _verdict_why(claim: Claim) -> str:
    """Why the verdict: the failing members, or the reason it is inconclusive."""
    extra = []
    if claim.failing:
        extra.append("failing: " + ", ".join(claim.failing))
    if claim.reason:
        extra.append(claim.reason)
    return "; ".join(extra)


def claim_rows(records: list[RunRecord]) -> list[dict[str, str]]:
    """One row of strings per claim of every record (the report's and the CLI's tables)."""
    rows = []
    for rec in records:
        for claim in rec.claims:
            baselines = "; ".join(
                f"{name} {format_values(vals)}" for name, vals in claim.baselines.items()
            )
            seeds = claim.seeds or rec.seeds
            rows.append(
                {
                    "system": rec.system,
                    "experiment": rec.label,
                    "name": rec.experiment,
                    "key": claim.key,
                    "claim": claim.statement,
                    "metric": claim.metric,
                    "ours": _ours_text(claim),
                    "comparison": claim.comparison_text(),
                    "baselines": (baselines + _p_text(claim.p_values)).strip(),
                    "verdict": claim.verdict,
                    "why": _verdict_why(claim),
                    "seeds": str(len(seeds) or len(claim.ours)),
                    "seed_list": ", ".join(str(s) for s in seeds),
                    "scale": rec.scale,
                    "overrides": " ".join(f"{k}={v}" for k, v in rec.overrides.items()),
                    "status": rec.status,
                }
            )
    return rows


def member_rows(claim: Claim) -> list[tuple[str, str, str, str]]:
    """A "for each" claim's members: name, ours, reference, verdict (with its reason)."""
    rows = []
    for name, member in claim.members.items():
        if member.baselines:
            reference = "; ".join(f"{b} {format_values(v)}" for b, v in member.baselines.items())
        elif member.threshold is not None:
            reference = "(the claim's threshold)"
        elif claim.baselines:
            reference = "(the claim's baselines)"
        else:
            reference = "(the claim's threshold)"
        verdict = member.verdict + (f" ({member.reason})" if member.reason else "")
        rows.append(
            (name, format_values(member.ours), reference + _p_text(member.p_values), verdict)
        )
    return rows


def overall_verdict(claims: Sequence[Claim]) -> str:
    """``holds`` when every claim holds, ``fails`` when any fails, else ``inconclusive``."""
    verdicts = [c.verdict for c in claims]
    if not verdicts:
        return "no claims"
    if all(v == "holds" for v in verdicts):
        return "holds"
    if any(v == "fails" for v in verdicts):
        return "fails"
    return "inconclusive"


# --------------------------------------------------------------------------------------------
# The document: blocks rendered to Markdown or HTML
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    """Text with inline markup: ``code``, **bold**, [text](link)."""

    text: str


@dataclass(frozen=True)
class TableBlock:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Image:
    path: Path
    alt: str


@dataclass(frozen=True)
class Gallery:
    """Further plots: linked in Markdown, embedded (folded) in HTML."""

    paths: tuple[Path, ...]


@dataclass(frozen=True)
class CodeBlock:
    text: str


Block = Heading | Paragraph | TableBlock | Image | Gallery | CodeBlock


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> TableBlock:
    return TableBlock(tuple(header), tuple(tuple(str(c) for c in row) for row in rows))


def _verdict_cell(verdict: str, status: str, why: str = "") -> str:
    cell = f"**{verdict}**" + (f" ({why})" if why else "")
    return cell + ("" if status == "complete" else f" ({status} run)")


def _code(text: str) -> str:
    return f"`{text.replace('`', '')}`"


def _environment_line(rec: RunRecord) -> str:
    env = rec.env
    commit = env.get("git_commit")
    parts = [f"commit {_code(str(commit)[:10])}" if commit else "commit unknown"]
    for key, label in (
        ("provenml", "provenml"),
        ("python", "Python"),
        ("torch", "torch"),
        ("numpy", "numpy"),
        ("scipy", "scipy"),
    ):
        if env.get(key):
            parts.append(f"{label} {env[key]}")
    machine = env.get("platform", "?")
    if env.get("cpu_count"):
        machine += f", {env['cpu_count']} CPUs"
    parts.append(f"machine {machine}")
    device = str(env.get("device", "?"))
    if env.get("gpu"):
        device += f" ({env['gpu']})"
    parts.append(f"device {device}")
    if env.get("date"):
        parts.append(f"started {env['date']}")
    return "Environment: " + "; ".join(parts) + "."


def _result_tables(rec: RunRecord) -> list[Block]:
    """The tables an experiment recorded in ``Result.tables`` (absent in older runs).

    Accepted forms: ``{title: {"columns": [...], "rows": [[...], ...]}}`` or a list of
    ``{"title": ..., "columns": [...], "rows": [...]}``; rows may be lists or dicts.
    """
    raw = rec.result.get("tables")
    if not raw:
        return []
    items: list[tuple[str, Any]]
    if isinstance(raw, Mapping):
        items = [(str(title), table) for title, table in raw.items()]
    else:
        items = [(str(t.get("title", "")), t) for t in raw if isinstance(t, Mapping)]
    blocks: list[Block] = []
    for title, table in items:
        if not isinstance(table, Mapping):
            continue
        rows = list(table.get("rows", []))
        columns = list(table.get("columns", []))
        if not columns and rows and isinstance(rows[0], Mapping):
            columns = list(rows[0])
        if not columns:
            continue
        cells = [
            [_cell(row.get(c, "")) for c in columns]
            if isinstance(row, Mapping)
            else [_cell(v) for v in row]
            for row in rows
        ]
        if title:
            blocks.append(Paragraph(f"**{title}**"))
        blocks.append(_table(columns, cells))
    return blocks


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


CLAIM_COLUMNS = ("claim", "metric", "ours", "", "baselines", "verdict", "scale", "seeds", "--set")


def _run_blocks(rec: RunRecord, headline: bool) -> list[Block]:
    blocks: list[Block] = [Heading(3, rec.label + (" (headline)" if headline else ""))]
    if rec.result.get("claim"):
        blocks.append(Paragraph(str(rec.result["claim"])))
    if not rec.is_preset:
        changed = ", ".join(_code(f"{k}={v}") for k, v in rec.overrides.items())
        blocks.append(
            Paragraph(
                f"**Run with `--set` overrides** ({changed}): not the `{rec.scale}` preset; "
                "its numbers are reported here only, never in place of the preset run."
            )
        )
    rows = claim_rows([rec])
    blocks.append(
        _table(
            CLAIM_COLUMNS,
            [
                (
                    r["claim"],
                    r["metric"],
                    r["ours"],
                    r["comparison"],
                    r["baselines"],
                    _verdict_cell(r["verdict"], r["status"], r["why"]),
                    r["scale"],
                    format_seeds([int(s) for s in r["seed_list"].split(", ") if s]),
                    r["overrides"] or "(preset)",
                )
                for r in rows
            ],
        )
    )
    if not rows:
        blocks.append(Paragraph("No claims were recorded (the run stopped before any seed ended)."))
    for claim in rec.claims:
        if claim.is_for_each:
            blocks.append(Paragraph(f"**{claim.statement}**: each member"))
            blocks.append(_table(("member", "ours", "reference", "verdict"), member_rows(claim)))
    status = f"status {rec.status}" + (
        f" ({rec.result['error']})" if rec.result.get("error") else ""
    )
    blocks.append(
        Paragraph(
            f"Seeds {format_seeds(rec.seeds)} of {len(rec.seeds_planned)} planned; {status}; "
            f"wall time {format_duration(rec.wall_time_s)}; run directory "
            f"[{rec.path.name}]({rec.path})."
        )
    )
    plots = rec.plots()
    if plots:
        blocks.append(Image(plots[0], plots[0].stem))
        if plots[0].parent != rec.path:
            blocks.append(Paragraph(f"(The plot of {plots[0].parent.name}.)"))
        if len(plots) > 1:
            blocks.append(Gallery(tuple(plots[1:])))
    blocks += _result_tables(rec)
    for note in rec.result.get("notes", []):
        blocks.append(Paragraph(f"Note: {note}"))
    blocks.append(Paragraph("Reproduce:"))
    blocks.append(CodeBlock(rec.command()))
    blocks.append(Paragraph(_environment_line(rec)))
    return blocks


def _headline_run(runs: list[RunRecord], headline: str | None) -> RunRecord | None:
    """The preset run that stands for a system in the top table.

    With a known ``headline`` experiment: its preset run (complete before partial, then the
    largest scale), or ``None`` when it was not run at a preset. Without one: the system's
    first preset run. A run with ``--set`` overrides is never chosen.
    """
    presets = [r for r in runs if r.is_preset and (headline is None or r.experiment == headline)]
    if not presets:
        return None
    if headline is None:
        return presets[0]
    scale_rank = {s: i for i, s in enumerate(SCALES)}
    return max(presets, key=lambda r: (r.status == "complete", scale_rank.get(r.scale, -1)))


def build_report(
    records: list[RunRecord],
    runs_dir: Path,
    headlines: Mapping[str, str] | None = None,
    about: Mapping[str, str] | None = None,
) -> list[Block]:
    """The report as blocks. ``headlines`` maps a system to its headline experiment (from the
    registry; a system missing from it has none marked); ``about`` maps a system to a line
    under its heading (its package and documentation page, with inline markup)."""
    by_system: dict[str, list[RunRecord]] = {}
    for rec in records:
        by_system.setdefault(rec.system, []).append(rec)
    blocks: list[Block] = [
        Heading(1, "provenml reproduction report"),
        Paragraph(
            f"Generated from {_code(str(runs_dir))}: {len(records)} runs of "
            f"{len({r.experiment for r in records})} experiments. Values are means over seeds "
            "with a 95% Student-t confidence interval; p is a one-sided paired test over seeds. "
            "Every verdict is computed from the measured numbers; an experiment's verdict is "
            "`holds` only when each of its claims holds. A run with `--set` overrides is shown "
            "on its own, never in place of the preset run."
        ),
    ]
    top_rows = []
    chosen: dict[str, RunRecord | None] = {}
    for system, runs in by_system.items():
        headline = (headlines or {}).get(system)
        rec = _headline_run(runs, headline)
        chosen[system] = rec
        if rec is None:
            top_rows.append((system, f"{headline}: not run at a preset scale", "not run", "-", "-"))
            continue
        claims = rec.claims
        held = sum(c.verdict == "holds" for c in claims)
        verdict = _verdict_cell(overall_verdict(claims), rec.status)
        top_rows.append(
            (
                system,
                f"{rec.result.get('claim', '')} ({rec.label})",
                f"{verdict} ({held}/{len(claims)} claims hold)",
                format_seeds(rec.seeds),
                format_duration(rec.wall_time_s),
            )
        )
    blocks.append(_table(("system", "headline claim", "verdict", "seeds", "time"), top_rows))
    environments = {
        (r.env.get("platform"), r.env.get("cpu_count"), r.env.get("device")) for r in records
    }
    if len(environments) > 1:
        blocks.append(
            Paragraph("The runs come from more than one machine or device; each run names its own.")
        )
    for system, runs in by_system.items():
        head = chosen.get(system)
        blocks.append(Heading(2, system or "(no system)"))
        if about and system in about:
            blocks.append(Paragraph(about[system]))
        ordered = ([head] if head is not None else []) + [r for r in runs if r is not head]
        for rec in ordered:
            blocks += _run_blocks(rec, headline=rec is head and system in (headlines or {}))
    return blocks


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: Sequence[Block], out: Path) -> str:
    """Markdown; images and links to files point relative to ``out``'s folder."""
    base = out.resolve().parent
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            lines += [_relative_links(block.text, base), ""]
        elif isinstance(block, TableBlock):
            lines.append("| " + " | ".join(_md_cell(h) for h in block.header) + " |")
            lines.append("|" + "---|" * len(block.header))
            for row in block.rows:
                lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
            lines.append("")
        elif isinstance(block, Image):
            lines += [f"![{block.alt}]({os.path.relpath(block.path.resolve(), base)})", ""]
        elif isinstance(block, Gallery):
            links = ", ".join(
                f"[{p.stem}]({os.path.relpath(p.resolve(), base)})" for p in block.paths
            )
            lines += [f"More plots: {links}.", ""]
        elif isinstance(block, CodeBlock):
            lines += ["```bash", block.text, "```", ""]
    return "\n".join(lines).rstrip() + "\n"


_LINK = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")


def _relative_links(text: str, base: Path) -> str:
    def repl(match: re.Match[str]) -> str:
        target = Path(match.group(2))
        if target.is_absolute() or target.exists():
            return f"[{match.group(1)}]({os.path.relpath(target.resolve(), base)})"
        return match.group(0)

    return _LINK.sub(repl, text)


def _inline_html(text: str, base: Path) -> str:
    """Escape, then turn `code`, **bold** and [text](link) into HTML."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)

    def link(match: re.Match[str]) -> str:
        target = Path(html.unescape(match.group(2)))
        href = os.path.relpath(target.resolve(), base) if target.exists() else match.group(2)
        return f'<a href="{html.escape(str(href))}">{match.group(1)}</a>'

    return _LINK.sub(link, out)


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.5rem; vertical-align: top; text-align: left; }
th { background: #f3f3f3; }
code, pre { background: #f6f6f6; font-family: ui-monospace, monospace; }
pre { padding: 0.6rem; overflow-x: auto; }
img { max-width: 100%; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2.5rem; }
"""


def _embedded_png(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def render_html(blocks: Sequence[Block], out: Path) -> str:
    """One self-contained HTML page: the plots are embedded as base64 PNG data."""
    base = out.resolve().parent
    title = next((b.text for b in blocks if isinstance(b, Heading)), "provenml report")
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_inline_html(block.text, base)}</p>")
        elif isinstance(block, TableBlock):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_inline_html(c, base)}</td>" for c in row) + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(block, Image):
            body.append(f"<p>{_embedded_png(block.path, block.alt)}</p>")
        elif isinstance(block, Gallery):
            images = "".join(f"<p>{_embedded_png(p, p.stem)}</p>" for p in block.paths)
            body.append(
                f"<details><summary>{len(block.paths)} more plots</summary>{images}</details>"
            )
        elif isinstance(block, CodeBlock):
            body.append(f"<pre><code>{html.escape(block.text)}</code></pre>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_report(
    runs_dir: Path,
    out: Path,
    *,
    headlines: Mapping[str, str] | None = None,
    about: Mapping[str, str] | None = None,
    html_out: Path | None = None,
) -> tuple[Path, list[dict[str, str]]]:
    """Write the Markdown report (and the HTML page when ``html_out`` is given); return the
    report's path and the claim rows (for printing)."""
    records = load_runs(runs_dir)
    if not records:
        raise ProvenmlError(f"no run directories with a result.json under {runs_dir}")
    blocks = build_report(records, runs_dir, headlines, about)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_markdown(blocks, out))
    if html_out is not None:
        html_out.parent.mkdir(parents=True, exist_ok=True)
        html_out.write_text(render_html(blocks, html_out))
    return out, claim_rows(records)
