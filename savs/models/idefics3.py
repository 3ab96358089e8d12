"""Idefics3 and SmolVLM (``HuggingFaceM4/Idefics3-8B-Llama3``, ``HuggingFaceTB/SmolVLM-*``)."""

from savs.models.generic import GenericAdapter


class Idefics3Adapter(GenericAdapter):
    """Same recipe as LLaVA, but the decoder lives at ``model.text_model``."""

    family = "idefics3"
    model_types = ("idefics3", "smolvlm")
