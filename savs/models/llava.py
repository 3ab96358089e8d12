"""LLaVA-1.5 and LLaVA-OneVision, as ported to transformers by llava-hf."""

from collections.abc import Sequence
from typing import Any, ClassVar

from savs.examples import Example
from savs.models.anyres import ANYRES_MODEL_TYPES, processor_images
from savs.models.generic import GenericAdapter
from savs.models.processors import NoVideoLlavaOnevisionProcessor


class LlavaAdapter(GenericAdapter):
    """Vision tower -> projector -> image features spliced at ``<image>`` tokens of a Llama/Qwen2 decoder."""

    family = "llava"
    model_types = ("llava", "llava_onevision")
    processor_classes = {"llava_onevision": NoVideoLlavaOnevisionProcessor}
    # LLaVA-OneVision was trained, and run by the paper's authors (LLaVA-NeXT's "qwen_1_5" conversation), with this
    # system turn; the llava-hf chat template adds none by itself. (transformers' own conversion check uses it too.)
    system_prompts: ClassVar[dict[str, str]] = {"llava_onevision": "You are a helpful assistant."}
    # ``anyres_every_image`` (LLaVA-OneVision): anyres crops for every image of a multi-image prompt, as the authors'
    # LLaVA-NeXT code gave them (``savs.models.anyres``; ``load_model(..., options={"anyres_every_image": True})``, the
    # paper profile's ``model_options``). Off: transformers' rule. On, it is part of the identity (``GenericAdapter``).
    default_options: ClassVar[dict[str, Any]] = {"anyres_every_image": False}

    def set_options(self, options: dict[str, Any]) -> None:
        super().set_options(options)
        model_type = self.model.config.model_type
        if self.options["anyres_every_image"] and model_type not in ANYRES_MODEL_TYPES:
            raise ValueError(
                f"anyres_every_image applies to {', '.join(ANYRES_MODEL_TYPES)} models; {self.name!r} is {model_type!r}"
            )

    def system_turns(self) -> list[dict]:
        system = self.system_prompts.get(self.model.config.model_type)
        return [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []

    def processor_images(self, examples: Sequence[Example]) -> list:
        return processor_images(examples, self.options["anyres_every_image"])
