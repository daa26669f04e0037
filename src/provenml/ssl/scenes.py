"""Procedural scenes with per-pixel masks, generated with a seed (no download).

DenseCL gains most over MoCo-v2 when pre-training on multi-object images (COCO) rather than on
object-centric ones (Wang et al. 2021, Sec. 4.1): two random crops of a scene with several
objects often show different objects, so one global vector per view is a poor target, while
matching locations is not. :func:`multi_object_scenes` makes that regime at 64x64: a textured
background (stripes, checks or smoothed colour noise) with 2-5 off-centre objects from five
shape classes (disk, square, triangle, plus, ring), 8-28 px, painted in order so that later
ones occlude earlier ones. :func:`single_object_scenes` is the object-centric control: one
larger object at the centre on the same backgrounds.

Objects are flat colours with a linear shading and pixel noise; their class is carried by the
shape only (colours and sizes are drawn independently of it), so a pixel classifier must see
shape, not colour. Generation is vectorised over a chunk of scenes; scene ``i`` of a seed does
not depend on how many scenes are asked for.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from provenml.errors import ProvenmlError

SHAPES: tuple[str, ...] = ("disk", "square", "triangle", "plus", "ring")
CLASS_NAMES: tuple[str, ...] = ("background", *SHAPES)
NUM_CLASSES = len(CLASS_NAMES)
_CHUNK = 64


@dataclass
class SceneSet:
    """Images (N, 3, H, W) uint8, per-pixel classes ``masks`` (N, H, W) uint8 (0 background,
    1..5 the shapes of :data:`SHAPES`) and ``labels`` (N,) int64: the class of the object with
    the most visible pixels (image-level label for kNN)."""

    images: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: torch.Tensor | slice) -> SceneSet:
        return SceneSet(self.images[index], self.masks[index], self.labels[index])


def _backgrounds(batch: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Stripes, checks or smoothed colour noise between two random colours; (B, 3, S, S)."""
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    angle = torch.rand(batch, 1, 1, generator=g) * math.pi
    period = 4.0 + torch.rand(batch, 1, 1, generator=g) * 12.0
    phase = torch.rand(batch, 1, 1, generator=g) * period
    u = x * torch.cos(angle) + y * torch.sin(angle) + phase
    v = -x * torch.sin(angle) + y * torch.cos(angle) + phase
    stripes = 0.5 + 0.5 * torch.sin(2 * math.pi * u / period)
    checks = ((torch.floor(u / period) + torch.floor(v / period)) % 2).float()
    coarse = torch.rand(batch, 1, 6, 6, generator=g)
    noise = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    noise = noise.clamp(0, 1).squeeze(1)
    kind = torch.randint(0, 3, (batch, 1, 1), generator=g)
    pattern = torch.where(kind == 0, stripes, torch.where(kind == 1, checks, noise))
    colour_a = torch.rand(batch, 3, 1, 1, generator=g)
    colour_b = torch.rand(batch, 3, 1, 1, generator=g)
    return colour_a + (colour_b - colour_a) * pattern[:, None]


def _shape_masks(
    shape: torch.Tensor,
    centre: torch.Tensor,
    radius: torch.Tensor,
    angle: torch.Tensor,
    size: int,
) -> torch.Tensor:
    """Boolean masks (B, S, S) of one object per scene: class index ``shape`` (B,), centre
    (B, 2) in pixels, ``radius`` (B,) half the object's extent, rotation ``angle`` (B,)."""
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    dx = (x[None] - centre[:, 0, None, None]) / radius[:, None, None]
    dy = (y[None] - centre[:, 1, None, None]) / radius[:, None, None]
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    u = cos * dx + sin * dy
    v = -sin * dx + cos * dy
    r = torch.sqrt(dx**2 + dy**2)
    disk = r <= 1.0
    square = (u.abs() <= 0.8) & (v.abs() <= 0.8)
    # an equilateral triangle inscribed in the unit circle: three half-planes
    edges = [math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
    triangle = torch.ones_like(disk)
    for edge in edges:
        triangle &= (u * math.cos(edge) + v * math.sin(edge)) >= -0.5
    plus = ((u.abs() <= 1.0) & (v.abs() <= 0.33)) | ((u.abs() <= 0.33) & (v.abs() <= 1.0))
    ring = (r <= 1.0) & (r >= 0.55)
    stacked = torch.stack([disk, square, triangle, plus, ring], dim=1)  # (B, 5, S, S)
    return stacked.gather(1, shape[:, None, None, None].expand(-1, 1, size, size)).squeeze(1)


def _paint_objects(
    images: torch.Tensor,
    masks: torch.Tensor,
    count: torch.Tensor,
    slots: int,
    centres: torch.Tensor,
    radii: torch.Tensor,
    g: torch.Generator,
) -> None:
    """Paint ``slots`` objects per scene (slot ``k`` only where ``k < count``) in place."""
    batch, _, size, _ = images.shape
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    for slot in range(slots):
        shape = torch.randint(0, len(SHAPES), (batch,), generator=g)
        angle = torch.rand(batch, generator=g) * 2 * math.pi
        mask = _shape_masks(shape, centres[:, slot], radii[:, slot], angle, size)
        mask &= (slot < count)[:, None, None]
        colour = torch.rand(batch, 3, 1, 1, generator=g)
        shade_dir = torch.rand(batch, 1, 1, generator=g) * 2 * math.pi
        shade = (
            0.15
            * (
                torch.cos(shade_dir) * (x[None] - centres[:, slot, 0, None, None])
                + torch.sin(shade_dir) * (y[None] - centres[:, slot, 1, None, None])
            )
            / radii[:, slot, None, None].clamp_min(1.0)
        )
        fill = (colour + shade[:, None]).clamp(0, 1)
        images.copy_(torch.where(mask[:, None], fill, images))
        masks.copy_(torch.where(mask, (shape + 1).to(masks.dtype)[:, None, None], masks))


def _finish(images: torch.Tensor, masks: torch.Tensor, g: torch.Generator) -> SceneSet:
    noise = 0.03 * torch.randn(images.shape, generator=g)
    as_bytes = ((images + noise).clamp(0, 1) * 255).round().to(torch.uint8)
    counts = F.one_hot(masks.long(), len(CLASS_NAMES)).sum(dim=(1, 2))[:, 1:]
    labels = counts.argmax(dim=1) + 1
    return SceneSet(as_bytes, masks, labels)


def _chunked(
    make_chunk: Callable[..., SceneSet], stream: int, n: int, seed: int, size: int, *args: object
) -> SceneSet:
    """Scenes in chunks of ``_CHUNK``, chunk ``c`` drawn from its own generator seeded by
    (``seed``, ``stream``, ``c``), so a prefix of a set does not depend on its length."""
    if n < 1:
        raise ProvenmlError(f"number of scenes must be >= 1, got {n}")
    if size < 16:
        raise ProvenmlError(f"size must be >= 16 pixels, got {size}")
    parts = []
    for start in range(0, n, _CHUNK):
        g = torch.Generator().manual_seed((seed * 7919 + stream) * 1_000_003 + start // _CHUNK)
        chunk = make_chunk(_CHUNK, size, g, *args)  # whole chunks: a prefix is stable
        parts.append(chunk.subset(slice(0, min(_CHUNK, n - start))))
    return SceneSet(
        torch.cat([p.images for p in parts]),
        torch.cat([p.masks for p in parts]),
        torch.cat([p.labels for p in parts]),
    )


def _multi_chunk(
    batch: int,
    size: int,
    g: torch.Generator,
    objects: tuple[int, int],
    object_size: tuple[int, int],
) -> SceneSet:
    images = _backgrounds(batch, size, g)
    masks = torch.zeros(batch, size, size, dtype=torch.uint8)
    count = torch.randint(objects[0], objects[1] + 1, (batch,), generator=g)
    extent = object_size[0] + torch.rand(batch, objects[1], generator=g) * (
        object_size[1] - object_size[0]
    )
    radii = extent / 2
    # off-centre: the centre lies anywhere that keeps most of the object inside the image
    low, high = radii * 0.5, size - radii * 0.5
    centres = torch.stack(
        [
            low + torch.rand(batch, objects[1], generator=g) * (high - low),
            low + torch.rand(batch, objects[1], generator=g) * (high - low),
        ],
        dim=2,
    )
    _paint_objects(images, masks, count, objects[1], centres, radii, g)
    return _finish(images, masks, g)


def _single_chunk(
    batch: int, size: int, g: torch.Generator, object_size: tuple[int, int], jitter: float
) -> SceneSet:
    images = _backgrounds(batch, size, g)
    masks = torch.zeros(batch, size, size, dtype=torch.uint8)
    extent = object_size[0] + torch.rand(batch, 1, generator=g) * (object_size[1] - object_size[0])
    centres = size / 2 + (torch.rand(batch, 1, 2, generator=g) * 2 - 1) * jitter
    _paint_objects(images, masks, torch.ones(batch, dtype=torch.long), 1, centres, extent / 2, g)
    return _finish(images, masks, g)


def multi_object_scenes(
    n: int,
    seed: int,
    size: int = 64,
    objects: tuple[int, int] = (2, 5),
    object_size: tuple[int, int] = (8, 28),
) -> SceneSet:
    """``n`` textured scenes with ``objects`` (min, max) off-centre, occluding objects of
    ``object_size`` (min, max) pixels across, and their per-pixel masks."""
    if not 1 <= objects[0] <= objects[1]:
        raise ProvenmlError(f"objects must be (min, max) with 1 <= min <= max, got {objects}")
    if not 2 <= object_size[0] <= object_size[1] <= size:
        raise ProvenmlError(f"object_size must be (min, max) within [2, {size}], got {object_size}")
    return _chunked(_multi_chunk, 1, n, seed, size, objects, object_size)


def single_object_scenes(
    n: int,
    seed: int,
    size: int = 64,
    object_size: tuple[int, int] = (28, 44),
    jitter: float = 3.0,
) -> SceneSet:
    """``n`` object-centric scenes: one object of ``object_size`` pixels across, centred
    (up to ``jitter`` pixels off), on the same backgrounds as :func:`multi_object_scenes`."""
    if not 2 <= object_size[0] <= object_size[1] <= size:
        raise ProvenmlError(f"object_size must be (min, max) within [2, {size}], got {object_size}")
    return _chunked(_single_chunk, 2, n, seed, size, object_size, jitter)


_CACHE_VERSION = 2


def cached_scenes(kind: str, n: int, seed: int, size: int = 64) -> SceneSet:
    """:func:`multi_object_scenes` (``kind="multi"``) or :func:`single_object_scenes`
    (``"single"``) with their default object settings, kept in the provenml cache
    (``provenml.core.cache_dir("ssl")``) so that parallel workers generate a set once."""
    from provenml.core.cache import atomic_write_path, cache_dir

    makers = {"multi": multi_object_scenes, "single": single_object_scenes}
    if kind not in makers:
        raise ProvenmlError(f"scene kind must be multi or single, got {kind!r}")
    path = cache_dir("ssl") / f"{kind}_n{n}_seed{seed}_s{size}_v{_CACHE_VERSION}.pt"
    if path.exists():
        try:
            stored = torch.load(path, weights_only=True)
            return SceneSet(stored["images"], stored["masks"], stored["labels"])
        except (OSError, RuntimeError, KeyError):
            path.unlink(missing_ok=True)  # a damaged file: make it again
    scenes = makers[kind](n, seed, size)
    with atomic_write_path(path) as tmp:
        torch.save({"images": scenes.images, "masks": scenes.masks, "labels": scenes.labels}, tmp)
    return scenes
