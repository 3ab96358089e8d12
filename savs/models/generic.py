"""One adapter for any decoder-style image-text-to-text model (and causal text LM) that transformers loads.

Nothing here names a family: the heads are found by looking at the loaded model (``savs.models.discovery``), prompts
go through the model's own processor and chat template, and the shortcuts extraction takes (a shared prefix run once
from its KV cache, a pass stopped after the deepest layer asked for, several prompts padded into one batch) are used
only where this model, on a probe example, gives the same vectors with them as without (``savs.models.evidence``).
The five families of the paper (``qwen2_vl``, ``llava``, ``idefics3``, ``instructblip``, ``text``) are this adapter
plus a few declared differences each, in their own small modules.

Where a processor ships no chat template, the prompt is the plain default: one ``processor.image_token`` per image,
then the text, the tokenizer adding its own special tokens (BOS); a PaliGemma-style processor then adds its own.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from torch import nn
from transformers import BatchFeature

from savs.data.prompts import strip_image_markers
from savs.examples import Example
from savs.models.base import Adapter
from savs.models.discovery import HeadLayout, UnsupportedModelError, find_heads


class GenericAdapter(Adapter):
    """Any supported model: heads found by discovery, prompts by the processor, shortcuts decided by evidence.

    Class attributes a family subclass may declare (its differences from this default): ``family``, ``model_types``,
    ``auto_model``, ``processor_classes``, ``literal_image_markers``, ``single_image``, and ``supports_prefix_cache``
    (False: never cache a prefix, whatever the evidence, e.g. where the forward always needs the pixels).
    """

    family = "generic"
    model_types = ()  # any model type that ``savs.models.refusal`` does not rule out

    def __init__(self, model: nn.Module, processor, name: str, source: str | None = None) -> None:
        super().__init__(model, processor, name, source=source)
        self.layout: HeadLayout = find_heads(self.model, self.text_config)

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
        norm = self.layout.final_norm()
        if norm is None:
            raise NotImplementedError(f"no final norm found beside the decoder layers of {self.name}")
        return norm

    # ----- prompts ------------------------------------------------------------------------------------------------
    @property
    def chat_template(self) -> str | None:
        """The processor's (or its tokenizer's) chat template; None where neither ships one."""
        return getattr(self.processor, "chat_template", None) or getattr(self.tokenizer, "chat_template", None)

    def render(self, example: Example) -> str:
        """The chat template's prompt; without a template, the plain default (module docstring)."""
        if self.chat_template:
            return super().render(example)
        example = self.shown(example)
        token = getattr(self.processor, "image_token", None)
        if example.images and token is None:
            raise UnsupportedModelError(
                f"{self.name}: its processor has neither a chat template nor an image_token to place images with"
            )
        return (token or "") * len(example.images) + strip_image_markers(example.text, len(example.images))

    def encode(self, examples: Sequence[Example], padding_side: str = "left") -> BatchFeature:
        """As ``Adapter.encode``; a prompt without a chat template gets the tokenizer's special tokens (BOS)."""
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
