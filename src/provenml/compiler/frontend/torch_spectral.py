"""Circular convolution and correlation written with real FFTs, for the torch frontend (stop 71).

The IR has no complex tensors, but the commonest use of ``torch.fft`` in a model is a product of
two spectra brought straight back: ``irfft(rfft(a) * rfft(b), n=d)``, the circular convolution
``[a * b]_k = sum_i a_i b_{(k - i) mod d}``, and with one spectrum conjugated the circular
correlation ``[a (star) b]_k = sum_i a_i b_{(i + k) mod d}`` of HolE (Nickel et al. 2016, eq. 9;
S11's ``hole`` scores both ways). Those are real maths of real inputs, compiled here without
the spectra: each complex result is kept as what it stands for (:class:`Spectrum`: the real
signals whose spectra multiply, each perhaps conjugated), and ``irfft`` then emits the sum
directly.

With ``sa``, ``sb`` = -1 for a conjugated spectrum (+1 otherwise), the conjugate of ``rfft(x)``
is the spectrum of ``x`` reversed (``x_{-n mod d}``), so ``irfft`` of the product is
``c_k = sum_j a_j b_{sb (k - sa j) mod d}``: ``b`` gathered into a ``(d, d)`` table by a
constant index, times ``a`` along its rows, summed (``O(d^2)`` per pair where the FFT is
``O(d log d)``; the same sums to float32 rounding). ``irfft(rfft(a))`` is ``a`` (reversed where
conjugated).

Refused by name: any other use of a complex tensor (``abs``, ``angle``, ``fft`` of a complex
input, a product of three spectra or with a number, a spectrum returned), ``n`` other than the
signal's length, a ``dim`` other than the last, and ``norm`` other than the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.fx

from provenml.compiler.frontend.common import UnsupportedOp
from provenml.compiler.frontend.torch_fx import FxBuilder, Handler, arg, meta_like, target_name
from provenml.compiler.frontend.torch_more_ops import _front, _unfront

__all__ = ["SPECTRAL_FUNCTION_NAMES", "Spectrum", "spectral_value"]

#: what the refusals name as compiled
SUPPORTED = "only irfft(rfft(a) * rfft(b)), a circular convolution or correlation, is compiled"


@dataclass(frozen=True)
class Spectrum:
    """A complex value of the traced model that stands for the product of the real FFTs of
    ``factors`` (IR names of real signals ``(..., length)``, each with whether its spectrum is
    conjugated), along their last dim."""

    factors: tuple[tuple[str, bool], ...]
    length: int


def _refuse(b: FxBuilder, node: torch.fx.Node, why: str) -> UnsupportedOp:
    return UnsupportedOp(target_name(node, b.gm), node.name, why)


def _spectrum(b: FxBuilder, node: torch.fx.Node, value: Any) -> Spectrum:
    if not isinstance(value, Spectrum):
        raise _refuse(b, node, f"a complex operand not made by torch.fft.rfft ({SUPPORTED})")
    return value


def _check_dim_and_norm(b: FxBuilder, node: torch.fx.Node, rank: int) -> None:
    dim = b.val(arg(node, 2, "dim", -1))
    norm = b.val(arg(node, 3, "norm", None))
    if dim not in (-1, rank - 1):
        raise _refuse(b, node, f"dim={dim} (only the last dim)")
    if norm not in (None, "backward"):
        raise _refuse(b, node, f"norm={norm!r} (only the default, 'backward')")


def spectral_value(b: FxBuilder, node: torch.fx.Node, result: torch.Tensor) -> Spectrum:
    """The :class:`Spectrum` a call with a complex result stands for: ``torch.fft.rfft`` of a
    real tensor, ``conj`` of a spectrum, or the product of two; anything else refused."""
    name = target_name(node, b.gm).split(".")[-1]
    if name == "fft_rfft":
        x = b.tensor_arg(node.args[0])
        shape = b.shape(x)
        if not shape:
            raise _refuse(b, node, "a 0-d input")
        n = b.val(arg(node, 1, "n", None))
        if n not in (None, shape[-1]):
            why = f"n={n} for a signal of length {shape[-1]} (padding or cropping)"
            raise _refuse(b, node, why)
        _check_dim_and_norm(b, node, len(shape))
        return Spectrum(((x, False),), int(shape[-1]))
    if name in ("conj", "conj_physical", "resolve_conj"):
        s = _spectrum(b, node, b.val(node.args[0]))
        if name == "resolve_conj":
            return s
        return Spectrum(tuple((x, not conj) for x, conj in s.factors), s.length)
    if name == "mul" and len(node.args) == 2:
        left, right = (b.val(a) for a in node.args)
        first, second = _spectrum(b, node, left), _spectrum(b, node, right)
        if first.length != second.length:
            raise _refuse(b, node, "spectra of signals of different lengths")
        factors = first.factors + second.factors
        if len(factors) > 2:
            raise _refuse(b, node, f"a product of {len(factors)} spectra ({SUPPORTED})")
        return Spectrum(factors, first.length)
    raise _refuse(b, node, f"a complex result ({SUPPORTED})")


def _reversed(b: FxBuilder, x: str) -> str:
    """``x_{-n mod d}`` along the last dim (the signal whose spectrum is ``x``'s conjugate)."""
    d = b.shape(x)[-1]
    return _gather_last(b, x, (-np.arange(d)) % d, tuple(b.shape(x)))


def _gather_last(b: FxBuilder, x: str, index: np.ndarray, shape: tuple[int, ...]) -> str:
    """``x[..., index]`` (``index`` a constant vector over the last dim) reshaped to ``shape``."""
    lead, d = b.shape(x)[:-1], len(b.shape(x)) - 1
    rows = _front(b, x, d)  # (length, rest)
    positions = b.g.add_const(np.ascontiguousarray(index, dtype=np.int64), "positions")
    width = b.shape(rows)[1]
    gathered = b.emit("embedding", [rows, positions], {}, meta_like([index.size, width]))
    flat = _unfront(b, gathered, (*lead, index.size), d)
    return flat if tuple(b.shape(flat)) == shape else b.reshape(flat, meta_like(shape))


def _irfft(b: FxBuilder, node: torch.fx.Node, out: torch.Tensor) -> str:
    """``torch.fft.irfft`` of a :class:`Spectrum`: the signal itself for one factor, the
    circular convolution of the module docstring for two."""
    s = _spectrum(b, node, b.val(node.args[0]))
    n = b.val(arg(node, 1, "n", None))
    if n not in (None, s.length) or (n is None and 2 * (s.length // 2) != s.length):
        shown = n if n is not None else 2 * (s.length // 2)
        raise _refuse(b, node, f"n={shown} for spectra of signals of length {s.length}")
    _check_dim_and_norm(b, node, out.dim())
    d = s.length
    if len(s.factors) == 1:
        x, conj = s.factors[0]
        return _reversed(b, x) if conj else x
    (a, conj_a), (v, conj_v) = s.factors
    sa, sb = (-1 if conj_a else 1), (-1 if conj_v else 1)
    j, k = np.meshgrid(np.arange(d), np.arange(d), indexing="ij")
    index = (sb * (k - sa * j)) % d  # table[..., j, k] = v_{index[j, k]}
    lead_v = tuple(b.shape(v)[:-1])
    table = _gather_last(b, v, index.ravel(), (*lead_v, d, d))
    column = b.reshape(a, meta_like([*b.shape(a)[:-1], d, 1]))
    grown = np.broadcast_shapes(b.shape(column), b.shape(table))
    products = b.emit("mul", [column, table], {}, meta_like(grown))
    rank = len(grown)
    return b.emit("sum", [products], {"dims": (rank - 2,), "keepdim": False}, out)


SPECTRAL_FUNCTION_NAMES: dict[str, Handler] = {"fft_irfft": _irfft}
