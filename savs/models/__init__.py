"""Model adapters: one per family, one registry of named models, one ``load_model``."""

from savs.models.base import Adapter
from savs.models.registry import ADAPTERS, MODELS, ModelSpec, adapter_class, load_model

__all__ = ["ADAPTERS", "MODELS", "Adapter", "ModelSpec", "adapter_class", "load_model"]
