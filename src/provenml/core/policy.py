"""Run policy, applied by the runner in one place: the device, torch threads, the plotting
backend. An experiment declares what it supports on ``@experiment(devices=..., threads=...)``;
it never sets these itself."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from provenml.errors import ProvenmlError

if TYPE_CHECKING:
    import torch

    from provenml.core.registry import ExperimentSpec

__all__ = ["check_device", "resolve_device", "unit_threads", "use_agg_backend"]


def resolve_device(device: str, supported: tuple[str, ...] = ("cpu", "cuda")) -> torch.device:
    """The torch device for ``--device``: ``auto`` picks CUDA when present and supported;
    asking for CUDA without a GPU, or for a device the experiment does not support, is a user
    error (one line)."""
    import torch

    kind = device.split(":", 1)[0]
    if device == "auto":
        use_cuda = "cuda" in supported and torch.cuda.is_available()
        return torch.device("cuda" if use_cuda else "cpu")
    if kind not in ("cpu", "cuda"):
        raise ProvenmlError(f"unknown device {device!r}; use auto, cpu or cuda")
    if kind not in supported:
        raise ProvenmlError(
            f"--device {device} is not supported here; it runs on {', '.join(supported)} only"
        )
    if kind == "cuda" and not torch.cuda.is_available():
        raise ProvenmlError("--device cuda was asked for, but no CUDA GPU is available")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ProvenmlError(f"unknown device {device!r}; use auto, cpu or cuda") from None


def check_device(spec: ExperimentSpec, device: str) -> torch.device:
    """:func:`resolve_device` for ``spec``, naming the experiment when it refuses."""
    try:
        return resolve_device(device, tuple(spec.devices))
    except ProvenmlError as exc:
        if "not supported" in str(exc):
            raise ProvenmlError(
                f"{spec.name} runs on {', '.join(spec.devices)} only; --device {device} is "
                "not supported"
            ) from None
        raise


def unit_threads(declared: int | None, workers: int = 1) -> int | None:
    """Torch intra-op threads for one unit: the declared number (capped at the cores per
    worker when several workers share the machine); undeclared, the cores split between
    ``workers`` worker processes, or ``None`` (keep the setting) in the main process."""
    if workers <= 1:
        return declared
    per_worker = max(1, (os.cpu_count() or 1) // workers)
    return per_worker if declared is None else min(declared, per_worker)


def use_agg_backend() -> None:
    """Plots are written to files: matplotlib's non-interactive Agg backend, set once here for
    the runner and (through ``MPLBACKEND``) for its worker processes."""
    os.environ["MPLBACKEND"] = "Agg"
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return
    matplotlib.use("Agg", force=True)
