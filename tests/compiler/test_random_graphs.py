"""Hypothesis-generated random graphs of supported ops, compiled and compared with eager."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import provenml.compiler as pc
from provenml.compiler.passes import check_memory_plan

WIDTH = 8
UNARY = {
    "relu": F.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    # stop 54's activations (defined on every real; log and rsqrt are not)
    "abs": torch.abs,
    "relu6": F.relu6,
    "hardsigmoid": F.hardsigmoid,
    "hardswish": F.hardswish,
    "softplus": F.softplus,
}
BINARY = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
}
STEP = st.one_of(
    st.tuples(st.just("unary"), st.sampled_from(sorted(UNARY)), st.integers(0, 9)),
    st.tuples(
        st.just("binary"), st.sampled_from(sorted(BINARY)), st.integers(0, 9), st.integers(0, 9)
    ),
    st.tuples(st.just("linear"), st.integers(0, 9)),
    st.tuples(st.just("softmax"), st.integers(0, 9)),
    st.tuples(st.just("layer_norm"), st.integers(0, 9)),
    st.tuples(st.just("row_bias"), st.integers(0, 9)),
    st.tuples(st.just("transpose2"), st.integers(0, 9)),
    st.tuples(st.just("mean_keep"), st.integers(0, 9)),
    st.tuples(st.just("cat_slice"), st.integers(0, 9), st.integers(0, 9)),
)


class Program(nn.Module):
    """Runs a list of steps; each step reads earlier values (index modulo their count)."""

    def __init__(self, steps: list[tuple]) -> None:  # type: ignore[type-arg]
        super().__init__()
        self.steps = steps
        self.linears = nn.ModuleList(nn.Linear(WIDTH, WIDTH) for _ in steps)
        self.norms = nn.ModuleList(nn.LayerNorm(WIDTH) for _ in steps)
        self.bias = nn.Parameter(torch.randn(WIDTH))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vals = [x]
        for k, step in enumerate(self.steps):
            kind = step[0]
            a = vals[step[-1] % len(vals)] if kind != "binary" else vals[step[2] % len(vals)]
            if kind == "unary":
                y = UNARY[step[1]](a)
            elif kind == "binary":
                y = BINARY[step[1]](a, vals[step[3] % len(vals)])
            elif kind == "linear":
                y = self.linears[k](a)
            elif kind == "softmax":
                y = torch.softmax(a, dim=-1)
            elif kind == "layer_norm":
                y = self.norms[k](a)
            elif kind == "row_bias":
                y = a * self.bias
            elif kind == "transpose2":
                y = a.transpose(0, 1).contiguous().transpose(0, 1) * 0.5
            elif kind == "mean_keep":
                y = a - a.mean(-1, keepdim=True)
            else:
                b = vals[step[1] % len(vals)]
                y = torch.cat([a, b], dim=1)[:, WIDTH // 2 : WIDTH // 2 + WIDTH]
            vals.append(y)
        return vals[-1] + vals[len(vals) // 2]


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(STEP, min_size=1, max_size=7), fusion=st.booleans(), planning=st.booleans())
def test_random_graph_matches_eager(
    steps: list[tuple], fusion: bool, planning: bool, cache: str
) -> None:  # type: ignore[type-arg]
    torch.manual_seed(0)
    model = Program(steps).eval()
    x = torch.randn(5, WIDTH)
    with torch.no_grad():
        ref = model(x).numpy()
    compiled = pc.compile(
        model, (x,), tuning=False, fusion=fusion, memory_planning=planning, cache_dir=cache
    )
    np.testing.assert_allclose(compiled(x).numpy(), ref, rtol=1e-4, atol=1e-4)
    check_memory_plan(compiled.graph.graph)
