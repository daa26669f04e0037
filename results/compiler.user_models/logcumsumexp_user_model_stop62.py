"""Stop 62 (review): ``logcumsumexp`` in a model our tests do not name, as a user would write
it: per-step log-probabilities of a small sequence scorer (Linear, log_softmax over classes),
padded steps masked to ``-inf`` with ``masked_fill`` from a run-time mask, then the running
log-sum over time (``logcumsumexp`` along dim 1) and a ``logsumexp`` over classes; compiled
with ``provenml.compiler.compile`` at two threads and through ``torch.compile(backend=...)``,
each against eager, on a second batch with another padding.

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/logcumsumexp_user_model_stop62.py
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import provenml.compiler as pc


class RunningScore(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor, padded: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(self.proj(x), dim=-1)  # (batch, time, classes)
        logp = logp.masked_fill(padded[..., None], float("-inf"))
        running = torch.logcumsumexp(logp, dim=1)
        return torch.logsumexp(running, dim=-1)


def main() -> None:
    torch.manual_seed(0)
    model = RunningScore().eval()
    x = torch.randn(3, 12, 16)
    padded = torch.zeros(3, 12, dtype=torch.bool)
    padded[1, :4] = True  # a sequence whose first steps are padding: -inf prefix
    compiled = pc.compile(model, (x, padded), threads=2)
    y = torch.randn(3, 12, 16)
    other = torch.zeros(3, 12, dtype=torch.bool)
    other[0, :7] = True
    other[2, :] = True  # a fully padded sequence: -inf throughout
    with torch.no_grad():
        expected = model(y, other)
    got = compiled(y, other)
    same_inf = torch.equal(expected.isinf(), got.isinf())
    finite = expected.isfinite()
    diff = (got - expected)[finite].abs().max()
    print(f"provenml.compile: max |diff| {diff:.2e}, infinities in the same places: {same_inf}")
    torch._dynamo.reset()
    backend = torch.compile(model, backend=pc.backend)
    with torch.no_grad():
        via_backend = backend(y, other)
    print(
        f"torch.compile(backend=pc.backend): max |diff| "
        f"{(via_backend - expected)[finite].abs().max():.2e}, infinities in the same places: "
        f"{torch.equal(expected.isinf(), via_backend.isinf())}"
    )


if __name__ == "__main__":
    main()
