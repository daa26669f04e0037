"""Stop 71: an eleventh probe, against eager on inputs other than the traced ones: **the
library's own models** through its own compiler. A provenml user's first model to compile is
likely one of ours: the MLPs and CNNs of S1, the byte-level LMs and the bigram model, the GIN /
GCN encoders of S4 and S8 on packed graphs, the ResNets and FCN of S7, the few-shot encoders
and heads of S9 (ProtoNet, MatchingNet, GNN-FSL, EGNN, GCN, AdarGCN), the eleven KGE scoring
functions and the PCNN of S11, the actor-critics of S2 / S6, S2's belief encoder and reward
decoders, S5's federated models. Each is built as its package's docs build it, in eval mode,
compiled as a user would call it (the model itself where its ``forward`` takes tensors; a
two-line wrapper where the call takes an int such as ``n_way`` or is a method such as
``score_t``), and run on a second input of the same shape.

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/library_models_stop71.py [--backend | --backend-dynamic | --onnx | --onnx-dynamo | --torch-export]
"""
# ruff: noqa: E501, E702

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from _probe import (
    Case,
    compile_backend,
    compile_backend_dynamic,
    compile_onnx_dynamo_export,
    compile_onnx_export,
    compile_torch_export,
    compile_with,
    run_probe,
)
from torch import nn

import provenml.federated as fed
import provenml.fewshot as fs
import provenml.kge as kge
import provenml.metarl as mr
import provenml.nn as pnn
import provenml.rl as rl
import provenml.selection as sel
import provenml.ssl as ssl
from provenml.distrl import TeamPolicy, TeamSpec
from provenml.explain import GCNNodeClassifier, GINGraphClassifier
from provenml.graphpretrain import FineTuneModel, new_encoder
from provenml.schedules import BigramModel

torch.manual_seed(0)
warnings.simplefilter("ignore")


class Call(nn.Module):
    """``fn(model, *inputs)`` as a module to compile: a method call or a fixed int argument,
    with a ``forward`` of fixed arity as a user would write it (``*args`` sends torch.fx
    tracing to TorchDynamo)."""

    def __init__(self, model: nn.Module, fn: Callable[..., Any]) -> None:
        super().__init__(); self.model = model; self.fn = fn; self.eval()


class Call1(Call):
    def forward(self, a: torch.Tensor) -> Any: return self.fn(self.model, a)


class Call2(Call):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> Any: return self.fn(self.model, a, b)


class Call3(Call):
    def forward(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> Any: return self.fn(self.model, a, b, c)


def g() -> torch.Generator:
    return torch.Generator().manual_seed(1)


def randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape)


def ids(high: int, *shape: int) -> torch.Tensor:
    return torch.randint(0, high, shape)


def graphs(nodes: int, edges: int, graphs: int, features: int) -> tuple[torch.Tensor, ...]:
    """A disjoint union of ``graphs`` random graphs (edges within each), nodes sorted by graph."""
    per = nodes // graphs
    batch = torch.arange(graphs).repeat_interleave(per)
    src = torch.randint(0, per, (edges,)); dst = torch.randint(0, per, (edges,))
    offset = torch.randint(0, graphs, (edges,)) * per
    edge_index = torch.stack([torch.cat([src, dst]) + offset.repeat(2), torch.cat([dst, src]) + offset.repeat(2)])
    return randn(graphs * per, features), edge_index, batch


def pair(make: Callable[[], tuple[torch.Tensor, ...]]) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    return make(), make()


def episodes(b: int = 4, n_way: int = 5, k_shot: int = 1, q: int = 3, d: int = 40) -> tuple[torch.Tensor, ...]:
    labels = torch.arange(n_way).repeat_interleave(k_shot).expand(b, -1).contiguous()
    return randn(b, n_way * k_shot, d), labels, randn(b, n_way * q, d)


def cases() -> Iterator[Case]:
    # S1 (selection) and the shared layer's models
    yield "S1 nn.mlp(40, [32], 10)", pnn.mlp(40, [32], 10).eval(), *pair(lambda: (randn(64, 40),))
    yield "S1 small_cnn([16, 32])", sel.small_cnn([16, 32], size=16).eval(), *pair(lambda: (randn(8, 1, 16, 16),))
    yield "S1 ByteNGramMLP", pnn.ByteNGramMLP().eval(), *pair(lambda: (ids(256, 32, 16),))
    yield "S1 ByteTransformer", pnn.ByteTransformer().eval(), *pair(lambda: (ids(256, 4, 64),))
    # S3's river-valley toy
    yield "S3 BigramModel(64)", BigramModel(64).eval(), *pair(lambda: (ids(64, 128),))
    # S4 / S8 graph models (PyG layers on edge_index; the batch vector for the pooled ones)
    yield "shared GCNEncoder(8, 16)", pnn.GCNEncoder(8, 16).eval(), *pair(lambda: graphs(60, 100, 3, 8)[:2])
    yield "shared GINEncoder(1, 32) sum pool", pnn.GINEncoder(1, 32).eval(), *pair(lambda: graphs(60, 100, 3, 1))
    yield "shared GINEncoder mean pool, bn, proj", pnn.GINEncoder(4, 16, batch_norm=True, pool="mean", projection_dim=8).eval(), *pair(lambda: graphs(60, 100, 3, 4))
    yield "S4 new_encoder() (constant input)", new_encoder(32).eval(), *pair(lambda: (torch.ones(60, 1), *graphs(60, 100, 3, 1)[1:]))
    yield "S8 GCNNodeClassifier(10, 16, 4)", GCNNodeClassifier(10, 16, 4).eval(), *pair(lambda: graphs(60, 100, 1, 10)[:2])
    yield "S8 GINGraphClassifier(10, 16, 3)", GINGraphClassifier(10, 16, 3).eval(), *pair(lambda: graphs(60, 100, 3, 10))
    finetune = FineTuneModel(new_encoder(16), 2).eval()
    yield "S4 FineTuneModel head on encoder output", Call3(finetune, lambda m, x, e, b: m.head(m.encoder(x, e, b))), *pair(lambda: (torch.ones(60, 1), *graphs(60, 100, 3, 1)[1:]))
    # S7 (ssl) backbones and the segmentation head
    yield "S7 SmallResNet() group norm", ssl.SmallResNet().eval(), *pair(lambda: (randn(2, 3, 32, 32),))
    yield "S7 SmallResNet(norm='batch', depth 2)", ssl.SmallResNet(norm="batch", depth=2, stem_pool=True).eval(), *pair(lambda: (randn(2, 3, 32, 32),))
    yield "S7 SmallResNet(norm='split_batch')", ssl.SmallResNet(norm="split_batch").eval(), *pair(lambda: (randn(2, 3, 32, 32),))
    yield "S7 FCN(SmallResNet(), 128, 5)", ssl.FCN(ssl.SmallResNet(), 128, 5).eval(), *pair(lambda: (randn(2, 3, 32, 32),))
    densecl = ssl.DenseCL(ssl.SmallResNet(widths=(8, 16, 32)), image_size=16, queue_size=64).eval()
    yield "S7 extract_backbone(DenseCL(...))", ssl.extract_backbone(densecl).eval(), *pair(lambda: (randn(2, 3, 16, 16),))
    yield "S7 DenseCL's loss in eval mode", Call2(densecl, lambda m, q, k: (m(q, k).loss_global, m(q, k).loss_dense)), *pair(lambda: (randn(2, 3, 16, 16), randn(2, 3, 16, 16)))
    # S9 (fewshot) encoders and heads; a head takes n_way as an int, fixed by a wrapper
    yield "S9 Conv1dEncoder()", fs.Conv1dEncoder().eval(), *pair(lambda: (randn(20, 40),))
    yield "S9 MLPEncoder(40)", fs.MLPEncoder(40).eval(), *pair(lambda: (randn(20, 40),))
    for name in ("protonet", "matchingnet", "gnn", "egnn", "gcn", "adargcn"):
        head = fs.make_head(name, 40).eval()
        yield f"S9 head {name}, 5-way 1-shot", Call3(head, lambda m, s, y, q: m(s, y, q, 5).log_probs), *pair(episodes)
    classifier = fs.FewShotClassifier(fs.Conv1dEncoder(out_dim=32), fs.AdarGCNHead(32)).eval()
    yield "S9 FewShotClassifier(Conv1d, AdarGCN) 5-way 2-shot", Call3(classifier, lambda m, s, y, q: m(s, y, q, 5).log_probs), *pair(lambda: episodes(k_shot=2))
    adargcn = fs.AdarGCN(16).eval()
    yield "S9 AdarGCN(16) on an adjacency", Call2(adargcn, lambda m, x, a: m(x, a).nodes), *pair(lambda: (randn(2, 10, 16), torch.rand(2, 10, 10)))
    # S11 (kge): every scoring function, a batch of triples and the ranking call (all tails)
    for name in sorted(kge.MODELS):
        model = kge.get_model(name, 50, 7, 16).eval()
        yield f"S11 {name} score_hrt", Call3(model, lambda m, h, r, t: m.score_hrt(h, r, t)), *pair(lambda: (ids(50, 32), ids(7, 32), ids(50, 32)))
        yield f"S11 {name} score_t (all tails)", Call2(model, lambda m, h, r: m.score_t(h, r)), *pair(lambda: (ids(50, 8), ids(7, 8)))
    yield "S11 PCNN(100, 5, 20)", kge.PCNN(100, 5, 20).eval(), *pair(lambda: (ids(100, 8, 20), ids(20, 8), ids(20, 8)))
    # S2 / S6 policies
    policy = rl.ActorCritic(6, 5, discrete=True).eval()
    yield "S2/S6 ActorCritic discrete logits", Call1(policy, lambda m, x: m.distribution(x).logits), *pair(lambda: (randn(16, 6),))
    yield "S2/S6 ActorCritic value", Call1(policy, lambda m, x: m.value(x)), *pair(lambda: (randn(16, 6),))
    gaussian = rl.ActorCritic(6, 2, discrete=False).eval()
    yield "S2 ActorCritic continuous mean / std", Call1(gaussian, lambda m, x: (m.distribution(x).mean, m.distribution(x).stddev)), *pair(lambda: (randn(16, 6),))
    team = TeamPolicy(TeamSpec(("a", "b", "c"), 10, 4)).eval()
    yield "S6 TeamPolicy logits_and_value", Call1(team, lambda m, o: m.logits_and_value(o)), *pair(lambda: (randn(8, 3, 10),))
    central = TeamPolicy(TeamSpec(("a", "b", "c"), 10, 4), central_critic=True).eval()
    yield "S6 TeamPolicy central critic", Call1(central, lambda m, o: m.logits_and_value(o)), *pair(lambda: (randn(8, 3, 10),))
    # S2 belief model
    belief = mr.BeliefEncoder(6, 2).eval()
    yield "S2 BeliefEncoder (GRU over 12 steps) mu", Call1(belief, lambda m, z: (m(z).mu, m(z).logvar)), *pair(lambda: (randn(4, 12, 2 + 1 + 6),))
    session = mr.BeliefEncoder(6, 2, session_aware=True).eval()
    yield "S2 BeliefEncoder session-aware", Call1(session, lambda m, z: (m(z).mu, m(z).termination_logit)), *pair(lambda: (randn(4, 12, 2 + 1 + 6),))
    yield "S2 RewardDecoder", mr.RewardDecoder(6, 5).eval(), *pair(lambda: (randn(16, 5), randn(16, 6)))
    yield "S2 CellRewardDecoder(5)", mr.CellRewardDecoder(5, 5).eval(), *pair(lambda: (randn(16, 5), torch.rand(16, 2)))
    # S5 (federated) models
    yield "S5 FLModel(10)", fed.FLModel(10).eval(), *pair(lambda: (randn(4, 3, 32, 32),))
    yield "S5 ConvEncoder()", fed.ConvEncoder().eval(), *pair(lambda: (randn(4, 3, 32, 32),))
    yield "S5 VisualEncoder(32)", fed.VisualEncoder(32).eval(), *pair(lambda: (randn(4, 3, 32, 32),))


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    compile_case = {
        "--backend": compile_backend,
        "--backend-dynamic": compile_backend_dynamic,  # stop 73
        "--onnx": compile_onnx_export,
        "--onnx-dynamo": compile_onnx_dynamo_export,  # stop 72
        "--torch-export": compile_torch_export,  # stop 74
    }.get(mode, compile_with())
    run_probe(cases(), compile_case, width=52, relative=True, header=mode)
