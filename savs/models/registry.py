"""The one registry of supported models: short name -> hub id and adapter family.

Code, Makefile, profiles and README all name models by these keys; any hub id or local directory of a
supported architecture works too (the family is read from its config).
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import AutoConfig

from savs.models.base import Adapter
from savs.models.idefics3 import Idefics3Adapter
from savs.models.llava import LlavaAdapter
from savs.models.mini import MiniAdapter
from savs.models.qwen2_vl import Qwen2VLAdapter
from savs.models.text import TextAdapter

ADAPTERS: tuple[type[Adapter], ...] = (Qwen2VLAdapter, LlavaAdapter, Idefics3Adapter, TextAdapter, MiniAdapter)


@dataclass(frozen=True)
class ModelSpec:
    """A named model: where it comes from (a hub id, or None for one built here from packaged parts)."""

    hub_id: str | None
    family: str
    note: str = ""


MODELS: dict[str, ModelSpec] = {
    "savs-mini": ModelSpec(None, "savs_mini", "embedded default: SmolLM2-135M + EfficientNet-Lite0, aligned projector"),
    "savs-mini-untrained": ModelSpec(None, "savs_mini", "savs-mini with its projector before alignment (ablation)"),
    "llava-ov-7b": ModelSpec("llava-hf/llava-onevision-qwen2-7b-ov-hf", "llava", "paper model"),
    "qwen2-vl-7b": ModelSpec("Qwen/Qwen2-VL-7B-Instruct", "qwen2_vl", "paper model"),
    "qwen2.5-vl-7b": ModelSpec("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_vl"),
    "llava-1.5-7b": ModelSpec("llava-hf/llava-1.5-7b-hf", "llava"),
    "idefics3-8b": ModelSpec("HuggingFaceM4/Idefics3-8B-Llama3", "idefics3"),
    "smolvlm-256m": ModelSpec("HuggingFaceTB/SmolVLM-256M-Instruct", "idefics3"),
    "smollm2-135m": ModelSpec("HuggingFaceTB/SmolLM2-135M-Instruct", "text"),
}


def supported_model_types() -> dict[str, str]:
    """``config.model_type`` -> family, over every adapter."""
    return {t: a.family for a in ADAPTERS for t in a.model_types}


def adapter_class(model_type: str) -> type[Adapter]:
    """The adapter for a ``config.model_type``; a clear error naming the supported ones otherwise."""
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    families = ", ".join(f"{a.family} ({'/'.join(a.model_types)})" for a in ADAPTERS)
    raise ValueError(f"unsupported model type {model_type!r}; supported families: {families}")


def resolve(name_or_path: str) -> str:
    """A registry name's hub id; anything else (hub id, local dir) unchanged."""
    spec = MODELS.get(name_or_path)
    return spec.hub_id if spec and spec.hub_id else name_or_path


def load_model(name_or_path: str, **kwargs) -> Adapter:
    """Load a model by registry name, hub id or local directory and wrap it in its family's adapter.

    Keyword arguments (``device``, ``dtype``, ``attn_implementation``, ...) go to ``from_pretrained``.
    """
    spec = MODELS.get(name_or_path)
    if spec is not None and spec.hub_id is None:
        return adapter_class(spec.family).from_pretrained(name_or_path, **kwargs)
    path = resolve(name_or_path)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"cannot load model {name_or_path!r} (resolved to {path!r}): it is neither a local model directory "
            f"nor reachable on the hub ({err.__class__.__name__}: {str(err).splitlines()[0]}). "
            f"Registry names: {', '.join(MODELS)}"
        ) from err
    adapter = adapter_class(config.model_type).from_pretrained(path, **kwargs)
    adapter.name = name_or_path
    return adapter
