"""The models that get explained: a GCN node classifier and a GIN graph classifier.

Both concatenate every layer's node embeddings before the classifier and batch-normalise each
layer, as GNNExplainer's ``GcnEncoderNode`` does; without batch norm a GCN on constant features
does not get past ~50-80% on Tree-Cycles / Tree-Grid.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GCNConv, GINConv, global_add_pool

from provenml.explain.datasets import GroundTruthDataset


class GCNNodeClassifier(nn.Module):
    """``num_layers`` GCN layers (batch norm, ReLU), all layers concatenated, a linear head."""

    def __init__(self, in_dim: int, hidden: int, num_classes: int, num_layers: int = 3) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * num_layers
        self.convs = nn.ModuleList(GCNConv(a, b) for a, b in itertools.pairwise(dims))
        self.norms = nn.ModuleList(nn.BatchNorm1d(b) for b in dims[1:])
        self.head = nn.Linear(hidden * num_layers, num_classes)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        layers = []
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = F.relu(norm(conv(x, edge_index)))
            layers.append(x)
        return self.head(torch.cat(layers, dim=-1))


class GINGraphClassifier(nn.Module):
    """``num_layers`` GIN layers, sum-pooled per layer and concatenated, then an MLP head."""

    def __init__(self, in_dim: int, hidden: int, num_classes: int, num_layers: int = 3) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * num_layers
        self.convs = nn.ModuleList(
            GINConv(nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, b)))
            for a, b in itertools.pairwise(dims)
        )
        self.head = nn.Sequential(
            nn.Linear(hidden * num_layers, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor | None = None) -> Tensor:
        if batch is None:
            batch = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
        pooled = []
        for conv in self.convs:
            x = F.relu(conv(x, edge_index))
            pooled.append(global_add_pool(x, batch))
        return self.head(torch.cat(pooled, dim=-1))


@dataclass
class TrainedModel:
    model: nn.Module
    train_acc: float
    test_acc: float
    epochs: int


def train_node_classifier(
    dataset: GroundTruthDataset,
    hidden: int = 20,
    num_layers: int = 3,
    epochs: int = 1000,
    lr: float = 0.01,
    weight_decay: float = 0.0,
    patience: int = 50,
) -> TrainedModel:
    """Full-batch training on the train nodes; every 10 epochs the eval-mode (running batch
    norm statistics) train accuracy is checked, the best weights kept, and training stops once
    it has been 1.0 for ``patience`` epochs."""
    data: Data = dataset.data
    model = GCNNodeClassifier(dataset.num_features, hidden, dataset.num_classes, num_layers)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    best, best_state, perfect_since = -1.0, None, None
    epoch = 0
    for epoch in range(1, epochs + 1):
        model.train()
        opt.zero_grad()
        out = model(data.x, data.edge_index)
        F.cross_entropy(out[data.train_mask], data.y[data.train_mask]).backward()
        opt.step()
        if epoch % 10 and epoch != epochs:
            continue
        acc = _node_accuracy(model, data, data.train_mask)
        if acc >= best:
            best, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
        perfect_since = (perfect_since or epoch) if acc >= 1.0 else None
        if perfect_since is not None and epoch - perfect_since >= patience:
            break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    return TrainedModel(
        model,
        _node_accuracy(model, data, data.train_mask),
        _node_accuracy(model, data, data.test_mask),
        epoch,
    )


@torch.no_grad()
def _node_accuracy(model: nn.Module, data: Data, mask: Tensor) -> float:
    model.eval()
    pred = model(data.x, data.edge_index).argmax(-1)
    return float((pred == data.y)[mask].float().mean())


def train_graph_classifier(
    dataset: GroundTruthDataset,
    hidden: int = 32,
    num_layers: int = 3,
    epochs: int = 200,
    lr: float = 0.003,
    num_batches: int = 8,
) -> TrainedModel:
    """Training of the GIN classifier on the train graphs, in ``num_batches`` mini-batches that
    are collated once (the graphs are tiny: collating per step would dominate the time); stops
    when every train graph is classified correctly (checked every 5 epochs)."""
    train = [dataset.graphs[i] for i in dataset.train_index.tolist()]
    test = [dataset.graphs[i] for i in dataset.test_index.tolist()]
    model = GINGraphClassifier(dataset.num_features, hidden, dataset.num_classes, num_layers)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    perm = torch.randperm(len(train)).tolist()
    batches = [
        Batch.from_data_list([train[i] for i in perm[k::num_batches]]) for k in range(num_batches)
    ]
    epoch = 0
    for epoch in range(1, epochs + 1):
        model.train()
        for b in batches:
            opt.zero_grad()
            F.cross_entropy(model(b.x, b.edge_index, b.batch), b.y).backward()
            opt.step()
        if epoch % 5 == 0 and graph_accuracy(model, train) >= 1.0:
            break
    model.eval()
    return TrainedModel(model, graph_accuracy(model, train), graph_accuracy(model, test), epoch)


@torch.no_grad()
def graph_accuracy(model: nn.Module, graphs: list[Data]) -> float:
    """Accuracy of a graph classifier on ``graphs`` (one batched forward)."""
    model.eval()
    b = Batch.from_data_list(graphs)
    return float((model(b.x, b.edge_index, b.batch).argmax(-1) == b.y).float().mean())
