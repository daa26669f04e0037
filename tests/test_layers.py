"""The layer rule (docs/architecture.md): system -> shared -> core, never system -> system.

Every module under ``src/provenml`` is parsed (``ast``, nothing is imported) and every import
in it is checked, including imports inside functions and ``TYPE_CHECKING`` blocks: a lazy import
still couples two packages.

- a system package imports no other system package;
- the shared layer (``nn``, ``rl``, ``data``) imports no system package;
- the harness (``core``) imports neither a system nor the shared layer (only ``errors``);
- ``errors`` imports nothing from provenml;
- every top-level package or module is placed in one of these layers (a new package must be
  added to this file, i.e. its place in the architecture decided).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "provenml"

SYSTEMS = frozenset(
    {
        "schedules",
        "selection",
        "metarl",
        "graphpretrain",
        "federated",
        "distrl",
        "ssl",
        "explain",
        "fewshot",
        "compiler",
        "kge",
    }
)
SHARED = frozenset({"nn", "rl", "data"})
ERRORS = "errors"
CORE = "core"
#: the entry points above every layer: they may import anything
TOP = frozenset({"__init__", "__main__", "cli"})


def _layer(part: str) -> str:
    if part in SYSTEMS:
        return "system"
    if part in SHARED:
        return "shared"
    if part in (ERRORS, CORE):
        return part
    if part in TOP:
        return "top"
    return "unknown"


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    """Dotted module name of ``path`` under the package ``root`` and whether it is a package."""
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def _imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every module ``tree`` imports, relative imports resolved.

    ``from a import b`` yields ``a.b`` as well as ``a`` (``b`` may be a submodule), so
    ``from provenml import kge`` counts as importing ``provenml.kge``.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _top_part(name: str, root_name: str) -> str | None:
    """The top-level package or module of ``root_name`` that ``name`` lies in (or None)."""
    parts = name.split(".")
    if parts[0] != root_name:
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def layer_violations(root: Path) -> list[str]:
    """Every import under the package directory ``root`` that breaks the layer rule."""
    root_name = root.name
    problems: dict[tuple[Path, int, str], str] = {}  # one per import statement and target
    for path in sorted(root.rglob("*.py")):
        module, is_package = _module_name(path, root)
        owner = _top_part(module, root_name)
        assert owner is not None
        owner_layer = _layer(owner)
        where = path.relative_to(root.parent)
        if owner_layer == "unknown":
            problems[(where, 0, owner)] = (
                f"{where}: top-level '{owner}' is in no layer (add it to tests/test_layers.py)"
            )
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in _imported_modules(tree, module, is_package):
            target = _top_part(name, root_name)
            if target is None or target == owner or target == "__init__":
                continue
            target_layer = _layer(target)
            rule = None
            if owner_layer == "errors":
                rule = "errors imports nothing from provenml"
            elif owner_layer == "system" and target_layer == "system":
                rule = "a system never imports another system (move the piece to nn/rl/data)"
            elif owner_layer == "shared" and target_layer == "system":
                rule = "the shared layer never imports a system"
            elif owner_layer == "core" and target_layer in ("system", "shared"):
                rule = "core imports no system and no shared-layer package"
            elif target_layer == "unknown" and _top_level_exists(root, target):
                rule = f"'{target}' is in no layer"
            if rule:
                problems.setdefault(
                    (where, line, target), f"{where}:{line}: {owner} -> {name}: {rule}"
                )
    return sorted(problems.values())


def _top_level_exists(root: Path, part: str) -> bool:
    return (root / part).is_dir() or (root / f"{part}.py").is_file()


def test_source_tree_follows_the_layer_rule() -> None:
    problems = layer_violations(SRC)
    assert not problems, "layer rule broken:\n" + "\n".join(problems)


def _plant(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("kge/models.py", "from provenml.explain import metrics\n", "a system never imports"),
        ("kge/models.py", "from provenml import explain\n", "a system never imports"),
        ("kge/models.py", "from ..explain import base\n", "a system never imports"),
        ("kge/models.py", "def f():\n    import provenml.metarl.envs\n", "a system never"),
        ("nn/gnn.py", "from provenml.explain.base import check_model\n", "the shared layer"),
        ("data/graphs.py", "import provenml.kge\n", "the shared layer never imports"),
        ("core/run.py", "from provenml.kge import models\n", "core imports no system"),
        ("core/run.py", "from provenml.nn import mlp\n", "core imports no system"),
        ("errors.py", "from provenml.core import registry\n", "errors imports nothing"),
        ("newthing/__init__.py", "", "is in no layer"),
    ],
)
def test_a_planted_violation_is_caught(
    tmp_path: Path, module: str, source: str, expected: str
) -> None:
    clean = {
        "__init__.py": "",
        "errors.py": "class ProvenmlError(Exception):\n    pass\n",
        "core/__init__.py": "from provenml.errors import ProvenmlError\n",
        "core/run.py": "from provenml.core import ProvenmlError\n",
        "nn/__init__.py": "from provenml.nn.gnn import *\n",
        "nn/gnn.py": "from provenml.errors import ProvenmlError\n",
        "rl/__init__.py": "from provenml.nn import mlp\n",
        "data/graphs.py": "from provenml.core import cache_dir\n",
        "kge/__init__.py": "from .models import get_model\n",
        "kge/models.py": "from provenml.nn import mlp\nfrom provenml.kge import data\n",
        "explain/__init__.py": "from provenml.data.graphs import load_dataset\n",
        "metarl/envs.py": "from provenml.rl import SingleEnvView\n",
        "cli.py": "import provenml.kge\nimport provenml.explain\n",
    }
    root = _plant(tmp_path / "provenml", clean)
    assert layer_violations(root) == []
    _plant(root, {module: clean.get(module, "") + source})
    problems = layer_violations(root)
    assert len(problems) == 1 and expected in problems[0], problems
