"""MoCo-v2's two-view augmentations in plain torch, batched over the whole batch.

Chen et al. (arXiv 2003.04297, Sec. 3) use, per view: RandomResizedCrop (area 0.2-1, aspect
3/4-4/3), colour jitter (brightness, contrast, saturation 0.4, hue 0.1) with p = 0.8, grayscale
with p = 0.2, Gaussian blur (sigma 0.1-2.0 at 224 px) with p = 0.5, and a horizontal flip. Here
every random draw is one tensor for the whole batch and every op works on (B, 3, h, w) at once:
the crop and the flip are one ``grid_sample`` with a per-image affine grid, the jitter factors
are per-image tensors, the blur is one grouped separable convolution. Differences from
torchvision: the jitter ops run in a fixed order (brightness, contrast, saturation, hue) rather
than a random one, crop boxes are continuous (sub-pixel) rather than rounded to pixels, and the
antialiasing before a downscaling resize is a Gaussian (:func:`antialias`), not a resampling
filter.

Each view keeps its crop box in source-pixel coordinates and its flip flag (:class:`CropBoxes`),
so that locations in one view can be mapped back to the image (used to check DenseCL's
correspondences geometrically: :func:`cell_boxes`, :func:`correspondence_overlap`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from provenml.errors import ProvenmlError

_GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale


@dataclass
class CropBoxes:
    """Where each view came from: ``boxes`` (B, 4) as ``x0, y0, x1, y1`` in source pixels
    (continuous; ``x1 - x0`` is the crop width) and ``flipped`` (B,) bool."""

    boxes: torch.Tensor
    flipped: torch.Tensor


def _as_float_images(images: torch.Tensor, crop_size: int) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ProvenmlError(f"images must be a (B, 3, H, W) tensor, got {shape}")
    height, width = images.shape[-2:]
    if height < crop_size or width < crop_size:
        raise ProvenmlError(
            f"images are {height}x{width} pixels, smaller than crop_size={crop_size}; "
            "use larger images or a smaller crop_size"
        )
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    if not images.is_floating_point():
        raise ProvenmlError(f"images must be uint8 or float in [0, 1], got {images.dtype}")
    return images.float()


def random_resized_boxes(
    batch: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
    tries: int = 10,
) -> torch.Tensor:
    """RandomResizedCrop's boxes for a whole batch: (B, 4) ``x0, y0, x1, y1`` in pixels.

    Per image, ``tries`` candidate (area fraction, log aspect ratio) pairs are drawn at once and
    the first that fits is kept, as torchvision does; an image with none that fits gets the
    largest centred box with the aspect ratio clamped to ``ratio`` (torchvision's fallback).
    """
    area = height * width
    fractions = torch.empty(batch, tries, device=device).uniform_(*scale, generator=generator)
    log_ratio = torch.empty(batch, tries, device=device).uniform_(
        math.log(ratio[0]), math.log(ratio[1]), generator=generator
    )
    aspect = torch.exp(log_ratio)
    box_w = torch.sqrt(fractions * area * aspect)
    box_h = torch.sqrt(fractions * area / aspect)
    fits = (box_w <= width) & (box_h <= height)
    first = torch.argmax(fits.int(), dim=1)  # first fitting try (0 if none fits)
    chosen_w = box_w.gather(1, first[:, None]).squeeze(1)
    chosen_h = box_h.gather(1, first[:, None]).squeeze(1)
    any_fit = fits.any(dim=1)
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fallback_w, fallback_h = float(width), width / ratio[0]
    elif in_ratio > ratio[1]:
        fallback_w, fallback_h = height * ratio[1], float(height)
    else:
        fallback_w, fallback_h = float(width), float(height)
    chosen_w = torch.where(any_fit, chosen_w, torch.full_like(chosen_w, fallback_w))
    chosen_h = torch.where(any_fit, chosen_h, torch.full_like(chosen_h, fallback_h))
    u = torch.rand(batch, 2, generator=generator, device=device)
    x0 = torch.where(any_fit, u[:, 0] * (width - chosen_w), (width - chosen_w) / 2)
    y0 = torch.where(any_fit, u[:, 1] * (height - chosen_h), (height - chosen_h) / 2)
    return torch.stack([x0, y0, x0 + chosen_w, y0 + chosen_h], dim=1)


def crop_and_resize(
    images: torch.Tensor, boxes: torch.Tensor, flipped: torch.Tensor, size: int
) -> torch.Tensor:
    """Crop ``boxes`` (B, 4, pixels) out of ``images`` (B, C, H, W), resize each to
    ``size x size`` (bilinear) and mirror the ``flipped`` ones: one ``grid_sample`` call."""
    batch, _, height, width = images.shape
    x0, y0, x1, y1 = boxes.unbind(1)
    # output pixel centre u in (-1, 1) maps to source x = x0 + (u + 1) / 2 * (x1 - x0), then to
    # grid_sample's normalised coordinate 2 x / W - 1 (align_corners=False)
    scale_x = (x1 - x0) / width
    scale_y = (y1 - y0) / height
    shift_x = (x0 + x1) / width - 1.0
    shift_y = (y0 + y1) / height - 1.0
    sign = 1.0 - 2.0 * flipped.to(images.dtype)
    theta = torch.zeros(batch, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = scale_x * sign
    theta[:, 0, 2] = shift_x
    theta[:, 1, 1] = scale_y
    theta[:, 1, 2] = shift_y
    grid = F.affine_grid(theta, [batch, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _gray(images: torch.Tensor) -> torch.Tensor:
    r, g, b = images.unbind(1)
    return (_GRAY_WEIGHTS[0] * r + _GRAY_WEIGHTS[1] * g + _GRAY_WEIGHTS[2] * b).unsqueeze(1)


def _rgb_to_hsv(images: torch.Tensor) -> torch.Tensor:
    r, g, b = images.unbind(1)
    maxc, _ = images.max(dim=1)
    minc, _ = images.min(dim=1)
    delta = maxc - minc
    value = maxc
    saturation = delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    hue = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(delta > 0, (hue / 6.0) % 1.0, torch.zeros_like(hue))
    return torch.stack([hue, saturation, value], dim=1)


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    hue, saturation, value = hsv.unbind(1)
    sector = torch.floor(hue * 6.0)
    frac = hue * 6.0 - sector
    sector = sector.long() % 6
    p = value * (1.0 - saturation)
    q = value * (1.0 - saturation * frac)
    t = value * (1.0 - saturation * (1.0 - frac))
    table = torch.stack(
        [
            torch.stack([value, q, p, p, t, value], dim=1),
            torch.stack([t, value, value, q, p, p], dim=1),
            torch.stack([p, p, t, value, value, q], dim=1),
        ],
        dim=1,
    )  # (B, 3 channels, 6 sectors, h, w)
    index = sector[:, None, None].expand(-1, 3, 1, -1, -1)
    return table.gather(2, index).squeeze(2)


def color_jitter(
    images: torch.Tensor,
    brightness: torch.Tensor,
    contrast: torch.Tensor,
    saturation: torch.Tensor,
    hue: torch.Tensor,
) -> torch.Tensor:
    """torchvision's ColorJitter ops with per-image factors (B,) (1, 1, 1, 0 leave an image
    unchanged up to rounding): brightness scales, contrast and saturation blend with the gray
    mean / gray image, hue rotates in HSV. Values stay in [0, 1]."""
    out = (images * brightness[:, None, None, None]).clamp_(0.0, 1.0)
    mean = _gray(out).mean(dim=(1, 2, 3), keepdim=True)
    c = contrast[:, None, None, None]
    out = (c * out + (1.0 - c) * mean).clamp_(0.0, 1.0)
    s = saturation[:, None, None, None]
    out = (s * out + (1.0 - s) * _gray(out)).clamp_(0.0, 1.0)
    if bool((hue != 0).any()):
        hsv = _rgb_to_hsv(out)
        shifted = (hsv[:, 0] + hue[:, None, None]) % 1.0
        out = _hsv_to_rgb(torch.stack([shifted, hsv[:, 1], hsv[:, 2]], dim=1))
    return out.clamp_(0.0, 1.0)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Separable Gaussian blur with a per-image ``sigma`` (B,), kernel ``2 radius + 1``,
    reflect padding; ``sigma <= 0`` leaves an image unchanged. One grouped conv per axis."""
    batch, channels, height, width = images.shape
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    safe = sigma.clamp_min(1e-6)[:, None]
    kernel = torch.exp(-0.5 * (offsets[None] / safe) ** 2)
    identity = (offsets == 0).to(images.dtype)[None].expand(batch, -1)
    kernel = torch.where((sigma > 0)[:, None], kernel, identity)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    kernel = kernel.repeat_interleave(channels, dim=0)  # (B*C, k)
    flat = images.reshape(1, batch * channels, height, width)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="reflect")
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=batch * channels)
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=batch * channels)
    return flat.reshape(batch, channels, height, width)


def antialias(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Low-pass each image before its box is resized to ``size``: a Gaussian of
    ``sigma = 0.5 sqrt(s^2 - 1)`` for a downscale factor ``s > 1`` (the Gaussian-pyramid rule,
    standing in for torchvision's antialiased resize), none when the box is enlarged. Without
    it, stripes and checks finer than the output grid alias into different patterns in each
    view."""
    factor = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / size
    sigma = 0.5 * torch.sqrt((factor**2 - 1.0).clamp_min(0.0))
    if not bool((sigma > 0.05).any()):
        return images
    sigma = torch.where(sigma > 0.05, sigma, torch.zeros_like(sigma))
    limit = (min(images.shape[-2:]) - 1) // 2
    radius = max(1, min(math.ceil(3 * float(sigma.max())), limit))
    return gaussian_blur(images, sigma, radius)


class TwoViewAugment:
    """MoCo-v2's augmentation, two independent views per image, batched.

    ``augment(images, generator)`` takes (B, 3, H, W) uint8 or float in [0, 1] images with
    ``H, W >= crop_size`` and returns ``(view_q, view_k, boxes_q, boxes_k)``: two (B, 3,
    crop_size, crop_size) float tensors in [0, 1] and their :class:`CropBoxes`.

    ``blur_sigma`` defaults to MoCo-v2's (0.1, 2.0) at 224 px scaled to ``crop_size``
    (at least 0.1 .. 0.5 px), so small crops are not blurred away.
    """

    def __init__(
        self,
        crop_size: int = 32,
        scale: tuple[float, float] = (0.2, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_p: float = 0.5,
        blur_sigma: tuple[float, float] | None = None,
        flip_p: float = 0.5,
        antialias: bool = True,
    ) -> None:
        if crop_size < 1:
            raise ProvenmlError(f"crop_size must be >= 1, got {crop_size}")
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ProvenmlError(f"scale must satisfy 0 < min <= max <= 1, got {scale}")
        if not 0.0 < ratio[0] <= ratio[1]:
            raise ProvenmlError(f"ratio must satisfy 0 < min <= max, got {ratio}")
        for name, p in (("jitter_p", jitter_p), ("grayscale_p", grayscale_p)):
            if not 0.0 <= p <= 1.0:
                raise ProvenmlError(f"{name} must be a probability, got {p}")
        for name, p in (("blur_p", blur_p), ("flip_p", flip_p)):
            if not 0.0 <= p <= 1.0:
                raise ProvenmlError(f"{name} must be a probability, got {p}")
        if blur_sigma is None:
            factor = crop_size / 224
            blur_sigma = (0.1, max(0.5, 2.0 * factor))
        self.crop_size = crop_size
        self.scale = scale
        self.ratio = ratio
        self.jitter = jitter
        self.jitter_p = jitter_p
        self.grayscale_p = grayscale_p
        self.blur_p = blur_p
        self.blur_sigma = blur_sigma
        self.flip_p = flip_p
        self.antialias = antialias
        self.blur_radius = max(1, min(math.ceil(3 * blur_sigma[1]), (crop_size - 1) // 2))

    def view(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, CropBoxes]:
        """One augmented view of every image, and where it was cropped."""
        x = _as_float_images(images, self.crop_size)
        batch, _, height, width = x.shape
        device = x.device

        def uniform(low: float, high: float) -> torch.Tensor:
            return torch.empty(batch, device=device).uniform_(low, high, generator=generator)

        def coin(p: float) -> torch.Tensor:
            return torch.rand(batch, generator=generator, device=device) < p

        boxes = random_resized_boxes(
            batch, height, width, self.scale, self.ratio, generator, device
        )
        flipped = coin(self.flip_p)
        if self.antialias:
            x = antialias(x, boxes, self.crop_size)
        out = crop_and_resize(x, boxes, flipped, self.crop_size)

        b, c, s, h = self.jitter
        apply = coin(self.jitter_p)
        ones, zeros = torch.ones(batch, device=device), torch.zeros(batch, device=device)
        brightness = torch.where(apply, uniform(max(0.0, 1 - b), 1 + b), ones)
        contrast = torch.where(apply, uniform(max(0.0, 1 - c), 1 + c), ones)
        saturation = torch.where(apply, uniform(max(0.0, 1 - s), 1 + s), ones)
        hue = torch.where(apply, uniform(-h, h), zeros)
        out = color_jitter(out, brightness, contrast, saturation, hue)

        gray = coin(self.grayscale_p)[:, None, None, None]
        out = torch.where(gray, _gray(out).expand_as(out), out)

        sigma = torch.where(coin(self.blur_p), uniform(*self.blur_sigma), zeros)
        out = gaussian_blur(out, sigma, self.blur_radius).clamp_(0.0, 1.0)
        return out, CropBoxes(boxes=boxes, flipped=flipped)

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, CropBoxes, CropBoxes]:
        view_q, boxes_q = self.view(images, generator)
        view_k, boxes_k = self.view(images, generator)
        return view_q, view_k, boxes_q, boxes_k


def cell_boxes(crop: CropBoxes, grid: tuple[int, int]) -> torch.Tensor:
    """The source-pixel box of every cell of an ``(h, w)`` feature grid laid over each view:
    (B, h * w, 4) ``x0, y0, x1, y1`` in the row-major order of ``feature_map.flatten(2)``.
    A flipped view's column ``j`` covers the source columns of unflipped column ``w - 1 - j``."""
    rows, cols = grid
    x0, y0, x1, y1 = crop.boxes.unbind(1)
    cell_w = (x1 - x0) / cols
    cell_h = (y1 - y0) / rows
    col = torch.arange(cols, device=crop.boxes.device, dtype=crop.boxes.dtype)
    row = torch.arange(rows, device=crop.boxes.device, dtype=crop.boxes.dtype)
    source_col = torch.where(crop.flipped[:, None], cols - 1 - col[None], col[None])  # (B, w)
    left = x0[:, None] + source_col * cell_w[:, None]  # (B, w)
    top = y0[:, None] + row[None] * cell_h[:, None]  # (B, h)
    left = left[:, None, :].expand(-1, rows, -1)
    top = top[:, :, None].expand(-1, -1, cols)
    right = left + cell_w[:, None, None]
    bottom = top + cell_h[:, None, None]
    return torch.stack([left, top, right, bottom], dim=-1).reshape(-1, rows * cols, 4)


def correspondence_overlap(
    correspondence: torch.Tensor,
    boxes_q: CropBoxes,
    boxes_k: CropBoxes,
    grid_q: tuple[int, int],
    grid_k: tuple[int, int],
) -> tuple[float, float]:
    """How often a matched key cell overlaps its query cell in the source image, and chance.

    ``correspondence`` (B, hq * wq) holds the matched key cell of every query cell. Only query
    cells that overlap at least one key cell count. Returns ``(matched, chance)``: the fraction
    whose matched key cell overlaps them, and the expected fraction for a key cell drawn
    uniformly at random (the share of key cells that overlap each query cell, averaged).
    The boxes' device is used (views augmented on a GPU have their boxes there).
    """
    correspondence = correspondence.to(boxes_q.boxes.device)
    cells_q = cell_boxes(boxes_q, grid_q)  # (B, Q, 4)
    cells_k = cell_boxes(boxes_k, grid_k)  # (B, K, 4)
    overlap_w = torch.minimum(cells_q[..., None, 2], cells_k[:, None, :, 2]) - torch.maximum(
        cells_q[..., None, 0], cells_k[:, None, :, 0]
    )
    overlap_h = torch.minimum(cells_q[..., None, 3], cells_k[:, None, :, 3]) - torch.maximum(
        cells_q[..., None, 1], cells_k[:, None, :, 1]
    )
    overlaps = (overlap_w > 0) & (overlap_h > 0)  # (B, Q, K)
    counted = overlaps.any(dim=2)
    if not bool(counted.any()):
        return float("nan"), float("nan")
    matched = overlaps.gather(2, correspondence[..., None]).squeeze(2)
    chance = overlaps.float().mean(dim=2)
    return float(matched[counted].float().mean()), float(chance[counted].mean())
