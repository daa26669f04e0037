"""Stop 58: which transformers models the torch frontend compiles, tried as a user would.

Builds each model from its config with small sizes and random weights (nothing is
downloaded), runs it eagerly, compiles it (``tuning=False``, one thread) and prints ``OK`` with
the largest difference from eager, or the error the compile raised. Text models take token
ids and a padded attention mask; vision models one 32x32 image; audio models 1,600 samples.

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/transformers_probe_stop58.py \
        [NAME ...]
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import transformers as tr

import provenml.compiler as pc

LAYERS = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4}
BERT_LIKE = {**LAYERS, "intermediate_size": 128}
WAVE = {
    **BERT_LIKE,
    "conv_dim": [32, 32],
    "conv_stride": [5, 2],
    "conv_kernel": [10, 3],
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
}
SEQ2SEQ = {"encoder_layers": 2, "decoder_layers": 2, "d_model": 64, "encoder_ffn_dim": 128}
SEQ2SEQ |= {"encoder_attention_heads": 4, "decoder_attention_heads": 4, "decoder_ffn_dim": 128}
GPT_SIZES = {"n_layer": 2, "n_embd": 64, "n_head": 4, "n_positions": 64}


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def ids_and_mask() -> tuple[torch.Tensor, ...]:
    ids = torch.randint(1, 500, (2, 16), generator=_generator())
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 10:] = 0
    return ids, mask


def image() -> tuple[torch.Tensor, ...]:
    return (torch.randn(1, 3, 32, 32, generator=_generator()),)


def wave() -> tuple[torch.Tensor, ...]:
    return (torch.randn(1, 1600, generator=_generator()),)


def mel() -> tuple[torch.Tensor, ...]:
    return (torch.randn(1, 16, 32, generator=_generator()),)


def clip_ids() -> tuple[torch.Tensor, ...]:
    return (torch.randint(1, 400, (2, 16), generator=_generator()),)


TEXT = ("input_ids", "attention_mask")
# name: (model class stem, config sizes, forward's keyword names, inputs)
SPECS: dict[str, tuple[str, dict[str, Any], tuple[str, ...], Callable[[], tuple]]] = {
    "opt": (
        "OPT",
        {**LAYERS, "ffn_dim": 128, "word_embed_proj_dim": 64, "max_position_embeddings": 64},
        TEXT,
        ids_and_mask,
    ),
    "bloom": ("Bloom", {"n_layer": 2, "hidden_size": 64, "n_head": 4}, TEXT, ids_and_mask),
    "gpt_neox": ("GPTNeoX", BERT_LIKE, TEXT, ids_and_mask),
    "falcon": ("Falcon", LAYERS, TEXT, ids_and_mask),
    "phi": ("Phi", BERT_LIKE, TEXT, ids_and_mask),
    "phi3": ("Phi3", {**BERT_LIKE, "pad_token_id": 0}, TEXT, ids_and_mask),
    "gemma": ("Gemma", {**BERT_LIKE, "num_key_value_heads": 2, "head_dim": 16}, TEXT, ids_and_mask),
    "qwen2": ("Qwen2", {**BERT_LIKE, "num_key_value_heads": 2}, TEXT, ids_and_mask),
    "stablelm": ("StableLm", {**BERT_LIKE, "num_key_value_heads": 4}, TEXT, ids_and_mask),
    "olmo": ("Olmo", BERT_LIKE, TEXT, ids_and_mask),
    "deberta_v2": ("DebertaV2", BERT_LIKE, TEXT, ids_and_mask),
    "xlm_roberta": ("XLMRoberta", BERT_LIKE, TEXT, ids_and_mask),
    "electra": ("Electra", {**BERT_LIKE, "embedding_size": 32}, TEXT, ids_and_mask),
    "mpnet": ("MPNet", BERT_LIKE, TEXT, ids_and_mask),
    "mobilebert": (
        "MobileBert",
        {**BERT_LIKE, "embedding_size": 32, "intra_bottleneck_size": 32, "true_hidden_size": 32},
        TEXT,
        ids_and_mask,
    ),
    "squeezebert": ("SqueezeBert", {**BERT_LIKE, "embedding_size": 64}, TEXT, ids_and_mask),
    "bart_encoder": ("Bart", SEQ2SEQ, TEXT, ids_and_mask),
    "gptj": ("GPTJ", {**GPT_SIZES, "rotary_dim": 8}, TEXT, ids_and_mask),
    "codegen": ("CodeGen", {**GPT_SIZES, "rotary_dim": 8}, TEXT, ids_and_mask),
    "gpt_bigcode": ("GPTBigCode", GPT_SIZES, TEXT, ids_and_mask),
    "funnel": (
        "Funnel",
        {"block_sizes": [1, 1], "d_model": 64, "n_head": 4, "d_head": 16, "d_inner": 128},
        TEXT,
        ids_and_mask,
    ),
    "longformer": ("Longformer", {**BERT_LIKE, "attention_window": 8}, TEXT, ids_and_mask),
    "clip_text": ("CLIPText", {**BERT_LIKE, "max_position_embeddings": 32}, TEXT[:1], clip_ids),
    "deit": ("DeiT", {**BERT_LIKE, "image_size": 32, "patch_size": 8}, ("pixel_values",), image),
    "beit": (
        "Beit",
        {**BERT_LIKE, "image_size": 32, "patch_size": 8, "use_relative_position_bias": True},
        ("pixel_values",),
        image,
    ),
    "dinov2": (
        "Dinov2",
        {**BERT_LIKE, "image_size": 32, "patch_size": 8},
        ("pixel_values",),
        image,
    ),
    "clip_vision": (
        "CLIPVision",
        {**BERT_LIKE, "image_size": 32, "patch_size": 8},
        ("pixel_values",),
        image,
    ),
    "siglip_vision": (
        "SiglipVision",
        {**BERT_LIKE, "image_size": 32, "patch_size": 8},
        ("pixel_values",),
        image,
    ),
    "segformer": (
        "Segformer",
        {"num_encoder_blocks": 2, "depths": [1, 1], "sr_ratios": [2, 1], "hidden_sizes": [16, 32]}
        | {"num_attention_heads": [1, 2], "patch_sizes": [7, 3], "strides": [4, 2]}
        | {"mlp_ratios": [2, 2]},
        ("pixel_values",),
        image,
    ),
    "mobilenet_v1": (
        "MobileNetV1",
        {"image_size": 32, "depth_multiplier": 0.25},
        ("pixel_values",),
        image,
    ),
    "mobilenet_v2": (
        "MobileNetV2",
        {"image_size": 32, "depth_multiplier": 0.35},
        ("pixel_values",),
        image,
    ),
    "efficientnet": (
        "EfficientNet",
        {"image_size": 32, "width_coefficient": 0.25, "depth_coefficient": 0.2},
        ("pixel_values",),
        image,
    ),
    "regnet": (
        "RegNet",
        {"hidden_sizes": [16, 32], "depths": [1, 1], "groups_width": 8, "embedding_size": 16},
        ("pixel_values",),
        image,
    ),
    "resnet": (
        "ResNet",
        {"hidden_sizes": [16, 32], "depths": [1, 1], "embedding_size": 16},
        ("pixel_values",),
        image,
    ),
    "poolformer": (
        "PoolFormer",
        {"num_encoder_blocks": 2, "depths": [1, 1], "hidden_sizes": [16, 32]}
        | {"patch_sizes": [7, 3], "strides": [4, 2], "padding": [2, 1]},
        ("pixel_values",),
        image,
    ),
    "levit": (
        "Levit",
        {"image_size": 32, "hidden_sizes": [32, 48, 64], "num_attention_heads": [1, 2, 2]}
        | {"depths": [1, 1, 1], "key_dim": [8, 8, 8]},
        ("pixel_values",),
        image,
    ),
    "convnextv2": (
        "ConvNextV2",
        {"num_stages": 2, "hidden_sizes": [16, 32], "depths": [1, 1], "image_size": 32},
        ("pixel_values",),
        image,
    ),
    "wav2vec2": ("Wav2Vec2", WAVE, ("input_values",), wave),
    "hubert": ("Hubert", WAVE, ("input_values",), wave),
    "wavlm": ("WavLM", WAVE, ("input_values",), wave),
    "whisper_encoder": (
        "Whisper",
        {**SEQ2SEQ, "num_mel_bins": 16, "max_source_positions": 16},
        ("input_features",),
        mel,
    ),
}


class LastHidden(nn.Module):
    """The backbone's last hidden states, its inputs passed by keyword."""

    def __init__(self, backbone: nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.backbone = backbone
        self.names = names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.backbone(**dict(zip(self.names, inputs, strict=True))).last_hidden_state


def build(name: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    stem, sizes, names, inputs = SPECS[name]
    config = getattr(tr, f"{stem}Config")(**({"vocab_size": 500} if names == TEXT else {}), **sizes)
    torch.manual_seed(0)
    backbone = getattr(tr, f"{stem}Model")(config).eval()
    if stem in ("Bart", "Whisper"):
        backbone = backbone.get_encoder()
    return LastHidden(backbone, names).eval(), inputs()


def main() -> None:
    warnings.filterwarnings("ignore")
    for name in sys.argv[1:] or list(SPECS):
        start = time.perf_counter()
        try:
            model, inputs = build(name)
        except Exception as exc:  # a config these sizes do not build: reported, not compiled
            print(f"{name}: config did not build ({type(exc).__name__}: {str(exc)[:120]})")
            continue
        try:
            with torch.no_grad():
                reference = model(*inputs)
            compiled = pc.compile(model, inputs, tuning=False, threads=1)
            error = float((compiled(*inputs) - reference).abs().max())
            verdict = f"OK, max difference from eager {error:.1e}"
        except Exception as exc:  # the compile's own error is the finding
            verdict = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        print(f"{name}: {verdict} ({time.perf_counter() - start:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
