"""Max and average pooling (NHWC: vectorized over channels; NCHW: vectorized along each
output row)."""

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
    return L.Kernel(kname, decl, [_nchw_rows(X, Y, (nb_ * c, h, w, oh, ow), n, is_max)])


#: the widest stretch of one output row a row-layout pool accumulates at once (floats on the
#: stack per thread)
ROW_CHUNK = 1024


def _nchw_rows(
    X: str, Y: str, dims: tuple[int, int, int, int, int], n: Node, is_max: bool
) -> L.Loop:
    """The row-layout (NCHW) pool, vectorized along the output row (stop 69; before, one
    scalar window loop per output): per output row ``(bc, oy)`` and chunk of ``ROW_CHUNK``
    outputs, an accumulator row; per window tap ``(ky, kx)`` the outputs whose input column
    ``ox*sw + kx - pw`` lies inside the row are one contiguous range ``[lo, hi)``, computed once
    per tap, so the inner loop has no bounds test and is a (strided, for ``sw > 1``) SIMD
    loop. Taps that fall in the padding contribute nothing (max: ``-inf``; average: 0 with the
    ``kh * kw`` divisor, as the NHWC kernel)."""
    planes, h, w, oh, ow = dims
    (kh, kw), (sh, sw), (ph, pw) = n.attrs["kernel"], n.attrs["stride"], n.attrs["padding"]
    chunk = min(ow, ROW_CHUNK)
    chunks = -(-ow // chunk)
    init = "-INFINITY" if is_max else "0.f"
    if is_max:
        combine = f"const float v_ = row[o*{sw} + shift]; acc[o - o0] = MAX(acc[o - o0], v_); "
        combine += "seen[o - o0] |= pm_isnan(v_);"
        fin = "seen[o] ? pm_as_nan(acc[o]) : acc[o]"
    else:
        combine = f"acc[o - o0] += row[o*{sw} + shift];"
        fin = f"acc[o] * {1.0 / (kh * kw)!r}f"
    seen_decl = f"\nint seen[{chunk}];" if is_max else ""
    seen_init = " seen[o] = 0;" if is_max else ""
    code = f"""const long bc = t / {oh * chunks}, oy = (t / {chunks}) % {oh};
const long o0 = (t % {chunks}) * {chunk}, o1 = MIN(o0 + {chunk}, {ow});
float acc[{chunk}];{seen_decl}
#pragma omp simd
for (long o = 0; o < o1 - o0; ++o) {{ acc[o] = {init};{seen_init} }}
for (long ky = 0; ky < {kh}; ++ky) {{
  const long y = oy*{sh} + ky - {ph};
  if (y < 0 || y >= {h}) continue;
  const float *row = {X} + (bc*{h} + y)*{w};
  for (long kx = 0; kx < {kw}; ++kx) {{
    const long shift = kx - {pw}, last = {w - 1} - shift;
    /* outputs o with 0 <= o*{sw} + shift <= {w - 1} */
    const long lo = MAX(o0, shift < 0 ? (-shift + {sw - 1}) / {sw} : 0);
    const long hi = MIN(o1, last < 0 ? 0 : last / {sw} + 1);
    #pragma omp simd
    for (long o = lo; o < hi; ++o) {{ {combine} }}
  }}
}}
float *out = {Y} + (bc*{oh} + oy)*{ow} + o0;
#pragma omp simd
for (long o = 0; o < o1 - o0; ++o) out[o] = {fin};"""
    return L.Loop("t", planes * oh * chunks, [L.Stmt(code)], "parallel")
