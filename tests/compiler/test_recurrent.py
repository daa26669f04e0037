"""nn.GRU and nn.LSTM through the compiler (stop 55): unrolled over the sequence, against eager
(stacked, bidirectional, sequence-first, given initial states, a bare module) and the inputs
they refuse."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import provenml.compiler as pc
from provenml.errors import ProvenmlError

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


def _inputs(model: Tagger) -> tuple[torch.Tensor, ...]:
    rnn = model.rnn
    x = torch.randn(BATCH, STEPS, FEATURES)
    if not rnn.batch_first:
        x = x.transpose(0, 1).contiguous()
    layers = rnn.num_layers * (2 if rnn.bidirectional else 1)
    return x, torch.randn(layers, BATCH, HIDDEN), torch.randn(layers, BATCH, HIDDEN)


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_recurrent_modules_match_eager(
    kind: str, config: str, with_state: bool, cache: str
) -> None:
    torch.manual_seed(0)
    model = Tagger(kind, with_state, **CONFIGS[config]).eval()
    inputs = _inputs(model)
    with torch.no_grad():
        ref = model(*inputs)
    compiled = pc.compile(model, inputs, threads=1, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(*inputs), ref, rtol=1e-5, atol=1e-5)
    assert "lstm" not in compiled.dump("frontend").lower()


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_a_bare_recurrent_module_returns_its_outputs_flattened(kind: str, cache: str) -> None:
    torch.manual_seed(0)
    rnn = getattr(nn, kind)(FEATURES, HIDDEN, num_layers=2, batch_first=True).eval()
    x = torch.randn(BATCH, STEPS, FEATURES)
    with torch.no_grad():
        out, state = rnn(x)
    want = (out, *state) if kind == "LSTM" else (out, state)
    got = pc.compile(rnn, (x,), threads=2, tuning=False, cache_dir=cache)(x)
    assert len(got) == len(want)  # (output, h_n[, c_n])
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_what_recurrent_modules_refuse_is_named() -> None:
    lstm = nn.LSTM(FEATURES, HIDDEN, proj_size=4, batch_first=True).eval()
    with pytest.raises(ProvenmlError, match="proj_size"):
        pc.compile(lstm, (torch.randn(BATCH, STEPS, FEATURES),), tuning=False)
    gru = nn.GRU(FEATURES, HIDDEN).eval()
    with pytest.raises(ProvenmlError, match="unbatched"):
        pc.compile(gru, (torch.randn(STEPS, FEATURES),), tuning=False)
