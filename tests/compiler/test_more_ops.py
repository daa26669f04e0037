"""The ops stop 59 added to the torch frontend (``frontend/torch_more_ops.py``, the decoder
modules in ``torch_attention.py``, var_mean / adaptive pools / softplus in ``torch_fx.py``):
each group in one model against eager, through ``compile`` and through the ``torch.compile``
backend (where dynamo hands the functions the modules call), and what they refuse, by name."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from tests.compiler._user_models import Apply
from torch import nn

import provenml.compiler as pc
from provenml.errors import ProvenmlError

torch.manual_seed(0)


class Rearranging(nn.Module):
    """flip / roll / pixel (un)shuffle / tril / triu, and a mask moved by flip."""

    def __init__(self) -> None:
        super().__init__()
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (2, 8, 4, 4)
        y = torch.flip(x, (1, 3)) + x.flip(-1) + torch.roll(x, (1, -2), (1, 2)) + x.roll(3)
        mask = (x > 0.5).flip(2)
        y = y.masked_fill(mask, -1.0)
        up = self.shuffle(y)  # (2, 2, 8, 8)
        up = torch.tril(up, 1) - up.triu(-2) + F.pixel_shuffle(y, 2)
        return F.pixel_unshuffle(up, 2) * 0.5 + y


class Activations(nn.Module):
    """Mish, GLU, PReLU (per channel and one slope), softplus at other beta / threshold."""

    def __init__(self) -> None:
        super().__init__()
        self.prelu = nn.PReLU(8)
        with torch.no_grad():
            self.prelu.weight.copy_(torch.linspace(-0.5, 0.5, 8))
        self.mish, self.glu = nn.Mish(), nn.GLU(1)
        self.softplus = nn.Softplus(beta=0.5, threshold=4.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (2, 8, 6)
        y = self.prelu(x) + F.prelu(x, torch.tensor([0.25])) + self.mish(x) + F.mish(-x)
        y = y + F.softplus(x * 10, beta=2.0, threshold=15.0) + self.softplus(x * 10)
        return torch.cat([self.glu(y).flatten(1), F.glu(y, dim=-1).flatten(1)], 1)


class Reductions(nn.Module):
    """logsumexp, var_mean / std_mean, cosine similarity, matrix and vector norms."""

    def __init__(self) -> None:
        super().__init__()
        self.cos = nn.CosineSimilarity(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (2, 8, 6)
        var, mean = torch.var_mean(x, dim=-1, keepdim=True)
        std, mean0 = torch.std_mean(x, dim=(0, 2), correction=0)
        y = torch.logsumexp(x * 5, dim=1) + x.logsumexp((1, 2), keepdim=True).squeeze(-1)
        y = y + var.squeeze(-1)[:, :1] * mean.squeeze(-1)[:, :1] + (std * mean0).sum()
        y = y + F.cosine_similarity(x, x[:1] + 1.0, dim=1) + self.cos(x, x.flip(2)).sum()
        frobenius = torch.linalg.matrix_norm(x)[:, None]
        rows = torch.linalg.norm(x, ord=1, dim=1) + torch.linalg.norm(x, dim=-2)
        return y + frobenius + rows + torch.linalg.norm(x)


class Layers(nn.Module):
    """F.instance_norm (input statistics and running ones), EmbeddingBag (module, function),
    Bilinear (module, function), one_hot, adaptive pools to dividing sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.bag_mean = nn.EmbeddingBag(20, 8, mode="mean")
        self.bag_max = nn.EmbeddingBag(20, 8, mode="max")
        self.bilinear = nn.Bilinear(8, 4, 3)
        self.register_buffer("weight", torch.randn(3, 8, 4))
        self.register_buffer("running_mean", torch.randn(8))
        self.register_buffer("running_var", torch.rand(8) + 0.5)
        self.pool = nn.AdaptiveMaxPool2d((2, None))

    def forward(self, image: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        # image: (2, 8, 4, 6), ids: (2, 5) int64
        normed = F.instance_norm(image) + F.instance_norm(
            image, self.running_mean, self.running_var, use_input_stats=False
        )
        pooled = torch.cat(
            [
                F.adaptive_avg_pool2d(normed, (2, 3)).flatten(1),
                F.adaptive_max_pool2d(normed, 2).flatten(1),
                self.pool(normed).flatten(1),
            ],
            1,
        )
        bags = self.bag_mean(ids) + self.bag_max(ids)
        bags = bags + F.embedding_bag(ids, self.bag_mean.weight, mode="sum")
        pair = self.bilinear(bags, bags[:, :4]) + F.bilinear(bags, bags[:, 4:], self.weight)
        classes = F.one_hot(ids, 20).float().sum(1)
        return torch.cat([pooled, pair, classes], 1)


def _image_ids() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(2, 8, 4, 6), torch.randint(0, 20, (2, 5))


CASES: dict[str, tuple[Callable[[], nn.Module], Callable[[], tuple[torch.Tensor, ...]]]] = {
    "rearranging": (Rearranging, lambda: (torch.randn(2, 8, 4, 4),)),
    "activations": (Activations, lambda: (torch.randn(2, 8, 6),)),
    "reductions": (Reductions, lambda: (torch.randn(2, 8, 6),)),
    "layers": (Layers, _image_ids),
}


@pytest.mark.parametrize("name", list(CASES))
def test_compiled_matches_eager(name: str, cache: str) -> None:
    make, inputs = CASES[name]
    model, args = make().eval(), inputs()
    compiled = pc.compile(model, args, tuning=False, threads=1, cache_dir=cache)
    with torch.no_grad():
        expected = model(*args)
    torch.testing.assert_close(compiled(*args), expected, rtol=1e-4, atol=1e-4)
    fresh = inputs()  # other values, same shapes
    with torch.no_grad():
        torch.testing.assert_close(compiled(*fresh), model(*fresh), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["activations", "layers"])
def test_backend_compiles_the_functions_modules_call(
    name: str, cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through ``torch.compile`` dynamo inlines the modules (``F.instance_norm``,
    ``F.prelu``, ``F.embedding_bag``, ...): the whole graph is one build, no op left out."""
    make, inputs = CASES[name]
    builds = _through_the_backend(make().eval(), inputs(), cache, monkeypatch)
    assert len(builds) == 1, f"the graph was split into {len(builds)} compiled parts"


def _through_the_backend(
    model: nn.Module, args: tuple[torch.Tensor, ...], cache: str, monkeypatch: pytest.MonkeyPatch
) -> list[pc.Graph]:
    """``model`` through ``torch.compile`` with the backend, checked against eager on
    ``args``; the graphs the backend built."""
    builds: list[pc.Graph] = []
    original = pc.api.compile_graph

    def recording(g, *rest, **kwargs):  # type: ignore[no-untyped-def]
        builds.append(g)
        return original(g, *rest, **kwargs)

    monkeypatch.setattr(pc.api, "compile_graph", recording)
    torch._dynamo.reset()
    opts = {"tuning": False, "tune_threads": False, "threads": 1, "cache_dir": cache}
    fast = torch.compile(model, backend=functools.partial(pc.backend, **opts))
    with torch.no_grad():
        torch.testing.assert_close(fast(*args), model(*args), rtol=1e-4, atol=1e-4)
    return builds


def test_softplus_switches_where_pytorch_does(cache: str) -> None:
    """Around ``beta x = threshold`` the result is the identity above, the smooth curve at
    and below (PyTorch's rule), for a threshold below and above the IR op's own 20."""
    x = torch.tensor([[-8.0, -1.0, 0.0, 1.9, 2.0, 2.1, 7.4, 7.6, 12.0, 12.6]])
    for beta, threshold in ((1.0, 2.0), (0.5, 3.75), (2.0, 25.0), (1.0, 20.0)):
        fn = functools.partial(F.softplus, beta=beta, threshold=threshold)
        model = _Apply(fn).eval()
        compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
        torch.testing.assert_close(compiled(x), fn(x), rtol=1e-6, atol=1e-6)


def test_prelu_keeps_nans_and_the_clamp_takes_a_tensor_made_in_forward(cache: str) -> None:
    x = torch.tensor([[float("nan"), -2.0, 0.0, 3.0]])
    prelu = _Apply(lambda t: F.prelu(t, torch.tensor([0.5]))).eval()
    compiled = pc.compile(prelu, (x,), threads=1, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), F.prelu(x, torch.tensor([0.5])), equal_nan=True)
    # before stop 59: "Boolean value of Tensor ... is ambiguous" from deep in the frontend
    clamp = _Apply(lambda t: torch.clamp(t, min=torch.zeros(4), max=torch.full((4,), 2.0)))
    compiled = pc.compile(clamp.eval(), (x[:, 1:].repeat(1, 2)[:, :4],), tuning=False)
    y = torch.tensor([[-1.0, 0.5, 2.5, 1.0]])
    torch.testing.assert_close(compiled(y), y.clamp(0.0, 2.0))


class Pair(nn.Module):
    def __init__(self, inner: nn.Module, **kwargs: object) -> None:
        super().__init__()
        self.inner, self.kwargs = inner, kwargs

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return self.inner(first, second, **self.kwargs)  # type: ignore[no-any-return]


LENGTH, KEYS = 6, 5


def _decoder_case(kind: str, batch_first: bool, norm_first: bool) -> nn.Module:
    causal = nn.Transformer.generate_square_subsequent_mask(LENGTH)
    padding = torch.zeros(2, KEYS, dtype=torch.bool)
    padding[1, -2:] = True
    layer = nn.TransformerDecoderLayer(
        16, 2, 32, dropout=0.0, batch_first=batch_first, norm_first=norm_first
    )
    if kind == "layer":
        return layer
    if kind == "layer_masks":
        return Pair(layer, tgt_mask=causal, memory_key_padding_mask=padding)
    if kind == "layer_causal":
        return Pair(layer, tgt_mask=causal, tgt_is_causal=True)
    if kind == "decoder":
        return Pair(nn.TransformerDecoder(layer, 2, norm=nn.LayerNorm(16)), tgt_mask=causal)
    model = nn.Transformer(
        16, 2, 1, 2, 32, dropout=0.0, batch_first=batch_first, norm_first=norm_first
    )
    return model if kind == "transformer" else Pair(model, tgt_mask=causal)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
@pytest.mark.parametrize(
    ("kind", "batch_first", "norm_first"),
    [
        ("layer", True, False),
        ("layer_masks", False, True),
        ("layer_causal", True, True),
        ("decoder", False, False),
        ("transformer", True, True),
        ("transformer_masked", False, False),
    ],
)
def test_transformer_decoders_match_eager(
    kind: str, batch_first: bool, norm_first: bool, cache: str
) -> None:
    """``nn.TransformerDecoderLayer`` / ``TransformerDecoder`` / ``nn.Transformer``, bare or
    inside a model, either layout and norm placement, causal and padding masks."""
    model = _decoder_case(kind, batch_first, norm_first).eval()
    shape = (2, LENGTH, 16) if batch_first else (LENGTH, 2, 16)
    memory_shape = (2, KEYS, 16) if batch_first else (KEYS, 2, 16)
    tgt, memory = torch.randn(shape), torch.randn(memory_shape)
    args = (memory, tgt) if kind.startswith("transformer") else (tgt, memory)
    compiled = pc.compile(model, args, tuning=False, threads=1, cache_dir=cache)
    with torch.no_grad():
        expected = model(*args)
    torch.testing.assert_close(compiled(*args), expected, rtol=1e-4, atol=1e-4)


_Apply = Apply


@pytest.mark.parametrize(
    ("fn", "make_input", "why"),
    [
        (lambda t: F.one_hot(t), lambda: torch.randint(0, 5, (4,)), "num_classes=-1"),
        (
            lambda t: F.embedding_bag(t, torch.ones(10, 4), torch.tensor([0, 2])),
            lambda: torch.randint(0, 10, (4,)),
            "offsets",
        ),
        (lambda t: F.adaptive_avg_pool2d(t, 3), lambda: torch.randn(1, 2, 4, 4), "divide"),
        (lambda t: t.tril(), lambda: torch.randint(0, 5, (3, 3)), "float only"),
        (lambda t: torch.linalg.norm(t, ord="nuc"), lambda: torch.randn(3, 3), "nuc"),
        (lambda t: F.adaptive_max_pool2d(t, 2, True)[0], lambda: torch.randn(1, 2, 4, 4),
         "with_indices"),
    ],
)  # fmt: skip
def test_what_the_added_ops_refuse_is_named(
    fn: Callable[..., torch.Tensor], make_input: Callable[[], torch.Tensor], why: str
) -> None:
    with pytest.raises(ProvenmlError, match=why):
        pc.compile(_Apply(fn).eval(), (make_input(),), tuning=False)


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_a_transformer_with_a_padded_source_on_the_nested_path_is_refused() -> None:
    padding = torch.zeros(2, KEYS, dtype=torch.bool)
    padding[1, -2:] = True
    model = nn.Transformer(16, 2, 1, 1, 32, dropout=0.0, batch_first=True)
    wrapped = Pair(model, src_key_padding_mask=padding).eval()
    args = (torch.randn(2, KEYS, 16), torch.randn(2, LENGTH, 16))
    with pytest.raises(ProvenmlError, match="nested-tensor"):
        pc.compile(wrapped, args, tuning=False)


class Encoded(nn.Module):
    """A transformer encoder between two linears, with or without a key padding mask."""

    def __init__(self, padded: bool, norm_first: bool) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            16, 2, 32, dropout=0.0, batch_first=True, norm_first=norm_first, activation="gelu"
        )
        self.embed, self.head = nn.Linear(8, 16), nn.Linear(16, 3)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        padding = torch.zeros(2, KEYS, dtype=torch.bool)
        padding[1, -2:] = True
        self.register_buffer("padding", padding if padded else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(x), src_key_padding_mask=self.padding)
        return self.head(h)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("padded", "norm_first"), [(False, True), (True, False)])
def test_backend_compiles_the_encoders_inference_fast_path(
    padded: bool, norm_first: bool, cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under ``torch.no_grad()`` an encoder layer runs PyTorch's fused fast path, and dynamo
    records ``torch._transformer_encoder_layer_fwd``: before stop 59 the backend left each
    layer to PyTorch (two builds, the linears); now the whole graph is one build."""
    model = Encoded(padded, norm_first).eval()
    builds = _through_the_backend(model, (torch.randn(2, KEYS, 8),), cache, monkeypatch)
    ops = [{n.op for n in g.nodes} for g in builds]
    assert len(builds) == 1 and "layer_norm" in ops[0], ops


def test_rounding_functions_match_eager(cache: str) -> None:
    """floor / ceil / round (ties to even) / trunc / sign at their edges, the methods and
    functions, and an int64 tensor that each leaves as it is."""
    x = torch.tensor([[-2.5, -1.5, -0.5, -0.0, 0.0, 0.5, 1.5, 2.5, 2.7, -2.7, 1e7 + 0.5, 3.0]])

    def rounded(t: torch.Tensor) -> torch.Tensor:
        parts = [torch.floor(t), t.ceil(), torch.round(t), t.round(), torch.trunc(t), t.sign()]
        ints = (t * 10).long()
        return torch.cat([*parts, (ints.floor() + torch.round(ints)).float()], 0)

    model = _Apply(rounded).eval()
    compiled = pc.compile(model, (x,), threads=1, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), rounded(x), rtol=0, atol=0)


def test_topk_sort_and_argsort_match_eager(cache: str) -> None:
    """Largest and smallest ``k`` along inner and outer dims, a descending sort's values and
    an ascending one's indices, ``argsort``, a mixture-of-experts gate (softmax, top 2), with
    ties (ordered by position, as a stable sort) and a NaN (the largest, as PyTorch sorts)."""

    def selections(t: torch.Tensor) -> torch.Tensor:
        parts = [
            torch.topk(t, 3, dim=1).values,
            t.topk(2, largest=False).indices.float(),
            torch.sort(t, dim=-1, descending=True).values[..., :2],
            t.sort(dim=0)[1].float(),
            torch.argsort(t, dim=1).float(),
            torch.softmax(t, -1).topk(2, -1).values,
        ]
        return torch.cat([p.flatten(1) for p in parts], 1)

    x = torch.randn(3, 7, 5)
    x[0, 2, :] = x[0, 4, :]  # ties along dim 1
    compiled = pc.compile(_Apply(selections).eval(), (x,), threads=2, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(x), selections(x))
    y = x.clone()
    y[1, 1, 1] = float("nan")
    expected = torch.sort(y, dim=-1, descending=True)
    sort_model = _Apply(lambda t: torch.sort(t, dim=-1, descending=True).indices.float()).eval()
    compiled_sort = pc.compile(sort_model, (y,), threads=1, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled_sort(y), expected.indices.float())


def test_cumprod_atan2_and_cdist_match_eager(cache: str) -> None:
    """``cumprod`` (float in double, int64 exact), ``atan2`` over all four quadrants and
    ``cdist`` for p 1, 2 and inf, batched and not."""

    def maths(t: torch.Tensor) -> torch.Tensor:
        parts = [
            torch.cumprod(t + 1.0, 1),
            ((t * 3).long() + 2).cumprod(-1).float(),
            torch.atan2(t, t.flip(1)),
            torch.cdist(t, t[:, :4] * 2),
            torch.cdist(t, t.roll(1, 1), p=1),
            torch.cdist(t[0], t[1], p=float("inf"))[None].expand(2, -1, -1),
        ]
        return torch.cat([p.flatten(1) for p in parts], 1)

    x = torch.randn(2, 30, 5)
    compiled = pc.compile(_Apply(maths).eval(), (x,), threads=2, tuning=False, cache_dir=cache)
    y = torch.randn(2, 30, 5)
    torch.testing.assert_close(compiled(y), maths(y), rtol=1e-4, atol=1e-4)


class Patches(nn.Module):
    """im2col and col2im: F.unfold with padding, stride and dilation, nn.Unfold, F.fold of
    overlapping patches (summed in col2im's order), nn.Fold, and kthvalue."""

    def __init__(self) -> None:
        super().__init__()
        self.unfold, self.fold = nn.Unfold(2, stride=2), nn.Fold((7, 6), 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (2, 3, 7, 6)
        spec = {"dilation": (2, 1), "padding": 1, "stride": 2}
        columns = F.unfold(x, (2, 3), **spec)
        rebuilt = F.fold(columns, (7, 6), (2, 3), **spec) + self.fold(F.unfold(x, 3, padding=1))
        ranked = torch.kthvalue(x, 2, dim=1, keepdim=True).values + x.kthvalue(3)[1][..., None]
        return torch.cat([rebuilt.flatten(1), self.unfold(x).flatten(1), ranked.flatten(1)], 1)


def test_unfold_fold_and_kthvalue_match_eager(cache: str) -> None:
    model = Patches().eval()
    x = torch.randn(2, 3, 7, 6)
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    y = torch.randn(2, 3, 7, 6)
    torch.testing.assert_close(compiled(y), model(y), rtol=1e-5, atol=1e-5)


def test_logcumsumexp_matches_eager_with_infinities(cache: str) -> None:
    """``logcumsumexp`` (stop 62) along every kind of dim, compiled at two threads and
    interpreted, against eager: lines that start with or are all ``-inf`` (masked
    log-probabilities) stay ``-inf`` where eager's are, a ``+inf`` makes the rest ``+inf``,
    and a large spread (x 50) does not overflow."""

    def scans(t: torch.Tensor) -> torch.Tensor:
        parts = [torch.logcumsumexp(t, 1), t.logcumsumexp(-1), torch.logcumsumexp(t * 50, 0)]
        return torch.cat([p.flatten(1) for p in parts], 1)

    x = torch.randn(2, 30, 5)
    model = _Apply(scans).eval()
    compiled = pc.compile(model, (x,), threads=2, tuning=False, cache_dir=cache)
    y = torch.randn(2, 30, 5)
    y[0, :4] = float("-inf")
    y[1, :, 2] = float("-inf")
    y[1, 5, 1] = float("inf")
    expected = scans(y)
    assert expected.isinf().any() and not expected.isnan().any()
    torch.testing.assert_close(compiled(y), expected, rtol=1e-6, atol=1e-6)
    interpreted = pc.interpret(pc.trace(model, (y,)), [y.numpy()])[0]
    torch.testing.assert_close(torch.from_numpy(interpreted), expected, rtol=1e-6, atol=1e-6)
