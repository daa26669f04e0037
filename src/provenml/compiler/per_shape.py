"""One compiled specialisation per input shape, for ``compile(..., dynamic=True)`` (stop 72).

The compiled code has static shapes: a call with another batch size raised "compiled for
shape ...". A server sees many batch sizes; the ``torch.compile`` backend already builds one
specialisation per shape (``api._Specialising``), and :class:`CompiledPerShape` gives
``pc.compile`` the same: the first call with a new signature (each input's shape and dtype)
compiles the model for it (the tuning cache makes a shape seen before on this machine a gcc
build or a build-cache hit, not a new tuning), and later calls with that signature reuse it.
"""

from __future__ import annotations

import logging
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import nn

__all__ = [
    "MAX_SPECIALISATIONS",
    "CompiledPerShape",
    "call_signature",
    "input_signature",
    "watch_reloads",
]

#: how many specialisations one graph (the backend's, per input signature and per value of
#: its scalar inputs) or one ``compile(..., dynamic=True)`` builds before new signatures run
#: in PyTorch, with one warning (``torch.compile``'s own ``recompile_limit`` is 8 too): an
#: autoregressive loop, whose sequence grows by one each call, compiled once per length and
#: ran about 100x slower than eager (stop 73)
MAX_SPECIALISATIONS = 8


class _ReloadWatch:
    """A ``load_state_dict`` post-hook that calls ``on_reload(owner)`` while ``owner`` lives.
    It sits in the model's hooks, so it pickles (``torch.save(model)``, ``copy.deepcopy``) as
    a hook watching nothing: the compiled code does not travel with the model."""

    def __init__(self, owner: Any = None, on_reload: Callable[[Any], None] | None = None) -> None:
        self.ref = weakref.ref(owner) if owner is not None else None
        self.on_reload = on_reload

    def __call__(self, module: nn.Module, incompatible_keys: Any) -> None:
        target = self.ref() if self.ref is not None else None
        if target is not None and self.on_reload is not None:
            self.on_reload(target)

    def __reduce__(self) -> tuple[type[_ReloadWatch], tuple[()]]:
        return _ReloadWatch, ()


def watch_reloads(model: Any, owner: Any, on_reload: Callable[[Any], None]) -> None:
    """Call ``on_reload(owner)`` whenever ``model.load_state_dict`` loads weights (stop 73),
    for as long as ``owner`` lives (the hook holds it weakly and goes with it)."""
    if not isinstance(model, nn.Module):
        return
    handle = model.register_load_state_dict_post_hook(_ReloadWatch(owner, on_reload))
    weakref.finalize(owner, handle.remove)


def input_signature(inputs: Sequence[Any]) -> tuple[Any, ...]:
    """What a static-shape build is specialised to: each tensor's shape and dtype, any other
    input as it is (shared with the ``torch.compile`` backend's ``api._Specialising``)."""
    return tuple((tuple(x.shape), x.dtype) if isinstance(x, torch.Tensor) else x for x in inputs)


def call_signature(inputs: Sequence[Any], keywords: dict[str, Any]) -> Any:
    """:func:`input_signature` of a call's arguments: of the inputs where each is a tensor,
    else of the leaves of ``(inputs, keywords)`` with their nesting (stop 73: lists and
    dicts of tensors, numbers, ``None``; a constant that cannot be hashed by its ``repr``)."""
    if not keywords and all(isinstance(x, torch.Tensor) for x in inputs):
        return input_signature(inputs)
    leaves, spec = pytree.tree_flatten((tuple(inputs), dict(sorted(keywords.items()))))
    signature = []
    for x in input_signature(leaves):
        try:
            hash(x)
        except TypeError:
            x = (type(x).__name__, repr(x))
        signature.append(x)
    return spec, tuple(signature)


def _same_leaf(want: Any, got: Any) -> bool:
    """Whether an output leaf of a build equals the model's: tensors to 1e-4, others equal."""
    if isinstance(want, torch.Tensor) and isinstance(got, torch.Tensor):
        return want.shape == got.shape and torch.allclose(
            got.to(want.dtype), want, rtol=1e-4, atol=1e-4, equal_nan=True
        )
    return not isinstance(want, torch.Tensor) and bool(want == got)


class CompiledPerShape:
    """``model`` compiled once per input signature, on the first call with it; call it like
    the model. ``compiled`` maps each signature to its :class:`~provenml.compiler.Compiled`.
    After ``max_shapes`` signatures a call with a new one runs the model in PyTorch (under
    ``torch.no_grad()``), with one warning: as ``torch.compile`` stops recompiling a frame
    after its ``recompile_limit`` (also 8), so that a loop whose input grows every call (a
    decoder generating token by token) does not compile once per call (stop 73: 2.2 s a
    length for a two-layer GPT-2, against 1 ms for its eager call)."""

    def __init__(
        self,
        model: Any,
        options: dict[str, Any],
        first: Any,
        example: Sequence[Any],
        example_keywords: dict[str, Any] | None = None,
        max_shapes: int = MAX_SPECIALISATIONS,
        build: Callable[..., Any] | None = None,
        fallback: Callable[..., Any] | None = None,
    ) -> None:
        self.model = model
        self.options = dict(options)
        self.max_shapes = max_shapes
        # how a new signature compiles, and what runs past the limit: ``pc.compile`` and the
        # model under ``torch.no_grad()`` by default; ``compile_onnx`` and ONNX Runtime for
        # an ONNX model (stop 73)
        self.build = build
        self.fallback = fallback
        key = call_signature(example, dict(example_keywords or {}))
        self.compiled: dict[Any, Any] = {key: first}
        self.warned = False
        # (stop 74) a model TorchDynamo had to trace, with tensor inputs alone: later shapes
        # are built from one torch.export with every dim dynamic (a cached shape 0.08 s, not
        # the trace's 1.1-1.6 s: a two-layer GPT-2), made on the first new signature; None
        # until then, False where it cannot serve
        self.example = tuple(example)
        flat = not example_keywords and all(isinstance(x, torch.Tensor) for x in example)
        by_dynamo = getattr(first, "traced_by_dynamo", False)
        plain = isinstance(model, nn.Module) and not isinstance(model, torch.fx.GraphModule)
        self.program: Any = None if build is None and flat and by_dynamo and plain else False
        # weights loaded into the model later: every build dropped, to compile again with them
        watch_reloads(model, self, CompiledPerShape._forget_builds)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the export (made again on the next new signature, stop 74)."""
        state = dict(self.__dict__)
        if state.get("program") not in (None, False):
            state["program"] = None
        return state

    def _forget_builds(self) -> None:
        self.compiled.clear()
        self.warned = False
        if self.program is not False:
            self.program = None  # (exported again, with the new weights)

    def __call__(self, *inputs: Any, **keywords: Any) -> Any:
        key = call_signature(inputs, keywords)
        fn = self.compiled.get(key)
        if fn is None:
            if len(self.compiled) >= self.max_shapes:
                if not self.warned:
                    self.warned = True
                    warnings.warn(
                        f"provenml.compiler: compile(..., dynamic=True) met more than "
                        f"{self.max_shapes} input signatures; new ones run in PyTorch from "
                        "here on (pad inputs to a few fixed shapes to keep them compiled, or "
                        "raise max_shapes=)",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                if self.fallback is not None:
                    return self.fallback(*inputs, **keywords)
                with torch.no_grad():
                    return self.model(*inputs, **keywords)
            if self.build is not None:
                fn = self.compiled[key] = self.build(*inputs, **keywords)
            else:
                from provenml.compiler.api import compile as compile_model

                fn = None if keywords else self._from_program(inputs)
                if fn is None:
                    fn = compile_model(
                        self.model, inputs, example_kwargs=dict(keywords) or None, **self.options
                    )
                self.compiled[key] = fn
        return fn(*inputs, **keywords)

    def _from_program(self, inputs: Sequence[Any]) -> Any:
        """The model compiled for ``inputs`` from its export with dynamic shapes (made once,
        here, on the first new signature), checked against the model on ``inputs``; None
        where there is no program, the program's guards do not take these shapes, or the
        result differs (the caller traces the model for them, as before stop 74)."""
        if self.program is False or not all(isinstance(x, torch.Tensor) for x in inputs):
            return None
        from provenml.compiler.api import compile as compile_model
        from provenml.compiler.frontend.torch_state import clones
        from provenml.errors import ProvenmlError

        if self.program is None:
            self.program = False
            shapes = tuple({d: torch.export.Dim.AUTO for d in range(x.dim())} for x in inputs)
            quiet = logging.getLogger("torch._export")  # ("dim 0 specialized" to stderr)
            level = quiet.level
            quiet.setLevel(logging.ERROR)
            try:
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    example = tuple(clones(self.example))
                    self.program = torch.export.export(self.model, example, dynamic_shapes=shapes)
            except Exception:  # (what torch.export cannot take: traced per shape, as before)
                return None
            finally:
                quiet.setLevel(level)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn = compile_model(self.program, tuple(inputs), **self.options)
            with torch.no_grad():
                want = pytree.tree_leaves(self.model(*clones(inputs)))
                got = pytree.tree_leaves(fn(*clones(inputs)))
        except ProvenmlError:
            return None
        same = len(want) == len(got) and all(
            _same_leaf(w, g) for w, g in zip(want, got, strict=False)
        )
        if not same:
            self.program = False
            return None
        return fn

    def as_module(self) -> nn.Module:
        """As :meth:`Compiled.as_module <provenml.compiler.Compiled.as_module>`."""
        from provenml.compiler.api import CompiledModule

        return CompiledModule(self)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        def shown(entry: Any) -> str:
            if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], torch.dtype):
                return f"{entry[1]}{list(entry[0])}"
            return repr(entry)

        signatures = [
            key[1] if isinstance(key[0], pytree.TreeSpec) else key for key in self.compiled
        ]
        shapes = "; ".join(", ".join(shown(entry) for entry in key) for key in signatures)
        return f"CompiledPerShape({len(self.compiled)} specialisations: {shapes})"
