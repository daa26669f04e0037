"""State a model keeps across calls (stop 70).

The compiled model is a pure function of its inputs: what ``forward`` reads from the model
(parameters, buffers, Python attributes) is frozen at compile time. A model whose ``forward``
changes that state (``self.calls += 1``, ``self.h.add_(1)``, ``self.h = out``) gives a
different result on every eager call and the same one compiled; before stop 70 it compiled
silently (stop 70's probe: a buffer incremented in forward 3.2 off, a call
counter 2.5 off). :func:`state_fingerprint` records, without copying any tensor, what each
module holds: for a tensor its identity, shape and version counter (PyTorch bumps it on every
in-place change), for a number or string its value, for a container its identity and length.
``compile`` compares the fingerprints around its eager run on the example and, where they
differ, calls the model once more: a model whose second result differs from its first is
refused, naming what changed (a lazily built cache, which changes state once and returns the
same result, compiles).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import nn
from torch.nn.parameter import UninitializedTensorMixin

from provenml.errors import ProvenmlError

__all__ = ["check_stateless", "clones", "state_fingerprint"]

#: what ``nn.Module.__init__`` puts in every module's ``__dict__`` (hook tables, the
#: parameter / buffer / submodule dicts, ``training``): not user state
_MODULE_INTERNALS = frozenset(vars(nn.Module()))
_SCALARS = (int, float, bool, str, bytes, type(None))


def _fingerprint(value: Any) -> Any:
    if isinstance(value, UninitializedTensorMixin):  # a lazy module's, before its first call
        return ("uninitialized", id(value))
    if isinstance(value, torch.Tensor):
        try:
            return ("tensor", id(value), tuple(value.shape), value._version)
        except (RuntimeError, NotImplementedError):  # a tensor kind without them (sparse, ...)
            return ("object", id(value))
    if isinstance(value, _SCALARS):
        return ("value", value)
    if isinstance(value, (list, tuple, dict, set)):
        return ("container", id(value), len(value))
    return ("object", id(value))


def state_fingerprint(model: nn.Module) -> dict[str, Any]:
    """``{qualified name: fingerprint}`` of every parameter, buffer and user attribute of
    ``model`` and its submodules."""
    state: dict[str, Any] = {}
    for prefix, module in model.named_modules():
        dot = f"{prefix}." if prefix else ""
        tables = (module._parameters, module._buffers)
        for table in tables:
            for name, tensor in table.items():
                state[dot + name] = _fingerprint(tensor)
        for name, value in vars(module).items():
            if name not in _MODULE_INTERNALS:
                state[dot + name] = _fingerprint(value)
    return state


def _changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def _same(first: Any, second: Any) -> bool:
    """Whether two outputs are equal, bit for bit (NaN equal to NaN)."""
    left, right = pytree.tree_leaves(first), pytree.tree_leaves(second)
    if len(left) != len(right):
        return False
    for a, b in zip(left, right, strict=True):
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            try:  # shape, dtype and values (exactly), NaN equal to NaN
                torch.testing.assert_close(b, a, rtol=0.0, atol=0.0, equal_nan=True)
            except AssertionError:
                return False
        elif a != b:
            return False
    return True


def check_stateless(
    model: nn.Module, call: Callable[[], Any], before: dict[str, Any], first: Any
) -> None:
    """Refuse ``model`` if its eager call (``first``, made after the fingerprint ``before``)
    changed its state and a second call (``call()``) gives a different result."""
    changed = _changed(before, state_fingerprint(model))
    if not changed:
        return
    second = call()
    if _same(first, second):
        return  # state built once (a cache), the result unchanged
    shown = ", ".join(repr(name) for name in changed[:5])
    more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
    raise ProvenmlError(
        f"provenml.compiler: the model keeps state across calls: its forward changed {shown}"
        f"{more}, and a second call on the same inputs gave a different result. The compiled "
        "model is a pure function of its inputs (what forward reads from the model is frozen "
        "when it compiles); pass the state in as an input and return its new value"
    )


def clones(inputs: Sequence[Any]) -> list[Any]:
    """Copies of the example inputs (tensors cloned, anything else as it is) for an eager run
    or a trace's example run: a model that changes its input in place must not change the
    caller's example, nor the next run's input."""
    return [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]
