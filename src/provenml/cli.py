"""The ``provenml`` command: ``list``, ``reproduce`` and ``report``.

User mistakes (an unknown experiment, a bad ``--set``, an unwritable ``--out``, ``--device cuda``
without a GPU) print one line and exit with status 2; an experiment that crashes prints one line
pointing at its run directory (the traceback is saved there) and exits with status 1.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from provenml.core.experiment import (
    SCALES,
    ExperimentSpec,
    ProvenmlError,
    get_experiment,
    registry,
)

app = typer.Typer(
    help="Reproduce ML papers' headline claims on your own machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _parse_sets(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ProvenmlError(f"--set expects key=value, got {pair!r}")
        overrides[key.strip()] = value.strip()
    return overrides


def experiment_listing(system: str | None = None) -> list[dict[str, Any]]:
    """One record per registered experiment: name, system, package, claim, headline, time.

    ``system`` keeps one system, named by id (``S8``) or package (``explain``).
    """
    records = []
    for spec in registry().values():
        package = spec.run.__module__.rpartition(".")[0]
        records.append(
            {
                "name": spec.name,
                "system": spec.system,
                "package": package,
                "claim": spec.claim,
                "headline": bool(getattr(spec, "headline", False)),
                "time": {scale: spec.time[scale] for scale in SCALES if scale in spec.time},
            }
        )
    return records if system is None else experiment_listing_filter(records, system)


def experiment_listing_filter(
    records: list[dict[str, Any]], system: str, *, strict: bool = True
) -> list[dict[str, Any]]:
    """The records of ``system`` (an id such as ``S8`` or a package such as ``explain``);
    with ``strict``, none is an error naming the known systems."""
    wanted = system.strip().lower()
    kept = [
        r
        for r in records
        if wanted in (r["system"].lower(), r["package"].lower(), r["package"].rpartition(".")[2])
    ]
    if not kept and strict:
        known = sorted({r["system"] for r in records}, key=_system_sort_key)
        raise ProvenmlError(f"unknown --system {system!r}; known systems: {', '.join(known)}")
    return kept


def _system_sort_key(system: str) -> tuple[int, str]:
    digits = "".join(ch for ch in system if ch.isdigit())
    return (int(digits) if digits else 10**6, system)


def _plain_table(header: list[str], rows: list[list[str]]) -> str:
    """Fixed-width columns for pipes and files: nothing wraps, nothing is cut (the last
    column, the claim, runs to the end of its line)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


@app.command("list")
def list_experiments(
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON object per experiment, in a JSON list")
    ] = False,
    system: Annotated[
        str | None, typer.Option(help="only this system: its id (S8) or package (explain)")
    ] = None,
) -> None:
    """Show every registered experiment: system, name, headline, time per scale, claim.

    Piped or redirected, the table is plain fixed-width text with whole names, so that
    `provenml list | grep NAME` finds a name.
    """
    from provenml.core import discovery

    try:
        records = experiment_listing(system)
    except ProvenmlError as exc:
        raise _fail(str(exc)) from None
    records.sort(key=lambda r: (_system_sort_key(r["system"]), r["name"]))
    if as_json:
        typer.echo(json.dumps(records, indent=2))
    elif console.is_terminal:
        table = Table(title="provenml experiments (* headline)", show_lines=True)
        table.add_column("system", no_wrap=True)
        table.add_column("name", no_wrap=True, min_width=max(len(r["name"]) for r in records))
        table.add_column("*", no_wrap=True)
        for scale in SCALES:
            table.add_column(scale, overflow="fold")
        table.add_column("claim", overflow="fold", ratio=1)
        for r in records:
            table.add_row(
                r["system"],
                r["name"],
                "*" if r["headline"] else "",
                *(r["time"].get(s, "?") for s in SCALES),
                r["claim"],
            )
        console.print(table)
    else:
        header = ["system", "name", "headline", *(f"time:{s}" for s in SCALES), "claim"]
        rows = [
            [
                r["system"],
                r["name"],
                "yes" if r["headline"] else "-",
                *(r["time"].get(s, "?") for s in SCALES),
                r["claim"],
            ]
            for r in records
        ]
        typer.echo(_plain_table(header, rows))
    for package, reason in discovery.unavailable.items():
        err_console.print(f"[yellow]{package} unavailable:[/] {reason}", soft_wrap=True)


@app.command()
def reproduce(
    names: Annotated[list[str] | None, typer.Argument(help="experiment names")] = None,
    run_all: Annotated[bool, typer.Option("--all", help="run every experiment")] = False,
    headline: Annotated[
        bool, typer.Option("--headline", help="run every system's headline experiment")
    ] = False,
    system: Annotated[
        list[str] | None,
        typer.Option(help="with --all or --headline: only these systems (S8 or explain)"),
    ] = None,
    skip: Annotated[
        list[str] | None, typer.Option(help="with --all or --headline: leave this experiment out")
    ] = None,
    scale: Annotated[str, typer.Option(help="smoke | small | paper")] = "small",
    seeds: Annotated[int, typer.Option(min=1, help="number of seeds")] = 1,
    seed: Annotated[int, typer.Option(help="first seed")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override a config field: key=value")
    ] = None,
    out: Annotated[Path, typer.Option(help="root folder for run directories")] = Path("runs"),
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    jobs: Annotated[
        int,
        typer.Option(
            min=1, help="seeds (or parts of seeds) run at once in worker processes (threads split)"
        ),
    ] = 1,
) -> None:
    """Run experiments, one run directory each, and print their claims."""
    from provenml.core.report import claim_rows, load_runs
    from provenml.core.run import (
        ExperimentFailed,
        make_progress,
        resolve_device,
        run_experiment,
        writable_directory,
    )

    try:
        if scale not in SCALES:
            raise ProvenmlError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
        specs = _select_experiments(names or [], run_all, headline, system or [], skip or [])
        overrides = _parse_sets(set_ or [])
        per_spec = _overrides_per_experiment(specs, scale, overrides)
        resolve_device(device)
        writable_directory(out)
    except ProvenmlError as exc:
        raise _fail(str(exc)) from None

    seed_list = list(range(seed, seed + seeds))
    bar = make_progress(progress)
    run_dirs = []
    try:
        if bar is not None:
            bar.start()
        for spec in specs:
            run_dirs.append(
                run_experiment(
                    spec,
                    scale=scale,
                    seeds=seed_list,
                    device=device,
                    overrides=per_spec[spec.name],
                    out_root=out,
                    progress=bar,
                    jobs=jobs,
                )
            )
            console.print(f"[green]done[/] {spec.name}: {run_dirs[-1]}")
    except KeyboardInterrupt:
        raise _fail("interrupted; what was measured so far is in the run directory", 130) from None
    except ExperimentFailed as exc:
        raise _fail(f"{exc} (traceback and partial results in {exc.run_dir})", 1) from None
    finally:
        if bar is not None:
            bar.stop()

    records = [r for r in load_runs(out, latest_only=False) if r.path in set(run_dirs)]
    _print_claims(claim_rows(records))


def _select_experiments(
    names: list[str], run_all: bool, headline: bool, systems: list[str], skip: list[str]
) -> list[ExperimentSpec]:
    """The experiments a ``reproduce`` command names, in the order they will run."""
    if sum((bool(names), run_all, headline)) > 1:
        raise ProvenmlError("give experiment names, --all or --headline, one of them")
    if names:
        if systems or skip:
            raise ProvenmlError("--system and --skip go with --all or --headline, not names")
        return [get_experiment(n) for n in names]
    if not (run_all or headline):
        raise ProvenmlError(
            "name at least one experiment (see `provenml list`) or pass --all or --headline"
        )
    for name in skip:
        get_experiment(name)  # an unknown name is an error, with suggestions
    listing = experiment_listing()
    for wanted in systems:
        experiment_listing_filter(listing, wanted)  # an unknown system is an error
    kept = [
        r
        for r in listing
        if (run_all or r["headline"])
        and r["name"] not in skip
        and (not systems or any(experiment_listing_filter([r], w, strict=False) for w in systems))
    ]
    if not kept:
        what = "experiment is marked as a headline" if headline else "experiment is left"
        raise ProvenmlError(f"no {what} (see `provenml list`)")
    kept.sort(key=lambda r: (_system_sort_key(r["system"]), r["name"]))
    return [get_experiment(r["name"]) for r in kept]


def _overrides_per_experiment(
    specs: list[ExperimentSpec], scale: str, overrides: dict[str, str]
) -> dict[str, dict[str, str]]:
    """Each ``--set`` key goes to the experiments whose config has it; a key that no selected
    experiment knows is an error. Every resulting config is built once here, so that a bad
    value fails before anything runs."""
    fields = {s.name: {f.name for f in dataclasses.fields(s.config)} for s in specs}
    for key in overrides:
        if not any(key in names for names in fields.values()):
            specs[0].config.from_preset(scale, {key: overrides[key]})  # raises, with suggestions
    per_spec = {s.name: {k: v for k, v in overrides.items() if k in fields[s.name]} for s in specs}
    for spec in specs:
        spec.config.from_preset(scale, per_spec[spec.name])
    return per_spec


def _print_claims(rows: list[dict[str, str]]) -> None:
    table = Table(title="claims", show_lines=True)
    for column in (
        "system",
        "experiment",
        "claim",
        "ours",
        "comparison",
        "baselines",
        "verdict",
        "seeds",
    ):
        table.add_column(column, overflow="fold")
    colours = {"holds": "green", "fails": "red", "inconclusive": "yellow"}
    for row in rows:
        verdict = f"[{colours.get(row['verdict'], 'white')}]{row['verdict']}[/]"
        table.add_row(
            row["system"],
            row["experiment"],
            row["claim"],
            row["ours"],
            row["comparison"],
            row["baselines"],
            verdict,
            row["seeds"],
        )
    console.print(table)


@app.command()
def report(
    runs: Annotated[Path, typer.Option(help="folder of run directories")] = Path("runs"),
    out: Annotated[Path, typer.Option(help="report file to write")] = Path("REPORT.md"),
    as_html: Annotated[
        bool,
        typer.Option("--html", help="also write the report as one self-contained HTML page"),
    ] = False,
) -> None:
    """Write REPORT.md from every run directory: a top table (each system's headline claim),
    then per system its claims, key plot, command and environment."""
    from provenml.core.report import write_report

    html_out = out.with_suffix(".html") if as_html else None
    try:
        headlines, about = _report_context()
        path, rows = write_report(runs, out, headlines=headlines, about=about, html_out=html_out)
    except ProvenmlError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot write report {exc.filename or out}: {exc.strerror}") from None
    _print_claims(rows)
    console.print(f"report written to {path}" + (f" and {html_out}" if html_out else ""))


def _report_context() -> tuple[dict[str, str], dict[str, str]]:
    """Each system's headline experiment, and a line on its package and docs page."""
    headlines: dict[str, str] = {}
    about: dict[str, str] = {}
    for record in experiment_listing():
        system, package = record["system"], record["package"]
        if record["headline"]:
            headlines.setdefault(system, record["name"])
        if system not in about:
            line = f"Package `{package}`."
            page = Path("docs") / f"{package.rpartition('.')[2]}.md"
            if page.is_file():
                line += f" Documentation: [{page}]({page})."
            about[system] = line
    return headlines, about


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
