"""Dense graph layers on batched per-episode adjacency (``[..., N, N]`` tensors).

PyG works on sparse edge lists of one big graph; few-shot graph heads build a small, complete,
learned graph per episode, so everything here is dense and batched over any leading dims
(episodes, queries, or, for the label denoiser, classes x graphs). Nothing loops over episodes
or nodes.

Generic pieces that other systems could share: :func:`normalized_adjacency`,
:class:`GroupedLinear`, :class:`DenseGCNLayer`, :class:`EdgeMLP`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from provenml.errors import ProvenmlError
from provenml.nn.native import tracing

LEAKY_SLOPE = 0.2


def normalized_adjacency(adjacency: Tensor) -> Tensor:
    """Kipf & Welling's renormalised adjacency ``D^-1/2 (A + I) D^-1/2`` (their eq. 2).

    ``adjacency`` is ``[..., N, N]`` with non-negative weights (its diagonal is replaced by the
    self-loop); ``D`` holds the row sums of ``A + I``. AdarGCN's graph convolutions propagate
    with this matrix. Row sums are at least 1, so the result is finite for any non-negative input.
    """
    n = adjacency.shape[-1]
    eye = torch.eye(n, device=adjacency.device, dtype=adjacency.dtype)
    with_self = adjacency * (1 - eye) + eye
    inv_sqrt = with_self.sum(-1).clamp_min(1e-12).rsqrt()
    return inv_sqrt.unsqueeze(-1) * with_self * inv_sqrt.unsqueeze(-2)


def same_label_edges(row_labels: Tensor, col_labels: Tensor) -> Tensor:
    """Edge labels ``y_ij = 1[label_i == label_j]``: ``[..., R]``, ``[..., C]`` -> ``[..., R, C]``.

    The targets of the edge loss of EGNN (Kim et al. 2019) and AdarGCN.
    """
    return (row_labels.unsqueeze(-1) == col_labels.unsqueeze(-2)).to(torch.float32)


def smooth_edge_labels(edges: Tensor, epsilon: float, n_way: int) -> Tensor:
    """Label smoothing of binary edge targets: 1 -> 1 - eps, 0 -> eps / (N - 1)."""
    if not 0.0 <= epsilon < 1.0:
        raise ProvenmlError(f"label_smoothing must be in [0, 1), got {epsilon}")
    return edges * (1 - epsilon) + (1 - edges) * epsilon / max(1, n_way - 1)


class GroupedLinear(nn.Module):
    """``groups`` independent affine maps applied to ``[groups, ..., d_in]`` in one ``bmm``.

    With ``groups == 1`` it is an ordinary linear layer on ``[..., d_in]``. Groups let one tensor
    program train a separate small network per class (the label denoiser trains one per source
    class); each group is initialised like ``nn.Linear``.
    """

    def __init__(self, d_in: int, d_out: int, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.d_in, self.d_out, self.groups = d_in, d_out, groups
        bound = 1.0 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(groups, d_in, d_out).uniform_(-bound, bound))
        self.bias = (
            nn.Parameter(torch.empty(groups, 1, d_out).uniform_(-bound, bound)) if bias else None
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.groups == 1:
            out = x @ self.weight[0]
            return out if self.bias is None else out + self.bias[0, 0]
        if x.shape[0] != self.groups:
            raise ProvenmlError(
                f"expected {self.groups} groups in dim 0, got shape {list(x.shape)}"
            )
        flat = x.reshape(self.groups, -1, self.d_in)
        out = (
            flat @ self.weight if self.bias is None else torch.baddbmm(self.bias, flat, self.weight)
        )
        return out.reshape(*x.shape[:-1], self.d_out)


class DenseGCNLayer(nn.Module):
    """One graph convolution ``h' = LeakyReLU(Â h W)`` on a dense normalised adjacency Â.

    Kipf & Welling eq. 2 (with a leaky ReLU, as AdarGCN's branches use); ``adjacency`` is
    ``[..., N, N]`` (already normalised) and ``h`` is ``[..., N, d_in]``.
    """

    def __init__(self, d_in: int, d_out: int, groups: int = 1) -> None:
        super().__init__()
        self.linear = GroupedLinear(d_in, d_out, groups)

    def forward(self, h: Tensor, adjacency: Tensor) -> Tensor:
        return F.leaky_relu(self.linear(adjacency @ h), LEAKY_SLOPE)


class EdgeMLP(nn.Module):
    """Edge weights ``a_ij = sigmoid(MLP(|h_i - h_j|))``, the adjacency AdarGCN and EGNN learn.

    ``rows`` is ``[..., R, d]``, ``cols`` ``[..., C, d]``; returns ``[..., R, C]`` in (0, 1).
    Computing only the needed (row, column) pairs keeps the cost at ``R * C``.
    """

    def __init__(self, d_in: int, hidden: Sequence[int] = (32, 16), groups: int = 1) -> None:
        super().__init__()
        dims = [d_in, *hidden, 1]
        self.layers = nn.ModuleList(
            GroupedLinear(a, b, groups) for a, b in itertools.pairwise(dims)
        )

    def logits(self, rows: Tensor, cols: Tensor) -> Tensor:
        first = self.layers[0]
        if self._native(rows, cols):
            # the first layer over all pairs in C (provenml.fewshot.native): the same maths
            # without the [..., R, C, d] difference tensor
            from provenml.fewshot.native import abs_diff_linear

            groups, width = first.groups, rows.shape[-1]
            bias = (
                first.bias.reshape(groups, -1)
                if first.bias is not None
                else rows.new_zeros(groups, first.d_out)
            )
            h = abs_diff_linear(
                rows.reshape(groups, -1, rows.shape[-2], width),
                cols.reshape(groups, -1, cols.shape[-2], width),
                first.weight,
                bias,
            ).reshape(*rows.shape[:-1], cols.shape[-2], first.d_out)
            later = self.layers[1:]
        else:
            h = (rows.unsqueeze(-2) - cols.unsqueeze(-3)).abs()
            later = self.layers
        for layer in later:
            if layer is not first:
                h = F.leaky_relu(h, LEAKY_SLOPE)
            h = layer(h)
        return h.squeeze(-1)

    def _native(self, rows: Tensor, cols: Tensor) -> bool:
        """Whether the first layer can run in C (:func:`~provenml.fewshot.native
        .abs_diff_linear`): rows and columns of the same graphs (no broadcasting between them),
        the groups in dimension 0, float32 on a CPU where the hand kernels run
        (:func:`~provenml.fewshot.native.native_edge_layer_available`)."""
        if tracing():  # (stop 71) the checks below would branch on a tracer's proxies
            return False
        first = self.layers[0]
        if (
            rows.dim() < 2
            or rows.shape[:-2] != cols.shape[:-2]
            or rows.shape[-1] != cols.shape[-1]
            or rows.shape[-1] != first.d_in
            or (first.groups > 1 and (rows.dim() < 3 or rows.shape[0] != first.groups))
            or cols.dtype != rows.dtype
        ):
            return False
        from provenml.fewshot.native import native_edge_layer_available

        return native_edge_layer_available(rows)

    def forward(self, rows: Tensor, cols: Tensor) -> Tensor:
        return torch.sigmoid(self.logits(rows, cols))


def column_pad(scores: Tensor, n_total: int) -> Tensor:
    """``[..., N, S]`` scores on the first ``S`` columns -> ``[..., N, n_total]`` with zeros."""
    pad = n_total - scores.shape[-1]
    return F.pad(scores, (0, pad)) if pad > 0 else scores


class AdaptiveAggregationBlock(nn.Module):
    """One AdarGCN block: multi-level heads, node-wise gates, concatenation and a residual.

    Implements the multi-head multi-level aggregation module of AdarGCN (Zhang et al., WACV
    2021, Sec. 3): head ``s`` applies ``s``
    graph convolutions with the normalised adjacency (``s = 0`` is the input itself), so the
    heads see 0, 1 and 2 hops ("how far"); each head's output ``H_s`` is scaled per node by a
    gate ``g_s = sigmoid(H_s w_s) in (0, 1)`` ("how much"); the gated heads are concatenated,
    ``Z = [g_0 H_0 | g_1 H_1 | g_2 H_2]``, and the block returns
    ``LeakyReLU(Z + X W_res)`` together with ``Z`` (from which the next adjacency is computed)
    and the gates ``[..., N, heads]``.

    ``steps=(1,)`` with ``gated=False`` is the plain GCN block of the ablation: one one-hop
    head, no gate, the same residual and adjacency updates.
    """

    def __init__(
        self,
        d_in: int,
        d_head: int,
        steps: Sequence[int] = (0, 1, 2),
        gated: bool = True,
        groups: int = 1,
    ) -> None:
        super().__init__()
        if not steps or any(s < 0 for s in steps) or len(set(steps)) != len(steps):
            raise ProvenmlError(f"steps must be distinct non-negative hop counts, got {steps}")
        self.steps, self.gated = tuple(steps), gated
        self.branches = nn.ModuleList()
        head_dims = []
        for s in self.steps:
            convs = [DenseGCNLayer(d_in if i == 0 else d_head, d_head, groups) for i in range(s)]
            self.branches.append(nn.ModuleList(convs))
            head_dims.append(d_in if s == 0 else d_head)
        self.gates = (
            nn.ModuleList(GroupedLinear(d, 1, groups) for d in head_dims) if gated else None
        )
        self.out_dim = sum(head_dims)
        self.residual = GroupedLinear(d_in, self.out_dim, groups)

    def forward(self, x: Tensor, adjacency: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """``x`` ``[..., N, d_in]``, normalised ``adjacency`` ``[..., N, N]`` ->
        (block output, concatenated gated heads ``Z``, gates or None)."""
        heads, gates = [], []
        for k, convs in enumerate(self.branches):
            h = x
            for conv in convs:
                h = conv(h, adjacency)
            if self.gates is not None:
                gate = torch.sigmoid(self.gates[k](h))
                gates.append(gate)
                h = gate * h
            heads.append(h)
        z = torch.cat(heads, dim=-1)
        out = F.leaky_relu(z + self.residual(x), LEAKY_SLOPE)
        return out, z, torch.cat(gates, dim=-1) if gates else None
