"""The vector-register micro-kernel (``codegen.microkernel``) under every tile shape the tuner
tries: full and edge tiles of dense (with a fused epilogue), batched matmul (transposed B) and
NHWC convolution, against eager PyTorch at rtol 1e-4; the 512-bit (AVX-512) tiles likewise, and
bit for bit against the 256-bit path and across thread counts."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import provenml.compiler as pc
from provenml.compiler.build import native_vector_floats
from provenml.compiler.codegen import DEFAULT_SCHEDULE, microkernel
from provenml.compiler.models import build_model
from provenml.compiler.tune import candidates
from provenml.errors import ProvenmlError


class DenseGelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(37, 50)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.lin(x)) + x[..., :1]


class AttentionScores(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return torch.relu(q @ k.transpose(-2, -1) * 0.5)


def conv_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(8, 24, 3, stride=2, padding=1), nn.ReLU()).eval()


MODELS = {
    "dense": (lambda: DenseGelu().eval(), lambda: [torch.randn(2, 13, 37)]),
    "bmm": (
        lambda: AttentionScores().eval(),
        lambda: [torch.randn(3, 13, 21), torch.randn(3, 19, 21)],
    ),
    "conv": (conv_model, lambda: [torch.randn(1, 8, 9, 11)]),
}


@pytest.mark.parametrize("schedule", [(6, 16, 4), (4, 32, 1), (1, 8, 4)])
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_microkernel_tiles_match_eager(
    model_name: str, schedule: tuple[int, int, int], cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mr, nr, ku = schedule
    for key, val in (("mr", mr), ("nr", nr), ("ku", ku)):
        monkeypatch.setitem(DEFAULT_SCHEDULE, key, val)
    torch.manual_seed(0)
    factory, inputs = MODELS[model_name]
    model, xs = factory(), inputs()
    compiled = pc.compile(model, xs, tuning=False, cache_dir=cache)
    assert "pm_ukr_" in compiled.source  # the helper, not the fallback loop nest, ran
    with torch.no_grad():
        ref = model(*xs)
    torch.testing.assert_close(compiled(*xs), ref, rtol=1e-4, atol=1e-4)


def test_microkernel_source_has_named_vector_accumulators() -> None:
    name, code = microkernel(6, 16, 4)
    assert name == "pm_ukr_6x16_u4"
    assert "c5_1 += av * b1;" in code and "acc[" not in code.split("for (long k")[1].split("}")[0]


needs_avx512 = pytest.mark.skipif(
    native_vector_floats() != 16,
    reason="the 512-bit micro-kernel path needs an AVX-512 build machine (gcc -march=native "
    "does not define __AVX512F__ here, or PROVENML_VECTOR_FLOATS=8 turns it off)",
)


def _compile_with(
    model_name: str, schedule: tuple[int, int, int, int], cache: str, mp: pytest.MonkeyPatch
) -> tuple[pc.Compiled, nn.Module, list[torch.Tensor]]:
    for key, val in zip(("mr", "nr", "ku", "vec"), schedule, strict=True):
        mp.setitem(DEFAULT_SCHEDULE, key, val)
    torch.manual_seed(0)
    factory, inputs = MODELS[model_name]
    model, xs = factory(), inputs()
    return pc.compile(model, xs, tuning=False, cache_dir=cache), model, xs


# 512-bit tiles: full and edge tiles (dense: 26 rows x 50 cols, bmm: 13 x 19, conv: 6 pixels x
# 24 channels are no multiples of them); 4x16 has a single zmm per row
WIDE = [(12, 32, 4, 16), (8, 48, 1, 16), (6, 64, 4, 16), (4, 16, 4, 16)]


@needs_avx512
@pytest.mark.parametrize("schedule", WIDE)
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_wide_microkernel_tiles_match_eager(
    model_name: str,
    schedule: tuple[int, int, int, int],
    cache: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled, model, xs = _compile_with(model_name, schedule, cache, monkeypatch)
    _, nr, ku, _ = schedule
    assert "typedef float pm_v16" in compiled.source
    assert f"x{nr}_u{ku}_v16(" in compiled.source  # the 512-bit helper ran
    with torch.no_grad():
        ref = model(*xs)
    torch.testing.assert_close(compiled(*xs), ref, rtol=1e-4, atol=1e-4)


class DenseResidualRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(37, 50)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.lin(x)) + x[..., :1]


@needs_avx512
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_wide_microkernel_same_bits_as_256_bit(
    model_name: str, cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same tile, 8- or 16-float vectors: every element sums over k in the same order, so the
    results agree bit for bit where the epilogue has no transcendental function (GELU's erff
    runs as libmvec's 16-lane variant on the 512-bit path: a few ulps apart)."""
    if model_name == "dense":
        monkeypatch.setitem(
            MODELS, "dense", (lambda: DenseResidualRelu().eval(), MODELS["dense"][1])
        )
    narrow, _, xs = _compile_with(model_name, (6, 32, 4, 8), cache, monkeypatch)
    wide, _, _ = _compile_with(model_name, (6, 32, 4, 16), cache, monkeypatch)
    assert "_v16(" not in narrow.source and "_v16(" in wide.source
    assert torch.equal(narrow(*xs), wide(*xs))


@needs_avx512
def test_wide_microkernel_gelu_epilogue_within_ulps(
    cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    narrow, _, xs = _compile_with("dense", (6, 32, 4, 8), cache, monkeypatch)
    wide, _, _ = _compile_with("dense", (6, 32, 4, 16), cache, monkeypatch)
    assert "simdlen(16)" in wide.source  # the epilogue in 16 lanes (libmvec's 16-lane erff)
    torch.testing.assert_close(wide(*xs), narrow(*xs), rtol=1e-6, atol=1e-6)


@needs_avx512
def test_wide_microkernel_one_vs_two_threads_bitwise(
    cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, val in (("mr", 12), ("nr", 32), ("ku", 4), ("vec", 16)):
        monkeypatch.setitem(DEFAULT_SCHEDULE, key, val)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(96, 200), nn.GELU(), nn.Linear(200, 70)).eval()
    x = torch.randn(37, 96)
    outs = []
    for threads in (1, 2):
        compiled = pc.compile(model, [x], tuning=False, threads=threads, cache_dir=cache)
        assert "_v16(" in compiled.source
        outs.append(compiled(x))
    assert torch.equal(outs[0], outs[1])


def test_wide_microkernel_source() -> None:
    name, code = microkernel(12, 32, 4, vlen=16)
    assert name == "pm_ukr_12x32_u4_v16"
    assert "vector_size(64)" in code and "c11_1 += av * b1;" in code and "c11_2" not in code
    assert microkernel(6, 16, 4) == microkernel(6, 16, 4, vlen=8)  # the 256-bit path unchanged
    with pytest.raises(ProvenmlError):
        microkernel(4, 24, 4, vlen=16)


@pytest.mark.parametrize("rows, cols", [(64, 1024), (1, 10), (2, 256), (13, 19), (64, 64)])
def test_tuning_candidates_by_vector_width(rows: int, cols: int) -> None:
    narrow = candidates(rows, cols, vector_floats=8)
    wide = candidates(rows, cols, vector_floats=16)
    assert all(c["vec"] == 8 for c in narrow) and wide[: len(narrow)] == narrow
    extra = wide[len(narrow) :]
    assert len({json.dumps(c, sort_keys=True) for c in wide}) == len(wide)
    for c in extra:
        nv = c["nr"] // 16
        assert c["vec"] == 16 and c["nr"] % 16 == 0 and c["mr"] <= max(1, rows)
        assert c["mr"] * nv + nv + 1 <= 32  # accumulators + B vectors + broadcast in 32 zmm
        assert c["nr"] <= max(16, -(-cols // 16) * 16)
    assert extra


@needs_avx512
@pytest.mark.parametrize("schedule", [(12, 32, 4, 16), (8, 48, 1, 16)])
def test_wide_microkernel_transformer_block_matches_eager(
    schedule: tuple[int, int, int, int], cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """transformer:1 (fused attention, GELU and residual epilogues) on 512-bit tiles: 64 rows
    are no multiple of 12, and 256/1024/64 columns no multiple of 48."""
    for key, val in zip(("mr", "nr", "ku", "vec"), schedule, strict=True):
        monkeypatch.setitem(DEFAULT_SCHEDULE, key, val)
    model, x = build_model("transformer")
    compiled = pc.compile(model, (x,), tuning=False, cache_dir=cache)
    assert "_v16(" in compiled.source
    assert any(n.attrs.get("kind") == "attention" for n in compiled.graph.graph.nodes)
    with torch.no_grad():
        ref = model(x)
    torch.testing.assert_close(compiled(x), ref, rtol=1e-4, atol=1e-4)


@needs_avx512
def test_wide_schedule_unpacked_dense_edge_tile_uses_256_bit_helper(
    cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without layout (weights not packed) the edge tile is as wide as the columns left: 40 =
    32 + 8, so the 8-column edge tile takes the 8-float helper inside a ``vec=16`` schedule."""
    for key, val in (("mr", 12), ("nr", 32), ("ku", 4), ("vec", 16)):
        monkeypatch.setitem(DEFAULT_SCHEDULE, key, val)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(37, 40), nn.GELU()).eval()
    x = torch.randn(26, 37)
    compiled = pc.compile(model, [x], tuning=False, layout=False, cache_dir=cache)
    assert "pm_ukr_12x32_u4_v16(" in compiled.source and "pm_ukr_12x8_u4(" in compiled.source
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)
