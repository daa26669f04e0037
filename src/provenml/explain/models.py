"""The models that get explained: a GCN node classifier and a GIN graph classifier.

Both concatenate every layer's node embeddings before the classifier, as GNNExplainer's
``GcnEncoderNode`` does, which is what lets a 3-layer GCN separate the motif roles.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn import GCNConv, GINConv, global_add_pool

from provenml.explain.datasets import GroundTruthDataset


class GCNNodeClassifier(nn.Module):
    """``num_layers`` GCN layers (ReLU), all layers' embeddings concatenated, then a linear head."""

    def __init__(self, in_dim: int, hidden: int, num_classes: int, num_layers: int = 3) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * num_layers
        self.convs = nn.ModuleList(GCNConv(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.head = nn.Linear(hidden * num_layers, num_classes)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        layers = []
        for conv in self.convs:
            x = F.relu(conv(x, edge_index))
            layers.append(x)
        return self.head(torch.cat(layers, dim=-1))


class GINGraphClassifier(nn.Module):
    """``num_layers`` GIN layers, sum-pooled per layer and concatenated, then an MLP head."""

    def __init__(self, in_dim: int, hidden: int, num_classes: int, num_layers: int = 3) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * num_layers
        self.convs = nn.ModuleList(
            GINConv(nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, b)))
            for a, b in zip(dims[:-1], dims[1:])
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
    weight_decay: float = 5e-4,
    target_acc: float = 0.95,
    patience: int = 200,
) -> TrainedModel:
    """Full-batch training on the train nodes; keeps the weights with the best train accuracy
    and stops once the train accuracy has stayed at 1.0 for ``patience`` epochs."""
    data: Data = dataset.data
    model = GCNNodeClassifier(dataset.num_features, hidden, dataset.num_classes, num_layers)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    best, best_state, since = -1.0, None, 0
    epoch = 0
    for epoch in range(1, epochs + 1):
        model.train()
        opt.zero_grad()
        out = model(data.x, data.edge_index)
        loss = F.cross_entropy(out[data.train_mask], data.y[data.train_mask])
        loss.backward()
        opt.step()
        acc = float((out.argmax(-1) == data.y)[data.train_mask].float().mean())
        if acc > best:
            best, best_state, since = acc, {k: v.clone() for k, v in model.state_dict().items()}, 0
        else:
            since += 1
        if best >= 1.0 and since >= patience:
            break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        pred = model(data.x, data.edge_index).argmax(-1)
    correct = (pred == data.y).float()
    return TrainedModel(
        model, float(correct[data.train_mask].mean()), float(correct[data.test_mask].mean()), epoch
    )


def train_graph_classifier(
    dataset: GroundTruthDataset,
    hidden: int = 32,
    num_layers: int = 3,
    epochs: int = 100,
    lr: float = 0.005,
    batch_size: int = 64,
) -> TrainedModel:
    """Mini-batch training of the GIN classifier on the train graphs."""
    train = [dataset.graphs[i] for i in dataset.train_index.tolist()]
    test = [dataset.graphs[i] for i in dataset.test_index.tolist()]
    model = GINGraphClassifier(dataset.num_features, hidden, dataset.num_classes, num_layers)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loader = DataLoader(train, batch_size=batch_size, shuffle=True)
    epoch = 0
    for epoch in range(1, epochs + 1):
        model.train()
        for b in loader:
            opt.zero_grad()
            F.cross_entropy(model(b.x, b.edge_index, b.batch), b.y).backward()
            opt.step()
        if epoch % 10 == 0 and graph_accuracy(model, train) >= 1.0:
            break
    model.eval()
    return TrainedModel(model, graph_accuracy(model, train), graph_accuracy(model, test), epoch)


@torch.no_grad()
def graph_accuracy(model: nn.Module, graphs: list[Data]) -> float:
    """Accuracy of a graph classifier on ``graphs`` (one batched forward)."""
    from torch_geometric.data import Batch

    model.eval()
    b = Batch.from_data_list(graphs)
    return float((model(b.x, b.edge_index, b.batch).argmax(-1) == b.y).float().mean())
