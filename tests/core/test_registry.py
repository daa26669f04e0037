"""The Registry idiom, the static experiment manifest and selective imports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from provenml.core import ProvenmlError, Registry, get_experiment, list_experiments, registry
from provenml.core.registry import read_registrations


class TransE:
    def __init__(self, dim: int) -> None:
        self.dim = dim


class DistMult(TransE):
    pass


def test_registry_registers_builds_lists_and_suggests() -> None:
    models = Registry[type[TransE]]("model")
    models.register("TransE", TransE)

    @models.register("distmult")
    class _Decorated(DistMult):
        pass

    assert models.names() == ["TransE", "distmult"]
    assert models.get("transe") is TransE and "TRANSE" in models and len(models) == 2
    built = models.build("DistMult", dim=8)
    assert isinstance(built, _Decorated) and built.dim == 8
    with pytest.raises(ProvenmlError, match=r"unknown model 'transee'; did you mean TransE\?"):
        models.get("transee")
    with pytest.raises(ProvenmlError, match=r"\(known: TransE, distmult\)"):
        models.get("rotate")
    with pytest.raises(ValueError, match="registered twice"):
        models.register("transe", DistMult)
    models.register("transe", DistMult, replace=True)
    assert models["TransE"] is DistMult


def test_read_registrations_reads_literals_and_flags_the_rest() -> None:
    source = textwrap.dedent(
        """
        @experiment("a.one", system="S9", claim="x " "y", config=C, time={"smoke": "1 s"},
                    headline=True, devices=("cpu",), threads=1, claims=("k/*",))
        def one(cfg, ctx): ...

        @experiment(NAME, system="S9", claim="z", config=C)
        def two(cfg, ctx): ...
        """
    )
    (info,), unreadable = read_registrations(source, "provenml.a.experiments")
    assert unreadable
    assert (info.name, info.system, info.claim, info.headline) == ("a.one", "S9", "x y", True)
    assert info.devices == ("cpu",) and info.threads == 1 and info.claims == ("k/*",)
    assert info.package == "provenml.a" and info.time == {"smoke": "1 s"}


def test_the_manifest_matches_what_the_modules_register() -> None:
    listed = {info.name: info for info in list_experiments()}
    specs = registry()
    systems = {name for name, spec in specs.items() if spec.module.startswith("provenml.")}
    assert systems <= set(listed)
    for name in systems:
        assert listed[name] == specs[name].info(), name


def test_list_filters_by_system_id_or_package() -> None:
    names = {i.name for i in list_experiments(system="S3")}
    assert "wsd.multibudget" in names and all(n.startswith("wsd.") for n in names)
    assert {i.name for i in list_experiments(system="schedules")} == names


def _fresh_python(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_listing_imports_no_system_and_no_heavy_library() -> None:
    loaded = _fresh_python(
        "import json, sys\n"
        "from provenml.core import list_experiments\n"
        "names = [i.name for i in list_experiments()]\n"
        "print(json.dumps({'n': len(names), 'modules': sorted(sys.modules)}))"
    )
    assert loaded["n"] >= 10
    modules = set(loaded["modules"])
    assert not {"torch", "rich", "scipy", "matplotlib", "numpy"} & modules
    assert not [
        m
        for m in modules
        if m.startswith("provenml.")
        and m.count(".") >= 1
        and m.split(".")[1] not in ("core", "errors")
    ]


def test_get_experiment_imports_only_the_module_that_registers_it() -> None:
    loaded = _fresh_python(
        "import json, sys\n"
        "from provenml.core import get_experiment\n"
        "spec = get_experiment('wsd.river_valley')\n"
        "print(json.dumps({'system': spec.system, 'modules': sorted(sys.modules)}))"
    )
    assert loaded["system"] == "S3"
    packages = {m.split(".")[1] for m in loaded["modules"] if m.startswith("provenml.")}
    assert "schedules" in packages
    assert not packages & {"kge", "explain", "metarl", "selection", "compiler"}


def test_core_names_load_lazily() -> None:
    loaded = _fresh_python(
        "import json, sys\n"
        "from provenml.core import Claim, Config, Result, experiment, ProvenmlError, Published\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    modules = set(loaded)
    assert not {"rich", "scipy.stats", "provenml.core.run", "torch"} & modules


def test_unknown_names_are_suggested_from_unimported_systems_too() -> None:
    with pytest.raises(ProvenmlError, match=r"did you mean kge\.link_prediction"):
        get_experiment("kge.link_predictio")
