"""Stop 62 (review): AD-GCL's augmenter step with the encoder's and projection's weights
switched off (``requires_grad``) around the view's pass, against ``backward(inputs=the view
learner's parameters)``, timed in one process on one 128-graph batch, 21 alternating rounds of
10 steps, one torch thread.

    PYTHONPATH=src .venv/bin/python results/graphpretrain.pretrain_step/inputs_vs_frozen_stop62.py
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from provenml.graphpretrain.experiments import pretraining_corpus
from provenml.graphpretrain.model import encode, new_encoder
from provenml.graphpretrain.objectives import ADGCL, nt_xent
from provenml.graphpretrain.packed import PackedGraphs

DOMAINS = ["social", "road", "citation", "molecules"]


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def main() -> None:
    torch.set_num_threads(1)
    corpus = PackedGraphs.from_data_list(pretraining_corpus(DOMAINS, 1000, 0)).topology()
    torch.manual_seed(0)
    encoder = new_encoder(32, 3)
    objective = ADGCL()
    objective.setup(encoder, torch.device("cpu"), 1e-3)
    generator = torch.Generator().manual_seed(0)
    batch = corpus.select(torch.randperm(corpus.num_graphs, generator=generator)[:128])

    def augmenter_step(mode: str) -> None:
        encoder.eval()
        objective.view.train()
        weights = objective._weights(batch, generator)
        with torch.no_grad():
            z = objective.projection(encode(encoder, batch))
        if mode == "frozen":
            with frozen(encoder, objective.projection):
                z_view = objective.projection(encode(encoder, batch, edge_weight=weights))
        else:
            z_view = objective.projection(encode(encoder, batch, edge_weight=weights))
        drop = objective._drop_ratio(batch, weights)
        loss = objective.reg * drop - nt_xent(z, z_view, objective.temperature)
        objective.view_optimizer.zero_grad(set_to_none=True)
        if mode == "frozen":
            loss.backward()
        else:
            loss.backward(inputs=list(objective.view.parameters()))

    times: dict[str, list[float]] = {"frozen": [], "inputs": []}
    for r in range(21):
        for mode in ("frozen", "inputs") if r % 2 else ("inputs", "frozen"):
            start = time.perf_counter()
            for _ in range(10):
                augmenter_step(mode)
            times[mode].append((time.perf_counter() - start) / 10 * 1e3)
    f, i = np.array(times["frozen"]), np.array(times["inputs"])
    print(
        f"augmenter step ms: frozen {np.median(f):.2f}, backward(inputs=) {np.median(i):.2f}, "
        f"paired median inputs/frozen {np.median(i / f):.3f}"
    )


if __name__ == "__main__":
    main()
