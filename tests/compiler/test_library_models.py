"""Stop 71: the library's own models through its compiler, and what made them compile: an
integer read from the inputs' values kept and checked after each call (``ValueGuard``: PyG's
pooling reads the number of graphs so), PyG's ``scatter`` size told to TorchDynamo, the hand
kernels of S2 / S9 switched off under a tracer, ``nn.GRU`` / ``nn.LSTM`` / ``nn.RNN`` through
TorchDynamo, ``broadcast_tensors`` (``torch.distributions.Normal``), and circular convolution /
correlation written with real FFTs (HolE). Each compiled model is compared with eager on an
input it was not compiled on."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from tests.compiler._user_models import Apply
from torch import nn

import provenml.compiler as pc
from provenml.nn.native import tracing

Check = Callable[..., None]


def _compile(model: nn.Module, example: tuple[torch.Tensor, ...], cache: str) -> pc.Compiled:
    return pc.compile(model.eval(), example, threads=1, tuning=False, cache_dir=cache)


def _same(compiled: pc.Compiled, model: nn.Module, *inputs: torch.Tensor) -> None:
    with torch.no_grad():
        want = torch.utils._pytree.tree_leaves(model(*inputs))
    got = torch.utils._pytree.tree_leaves(compiled(*inputs))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def _graphs(per_graph: list[int], features: int, seed: int) -> tuple[torch.Tensor, ...]:
    """A batch of random graphs with ``per_graph[i]`` nodes each (edges within each graph)."""
    g = torch.Generator().manual_seed(seed)
    batch = torch.repeat_interleave(torch.arange(len(per_graph)), torch.tensor(per_graph))
    starts = torch.tensor([0, *per_graph]).cumsum(0)[:-1]
    graph_of_edge = torch.randint(0, len(per_graph), (80,), generator=g)
    size = torch.tensor(per_graph)[graph_of_edge]
    src = starts[graph_of_edge] + (torch.rand(80, generator=g) * size).long()
    dst = starts[graph_of_edge] + (torch.rand(80, generator=g) * size).long()
    edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
    return torch.randn(int(batch.numel()), features, generator=g), edge_index, batch


def test_gin_pooling_keeps_the_number_of_graphs_and_checks_it(cache: str) -> None:
    """``global_add_pool(x, batch)`` reads ``int(batch.max()) + 1``: kept as the example's
    3 graphs (stop 69-70 refused the model), any batch of 3 graphs gives eager's result, a
    batch of 4 is a ``ValueGuardFailed`` naming both numbers, not an index out of range."""
    from provenml.nn import GINEncoder

    model = GINEncoder(4, 16, batch_norm=True, pool="mean", projection_dim=8).eval()
    compiled = _compile(model, _graphs([20, 20, 20], 4, seed=0), cache)
    _same(compiled, model, *_graphs([10, 35, 15], 4, seed=1))  # other sizes, same count
    with pytest.raises(pc.ValueGuardFailed, match="was 2 on the example inputs and is 3"):
        compiled(*_graphs([15, 15, 15, 15], 4, seed=2))


def test_batch_norm_after_pooling_through_dynamo(cache: str) -> None:
    """S4's fine-tuning head (BatchNorm1d on the pooled embeddings): TorchDynamo stopped at the
    batch norm, asking whether the pooled tensor was empty, until PyG's scatter size was told
    to be positive (``frontend.pyg.sized_scatter``)."""
    from provenml.graphpretrain import FineTuneModel, new_encoder

    finetune = FineTuneModel(new_encoder(16), 2).eval()

    class ThreeInputs(nn.Module):
        def forward(self, x: torch.Tensor, e: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return finetune.head(finetune.encoder(x, e, b))

    three = ThreeInputs().eval()
    x, e, b = _graphs([20, 20, 20], 1, seed=0)
    compiled = _compile(three, (torch.ones_like(x), e, b), cache)
    x, e, b = _graphs([25, 5, 30], 1, seed=3)
    _same(compiled, three, torch.ones_like(x), e, b)


def test_models_with_hand_kernels_trace_their_pytorch_path(
    cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S9's AdarGCN head picks its C edge kernel at run time (forced on here): under a tracer
    ``tracing()`` sends it down the PyTorch path (the same maths), so it compiles."""
    from provenml.fewshot import make_head

    monkeypatch.setenv("PROVENML_NATIVE", "1")
    head = make_head("adargcn", 12).eval()

    class FiveWay(nn.Module):
        def forward(self, s: torch.Tensor, y: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
            return head(s, y, q, 5).log_probs

    def episode(seed: int) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(seed)
        labels = torch.arange(5).repeat(2, 1)
        return torch.randn(2, 5, 12, generator=g), labels, torch.randn(2, 10, 12, generator=g)

    assert not tracing()
    compiled = _compile(FiveWay(), episode(0), cache)
    _same(compiled, FiveWay().eval(), *episode(1))


class Checked(nn.Module):
    """A recurrent module behind a shape check (control flow torch.fx cannot trace: the model
    goes through TorchDynamo, which records ``torch.gru`` / ``torch.lstm`` / ``torch.rnn_*``)."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if x.shape[-1] != self.rnn.input_size:
            raise ValueError("wrong width")
        state = (h, torch.tanh(h)) if isinstance(self.rnn, nn.LSTM) else h
        out, final = self.rnn(x, state)
        return (out, *final) if isinstance(final, tuple) else (out, final)


@pytest.mark.parametrize(
    ("rnn", "x_shape"),
    [
        (nn.GRU(5, 8, num_layers=2, batch_first=True), (3, 4, 5)),
        (nn.LSTM(5, 8, bidirectional=True), (4, 3, 5)),
        (nn.RNN(5, 8, nonlinearity="relu", bias=False, batch_first=True), (3, 4, 5)),
    ],
    ids=["GRU 2 layers batch_first", "LSTM bidirectional", "RNN relu no bias"],
)
def test_recurrent_modules_through_dynamo(
    rnn: nn.Module, x_shape: tuple[int, ...], cache: str
) -> None:
    torch.manual_seed(0)
    model = Checked(rnn.eval()).eval()
    batch = x_shape[0] if rnn.batch_first else x_shape[1]
    layers = rnn.num_layers * (2 if rnn.bidirectional else 1)
    compiled = _compile(model, (torch.randn(*x_shape), torch.randn(layers, batch, 8)), cache)
    _same(compiled, model, torch.randn(*x_shape), torch.randn(layers, batch, 8))


def test_lstm_projections_through_dynamo_are_refused(cache: str) -> None:
    lstm = nn.LSTM(5, 8, proj_size=4).eval()

    class Projected(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[-1] != 5:
                raise ValueError("wrong width")
            return lstm(x)[0]

    with pytest.raises(pc.UnsupportedOp, match="proj_size"):
        _compile(Projected(), (torch.randn(4, 3, 5),), cache)


def test_broadcast_tensors_and_a_gaussian_policy(cache: str) -> None:
    from provenml.rl import ActorCritic

    policy = ActorCritic(6, 2, discrete=False).eval()

    def normal(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        dist = policy.distribution(x)
        a, b = torch.broadcast_tensors(x[:, :1], x[:1, :])
        return dist.mean, dist.stddev, a - b

    model = Apply(normal).eval()
    compiled = _compile(model, (torch.randn(16, 6),), cache)
    _same(compiled, model, torch.randn(16, 6))


FFT = torch.fft
SPECTRAL: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "correlation": lambda a, b: FFT.irfft(torch.conj(FFT.rfft(a)) * FFT.rfft(b), n=a.shape[-1]),
    "convolution": lambda a, b: FFT.irfft(FFT.rfft(a) * FFT.rfft(b), n=a.shape[-1]),
    "correlation, b conjugated": lambda a, b: FFT.irfft(
        FFT.rfft(a) * FFT.rfft(b).conj(), n=a.shape[-1]
    ),
    "both conjugated": lambda a, b: FFT.irfft(FFT.rfft(a).conj() * FFT.rfft(b).conj(), n=7),
    "irfft(rfft(a))": lambda a, b: FFT.irfft(FFT.rfft(a).conj(), n=7) + b,
}


class Pair(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.fn(a, b)


@pytest.mark.parametrize("name", SPECTRAL)
def test_circular_convolution_and_correlation(name: str, cache: str) -> None:
    """Odd length 7, broadcast leading dims: the direct sums against PyTorch's FFTs."""
    torch.manual_seed(0)
    model = Pair(SPECTRAL[name]).eval()
    compiled = _compile(model, (torch.randn(3, 1, 7), torch.randn(5, 7)), cache)
    _same(compiled, model, torch.randn(3, 1, 7), torch.randn(5, 7))


@pytest.mark.parametrize(
    ("fn", "why"),
    [
        (lambda a, b: FFT.rfft(a).abs()[..., :1] + b, "a complex tensor"),
        (lambda a, b: FFT.irfft(FFT.rfft(a) * 2.0, n=8) + b, "complex operand"),
        (lambda a, b: FFT.irfft(FFT.rfft(a) * FFT.rfft(b), n=6), "n=6"),
        (lambda a, b: FFT.irfft(FFT.rfft(a, norm="ortho") * FFT.rfft(b), n=8), "norm='ortho'"),
        (lambda a, b: FFT.irfft(FFT.rfft(a, dim=0) * FFT.rfft(b, dim=0), n=8, dim=0), "dim=0"),
    ],
    ids=["abs of a spectrum", "spectrum times a number", "n cropping", "ortho", "dim 0"],
)
def test_other_uses_of_complex_tensors_are_refused(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], why: str, cache: str
) -> None:
    with pytest.raises(pc.UnsupportedOp, match=why):
        _compile(Pair(fn), (torch.randn(8, 8), torch.randn(8, 8)), cache)


@pytest.mark.parametrize("name", ["hole", "transr"])
def test_kge_scoring_compiles(name: str, cache: str) -> None:
    """HolE's FFT correlation and TransR's ``unique``-based fast path (general path under a
    tracer): every triple's score and, for HolE, every tail's."""
    from provenml.kge import get_model

    kge = get_model(name, 50, 7, 16).eval()

    class Triples(nn.Module):
        def forward(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return kge.score_hrt(h, r, t)

    def ids(seed: int) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(seed)
        return tuple(torch.randint(0, n, (32,), generator=g) for n in (50, 7, 50))

    _same(_compile(Triples(), ids(0), cache), Triples(), *ids(1))
    if name == "hole":

        class Tails(nn.Module):
            def forward(self, h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
                return kge.score_t(h, r)

        _same(_compile(Tails(), ids(0)[:2], cache), Tails(), *ids(1)[:2])


def test_a_guarded_number_read_from_an_input_itself(cache: str) -> None:
    """The guarded tensor is a graph input (``count.item()``): returned to the check as an
    output like any other; a count that differs is named."""

    class Repeat(nn.Module):
        def forward(self, x: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
            return x.repeat(1, int(count.item()))

    model = Repeat().eval()
    compiled = _compile(model, (torch.randn(2, 3), torch.tensor([2])), cache)
    _same(compiled, model, torch.randn(2, 3), torch.tensor([2]))
    with pytest.raises(pc.ValueGuardFailed, match="was 2 on the example inputs and is 3"):
        compiled(torch.randn(2, 3), torch.tensor([3]))


def test_tracing_is_seen_by_torch_fx_and_dynamo() -> None:
    seen: list[bool] = []

    class Spy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(tracing())
            return x + 1

    def while_(run: Callable[[], object]) -> list[bool]:
        seen.clear()
        run()
        return list(seen)

    assert while_(lambda: torch.fx.symbolic_trace(Spy())) == [True]
    assert all(while_(lambda: torch._dynamo.export(Spy())(torch.ones(2))))
    # torch.onnx.export's tracer (then check_trace runs the module eagerly once more)
    assert while_(lambda: torch.jit.trace(Spy(), torch.ones(2)))[0]
    assert while_(lambda: Spy()(torch.ones(2))) == [False]
