"""Module forward hooks in the traced graph (stop 70).

``torch.fx.symbolic_trace`` records a ``torch.nn`` module (``nn.Linear``, ``nn.Conv2d``, ...) as
one ``call_module`` node without calling it, and calls the root's ``forward`` directly: hooks
registered with ``register_forward_pre_hook`` / ``register_forward_hook`` on either (or globally,
``nn.modules.module.register_module_forward_hook``) never ran, so a hook that changes an input or
an output was silently missing from the compiled model (stop 70's probe measured 0.72 and 100 off).
:class:`HookTracer` applies them as ``Module.__call__`` does (``torch/nn/modules/module.py``,
``_call_impl``): global pre-hooks, then the module's, each either ``hook(module, args)`` or, if
registered ``with_kwargs``, ``hook(module, args, kwargs)``; the call; then the global and the
module's forward hooks, ``hook(module, args, output)`` or ``hook(module, args, kwargs, output)``;
a hook's non-None result replaces the arguments or the output. The hooks run on ``torch.fx``
proxies, so what they compute is traced into the graph like the model's own code. What else a
hook does (storing a tensor, counting calls, printing) happens once, while tracing:
:func:`traced_hooks` names the hooked modules so that the trace can say so in a warning.

:func:`takes_varargs` finds a model whose ``forward`` takes ``*args``, which ``torch.fx``
cannot trace into a graph of one input per argument: TorchDynamo traces it.

A hook on a module inside one the frontend converts whole (a ``TransformerEncoderLayer``, whose
``self_attn`` it reads as weights, or an ``nn.GRU`` built from its parameters) cannot be honoured:
:func:`refuse_hidden_hooks` refuses it by name.
"""

from __future__ import annotations

import inspect
import keyword
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.fx.experimental.meta_tracer import MetaTracer
from torch.nn.modules import module as torch_module

from provenml.compiler.frontend.common import UnsupportedOp

__all__ = [
    "AttributeGuard",
    "AutocastWatch",
    "HookTracer",
    "called_root",
    "has_forward_hooks",
    "refuse_hidden_hooks",
    "takes_varargs",
    "traced_hooks",
]


def _global_pre_hooks() -> dict[int, Callable[..., Any]]:
    return torch_module._global_forward_pre_hooks


def _global_hooks() -> dict[int, Callable[..., Any]]:
    return torch_module._global_forward_hooks


def has_forward_hooks(module: nn.Module) -> bool:
    """Whether calling ``module`` runs a forward pre-hook or forward hook (its own or a
    global one)."""
    own = bool(module._forward_pre_hooks or module._forward_hooks)
    return own or bool(_global_pre_hooks() or _global_hooks())


def _global_hooks_with_kwargs() -> Any:
    return getattr(torch_module, "_global_forward_hooks_with_kwargs", {})


def call_with_hooks(
    module: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    call: Callable[[tuple[Any, ...], dict[str, Any]], Any],
) -> Any:
    """``call(args, kwargs)`` between ``module``'s forward pre-hooks and forward hooks, in the
    order and with the return conventions of ``Module._call_impl``."""
    for hook_id, hook in (*_global_pre_hooks().items(), *module._forward_pre_hooks.items()):
        if hook_id in module._forward_pre_hooks_with_kwargs:
            result = hook(module, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError(
                        "forward pre-hook must return None or a tuple of (new_args, new_kwargs), "
                        f"but got {result}."
                    )
                args, kwargs = result
        else:
            result = hook(module, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
    output = call(args, kwargs)
    for hook_id, hook in (*_global_hooks().items(), *module._forward_hooks.items()):
        with_kwargs = (
            hook_id in module._forward_hooks_with_kwargs or hook_id in _global_hooks_with_kwargs()
        )
        result = hook(module, args, kwargs, output) if with_kwargs else hook(module, args, output)
        if result is not None:
            output = result
    return output


class HookTracer(torch.fx.Tracer):
    """``torch.fx.Tracer`` that runs the forward hooks of the modules it records as leaves
    (which the default tracer drops); a module it traces through runs its own hooks already
    (``Module.__call__`` on proxies)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        """``torch.nn``'s modules are leaves (converted from their parameters), except one
        whose ``forward`` was replaced on the instance (an adapter or LoRA library's patch,
        ``linear.forward = ...``): traced through its new ``forward`` (stop 70: converted as
        the plain module before, the patch silently ignored, 0.39 and 5.0 off)."""
        if "forward" in vars(m):
            return False
        return super().is_leaf_module(m, module_qualified_name)

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        """A 0-d integer or boolean buffer (a step counter, an ``initialized`` flag) is read
        as its value, so Python control flow on it traces (stop 72: DenseCL's warm-up test
        ``int(self.steps_done) < warmup`` failed under fx, and TorchDynamo could not guard
        it); like every buffer it is frozen at compile time, and a model whose forward
        changes it is refused before tracing (``check_stateless``)."""
        if (
            isinstance(attr_val, torch.Tensor)
            and not isinstance(attr_val, nn.Parameter)
            and attr_val.dim() == 0
            and (attr_val.dtype == torch.bool or not attr_val.is_floating_point())
            and not attr_val.is_complex()
        ):
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def call_module(
        self,
        m: nn.Module,
        forward: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        qualified = self.path_of_module(m)
        if not self.is_leaf_module(m, qualified) or not has_forward_hooks(m):
            return super().call_module(m, forward, args, kwargs)
        leaf = super().call_module
        return call_with_hooks(m, args, kwargs, lambda a, k: leaf(m, forward, a, k))


class MetaHookTracer(MetaTracer, HookTracer):
    """:class:`HookTracer` with ``torch.fx``'s meta tracer underneath (stop 72): each proxy
    carries its meta tensor (shape and dtype from the example inputs), so ``x.shape``,
    ``x.dim()`` and ``x.size(1)`` are numbers while tracing and code that tests them traces,
    as it runs; the compiled graph is for those shapes anyway. A test of a tensor's values
    still fails (a meta tensor has none), as it does under the plain tracer."""


def _forward_parameters(model: nn.Module) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return []


def _parameter_names(model: nn.Module, count: int) -> list[str]:
    """Names for the wrapper's ``count`` inputs: the model's own positional parameter names
    where they are plain identifiers, else ``input_0``, ``input_1``, ..."""
    positional = [
        p.name
        for p in _forward_parameters(model)
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        and p.name.isidentifier()
        and not keyword.iskeyword(p.name)
        and p.name != "self"
    ]
    if len(positional) >= count:
        return positional[:count]
    return [f"input_{k}" for k in range(count)]


class _CalledRoot(nn.Module):
    """Calls ``inner`` (the user's model) as a submodule, so that the tracer sees the call and
    runs its hooks; ``forward`` is set per instance with the model's number of inputs."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner


def takes_varargs(model: nn.Module) -> bool:
    """Whether ``model.forward`` takes ``*args``: ``torch.fx`` makes one placeholder of them
    (a graph of no inputs, when the model indexes the tuple: stop 70), so such a model is
    traced by TorchDynamo instead."""
    return any(p.kind == p.VAR_POSITIONAL for p in _forward_parameters(model))


def called_root(model: nn.Module, count: int) -> nn.Module:
    """``model`` itself, or, where calling it does more than its ``forward`` (forward hooks,
    or a ``__call__`` of its class's own: stop 70, the root's override was skipped, 2.0 off),
    a module whose ``forward(a, b, ...)`` (``count`` positional inputs) calls ``model(a, b,
    ...)``: the traced root's ``forward`` is called directly."""
    own_call = type(model).__call__ is not nn.Module.__call__
    if not has_forward_hooks(model) and not own_call:
        return model
    names = _parameter_names(model, count)
    listed = ", ".join(names)
    namespace: dict[str, Any] = {}
    exec(  # a fixed-arity forward: torch.fx makes one placeholder per positional parameter
        f"def forward(self, {listed}):\n    return self.inner({listed})\n", namespace
    )
    wrapper = _CalledRoot(model)
    wrapper.__class__ = type(
        type(model).__name__, (_CalledRoot,), {"forward": namespace["forward"]}
    )
    return wrapper


class AttributeGuard:
    """Puts back the attributes a trace assigned ``torch.fx`` proxies to (stop 70): a hook that
    sets a module's weight (``torch.nn.utils.prune`` and the old ``weight_norm`` compute the
    weight in a forward pre-hook) or a ``forward`` that caches a value on ``self`` would leave
    a proxy in the user's model, and a layer the frontend converts from its parameters would
    read it. Use as ``with guard: tracer.trace(root)``, then :meth:`check` the graph."""

    def __init__(self, model: nn.Module) -> None:
        self.saved = [(name, m, dict(vars(m))) for name, m in model.named_modules()]
        #: (the module's qualified name, the attribute, the module, the proxy put back)
        self.replaced: list[tuple[str, str, nn.Module, torch.fx.Proxy]] = []

    def __enter__(self) -> AttributeGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        for name, module, before in self.saved:
            for key, value in list(vars(module).items()):
                if not isinstance(value, torch.fx.Proxy):
                    continue
                self.replaced.append((name, key, module, value))
                if key in before:
                    module.__dict__[key] = before[key]
                else:
                    del module.__dict__[key]

    def check(self, tracer: torch.fx.Tracer) -> None:
        """Refuse where a layer converted from its parameters had one of them set from the
        model's inputs (put back, the compiled layer would use the example's value): a
        value computed from parameters alone is the one the eager run left there."""
        for path, key, module, proxy in self.replaced:
            if not tracer.is_leaf_module(module, path) or not _reads_inputs(proxy.node):
                continue
            qualified = f"{path}.{key}" if path else key
            raise UnsupportedOp(
                type(module).__name__,
                path or "the model",
                f"{qualified!r} is set from the model's inputs (by a hook or forward) and read "
                f"by a {type(module).__name__} the compiler converts from its parameters",
            )


class AutocastWatch:
    """Notes the ``torch.autocast`` regions a trace enters enabled (stop 70): ``torch.fx`` runs
    the context manager while tracing and records nothing, so such a region compiles in
    float32 (0.011 off eager's bfloat16 result in ``autocast_stop70.py``); the trace warns.
    Use as ``with watch: tracer.trace(root)``; ``dtypes`` then lists the regions' dtypes."""

    def __init__(self) -> None:
        self.dtypes: list[str] = []
        self._original: Any = None

    def __enter__(self) -> AutocastWatch:
        original = self._original = torch.autocast.__enter__
        dtypes = self.dtypes

        def enter(region: Any) -> Any:
            if getattr(region, "_enabled", False):
                dtypes.append(str(getattr(region, "fast_dtype", "")).removeprefix("torch."))
            return original(region)

        torch.autocast.__enter__ = enter  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        torch.autocast.__enter__ = self._original  # type: ignore[method-assign]


def _reads_inputs(node: torch.fx.Node) -> bool:
    """Whether ``node`` depends on a placeholder (a model input)."""
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        if n.op == "placeholder":
            return True
        if n not in seen:
            seen.add(n)
            todo.extend(n.all_input_nodes)
    return False


def traced_hooks(model: nn.Module) -> list[str]:
    """The modules of ``model`` with forward hooks of their own (``"the model"`` for the root),
    and ``"every module (global hooks)"`` where global forward hooks are registered."""
    from provenml.compiler.frontend.torch_fx import is_exported_module

    names = [
        name or "the model"
        for name, module in model.named_modules()
        if (module._forward_pre_hooks or module._forward_hooks)
        and not is_exported_module(module)  # (stop 74: torch.export's own input check)
    ]
    if _global_pre_hooks() or _global_hooks():
        names.append("every module (global hooks)")
    return names


def refuse_hidden_hooks(gm: torch.fx.GraphModule) -> None:
    """Refuse a model whose hooked module, or module with a ``forward`` replaced on the
    instance, sits inside a module recorded as one node (the frontend converts that module
    from its parameters, never calling the inner one)."""
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        leaf = gm.get_submodule(str(node.target))
        for name, inner in leaf.named_modules():
            if not name:
                continue
            if inner._forward_pre_hooks or inner._forward_hooks:
                what = "a forward hook on"
            elif "forward" in vars(inner):
                what = "a replaced forward of"
            else:
                continue
            raise UnsupportedOp(
                type(leaf).__name__,
                node.name,
                f"{what} its submodule {name!r}: the compiler converts "
                f"{type(leaf).__name__} whole, without calling {name!r}; patch or hook the "
                "outer module instead",
            )
