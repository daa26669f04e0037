"""A user's own images: a folder of PNG / JPEG files as one uint8 tensor (through Pillow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from provenml.errors import ProvenmlError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def load_image_folder(
    folder: str | Path, size: int = 64, recursive: bool = False, limit: int | None = None
) -> torch.Tensor:
    """Every PNG / JPEG in ``folder`` (sorted by path), as a (N, 3, size, size) uint8 tensor.

    Each image is converted to RGB, its shorter side resized to ``size`` (bicubic) and the
    centre ``size x size`` square kept. The result feeds :class:`~provenml.ssl.TwoViewAugment`
    and :func:`~provenml.ssl.pretrain` directly. ``limit`` keeps the first ``limit`` files.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(folder)
    if not root.is_dir():
        raise ProvenmlError(f"folder {str(root)!r} is not a directory")
    if size < 1:
        raise ProvenmlError(f"size must be >= 1, got {size}")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in root.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES)
    if limit is not None:
        files = files[:limit]
    if not files:
        raise ProvenmlError(
            f"folder {str(root)!r} holds no {'/'.join(IMAGE_SUFFIXES)} files"
            + ("" if recursive else " (pass recursive=True to look in subfolders)")
        )
    out = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(files):  # file decoding is per file by nature
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
        except (OSError, UnidentifiedImageError) as exc:
            raise ProvenmlError(f"cannot read image {str(path)!r}: {exc}") from None
        width, height = rgb.size
        scale = size / min(width, height)
        new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
        rgb = rgb.resize((new_w, new_h), Image.Resampling.BICUBIC)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        out[i] = np.asarray(rgb.crop((left, top, left + size, top + size)))
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
