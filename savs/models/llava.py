"""LLaVA-1.5 and LLaVA-OneVision, as ported to transformers by llava-hf."""

from savs.models.base import Adapter
from savs.models.processors import NoVideoLlavaOnevisionProcessor


class LlavaAdapter(Adapter):
    """Vision tower -> projector -> image features spliced at ``<image>`` tokens of a Llama/Qwen2 decoder."""

    family = "llava"
    model_types = ("llava", "llava_onevision")
    processor_classes = {"llava_onevision": NoVideoLlavaOnevisionProcessor}
