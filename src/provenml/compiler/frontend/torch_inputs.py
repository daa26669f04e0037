"""Inputs that are not one tensor each (stop 73): ``compile(model, ([x, y], {"mask": m}, 3))``
for a model whose ``forward`` takes a list or a dict of tensors (a PyG-style batch, a
detection model's list of images), a Python number (``top_k``, a flag), ``None``; and a
``forward(x, mask=None)`` given ``x`` alone. Before, the first were refused ("the example
inputs must be tensors") and the last failed inside ``torch.fx`` with ``unsupported operand
type(s) for *: 'Tensor' and 'NoneType'``: ``symbolic_trace`` made a placeholder of ``mask``,
so ``mask is None`` was False while tracing.

:func:`structured_call` flattens the example arguments with ``torch.utils._pytree``: the
tensor leaves become the compiled graph's inputs, every other leaf (a number, a string,
``None``) a constant of the compiled code, and the model is wrapped in a module whose
``forward`` takes the tensor leaves, rebuilds the arguments around them and calls the model
(so its hooks run, and the parameters it is not given keep their defaults).
:class:`InputStructure` does the same flattening on every call, with an error naming what
differs from the compiled structure or constants (``compile(..., dynamic=True)`` builds once
per structure and constants instead)."""

from __future__ import annotations

import inspect
import keyword
import math
import pickle
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.utils._pytree as pytree
from torch import nn

from provenml.errors import ProvenmlError

__all__ = [
    "InputStructure",
    "StructuredCall",
    "dump_treespec",
    "is_flat",
    "load_treespec",
    "positional_names",
    "structured_call",
]


def dump_treespec(spec: Any) -> Any:
    """A pytree spec for pickling: pytree's JSON where it serialises the spec (unpickling a
    ``TreeSpec`` itself warns of a deprecation inside PyTorch), else the pickled spec."""
    if spec is None:
        return None
    try:
        return ("json", pytree.treespec_dumps(spec))
    except Exception:  # a node type pytree cannot name (a user's named tuple): pickle it
        return ("pickle", pickle.dumps(spec))


def load_treespec(dumped: Any) -> Any:
    """:func:`dump_treespec` undone."""
    if dumped is None:
        return None
    kind, value = dumped
    if kind == "json":
        return pytree.treespec_loads(value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # PyTorch's own, on unpickling a spec
        return pickle.loads(value)


def is_flat(inputs: Sequence[Any], keywords: dict[str, Any]) -> bool:
    """Whether every input is one tensor (the compiled graph's own calling convention)."""
    return all(isinstance(x, torch.Tensor) for x in (*inputs, *keywords.values()))


def positional_names(model: nn.Module, count: int) -> list[str] | None:
    """The names of ``model.forward``'s first ``count`` parameters, where it names them (no
    ``*args`` among them), else None."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return None
    named = []
    for p in params[:count]:
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            return None
        named.append(p.name)
    return named if len(named) == count else None


def _same(a: Any, b: Any) -> bool:
    """Whether a call's constant equals the compiled one (same type; NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    try:
        return bool(a == b)
    except Exception:  # an object whose == is not a truth value
        return a is b


def _identifier(path: Sequence[Any], base: list[str] | None) -> str:
    """A parameter name for the leaf at ``path`` of ``(args, kwargs)``."""
    head, *rest = path
    top = getattr(rest[0], "idx", getattr(rest[0], "key", None)) if rest else None
    if head.idx == 0:
        name = base[top] if base is not None and top < len(base) else f"input_{top}"
    else:
        name = str(top)
    for key in rest[1:]:
        part = getattr(key, "idx", getattr(key, "key", getattr(key, "name", "")))
        name += f"_{part}"
    name = re.sub(r"\W", "_", name)
    if not name.isidentifier() or keyword.iskeyword(name):
        name = f"input_{name}"
    return name


def _shown(leaf: Any) -> str:
    if isinstance(leaf, torch.Tensor):
        return f"Tensor{list(leaf.shape)}"
    return repr(leaf)


class _Shown:
    """A leaf standing in for itself in :meth:`InputStructure.describe`'s text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class InputStructure:
    """How a call's arguments map to the compiled graph's tensor inputs: the pytree spec of
    ``(args, kwargs)``, which leaves are tensors (graph inputs) and the constants at the
    others. Picklable (the spec as pytree's JSON where it can be)."""

    def __init__(
        self,
        spec: Any,
        tensor_leaves: Sequence[int],
        constants: dict[int, Any],
        keyword_names: Sequence[str],
        description: str,
    ) -> None:
        self.spec = spec
        self.tensor_leaves = tuple(tensor_leaves)
        self.constants = dict(constants)
        self.keyword_names = tuple(keyword_names)
        self.description = description

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "spec": dump_treespec(self.spec)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({**state, "spec": load_treespec(state["spec"])})

    def leaves(self, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[list[Any], Any]:
        """The call's leaves and their spec, keyword arguments in the compiled order."""
        missing = [n for n in self.keyword_names if n not in kwargs]
        unknown = sorted(set(kwargs) - set(self.keyword_names))
        if missing or unknown:
            raise ProvenmlError(
                f"compiled for a call {self.description}"
                + (f"; missing keyword(s) {missing}" if missing else "")
                + (f"; not compiled for keyword(s) {unknown}" if unknown else "")
            )
        ordered = {n: kwargs[n] for n in self.keyword_names}
        leaves, spec = pytree.tree_flatten((tuple(args), ordered))
        return [torch.from_numpy(x) if isinstance(x, np.ndarray) else x for x in leaves], spec

    def flatten(self, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        """The graph's inputs of a call ``compiled(*args, **kwargs)``; an error naming the
        difference where its structure, a constant or a tensor's place differs."""
        leaves, spec = self.leaves(args, kwargs)
        if spec != self.spec:
            raise ProvenmlError(
                f"compiled for a call {self.description}, got {describe(args, kwargs)} "
                "(another nesting of the inputs: compile with dynamic=True for one build per "
                "structure)"
            )
        for k, value in self.constants.items():
            if not _same(leaves[k], value):
                raise ProvenmlError(
                    f"compiled for a call {self.description}, got {_shown(leaves[k])} where "
                    f"it was compiled for {value!r} (a non-tensor input is a constant of the "
                    "compiled code: compile with dynamic=True for one build per value)"
                )
        tensors = [leaves[k] for k in self.tensor_leaves]
        for k, x in zip(self.tensor_leaves, tensors, strict=True):
            if not isinstance(x, torch.Tensor):
                raise ProvenmlError(
                    f"compiled for a call {self.description}, got {_shown(x)} at input "
                    f"{self.tensor_leaves.index(k)}, where it was compiled for a tensor"
                )
        return tuple(tensors)


def describe(args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    """``(args, kwargs)`` as text: tensors by shape, other values by repr."""
    shown = pytree.tree_map(lambda x: _Shown(_shown(x)), (tuple(args), dict(kwargs)))
    parts = [repr(a) for a in shown[0]] + [f"{k}={v!r}" for k, v in shown[1].items()]
    return "(" + ", ".join(parts) + ")"


class StructuredCall(nn.Module):
    """``model`` called with arguments rebuilt from the graph's tensor inputs
    (:func:`structured_call`); its ``forward`` is generated with one parameter per tensor."""

    def __init__(self, model: nn.Module, structure: InputStructure) -> None:
        super().__init__()
        self.model = model
        self.structure = structure
        # the wrapper's own flag, not ``train()``: that recurses into ``model``, and a
        # torch.export program's module refuses it (stop 74: keywords into an export)
        self.training = model.training

    def rebuild(self, tensors: Sequence[Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``(args, kwargs)`` with ``tensors`` at the tensor leaves, the constants elsewhere."""
        s = self.structure
        leaves: list[Any] = [None] * (len(s.tensor_leaves) + len(s.constants))
        for k, x in zip(s.tensor_leaves, tensors, strict=True):
            leaves[k] = x
        for k, value in s.constants.items():
            leaves[k] = value
        args, kwargs = pytree.tree_unflatten(leaves, s.spec)
        return args, kwargs


def structured_call(
    model: nn.Module, args: Sequence[Any], kwargs: dict[str, Any]
) -> tuple[StructuredCall, InputStructure, tuple[torch.Tensor, ...]]:
    """The model wrapped to take the tensor leaves of ``(args, kwargs)`` as its inputs, the
    structure a call is checked against, and the example's tensor leaves."""
    kwargs = dict(kwargs)
    for name in kwargs:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ProvenmlError(
                f"compile(example_kwargs=...): {name!r} is not a keyword argument name"
            )
    flat, spec = pytree.tree_flatten_with_path((tuple(args), kwargs))
    base = positional_names(model, len(args))
    tensor_leaves, constants, names = [], {}, []
    taken: set[str] = set()
    leaves = []
    for k, (path, leaf) in enumerate(flat):
        if isinstance(leaf, np.ndarray):
            leaf = torch.from_numpy(leaf)
        leaves.append(leaf)
        if isinstance(leaf, torch.Tensor):
            name = _identifier(path, base)
            while name in taken or name == "self":
                name = f"_{name}"
            taken.add(name)
            tensor_leaves.append(k)
            names.append(name)
        elif isinstance(leaf, nn.Module):
            raise ProvenmlError(
                "compile(model, example_inputs): a module as an input cannot be compiled "
                "(make it a submodule of the model)"
            )
        else:
            constants[k] = leaf
    if not tensor_leaves:
        raise ProvenmlError("compile(model, example_inputs): no tensor among the example inputs")
    structure = InputStructure(
        spec, tensor_leaves, constants, list(kwargs), describe(tuple(args), kwargs)
    )
    params = ", ".join(names)
    source = (
        f"def forward(self, {params}):\n"
        f"    args, kwargs = self.rebuild(({params},))\n"
        "    return self.model(*args, **kwargs)\n"
    )
    scope: dict[str, object] = {}
    exec(compile(source, f"<provenml structured call {id(model):x}>", "exec"), scope)
    cls = type("StructuredCall", (StructuredCall,), {"forward": scope["forward"]})
    wrapper = cls(model, structure)
    return wrapper, structure, tuple(leaves[k] for k in tensor_leaves)
