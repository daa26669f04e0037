"""The ``provenml`` command: ``list``, ``reproduce`` and ``report``.

User mistakes (an unknown experiment, a bad ``--set``, an unwritable ``--out``, ``--device cuda``
without a GPU) print one line and exit with status 2; an experiment that crashes prints one line
pointing at its run directory (the traceback is saved there) and exits with status 1.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

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


@app.command("list")
def list_experiments() -> None:
    """Show every registered experiment with its system, claim and rough time per scale."""
    from provenml.core import discovery

    table = Table(title="provenml experiments", show_lines=True)
    for column in ("system", "name", "claim", *SCALES):
        table.add_column(column, overflow="fold")
    for spec in registry().values():
        table.add_row(spec.system, spec.name, spec.claim, *(spec.time.get(s, "?") for s in SCALES))
    console.print(table)
    for package, reason in discovery.unavailable.items():
        err_console.print(f"[yellow]{package} unavailable:[/] {reason}", soft_wrap=True)


@app.command()
def reproduce(
    names: Annotated[list[str] | None, typer.Argument(help="experiment names")] = None,
    run_all: Annotated[bool, typer.Option("--all", help="run every experiment")] = False,
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
        if run_all and names:
            raise ProvenmlError("give experiment names or --all, not both")
        specs = list(registry().values()) if run_all else [get_experiment(n) for n in names or []]
        if not specs:
            raise ProvenmlError("name at least one experiment (see `provenml list`) or pass --all")
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
) -> None:
    """Write REPORT.md (the claims table and the plots) from every run directory."""
    from provenml.core.report import write_report

    try:
        path, rows = write_report(runs, out)
    except ProvenmlError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot write report {out}: {exc.strerror}") from None
    _print_claims(rows)
    console.print(f"report written to {path}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
