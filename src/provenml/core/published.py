"""Published results as data: claims tables in Markdown rendered from committed result files.

The numbers a README or docs page quotes come from ``results/<experiment>/result.json`` (with
its ``config.json`` and ``env.json``), copied from the run directory of the run quoted. A
claims table in a Markdown file is wrapped in two markers that name its experiments::

    <!-- claims:begin wsd.multibudget wsd.river_valley selection.noisy_labels -->
    | claim | ours | | baseline | verdict |
    ...
    <!-- claims:end -->

and everything between them is generated: one row per claim of each named experiment that has
a result file, in the order named, then a line per source (scale, seeds, ``--set`` overrides,
commit, date). Rows of a named experiment without a result file are kept as they are written
(they are found by the ``(experiment)`` that ends their first cell) and marked ``†``, with a
footnote saying that they are not checked against a file. ``provenml report --update FILE``
rewrites the blocks; ``--check`` only says which are stale; ``tests/test_published.py``
fails when a committed table differs from the render of its files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from provenml.core.claims import Claim
from provenml.core.report import RunRecord, claim_rows, format_seeds, load_run, member_rows
from provenml.errors import ProvenmlError

__all__ = [
    "BEGIN_MARKER",
    "END_MARKER",
    "ClaimsBlock",
    "find_blocks",
    "render_block",
    "update_file",
    "update_text",
]

BEGIN_MARKER = "<!-- claims:begin"
END_MARKER = "<!-- claims:end -->"
KEPT_MARK = "†"
HEADER = "| claim | ours | | baseline | verdict |\n|---|---|---|---|---|"

_BEGIN = re.compile(r"^<!-- claims:begin(?P<names>[^>]*?)-->[ \t]*$", re.MULTILINE)
_EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9_]+\.[A-Za-z0-9_]+$")
_ROW_EXPERIMENT = re.compile(
    r"\((?P<name>[A-Za-z0-9_]+\.[A-Za-z0-9_]+)\)(?:\s*" + KEPT_MARK + r")?\s*$"
)
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


@dataclass(frozen=True)
class ClaimsBlock:
    """One marked region of a Markdown text: the experiments it names and what it holds now.

    ``start``/``end`` delimit the body (the text between the two marker lines, newlines
    included) within the whole text."""

    experiments: tuple[str, ...]
    start: int
    end: int
    body: str
    line: int  # of the begin marker, 1-based


def find_blocks(text: str, source: str = "<text>") -> list[ClaimsBlock]:
    """Every ``claims:begin`` ... ``claims:end`` region of ``text``.

    A begin marker without an end, an end without a begin, nested markers, or a marker that
    names no experiment (or something that is not ``system.name``) is an error naming
    ``source`` and the line."""
    blocks = []
    position = 0
    for match in _BEGIN.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        if match.start() < position:
            continue
        stray_end = text.find(END_MARKER, position, match.start())
        if stray_end >= 0:
            raise ProvenmlError(
                f"{source}:{text.count(chr(10), 0, stray_end) + 1}: {END_MARKER} without a "
                f"{BEGIN_MARKER} before it"
            )
        names = tuple(match.group("names").split())
        if not names:
            raise ProvenmlError(f"{source}:{line}: {BEGIN_MARKER} names no experiment")
        bad = [n for n in names if not _EXPERIMENT_NAME.match(n)]
        if bad:
            raise ProvenmlError(
                f"{source}:{line}: {BEGIN_MARKER} names {', '.join(map(repr, bad))}; "
                "expected experiment names such as wsd.multibudget"
            )
        body_start = match.end() + 1 if text[match.end() : match.end() + 1] == "\n" else match.end()
        end = text.find(END_MARKER, body_start)
        following = _BEGIN.search(text, body_start)
        if end < 0 or (following is not None and following.start() < end):
            raise ProvenmlError(f"{source}:{line}: {BEGIN_MARKER} without a {END_MARKER} after it")
        blocks.append(ClaimsBlock(names, body_start, end, text[body_start:end], line))
        position = end + len(END_MARKER)
    stray_end = text.find(END_MARKER, position)
    if stray_end >= 0:
        raise ProvenmlError(
            f"{source}:{text.count(chr(10), 0, stray_end) + 1}: {END_MARKER} without a "
            f"{BEGIN_MARKER} before it"
        )
    return blocks


def _cells(row: str) -> list[str]:
    inner = row.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [c.strip() for c in _CELL_SPLIT.split(inner)]


def _written_rows(body: str) -> dict[str, list[str]]:
    """The table rows of a block's current body, by the experiment ending their first cell."""
    rows: dict[str, list[str]] = {}
    for line in body.splitlines():
        if not line.lstrip().startswith("|"):
            continue
        match = _ROW_EXPERIMENT.search(_cells(line)[0])
        if match is not None:
            rows.setdefault(match.group("name"), []).append(line.rstrip())
    return rows


def _mark_kept(row: str) -> str:
    """``row`` with ``†`` after the ``(experiment)`` of its first cell (once)."""
    cells = _cells(row)
    if not cells[0].endswith(KEPT_MARK):
        cells[0] = f"{cells[0]} {KEPT_MARK}"
    return "| " + " | ".join(cells) + " |"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


#: A "for each" claim with more members than this lists only those that do not hold.
MAX_MEMBERS_SHOWN = 4


def _member_cell(claim: Claim) -> str:
    """``member: ours vs reference`` for each member (only the ones that do not hold when
    there are more than :data:`MAX_MEMBERS_SHOWN`, with a count of the others)."""
    rows = member_rows(claim)
    if len(rows) > MAX_MEMBERS_SHOWN:
        shown = [r for r in rows if claim.members[r[0]].verdict != "holds"]
        rest = len(rows) - len(shown)
    else:
        shown, rest = rows, 0
    text = "; ".join(f"{name}: {ours} vs {ref}" for name, ours, ref, _ in shown)
    if rest:
        text += ("; " if text else "") + f"{rest} more hold"
    return text


def claim_table_rows(record: RunRecord) -> list[str]:
    """One Markdown row per claim of ``record``: claim (experiment), ours, comparison,
    reference, verdict (with the failing members or the reason when there is one). A "for
    each" claim lists its members in the reference cell (:func:`_member_cell`)."""
    lines = []
    for claim, row in zip(record.claims, claim_rows([record]), strict=True):
        verdict = f"**{row['verdict']}**" + (f" ({row['why']})" if row["why"] else "")
        reference = row["baselines"]
        if claim.is_for_each:
            reference = _member_cell(claim)
        cells = (
            f"{row['claim']} ({record.experiment})",
            row["ours"],
            row["comparison"],
            reference,
            verdict,
        )
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    return lines


def source_line(record: RunRecord, shown_dir: str) -> str:
    """Where a block's rows for one experiment come from (a link to the file, ``shown_dir``
    being the results folder as seen from the Markdown file), and what was run."""
    what = [record.scale, f"seeds {format_seeds(record.seeds)}"]
    if record.overrides:
        what.append("--set " + " ".join(f"{k}={v}" for k, v in record.overrides.items()))
    if record.status != "complete":
        what.append(
            f"status {record.status}, {len(record.seeds)} of {len(record.seeds_planned)} seeds"
        )
    commit = str(record.env.get("git_commit") or "")
    what.append(f"commit {commit[:7]}" if commit else "commit unknown")
    if record.env.get("date"):
        what.append(str(record.env["date"])[:10])
    target = f"{shown_dir}/{record.experiment}/result.json"
    return f"- [`{target}`]({target}): " + ", ".join(what)


def render_block(
    experiments: Sequence[str], results_dir: Path, body: str = "", base: Path | None = None
) -> str:
    """The body of a claims block naming ``experiments``: rendered rows for those with a file
    in ``results_dir``, the rows already in ``body`` (marked ``†``) for those without, then the
    sources and the footnote. Paths are shown relative to ``base`` (the Markdown file's
    folder), as given when it is ``None``."""
    shown = Path(os.path.relpath(results_dir, base)) if base is not None else results_dir
    shown_dir = shown.as_posix()
    written = _written_rows(body)
    rows: list[str] = []
    sources: list[str] = []
    kept: list[str] = []
    missing: list[str] = []
    for name in experiments:
        record = load_run(results_dir / name)
        if record is not None:
            if record.experiment != name:
                raise ProvenmlError(
                    f"{results_dir / name / 'result.json'} is a result of {record.experiment}, "
                    f"not {name}"
                )
            rows += claim_table_rows(record)
            sources.append(source_line(record, shown_dir))
        elif name in written:
            rows += [_mark_kept(r) for r in written[name]]
            kept.append(name)
        else:
            missing.append(name)
    lines = [HEADER, *rows, ""]
    if sources:
        lines += ["Rendered by `provenml report --update` from:", "", *sources, ""]
    if kept:
        lines.append(
            f"{KEPT_MARK} Rows of {', '.join(f'`{n}`' for n in kept)}: no committed result file "
            f"in `{shown_dir}/`; kept as written, not checked against a run."
        )
        lines.append("")
    if missing:
        lines.append(f"No result file and no rows yet for {', '.join(f'`{n}`' for n in missing)}.")
        lines.append("")
    return "\n".join(lines)


def update_text(
    text: str, results_dir: Path, source: str = "<text>", base: Path | None = None
) -> str:
    """``text`` with every claims block rendered again from ``results_dir`` (paths shown
    relative to ``base``, the folder of the file ``text`` comes from)."""
    out: list[str] = []
    cursor = 0
    for block in find_blocks(text, source):
        out.append(text[cursor : block.start])
        out.append(render_block(block.experiments, results_dir, block.body, base))
        cursor = block.end
    out.append(text[cursor:])
    return "".join(out)


def update_file(path: Path, results_dir: Path, *, check: bool = False) -> bool:
    """Render ``path``'s claims blocks from ``results_dir``; return whether anything differs.
    With ``check`` the file is left as it is."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProvenmlError(f"cannot read {path}: {exc.strerror}") from None
    if not find_blocks(text, str(path)):
        raise ProvenmlError(
            f"{path} has no claims block ({BEGIN_MARKER} NAME ... -->, then {END_MARKER})"
        )
    new = update_text(text, results_dir, str(path), base=path.resolve().parent)
    if new != text and not check:
        path.write_text(new)
    return new != text


def stale_files(paths: Iterable[Path], results_dir: Path) -> list[Path]:
    """The files among ``paths`` whose claims blocks differ from their render."""
    return [p for p in paths if update_file(p, results_dir, check=True)]
