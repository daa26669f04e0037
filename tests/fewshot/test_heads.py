"""Dense graph layers and the heads: normalised adjacency, gates, edge labels, batching."""

from __future__ import annotations

import pytest
import torch

from provenml.errors import ProvenmlError
from provenml.fewshot import (
    HEADS,
    AdaptiveAggregationBlock,
    AdarGCNHead,
    GroupedLinear,
    edge_loss,
    make_head,
    normalized_adjacency,
    same_label_edges,
)


def test_normalized_adjacency_is_d_half_a_plus_i_d_half() -> None:
    torch.manual_seed(0)
    a = torch.rand(3, 6, 6)
    a = (a + a.transpose(1, 2)) / 2
    out = normalized_adjacency(a)
    for b in range(3):
        with_self = a[b].clone().fill_diagonal_(1.0)
        d = torch.diag(with_self.sum(1).rsqrt())
        torch.testing.assert_close(out[b], d @ with_self @ d)
        eigenvalues = torch.linalg.eigvalsh(out[b])
        assert eigenvalues.max() <= 1 + 1e-5 and eigenvalues.min() >= -1 - 1e-5
    # a regular graph: every row sums to one
    ring = torch.roll(torch.eye(5), 1, 0) + torch.roll(torch.eye(5), -1, 0)
    torch.testing.assert_close(normalized_adjacency(ring).sum(1), torch.ones(5))
    # an empty graph keeps only the self-loops
    torch.testing.assert_close(normalized_adjacency(torch.zeros(4, 4)), torch.eye(4))


def test_gates_are_in_zero_one_and_shape_is_per_node_per_head() -> None:
    torch.manual_seed(0)
    block = AdaptiveAggregationBlock(d_in=8, d_head=4, steps=(0, 1, 2))
    x = 10 * torch.randn(2, 7, 8)
    out, z, gates = block(x, normalized_adjacency(torch.rand(2, 7, 7)))
    assert gates is not None and gates.shape == (2, 7, 3)
    assert (gates > 0).all() and (gates < 1).all()
    assert z.shape == (2, 7, 8 + 4 + 4) and out.shape == z.shape
    plain = AdaptiveAggregationBlock(8, 4, steps=(1,), gated=False)
    assert plain(x, torch.eye(7).expand(2, 7, 7))[2] is None


def test_edge_labels_come_from_support_labels() -> None:
    support = torch.tensor([[0, 0, 1, 2]])
    edges = same_label_edges(support, support)[0]
    expected = torch.tensor(
        [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float32
    )
    assert torch.equal(edges, expected)
    head = AdarGCNHead(4, initial_query_edge=0.5)
    initial = head.initial_adjacency(support, num_query=2)[0]
    assert torch.equal(initial[:4, :4], expected)
    assert (initial[4:, :4] == 0.5).all()  # query rows: unknown edges to the support
    assert (initial[:4, 4:] == 0).all() and initial[4, 5] == 0  # inductive: no query columns


def test_edge_loss_is_zero_only_for_the_smoothed_targets() -> None:
    support, query = torch.tensor([[0, 1]]), torch.tensor([[1]])
    target = same_label_edges(torch.cat([support, query], 1), support)
    perfect = edge_loss([target], support, query, 2, label_smoothing=0.0, intermediate_weight=0.5)
    wrong = edge_loss([1 - target], support, query, 2, label_smoothing=0.0, intermediate_weight=0.5)
    assert perfect < 1e-4 < wrong


def test_grouped_linear_is_one_linear_map_per_group() -> None:
    torch.manual_seed(0)
    layer = GroupedLinear(3, 2, groups=4)
    x = torch.randn(4, 5, 6, 3)
    out = layer(x)
    for g in range(4):
        torch.testing.assert_close(out[g], x[g] @ layer.weight[g] + layer.bias[g, 0])


def _episodes(batch: int = 3, n_way: int = 5, shot: int = 2, query: int = 4, dim: int = 16):
    torch.manual_seed(1)
    support_labels = torch.arange(n_way).repeat_interleave(shot).expand(batch, -1)
    support = torch.randn(batch, n_way * shot, dim)
    queries = torch.randn(batch, n_way * query, dim)
    query_labels = torch.arange(n_way).repeat_interleave(query).expand(batch, -1)
    return support, support_labels, queries, query_labels


@pytest.mark.parametrize("name", list(HEADS))
def test_every_head_gives_log_probabilities_and_a_loss(name: str) -> None:
    support, support_labels, queries, query_labels = _episodes()
    head = make_head(name, 16)
    out = head(support, support_labels, queries, 5)
    assert out.log_probs.shape == (3, 20, 5)
    torch.testing.assert_close(out.log_probs.exp().sum(-1), torch.ones(3, 20), atol=1e-4, rtol=0)
    loss = head.loss(out, support_labels, query_labels, 5)
    assert loss.ndim == 0 and torch.isfinite(loss)
    if any(p.requires_grad for p in head.parameters()):
        loss.backward()


@pytest.mark.parametrize("name", ["adargcn", "gcn", "gnn", "egnn", "matchingnet", "protonet"])
def test_batched_episodes_equal_one_at_a_time_and_queries_are_independent(name: str) -> None:
    support, support_labels, queries, _ = _episodes()
    head = make_head(name, 16).eval()
    together = head(support, support_labels, queries, 5).log_probs
    for b in range(3):  # no leak between the episodes of a meta-batch
        alone = head(support[b : b + 1], support_labels[b : b + 1], queries[b : b + 1], 5)
        torch.testing.assert_close(alone.log_probs[0], together[b], atol=1e-5, rtol=1e-4)
    # inductive: a query's prediction does not depend on the other queries
    changed = queries.clone()
    changed[:, 1:] = torch.randn_like(changed[:, 1:])
    first = head(support, support_labels, changed, 5).log_probs[:, 0]
    torch.testing.assert_close(first, together[:, 0], atol=1e-5, rtol=1e-4)


def test_unknown_head_and_bad_shapes_are_clear_errors() -> None:
    with pytest.raises(
        ProvenmlError, match="unknown few-shot head 'adargnc'; did you mean adargcn"
    ):
        make_head("adargnc", 16)
    support, support_labels, queries, _ = _episodes()
    with pytest.raises(ProvenmlError, match="support_labels must be"):
        make_head("protonet", 16)(support, support_labels[:, :3], queries, 5)
