"""Procedural scenes and the user's image folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from provenml.errors import ProvenmlError
from provenml.ssl import SHAPES, load_image_folder, multi_object_scenes, single_object_scenes
from provenml.ssl.scenes import cached_scenes


def test_multi_object_scenes_have_masks_and_several_classes() -> None:
    scenes = multi_object_scenes(64, seed=0)
    assert scenes.images.shape == (64, 3, 64, 64) and scenes.images.dtype == torch.uint8
    assert scenes.masks.shape == (64, 64, 64)
    assert int(scenes.masks.max()) == len(SHAPES)
    classes_per_image = [len(set(m.unique().tolist()) - {0}) for m in scenes.masks]
    assert sum(c >= 2 for c in classes_per_image) > 32  # several objects, often distinct
    centre = scenes.masks[:, 24:40, 24:40].bool().float().mean()
    border = scenes.masks.bool().float().mean()
    assert float(centre) < 2.5 * float(border)  # not object-centric
    # the image label is the class with the most visible pixels
    counts = torch.stack([(scenes.masks == c).sum(dim=(1, 2)) for c in range(1, 6)], dim=1)
    assert torch.equal(scenes.labels, counts.argmax(1) + 1)


def test_single_object_scenes_are_centred() -> None:
    scenes = single_object_scenes(32, seed=0)
    assert all(len(set(m.unique().tolist()) - {0}) == 1 for m in scenes.masks)
    assert bool(scenes.masks[:, 32, 32].bool().float().mean() > 0.6)


def test_scenes_are_seeded_and_prefix_stable() -> None:
    a = multi_object_scenes(70, seed=3)  # two chunks of 64
    b = multi_object_scenes(70, seed=3)
    c = multi_object_scenes(20, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.images[:20], c.images)
    assert not torch.equal(a.images[:20], multi_object_scenes(20, seed=4).images)
    with pytest.raises(ProvenmlError, match="objects"):
        multi_object_scenes(4, seed=0, objects=(3, 2))


def test_cached_scenes_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVENML_CACHE", str(tmp_path))
    first = cached_scenes("multi", 8, seed=1)
    assert list(tmp_path.rglob("*.pt"))
    again = cached_scenes("multi", 8, seed=1)
    assert torch.equal(first.images, again.images) and torch.equal(first.masks, again.masks)
    with pytest.raises(ProvenmlError, match="kind"):
        cached_scenes("many", 8, seed=1)


def test_image_folder_loads_png_and_jpeg(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (80, 50), (255, 0, 0)).save(tmp_path / "a.png")
    Image.new("L", (40, 90), 128).save(tmp_path / "b.JPG")
    (tmp_path / "notes.txt").write_text("not an image")
    images = load_image_folder(tmp_path, size=32)
    assert images.shape == (2, 3, 32, 32) and images.dtype == torch.uint8
    assert images[0, 0].float().mean() > 250 and images[0, 1].float().mean() < 5
    assert abs(float(images[1].float().mean()) - 128) < 2


def test_image_folder_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ProvenmlError, match="not a directory"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(ProvenmlError, match="holds no"):
        load_image_folder(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ProvenmlError, match=r"broken\.png"):
        load_image_folder(tmp_path)
