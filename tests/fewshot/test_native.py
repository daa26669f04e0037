"""The C edge layer (provenml.fewshot.native) against EdgeMLP's PyTorch layers."""

from __future__ import annotations

import pytest
import torch

from provenml.errors import ProvenmlError
from provenml.fewshot import EdgeMLP, native


def _available() -> bool:
    return native.native_edge_layer_available(torch.zeros(1))


def _reference(rows, cols, weight, bias):
    """The same layer in PyTorch: |rows_i - cols_j| @ W + b for every pair."""
    diff = (rows.unsqueeze(-2) - cols.unsqueeze(-3)).abs()  # [G, M, R, C, D]
    groups = weight.shape[0]
    flat = diff.reshape(groups, -1, diff.shape[-1])
    out = torch.baddbmm(bias.unsqueeze(1), flat, weight)
    return out.reshape(*diff.shape[:-1], weight.shape[-1])


@pytest.mark.parametrize(
    "groups,batch,rows,cols,width,out",
    [(1, 3, 7, 5, 32, 16), (3, 2, 9, 4, 48, 32), (1, 1, 30, 25, 128, 16), (2, 4, 1, 1, 16, 16)],
)
def test_the_kernel_equals_pytorch_with_every_gradient(groups, batch, rows, cols, width, out):
    if not _available():
        pytest.skip("no C compiler, or the hand kernels are off on this CPU")
    gen = torch.Generator().manual_seed(0)
    r = torch.randn(groups, batch, rows, width, generator=gen)
    c = torch.randn(groups, batch, cols, width, generator=gen)
    c[..., 0, :3] = r[..., 0, None, :3].squeeze(-2)  # exact ties: |0| has gradient 0 in both
    w = torch.randn(groups, width, out, generator=gen) / width**0.5
    b = torch.randn(groups, out, generator=gen)
    grad = torch.randn(groups, batch, rows, cols, out, generator=gen)
    inputs = [t.clone().requires_grad_() for t in (r, c, w, b)]
    z = native.AbsDiffLinear.apply(*inputs)
    z.backward(grad)
    ref_inputs = [t.clone().requires_grad_() for t in (r, c, w, b)]
    z_ref = _reference(*ref_inputs)
    z_ref.backward(grad)
    assert z.shape == z_ref.shape
    torch.testing.assert_close(z, z_ref, rtol=1e-5, atol=1e-5)
    names = ["rows", "cols", "weight", "bias"]
    for name, mine, theirs in zip(names, inputs, ref_inputs, strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize(
    "groups,width,hidden",
    [(1, 64, (16,)), (4, 64, (32, 16)), (1, 64, (16, 16)), (5, 48, (8,)), (1, 40, (24,))],
)
def test_edge_mlp_gives_the_same_scores_and_gradients_with_the_kernel(
    monkeypatch, groups, width, hidden
):
    # widths off the kernel's 16-float tile (48 -> 8 as the label denoiser's, 40 -> 24) run
    # padded with zeros
    if not _available():
        pytest.skip("no C compiler, or the hand kernels are off on this CPU")
    torch.manual_seed(0)
    net = EdgeMLP(width, hidden, groups)
    lead = (groups, 3) if groups > 1 else (2, 3)
    rows = torch.randn(*lead, 12, width)
    cols = rows[..., :5, :]
    assert net._native(rows, cols)
    results = []
    for flag in ("1", "0"):
        monkeypatch.setenv("PROVENML_NATIVE", flag)
        x = rows.clone().requires_grad_()
        net.zero_grad()
        scores = net(x, x[..., :5, :])
        (scores * torch.linspace(-1, 1, scores.numel()).view_as(scores)).sum().backward()
        results.append((scores.detach(), x.grad, [p.grad.clone() for p in net.parameters()]))
    (s1, x1, p1), (s0, x0, p0) = results
    assert s1.shape == (*lead, 12, 5)
    torch.testing.assert_close(s1, s0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x1, x0, rtol=1e-4, atol=1e-5)
    for a, b in zip(p1, p0, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_what_the_kernel_does_not_cover_keeps_pytorch(monkeypatch):
    net = EdgeMLP(64, (16,))
    rows = torch.randn(2, 6, 64)
    assert not net._native(rows.double(), rows.double())  # float64
    assert not net._native(rows, rows[:1])  # rows and columns broadcast against each other
    assert not net._native(rows[..., :40], rows[..., :40])  # not the layer's width
    grouped = EdgeMLP(64, (16,), groups=3)
    assert not grouped._native(rows, rows)  # 2 in dim 0, not the 3 groups
    with pytest.raises(ProvenmlError, match="expected 3 groups"):
        grouped(rows, rows)
    monkeypatch.setenv("PROVENML_NATIVE", "0")
    assert not net._native(rows, rows)
    # every path gives scores of the same shape
    assert net(rows, rows[:, :2]).shape == (2, 6, 2)
    assert EdgeMLP(64, (16,)).double()(rows.double(), rows.double()).shape == (2, 6, 6)


def test_mismatched_shapes_are_refused_naming_them():
    if not _available():
        pytest.skip("no C compiler, or the hand kernels are off on this CPU")
    with pytest.raises(ProvenmlError, match="edge layer needs"):
        native.AbsDiffLinear.apply(
            torch.zeros(1, 2, 3, 32), torch.zeros(1, 2, 4, 16), torch.zeros(1, 32, 16),
            torch.zeros(1, 16),
        )  # fmt: skip
    with pytest.raises(ProvenmlError, match="multiples of 16"):
        native.AbsDiffLinear.apply(
            torch.zeros(1, 2, 3, 32), torch.zeros(1, 2, 4, 32), torch.zeros(1, 32, 8),
            torch.zeros(1, 8),
        )  # fmt: skip


def test_no_c_compiler_falls_back_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    import provenml.nn.native as nn_native

    def no_compiler(*_: object) -> None:
        raise ProvenmlError("cannot run the C compiler 'gcc'")

    monkeypatch.setenv("PROVENML_NATIVE", "1")
    monkeypatch.setattr(nn_native, "build_library", no_compiler)
    native._library.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="PyTorch one"):
            assert not native.native_edge_layer_available(torch.zeros(1))
        net = EdgeMLP(64, (16,))
        rows = torch.randn(2, 6, 64)
        assert net(rows, rows[:, :3]).shape == (2, 6, 3)  # on PyTorch's layers
    finally:
        native._library.cache_clear()
