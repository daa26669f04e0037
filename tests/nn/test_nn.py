"""The shared networks: MLP, GCN / GIN encoders (against hand-computed layers) and pooling."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from provenml.errors import ProvenmlError
from provenml.nn import GCNEncoder, GINEncoder, mean_pool, mlp, pool, sum_pool

# two graphs: a path 0-1-2 and an edge 3-4 (both directions stored)
EDGES = torch.tensor([[0, 1, 1, 2, 3, 4], [1, 0, 2, 1, 4, 3]])
BATCH = torch.tensor([0, 0, 0, 1, 1])
ADJ = torch.zeros(5, 5)
ADJ[EDGES[1], EDGES[0]] = 1.0


def test_mlp_layers_and_options() -> None:
    net = mlp(4, [8, 6], 3)
    kinds = [type(m) for m in net]
    assert kinds == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert [m.out_features for m in net if isinstance(m, nn.Linear)] == [8, 6, 3]
    net = mlp(4, [8], 3, activation=nn.Tanh, dropout=0.5)
    assert [type(m) for m in net] == [nn.Linear, nn.Tanh, nn.Dropout, nn.Linear]
    assert [type(m) for m in mlp(4, [], 2)] == [nn.Linear]


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((4, [0], 3), {}), ((0, [8], 3), {}), ((4, [8], 0), {}), ((4, [8], 3), {"dropout": 1.0})],
)
def test_mlp_rejects_bad_shapes(args: tuple, kwargs: dict) -> None:
    with pytest.raises(ProvenmlError):
        mlp(*args, **kwargs)


def test_pools_against_hand_sums() -> None:
    x = torch.arange(10.0).view(5, 2)
    assert torch.equal(sum_pool(x, BATCH), torch.tensor([[6.0, 9.0], [14.0, 16.0]]))
    assert torch.equal(mean_pool(x, BATCH), torch.tensor([[2.0, 3.0], [7.0, 8.0]]))
    assert torch.equal(pool(x, None, "sum"), x.sum(0, keepdim=True))
    with pytest.raises(ProvenmlError, match="unknown pool"):
        pool(x, BATCH, "max")  # type: ignore[arg-type]


def test_gin_layer_is_eq_4_1() -> None:
    # h' = MLP((1 + eps) h + sum of neighbours), eps = 0, then ReLU
    torch.manual_seed(0)
    encoder = GINEncoder(3, 4, num_layers=1)
    x = torch.randn(5, 3)
    inner = encoder.convs[0].nn
    expected = torch.relu(inner(x + ADJ @ x))
    assert torch.allclose(encoder.node_embeddings(x, EDGES), expected, atol=1e-6)


def test_gin_graph_readout_is_eq_4_2() -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 3)
    for how in ("sum", "mean"):
        encoder = GINEncoder(3, 4, num_layers=2, pool=how)
        layers = encoder.layer_embeddings(x, EDGES)
        expected = torch.cat([pool(h, BATCH, how) for h in layers], dim=-1)
        assert encoder.out_dim == 8
        assert torch.allclose(encoder(x, EDGES, BATCH), expected)
        # batch=None: all nodes are one graph
        one = torch.cat([pool(h, None, how) for h in layers], dim=-1)
        assert torch.allclose(encoder(x, EDGES), one)


def test_gin_options_projection_norm_dropout() -> None:
    torch.manual_seed(0)
    encoder = GINEncoder(3, 4, 2, batch_norm=True, dropout=0.5, projection_dim=5, train_eps=True)
    x = torch.randn(5, 3)
    z = encoder(x, EDGES, BATCH)
    assert encoder.project(z).shape == (2, 5)
    assert sum(isinstance(m, nn.BatchNorm1d) for m in encoder.modules()) == 2
    assert any(name.endswith("eps") for name, _ in encoder.named_parameters())
    encoder.eval()  # dropout off: deterministic
    assert torch.equal(encoder(x, EDGES, BATCH), encoder(x, EDGES, BATCH))
    with pytest.raises(ProvenmlError, match="projection"):
        GINEncoder(3, 4).project(z)
    with pytest.raises(ProvenmlError):
        GINEncoder(3, 4, pool="max")  # type: ignore[arg-type]
    with pytest.raises(ProvenmlError):
        GINEncoder(3, 0)


def test_gin_sees_degree_on_constant_inputs() -> None:
    # the reason graph pre-training uses GIN: node 1 (degree 2) differs from node 0 (degree 1)
    torch.manual_seed(0)
    out = GINEncoder(1, 8, 1).node_embeddings(torch.ones(5, 1), EDGES)
    assert not torch.allclose(out[0], out[1])


def test_gcn_layer_is_kipf_welling_eq_2() -> None:
    # H' = ReLU(D^-1/2 (A + I) D^-1/2 X W + b), no batch norm
    torch.manual_seed(0)
    encoder = GCNEncoder(3, 4, num_layers=1, batch_norm=False)
    x = torch.randn(5, 3)
    a_hat = ADJ + torch.eye(5)
    d = a_hat.sum(1).rsqrt()
    conv = encoder.convs[0]
    expected = torch.relu(d[:, None] * a_hat * d[None, :] @ conv.lin(x) + conv.bias)
    assert torch.allclose(encoder(x, EDGES), expected, atol=1e-6)


def test_gcn_concatenates_layers() -> None:
    torch.manual_seed(0)
    encoder = GCNEncoder(3, 4, num_layers=3).eval()
    x = torch.randn(5, 3)
    layers = encoder.layer_embeddings(x, EDGES)
    assert encoder.out_dim == 12 and len(layers) == 3
    assert torch.equal(encoder(x, EDGES), torch.cat(layers, dim=-1))


@pytest.mark.parametrize(
    ("setting", "capability", "expected"),
    [
        (None, "AVX512", True),
        (None, "AVX2", True),
        ("auto", "DEFAULT", False),
        (None, "ZVECTOR", False),
        ("0", "AVX2", False),
        ("0", "AVX512", False),
        ("1", "AVX2", True),
        ("on", "AVX2", True),
    ],
)
def test_hand_kernels_run_by_default_only_where_they_are_the_faster_path(
    setting: str | None, capability: str, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unset, the kernels follow PyTorch's CPU capability: the x86 vector widths their tiles are
    written for (AVX-512, and AVX2 since stop 49), nothing else; PROVENML_NATIVE forces either
    way."""
    from provenml.metarl.native import native_recurrence_available
    from provenml.nn.native import hand_kernels_enabled
    from provenml.rl import ActorCritic, native_ppo_available

    if setting is None:
        monkeypatch.delenv("PROVENML_NATIVE", raising=False)
    else:
        monkeypatch.setenv("PROVENML_NATIVE", setting)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert hand_kernels_enabled() is expected
    like = torch.zeros(1)
    assert native_ppo_available(ActorCritic(6, 3, True, 64), like) is expected
    assert native_recurrence_available(like, 64) is expected


_MM_WRAPPERS = r"""
void pm_test_mm(int M, int N, int K, const float* A, const float* B, float* C, int acc_in) {
  mm(M, N, K, A, K, B, N, C, N, acc_in);
}
void pm_test_mm_at(int M, int N, int K, const float* A, const float* B, float* C, int acc_in) {
  mm_at(M, N, K, A, M, B, N, C, N, acc_in);
}
"""


@pytest.mark.parametrize("width", ["native", "avx2"])
def test_hand_kernel_products_at_each_vector_width(width: str, tmp_path: Path) -> None:
    """The shared C products (``MATMUL_C``) against torch at both vector widths: this machine's
    and, forced with ``-mno-avx512f``, AVX2's 8-float vectors in 6 x 2 tiles (stop 49), so an
    AVX-512 machine also checks the row blocks (6, then 4, then 2, then single rows) that AVX2
    runs. Each element sums its terms in the same order whatever the block its row falls in,
    so the product equals, bit for bit, the same rows computed one at a time."""
    import ctypes
    import platform

    from provenml.nn.native import FLAGS, MATMUL_C, compile_library, data_pointer

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the AVX2 width is an x86 build")
    flags = FLAGS if width == "native" else (*FLAGS, "-mno-avx512f")
    try:
        path, _ = compile_library(MATMUL_C + _MM_WRAPPERS, tmp_path, flags=flags)
    except ProvenmlError as err:
        pytest.skip(f"no C compiler: {err}")
    lib = ctypes.CDLL(str(path))
    for fn in (lib.pm_test_mm, lib.pm_test_mm_at):
        fn.argtypes = [ctypes.c_int] * 3 + [ctypes.c_void_p] * 3 + [ctypes.c_int]
    generator = torch.Generator().manual_seed(0)
    for rows, cols, inner in [
        (1, 16, 3),
        (5, 48, 7),
        (8, 64, 64),
        (13, 192, 9),
        (6, 80, 33),
        (10, 32, 5),
        (3, 32, 5),
        (14, 48, 17),
    ]:
        a = torch.randn(rows, inner, generator=generator)
        b = torch.randn(inner, cols, generator=generator)
        start = torch.randn(rows, cols, generator=generator)
        for acc_in in (0, 1):
            out = start.clone()
            lib.pm_test_mm(rows, cols, inner, *map(data_pointer, (a, b, out)), acc_in)
            expected = a @ b + (start if acc_in else 0)
            torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)
            for r in range(rows):  # row r alone: a block of one row
                row = start[r : r + 1].clone()
                lib.pm_test_mm(1, cols, inner, *map(data_pointer, (a[r : r + 1], b, row)), acc_in)
                assert torch.equal(row, out[r : r + 1])
            # C (rows x cols) (+)= A^T @ B with A stored inner x rows
            a_t = a.T.contiguous()
            out = start.clone()
            lib.pm_test_mm_at(rows, cols, inner, *map(data_pointer, (a_t, b, out)), acc_in)
            torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)
