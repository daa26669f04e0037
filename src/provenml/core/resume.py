"""Continue an interrupted run: ``provenml reproduce --resume RUN_DIR``.

The run directory holds everything needed: ``config.json`` (the experiment, scale, seeds,
``--set`` overrides and the full config) and ``env.json`` (the commit). A resumed run

1. rebuilds the config from the experiment's presets and the recorded overrides, and refuses
   when it differs from the recorded one, or when the code's commit differs from the
   recorded commit (``force`` resumes anyway, with the recorded config);
2. keeps every ``(seed, part)`` unit whose ``result.json`` says ``complete``;
3. deletes the directories of the other units (interrupted, or never finished) and runs them
   again, in the same run directory, with the same executor choices as a fresh run;
4. merges and aggregates as an uninterrupted run would, so the result is the same.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provenml.core.config import Config
from provenml.core.results import Result
from provenml.errors import ProvenmlError

if TYPE_CHECKING:
    from provenml.core.registry import ExperimentSpec
    from provenml.core.run import RunPlan, Unit

__all__ = ["RecordedRun", "ResumePlan", "plan_resume", "read_recorded_run"]


@dataclass(frozen=True)
class RecordedRun:
    """What a run directory says about the run that made it."""

    run_dir: Path
    experiment: str
    scale: str
    seeds: tuple[int, ...]
    overrides: dict[str, str]
    config: dict[str, Any]
    device: str
    commit: str | None


@dataclass(frozen=True)
class ResumePlan:
    """A plan for the recorded run directory, the units it already has, and what was
    forced (changes the caller should show)."""

    plan: RunPlan
    done: dict[Unit, Result]
    todo: list[Unit]
    forced: list[str]


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ProvenmlError(f"--resume: {path.parent} is not a run directory (no {what})") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ProvenmlError(f"--resume: cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ProvenmlError(f"--resume: {path} is not a run's {what}")
    return data


def read_recorded_run(run_dir: Path) -> RecordedRun:
    """The recorded request of ``run_dir`` (its top-level ``config.json`` and ``env.json``)."""
    if not run_dir.is_dir():
        raise ProvenmlError(f"--resume: run directory {run_dir} does not exist")
    config = _read_json(run_dir / "config.json", "config.json")
    env = _read_json(run_dir / "env.json", "env.json")
    missing = [k for k in ("experiment", "scale", "seeds", "config") if k not in config]
    if missing:
        raise ProvenmlError(
            f"--resume: {run_dir}/config.json lacks {', '.join(missing)}; not a provenml run"
        )
    return RecordedRun(
        run_dir=run_dir,
        experiment=str(config["experiment"]),
        scale=str(config["scale"]),
        seeds=tuple(int(s) for s in config["seeds"]),
        overrides={str(k): str(v) for k, v in (config.get("overrides") or {}).items()},
        config=dict(config["config"]),
        device=str(config.get("device") or env.get("device") or "auto"),
        commit=env.get("git_commit"),
    )


def _normalised(values: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON form (tuples as lists), as ``config.json`` records a config."""
    return dict(json.loads(json.dumps(values, default=str)))


def config_changes(recorded: Mapping[str, Any], current: Config) -> list[str]:
    """``field: recorded -> now`` for each field where the code's config differs."""
    now = _normalised(current.to_dict())
    before = _normalised(recorded)
    return [
        f"{key}: {before.get(key, '(absent)')!r} -> {now.get(key, '(absent)')!r}"
        for key in sorted(set(now) | set(before))
        if now.get(key) != before.get(key)
    ]


def config_from_record(cls: type[Config], recorded: Mapping[str, Any], base: Config) -> Config:
    """``base`` with every recorded field put back (JSON lists become tuples where the field
    is a tuple); a recorded field the class no longer has is an error."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(recorded) - fields)
    if unknown:
        raise ProvenmlError(
            f"--resume --force: the recorded config has fields {', '.join(unknown)} that "
            f"{cls.__name__} no longer has; start a new run"
        )
    values = {key: _typed(value, hints.get(key)) for key, value in recorded.items()}
    return dataclasses.replace(base, **values)


def _typed(value: Any, annotation: Any) -> Any:
    """A JSON value back in its field's type: lists become tuples where the field is one."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _typed(value, options[0]) if value is not None and len(options) == 1 else value
    if isinstance(value, list) and (origin is tuple or annotation is tuple):
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(v, args[0]) for v in value)
        if len(args) == len(value):
            return tuple(_typed(v, a) for v, a in zip(value, args, strict=True))
        return tuple(value)
    return value


def plan_resume(
    spec: ExperimentSpec,
    recorded: RecordedRun,
    *,
    jobs: int = 1,
    force: bool = False,
    current_commit: str | None = None,
) -> ResumePlan:
    """The plan that continues ``recorded``; refuses a changed config or commit unless
    ``force``. Reads which units are complete; deletes nothing (see :func:`clear_unfinished`).
    """
    from provenml.core.environment import git_commit
    from provenml.core.policy import check_device
    from provenml.core.run import RunPlan, load_unit_result

    current = spec.config.from_preset(recorded.scale, recorded.overrides)
    problems = []
    changes = config_changes(recorded.config, current)
    if changes:
        problems.append("the config changed since the run started (" + "; ".join(changes) + ")")
    commit = current_commit if current_commit is not None else git_commit()
    if recorded.commit and commit and recorded.commit != commit:
        problems.append(
            f"the code is at commit {commit[:10]}, the run started at {recorded.commit[:10]}"
        )
    if problems and not force:
        raise ProvenmlError(
            f"cannot resume {recorded.run_dir}: "
            + "; ".join(problems)
            + ". Its finished seeds would not be comparable with new ones; start a new run, "
            "or pass --force to resume with the recorded config anyway"
        )
    cfg = config_from_record(spec.config, recorded.config, current) if changes else current
    device = check_device(spec, recorded.device)
    parts = None if spec.parts is None else tuple(dict(p) for p in spec.parts(cfg))
    plan = RunPlan(
        experiment=spec.name,
        module=spec.module,
        system=spec.system,
        claim=spec.claim,
        scale=recorded.scale,
        config=cfg,
        seeds=recorded.seeds,
        device=str(device),
        run_dir=recorded.run_dir,
        overrides=tuple(recorded.overrides.items()),
        parts=parts,
        jobs=jobs,
        threads=spec.threads,
    )
    done: dict[Unit, Result] = {}
    todo: list[Unit] = []
    for seed, part in plan.units("seed"):
        result = load_unit_result(plan, seed, part)
        if result is None:
            todo.append((seed, part))
        else:
            done[(seed, part)] = result
    return ResumePlan(plan, done, todo, problems)


def clear_unfinished(resume: ResumePlan) -> None:
    """Delete the directories of the units that will run again (a unit writes a fresh one),
    and the merged result of a seed whose parts will run again."""
    plan = resume.plan
    for seed, part in resume.todo:
        shutil.rmtree(plan.unit_dir(seed, part), ignore_errors=True)
        if part is not None:
            (plan.unit_dir(seed) / "result.json").unlink(missing_ok=True)
