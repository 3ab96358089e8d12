"""One adapter for any decoder-style image-text-to-text model (and causal text LM) that transformers loads.

Nothing here names a family: the heads are found by looking at the loaded model (``savs.models.discovery``), prompts
go through the model's own processor and chat template, and the shortcuts extraction takes (a shared prefix run once
from its KV cache, a pass stopped after the deepest layer asked for, several prompts padded into one batch) are used
only where this model, on a probe example, gives the same vectors with them as without (``savs.models.evidence``).
The five families of the paper (``qwen2_vl``, ``llava``, ``idefics3``, ``instructblip``, ``text``) are this adapter
plus a few declared differences each, in their own small modules.

Where a processor ships no chat template, the prompt is the plain default: one ``processor.image_token`` per image
(none where the processor places the images itself, as GIT's, BLIP-2's and PaliGemma's do), then the text, the
tokenizer adding its own special tokens (BOS).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any, ClassVar

from PIL import Image
from torch import nn
from transformers import BatchFeature

from savs.data.prompts import strip_image_markers
from savs.examples import Example
from savs.models.base import Adapter
from savs.models.discovery import HeadLayout, find_heads
from savs.models.processors import no_video_processor


class GenericAdapter(Adapter):
    """Any supported model: heads found by discovery, prompts by the processor, shortcuts decided by evidence.

    Class attributes a family subclass may declare (its differences from this default): ``family``, ``model_types``,
    ``auto_model``, ``processor_classes``, ``literal_image_markers``, ``single_image``, and ``supports_prefix_cache``
    (False: never cache a prefix, whatever the evidence, e.g. where the forward always needs the pixels).
    """

    family = "generic"
    model_types = ()  # any model type that ``savs.models.refusal`` does not rule out
    # Per-family options, name -> default (e.g. how a family's processor lays out several images): a family subclass
    # declares them and reads ``self.options``; ``load_model(..., options={...})`` sets them. A value other than the
    # default is part of the model's identity (it changes the vectors), so caches and saved SAVs keep them apart.
    default_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, model: nn.Module, processor, name: str, source: str | None = None) -> None:
        super().__init__(model, processor, name, source=source)
        self.layout: HeadLayout = find_heads(self.model, self.text_config)
        self.options: dict[str, Any] = dict(self.default_options)

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, options: dict[str, Any] | None = None, **kwargs) -> GenericAdapter:
        """``Adapter.from_pretrained``, then the family's ``options`` (see ``default_options``)."""
        adapter = super().from_pretrained(name_or_path, **kwargs)
        adapter.set_options(options or {})
        return adapter

    @classmethod
    def load_processor(cls, name_or_path: str, model_type: str):
        """The family's processor (``Adapter.load_processor``); where that fails or comes back without an image
        processor (``AutoProcessor`` falls back to the bare tokenizer when a video processor cannot be built: it needs
        torchvision), the type's processor without its video processor (SAVs feeds no video)."""
        try:
            processor = super().load_processor(name_or_path, model_type)
        except Exception as err:  # noqa: BLE001 - retried below; raised again where no retry applies
            processor, error = None, err
        if processor is not None and hasattr(processor, "image_processor"):
            return processor
        no_video = no_video_processor(model_type)
        if no_video is None:
            if processor is None:
                raise error
            return processor
        return no_video.from_pretrained(name_or_path)

    def set_options(self, options: dict[str, Any]) -> None:
        """Set family options by name; an unknown name is an error, not ignored."""
        unknown = sorted(set(options) - set(self.default_options))
        if unknown:
            known = ", ".join(self.default_options) or "none"
            raise ValueError(f"unknown options {unknown} for the {self.family} adapter; its options: {known}")
        self.options = {**self.default_options, **options}
        self.__dict__.pop("identity", None)  # the identity includes the options

    def identity_extra(self) -> str:
        changed = {k: v for k, v in self.options.items() if v != self.default_options[k]}
        return f"options:{json.dumps(changed, sort_keys=True)}" if changed else ""

    # ----- geometry: what discovery found -----------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.layout.layers)

    @property
    def head_layers(self) -> tuple[int, ...]:
        return self.layout.head_layers

    @property
    def n_heads(self) -> int:
        return self.layout.n_heads

    @property
    def head_dim(self) -> int:
        return self.layout.head_dim

    def layers(self) -> nn.ModuleList:
        return self.layout.layers

    def o_proj(self, layer: int) -> nn.Module:
        try:
            return self.layout.o_projs[layer]
        except KeyError:
            raise ValueError(
                f"decoder layer {layer} of {self.name} has no softmax-attention heads; layers with heads: "
                f"{list(self.head_layers)}"
            ) from None

    def final_norm(self) -> nn.Module:
        """The decoder's final norm; where it has none (a post-norm BERT-style decoder: GIT, BLIP), its last layer,
        whose output is then what the LM head reads."""
        norm = self.layout.final_norm()
        return self.layout.layers[-1] if norm is None else norm

    # ----- prompts ------------------------------------------------------------------------------------------------
    @property
    def chat_template(self) -> str | None:
        """The processor's chat template (a text model's processor is its tokenizer); None where it ships none (a
        tokenizer's own template, where a processor has none, knows nothing of images)."""
        return getattr(self.processor, "chat_template", None)

    def render(self, example: Example) -> str:
        """The chat template's prompt; without a template, the plain default (module docstring)."""
        if self.chat_template:
            return super().render(example)
        example = self.shown(example)
        token = "" if self.places_images_itself else self._image_token
        return token * len(example.images) + strip_image_markers(example.text, len(example.images))

    @property
    def _image_token(self) -> str:
        token = getattr(self.processor, "image_token", None) or ""
        return getattr(token, "content", token)  # BLIP-2's is an AddedToken

    @functools.cached_property
    def places_images_itself(self) -> bool:
        """Whether the processor puts an image's placeholder tokens in by itself (GIT, BLIP-2, PaliGemma) when the
        text has none: then a template-less prompt carries no placeholder. Asked of the processor with one probe."""
        token = self._image_token
        if not token:
            return True
        image = Image.new("RGB", (32, 32))
        try:
            ids = self.processor(text=["x"], images=[[image]], return_tensors="pt")["input_ids"]
        except (ValueError, TypeError, IndexError):  # it wants the placeholder in the text
            return False
        return bool((ids == self.tokenizer.convert_tokens_to_ids(token)).any())

    def encode(self, examples: Sequence[Example], padding_side: str = "left") -> BatchFeature:
        """As ``Adapter.encode``; a prompt without a chat template gets the tokenizer's special tokens (BOS)."""
        if any(e.images for e in examples) and not hasattr(self.processor, "image_processor"):
            raise ValueError(
                f"{self.name}: its processor ({type(self.processor).__name__}) has no image processor, so it cannot "
                "take images (AutoProcessor may have fallen back to the bare tokenizer: is torchvision missing?)"
            )
        if self.chat_template:
            return super().encode(examples, padding_side)
        return self._encode(examples, padding_side, add_special_tokens=True)

    # ----- shortcuts, decided by evidence -------------------------------------------------------------------------
    @functools.cached_property
    def evidence(self) -> dict:
        """Whether each shortcut gives this model's vectors unchanged (``savs.models.evidence``), memoised on disk."""
        from savs.models.evidence import shortcut_evidence  # imports extraction, which imports this package

        return shortcut_evidence(self)

    @property
    def prefix_cache_ok(self) -> bool:
        return self.supports_prefix_cache and self.evidence["prefix_cache"]

    @property
    def early_stop_ok(self) -> bool:
        return self.evidence["early_stop"]

    @property
    def padding_ok(self) -> bool:
        return self.evidence["padding"]
