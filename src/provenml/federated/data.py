"""ShapesWorld: procedural 32x32 RGB images of ten shapes, long-tailed clients, a web pool.

Everything the federated reproductions train on is generated here from a seed (no download):

- :func:`render_shapes` draws one shape per image with its colour, texture, size, position,
  rotation and background as nuisances (the label is the shape only);
- :func:`long_tail_counts` gives the per-class counts ``n_c = n_max * IF^(-c / (C - 1))``
  (CIFAR-10-LT's exponential profile; ``C = 10`` gives the issue's ``IF^(-c/9)``);
- :func:`dirichlet_partition` splits a labelled set over clients with per-class proportions
  ``p_c ~ Dir(alpha * 1_K)`` (Hsu et al., 2019), never leaving a client empty;
- :func:`make_federated_data` builds the whole benchmark: long-tailed client data split by
  Dirichlet, a web pool with a shifted palette (roughly balanced, unlabelled for the method:
  only its captions are used), a balanced alignment set disjoint from clients and test, and a
  balanced test set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from provenml.errors import ProvenmlError

SHAPES: tuple[str, ...] = (
    "circle",
    "triangle",
    "square",
    "diamond",
    "semicircle",
    "bar",
    "star",
    "cross",
    "ring",
    "crescent",
)
"""The ten classes, in label order (label ``c`` is ``SHAPES[c]``)."""

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.9, 0.15, 0.1),
    "green": (0.15, 0.75, 0.2),
    "blue": (0.15, 0.3, 0.9),
    "yellow": (0.95, 0.85, 0.15),
    "purple": (0.6, 0.2, 0.8),
    "orange": (0.95, 0.55, 0.1),
}
TEXTURES: tuple[str, ...] = ("plain", "striped", "checkered")
SIZES: tuple[str, ...] = ("small", "medium", "large")
SIZE_RADII: tuple[tuple[float, float], ...] = ((7.0, 8.5), (8.5, 10.5), (10.5, 12.5))
IMAGE_SIZE = 32


@dataclass
class ShapeImages:
    """Images ``[N, 3, 32, 32]`` in [0, 1] with labels and the nuisance attributes drawn."""

    images: Tensor
    labels: Tensor
    colour: Tensor  # index into COLOURS
    texture: Tensor  # index into TEXTURES
    size: Tensor  # index into SIZES

    def __len__(self) -> int:
        return int(self.labels.numel())

    def subset(self, index: Tensor) -> ShapeImages:
        return ShapeImages(
            self.images[index],
            self.labels[index],
            self.colour[index],
            self.texture[index],
            self.size[index],
        )


def _polygon_radius(theta: Tensor, sides: int) -> Tensor:
    """Boundary radius (unit circumradius) of a regular ``sides``-gon at polar angle ``theta``."""
    sector = 2 * math.pi / sides
    local = torch.remainder(theta, sector) - sector / 2
    return math.cos(math.pi / sides) / torch.cos(local)


def _shape_mask(label: int, x: Tensor, y: Tensor, radius: Tensor) -> Tensor:
    """Soft mask ``[n, H, W]`` of shape ``label`` centred at 0 in rotated coordinates ``x, y``."""
    r = torch.sqrt(x**2 + y**2)
    theta = torch.atan2(y, x)
    rad = radius[:, None, None]
    name = SHAPES[label]
    if name == "circle":
        inside = r - rad
    elif name == "triangle":
        inside = r - rad * _polygon_radius(theta - math.pi / 2, 3)
    elif name == "square":
        inside = torch.maximum(x.abs(), y.abs()) - rad * 0.8
    elif name == "diamond":
        inside = (x.abs() + y.abs()) - rad * 1.05
    elif name == "semicircle":  # the upper half of a disc, shifted down to be centred
        inside = torch.maximum(torch.sqrt(x**2 + (y - rad * 0.4) ** 2) - rad, y - rad * 0.4)
    elif name == "bar":  # a long horizontal rectangle
        inside = torch.maximum(x.abs() - rad, y.abs() - rad * 0.3)
    elif name == "star":
        spikes = 0.55 + 0.45 * torch.cos(5 * (theta - math.pi / 2)).clamp(min=0) ** 2
        inside = r - rad * spikes
    elif name == "cross":
        arm = rad * 0.32
        inside = torch.minimum(
            torch.maximum(x.abs() - rad, y.abs() - arm),
            torch.maximum(y.abs() - rad, x.abs() - arm),
        )
    elif name == "ring":
        inside = (r - rad * 0.72).abs() - rad * 0.28
    else:  # crescent: a disc minus a shifted disc
        shifted = torch.sqrt((x - rad * 0.45) ** 2 + y**2)
        inside = torch.maximum(r - rad, rad * 0.8 - shifted)
    return torch.sigmoid(-inside * 2.0)


def render_shapes(
    labels: Tensor, generator: torch.Generator, palette_shift: float = 0.0
) -> ShapeImages:
    """Draw one image per label: a textured, coloured shape on a noisy background.

    Nuisances (independent of the label): colour (6, jittered), texture (plain, striped,
    checkered), size (3 bins of radius), position (centre within +-4 px), rotation (+-15
    degrees, small enough that a square stays a square), background tint and pixel noise.
    ``palette_shift`` in [0, 1] moves colours and background towards another palette (the web
    pool's domain shift).
    """
    n = int(labels.numel())
    colour = torch.randint(len(COLOURS), (n,), generator=generator)
    texture = torch.randint(len(TEXTURES), (n,), generator=generator)
    size = torch.randint(len(SIZES), (n,), generator=generator)
    lo = torch.tensor([r[0] for r in SIZE_RADII])[size]
    hi = torch.tensor([r[1] for r in SIZE_RADII])[size]
    radius = lo + (hi - lo) * torch.rand(n, generator=generator)
    centre = (torch.rand(n, 2, generator=generator) - 0.5) * 8.0
    angle = (torch.rand(n, generator=generator) - 0.5) * math.radians(30)
    coords = torch.arange(IMAGE_SIZE, dtype=torch.float32) - (IMAGE_SIZE - 1) / 2
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    dx = gx[None] - centre[:, 0, None, None]
    dy = gy[None] - centre[:, 1, None, None]
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    x, y = cos * dx + sin * dy, -sin * dx + cos * dy
    mask = torch.zeros(n, IMAGE_SIZE, IMAGE_SIZE)
    for label in labels.unique().tolist():
        rows = (labels == label).nonzero().squeeze(1)
        mask[rows] = _shape_mask(int(label), x[rows], y[rows], radius[rows])
    base = torch.tensor(list(COLOURS.values()))[colour]  # [n, 3]
    base = base + 0.08 * torch.randn(n, 3, generator=generator)
    if palette_shift:
        base = (1 - palette_shift) * base + palette_shift * base[:, [1, 2, 0]]
    period = torch.randint(3, 6, (n, 1, 1), generator=generator).float()
    stripes = (torch.remainder(x + y, period * 2) < period).float()
    checks = (
        (torch.remainder(x, period * 2) < period) ^ (torch.remainder(y, period * 2) < period)
    ).float()
    shade = torch.ones(n, IMAGE_SIZE, IMAGE_SIZE)
    shade = torch.where((texture == 1)[:, None, None], 0.7 + 0.3 * stripes, shade)
    shade = torch.where((texture == 2)[:, None, None], 0.7 + 0.3 * checks, shade)
    foreground = base[:, :, None, None] * shade[:, None]
    background = 0.15 + 0.35 * torch.rand(n, 3, 1, 1, generator=generator)
    if palette_shift:
        background = background * (1 - 0.5 * palette_shift) + 0.25 * palette_shift
    noise = 0.03 * torch.randn(n, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    images = mask[:, None] * foreground + (1 - mask[:, None]) * background + noise
    return ShapeImages(images.clamp(0, 1), labels.clone(), colour, texture, size)


def long_tail_counts(n_max: int, imbalance: float, num_classes: int = len(SHAPES)) -> list[int]:
    """Per-class counts of an exponential long tail: ``n_c = n_max * IF^(-c / (C - 1))``.

    Class 0 has ``n_max`` examples and class ``C - 1`` has ``n_max / IF`` (truncated to an
    integer, at least 1), exactly as CIFAR-10-LT is built (Cao et al., 2019), the benchmark of
    the paper's Table 1.
    """
    if n_max < 1:
        raise ProvenmlError(f"n_max must be >= 1, got {n_max}")
    if imbalance < 1:
        raise ProvenmlError(f"imbalance factor must be >= 1, got {imbalance}")
    if num_classes < 2:
        raise ProvenmlError(f"num_classes must be >= 2, got {num_classes}")
    return [max(1, int(n_max * imbalance ** (-c / (num_classes - 1)))) for c in range(num_classes)]


def dirichlet_partition(
    labels: Tensor,
    num_clients: int,
    alpha: float,
    generator: torch.Generator,
    max_tries: int = 100,
) -> list[Tensor]:
    """Split example indices over ``num_clients`` with class proportions ``p_c ~ Dir(alpha)``.

    For each class ``c``, a vector ``p_c ~ Dirichlet(alpha * 1_K)`` over the ``K`` clients
    decides how many of the class's (shuffled) examples each client gets (the label-skew
    protocol of Hsu et al., 2019, used by CLIP2FL and the paper). Draws are repeated until no
    client is empty (up to ``max_tries``); after that, each empty client takes one example
    from the largest client. Every index appears in exactly one client.
    """
    n = int(labels.numel())
    if not alpha > 0 or not math.isfinite(alpha):
        raise ProvenmlError(f"alpha must be a positive number, got {alpha}")
    if num_clients < 1:
        raise ProvenmlError(f"num_clients must be >= 1, got {num_clients}")
    if num_clients > n:
        raise ProvenmlError(
            f"num_clients={num_clients} is more than the {n} examples to split: every client "
            "needs at least one example"
        )
    concentration = torch.full((num_clients,), float(alpha), dtype=torch.float64)
    classes = labels.unique().tolist()
    for _ in range(max_tries):
        parts: list[list[Tensor]] = [[] for _ in range(num_clients)]
        for c in classes:
            idx = (labels == c).nonzero().squeeze(1)
            idx = idx[torch.randperm(idx.numel(), generator=generator)]
            proportions = _dirichlet(concentration, generator)
            cuts = (torch.cumsum(proportions, 0) * idx.numel()).round().long().tolist()
            start = 0
            for k in range(num_clients):
                end = idx.numel() if k == num_clients - 1 else min(cuts[k], idx.numel())
                parts[k].append(idx[start:end])
                start = max(start, end)
        clients = [torch.cat(p) for p in parts]
        if min(c.numel() for c in clients) > 0:
            return [c.sort().values for c in clients]
    for k in range(num_clients):  # fallback: fill each empty client from the largest one
        if clients[k].numel() == 0:
            largest = max(range(num_clients), key=lambda j: clients[j].numel())
            clients[k], clients[largest] = clients[largest][-1:], clients[largest][:-1]
    return [c.sort().values for c in clients]


def _dirichlet(concentration: Tensor, generator: torch.Generator) -> Tensor:
    """A Dirichlet draw from normalised Gamma variates, using ``generator`` (torch's own
    ``Dirichlet`` distribution cannot take a generator). Gamma(a) for a < 1 uses
    ``Gamma(a + 1) * U^(1/a)`` (Marsaglia and Tsang's boost)."""
    a = concentration
    boost = a < 1
    shape = torch.where(boost, a + 1, a)
    d = shape - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.empty_like(a)
    todo = torch.ones_like(a, dtype=torch.bool)
    while todo.any():  # Marsaglia-Tsang rejection sampling, vectorised
        z = torch.randn(a.shape, generator=generator, dtype=a.dtype)
        u = torch.rand(a.shape, generator=generator, dtype=a.dtype)
        v = (1 + c * z) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * z**2 + d - d * v + d * torch.log(v.clamp(min=1e-30)))
        accept = todo & ok
        out[accept] = (d * v)[accept]
        todo &= ~accept
    u = torch.rand(a.shape, generator=generator, dtype=a.dtype)
    out = torch.where(boost, out * u ** (1.0 / a), out)
    out = out.clamp(min=1e-300)
    return out / out.sum()


@dataclass
class FederatedData:
    """The benchmark: client shards of a long-tailed set, web pool, alignment and test sets."""

    clients: list[ShapeImages]
    web: ShapeImages
    align: ShapeImages
    test: ShapeImages
    class_counts: list[int]
    classes: tuple[str, ...] = SHAPES
    splits: dict[str, list[int]] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def client_sizes(self) -> list[int]:
        return [len(c) for c in self.clients]


def class_splits(counts: list[int]) -> dict[str, list[int]]:
    """Many / medium / few classes by training count: the top 30% of classes, the bottom 30%
    and the rest (CIFAR-10-LT with IF 100: 3 / 4 / 3 classes)."""
    order = sorted(range(len(counts)), key=lambda c: -counts[c])
    k = max(1, round(0.3 * len(counts)))
    return {
        "many": sorted(order[:k]),
        "medium": sorted(order[k : len(counts) - k]),
        "few": sorted(order[len(counts) - k :]),
    }


def make_federated_data(
    *,
    n_max: int = 500,
    imbalance: float = 100.0,
    num_clients: int = 20,
    alpha: float = 0.1,
    web_size: int = 4000,
    align_per_class: int = 10,
    test_per_class: int = 100,
    web_palette_shift: float = 0.35,
    seed: int = 0,
    web_seed: int = 12345,
) -> FederatedData:
    """Generate the ShapesWorld federated benchmark.

    Client data is long-tailed (:func:`long_tail_counts`) and split by
    :func:`dirichlet_partition`; the web pool (``web_size`` images, roughly balanced labels,
    shifted palette) comes from ``web_seed`` so that the server's assets (web pool, teacher)
    are the same for every run seed, as a real web crawl would be. Alignment and test sets
    are balanced and drawn independently, so they are disjoint from the client data.
    """
    if num_clients < 1:
        raise ProvenmlError(f"num_clients must be >= 1, got {num_clients}")
    counts = long_tail_counts(n_max, imbalance)
    if num_clients > sum(counts):
        raise ProvenmlError(
            f"num_clients={num_clients} is more than the {sum(counts)} client examples "
            f"(n_max={n_max}, imbalance={imbalance}): every client needs at least one"
        )
    if not alpha > 0:
        raise ProvenmlError(f"alpha must be a positive number, got {alpha}")
    gen = torch.Generator().manual_seed(seed)
    train_labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    train = render_shapes(train_labels, gen)
    shards = dirichlet_partition(train.labels, num_clients, alpha, gen)
    align = render_shapes(torch.arange(len(SHAPES)).repeat(align_per_class), gen)
    test = render_shapes(torch.arange(len(SHAPES)).repeat(test_per_class), gen)
    web_gen = torch.Generator().manual_seed(web_seed)
    web_labels = torch.randint(len(SHAPES), (web_size,), generator=web_gen)
    web = render_shapes(web_labels, web_gen, palette_shift=web_palette_shift)
    return FederatedData(
        clients=[train.subset(s) for s in shards],
        web=web,
        align=align,
        test=test,
        class_counts=counts,
        splits=class_splits(counts),
    )
