"""Convolution kernels: channels-last (NHWC) on the register tile over pre-packed weight
panels, depthwise (NHWC or NCHW), and the plain NCHW loop nest (the layout ablation); a padded
copy of the input goes to the node's scratch space."""

from __future__ import annotations

from typing import TYPE_CHECKING

from provenml.compiler import loopir as L
from provenml.compiler.codegen.c_source import local_array, released
from provenml.compiler.codegen.kernels.tiles import (
    anchored_setup,
    epilogue_fn,
    register_tile,
    tile_variants,
)
from provenml.compiler.codegen.nests import with_lets
from provenml.compiler.ir import Node

if TYPE_CHECKING:
    from provenml.compiler.codegen.lowering import Lowering


def pad_input(
    low: Lowering, n: Node, anchor: Node, names: dict[str, str], nhwc: bool
) -> tuple[list[L.Loop | L.Let | L.Stmt], str, int, int]:
    """Zero-padded copy of the conv input into the node's scratch space (if padding > 0)."""
    x = anchor.inputs[0]
    xv = low.g.values[x]
    nb_, c, h, w = xv.shape
    ph, pw = anchor.attrs["padding"]
    hp, wp = h + 2 * ph, w + 2 * pw
    if ph == 0 and pw == 0:
        return [], names[x], hp, wp
    scratch = low.scratch(n)
    if nhwc:
        src = f"{names[x]}[((b*{h} + (y - {ph}))*{w} + (xx - {pw}))*{c} + ch]"
        inner = L.Loop(
            "ch", c, [L.Stmt(f"xp[((b*{hp} + y)*{wp} + xx)*{c} + ch] = inside ? {src} : 0.f;")]
        )
        L.vectorize([inner], "ch")
        loop = L.Loop(
            "by",
            nb_ * hp,
            [
                L.Stmt(f"const long b = by / {hp}, y = by % {hp};"),
                L.Loop(
                    "xx",
                    wp,
                    [
                        L.Stmt(
                            f"const int inside = y >= {ph} && y < {h + ph} && xx >= {pw} && "
                            f"xx < {w + pw};"
                        ),
                        inner,
                    ],
                ),
            ],
        )
    else:
        src = f"{names[x]}[((bc)*{h} + (y - {ph}))*{w} + (xx - {pw})]"
        inner = L.Loop(
            "xx",
            wp,
            [
                L.Stmt(
                    f"xp[(bc*{hp} + y)*{wp} + xx] = (inside && xx >= {pw} && xx < {w + pw}) ? "
                    f"{src} : 0.f;"
                )
            ],
        )
        L.vectorize([inner], "xx")
        loop = L.Loop(
            "bc",
            nb_ * c,
            [L.Loop("y", hp, [L.Stmt(f"const int inside = y >= {ph} && y < {h + ph};"), inner])],
        )
    L.parallel([loop], "by" if nhwc else "bc")
    return [L.Decl(f"float* restrict xp = arena + {scratch};"), loop], "xp", hp, wp


def conv_nhwc(
    low: Lowering,
    n: Node,
    kname: str,
    anchor: Node,
    epi: list[Node],
    sched: dict[str, int],
    decl: list[str],
    names: dict[str, str],
) -> L.Kernel:
    xv, ov = low.g.values[anchor.inputs[0]], low.g.values[anchor.name]
    nb_, cin, _, _ = xv.shape
    _, cout, oh, ow = ov.shape
    kh, kw = anchor.attrs["kernel"]
    sh, sw = anchor.attrs["stride"]
    nr = int(anchor.attrs["packed"])
    # a grouped convolution: group g's output channels [g cout_g, (g + 1) cout_g) read its
    # input channels [g cin_g, (g + 1) cin_g); each group has its own ceil(cout_g / nr) panels
    groups = int(anchor.attrs.get("groups", 1))
    cin_g, cout_g = cin // groups, cout // groups
    mr = max(1, min(int(sched["mr"]), ow))
    ku = int(sched["ku"])
    pad, src, hp, wp = pad_input(low, n, anchor, names, True)
    bias = f"{names[anchor.inputs[2]]}[c]" if len(anchor.inputs) > 2 else None
    epi_fn = epilogue_fn(low, n, anchor, epi, 3, names)
    W, Y = names[anchor.inputs[1]], names[n.name]
    ncb = -(-cout_g // nr)  # column panels per group
    branches: L.Body = []
    for variant in tile_variants(ow, mr, cout_g, nr, row_index="xo"):
        tile = register_tile(
            low,
            variant.rows,
            nr,
            variant.cols,
            ku,
            f"arow[(ii*{sw})*{cin} + k]",
            f"wrow[k*{nr} + ji]",
            f"{Y}[r*{cout} + c]",
            bias,
            epi_fn,
            cin_g,
            ("arow", str(sw * cin), "wrow", str(nr)),
            int(sched.get("vec", 8)),
        )
        # K loop runs over (kh, kw, cin): wrap it
        kl = tile[2]
        assert isinstance(kl, (L.Loop, L.Stmt))
        tile[2] = L.Loop(
            "kh",
            kh,
            [
                L.Loop(
                    "kw",
                    kw,
                    [
                        L.Stmt(
                            f"const float* arow = {src} + ((b*{hp} + oy*{sh} + kh)*{wp} + "
                            f"ox0*{sw} + kw)*{cin} + g*{cin_g};\nconst float* restrict wrow = "
                            f"{W} + (((g*{ncb} + jo)*{kh} + kh)*{kw} + kw)*{cin_g * nr};"
                        ),
                        kl,
                    ],
                )
            ],
        )
        tile[-1] = with_lets(
            tile[-1], [f"r = (b*{oh} + oy)*{ow} + ox0 + ii", f"c = g*{cout_g} + jo*{nr} + ji"]
        )
        branches.append(L.If(variant.cond, tile))
    mb = -(-ow // mr)
    pre = [
        f"const long panel = t / {nb_ * oh}, rest = t % {nb_ * oh};",
        f"const long g = panel / {ncb}, jo = panel % {ncb};",
        f"const long b = rest / {oh}, oy = rest % {oh};",
        f"enum {{ MB_FULL = {ow // mr}, NB_FULL = {cout_g // nr} }};",
    ]
    xo = L.Loop("xo", mb, [L.Let("ox0", f"xo * {mr}"), *branches])
    compute = L.Loop("t", groups * ncb * nb_ * oh, [L.Stmt("\n".join(pre)), xo])
    L.parallel([compute], "t")
    return L.Kernel(kname, decl, [*pad, compute])


def conv_depthwise(
    low: Lowering,
    n: Node,
    kname: str,
    anchor: Node,
    epi: list[Node],
    decl: list[str],
    names: dict[str, str],
) -> L.Kernel:
    xv, ov = low.g.values[anchor.inputs[0]], low.g.values[anchor.name]
    nb_, c, _, _ = xv.shape
    _, _, oh, ow = ov.shape
    kh, kw = anchor.attrs.get("kernel") or low.g.values[anchor.inputs[1]].shape[2:4]
    sh, sw = anchor.attrs["stride"]
    nhwc = ov.layout == "NHWC"
    pad, src, hp, wp = pad_input(low, n, anchor, names, nhwc)
    W, Y = names[anchor.inputs[1]], names[n.name]
    bias = f" + {names[anchor.inputs[2]]}[c]" if len(anchor.inputs) > 2 else ""
    if nhwc:
        epi_fn = epilogue_fn(low, n, anchor, epi, 3, names)
        stmts, result = epi_fn(f"acc[c]{bias}")
        init = L.Loop("c", c, [L.Stmt("acc[c] = 0.f;")], "vectorize")
        mac = L.Loop(
            "kh",
            kh,
            [
                L.Loop(
                    "kw",
                    kw,
                    [
                        L.Stmt(
                            f"const float* xrow = {src} + ((b*{hp} + oy*{sh} + kh)*{wp} + "
                            f"ox*{sw} + kw)*{c};\nconst float* wrow = {W} + (kh*{kw} + "
                            f"kw)*{c};"
                        ),
                        L.Loop("c", c, [L.Stmt("acc[c] += xrow[c] * wrow[c];")], "vectorize"),
                    ],
                )
            ],
        )
        store = L.Loop(
            "c",
            c,
            [
                L.Let("r", f"(b*{oh} + oy)*{ow} + ox"),
                L.Stmt("\n".join([*stmts, f"{Y}[r*{c} + c] = {result};"])),
            ],
            "vectorize",
        )
        body = L.Loop(
            "t",
            nb_ * oh,
            [
                L.Stmt(f"const long b = t / {oh}, oy = t % {oh};\nfloat acc[{c}];"),
                L.Loop("ox", ow, [init, mac, store]),
            ],
            "parallel",
        )
        return L.Kernel(kname, decl, [*pad, body])
    epi_fn = epilogue_fn(low, n, anchor, epi, 2, names)
    stmts, result = epi_fn(f"acc[c2]{bias.replace('[c]', '[ch]')}")
    mac = L.Loop(
        "kh",
        kh,
        [
            L.Loop(
                "kw",
                kw,
                [
                    L.Stmt(f"const float wv = {W}[(ch*{kh} + kh)*{kw} + kw];"),
                    L.Loop(
                        "oy",
                        oh,
                        [
                            L.Loop(
                                "ox",
                                ow,
                                [
                                    L.Stmt(
                                        f"acc[oy*{ow} + ox] += wv * {src}[((bc*{hp}) + "
                                        f"oy*{sh} + kh)*{wp} + ox*{sw} + kw];"
                                    )
                                ],
                                "vectorize",
                            )
                        ],
                    ),
                ],
            )
        ],
    )
    prelude = f"const long ch = bc % {c};"
    body = plane_body(nb_ * c, oh * ow, prelude, mac, stmts, result, Y)
    return L.Kernel(kname, decl, [*pad, body])


def conv_nchw(
    low: Lowering,
    n: Node,
    kname: str,
    anchor: Node,
    epi: list[Node],
    decl: list[str],
    names: dict[str, str],
) -> L.Kernel:
    xv, ov = low.g.values[anchor.inputs[0]], low.g.values[anchor.name]
    nb_, cin, _, _ = xv.shape
    _, cout, oh, ow = ov.shape
    kh, kw = low.g.values[anchor.inputs[1]].shape[2:4]
    sh, sw = anchor.attrs["stride"]
    groups = int(anchor.attrs.get("groups", 1))
    cin_g, cout_g = cin // groups, cout // groups  # output channel co reads group co / cout_g
    pad, src, hp, wp = pad_input(low, n, anchor, names, False)
    W, Y = names[anchor.inputs[1]], names[n.name]
    bias = f" + {names[anchor.inputs[2]]}[co]" if len(anchor.inputs) > 2 else ""
    epi_fn = epilogue_fn(low, n, anchor, epi, 2, names)
    stmts, result = epi_fn(f"acc[c2]{bias}")
    mac = L.Loop(
        "ci",
        cin_g,
        [
            L.Loop(
                "kh",
                kh,
                [
                    L.Loop(
                        "kw",
                        kw,
                        [
                            L.Stmt(
                                f"const float wv = {W}[((co*{cin_g} + ci)*{kh} + kh)*{kw} + kw];"
                            ),
                            L.Loop(
                                "oy",
                                oh,
                                [
                                    L.Loop(
                                        "ox",
                                        ow,
                                        [
                                            L.Stmt(
                                                f"acc[oy*{ow} + ox] += wv * {src}[(((b*{cin} "
                                                f"+ ci0 + ci)*{hp}) + oy*{sh} + kh)*{wp} + "
                                                f"ox*{sw} + kw];"
                                            )
                                        ],
                                        "vectorize",
                                    )
                                ],
                            ),
                        ],
                    )
                ],
            )
        ],
    )
    prelude = f"const long b = bc / {cout}, co = bc % {cout}, ci0 = (co / {cout_g})*{cin_g};"
    body = plane_body(nb_ * cout, oh * ow, prelude, mac, stmts, result, Y)
    return L.Kernel(kname, decl, [*pad, body])


def plane_body(
    planes: int, plane: int, prelude: str, mac: L.Loop, stmts: list[str], result: str, Y: str
) -> L.Loop:
    """The NCHW conv scaffolding shared by the full and depthwise kernels: one parallel
    iteration per output plane ``bc`` (batch x channel), whose ``acc[plane]`` is zeroed,
    accumulated by ``mac`` and stored through the fused epilogue."""
    init = L.Loop("p", plane, [L.Stmt("acc[p] = 0.f;")], "vectorize")
    store = L.Loop(
        "c2",
        plane,
        [
            L.Let("r", "bc"),
            L.Let("c", "c2"),
            L.Stmt("\n".join([*stmts, f"{Y}[bc*{plane} + c2] = {result};"])),
        ],
        "vectorize",
    )
    accumulators, release = local_array("float", "acc", plane)
    head = L.Stmt(f"{prelude}\n{accumulators}")
    return L.Loop("bc", planes, [head, init, mac, store, *released(release)], "parallel")


def lower_conv(low: Lowering, n: Node, kname: str) -> L.Kernel:
    """A conv2d node, or a fused group anchored on one: depthwise, NHWC or NCHW."""
    anchor, *epi = n.attrs["body"] if n.op == "fused" else [n]
    sched, decl, names = anchored_setup(low, n, anchor, epi)
    if anchor.attrs.get("depthwise"):
        return conv_depthwise(low, n, kname, anchor, epi, decl, names)
    if low.g.values[anchor.name].layout == "NHWC":
        return conv_nhwc(low, n, kname, anchor, epi, sched, decl, names)
    return conv_nchw(low, n, kname, anchor, epi, decl, names)
