"""Stop 74: in-place changes a user writes on views and through augmented assignment, each
compiled three ways (``pc.compile``; ``torch.compile(backend="provenml")``;
``pc.compile(torch.export.export(model, x))``) and compared to eager. Before this stop
``v = y[:, :2]; v *= 2; return y`` compiled, through ``pc.compile``, to a model that left
``y`` unchanged (torch.fx records ``v *= 2`` as ``v * 2``); ``y[:, 0].add_(3)`` was refused.
A line says OK (with the largest difference from eager), WRONG, or the refusal.

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/in_place_views_stop74.py
"""
# ruff: noqa: E501

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn

import provenml.compiler as pc

OPTS = {"tuning": False, "threads": 1}


class Habit(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def scale_a_view(x: torch.Tensor) -> torch.Tensor:
    y = x * 1.0
    v = y[:, :2]
    v *= 2
    return y


def add_into_a_view_then_read_both(x: torch.Tensor) -> torch.Tensor:
    y = x + 1
    v = y[:, :2]
    v += 3
    return v.sum() + y


def method_on_a_column(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y[:, 0].add_(3)
    return y


def method_on_rows(x: torch.Tensor) -> torch.Tensor:
    y = x.exp()
    y[1:].mul_(0.5)
    return y.sum(0)


def alias_then_augmented(x: torch.Tensor) -> torch.Tensor:
    y = x + 1
    z = y
    y += 3
    return z * 2


def view_of_a_view(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    z = y[0]
    z[1] += 5
    return y


def column_offsets_beit_style(x: torch.Tensor) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(3), torch.arange(3), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += 2
    rel[:, :, 0] *= 5
    return x + rel.sum(-1).float()[: x.shape[0], : x.shape[1]]


def mask_and_assign(x: torch.Tensor) -> torch.Tensor:
    keep = x > 0
    keep &= x < 1
    return x * keep


def reshaped_view_scaled(x: torch.Tensor) -> torch.Tensor:
    y = x * 2
    flat = y.view(-1)
    flat[:3] = 0
    return y


def transposed_view_changed_then_base_read(x: torch.Tensor) -> torch.Tensor:
    y = x + 0
    y.t().add_(1)
    return y


def size_augmented(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[1]
    n *= 2
    return torch.cat([x, x], 1).reshape(-1, n)


def funnel_style_mask(x: torch.Tensor) -> torch.Tensor:
    scores = x @ torch.cat([x, x[:1]]).T  # (4, 5): Funnel's relative shift, then a mask
    attn = scores.reshape(5, 4)[1:].reshape(4, 4)[..., :3]
    attn *= (torch.arange(3) > 0).float()
    return attn


def two_views_one_changed(x: torch.Tensor) -> torch.Tensor:
    y = x + 0
    a = y[:, :2]
    b = y[:, 2:]
    a *= 2
    return b.sum() + y


HABITS = [
    scale_a_view,
    add_into_a_view_then_read_both,
    method_on_a_column,
    method_on_rows,
    alias_then_augmented,
    view_of_a_view,
    column_offsets_beit_style,
    mask_and_assign,
    reshaped_view_scaled,
    transposed_view_changed_then_base_read,
    size_augmented,
    funnel_style_mask,
    two_views_one_changed,
]


def _route(model: nn.Module, x: torch.Tensor, route: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if route == "pc.compile":
        return pc.compile(model, (x,), **OPTS)
    if route == "backend":
        torch._dynamo.reset()
        return torch.compile(model, backend="provenml", options=OPTS)
    return pc.compile(torch.export.export(model, (x,)), (x,), **OPTS)


def main() -> None:
    warnings.filterwarnings("ignore")
    counts = {"OK": 0, "WRONG": 0, "refused": 0}
    for habit in HABITS:
        cells = []
        for route in ("pc.compile", "backend", "torch.export"):
            model = Habit(habit).eval()
            x = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
            try:
                with torch.no_grad():
                    got = _route(model, x, route)(x.clone())
                    want = model(x.clone())
                worst = float((got - want).abs().max())
                verdict = "OK" if worst < 1e-5 else "WRONG"
                counts[verdict] += 1
                cells.append(f"{route}: {verdict} {worst:.1e}")
            except Exception as exc:
                counts["refused"] += 1
                said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                cells.append(f"{route}: refused ({said.replace('provenml.compiler: ', '')[:110]})")
        print(f"{habit.__name__}: " + "; ".join(cells), flush=True)
    print(
        f"{len(HABITS)} habits x 3 routes: {counts['OK']} OK, {counts['WRONG']} WRONG, {counts['refused']} refused"
    )


if __name__ == "__main__":
    main()
