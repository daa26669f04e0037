"""Inputs by keyword (stop 72): ``compile(model, (), example_kwargs={"input_ids": ids,
"attention_mask": mask})`` for a model called as ``model(input_ids=..., attention_mask=...)``
(a Hugging Face model's ``model(**tokenizer(text))``), where before a user had to write a
wrapper that takes them by position.

:func:`keyword_call` wraps the model in a module whose ``forward`` takes the positional
inputs, then the keyword inputs by their names, and calls the model with them as keywords.
The ``forward`` is built with those names as its parameters (``torch.fx`` makes one
placeholder per parameter of ``forward``'s code, so the graph's inputs carry the keywords'
names; a ``forward(*args)`` would leave fx one placeholder for them all). The model stays a
submodule, so its hooks run as they do when it is called."""

from __future__ import annotations

import keyword
from collections.abc import Sequence

import torch
from torch import nn

from provenml.errors import ProvenmlError

__all__ = ["KeywordCall", "keyword_call"]


class KeywordCall(nn.Module):
    """``model`` called with ``positional`` inputs by position, then ``names`` by keyword."""

    def __init__(self, model: nn.Module, positional: int, names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.positional = positional
        self.names = tuple(names)
        # the wrapper's own flag, not ``train()``: that recurses into ``model``, and a
        # torch.export program's module refuses it (stop 74: keywords into an export)
        self.training = model.training


def keyword_call(
    model: nn.Module,
    positional: int,
    names: Sequence[str],
    positional_names: Sequence[str] | None = None,
) -> KeywordCall:
    """A :class:`KeywordCall` whose ``forward(self, input_0, .., <names>)`` has one parameter
    per input (generated: the parameter list is the keywords' names); the positional ones are
    named ``positional_names`` where given (the model's own, stop 73)."""
    for name in names:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ProvenmlError(
                f"compile(example_kwargs=...): {name!r} is not a keyword argument name"
            )
    taken = set(names)
    given: list[str] = []
    for k in range(positional):
        name = positional_names[k] if positional_names is not None else f"input_{k}"
        if name == "self" or keyword.iskeyword(name) or not name.isidentifier():
            name = f"input_{k}"
        while name in taken:
            name = f"_{name}"
        given.append(name)
    params = ", ".join([*given, *names])
    call = ", ".join([*given, *(f"{n}={n}" for n in names)])
    source = f"def forward(self, {params}):\n    return self.model({call})\n"
    scope: dict[str, object] = {}
    exec(compile(source, f"<provenml keyword call {id(model):x}>", "exec"), scope)
    cls = type("KeywordCall", (KeywordCall,), {"forward": scope["forward"]})
    return cls(model, positional, names)  # type: ignore[no-any-return]


def order_inputs(
    positional: Sequence[torch.Tensor],
    keywords: dict[str, torch.Tensor],
    names: Sequence[str],
    expected_positional: int,
) -> tuple[torch.Tensor, ...]:
    """A call's inputs in the compiled order: ``positional``, then ``keywords`` by ``names``
    (every one given, no other), with an error naming what does not fit."""
    if len(positional) != expected_positional:
        raise ProvenmlError(
            f"compiled with {expected_positional} positional input(s) and keyword inputs "
            f"{list(names)}; got {len(positional)} positional"
        )
    missing = [n for n in names if n not in keywords]
    unknown = sorted(set(keywords) - set(names))
    if missing or unknown:
        raise ProvenmlError(
            f"compiled with keyword inputs {list(names)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; not compiled for {unknown}" if unknown else "")
        )
    return (*positional, *(keywords[n] for n in names))
