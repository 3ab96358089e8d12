"""Idefics3 and SmolVLM (``HuggingFaceM4/Idefics3-8B-Llama3``, ``HuggingFaceTB/SmolVLM-*``)."""

from savs.models.generic import GenericAdapter


class Idefics3Adapter(GenericAdapter):
    """The generic adapter under the family's name (its identity, so caches and tables stay valid); the decoder at
    ``model.text_model`` is found like any other."""

    family = "idefics3"
    model_types = ("idefics3", "smolvlm")
