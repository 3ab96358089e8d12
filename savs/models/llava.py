"""LLaVA-1.5 and LLaVA-OneVision, as ported to transformers by llava-hf."""

from typing import ClassVar

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
    # Options of this family (name -> default; ``load_model(..., options={...})``, ``GenericAdapter.default_options``):
    # none yet. A non-default value enters the identity, so the default prompts' caches and tables stay valid.
    default_options: ClassVar[dict[str, object]] = {}

    def system_turns(self) -> list[dict]:
        system = self.system_prompts.get(self.model.config.model_type)
        return [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
