"""PyKEEN at matched settings, for the large-graph comparisons (``kge.scale`` and
``benchmarks/bench_kge_scale.py``). PyKEEN is imported inside the functions.

Matched: the same graph (ids), model (ComplEx / DistMult / TransE), embedding dimension, batch
size, negatives per positive (``2K``: our chunks use ``K`` drawn entities as heads and as
tails), initial distribution, logistic loss with the positive and the mean of its negatives
weighted alike, and learning rate. PyKEEN trains with dense Adam over its embedding tables (it
has no sparse path), sLCWA with its basic sampler.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from provenml.kge.sparse import SparseTrainingConfig, init_bound

_CLASSES = {"complex": "ComplEx", "distmult": "DistMult", "transe": "TransE"}


def pykeen_factory(triples: np.ndarray, num_entities: int, num_relations: int) -> Any:
    from pykeen.triples import CoreTriplesFactory

    mapped = torch.as_tensor(np.asarray(triples, dtype=np.int64))
    return CoreTriplesFactory.create(mapped, num_entities, num_relations)


def _matched_initializer(model: str, dim: int) -> Any:
    """PyKEEN initializer drawing what :class:`~provenml.kge.sparse.SparseKGE` draws
    (:func:`~provenml.kge.sparse.init_bound`, uniform per real coordinate). PyKEEN's own
    defaults (``normal_`` for ComplEx: scores with a standard deviation of about 8 at dim 32)
    leave it at chance MRR after an epoch on the generated graphs, so an unmatched
    initialisation would make it a straw man."""
    scale = init_bound(model, dim)

    def initialize(x: Tensor) -> Tensor:
        torch.nn.init.uniform_(torch.view_as_real(x) if x.is_complex() else x, -scale, scale)
        return x

    return initialize


def pykeen_model(name: str, factory: Any, dim: int, seed: int) -> Any:
    """The PyKEEN model matching :class:`~provenml.kge.sparse.SparseKGE` ``name``: no
    regulariser, the same initial distribution, TransE with the L2 norm, and the same loss
    weighting as :func:`~provenml.kge.sparse.chunk_loss`, ``softplus(-pos) + mean softplus(neg)``:
    PyKEEN's adversarially weighted BCE with inverse temperature 0 (uniform weights over the
    negatives; its constant factor 1/2 does not change Adam's steps). PyKEEN's plain
    ``softplus`` loss would average the positive with its 2K negatives, weighting it 1/(2K+1)."""
    import pykeen.models

    cls = getattr(pykeen.models, _CLASSES[name])
    extra: dict[str, Any] = {"regularizer": None} if name != "transe" else {"scoring_fct_norm": 2}
    if name == "distmult":
        extra["entity_constrainer"] = None
    init = _matched_initializer(name, dim)  # dim is TransE's width; the others ignore it
    return cls(
        triples_factory=factory,
        embedding_dim=dim,
        loss="adversarialbcewithlogits",
        loss_kwargs={"inverse_softmax_temperature": 0.0},
        entity_initializer=init,
        relation_initializer=init,
        random_seed=seed,
        **extra,
    )


def pykeen_train(model: Any, factory: Any, cfg: SparseTrainingConfig, epochs: int = 1) -> float:
    """Train with PyKEEN's sLCWA loop at the matched settings; return the seconds it took."""
    from pykeen.training import SLCWATrainingLoop

    loop = SLCWATrainingLoop(
        model=model,
        triples_factory=factory,
        optimizer=torch.optim.Adam(model.get_grad_params(), lr=cfg.lr),
        negative_sampler="basic",
        negative_sampler_kwargs={"num_negs_per_pos": 2 * cfg.num_negatives},
    )
    start = time.perf_counter()
    loop.train(
        triples_factory=factory,
        num_epochs=epochs,
        batch_size=cfg.batch_size,
        use_tqdm=False,
        use_tqdm_batch=False,
    )
    return time.perf_counter() - start


class PyKEENScorer:
    """A PyKEEN model seen through provenml's ``score_t`` / ``score_h`` / ``score_hrt``."""

    def __init__(self, model: Any, num_entities: int, num_relations: int) -> None:
        self.model, self.num_entities, self.num_relations = model, num_entities, num_relations

    @torch.no_grad()
    def score_t(self, h: Tensor, r: Tensor) -> Tensor:
        return self.model.score_t(torch.stack([h, r], 1))

    @torch.no_grad()
    def score_h(self, r: Tensor, t: Tensor) -> Tensor:
        return self.model.score_h(torch.stack([r, t], 1))

    def eval(self) -> PyKEENScorer:
        self.model.eval()
        return self


def pykeen_throughput(
    name: str,
    triples: np.ndarray,
    num_entities: int,
    num_relations: int,
    dim: int,
    cfg: SparseTrainingConfig,
    batches: int,
    seed: int = 0,
) -> tuple[float, float]:
    """PyKEEN's training triples/s, its fixed cost per ``train()`` call removed: one epoch
    over ``batches`` and one over ``2 x batches`` random batches, rate = the extra triples over
    the extra seconds. Returns ``(triples/s, seconds of the longer run)``."""
    rng = np.random.default_rng(seed)
    times = []
    for k in (batches, 2 * batches):
        n = min(len(triples), k * cfg.batch_size)
        factory = pykeen_factory(
            triples[rng.permutation(len(triples))[:n]], num_entities, num_relations
        )
        times.append((n, pykeen_train(pykeen_model(name, factory, dim, seed), factory, cfg)))
    (n1, t1), (n2, t2) = times
    rate = (n2 - n1) / (t2 - t1) if t2 > t1 and n2 > n1 else n2 / t2
    return rate, t2
