"""Calls a stop-70 probe found refused, now compiled and compared with eager on the traced
input and a new one: the recurrent cells (``nn.GRUCell`` / ``nn.LSTMCell`` / ``nn.RNNCell``
in a model's own step loop, through ``torch.fx`` and through TorchDynamo) and ``nn.RNN``,
``Tensor.unfold`` (sliding windows), ``clamp_min`` / ``clamp_max``, ``logit``, ``xlogy``,
``signbit``, ``aminmax``, ``round(decimals=...)`` and ``nn.InstanceNorm*d`` with running
statistics."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from tests.compiler._user_models import Apply
from torch import nn

import provenml.compiler as pc

NAN = torch.tensor(float("nan"))
CASES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "unfold into 2x2 patches": lambda x: x.unfold(2, 2, 2).unfold(3, 2, 2).sum((-1, -2)),
    "unfold, overlapping windows of the last dim": lambda x: x.unfold(-1, 3, 1),
    "unfold the first dim": lambda x: x.unfold(0, 1, 1) * 2,
    "unfold, audio frames times a window": lambda x: x.reshape(2, -1).unfold(1, 8, 4) * 0.5,
    "unfold an int64 tensor": lambda x: (x > 0).long().unfold(3, 2, 3).sum(-1).float(),
    "clamp_min / clamp_max": lambda x: x.clamp_min(-0.5).clamp_max(0.25),
    "torch.clamp_min by a tensor": lambda x: torch.clamp_min(x, x.flip(0)),
    "logit with eps": lambda x: torch.logit(x.sigmoid(), eps=1e-3),
    "logit": lambda x: x.sigmoid().logit(),
    "xlogy, zeros and NaN": lambda x: torch.xlogy(x.relu(), torch.where(x > 1, NAN, x.abs())),
    "signbit, -0.0 too": lambda x: torch.signbit(x * 0.0).float() + x.signbit().float(),
    "aminmax along a dim": lambda x: (
        torch.aminmax(x, dim=1, keepdim=True).max - x.aminmax(dim=1)[0].unsqueeze(1)
    ),
    "aminmax of everything": lambda x: x - torch.aminmax(x).min,
    "round to 2 decimals": lambda x: torch.round(x, decimals=2),
    "round to tens": lambda x: torch.round(x * 100, decimals=-1),
}


@pytest.mark.parametrize("name", list(CASES))
def test_stop70_calls_match_eager(name: str, cache: str) -> None:
    model = Apply(CASES[name]).eval()
    example, x = torch.randn(2, 3, 4, 6), torch.randn(2, 3, 4, 6)
    compiled = pc.compile(model, (example,), threads=2, tuning=False, cache_dir=cache)
    for inputs in (example, x):
        with torch.no_grad():
            torch.testing.assert_close(
                compiled(inputs), model(inputs), rtol=1e-5, atol=1e-5, equal_nan=True
            )


class Cells(nn.Module):
    """A model stepping the cells itself: a fixed loop (``torch.fx`` traces it) or one over
    ``x.shape[1]`` (a Proxy: ``torch.fx`` fails, TorchDynamo records ``torch.gru_cell`` & co.)."""

    def __init__(self, bias: bool, dynamic: bool) -> None:
        super().__init__()
        self.gru = nn.GRUCell(8, 6, bias=bias)
        self.lstm = nn.LSTMCell(8, 6, bias=bias)
        self.relu_rnn = nn.RNNCell(8, 6, bias=bias, nonlinearity="relu")
        self.tanh_rnn = nn.RNNCell(8, 6, bias=bias)
        self.dynamic = dynamic

    def forward(self, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        h, state = h0, (h0, h0 * 2)
        steps = x.shape[1] if self.dynamic else 5
        for t in range(steps):
            h = self.gru(x[:, t], h)
            state = self.lstm(x[:, t], state)
            h = h + self.relu_rnn(x[:, t], h) + self.tanh_rnn(x[:, t])
        return h + state[0] + state[1] + self.lstm(x[:, 0])[1]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dynamic", [False, True])
def test_recurrent_cells_match_eager(bias: bool, dynamic: bool, cache: str) -> None:
    torch.manual_seed(1)
    model = Cells(bias, dynamic).eval()
    example = (torch.randn(3, 5, 8), torch.randn(3, 6))
    compiled = pc.compile(model, example, threads=1, tuning=False, cache_dir=cache)
    x = (torch.randn(3, 5, 8), torch.randn(3, 6))
    with torch.no_grad():
        torch.testing.assert_close(compiled(*x), model(*x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", [nn.InstanceNorm1d, nn.InstanceNorm2d])
@pytest.mark.parametrize("affine", [True, False])
def test_instance_norm_with_running_stats_uses_them(kind: type, affine: bool, cache: str) -> None:
    norm = kind(4, affine=affine, track_running_stats=True)
    norm.train()
    shape = (3, 4, 7) if kind is nn.InstanceNorm1d else (3, 4, 5, 6)
    for _ in range(3):  # running statistics away from 0 / 1
        norm(torch.randn(shape) * 3 + 1)
    if affine:
        with torch.no_grad():
            norm.weight.uniform_(0.5, 2.0)
            norm.bias.uniform_(-1.0, 1.0)
    model = nn.Sequential(norm).eval()
    compiled = pc.compile(model, (torch.randn(shape),), threads=1, tuning=False, cache_dir=cache)
    x = torch.randn(shape)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_elman_rnn_matches_eager(nonlinearity: str, bidirectional: bool, cache: str) -> None:
    """``nn.RNN`` (refused before stop 70), two layers, batch first or not, with and without
    an initial state."""
    torch.manual_seed(2)
    rnn = nn.RNN(6, 5, num_layers=2, nonlinearity=nonlinearity, bidirectional=bidirectional)
    directions = 2 if bidirectional else 1

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = rnn

        def forward(self, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
            out, h_n = self.rnn(x, h0)
            return out.sum(0) + h_n.sum(0).repeat(1, directions) + self.rnn(x)[0][-1]

    model = Model().eval()
    example = (torch.randn(7, 3, 6), torch.randn(2 * directions, 3, 5))
    compiled = pc.compile(model, example, threads=1, tuning=False, cache_dir=cache)
    x = (torch.randn(7, 3, 6), torch.randn(2 * directions, 3, 5))
    with torch.no_grad():
        torch.testing.assert_close(compiled(*x), model(*x), rtol=1e-5, atol=1e-5)


MASK_CASES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "repeat_interleave a mask": lambda x: x.repeat_interleave(2, 0).masked_fill(
        (x > 0).repeat_interleave(2, 0), 0.0
    ),
    "cat masks": lambda x: torch.cat([x, x], -1).masked_fill(torch.cat([x > 0, x < -1], -1), 1.0),
    "stack masks": lambda x: torch.stack([x, x]).masked_fill(torch.stack([x > 0, x < -1]), 1.0),
    "index_select a mask": lambda x: x[:, :2].masked_fill(
        (x > 0).index_select(1, torch.tensor([2, 0])), 0.0
    ),
    "gather a mask, count": lambda x: (x > 0).gather(-1, x.argsort(-1)).sum(-1).float(),
    "split a mask, or the pieces": lambda x: (lambda a, b: (a | b).float())(*(x > 0).split(3, -1)),
    "unbind a mask": lambda x: torch.stack(
        [m & (x[:, 0] > -1) for m in (x > 0).unbind(1)], 1
    ).float(),
    "masks compared": lambda x: ((x > 0) == (x > 1)).float() + ((x > 0) != 1).float(),
    "cat a mask with floats": lambda x: torch.cat([x > 0, x], -1) * 2,
}


@pytest.mark.parametrize("name", list(MASK_CASES))
def test_masks_through_moves_match_eager(name: str, cache: str) -> None:
    """Boolean masks through pure moves and mask comparisons (refused before stop 70)."""
    model = Apply(MASK_CASES[name]).eval()
    example, x = torch.randn(2, 3, 6), torch.randn(2, 3, 6)
    compiled = pc.compile(model, (example,), threads=1, tuning=False, cache_dir=cache)
    for inputs in (example, x):
        with torch.no_grad():
            torch.testing.assert_close(compiled(inputs), model(inputs), rtol=0, atol=0)


class GroupedQueryAttention(nn.Module):
    def __init__(self, causal: bool) -> None:
        super().__init__()
        self.causal = causal

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(
            q, k, v, is_causal=self.causal, enable_gqa=True
        )


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
@pytest.mark.parametrize("causal", [False, True])
def test_grouped_query_attention_matches_eager(kv_heads: int, causal: bool, cache: str) -> None:
    """SDPA's ``enable_gqa`` (refused before stop 70): 4 query heads over 1, 2 or 4 key /
    value heads."""
    model = GroupedQueryAttention(causal).eval()

    def inputs() -> tuple[torch.Tensor, ...]:
        return (
            torch.randn(2, 4, 6, 8),
            torch.randn(2, kv_heads, 6, 8),
            torch.randn(2, kv_heads, 6, 8),
        )

    compiled = pc.compile(model, inputs(), threads=1, tuning=False, cache_dir=cache)
    x = inputs()
    with torch.no_grad():
        torch.testing.assert_close(compiled(*x), model(*x), rtol=1e-5, atol=1e-5)
