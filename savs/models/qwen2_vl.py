"""Qwen2-VL and Qwen2.5-VL (``Qwen/Qwen2-VL-7B-Instruct``, ``Qwen/Qwen2.5-VL-7B-Instruct``)."""

from savs.models.generic import GenericAdapter
from savs.models.processors import NoVideoQwen2_5_VLProcessor, NoVideoQwen2VLProcessor


class Qwen2VLAdapter(GenericAdapter):
    """Multimodal RoPE positions rule out shared-prefix caching (declared; the evidence agrees); literal markers."""

    family = "qwen2_vl"
    model_types = ("qwen2_vl", "qwen2_5_vl")
    supports_prefix_cache = False
    literal_image_markers = True  # the authors' Qwen2-VL prompts kept "<image>\n" as text after the image pads
    processor_classes = {"qwen2_vl": NoVideoQwen2VLProcessor, "qwen2_5_vl": NoVideoQwen2_5_VLProcessor}
