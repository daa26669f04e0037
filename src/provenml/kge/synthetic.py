"""A synthetic knowledge graph with one relation per pattern, each on its own entity pool.

Patterns and how their test triples can only be inferred through the pattern:

- ``symmetric`` (a random undirected graph): test ``(b, r, a)`` whose reverse ``(a, r, b)`` is
  in training;
- ``antisymmetric`` (a layered DAG: every edge goes from a lower to a higher level of a hidden
  3-level hierarchy): held-out edges ``(a, r, b)``, both ends seen in training edges, whose
  reverse is never a triple; measured by *direction accuracy* on them, the share scored above
  their reversal ``f(a, r, b) > f(b, r, a)``. A model must place the entities by level to get
  a held-out direction right, so this can fail where the same share on the training edges
  (which can be memorised) could not;
- ``inverse`` (``r_fwd``: a random permutation x -> π(x); ``r_bwd`` its inverse): test
  ``(π(x), r_bwd, x)`` whose ``(x, r_fwd, π(x))`` is in training;
- ``composition`` (``r1``: A -> B, ``r2``: B -> C bijections, ``r3 = r2 ∘ r1``): test
  ``(a, r3, c)`` whose path ``a -r1-> b -r2-> c`` is in training;
- ``one_to_many`` / ``many_to_one`` (``has_member`` g -> m and its inverse ``member_of``):
  test triples of each whose inverse twin is in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from provenml.kge.data import TriplesDataset
from provenml.kge.models import KGEModel

#: levels of the hidden hierarchy that orients the antisymmetric relation
ANTI_LEVELS = 3
PATTERNS = ("symmetric", "antisymmetric", "inverse", "composition", "one_to_many", "many_to_one")


@dataclass
class PatternGraph:
    """The graph, the test triples of each pattern and the relation that carries each pattern."""

    dataset: TriplesDataset
    test_by_pattern: dict[str, Tensor]
    relation_of: dict[str, int]


def pattern_graph(
    pool: int = 30, degree: int = 3, test_fraction: float = 0.3, seed: int = 0
) -> PatternGraph:
    """Generate the pattern graph: ``pool`` entities per pattern, a held-out ``test_fraction``."""
    gen = torch.Generator().manual_seed(seed)
    relations = ["sym", "anti", "fwd", "bwd", "r1", "r2", "r3", "has_member", "member_of"]
    rel = {name: i for i, name in enumerate(relations)}
    train: list[Tensor] = []
    tests: dict[str, Tensor] = {}
    offset = 0

    def pool_ids(n: int) -> Tensor:
        nonlocal offset
        ids = torch.arange(offset, offset + n)
        offset += n
        return ids

    def split(n: int) -> tuple[Tensor, Tensor]:
        perm = torch.randperm(n, generator=gen)
        cut = round(n * test_fraction)
        return perm[cut:], perm[:cut]

    def triples(h: Tensor, r: str, t: Tensor) -> Tensor:
        return torch.stack([h, torch.full_like(h, rel[r]), t], dim=1)

    # symmetric: random undirected edges, both directions known except for held-out reverses
    ids = pool_ids(pool)
    pairs = torch.randint(pool, (pool * degree, 2), generator=gen)
    pairs = torch.unique(torch.sort(pairs[pairs[:, 0] != pairs[:, 1]], dim=1).values, dim=0)
    a, b = ids[pairs[:, 0]], ids[pairs[:, 1]]
    keep, held = split(len(pairs))
    train += [triples(a, "sym", b), triples(b[keep], "sym", a[keep])]
    tests["symmetric"] = triples(b[held], "sym", a[held])
    # inverse: a permutation and its inverse
    ids = pool_ids(pool)
    image = ids[torch.randperm(pool, generator=gen)]
    keep, held = split(pool)
    train += [triples(ids, "fwd", image), triples(image[keep], "bwd", ids[keep])]
    tests["inverse"] = triples(image[held], "bwd", ids[held])
    # composition: r3 = r2 ∘ r1 over three pools
    a, b, c = pool_ids(pool), pool_ids(pool), pool_ids(pool)
    b = b[torch.randperm(pool, generator=gen)]
    c = c[torch.randperm(pool, generator=gen)]
    keep, held = split(pool)
    train += [triples(a, "r1", b), triples(b, "r2", c), triples(a[keep], "r3", c[keep])]
    tests["composition"] = triples(a[held], "r3", c[held])
    # one-to-many / many-to-one twins: groups of members
    groups = pool_ids(max(2, pool // 6))
    members = pool_ids(pool)
    owner = groups[torch.randint(len(groups), (pool,), generator=gen)]
    perm = torch.randperm(pool, generator=gen)
    cut = round(pool * test_fraction)
    held_1n, held_n1, rest = perm[:cut], perm[cut : 2 * cut], perm[2 * cut :]
    both = torch.cat([rest, held_n1])
    train += [triples(owner[both], "has_member", members[both])]
    train += [
        triples(members[torch.cat([rest, held_1n])], "member_of", owner[torch.cat([rest, held_1n])])
    ]
    tests["one_to_many"] = triples(owner[held_1n], "has_member", members[held_1n])
    tests["many_to_one"] = triples(members[held_n1], "member_of", owner[held_n1])
    # antisymmetric: a hidden hierarchy of ANTI_LEVELS levels (positions in a random order cut
    # into equal levels); every edge goes from a lower level to a higher one (a layered DAG),
    # twice as dense as the other relations so that enough edges are held out
    ids = pool_ids(pool)[torch.randperm(pool, generator=gen)]
    pairs = torch.randint(pool, (pool * 2 * degree, 2), generator=gen)
    pairs = torch.unique(torch.sort(pairs[pairs[:, 0] != pairs[:, 1]], dim=1).values, dim=0)
    level = torch.arange(pool) * ANTI_LEVELS // pool
    pairs = pairs[level[pairs[:, 0]] < level[pairs[:, 1]]]
    anti = triples(ids[pairs[:, 0]], "anti", ids[pairs[:, 1]])
    keep, held = split(len(anti))
    seen = torch.unique(anti[keep][:, [0, 2]])
    known_ends = torch.isin(anti[held][:, 0], seen) & torch.isin(anti[held][:, 2], seen)
    held, unseen = held[known_ends], held[~known_ends]  # an unseen end has no level to learn
    train.append(anti[torch.cat([keep, unseen])])
    tests["antisymmetric"] = anti[held]
    tests = {pattern: tests[pattern] for pattern in PATTERNS}

    test = torch.cat(list(tests.values()))
    dataset = TriplesDataset(
        name="patterns",
        train=torch.cat(train),
        valid=test[:0],
        test=test,
        entity_labels=[f"e{i}" for i in range(offset)],
        relation_labels=relations,
    )
    relation_of = {
        "symmetric": rel["sym"],
        "antisymmetric": rel["anti"],
        "inverse": rel["bwd"],
        "composition": rel["r3"],
        "one_to_many": rel["has_member"],
        "many_to_one": rel["member_of"],
    }
    return PatternGraph(dataset=dataset, test_by_pattern=tests, relation_of=relation_of)


@torch.no_grad()
def direction_accuracy(model: KGEModel, triples: Tensor) -> float:
    """Share of triples with f(a, r, b) > f(b, r, a); ties (equal up to float rounding) count ½."""
    h, r, t = triples.unbind(1)
    forward, backward = model.score_hrt(h, r, t), model.score_hrt(t, r, h)
    tie = torch.isclose(forward, backward, rtol=1e-5, atol=1e-6)
    return float(((forward > backward) & ~tie).float().add(0.5 * tie.float()).mean())
