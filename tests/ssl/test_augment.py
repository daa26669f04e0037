"""Batched two-view augmentations: shapes, ranges, crop-box geometry, seeds, bad input."""

from __future__ import annotations

import pytest
import torch

from provenml.errors import ProvenmlError
from provenml.ssl import (
    CropBoxes,
    TwoViewAugment,
    cell_boxes,
    color_jitter,
    correspondence_overlap,
    crop_and_resize,
    gaussian_blur,
    random_resized_boxes,
)


def _images(batch: int = 6, size: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=g)


def test_views_keep_shape_and_value_range() -> None:
    augment = TwoViewAugment(crop_size=24)
    view_q, view_k, boxes_q, boxes_k = augment(_images(), torch.Generator().manual_seed(0))
    for view in (view_q, view_k):
        assert view.shape == (6, 3, 24, 24) and view.dtype == torch.float32
        assert float(view.min()) >= 0.0 and float(view.max()) <= 1.0
    for boxes in (boxes_q, boxes_k):
        assert boxes.boxes.shape == (6, 4) and boxes.flipped.shape == (6,)
    assert not torch.equal(view_q, view_k)
    float_input = _images().float() / 255
    assert augment(float_input)[0].shape == (6, 3, 24, 24)


def test_boxes_follow_random_resized_crop_limits() -> None:
    boxes = random_resized_boxes(
        2000, 64, 48, (0.2, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(1)
    )
    x0, y0, x1, y1 = boxes.unbind(1)
    w, h = x1 - x0, y1 - y0
    assert bool(
        (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= 48 + 1e-4).all() and (y1 <= 64 + 1e-4).all()
    )
    area = w * h / (64 * 48)
    assert float(area.min()) >= 0.2 - 1e-4 and float(area.max()) <= 1.0 + 1e-4
    ratio = w / h
    assert float(ratio.min()) >= 3 / 4 - 1e-4 and float(ratio.max()) <= 4 / 3 + 1e-4


def test_crop_boxes_say_where_each_view_came_from() -> None:
    # an image whose channels encode the source x and y of every pixel centre
    size = 32
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    image = torch.stack([x / size, y / size, torch.zeros_like(x)])[None].repeat(4, 1, 1, 1)
    boxes = torch.tensor(
        [
            [0.0, 0.0, 32.0, 32.0],
            [4.0, 8.0, 20.0, 24.0],
            [10.0, 2.0, 26.0, 30.0],
            [0.0, 16.0, 16.0, 32.0],
        ]
    )
    flipped = torch.tensor([False, False, True, True])
    out = crop_and_resize(image, boxes, flipped, 8)
    cells = cell_boxes(CropBoxes(boxes, flipped), (8, 8))  # (B, 64, 4)
    expected_x = (cells[..., 0] + cells[..., 2]) / 2 / size
    expected_y = (cells[..., 1] + cells[..., 3]) / 2 / size
    assert torch.allclose(out[:, 0].flatten(1), expected_x, atol=1e-5)
    assert torch.allclose(out[:, 1].flatten(1), expected_y, atol=1e-5)
    # flipped views are mirrored: the left column came from the right of the box
    assert float(out[2, 0, 0, 0]) > float(out[2, 0, 0, -1])


def test_identical_views_match_every_cell_and_beat_chance() -> None:
    boxes = CropBoxes(
        torch.tensor([[0.0, 0.0, 32.0, 32.0], [8.0, 8.0, 24.0, 24.0]]), torch.tensor([False, True])
    )
    identity = torch.arange(16).expand(2, -1)
    matched, chance = correspondence_overlap(identity, boxes, boxes, (4, 4), (4, 4))
    assert matched == 1.0 and 0 < chance < 0.5
    wrong = torch.flip(identity, dims=[1])  # cell s matched to 15 - s: mostly far away
    assert correspondence_overlap(wrong, boxes, boxes, (4, 4), (4, 4))[0] < 0.5


def test_jitter_with_neutral_factors_and_zero_blur_change_nothing() -> None:
    images = _images().float() / 255
    ones, zeros = torch.ones(6), torch.zeros(6)
    assert torch.allclose(color_jitter(images, ones, ones, ones, zeros), images, atol=1e-6)
    assert torch.allclose(gaussian_blur(images, zeros, 2), images, atol=1e-6)
    blurred = gaussian_blur(images, torch.full((6,), 1.5), 3)
    assert blurred.shape == images.shape and float(blurred.std()) < float(images.std())
    rotated = color_jitter(images, ones, ones, ones, torch.full((6,), 0.5))
    back = color_jitter(rotated, ones, ones, ones, torch.full((6,), 0.5))  # hue +1 turn
    assert torch.allclose(back, images, atol=1e-4)


def test_same_seed_same_views() -> None:
    augment = TwoViewAugment(crop_size=16)
    first = augment(_images(), torch.Generator().manual_seed(5))
    second = augment(_images(), torch.Generator().manual_seed(5))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert torch.equal(first[2].boxes, second[2].boxes)
    other = augment(_images(), torch.Generator().manual_seed(6))
    assert not torch.equal(first[0], other[0])


def test_images_smaller_than_the_crop_are_one_clear_error() -> None:
    augment = TwoViewAugment(crop_size=48)
    with pytest.raises(ProvenmlError, match=r"smaller than crop_size=48"):
        augment(_images(size=40))
    with pytest.raises(ProvenmlError, match=r"\(B, 3, H, W\)"):
        augment(torch.zeros(3, 40, 40))
    with pytest.raises(ProvenmlError, match="scale"):
        TwoViewAugment(scale=(0.5, 0.2))


def test_antialiasing_keeps_fine_stripes_from_aliasing() -> None:
    from provenml.ssl.augment import antialias

    columns = torch.arange(64)
    stripes = (columns % 3 == 0).float().expand(64, -1)  # period 3 px: aliases at 1/4 size
    images = stripes[None, None].repeat(2, 3, 1, 1)
    boxes = torch.tensor([[0.0, 0.0, 64.0, 64.0], [0.0, 0.0, 16.0, 16.0]])
    smoothed = antialias(images, boxes, 16)
    plain = crop_and_resize(images, boxes, torch.tensor([False, False]), 16)
    filtered = crop_and_resize(smoothed, boxes, torch.tensor([False, False]), 16)
    assert float(plain[0].std()) > 0.2  # aliased: the 4x downscale keeps strong false bars
    assert float(filtered[0].std()) < 0.02  # filtered: close to the mean grey
    assert torch.equal(smoothed[1], images[1])  # not a downscale for the 16 px box: untouched


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_overlap_of_a_cpu_correspondence_with_boxes_on_the_gpu() -> None:
    """`--device cuda` (stop 48, on an H200): pre-training augments on the GPU, so the crop
    boxes live there while the logged correspondence had been moved to the CPU."""
    boxes = CropBoxes(
        torch.tensor([[0.0, 0.0, 32.0, 32.0], [8.0, 8.0, 24.0, 24.0]]), torch.tensor([False, True])
    )
    identity = torch.arange(16).expand(2, -1)
    on_gpu = CropBoxes(boxes.boxes.cuda(), boxes.flipped.cuda())
    expected = correspondence_overlap(identity, boxes, boxes, (4, 4), (4, 4))
    assert correspondence_overlap(identity, on_gpu, on_gpu, (4, 4), (4, 4)) == expected
