"""InstructBLIP (``Salesforce/instructblip-vicuna-7b``): a frozen ViT, an instruction-aware Q-Former and a Vicuna
decoder, as ported to transformers.

It has no chat template: the prompt is the benchmark's text itself (the authors' ``<image>\\n`` markers dropped), as
transformers' own InstructBLIP example prompts it. The processor puts the Q-Former's query tokens (one ``<image>``
placeholder each) before the text and also feeds the text to the Q-Former. One image per prompt: several are joined
side by side (``Adapter.shown``, BLINK's rule); no ICL (no template for several turns), hence no MTV either (whose
means come from ICL prompts): the paper reports InstructBLIP zero-shot only.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import BatchFeature, Cache

from savs.data.prompts import strip_image_markers
from savs.examples import Example
from savs.models.generic import GenericAdapter


class InstructBlipAdapter(GenericAdapter):
    """No chat template (the text alone) and one image per prompt; its forward always needs the pixels, so no
    KV-cached prompt prefix."""

    family = "instructblip"
    model_types = ("instructblip",)
    supports_prefix_cache = False
    single_image = True

    def render(self, example: Example) -> str:
        """The prompt text alone (no template), image markers dropped: the processor places the image."""
        example = self.shown(example)
        return strip_image_markers(example.text, len(example.images))

    def encode(self, examples: Sequence[Example], padding_side: str = "left") -> BatchFeature:
        """Query-token placeholders, then the tokenizer's own special tokens (Vicuna's BOS) and the text; the Q-Former's
        copy of the text; one image per example."""
        examples = [self.shown(e) for e in examples]
        if any(not e.images for e in examples):
            raise ValueError("InstructBLIP needs an image in every example; this batch has a text-only one")
        tok = self.tokenizer
        old_side, tok.padding_side = tok.padding_side, padding_side
        try:
            batch = self.processor(
                images=[e.pil_images()[0] for e in examples],
                text=[self.render(e) for e in examples],
                padding=True,
                return_tensors="pt",
            )
        finally:
            tok.padding_side = old_side
        return batch.to(self.device)

    def prefix_barrier_ids(self) -> set[int]:
        return {self.model.config.image_token_id}

    def forward(self, batch: dict, cache: Cache | None = None, use_cache: bool = False):
        """One forward pass, positions counted over unpadded tokens (as ``generate`` counts them): InstructBLIP's own
        forward numbers every column, so left padding (between the query tokens and the text) would shift them."""
        if "position_ids" not in batch:
            mask = batch["attention_mask"]
            batch = {
                **batch,
                "position_ids": (mask.long().cumsum(-1) - 1).clamp(min=0)[:, -batch["input_ids"].shape[1] :],
            }
        return super().forward(batch, cache=cache, use_cache=use_cache)
