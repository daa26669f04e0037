"""One compiled specialisation per input shape, for ``compile(..., dynamic=True)`` (stop 72).

The compiled code has static shapes: a call with another batch size raised "compiled for
shape ...". A server sees many batch sizes; the ``torch.compile`` backend already builds one
specialisation per shape (``api._Specialising``), and :class:`CompiledPerShape` gives
``pc.compile`` the same: the first call with a new signature (each input's shape and dtype)
compiles the model for it (the tuning cache makes a shape seen before on this machine a gcc
build or a build-cache hit, not a new tuning), and later calls with that signature reuse it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["CompiledPerShape", "input_signature"]


def input_signature(inputs: Sequence[Any]) -> tuple[Any, ...]:
    """What a static-shape build is specialised to: each tensor's shape and dtype, any other
    input as it is (shared with the ``torch.compile`` backend's ``api._Specialising``)."""
    return tuple((tuple(x.shape), x.dtype) if isinstance(x, torch.Tensor) else x for x in inputs)


class CompiledPerShape:
    """``model`` compiled once per input signature, on the first call with it; call it like
    the model. ``compiled`` maps each signature to its :class:`~provenml.compiler.Compiled`."""

    def __init__(
        self,
        model: Any,
        keyword_names: Sequence[str],
        options: dict[str, Any],
        first: Any,
        example: Sequence[torch.Tensor],
    ) -> None:
        self.model = model
        self.keyword_names = tuple(keyword_names)
        self.options = dict(options)
        self.compiled: dict[tuple[Any, ...], Any] = {input_signature(example): first}

    def __call__(self, *inputs: torch.Tensor, **keywords: torch.Tensor) -> Any:
        named = [keywords[n] for n in self.keyword_names if n in keywords]
        key = input_signature((*inputs, *named))
        fn = self.compiled.get(key)
        if fn is None:
            from provenml.compiler.api import compile as compile_model

            fn = self.compiled[key] = compile_model(
                self.model,
                inputs,
                example_kwargs=dict(keywords) if self.keyword_names else None,
                **self.options,
            )
        return fn(*inputs, **keywords)

    def as_module(self) -> nn.Module:
        """As :meth:`Compiled.as_module <provenml.compiler.Compiled.as_module>`."""
        from provenml.compiler.api import CompiledModule

        return CompiledModule(self)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        shapes = "; ".join(
            ", ".join(f"{dtype}{list(shape)}" for shape, dtype in key) for key in self.compiled
        )
        return f"CompiledPerShape({len(self.compiled)} specialisations: {shapes})"
