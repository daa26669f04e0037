"""MoCo-v2 / DenseCL: correspondence, gradients, queues, the w = 0 identity, bad backbones."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from provenml.errors import ProvenmlError
from provenml.ssl import (
    DenseCL,
    KeyQueue,
    MoCoV2,
    SmallResNet,
    dense_correspondence,
    extract_backbone,
    feature_map_backbone,
    info_nce,
)


def _tiny(seed: int = 0) -> SmallResNet:
    torch.manual_seed(seed)
    return SmallResNet((8, 16), depth=1)


def _views(batch: int = 4, size: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g), torch.rand(
        batch, 3, size, size, generator=g
    )


def test_info_nce_is_cross_entropy_with_the_positive_first() -> None:
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(20, 8, generator=g), dim=1)
    k = F.normalize(torch.randn(20, 8, generator=g), dim=1)
    negatives = F.normalize(torch.randn(30, 8, generator=g), dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ negatives.t()], dim=1) / 0.2
    expected = F.cross_entropy(logits, torch.zeros(20, dtype=torch.long))
    assert torch.allclose(info_nce(q, k, negatives, 0.2), expected, atol=1e-5)


def test_correspondence_is_the_argmax_of_backbone_cosine_similarity() -> None:
    g = torch.Generator().manual_seed(0)
    features_q = torch.randn(3, 5, 2, 3, generator=g)
    features_k = torch.randn(3, 5, 3, 2, generator=g)
    matches = dense_correspondence(features_q, features_k)
    assert matches.shape == (3, 6)
    for b in range(3):
        for s in range(6):
            q = features_q[b].flatten(1)[:, s]
            sims = [F.cosine_similarity(q, features_k[b].flatten(1)[:, j], dim=0) for j in range(6)]
            assert int(matches[b, s]) == int(torch.stack(sims).argmax())
    # a key map that is a permuted copy of the query map is matched back exactly
    perm = torch.randperm(6, generator=g)
    permuted = features_q.flatten(2)[:, :, perm].view_as(features_q)
    assert torch.equal(
        dense_correspondence(features_q, permuted), torch.argsort(perm).expand(3, -1)
    )


def test_densecl_uses_backbone_features_for_the_match() -> None:
    model = DenseCL(_tiny(), image_size=16, queue_size=8, dim=4, momentum=0.9)
    view_q, view_k = _views()
    out = model(view_q, view_k)
    assert out.correspondence is not None
    assert torch.equal(out.correspondence, dense_correspondence(out.features_q, out.features_k))
    assert out.correspondence.shape == (4, out.features_q.shape[-2] * out.features_q.shape[-1])


def test_no_gradient_reaches_the_key_encoder() -> None:
    model = DenseCL(_tiny(), image_size=16, queue_size=8, dim=4, warmup_steps=0)
    out = model(*_views())
    out.loss.backward()
    key_params = [
        *model.key_backbone.parameters(),
        *model.key_global_head.parameters(),
        *model.key_dense_head.parameters(),  # type: ignore[union-attr]
    ]
    assert key_params and all(p.grad is None and not p.requires_grad for p in key_params)
    assert all(p.grad is not None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.dense_head.parameters())  # type: ignore[union-attr]
    assert not out.features_k.requires_grad


def test_momentum_update_follows_the_formula() -> None:
    model = MoCoV2(_tiny(), image_size=16, queue_size=8, dim=4, momentum=0.9)
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(1.0)
    before_k = [p.clone() for p in model.key_backbone.parameters()]
    query = [p.clone() for p in model.backbone.parameters()]
    model.momentum_update()
    for k0, q, k1 in zip(before_k, query, model.key_backbone.parameters(), strict=True):
        assert torch.allclose(k1, 0.9 * k0 + 0.1 * q)


def test_queue_replaces_the_oldest_keys_in_order_and_keeps_its_size() -> None:
    queue = KeyQueue(5, 2)
    batches = [torch.full((2, 2), float(i)) for i in range(1, 5)]  # 8 keys into 5 slots
    for batch in batches:
        queue.enqueue(batch)
    assert queue.keys.shape == (5, 2)
    assert queue.ordered()[:, 0].tolist() == [2.0, 3.0, 3.0, 4.0, 4.0]  # oldest first
    assert int(queue.pointer) == 8 % 5
    queue.enqueue(torch.arange(14.0).view(7, 2))  # more keys than slots: the newest 5 stay
    assert queue.ordered()[:, 0].tolist() == [4.0, 6.0, 8.0, 10.0, 12.0]


def test_training_step_enqueues_this_steps_keys() -> None:
    model = DenseCL(_tiny(), image_size=16, queue_size=6, dim=4, momentum=0.5)
    view_q, view_k = _views(batch=4)
    model(view_q, view_k)
    features = model.key_backbone(view_k)
    keys = F.normalize(model.key_global_head(features), dim=1)
    pooled = F.normalize(model.key_dense_head(features).flatten(2).mean(2), dim=1)  # type: ignore[misc]
    assert torch.allclose(model.queue.ordered()[-4:], keys, atol=1e-5)
    assert torch.allclose(model.dense_queue.ordered()[-4:], pooled, atol=1e-5)  # type: ignore[union-attr]
    assert int(model.queue.pointer) == 4 and int(model.steps_done) == 1


def test_weight_zero_gives_exactly_the_mocov2_loss() -> None:
    densecl = DenseCL(_tiny(), image_size=16, queue_size=8, dim=4, dense_weight=0.0)
    moco = MoCoV2(_tiny(), image_size=16, queue_size=8, dim=4)
    moco.load_state_dict(densecl.state_dict(), strict=False)  # shared parts, same queue
    view_q, view_k = _views()
    torch.manual_seed(3)
    out_d = densecl(view_q, view_k)
    torch.manual_seed(3)
    out_m = moco(view_q, view_k)
    assert torch.equal(out_d.loss, out_m.loss)
    assert torch.isfinite(out_d.loss_dense) and torch.isnan(out_m.loss_dense)
    out_d.loss.backward()
    out_m.loss.backward()
    for pd, pm in zip(densecl.backbone.parameters(), moco.backbone.parameters(), strict=True):
        assert torch.equal(pd.grad, pm.grad)  # type: ignore[arg-type]


def test_warmup_keeps_the_dense_weight_at_zero_then_uses_it() -> None:
    model = DenseCL(_tiny(), image_size=16, queue_size=8, dim=4, dense_weight=0.5, warmup_steps=2)
    weights = [model(*_views(seed=i)).dense_weight for i in range(4)]
    assert weights == [0.0, 0.0, 0.5, 0.5]
    out = model(*_views(seed=9))
    expected = 0.5 * out.loss_global + 0.5 * out.loss_dense
    assert torch.allclose(out.loss, expected)


def test_backbone_without_a_spatial_map_is_one_clear_error() -> None:
    pooled = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ProvenmlError, match=r"spatial feature map .*\(2, 4\)"):
        DenseCL(pooled, image_size=16)
    with pytest.raises(ProvenmlError, match="spatial feature map"):
        MoCoV2(pooled, image_size=16)


def test_views_too_small_for_the_backbone_is_one_clear_error() -> None:
    with pytest.raises(ProvenmlError, match="image_size"):
        DenseCL(nn.Conv2d(3, 4, 9), image_size=4)


class _TorchvisionStyleResNet(nn.Module):
    """The attribute layout of torchvision.models.resnet18 (conv1 ... layer4, avgpool, fc)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 2, 1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.maxpool = nn.Identity()
        self.layer1 = nn.Conv2d(8, 8, 3, 1, 1)
        self.layer2 = nn.Conv2d(8, 8, 3, 1, 1)
        self.layer3 = nn.Conv2d(8, 8, 3, 1, 1)
        self.layer4 = nn.Conv2d(8, 16, 3, 1, 1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(
            self.layer3(self.layer2(self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))))
        )
        return self.fc(self.avgpool(x).flatten(1))


def test_a_torchvision_style_resnet_works_unchanged() -> None:
    model = DenseCL(_TorchvisionStyleResNet(), image_size=16, queue_size=8, dim=4)
    out = model(*_views())
    assert out.features_q.shape == (4, 16, 8, 8)
    assert feature_map_backbone(model.backbone) is model.backbone


def test_extract_backbone_is_a_trainable_copy() -> None:
    model = DenseCL(_tiny(), image_size=16, queue_size=8, dim=4)
    model.eval()
    backbone = extract_backbone(model)
    assert backbone is not model.backbone and backbone.training
    for a, b in zip(backbone.parameters(), model.backbone.parameters(), strict=True):
        assert torch.equal(a, b) and a.requires_grad
    assert backbone(torch.rand(2, 3, 16, 16)).shape == (2, 16, 8, 8)


def test_same_seed_same_numbers() -> None:
    def run() -> list[float]:
        torch.manual_seed(0)
        model = DenseCL(_tiny(), image_size=16, queue_size=8, dim=4)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        losses = []
        for i in range(3):
            out = model(*_views(seed=i))
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            losses.append(float(out.loss.detach()))
        return losses

    assert run() == run()


def test_bad_hyper_parameters_are_clear_errors() -> None:
    with pytest.raises(ProvenmlError, match="dense_weight"):
        DenseCL(_tiny(), image_size=16, dense_weight=1.5)
    with pytest.raises(ProvenmlError, match="momentum"):
        DenseCL(_tiny(), image_size=16, momentum=1.0)
    with pytest.raises(ProvenmlError, match="queue_size"):
        MoCoV2(_tiny(), image_size=16, queue_size=0)
    model = MoCoV2(_tiny(), image_size=16, queue_size=8)
    with pytest.raises(ProvenmlError, match="views"):
        model(torch.rand(2, 3, 16, 16), torch.rand(3, 3, 16, 16))


def test_state_dict_round_trip_keeps_the_queue() -> None:
    model = DenseCL(_tiny(), image_size=16, queue_size=8, dim=4)
    model(*_views())
    clone = copy.deepcopy(model)
    fresh = DenseCL(_tiny(1), image_size=16, queue_size=8, dim=4)
    fresh.load_state_dict(clone.state_dict())
    assert torch.equal(fresh.queue.keys, model.queue.keys)
    assert int(fresh.steps_done) == 1
