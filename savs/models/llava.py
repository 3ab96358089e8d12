"""LLaVA-1.5 and LLaVA-OneVision, as ported to transformers by llava-hf."""

from collections.abc import Sequence
from typing import ClassVar

from savs.examples import Example
from savs.models.anyres import IDENTITY_TAG, processor_images
from savs.models.base import Adapter
from savs.models.processors import NoVideoLlavaOnevisionProcessor


class LlavaAdapter(Adapter):
    """Vision tower -> projector -> image features spliced at ``<image>`` tokens of a Llama/Qwen2 decoder."""

    family = "llava"
    model_types = ("llava", "llava_onevision")
    processor_classes = {"llava_onevision": NoVideoLlavaOnevisionProcessor}
    # LLaVA-OneVision was trained, and run by the paper's authors (LLaVA-NeXT's "qwen_1_5" conversation), with this
    # system turn; the llava-hf chat template adds none by itself. (transformers' own conversion check uses it too.)
    system_prompts: ClassVar[dict[str, str]] = {"llava_onevision": "You are a helpful assistant."}
    # LLaVA-OneVision: anyres crops for every image of a multi-image prompt, as the authors' LLaVA-NeXT code gave them
    # (savs.models.anyres; a load option, ``load_model(..., anyres_every_image=True)``). Off: transformers' rule.
    anyres_every_image: bool = False

    def system_turns(self) -> list[dict]:
        system = self.system_prompts.get(self.model.config.model_type)
        return [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []

    def processor_images(self, examples: Sequence[Example]) -> list:
        return processor_images(examples, self.anyres_every_image)

    def identity_extra(self) -> str:
        return IDENTITY_TAG if self.anyres_every_image else ""
