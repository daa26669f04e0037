"""The ``provenml`` command: ``list``, ``reproduce`` and ``report``.

User mistakes (an unknown experiment, a bad ``--set``, an unwritable ``--out``, ``--device cuda``
without a GPU) print one line and exit with status 2; an experiment that crashes prints one line
pointing at its run directory (the traceback is saved there) and exits with status 1.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from provenml.core.experiment import (
    SCALES,
    ExperimentSpec,
    ProvenmlError,
    get_experiment,
)
from provenml.core.process_exit import exit_process

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
    """One record per registered experiment (name, system, package, module, claim, headline,
    time per scale, devices, threads), read without importing the systems.

    ``system`` keeps one system, named by id (``S8``) or package (``explain``).
    """
    from provenml.core.registry import list_experiments

    records = [info.to_dict() for info in list_experiments()]
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
def list_command(
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
    try:
        records = experiment_listing(system)
    except ProvenmlError as exc:
        raise _fail(str(exc)) from None
    records.sort(key=lambda r: (_system_sort_key(r["system"]), r["name"]))
    if as_json:
        typer.echo(json.dumps(records, indent=2))
    elif console.is_terminal:
        table = Table(
            title="provenml experiments (* headline; time at `small`, all scales in --json)",
            show_lines=True,
        )
        table.add_column("system", no_wrap=True)
        table.add_column(
            "name", no_wrap=True, min_width=max((len(r["name"]) for r in records), default=4)
        )
        table.add_column("*", no_wrap=True)
        table.add_column("time", overflow="fold", min_width=10)
        table.add_column("claim", overflow="fold", min_width=20, ratio=1)
        for r in records:
            table.add_row(
                escape(r["system"]),
                escape(r["name"]),
                "*" if r["headline"] else "",
                escape(r["time"].get("small", "?")),
                escape(r["claim"]),
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
    scale: Annotated[str | None, typer.Option(help="smoke | small (default) | paper")] = None,
    seeds: Annotated[int | None, typer.Option(min=1, help="number of seeds (default 1)")] = None,
    seed: Annotated[int | None, typer.Option(help="first seed (default 0)")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override a config field: key=value")
    ] = None,
    out: Annotated[Path, typer.Option(help="root folder for run directories")] = Path("runs"),
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    jobs: Annotated[
        int,
        typer.Option(
            min=1,
            help="seeds (or parts of seeds) run at once in worker processes (threads split); "
            "with a local --executor ray, tasks at once",
        ),
    ] = 1,
    executor: Annotated[
        str, typer.Option(help="local (worker processes, the default) | ray (Ray tasks)")
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="with --executor ray: an existing cluster (HOST:6379 or auto)"),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="continue this run directory: keep its finished (seed, part) units, run the rest"
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="with --resume: resume even if the config or commit changed")
    ] = False,
) -> None:
    """Run experiments, one run directory each, and print their claims."""
    from provenml.core.policy import check_device
    from provenml.core.report import claim_rows, load_run
    from provenml.core.run import ExperimentFailed, make_progress, writable_directory

    try:
        if resume is not None:
            plans = [
                _resume_request(
                    resume, names, run_all or headline, scale, seeds, seed, set_, force, jobs
                )
            ]
        else:
            if force:
                raise ProvenmlError("--force goes with --resume")
            scale = scale or "small"
            if scale not in SCALES:
                raise ProvenmlError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
            specs = _select_experiments(names or [], run_all, headline, system or [], skip or [])
            overrides = _parse_sets(set_ or [])
            per_spec = _overrides_per_experiment(specs, scale, overrides)
            for spec in specs:  # an unsupported or absent device fails before anything runs
                check_device(spec, device)
            writable_directory(out)
            first = 0 if seed is None else seed
            seed_list = list(range(first, first + (seeds or 1)))
            plans = [
                _PlanRequest(spec, scale, seed_list, device, per_spec[spec.name]) for spec in specs
            ]
        if address is not None and executor != "ray":
            raise ProvenmlError("--address goes with --executor ray")
        if executor not in ("local", "ray"):
            raise ProvenmlError(f"unknown --executor {executor!r}; choose local or ray")
    except ProvenmlError as exc:
        raise _fail(str(exc)) from None

    bar = make_progress(progress)
    run_dirs: list[Path] = []
    try:
        if bar is not None:
            bar.start()
        run_dirs = _execute(plans, out, bar, jobs, executor, address)
    except ProvenmlError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise _fail(
            "interrupted; what was measured so far is in the run directory "
            "(continue it with --resume RUN_DIR)",
            130,
        ) from None
    except ExperimentFailed as exc:
        raise _fail(f"{exc} (traceback and partial results in {exc.run_dir})", 1) from None
    finally:
        if bar is not None:
            bar.stop()

    records = [r for r in (load_run(d) for d in run_dirs) if r is not None]
    _print_claims(claim_rows(records))


@dataclasses.dataclass
class _PlanRequest:
    """One experiment to run: a fresh run (``spec`` ...) or a resumed one (``resumed``)."""

    spec: ExperimentSpec
    scale: str
    seeds: list[int]
    device: str
    overrides: dict[str, str]
    resumed: Any = None  # provenml.core.resume.ResumePlan

    @property
    def name(self) -> str:
        return self.spec.name

    def plan(self, out: Path, jobs: int) -> tuple[Any, dict[Any, Any]]:
        """The run's plan (its directory made now) and the units it already has."""
        from provenml.core.run import plan_run

        if self.resumed is not None:
            from provenml.core.resume import clear_unfinished

            clear_unfinished(self.resumed)
            return self.resumed.plan, dict(self.resumed.done)
        plan = plan_run(
            self.spec,
            scale=self.scale,
            seeds=self.seeds,
            device=self.device,
            overrides=self.overrides,
            out_root=out,
            jobs=jobs,
        )
        return plan, {}


def _execute(
    requests: list[_PlanRequest],
    out: Path,
    bar: Any,
    jobs: int,
    executor: str,
    address: str | None,
) -> list[Path]:
    """Run the requested experiments; with local ``--jobs`` > 1 through one pool of workers,
    the next experiment's units starting as soon as a worker is free."""
    from provenml.core.executor import make_executor
    from provenml.core.run import execute_plans

    runner = make_executor(executor, jobs=jobs, address=address, progress=bar)
    planned = [request.plan(out, jobs) for request in requests]

    def report_done(plan: Any) -> None:
        console.print(f"[green]done[/] {plan.experiment}: {plan.run_dir}")

    return execute_plans(
        [plan for plan, _ in planned],
        runner,
        progress=bar,
        done=[done for _, done in planned],
        on_done=report_done,
    )


def _resume_request(
    run_dir: Path,
    names: list[str] | None,
    selection: bool,
    scale: str | None,
    seeds: int | None,
    seed: int | None,
    sets: list[str] | None,
    force: bool,
    jobs: int,
) -> _PlanRequest:
    """The resumed run of ``run_dir``; options that contradict its record are errors."""
    from provenml.core.resume import plan_resume, read_recorded_run

    recorded = read_recorded_run(run_dir)
    if selection or (names and names != [recorded.experiment]):
        raise ProvenmlError(
            f"--resume continues {recorded.experiment} in {run_dir}; give no other experiment"
        )
    contradictions = []
    if scale is not None and scale != recorded.scale:
        contradictions.append(f"--scale {scale} (recorded: {recorded.scale})")
    if seeds is not None and seeds != len(recorded.seeds):
        contradictions.append(f"--seeds {seeds} (recorded: {len(recorded.seeds)})")
    if seed is not None and recorded.seeds and seed != recorded.seeds[0]:
        contradictions.append(f"--seed {seed} (recorded: {recorded.seeds[0]})")
    if sets and _parse_sets(sets) != recorded.overrides:
        contradictions.append(f"--set {' '.join(sets)} (recorded: {recorded.overrides or 'none'})")
    if contradictions:
        raise ProvenmlError(
            "--resume continues the recorded run; these options differ from it: "
            + ", ".join(contradictions)
            + " (start a new run to change them)"
        )
    spec = get_experiment(recorded.experiment)
    resumed = plan_resume(spec, recorded, jobs=jobs, force=force)
    for problem in resumed.forced:
        err_console.print(f"[yellow]--force:[/] {problem}", highlight=False, soft_wrap=True)
    done = len(resumed.done)
    err_console.print(
        f"resuming {run_dir}: {done} of {done + len(resumed.todo)} units finished, "
        f"{len(resumed.todo)} to run",
        highlight=False,
        soft_wrap=True,
    )
    return _PlanRequest(
        spec, recorded.scale, list(recorded.seeds), recorded.device, recorded.overrides, resumed
    )


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
        if row.get("why"):
            verdict += f" ({escape(row['why'])})"
        table.add_row(
            *(
                escape(row[k])
                for k in ("system", "experiment", "claim", "ours", "comparison", "baselines")
            ),
            verdict,
            f"{row['seeds']} ({row['seed_list']})" if row.get("seed_list") else row["seeds"],
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
    update: Annotated[
        list[Path] | None,
        typer.Option(
            help="instead of REPORT.md: render this Markdown file's claims tables (between "
            "<!-- claims:begin NAME ... --> and <!-- claims:end -->) from --results"
        ),
    ] = None,
    results: Annotated[
        Path, typer.Option(help="with --update: the committed result files, one folder each")
    ] = Path("results"),
    check: Annotated[
        bool, typer.Option(help="with --update: change nothing, exit 1 if a table is stale")
    ] = False,
) -> None:
    """Write REPORT.md from every run directory: a top table (each system's headline claim),
    then per system its claims, key plot, command and environment.

    With --update FILE: render the claims tables of FILE (README.md, a docs page) from the
    committed result files in --results instead."""
    if update:
        _update_published(update, results, check)
        return
    if check:
        raise _fail("--check goes with --update")
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


def _update_published(files: list[Path], results: Path, check: bool) -> None:
    """Render each file's claims tables from ``results`` (or, with ``check``, list the stale
    ones and exit 1)."""
    from provenml.core.published import update_file

    if not results.is_dir():
        raise _fail(f"--results {results} is not a folder of result files")
    try:
        # every file is read and rendered before any is written: a bad block changes nothing
        changed = [path for path in files if update_file(path, results, check=True)]
        if not check:
            for path in changed:
                update_file(path, results)
    except ProvenmlError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot write {exc.filename}: {exc.strerror}") from None
    for path in files:
        state = ("stale" if check else "updated") if path in changed else "up to date"
        console.print(f"{path}: claims tables {state}", highlight=False)
    if check and changed:
        raise typer.Exit(1)


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


def main() -> None:
    """The ``provenml`` command: the Typer app, then
    :func:`provenml.core.process_exit.exit_process` with its status (a command that started
    Ray, e.g. ``distrl.throughput`` run in this process with ``--jobs 1``, ends without the
    interpreter's teardown, where Ray's leftover threads can crash it)."""
    try:
        app()
        status: object = 0
    except SystemExit as exc:  # Typer's standalone mode always ends this way
        status = exc.code
    if status is None:
        status = 0
    if not isinstance(status, int):
        print(status, file=sys.stderr)
        status = 1
    exit_process(status)


if __name__ == "__main__":  # pragma: no cover
    main()
