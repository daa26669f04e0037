"""Label denoising of web samples: AdarGCN's LDN and the prototype-distance filter.

Both filters see the same evidence: frozen encoder features of the clean samples of each class
(positives), of the web samples labelled with other classes (negatives), and of the class's own
web samples (to be scored). Both return a score in [0, 1] per web sample; a sample is kept when
its score exceeds 0.5.

::

    from provenml.fewshot import LDN, filter_quality

    ldn = LDN(seed=0)
    scores = ldn.scores(clean_features, clean_labels, web_features, web_labels)
    keep = scores > 0.5
    filter_quality(scores, web_is_relevant)  # precision, recall, AUROC (when the truth is known)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from provenml.errors import ProvenmlError
from provenml.fewshot.adargcn import AdarGCN
from provenml.fewshot.episodes import class_index_table, random_draws
from provenml.fewshot.graph import GroupedLinear


def _check_inputs(
    clean_features: Tensor, clean_labels: Tensor, web_features: Tensor, web_labels: Tensor
) -> Tensor:
    """The classes that have web samples; every one of them needs a clean sample."""
    if clean_features.dim() != 2 or web_features.dim() != 2:
        raise ProvenmlError("clean_features and web_features must be [samples, dim]")
    if clean_features.shape[1] != web_features.shape[1]:
        raise ProvenmlError("clean_features and web_features must have the same feature dim")
    if clean_labels.shape != clean_features.shape[:1] or web_labels.shape != web_features.shape[:1]:
        raise ProvenmlError("each feature row needs one label (clean_labels, web_labels)")
    classes = torch.unique(web_labels.cpu())
    missing = classes[~torch.isin(classes, clean_labels.cpu())]
    if missing.numel():
        raise ProvenmlError(f"web classes {missing.tolist()[:5]} have no clean samples")
    if classes.numel() < 2:
        raise ProvenmlError("denoising needs web samples of at least two classes (negatives)")
    return classes


class _ClassGraphNet(nn.Module):
    """One small graph network per class, all run as one grouped tensor program."""

    def __init__(
        self,
        classes: int,
        d_in: int,
        d_hidden: int,
        d_head: int,
        blocks: int,
        network: Literal["adargcn", "gcn"],
    ) -> None:
        super().__init__()
        self.project = GroupedLinear(d_in, d_hidden, classes)
        steps, gated, width = (
            ((0, 1, 2), True, d_head) if network == "adargcn" else ((1,), False, 2 * d_head)
        )
        self.graph = AdarGCN(d_hidden, width, blocks, steps, gated, (d_hidden // 2,), classes)
        self.classify = GroupedLinear(self.graph.out_dim, 1, classes)

    def forward(self, x: Tensor, positives: int, negatives: int) -> Tensor:
        """``x`` ``[C, graphs, nodes, d]`` (positives, negatives, then unlabelled nodes) ->
        relevance logits ``[C, graphs, nodes]``."""
        h = F.layer_norm(self.project(x), (self.project.d_out,))
        mask = ldn_edge_mask(x.shape[-2], positives, negatives, x.device).to(x.dtype)
        return self.classify(self.graph(h, mask, edge_mask=mask).nodes).squeeze(-1)


def ldn_edge_mask(nodes: int, positives: int, negatives: int, device: torch.device) -> Tensor:
    """The denoiser's graph: every pair linked except positives with negatives ``[N, N]``."""
    mask = torch.ones(nodes, nodes, device=device)
    p, q = positives, positives + negatives
    mask[:p, p:q] = 0
    mask[p:q, :p] = 0
    return mask


@dataclass
class LDN:
    """The label-denoising network of AdarGCN (Zhang et al. 2021), batched over
    classes.

    For each class ``c`` a separate graph network (an :class:`~provenml.fewshot.adargcn.AdarGCN`
    stack with a sigmoid node classifier; ``network="gcn"`` for the plain-GCN variant) is trained
    on graphs of ``positives`` clean samples of ``c`` (target 1), ``negatives`` web samples of
    other classes (target 0) and ``unlabelled`` web samples of ``c`` (no loss). Positives are
    never linked to negatives; every other pair is, with weights relearned after each block.
    Loss: ``-mean log p(pos) - mean log(1 - p(neg))``. Scoring: in each of
    ``rounds`` rounds the class's web samples are split into graphs with freshly drawn positives
    and negatives; a sample's score is its mean predicted probability over the rounds.
    All classes and graphs form one tensor program (grouped weights, no loop over classes).
    """

    network: Literal["adargcn", "gcn"] = "adargcn"
    d_hidden: int = 16
    d_head: int = 8
    blocks: int = 2
    positives: int = 5
    negatives: int = 10
    unlabelled: int = 15
    graphs_per_class: int = 2
    steps: int = 50
    rounds: int = 5
    lr: float = 1e-3
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.network not in ("adargcn", "gcn"):
            raise ProvenmlError(f"network must be 'adargcn' or 'gcn', got {self.network!r}")
        for name in ("positives", "negatives", "unlabelled", "graphs_per_class", "rounds"):
            if getattr(self, name) < 1:
                raise ProvenmlError(f"{name} must be >= 1, got {getattr(self, name)}")

    def scores(
        self, clean_features: Tensor, clean_labels: Tensor, web_features: Tensor, web_labels: Tensor
    ) -> Tensor:
        """Mean relevance probability of every web sample for its label, ``[num_web]``.

        Seeded by ``seed`` alone (the caller's global random state is left untouched)."""
        classes = _check_inputs(clean_features, clean_labels, web_features, web_labels)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return self._scores(classes, clean_features, clean_labels, web_features, web_labels)

    def _scores(
        self,
        classes: Tensor,
        clean_features: Tensor,
        clean_labels: Tensor,
        web_features: Tensor,
        web_labels: Tensor,
    ) -> Tensor:
        device = torch.device(self.device)
        g = torch.Generator().manual_seed(self.seed)
        c = classes.numel()
        clean_table, clean_counts = class_index_table(clean_labels, classes)
        web_table, web_counts = class_index_table(web_labels, classes)
        web_sorted = web_table[web_table >= 0]  # web samples grouped by class, in class order
        rows = torch.arange(c)
        clean_x, web_x = clean_features.to(device), web_features.to(device)
        net = _ClassGraphNet(
            c, clean_features.shape[1], self.d_hidden, self.d_head, self.blocks, self.network
        ).to(device)
        optimizer = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        p, q, u = self.positives, self.negatives, self.unlabelled
        shape = (c, self.graphs_per_class)
        net.train()
        for _ in range(self.steps):
            nodes = self._graphs(
                rows,
                shape,
                clean_table,
                clean_counts,
                web_table,
                web_counts,
                web_sorted,
                g,
                clean_x,
                web_x,
                unlabelled=None,
            )
            logits = net(nodes, p, q)
            loss = F.binary_cross_entropy_with_logits(
                logits[..., :p], torch.ones_like(logits[..., :p])
            ) + F.binary_cross_entropy_with_logits(
                logits[..., p : p + q], torch.zeros_like(logits[..., p : p + q])
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        # scoring rounds: every web sample of the class lands in exactly one graph per round
        chunks = math.ceil(int(web_counts.max()) / u)
        total = torch.zeros(len(web_labels))
        net.eval()
        with torch.no_grad():
            for _ in range(self.rounds):
                keys = torch.rand(c, web_table.shape[1], generator=g).masked_fill(
                    web_table < 0, 2.0
                )
                order = torch.gather(web_table, 1, keys.argsort(1))  # valid first, shuffled
                slots = chunks * u
                valid = torch.arange(slots).unsqueeze(0) < web_counts.unsqueeze(1)
                fill = random_draws(web_table, web_counts, rows, slots, g)
                padded = torch.where(
                    valid,
                    F.pad(order, (0, max(0, slots - order.shape[1])), value=-1)[:, :slots],
                    fill,
                )
                members = padded.view(c, chunks, u)
                nodes = self._graphs(
                    rows,
                    (c, chunks),
                    clean_table,
                    clean_counts,
                    web_table,
                    web_counts,
                    web_sorted,
                    g,
                    clean_x,
                    web_x,
                    unlabelled=members,
                )
                probs = torch.sigmoid(net(nodes, p, q)[..., p + q :]).cpu().reshape(c, slots)
                total.index_add_(0, padded[valid], probs[valid])
        return total / self.rounds

    def _graphs(
        self,
        rows: Tensor,
        shape: tuple[int, int],
        clean_table: Tensor,
        clean_counts: Tensor,
        web_table: Tensor,
        web_counts: Tensor,
        web_sorted: Tensor,
        g: torch.Generator,
        clean_x: Tensor,
        web_x: Tensor,
        unlabelled: Tensor | None,
    ) -> Tensor:
        """Node features ``[C, graphs, P + N + U, d]``: positives, negatives, unlabelled."""
        c, graphs = shape
        grid = rows.view(c, 1).expand(c, graphs)
        positives = random_draws(clean_table, clean_counts, grid, self.positives, g)
        # negatives: uniform over the web samples of the other classes. In the class-sorted
        # list, draw among the W - n_c others and step over class c's own block.
        starts = torch.cumsum(web_counts, 0) - web_counts
        others = (len(web_sorted) - web_counts[grid]).unsqueeze(-1)
        r = (torch.rand(c, graphs, self.negatives, generator=g) * others).long()
        r = r + web_counts[grid].unsqueeze(-1) * (r >= starts[grid].unsqueeze(-1))
        draws = web_sorted[r]
        if unlabelled is None:
            unlabelled = random_draws(web_table, web_counts, grid, self.unlabelled, g)
        device = clean_x.device
        return torch.cat(
            [clean_x[positives.to(device)], web_x[draws.to(device)], web_x[unlabelled.to(device)]],
            dim=2,
        )


@dataclass
class PrototypeFilter:
    """Baseline filter: distance to the class's clean prototype, calibrated per class.

    For class ``c`` with clean mean ``mu_c``, a one-dimensional logistic regression
    ``p = sigmoid(a_c - b_c * ||f - mu_c||)`` is fitted (balanced) on the clean samples'
    leave-one-out distances (positives) and the other classes' web samples (negatives), the
    same evidence the LDN gets. Ranking by ``p`` within a class is ranking by distance.
    """

    steps: int = 300
    lr: float = 0.05

    def scores(
        self, clean_features: Tensor, clean_labels: Tensor, web_features: Tensor, web_labels: Tensor
    ) -> Tensor:
        classes = _check_inputs(clean_features, clean_labels, web_features, web_labels)
        clean_features, web_features = clean_features.cpu().double(), web_features.cpu().double()
        clean_pos = torch.searchsorted(classes, clean_labels.cpu())
        keep = (clean_pos < len(classes)) & (
            classes[clean_pos.clamp_max(len(classes) - 1)] == clean_labels.cpu()
        )
        clean_features, clean_pos = clean_features[keep], clean_pos[keep]
        c = classes.numel()
        sums = torch.zeros(c, clean_features.shape[1], dtype=torch.float64).index_add_(
            0, clean_pos, clean_features
        )
        counts = torch.bincount(clean_pos, minlength=c).double()
        prototypes = sums / counts.unsqueeze(1)
        loo = (sums[clean_pos] - clean_features) / (counts[clean_pos] - 1).clamp_min(1).unsqueeze(1)
        positive_distance = (
            clean_features
            - torch.where((counts[clean_pos] > 1).unsqueeze(1), loo, prototypes[clean_pos])
        ).norm(dim=1)
        web_pos = torch.searchsorted(classes, web_labels.cpu())
        all_distances = torch.cdist(web_features, prototypes)  # [W, C]
        scale = all_distances.mean().clamp_min(1e-9)
        a = torch.zeros(c, dtype=torch.float64, requires_grad=True)
        b = torch.ones(c, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.Adam([a, b], lr=self.lr)
        negative_mask = web_pos.unsqueeze(1) != torch.arange(c).unsqueeze(0)  # [W, C]
        neg_counts = negative_mask.sum(0).clamp_min(1)
        pos_counts = counts.clamp_min(1)
        for _ in range(self.steps):
            pos_logit = a[clean_pos] - b[clean_pos] * positive_distance / scale
            neg_logit = a.unsqueeze(0) - b.unsqueeze(0) * all_distances / scale
            pos_loss = F.softplus(-pos_logit)
            neg_loss = F.softplus(neg_logit) * negative_mask
            loss = (
                torch.zeros(c, dtype=torch.float64).index_add(0, clean_pos, pos_loss) / pos_counts
                + neg_loss.sum(0) / neg_counts
            ).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            own = all_distances.gather(1, web_pos.unsqueeze(1)).squeeze(1)
            return torch.sigmoid(a[web_pos] - b[web_pos] * own / scale).float()


@dataclass(frozen=True)
class FilterQuality:
    """How well a filter separated relevant from irrelevant web samples."""

    kept_fraction: float
    precision: float
    recall: float
    auroc: float

    def as_dict(self) -> dict[str, float]:
        return {
            "kept_fraction": self.kept_fraction,
            "precision": self.precision,
            "recall": self.recall,
            "auroc": self.auroc,
        }


def auroc(scores: Tensor, positive: Tensor) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied ranks averaged); NaN if one class."""
    from scipy.stats import rankdata

    positive = positive.bool().cpu().numpy()
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(scores.detach().cpu().double().numpy())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def filter_quality(scores: Tensor, relevant: Tensor, threshold: float = 0.5) -> FilterQuality:
    """Precision and recall of the kept samples (``scores > threshold``) and the AUROC."""
    kept = scores > threshold
    relevant = relevant.bool()
    true_kept = float((kept & relevant).sum())
    return FilterQuality(
        kept_fraction=float(kept.float().mean()),
        precision=true_kept / max(1.0, float(kept.sum())) if kept.any() else math.nan,
        recall=true_kept / max(1.0, float(relevant.sum())),
        auroc=auroc(scores, relevant),
    )


FILTERS = ("ldn", "gcn_ldn", "prototype")


def make_filter(
    name: str, seed: int = 0, device: str = "cpu", **kwargs: object
) -> LDN | PrototypeFilter:
    """``"ldn"`` (AdarGCN LDN), ``"gcn_ldn"`` (plain-GCN LDN) or ``"prototype"``."""
    if name == "ldn":
        return LDN(network="adargcn", seed=seed, device=device, **kwargs)  # type: ignore[arg-type]
    if name == "gcn_ldn":
        return LDN(network="gcn", seed=seed, device=device, **kwargs)  # type: ignore[arg-type]
    if name == "prototype":
        return PrototypeFilter(**kwargs)  # type: ignore[arg-type]
    raise ProvenmlError(f"unknown filter {name!r}; choose one of {', '.join(FILTERS)}")
