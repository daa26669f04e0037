"""Things found by name: the :class:`Registry` idiom, and the registry of experiments.

**One idiom for "X by name"** (after PyKEEN's class resolver): a registry maps names to
objects, builds them, lists them, and answers an unknown name with one
:class:`~provenml.errors.ProvenmlError` that suggests the closest names::

    MODELS = Registry[type[nn.Module]]("model")

    @MODELS.register("transe")
    class TransE(nn.Module): ...

    model = MODELS.build("TransE", num_entities, num_relations, dim)  # case-insensitive
    MODELS.get("transee")  # ProvenmlError: unknown model 'transee'; did you mean transe?

**Experiments** register with :func:`experiment` and are looked up through the same idiom.
:func:`list_experiments` answers without importing any system: it reads the ``@experiment(...)``
literals of every ``provenml/<system>/experiments.py`` with :mod:`ast`;
:func:`get_experiment` imports only the module that registers the name asked for.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from provenml.core.config import SCALES, Config, suggest
from provenml.errors import ProvenmlError

if TYPE_CHECKING:
    from provenml.core.results import Result

__all__ = [
    "DEVICES",
    "ExperimentInfo",
    "ExperimentSpec",
    "Registry",
    "experiment",
    "get_experiment",
    "list_experiments",
    "registered",
    "registry",
]

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# The idiom
# --------------------------------------------------------------------------------------------


def _default_normalize(name: str) -> str:
    return name.strip().casefold()


class Registry(Generic[T]):
    """Objects of one kind by name: ``register``, ``get``, ``build``, ``names``.

    ``kind`` names the kind in error messages ("model", "explainer"); ``hint`` is appended to
    the unknown-name error (e.g. "see `provenml list`"). Names are matched after ``normalize``
    (default: case-insensitive, surrounding spaces ignored) and listed as registered.
    """

    def __init__(
        self,
        kind: str,
        *,
        hint: str = "",
        normalize: Callable[[str], str] = _default_normalize,
    ) -> None:
        self.kind = kind
        self.hint = hint
        self._normalize = normalize
        self._items: dict[str, tuple[str, T]] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, obj: T, *, replace: bool = False) -> T: ...
    def register(self, name: str, obj: Any = None, *, replace: bool = False) -> Any:
        """Register ``obj`` under ``name`` (or use as a decorator: ``@REG.register("name")``).

        A second, different object under the same name is a ``ValueError`` (a bug in the code
        that registers, not a user error) unless ``replace``.
        """
        if obj is None:
            return lambda target: self.register(name, target, replace=replace)
        key = self._normalize(name)
        if not replace and key in self._items and self._items[key][1] is not obj:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[key] = (name, obj)
        return obj

    def get(self, name: str) -> T:
        """The object registered as ``name``; an unknown name is a ``ProvenmlError``."""
        try:
            return self._items[self._normalize(name)][1]
        except KeyError:
            raise self.unknown(name) from None

    __getitem__ = get

    def build(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the object registered as ``name`` (a class or factory) with the arguments."""
        factory: Any = self.get(name)
        return factory(*args, **kwargs)

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return [name for name, _ in self._items.values()]

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.values())

    def unknown(self, name: str, candidates: list[str] | None = None) -> ProvenmlError:
        """The error for an unknown ``name`` (suggesting among ``candidates`` or the names)."""
        pool = self.names() if candidates is None else candidates
        hint = f" ({self.hint})" if self.hint else f" (known: {', '.join(pool)})"
        close = suggest(name, pool, normalize=self._normalize)
        return ProvenmlError(f"unknown {self.kind} {name!r}{close}{hint}")

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._normalize(name) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry[{self.kind}]({', '.join(self.names())})"


# --------------------------------------------------------------------------------------------
# Experiments
# --------------------------------------------------------------------------------------------

RunFn = Callable[..., "Result"]
SummarizeFn = Callable[..., Any]
PartsFn = Callable[..., list[dict[str, Any]]]
MergeFn = Callable[..., "Result"]

DEVICES: tuple[str, ...] = ("cpu", "cuda")
"""Device types an experiment may declare."""


@dataclass(frozen=True)
class ExperimentSpec:
    """A registered experiment: its name, the system it reproduces, its claim and its config,
    and its run policy (the devices it supports, the torch threads it runs best with)."""

    name: str
    system: str
    claim: str
    config: type[Config]
    run: RunFn
    time: Mapping[str, str]
    summarize: SummarizeFn | None = None
    parts: PartsFn | None = None
    merge: MergeFn | None = None
    headline: bool = False
    devices: tuple[str, ...] = DEVICES
    threads: int | None = None
    claims: tuple[str, ...] | None = None

    @property
    def module(self) -> str:
        """The module that registers this experiment (workers import it to find the spec)."""
        return self.run.__module__

    def info(self) -> ExperimentInfo:
        return ExperimentInfo(
            name=self.name,
            system=self.system,
            claim=self.claim,
            module=self.module,
            headline=self.headline,
            time=dict(self.time),
            devices=tuple(self.devices),
            threads=self.threads,
            claims=None if self.claims is None else tuple(self.claims),
        )


EXPERIMENTS: Registry[ExperimentSpec] = Registry(
    "experiment", hint="see `provenml list`", normalize=lambda name: name
)


def experiment(
    name: str,
    *,
    system: str,
    claim: str,
    config: type[Config],
    time: Mapping[str, str] | None = None,
    summarize: SummarizeFn | None = None,
    parts: PartsFn | None = None,
    merge: MergeFn | None = None,
    headline: bool = False,
    devices: tuple[str, ...] = DEVICES,
    threads: int | None = None,
    claims: tuple[str, ...] | None = None,
) -> Callable[[RunFn], RunFn]:
    """Register ``run(cfg, ctx) -> Result`` as the reproduction ``name``.

    ``time`` gives a rough wall time per scale on 2 CPU cores (shown by ``provenml list``);
    ``summarize(results, ctx)``, if given, draws plots over all seeds of a multi-seed run (it
    may return a list of :class:`~provenml.core.results.Table` for the run's ``result.json``).

    ``parts(cfg)`` and ``merge(cfg, results, ctx)`` split one seed into independent pieces
    (say, one per agent) so that ``--jobs`` can spread them over the cores: each part runs
    ``run(dataclasses.replace(cfg, **part), ctx)`` in its own directory, and ``merge`` builds
    the seed's result from the parts' results (in ``parts`` order). List the costliest parts
    first: workers take them in that order. A part must not depend on another part.

    Run policy, applied by the runner: ``devices`` lists the device types the experiment
    really runs on (its tensors follow ``ctx.device``); any other ``--device`` is refused
    before a run directory is made. ``threads`` is the number of torch intra-op threads each
    unit runs with on the CPU (``None``: the process's setting, or the cores split between
    ``--jobs`` workers). ``headline`` marks the system's headline experiment.

    ``claims`` declares the keys of every claim the experiment can make (shell patterns
    allowed: ``"beats_chance/*"``; ``()`` for a tuning run that makes none); the contract test
    checks that a ``smoke`` run makes no other.

    Write ``name``, ``system``, ``claim``, ``time``, ``headline``, ``devices``, ``threads`` and
    ``claims`` as literals: ``provenml list`` reads them from the source without importing the
    module.
    """
    if (parts is None) != (merge is None):
        raise ValueError(f"experiment {name!r}: give both parts and merge, or neither")
    devices = tuple(devices)
    if not devices or any(d not in DEVICES for d in devices):
        raise ValueError(f"experiment {name!r}: devices must be among {DEVICES}, got {devices}")
    if threads is not None and (type(threads) is not int or threads < 1):
        raise ValueError(f"experiment {name!r}: threads must be a positive int or None")
    unknown_scales = set(time or {}) - set(SCALES)
    if unknown_scales:
        raise ValueError(f"experiment {name!r}: time has unknown scales {unknown_scales}")

    def register(fn: RunFn) -> RunFn:
        if name in EXPERIMENTS and EXPERIMENTS.get(name).run is not fn:
            raise ValueError(f"experiment {name!r} is registered twice")
        spec = ExperimentSpec(
            name=name,
            system=system,
            claim=claim,
            config=config,
            run=fn,
            time=dict(time or {}),
            summarize=summarize,
            parts=parts,
            merge=merge,
            headline=headline,
            devices=devices,
            threads=threads,
            claims=None if claims is None else tuple(claims),
        )
        EXPERIMENTS.register(name, spec, replace=True)
        return fn

    return register


def registered(name: str) -> ExperimentSpec:
    """An experiment whose module is already imported (no discovery of the other systems)."""
    return EXPERIMENTS.get(name)


def registry() -> dict[str, ExperimentSpec]:
    """All experiments, after importing every system's ``experiments`` module (slow: prefer
    :func:`list_experiments` to list them and :func:`get_experiment` to fetch one)."""
    from provenml.core.discovery import load_experiment_modules

    load_experiment_modules()
    return dict(sorted(EXPERIMENTS.items()))


def get_experiment(name: str) -> ExperimentSpec:
    """Look an experiment up by name, importing only the module that registers it.

    Unknown names get the closest matches suggested; an experiment whose module needs a
    missing optional dependency gets one line saying what to install.
    """
    if name in EXPERIMENTS:
        return EXPERIMENTS.get(name)
    manifest = _manifest()
    info = manifest.experiments.get(name)
    modules = [info.module] if info is not None else list(manifest.dynamic_modules)
    for module in modules:
        _import_experiments(module, name)
        if name in EXPERIMENTS:
            return EXPERIMENTS.get(name)
    candidates = sorted({*manifest.experiments, *EXPERIMENTS.names()})
    raise EXPERIMENTS.unknown(name, candidates)


def _import_experiments(module: str, name: str) -> None:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as exc:
        missing = exc.name or str(exc)
        raise ProvenmlError(
            f"experiment {name!r} needs {missing!r}, which is not installed "
            "(pip install 'provenml[all]')"
        ) from None


# --------------------------------------------------------------------------------------------
# Listing without importing: the registration manifest
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExperimentInfo:
    """What ``provenml list`` shows about an experiment, read without importing its system."""

    name: str
    system: str
    claim: str
    module: str
    headline: bool = False
    time: Mapping[str, str] = field(default_factory=dict)
    devices: tuple[str, ...] = DEVICES
    threads: int | None = None
    claims: tuple[str, ...] | None = None

    @property
    def package(self) -> str:
        """The system package, e.g. ``provenml.kge``."""
        return self.module.rpartition(".")[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "system": self.system,
            "package": self.package,
            "module": self.module,
            "claim": self.claim,
            "headline": self.headline,
            "time": dict(self.time),
            "devices": list(self.devices),
            "threads": self.threads,
            "claims": None if self.claims is None else list(self.claims),
        }


@dataclass(frozen=True)
class _Manifest:
    experiments: dict[str, ExperimentInfo]
    dynamic_modules: tuple[str, ...]
    """Modules whose registrations cannot be read statically (imported to list them)."""


_EXCLUDED_PACKAGES = frozenset({"core", "data", "nn", "rl"})


def _experiment_sources() -> list[tuple[str, Path]]:
    """``(module, path)`` of every ``provenml/<package>/experiments.py``, without importing."""
    import provenml

    sources = []
    for root in map(Path, provenml.__path__):
        for path in sorted(root.glob("*/experiments.py")):
            package = path.parent.name
            if package in _EXCLUDED_PACKAGES or not (path.parent / "__init__.py").exists():
                continue
            sources.append((f"provenml.{package}.experiments", path))
    return sources


_LITERAL_FIELDS = ("name", "system", "claim", "time", "headline", "devices", "threads", "claims")


def read_registrations(source: str, module: str) -> tuple[list[ExperimentInfo], bool]:
    """The ``@experiment(...)`` registrations of one module's source, and whether some could
    not be read (a non-literal name, system or claim)."""
    tree = ast.parse(source)
    infos: list[ExperimentInfo] = []
    unreadable = False
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and called_name(node.func) == "experiment"):
            continue
        fields: dict[str, Any] = {}
        try:
            if node.args:
                fields["name"] = ast.literal_eval(node.args[0])
            for keyword in node.keywords:
                if keyword.arg in _LITERAL_FIELDS:
                    fields[keyword.arg] = ast.literal_eval(keyword.value)
        except (ValueError, TypeError, SyntaxError):  # not a literal
            unreadable = True
            continue
        if not all(isinstance(fields.get(k), str) for k in ("name", "system", "claim")):
            unreadable = True
            continue
        infos.append(
            ExperimentInfo(
                name=fields["name"],
                system=fields["system"],
                claim=fields["claim"],
                module=module,
                headline=bool(fields.get("headline", False)),
                time=dict(fields.get("time") or {}),
                devices=tuple(fields.get("devices", DEVICES)),
                threads=fields.get("threads"),
                claims=None if fields.get("claims") is None else tuple(fields["claims"]),
            )
        )
    return infos, unreadable


def called_name(func: ast.expr) -> str | None:
    """The name a call is made through: ``f`` of ``f(...)`` or ``m.f(...)``."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


@functools.cache
def _manifest() -> _Manifest:
    experiments: dict[str, ExperimentInfo] = {}
    dynamic: list[str] = []
    for module, path in _experiment_sources():
        try:
            infos, unreadable = read_registrations(path.read_text(), module)
        except (OSError, SyntaxError):
            infos, unreadable = [], True
        if unreadable:
            dynamic.append(module)
        for info in infos:
            experiments[info.name] = info
    return _Manifest(experiments, tuple(dynamic))


def list_experiments(system: str | None = None) -> list[ExperimentInfo]:
    """Every experiment as an :class:`ExperimentInfo`, sorted by name, without importing the
    systems (their ``experiments.py`` is read with :mod:`ast`).

    Experiments already registered in this process (including ones registered outside a
    ``provenml/<system>/experiments.py``) are listed from their spec. A module whose
    registrations are not literals is imported. ``system`` filters by system id (``S8``) or
    package name (``explain``).
    """
    manifest = _manifest()
    for module in manifest.dynamic_modules:
        try:
            _import_experiments(module, module)
        except ProvenmlError:
            continue
    infos = dict(manifest.experiments)
    infos.update({name: spec.info() for name, spec in EXPERIMENTS.items()})
    listed = sorted(infos.values(), key=lambda info: info.name)
    if system is not None:
        wanted = system.casefold()
        listed = [
            i
            for i in listed
            if wanted in (i.system.casefold(), i.package.rpartition(".")[2].casefold())
        ]
    return listed
