"""Static checks of experiment sources: a claim's threshold is a constant written in the code.

A threshold tested against measurements must not come from them. At run time
:class:`~provenml.core.claims.Claim` refuses numpy and torch scalars; here the source of every
``threshold=`` given to ``Claim(...)`` or ``Member(...)`` is checked to be one of:

- a number literal, or arithmetic on number literals (``0.5``, ``-1``, ``1 / 10``);
- ``Published(<number literal>, source="<text>")`` (the source may be a module-level
  UPPER_CASE string constant);
- ``None``;
- a module-level UPPER_CASE constant bound to one of the above, or to a dict / tuple / list of
  them (and any subscript of such a constant: ``PUBLISHED_AUROC[method]``).

``tests/test_contract.py`` runs :func:`threshold_violations` over every ``experiments.py``.
"""

from __future__ import annotations

import ast

from provenml.core.registry import called_name

__all__ = ["threshold_violations"]

_CLAIM_CALLS = frozenset({"Claim", "Member"})


def threshold_violations(source: str, filename: str = "<source>") -> list[str]:
    """One line per ``threshold=`` in ``source`` that is not a written constant."""
    tree = ast.parse(source, filename)
    constants = _module_constants(tree)
    problems = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and called_name(node.func) in _CLAIM_CALLS):
            continue
        for keyword in node.keywords:
            if keyword.arg == "threshold" and not _is_constant(keyword.value, constants):
                problems.append(
                    f"{filename}:{keyword.value.lineno}: threshold={ast.unparse(keyword.value)} "
                    "is not a number literal, a Published(...) constant or a module-level "
                    "UPPER_CASE constant of those"
                )
    return problems


def _module_constants(tree: ast.Module) -> set[str]:
    """UPPER_CASE names bound at module level to constant values (in order of definition)."""
    names: set[str] = set()
    for stmt in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        for target in targets:
            if (
                isinstance(target, ast.Name)
                and target.id.isupper()
                and value is not None
                and _is_constant(value, names, containers=True)
            ):
                names.add(target.id)
    return names


def _is_number(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, float)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        return _is_number(node.operand)
    if isinstance(node, ast.BinOp):
        return _is_number(node.left) and _is_number(node.right)
    return False


def _is_published(node: ast.expr, constants: set[str]) -> bool:
    if not (isinstance(node, ast.Call) and called_name(node.func) == "Published"):
        return False
    values = [*node.args, *(k.value for k in node.keywords if k.arg == "value")]
    sources = [*node.args[1:], *(k.value for k in node.keywords if k.arg == "source")]
    if not (len(values) >= 1 and _is_number(values[0]) and len(sources) == 1):
        return False
    source = sources[0]
    if isinstance(source, ast.Name):
        return source.id in constants
    return isinstance(source, ast.Constant) and isinstance(source.value, str)


def _is_constant(node: ast.expr, constants: set[str], containers: bool = False) -> bool:
    if isinstance(node, ast.Constant) and node.value is None:
        return True
    if _is_number(node) or _is_published(node, constants):
        return True
    if containers and isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True  # a module-level text constant (a source to cite)
    if isinstance(node, ast.Name):
        return node.id in constants
    if isinstance(node, ast.Subscript):
        return isinstance(node.value, ast.Name) and node.value.id in constants
    if containers and isinstance(node, ast.Dict):
        return all(_is_constant(v, constants, containers) for v in node.values)
    if containers and isinstance(node, ast.Tuple | ast.List):
        return all(_is_constant(v, constants, containers) for v in node.elts)
    return False
