"""ShapesWorld data: long-tail counts, the Dirichlet partitioner, bad inputs."""

from __future__ import annotations

import pytest
import torch

from provenml.errors import ProvenmlError
from provenml.federated.data import (
    SHAPES,
    class_splits,
    dirichlet_partition,
    long_tail_counts,
    make_federated_data,
    render_shapes,
)


def test_long_tail_counts_follow_the_exponential_profile() -> None:
    # the published CIFAR-10-LT class sizes at IF=100 (Cao et al., 2019; 12,406 images)
    counts = long_tail_counts(5000, 100)
    assert counts == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(counts) == 12406
    assert long_tail_counts(500, 10)[-1] == 50
    assert long_tail_counts(100, 1) == [100] * 10


def test_class_splits_are_thirds_by_count() -> None:
    splits = class_splits(long_tail_counts(500, 100))
    assert splits == {"many": [0, 1, 2], "medium": [3, 4, 5, 6], "few": [7, 8, 9]}


@pytest.mark.parametrize("alpha", [0.05, 0.1, 1.0, 100.0])
def test_dirichlet_partition_covers_every_example_once_without_empty_clients(alpha: float) -> None:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(long_tail_counts(200, 100))])
    parts = dirichlet_partition(labels, 20, alpha, torch.Generator().manual_seed(3))
    assert len(parts) == 20
    assert min(p.numel() for p in parts) >= 1
    every = torch.cat(parts).sort().values
    assert torch.equal(every, torch.arange(labels.numel()))
    # per-class counts over clients sum to the data's class counts
    per_client = torch.stack([torch.bincount(labels[p], minlength=10) for p in parts])
    assert torch.equal(per_client.sum(0), torch.bincount(labels, minlength=10))


def test_small_alpha_skews_labels_more_than_large_alpha() -> None:
    labels = torch.arange(10).repeat(100)

    def classes_per_client(alpha: float) -> float:
        parts = dirichlet_partition(labels, 10, alpha, torch.Generator().manual_seed(0))
        return sum((torch.bincount(labels[p], minlength=10) > 0).sum().item() for p in parts) / 10

    assert classes_per_client(0.05) < 4 < 9 < classes_per_client(100.0)


def test_partition_is_seeded() -> None:
    labels = torch.arange(10).repeat(30)
    a = dirichlet_partition(labels, 5, 0.5, torch.Generator().manual_seed(1))
    b = dirichlet_partition(labels, 5, 0.5, torch.Generator().manual_seed(1))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_bad_partition_inputs_raise_one_clear_error() -> None:
    labels = torch.arange(5)
    with pytest.raises(ProvenmlError, match="num_clients=6 is more than the 5 examples"):
        dirichlet_partition(labels, 6, 0.5, torch.Generator())
    with pytest.raises(ProvenmlError, match="alpha must be a positive number"):
        dirichlet_partition(labels, 2, 0.0, torch.Generator())
    with pytest.raises(ProvenmlError, match="alpha must be a positive number"):
        make_federated_data(alpha=-1.0, web_size=10, test_per_class=1)
    with pytest.raises(ProvenmlError, match="num_clients=2000 is more than the"):
        make_federated_data(num_clients=2000, web_size=10, test_per_class=1)


def test_federated_data_sets_have_the_promised_shapes() -> None:
    data = make_federated_data(
        n_max=40, imbalance=10, num_clients=5, web_size=50, align_per_class=2, test_per_class=3
    )
    assert data.class_counts == long_tail_counts(40, 10)
    client_labels = torch.cat([c.labels for c in data.clients])
    assert torch.equal(torch.bincount(client_labels, minlength=10), torch.tensor(data.class_counts))
    assert torch.equal(torch.bincount(data.align.labels, minlength=10), torch.full((10,), 2))
    assert torch.equal(torch.bincount(data.test.labels, minlength=10), torch.full((10,), 3))
    assert data.test.images.shape == (30, 3, 32, 32)
    assert float(data.web.images.min()) >= 0
    assert float(data.web.images.max()) <= 1


def test_rendered_shapes_differ_by_class_not_only_by_nuisance() -> None:
    # the mean image of each class (over nuisances) must differ between classes: a ring's
    # centre is background, a circle's is foreground
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([SHAPES.index("circle")] * 200 + [SHAPES.index("ring")] * 200)
    images = render_shapes(labels, gen).images
    contrast = (images - images.mean(dim=(2, 3), keepdim=True)).abs().mean(1)  # [n, 32, 32]
    centre = contrast[:, 14:18, 14:18].mean(dim=(1, 2))
    # at the centre, circles show the shape's colour far more often than rings do
    assert centre[:200].mean() > 1.3 * centre[200:].mean()
