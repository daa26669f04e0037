"""nn.GRU and nn.LSTM through the compiler (stop 55): unrolled over the sequence, against eager
(stacked, bidirectional, sequence-first, given initial states, a bare module) and the inputs
they refuse."""

from __future__ import annotations

import pytest
import torch
from tests.compiler._user_models import (
    BATCH,
    CONFIGS,
    FEATURES,
    HIDDEN,
    STEPS,
    Tagger,
    recurrent_inputs,
)
from torch import nn

import provenml.compiler as pc
from provenml.errors import ProvenmlError


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_recurrent_modules_match_eager(
    kind: str, config: str, with_state: bool, cache: str
) -> None:
    torch.manual_seed(0)
    model = Tagger(kind, with_state, **CONFIGS[config]).eval()
    inputs = recurrent_inputs(model)
    with torch.no_grad():
        ref = model(*inputs)
    compiled = pc.compile(model, inputs, threads=1, tuning=False, cache_dir=cache)
    torch.testing.assert_close(compiled(*inputs), ref, rtol=1e-5, atol=1e-5)
    assert "lstm" not in compiled.dump("frontend").lower()


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_a_bare_recurrent_module_returns_its_outputs_as_the_module(kind: str, cache: str) -> None:
    """``(output, h_n)`` / ``(output, (h_n, c_n))``, nested as eager's (since stop 69; before,
    an LSTM's came back flattened to three)."""
    torch.manual_seed(0)
    rnn = getattr(nn, kind)(FEATURES, HIDDEN, num_layers=2, batch_first=True).eval()
    x = torch.randn(BATCH, STEPS, FEATURES)
    with torch.no_grad():
        want = rnn(x)
    got = pc.compile(rnn, (x,), threads=2, tuning=False, cache_dir=cache)(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_what_recurrent_modules_refuse_is_named() -> None:
    lstm = nn.LSTM(FEATURES, HIDDEN, proj_size=4, batch_first=True).eval()
    with pytest.raises(ProvenmlError, match="proj_size"):
        pc.compile(lstm, (torch.randn(BATCH, STEPS, FEATURES),), tuning=False)
    gru = nn.GRU(FEATURES, HIDDEN).eval()
    with pytest.raises(ProvenmlError, match="unbatched"):
        pc.compile(gru, (torch.randn(STEPS, FEATURES),), tuning=False)
