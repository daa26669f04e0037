"""Batched two-view augmentation vs the same ops applied one image at a time.

The issue asks for a ratio against ``torchvision.transforms.v2`` applied per image. torchvision
does not import beside this project's torch build, so the anchor here is the per-image loop
that a torchvision-style pipeline runs: the same :class:`provenml.ssl.TwoViewAugment` ops on a
batch of one, once per image (each call draws its own crop, jitter, grayscale, blur and flip,
as a per-image transform does). Both produce two 32 px views of 64 px scenes, on one thread.
Prints images per second of each and the ratio. The pre-training step of ``ssl.dense_transfer``
is printed alongside, to show whether augmentation could be its bottleneck.

Run: ``.venv/bin/python benchmarks/bench_ssl_augment.py [--threads N]``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from provenml.ssl import DenseCL, SmallResNet, TwoViewAugment, multi_object_scenes


def _best_of(repeats: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = multi_object_scenes(args.batch, seed=0).images
    augment = TwoViewAugment(crop_size=32)
    generator = torch.Generator().manual_seed(0)

    def batched() -> None:
        augment(images, generator)

    def per_image() -> None:
        for i in range(images.shape[0]):
            augment(images[i : i + 1], generator)

    batched()
    per_image()
    t_batched = _best_of(args.repeats, batched)
    t_loop = _best_of(max(1, args.repeats // 2), per_image)

    torch.manual_seed(0)
    model = DenseCL(SmallResNet((16, 32, 64)), image_size=32, queue_size=2048, momentum=0.99)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9)
    view_q, view_k, _, _ = augment(images[:64], generator)

    def train_step() -> None:
        out = model(view_q, view_k)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()

    train_step()
    t_step = _best_of(args.repeats, train_step)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    n = images.shape[0]
    print(f"two 32 px views of {n} scenes (64 px), {args.threads} thread(s), load {load:.2f}")
    print(f"{'pipeline':<34}{'images/s':>12}")
    print(f"{'batched (provenml.ssl)':<34}{n / t_batched:>12.0f}")
    print(f"{'per image, same ops (anchor)':<34}{n / t_loop:>12.0f}")
    print(f"ratio batched / per image: {t_loop / t_batched:.1f}x")
    print(
        f"for scale: a DenseCL training step (ssl.dense_transfer small, batch 64) runs "
        f"{64 / t_step:.0f} images/s"
    )
    print("torchvision.transforms.v2 is not an anchor here: torchvision does not import beside")
    print("this torch build (see the module docstring).")


if __name__ == "__main__":
    main()
