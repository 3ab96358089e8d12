"""The one registry of supported models: short name -> hub id and adapter family.

Code, Makefile, profiles and README all name models by these keys; any hub id or local directory of a
supported architecture works too: a model type one of the declared families handles gets that family's adapter,
any other type the generic adapter (``savs.models.generic``), unless ``refusal`` rules it out with a reason.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from huggingface_hub import constants as hf_constants
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
)

from savs.cache import build_once, default_cache_dir
from savs.lazy import load_object
from savs.models.base import Adapter
from savs.models.discovery import UnsupportedModelError, config_refusal, find_heads, meta_model
from savs.models.generic import GenericAdapter
from savs.models.idefics3 import Idefics3Adapter
from savs.models.instructblip import InstructBlipAdapter
from savs.models.llava import LlavaAdapter
from savs.models.qwen2_vl import Qwen2VLAdapter
from savs.models.text import TextAdapter

ADAPTERS: tuple[type[Adapter], ...] = (
    Qwen2VLAdapter,
    LlavaAdapter,
    Idefics3Adapter,
    InstructBlipAdapter,
    TextAdapter,
)
# Adapters defined above this package, by model type (= family), named "module:Class" and imported on first use, so
# that savs.models imports nothing above it: savs-mini's adapter builds on savs.models.base.
EXTERNAL_ADAPTERS: dict[str, str] = {"savs_mini": "savs.mini.adapter:MiniAdapter"}
# What builds a ``random:<family>`` model (random weights, for tests and dry runs; ``savs.testing``).
RANDOM_BUILDER = "savs.testing.random_models:build_random_model"


@dataclass(frozen=True)
class ModelSpec:
    """A named model: where it comes from (a hub id, or None for one built here from packaged parts)."""

    hub_id: str | None
    family: str
    note: str = ""
    single_image: bool = False  # trained on one image per prompt: several are shown side by side (Adapter.shown)


MODELS: dict[str, ModelSpec] = {
    "savs-mini": ModelSpec(None, "savs_mini", "embedded default: SmolLM2-135M + EfficientNet-Lite0, aligned projector"),
    "savs-mini-untrained": ModelSpec(None, "savs_mini", "savs-mini with its projector before alignment (ablation)"),
    "llava-ov-7b": ModelSpec("llava-hf/llava-onevision-qwen2-7b-ov-hf", "llava", "paper model"),
    "qwen2-vl-7b": ModelSpec("Qwen/Qwen2-VL-7B-Instruct", "qwen2_vl", "paper model"),
    "qwen2.5-vl-7b": ModelSpec("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_vl"),
    "llava-1.5-7b": ModelSpec("llava-hf/llava-1.5-7b-hf", "llava", "paper zero-shot row", single_image=True),
    "instructblip-7b": ModelSpec("Salesforce/instructblip-vicuna-7b", "instructblip", "paper zero-shot row"),
    "idefics3-8b": ModelSpec("HuggingFaceM4/Idefics3-8B-Llama3", "idefics3"),
    "smolvlm-256m": ModelSpec("HuggingFaceTB/SmolVLM-256M-Instruct", "idefics3"),
    "smollm2-135m": ModelSpec("HuggingFaceTB/SmolLM2-135M-Instruct", "text"),
    "smolvlm2-2b": ModelSpec("HuggingFaceTB/SmolVLM2-2.2B-Instruct", "idefics3"),
}

# Current checkpoints the generic adapter runs (every model type here is one whose random-weight model the architecture
# sweep, ``savs.testing.architectures``, extracts against an independent reference): the names a user would type.
GENERIC_MODELS: dict[str, ModelSpec] = {
    "qwen3-vl-8b": ModelSpec("Qwen/Qwen3-VL-8B-Instruct", "generic", "qwen3_vl: multimodal RoPE"),
    "gemma-3-12b": ModelSpec("google/gemma-3-12b-it", "generic", "gemma3: sliding and global layers"),
    "internvl3.5-8b": ModelSpec("OpenGVLab/InternVL3_5-8B-HF", "generic", "internvl"),
    "llava-next-7b": ModelSpec("llava-hf/llava-v1.6-mistral-7b-hf", "generic", "llava_next: anyres crops"),
    "idefics2-8b": ModelSpec("HuggingFaceM4/idefics2-8b", "generic", "idefics2"),
    "paligemma2-3b": ModelSpec("google/paligemma2-3b-mix-224", "generic", "paligemma: no chat template", True),
}


def registry() -> dict[str, ModelSpec]:
    """Every named model: the declared families' (``MODELS``) and the generic adapter's (``GENERIC_MODELS``)."""
    return {**MODELS, **GENERIC_MODELS}


def adapter_class(model_type: str) -> type[Adapter]:
    """The adapter for a ``config.model_type``; a clear error naming the supported ones otherwise."""
    declared = _declared(model_type)
    if declared is not None:
        return declared
    families = ", ".join(f"{a.family} ({'/'.join(a.model_types)})" for a in ADAPTERS)
    raise ValueError(
        f"unsupported model type {model_type!r}; supported families: {families}, {', '.join(EXTERNAL_ADAPTERS)}"
    )


def family_adapter(family: str) -> type[Adapter]:
    """The adapter of a family (a ``ModelSpec.family``)."""
    if family == GenericAdapter.family:
        return GenericAdapter
    if family in EXTERNAL_ADAPTERS:
        return load_object(EXTERNAL_ADAPTERS[family])
    for adapter in ADAPTERS:
        if adapter.family == family:
            return adapter
    known = [a.family for a in ADAPTERS] + list(EXTERNAL_ADAPTERS)
    raise ValueError(f"unknown family {family!r}; known: {', '.join(known)}")


def spec_of(name_or_path: str) -> ModelSpec | None:
    """The registry's spec of a model given by its registry name or by its hub id (one model, one way of loading
    it, one cache); None for anything else."""
    models = registry()
    if name_or_path in models:
        return models[name_or_path]
    return next((spec for spec in models.values() if spec.hub_id == name_or_path), None)


def resolve(name_or_path: str) -> str:
    """A registry name's hub id; anything else (hub id, local dir) unchanged."""
    spec = registry().get(name_or_path)
    return spec.hub_id if spec and spec.hub_id else name_or_path


# ----- any model type ----------------------------------------------------------------------------------------------
def _declared(model_type: str) -> type[Adapter] | None:
    """The adapter written for a model type (a family of this package's or an external one), or None."""
    if model_type in EXTERNAL_ADAPTERS:
        return load_object(EXTERNAL_ADAPTERS[model_type])
    return next((a for a in ADAPTERS if model_type in a.model_types), None)


def model_adapter(config) -> type[Adapter]:
    """The adapter class for a config: its declared family's, else the generic adapter (image-text-to-text types),
    else the text adapter (causal LMs). Raises ``UnsupportedModelError`` with ``refusal``'s reason."""
    declared = _declared(config.model_type)
    if declared is not None:  # a family written for its type: no need to build its module tree first
        return declared
    reason = refusal(config)
    if reason is not None:
        raise UnsupportedModelError(f"model type {config.model_type!r} is not supported: {reason}")
    return GenericAdapter if config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES else TextAdapter


_STRUCTURAL: dict[str, str | None] = {}  # refusal's verdict per config (building the module tree takes a moment)


def _structural_refusal(config) -> str | None:
    """Why discovery finds no heads in the module tree a config builds (on the meta device), or None."""
    key = f"{config.model_type}:{config.to_json_string(use_diff=True)}"
    if key not in _STRUCTURAL:
        itt = config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
        try:
            model = meta_model(config, AutoModelForImageTextToText if itt else AutoModelForCausalLM)
            find_heads(model, config.get_text_config(decoder=True))
            _STRUCTURAL[key] = None
        except UnsupportedModelError as err:
            _STRUCTURAL[key] = str(err)
        except Exception as err:  # noqa: BLE001 - transformers' own reason is what the user needs
            first = str(err).splitlines()[0] if str(err) else ""
            _STRUCTURAL[key] = f"transformers cannot build it from its config ({type(err).__name__}: {first})"
    return _STRUCTURAL[key]


def refusal(config) -> str | None:
    """None where ``load_model`` supports a model of this config; else the one-line reason it refuses it.

    Decided from the config alone: encoder-decoders are refused outright; otherwise the model's module tree is built
    on the meta device (no weights) and the heads are looked for as on a loaded model (``savs.models.discovery``).
    """
    model_type = config.model_type
    if model_type in EXTERNAL_ADAPTERS:
        return None
    known = model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES or model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if not known and _declared(model_type) is None:
        return "neither an image-text-to-text nor a causal language model type of transformers"
    reason = config_refusal(config)
    if reason is not None:
        return reason
    return _structural_refusal(config)


# ----- the hub without a network -------------------------------------------------------------------
# With no network the hub client retries every request for tens of seconds before giving the answer the local
# hub cache gives at once; a quick probe, asked once, decides between the two.
HUB_PROBE_TIMEOUT_S = 2.0


def _connects(host: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


@functools.cache
def hub_reachable() -> bool:
    """Whether the hub's endpoint (``HF_ENDPOINT``) accepts a TCP connection within ``HUB_PROBE_TIMEOUT_S``.

    Asked once per process. Behind a proxy the answer is yes without asking (the client goes through the proxy,
    where a direct connection may fail). The probe runs in a daemon thread, so a hung DNS lookup cannot outlast
    the timeout.
    """
    url = urlsplit(hf_constants.ENDPOINT)
    if urllib.request.getproxies().get(url.scheme):
        return True
    port = url.port or (443 if url.scheme == "https" else 80)
    answer: list[bool] = []
    probe = threading.Thread(
        target=lambda: answer.append(_connects(url.hostname or "", port, HUB_PROBE_TIMEOUT_S)), daemon=True
    )
    probe.start()
    probe.join(HUB_PROBE_TIMEOUT_S)
    return answer == [True]


@contextlib.contextmanager
def _hub_offline(offline: bool) -> Iterator[None]:
    """Within the block, when ``offline``, the hub client (and transformers) read the local hub cache only.

    Offline mode is the one switch that reaches every file a load reads (config, weights, processor).
    """
    before = hf_constants.HF_HUB_OFFLINE
    hf_constants.HF_HUB_OFFLINE = before or offline
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE = before


RANDOM_SCHEME = "random:"
_OLD_SCHEME = "tiny:"  # the scheme's name before it said what the models are


def random_model_dir(name: str, cache_dir: str | Path | None = None) -> Path:
    """The directory of ``random:<family>`` (a random-weight model of ``RANDOM_BUILDER``, or ``random:llava-ov-7b``
    for a stand-in of a paper checkpoint), built on first use under ``<cache>/random/``: into a temporary sibling,
    then renamed, so processes building it at once never read a half-written model."""
    out = Path(cache_dir or default_cache_dir()) / "random" / name.removeprefix(RANDOM_SCHEME)
    return build_once(out, lambda tmp: load_object(RANDOM_BUILDER)(out.name, tmp))  # seeded: every process alike


def load_model(name_or_path: str, cache_dir: str | Path | None = None, **kwargs) -> Adapter:
    """Load a model by registry name, hub id, local directory or ``random:<family>`` (random weights, for tests) and
    wrap it in its family's adapter.

    Keyword arguments (``device``, ``dtype``, ``attn_implementation``, ...) go to ``from_pretrained``. A hub id
    is read from the local hub cache alone when ``hub_reachable`` finds no network. ``cache_dir``: where
    ``random:`` models are built (default: the activation cache's directory). ``options``: the family's load options
    (``GenericAdapter.default_options``, e.g. LLaVA-OneVision's ``anyres_every_image``).
    """
    if name_or_path.startswith(RANDOM_SCHEME):
        path = str(random_model_dir(name_or_path, cache_dir))
        adapter = load_model(path, **kwargs)
        adapter.name = name_or_path
        return adapter
    if name_or_path.startswith(_OLD_SCHEME):
        raise ValueError(f"{name_or_path!r}: random-weight models are now named {RANDOM_SCHEME}<family>")
    spec = spec_of(name_or_path)
    if spec is not None and spec.hub_id is None:
        return family_adapter(spec.family).from_pretrained(name_or_path, **kwargs)
    path = resolve(name_or_path)
    offline = not hf_constants.HF_HUB_OFFLINE and not Path(path).is_dir() and not hub_reachable()
    with _hub_offline(offline):
        try:
            config = AutoConfig.from_pretrained(path)
        except (OSError, ValueError) as err:
            searched = "no network was found, so only the local hub cache was searched; " if offline else ""
            raise ValueError(
                f"cannot load model {name_or_path!r} (resolved to {path!r}): it is neither a local model directory "
                f"nor reachable on the hub ({searched}{err.__class__.__name__}: {str(err).splitlines()[0]}). "
                f"Registry names: {', '.join(registry())}"
            ) from err
        adapter = model_adapter(config).from_pretrained(path, **kwargs)
    adapter.name = name_or_path
    if spec is not None and spec.single_image:
        adapter.single_image = True
    if isinstance(adapter, GenericAdapter):
        adapter.evidence  # noqa: B018 - decided on load (memoised per model identity), not inside a first extraction
    return adapter
