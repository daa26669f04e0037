"""PyTorch's recurrent modules for the torch frontend: ``nn.GRU`` and ``nn.LSTM`` unrolled over
their (static) sequence length into the IR's ops; since stop 70 also ``nn.RNN`` (Elman's
recurrence, tanh or ReLU) and the cells
(``nn.GRUCell``, ``nn.LSTMCell``, ``nn.RNNCell`` and the ``torch.*_cell`` functions TorchDynamo
records for them), one step each, for models that loop over the steps themselves.

Each layer and direction projects the whole input sequence at once (one ``linear``: the input
side of every gate), then runs the recurrence one step at a time: the hidden side of the gates
(one ``linear`` of the state), the gate nonlinearities and the state update, elementwise ops the
fusion pass joins. The equations are the ones PyTorch documents for the modules:

* GRU (Cho et al. 2014, as ``nn.GRU``): ``r = s(W_ir x + b_ir + W_hr h + b_hr)``,
  ``z = s(W_iz x + b_iz + W_hz h + b_hz)``, ``n = tanh(W_in x + b_in + r (W_hn h + b_hn))``,
  ``h' = (1 - z) n + z h``.
* LSTM (Hochreiter & Schmidhuber 1997, as ``nn.LSTM``): ``i, f, o = s(W_i* x + b_i* + W_h* h +
  b_h*)``, ``g = tanh(W_ig x + b_ig + W_hg h + b_hg)``, ``c' = f c + i g``, ``h' = o tanh(c')``.

Stacked layers, ``bidirectional`` (the reverse direction reads the steps backwards),
``batch_first`` either way, initial states given or zero, and outputs ``(output, h_n)`` /
``(output, (h_n, c_n))`` as PyTorch returns them. ``proj_size`` (LSTM projections) and
unbatched inputs are refused by name. The IR grows with the sequence length (a few ops per
step and layer): meant for the short, fixed-length sequences of inference at a static shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from provenml.compiler.frontend.common import UnsupportedOp
from provenml.compiler.frontend.torch_fx import FxBuilder, Handler, arg, meta_like, target_name

__all__ = ["RECURRENT_FUNCTION_NAMES", "RECURRENT_MODULES", "_WrappedRecurrent", "unroll"]


def _weights(b: Any, weight: Any, bias: Any) -> list[str]:
    """A linear layer's weight (and bias) as IR constants (from tensors or arrays), made once
    per layer and direction, not once per step; IR names (a traced call's weights) as they
    are."""
    pieces = [(weight, "w")] + ([(bias, "b")] if bias is not None else [])
    return [p if isinstance(p, str) else b.const(torch.as_tensor(p).detach(), s) for p, s in pieces]


def _linear(b: Any, x: str, weights: list[str]) -> str:
    """``x W^T + b`` with the constants of :func:`_weights`."""
    shape = b.shape(x)
    width = int(b.shape(weights[0])[0])
    return b.emit("linear", [x, *weights], {}, meta_like([*shape[:-1], width]))


def _gate(b: Any, x: str, k: int, hidden: int) -> str:
    """Gate ``k`` (a ``hidden``-wide block of the last dim) of a ``(N, G * hidden)`` value."""
    n = b.shape(x)[0]
    attrs = {"dim": 1, "start": k * hidden, "stop": (k + 1) * hidden, "step": 1}
    return b.emit("slice", [x], attrs, meta_like([n, hidden]))


def _op(b: Any, op: str, *xs: str) -> str:
    shape = np.broadcast_shapes(*(tuple(b.shape(x)) for x in xs))
    return b.emit(op, list(xs), {}, meta_like(shape))


def _gru_step(b: Any, x_proj: str, h: str, hh: list[str], one: str) -> str:
    hidden = b.shape(h)[1]
    h_proj = _linear(b, h, hh)
    r = _op(b, "sigmoid", _op(b, "add", _gate(b, x_proj, 0, hidden), _gate(b, h_proj, 0, hidden)))
    z = _op(b, "sigmoid", _op(b, "add", _gate(b, x_proj, 1, hidden), _gate(b, h_proj, 1, hidden)))
    n = _op(
        b,
        "tanh",
        _op(b, "add", _gate(b, x_proj, 2, hidden), _op(b, "mul", r, _gate(b, h_proj, 2, hidden))),
    )
    return _op(b, "add", _op(b, "mul", _op(b, "sub", one, z), n), _op(b, "mul", z, h))


def _lstm_step(b: Any, x_proj: str, h: str, c: str, hh: list[str]) -> tuple[str, str]:
    hidden = b.shape(h)[1]
    h_proj = _linear(b, h, hh)
    pre = [
        _op(b, "add", _gate(b, x_proj, k, hidden), _gate(b, h_proj, k, hidden)) for k in range(4)
    ]
    i, f, o = (_op(b, "sigmoid", pre[k]) for k in (0, 1, 3))
    g = _op(b, "tanh", pre[2])
    c_new = _op(b, "add", _op(b, "mul", f, c), _op(b, "mul", i, g))
    return _op(b, "mul", o, _op(b, "tanh", c_new)), c_new


def _step(
    b: Any, cell: str, x_proj: str, h: str, c: str | None, hh: list[str], one: str
) -> tuple[str, str | None]:
    """One step of the recurrence ``cell`` (``lstm``, ``gru``, or ``tanh`` / ``relu`` for an
    Elman RNN: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``) from the projected input
    ``x_proj``: ``(h', c')`` (``c'`` None but for an LSTM); ``one`` is the GRU's 1."""
    if cell == "lstm":
        assert c is not None
        return _lstm_step(b, x_proj, h, c, hh)
    if cell == "gru":
        return _gru_step(b, x_proj, h, hh, one), None
    return _op(b, cell, _op(b, "add", x_proj, _linear(b, h, hh))), None


def unroll(
    b: Any,
    x: str,
    weights: tuple[Any, Any, Any, Any],
    h: str,
    c: str | None,
    reverse: bool = False,
    cell: str = "gru",
) -> tuple[str, str, str | None]:
    """One layer and direction over a batch-first sequence ``x`` ``(N, T, F)``: ``weights``
    are ``(W_ih, b_ih, W_hh, b_hh)`` in PyTorch's gate order (biases may be None), ``h`` /
    ``c`` the initial states ``(N, H)`` (``c`` only for an LSTM). Returns the per-step states
    ``(N, T, H)`` (in step order, also when ``reverse`` reads the steps backwards) and the
    final ``h`` and ``c``. Without ``c``, ``cell`` picks the recurrence: ``gru``, or ``tanh``
    / ``relu`` for ``nn.RNN``'s (stop 70). ``b`` is an :class:`FxBuilder` or an object with
    its ``emit``, ``const``, ``reshape`` and ``shape`` (the ONNX frontend's adapter)."""
    w_ih, b_ih, w_hh, b_hh = weights
    batch, steps, _ = b.shape(x)
    hidden = b.shape(h)[1]
    projected = _linear(b, x, _weights(b, w_ih, b_ih))  # (N, T, G * H): all steps at once
    gates = b.shape(projected)[2]
    hh = _weights(b, w_hh, b_hh)
    one = b.const(np.float32(1.0), "one") if cell == "gru" else ""  # the GRU's 1 - z
    per_step: list[str] = [""] * steps
    for t in range(steps - 1, -1, -1) if reverse else range(steps):
        attrs = {"dim": 1, "start": t, "stop": t + 1, "step": 1}
        row = b.emit("slice", [projected], attrs, meta_like([batch, 1, gates]))
        x_t = b.reshape(row, meta_like([batch, gates]))
        h, c = _step(b, "lstm" if c is not None else cell, x_t, h, c, hh, one)
        per_step[t] = b.reshape(h, meta_like([batch, 1, hidden]))
    if steps == 1:
        return per_step[0], h, c
    seq = b.emit("cat", per_step, {"dim": 1}, meta_like([batch, steps, hidden]))
    return seq, h, c


def _initial(b: FxBuilder, state: Any, index: int, batch: int, hidden: int) -> str:
    """Row ``index`` of an initial state ``(layers * directions, N, H)``, or zeros."""
    if state is None:
        return b.const(np.zeros((batch, hidden), np.float32), "h0")
    attrs = {"dim": 0, "start": index, "stop": index + 1, "step": 1}
    row = b.emit("slice", [state], attrs, meta_like([1, batch, hidden]))
    return b.reshape(row, meta_like([batch, hidden]))


def _stack(b: FxBuilder, rows: list[str]) -> str:
    """``(N, H)`` states stacked into ``(len(rows), N, H)``."""
    n, hidden = b.shape(rows[0])
    parts = [b.reshape(r, meta_like([1, n, hidden])) for r in rows]
    if len(parts) == 1:
        return parts[0]
    return b.emit("cat", parts, {"dim": 0}, meta_like([len(parts), n, hidden]))


def _rnn_module(b: FxBuilder, node: torch.fx.Node, out: Any) -> Any:
    """``nn.GRU`` / ``nn.LSTM`` / ``nn.RNN`` called on ``(x, hx)``, as torch.fx records it."""
    mod = b.gm.get_submodule(str(node.target))
    assert isinstance(mod, (nn.GRU, nn.LSTM, nn.RNN))
    name, lstm = type(mod).__name__, isinstance(mod, nn.LSTM)
    cell = "lstm" if lstm else {"RNN_TANH": "tanh", "RNN_RELU": "relu"}.get(mod.mode, "gru")
    if lstm and mod.proj_size:
        raise UnsupportedOp(name, node.name, "proj_size (LSTM projections)")
    hx = b.val(arg(node, 1, "hx"))
    h_state = c_state = None
    if hx is not None:
        if lstm:
            h_state, c_state = (b.tensor_arg(s) for s in hx)
        else:
            h_state = b.tensor_arg(arg(node, 1, "hx"))

    def weights(index: int) -> tuple[Any, Any, Any, Any]:
        directions = 2 if mod.bidirectional else 1
        suffix = f"_l{index // directions}" + ("_reverse" if index % directions else "")
        w_ih, w_hh = getattr(mod, "weight_ih" + suffix), getattr(mod, "weight_hh" + suffix)
        b_ih = getattr(mod, "bias_ih" + suffix) if mod.bias else None
        b_hh = getattr(mod, "bias_hh" + suffix) if mod.bias else None
        return w_ih, b_ih, w_hh, b_hh

    layout = (mod.num_layers, mod.bidirectional, mod.batch_first, mod.hidden_size)
    x = b.tensor_arg(node.args[0])
    output, h_n, c_n = _recurrent(b, node, name, cell, x, (h_state, c_state), layout, weights)
    return (output, (h_n, c_n)) if lstm else (output, h_n)


def _recurrent(
    b: FxBuilder,
    node: torch.fx.Node,
    name: str,
    cell: str,
    x: str,
    states: tuple[str | None, str | None],
    layout: tuple[int, bool, bool, int],
    weights: Any,
) -> tuple[str, str, str | None]:
    """A stacked, possibly bidirectional recurrence over ``x``: ``cell`` is ``gru``, ``lstm``,
    ``tanh`` or ``relu``; ``states`` the IR names of the initial ``h`` (and ``c``), ``(L * D,
    N, H)``, or None for zeros; ``layout`` ``(num_layers, bidirectional, batch_first,
    hidden)``; ``weights(index)`` ``(W_ih, b_ih, W_hh, b_hh)`` of layer and direction
    ``index = layer * directions + direction`` (PyTorch's order). Returns ``(output, h_n,
    c_n)`` (``c_n`` None but for an LSTM)."""
    num_layers, bidirectional, batch_first, hidden = layout
    lstm = cell == "lstm"
    if len(b.shape(x)) != 3:
        raise UnsupportedOp(name, node.name, "an unbatched (2-d) or packed input")
    if not batch_first:  # (T, N, F) -> (N, T, F)
        t_len, n_batch, feat = b.shape(x)
        x = b.emit("permute", [x], {"perm": (1, 0, 2)}, meta_like([n_batch, t_len, feat]))
    batch, steps, _ = b.shape(x)
    h_state, c_state = states
    directions = 2 if bidirectional else 1
    finals_h, finals_c = [], []
    layer_input = x
    for layer in range(num_layers):
        outputs = []
        for d in range(directions):
            index = layer * directions + d
            h0 = _initial(b, h_state, index, batch, hidden)
            c0 = _initial(b, c_state, index, batch, hidden) if lstm else None
            step_cell = "gru" if lstm else cell  # (an LSTM is told by its c)
            seq, h, c = unroll(b, layer_input, weights(index), h0, c0, d == 1, step_cell)
            outputs.append(seq)
            finals_h.append(h)
            finals_c.append(c or "")
        layer_input = (
            b.emit("cat", outputs, {"dim": 2}, meta_like([batch, steps, hidden * directions]))
            if directions == 2
            else outputs[0]
        )
    output = layer_input
    if not batch_first:
        output = b.emit(
            "permute", [output], {"perm": (1, 0, 2)}, meta_like([steps, batch, hidden * directions])
        )
    return output, _stack(b, finals_h), _stack(b, finals_c) if lstm else None


def _rnn_function(cell: str) -> Handler:
    """``torch.gru`` / ``torch.lstm`` / ``torch.rnn_tanh`` / ``torch.rnn_relu`` (what
    TorchDynamo records for ``nn.GRU`` / ``nn.LSTM`` / ``nn.RNN`` where it is let into them,
    stop 71): ``(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
    batch_first)``, ``params`` the flat weights of each layer and direction in turn
    (``W_ih, W_hh[, b_ih, b_hh]``); returns ``(output, h_n)`` (``(output, h_n, c_n)``)."""

    def handler(b: FxBuilder, node: torch.fx.Node, out: Any) -> Any:
        name = target_name(node, b.gm)
        params = [b.tensor_arg(p) for p in b.val(node.args[2])]
        has_biases, num_layers, _dropout, train, bidirectional, batch_first = (
            b.val(v) for v in node.args[3:9]
        )
        if train:
            raise UnsupportedOp(name, node.name, "train=True (dropout between layers)")
        directions = 2 if bidirectional else 1
        per = 4 if has_biases else 2
        if len(params) != num_layers * directions * per:
            raise UnsupportedOp(name, node.name, "proj_size (LSTM projections)")
        lstm = cell == "lstm"
        hx = b.val(node.args[1])
        states = (
            (b.tensor_arg(hx[0]), b.tensor_arg(hx[1]))
            if lstm
            else (b.tensor_arg(node.args[1]), None)
        )
        hidden = int(b.shape(params[1])[1])  # W_hh is (G * H, H)

        def weights(index: int) -> tuple[Any, Any, Any, Any]:
            group = params[index * per : (index + 1) * per]
            w_ih, w_hh = group[0], group[1]
            b_ih, b_hh = (group[2], group[3]) if has_biases else (None, None)
            return w_ih, b_ih, w_hh, b_hh

        layout = (num_layers, bool(bidirectional), bool(batch_first), hidden)
        x = b.tensor_arg(node.args[0])
        output, h_n, c_n = _recurrent(b, node, name, cell, x, states, layout, weights)
        return (output, h_n, c_n) if lstm else (output, h_n)

    return handler


def _cell_step(
    b: FxBuilder, node: torch.fx.Node, kind: str, x: str, state: Any, ih: list[str], hh: list[str]
) -> Any:
    """One step of a recurrent cell (stop 70; the equations of the module docstring, on one
    ``x`` ``(N, F)``): ``kind`` is ``gru``, ``lstm``, ``tanh`` or ``relu`` (``nn.RNNCell``:
    ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``); ``state`` the IR name of ``h`` (``(h, c)``
    for an LSTM), or None for zeros; ``ih`` / ``hh`` the IR names of ``[W_ih, b_ih]`` /
    ``[W_hh, b_hh]`` (without the biases where there are none). Returns ``h'`` (``(h', c')``
    for an LSTM)."""
    if len(b.shape(x)) != 2:
        raise UnsupportedOp(target_name(node, b.gm), node.name, "an unbatched (1-d) input")
    if state is None:
        batch, hidden = b.shape(x)[0], int(b.shape(hh[0])[1])
        zeros = b.const(np.zeros((batch, hidden), np.float32), "h0")
        state = (zeros, zeros) if kind == "lstm" else zeros
    h, c = state if kind == "lstm" else (state, None)
    one = b.const(np.float32(1.0), "one") if kind == "gru" else ""
    h, c = _step(b, kind, _linear(b, x, ih), h, c, hh, one)
    return (h, c) if kind == "lstm" else h


def _cell_state(b: FxBuilder, hx: Any, lstm: bool) -> Any:
    """A cell's ``hx`` argument as IR names (None: zeros)."""
    value = b.val(hx)
    if value is None:
        return None
    return tuple(b.tensor_arg(t) for t in value) if lstm else b.tensor_arg(hx)


CELL_KINDS = {nn.GRUCell: "gru", nn.LSTMCell: "lstm"}


def _cell_module(b: FxBuilder, node: torch.fx.Node, out: Any) -> Any:
    """``nn.GRUCell`` / ``nn.LSTMCell`` / ``nn.RNNCell`` called on ``(x, hx)``."""
    mod = b.gm.get_submodule(str(node.target))
    kind = CELL_KINDS.get(type(mod)) or mod.nonlinearity
    state = _cell_state(b, arg(node, 1, "hx"), kind == "lstm")
    ih = _weights(b, mod.weight_ih, mod.bias_ih if mod.bias else None)
    hh = _weights(b, mod.weight_hh, mod.bias_hh if mod.bias else None)
    return _cell_step(b, node, kind, b.tensor_arg(node.args[0]), state, ih, hh)


def _cell_function(kind: str) -> Handler:
    """``torch.gru_cell`` / ``torch.lstm_cell`` / ``torch.rnn_tanh_cell`` /
    ``torch.rnn_relu_cell`` (what TorchDynamo records for the cells):
    ``(input, hx, w_ih, w_hh, b_ih, b_hh)``."""

    def handler(b: FxBuilder, node: torch.fx.Node, out: Any) -> Any:
        state = _cell_state(b, node.args[1], kind == "lstm")
        b_ih, b_hh = arg(node, 4, "b_ih"), arg(node, 5, "b_hh")
        ih = [b.tensor_arg(node.args[2])] + ([] if b.val(b_ih) is None else [b.tensor_arg(b_ih)])
        hh = [b.tensor_arg(node.args[3])] + ([] if b.val(b_hh) is None else [b.tensor_arg(b_hh)])
        return _cell_step(b, node, kind, b.tensor_arg(node.args[0]), state, ih, hh)

    return handler


RECURRENT_MODULES: dict[type, Handler] = {
    nn.GRU: _rnn_module,
    nn.LSTM: _rnn_module,
    nn.RNN: _rnn_module,  # stop 70
    nn.GRUCell: _cell_module,
    nn.LSTMCell: _cell_module,
    nn.RNNCell: _cell_module,
}
RECURRENT_FUNCTION_NAMES: dict[str, Handler] = {
    "gru_cell": _cell_function("gru"),
    "lstm_cell": _cell_function("lstm"),
    "rnn_tanh_cell": _cell_function("tanh"),
    "rnn_relu_cell": _cell_function("relu"),
    # stop 71: the whole modules as TorchDynamo records them (``allow_rnn``)
    "gru": _rnn_function("gru"),
    "lstm": _rnn_function("lstm"),
    "rnn_tanh": _rnn_function("tanh"),
    "rnn_relu": _rnn_function("relu"),
}


class _WrappedRecurrent(nn.Module):
    """A bare ``nn.GRU`` / ``nn.LSTM`` as one leaf call that torch.fx can record, on its input
    alone (zero initial states; a model that passes states compiles them as inputs)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> Any:
        return self.inner(x)
