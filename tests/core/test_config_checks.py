"""Configs are checked before anything runs: types, finite numbers, conventional ranges,
lists that may not be emptied, known names; and every registered experiment's config refuses
the values of issue 20 (negative epochs, a negative rate, an empty list) with one error."""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from typer.testing import CliRunner

from provenml.cli import app
from provenml.core.config import Config, check_config, field_problems
from provenml.core.registry import get_experiment, list_experiments
from provenml.errors import ProvenmlError

MODELS = ("transe", "distmult", "complex")


@dataclass
class ToyConfig(Config):
    models: tuple[str, ...] = ("transe", "complex")
    hidden: tuple[int, ...] = (8,)
    optional_list: tuple[str, ...] = field(default=("a",), metadata={"may_be_empty": True})
    only: tuple[str, ...] = ()
    steps: int = 10
    warmup_steps: int = 2
    epochs: int = 3
    batch_size: int = 4
    lr: float = 0.1
    lr_grid: tuple[float, ...] = (0.1, 0.2)
    scale_factor: float = -2.0  # no convention: any finite number
    mode: Literal["fast", "slow"] = "fast"
    threads: int = 0
    presets: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {"steps": 1}}
    choices: ClassVar[dict[str, Any]] = {"models": lambda: MODELS}

    def validate(self) -> None:
        if self.warmup_steps > self.steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) exceeds steps ({self.steps})")


def test_defaults_and_legal_edges_pass() -> None:
    cfg = ToyConfig.from_preset("smoke", {"warmup_steps": "0", "hidden": "", "optional_list": ""})
    assert (cfg.steps, cfg.warmup_steps, cfg.hidden, cfg.optional_list) == (1, 0, (), ())
    assert field_problems(ToyConfig()) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": "-5"}, "epochs must be at least 1, got -5"),
        ({"steps": "0"}, "steps must be at least 1, got 0"),
        ({"batch_size": "0"}, "batch_size must be at least 1, got 0"),
        ({"warmup_steps": "-1"}, "warmup_steps must be >= 0, got -1"),
        ({"threads": "-2"}, "threads must be >= 0, got -2"),
        ({"lr": "-1"}, "lr must be > 0, got -1.0"),
        ({"lr": "0"}, "lr must be > 0, got 0.0"),
        ({"lr_grid": "0.1,-0.2"}, "lr_grid must be > 0, got (0.1, -0.2)"),
        ({"lr": "nan"}, "lr must be finite, got nan"),
        ({"scale_factor": "inf"}, "scale_factor must be finite, got inf"),
        ({"models": ""}, "models must name at least one value (it is empty)"),
        ({"models": "transe,complx"}, "models: unknown 'complx'; did you mean complex?"),
        ({"warmup_steps": "5", "steps": "3"}, "ToyConfig: warmup_steps (5) exceeds steps (3)"),
        ({"stpes": "3"}, "unknown --set key 'stpes' for ToyConfig; did you mean steps"),
    ],
)
def test_bad_values_are_one_error_naming_the_field(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ProvenmlError) as info:
        ToyConfig.from_preset("small", overrides)
    assert message in str(info.value)


def test_values_of_the_wrong_type_are_refused() -> None:
    """What --set cannot produce but code (or a preset table) can."""
    assert field_problems(ToyConfig(steps=2.5)) == ["steps must be an integer, got 2.5"]  # type: ignore[arg-type]
    assert field_problems(ToyConfig(steps=True)) == ["steps must be an integer, got True"]
    assert field_problems(ToyConfig(mode="medium")) == [  # type: ignore[arg-type]
        "mode must be one of fast, slow, got 'medium'"
    ]
    assert field_problems(ToyConfig(models="transe")) == [  # type: ignore[arg-type]
        "models must be a list of values, got 'transe'"
    ]
    assert field_problems(ToyConfig(hidden=(8, "x"))) == [  # type: ignore[arg-type]
        "hidden must be an integer, got 'x'"
    ]
    with pytest.raises(ProvenmlError, match=r"steps must be an integer, got 2\.5 \(ToyConfig\)"):
        check_config(ToyConfig(steps=2.5))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Every registered experiment
# --------------------------------------------------------------------------------------------


def _configs() -> list[type[Config]]:
    seen: dict[str, type[Config]] = {}
    for info in list_experiments():
        config = get_experiment(info.name).config
        seen.setdefault(config.__qualname__ + config.__module__, config)
    return list(seen.values())


def _bad_values(config: type[Config]) -> list[tuple[str, str]]:
    """For each field a convention covers, a value it must refuse."""
    hints = typing.get_type_hints(config)
    bad = []
    for f in dataclasses.fields(config):
        origin = typing.get_origin(hints[f.name])
        if f.name in ("lr",) or f.name.endswith("_lr"):
            bad.append((f.name, "-1"))
        if f.name in ("steps", "epochs", "total_steps", "batch_size") or f.name.endswith("_batch"):
            bad.append((f.name, "-5"))
        may_be_empty = f.name.endswith("hidden") or f.metadata.get("may_be_empty")
        if origin in (tuple, list) and f.default and not may_be_empty:
            bad.append((f.name, ""))
    return bad


CONFIGS = _configs()


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.__name__)
def test_every_experiment_config_refuses_out_of_range_values(config: type[Config]) -> None:
    for scale in ("smoke", "small", "paper"):
        config.from_preset(scale)  # the presets themselves pass
    cases = _bad_values(config)
    for name, raw in cases:
        with pytest.raises(ProvenmlError, match=name):
            config.from_preset("small", {name: raw})


def test_the_checks_cover_the_issue_fields() -> None:
    """The convention reaches the fields issue 20 names in several systems."""
    covered = {(c.__name__, n) for c in CONFIGS for n, _ in _bad_values(c)}
    for wanted in [
        ("LinkPredictionConfig", "epochs"),
        ("LinkPredictionConfig", "lr"),
        ("LinkPredictionConfig", "models"),
        ("BenchmarkConfig", "methods"),
        ("GridworldConfig", "agents"),
        ("NoisyLabelsConfig", "steps"),
    ]:
        assert wanted in covered, wanted


def test_cli_refuses_before_creating_a_run_directory(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "runs"
    for args, pattern in [  # the system's own check or the harness's: one line naming the field
        (["--set", "epochs=-5"], r"error: epochs must be .*-5"),
        (["--set", "lr=-1"], r"error: lr must be .*-1"),
        (["--set", "models="], r"error: models must"),
        (["--set", "epoch=3"], r"did you mean epochs"),
    ]:
        result = runner.invoke(
            app,
            ["reproduce", "kge.link_prediction", "--scale", "smoke", "--out", str(out), *args],
            env={"COLUMNS": "300"},
        )
        assert result.exit_code == 2, result.output
        assert re.search(pattern, result.output), result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
        assert not out.exists() or not any(out.iterdir())


@dataclass
class _RangeMixin:
    ratio: float = 0.5

    def validate(self) -> None:
        if not 0 < self.ratio <= 1:
            raise ProvenmlError(f"ratio must be in (0, 1], got {self.ratio}")


@dataclass
class MixedConfig(Config, _RangeMixin):
    """``Config`` first in the bases: the mixin's ``validate`` comes after it in the MRO."""


def test_a_mixins_validate_after_config_in_the_mro_runs() -> None:
    with pytest.raises(ProvenmlError, match=r"ratio must be in \(0, 1\], got 1\.5"):
        MixedConfig.from_preset("small", {"ratio": "1.5"})
    assert MixedConfig.from_preset("small", {"ratio": "1"}).ratio == 1.0
