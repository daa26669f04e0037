"""Max and average pooling (NHWC: vectorized over channels; NCHW: one window loop per
output)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from provenml.compiler import loopir as L
from provenml.compiler.ir import Node

if TYPE_CHECKING:
    from provenml.compiler.codegen.lowering import Lowering


def pool(low: Lowering, n: Node, kname: str) -> L.Kernel:
    xv, ov = low.g.values[n.inputs[0]], low.g.values[n.name]
    nb_, c, h, w = xv.shape
    _, _, oh, ow = ov.shape
    (kh, kw), (sh, sw), (ph, pw) = n.attrs["kernel"], n.attrs["stride"], n.attrs["padding"]
    decl, names = low.decls(n, [n.name], n.inputs)
    X, Y = names[n.inputs[0]], names[n.name]
    is_max = n.op == "max_pool2d"
    # max pooling (stop 67): a plain maximum, and per accumulator a flag of whether a NaN was
    # seen, tested once at the end (a window with a NaN gives NaN, as PyTorch's); cheaper in
    # the window loop than pm_maxf's two NaN tests and three selects per element
    init = "-INFINITY" if is_max else "0.f"
    combine = (
        "{{ const float v_ = {v}; acc[ch] = MAX(acc[ch], v_); seen[ch] |= pm_isnan(v_); }}"
        if is_max
        else "acc[ch] += {v};"
    )
    fin = (
        "(seen[ch] ? pm_as_nan(acc[ch]) : acc[ch])" if is_max else f"acc[ch] * {1.0 / (kh * kw)!r}f"
    )
    if ov.layout == "NHWC":
        v = f"{X}[((b*{h} + y)*{w} + xx)*{c} + ch]"
        win = L.Loop(
            "ky",
            kh,
            [
                L.Loop(
                    "kx",
                    kw,
                    [
                        L.Stmt(
                            f"const long y = oy*{sh} + ky - {ph}, xx = ox*{sw} + kx - "
                            f"{pw};\nif (y < 0 || y >= {h} || xx < 0 || xx >= {w}) continue;"
                        ),
                        L.Loop("ch", c, [L.Stmt(combine.format(v=v))], "vectorize"),
                    ],
                )
            ],
        )
        body = L.Loop(
            "t",
            nb_ * oh,
            [
                L.Stmt(
                    f"const long b = t / {oh}, oy = t % {oh};\nfloat acc[{c}];"
                    + (f"\nint seen[{c}];" if is_max else "")
                ),
                L.Loop(
                    "ox",
                    ow,
                    [
                        L.Loop(
                            "ch",
                            c,
                            [L.Stmt(f"acc[ch] = {init};" + (" seen[ch] = 0;" if is_max else ""))],
                            "vectorize",
                        ),
                        win,
                        L.Loop(
                            "ch",
                            c,
                            [L.Stmt(f"{Y}[((b*{oh} + oy)*{ow} + ox)*{c} + ch] = {fin};")],
                            "vectorize",
                        ),
                    ],
                ),
            ],
            "parallel",
        )
        return L.Kernel(kname, decl, [body])
    v = f"{X}[(bc*{h} + y)*{w} + xx]"
    code = (
        f"float a = {init};\nint seen = 0;\nfor (long ky = 0; ky < {kh}; ++ky) for (long kx = 0; "
        f"kx < {kw}; ++kx) {{\n"
        f"  const long y = oy*{sh} + ky - {ph}, xx = ox*{sw} + kx - {pw};\n  if (y < 0 || y "
        f">= {h} || xx < 0 || xx >= {w}) continue;\n"
        + (
            f"  const float v_ = {v};\n  a = MAX(a, v_);\n  seen |= pm_isnan(v_);\n}}\n"
            if is_max
            else f"  a += {v};\n}}\n"
        )
        + f"{Y}[(bc*{oh} + oy)*{ow} + ox] = "
        + ("seen ? pm_as_nan(a) : a;" if is_max else f"a * {1.0 / (kh * kw)!r}f;")
    )
    body = L.Loop("bc", nb_ * c, [L.Loop("oy", oh, [L.Loop("ox", ow, [L.Stmt(code)])])], "parallel")
    return L.Kernel(kname, decl, [body])
