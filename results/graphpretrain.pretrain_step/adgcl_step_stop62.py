"""Stop 62: AD-GCL pre-training speed and weights, to compare two checkouts.

Pre-trains the ``small`` preset's encoder (GIN 3 x 32) on the four pre-training domains for
STEPS steps of 128 graphs on one torch thread, prints the seconds and the last loss, and saves
the encoder's weights to OUT so two checkouts' weights can be compared with ``torch.equal``.
Stop 62 ran it alternately on a worktree of 18dabbf (before the change) and on 2bce843:

    git worktree add /tmp/old 18dabbf
    S=results/graphpretrain.pretrain_step/adgcl_step_stop62.py
    for i in 1 2 3; do
        PYTHONPATH=/tmp/old/src .venv/bin/python $S /tmp/o.pt 100
        PYTHONPATH=src .venv/bin/python $S /tmp/n.pt 100
    done
"""

from __future__ import annotations

import sys
import time

import torch

from provenml.graphpretrain.experiments import pretraining_corpus
from provenml.graphpretrain.model import new_encoder
from provenml.graphpretrain.pretrain import pretrain


def main() -> None:
    out, steps = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(1)
    corpus = pretraining_corpus(["social", "road", "citation", "molecules"], 1000, 0)
    torch.manual_seed(0)
    encoder = new_encoder(32, 3)
    start = time.perf_counter()
    report = pretrain(encoder, corpus, objective="adgcl", steps=steps, batch_size=128, seed=0)
    seconds = time.perf_counter() - start
    print(f"seconds {seconds:.2f} loss {report.losses[-1]:.6f} drop {report.drop_ratios[-1]:.6f}")
    torch.save(encoder.state_dict(), out)


if __name__ == "__main__":
    main()
