"""Processors for the families whose stock transformers processor insists on a video processor.

Qwen2-VL, Qwen2.5-VL and LLaVA-OneVision processors refuse to construct without a video processor, and
those need torchvision, which has no build beside the pinned CPU torch. SAVs never feeds video, so these
subclasses pass none. The adapters load them directly (they read the stock checkpoints' files too), and
registering them with ``AutoProcessor`` lets directories saved with them load through the Auto classes.
``no_video_processor`` makes (and registers) the same subclass for any other model type, for the generic adapter and
the random-type zoo (`savs.testing.random_types`), which build and register the same class per processor.
"""

import inspect
from typing import Any

import transformers
from transformers import (
    CONFIG_MAPPING,
    AutoProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionProcessor,
    ProcessorMixin,
    Qwen2_5_VLConfig,
    Qwen2_5_VLProcessor,
    Qwen2VLConfig,
    Qwen2VLProcessor,
)


class NoVideoQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2-VL processor without the (torchvision-only) video processor."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class NoVideoQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL processor without the (torchvision-only) video processor."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class NoVideoLlavaOnevisionProcessor(LlavaOnevisionProcessor):
    """LLaVA-OneVision processor without the (torchvision-only) video processor.

    Every parameter is spelled out: `ProcessorMixin` saves and reloads only what `__init__` names.
    """

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        num_image_tokens=None,
        vision_feature_select_strategy=None,
        chat_template=None,
        image_token="<image>",
        video_token="<video>",
        vision_aspect_ratio="anyres_max_9",
        **kwargs,
    ):
        super().__init__(
            image_processor,
            tokenizer,
            None,
            num_image_tokens=num_image_tokens,
            vision_feature_select_strategy=vision_feature_select_strategy,
            chat_template=chat_template,
            image_token=image_token,
            video_token=video_token,
            vision_aspect_ratio=vision_aspect_ratio,
            **kwargs,
        )


AutoProcessor.register(Qwen2VLConfig, NoVideoQwen2VLProcessor, exist_ok=True)
AutoProcessor.register(Qwen2_5_VLConfig, NoVideoQwen2_5_VLProcessor, exist_ok=True)
AutoProcessor.register(LlavaOnevisionConfig, NoVideoLlavaOnevisionProcessor, exist_ok=True)


# Base class -> its no-video class; the hand-written ones above first, so that folders saved with them keep their
# class names (and load back through `AutoProcessor`).
_NO_VIDEO: dict[type, type] = {
    Qwen2VLProcessor: NoVideoQwen2VLProcessor,
    Qwen2_5_VLProcessor: NoVideoQwen2_5_VLProcessor,
    LlavaOnevisionProcessor: NoVideoLlavaOnevisionProcessor,
}


def _drop_video_shim(processor_class: type) -> type:
    """A class for the MRO between ``processor_class`` and ``ProcessorMixin``: ``processor_class.__init__`` hands
    ``ProcessorMixin`` its sub-processors positionally in its own order, video processor included (first, for
    LLaVA-NeXT-Video and Video-LLaVA) or by keyword (Gemma 4, Dots3); the shim names them by that order, drops the
    video processor, and leaves ``self.video_processor = None`` (MiniCPM-V's methods read it)."""
    attributes = ProcessorMixin.get_attributes.__func__(processor_class)  # the base's order, video processor in it

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(attributes):
            raise TypeError(f"{processor_class.__name__} passed {len(args)} sub-processors; it has {attributes}")
        kwargs.update(zip(attributes, args, strict=False))
        kwargs.pop("video_processor", None)
        ProcessorMixin.__init__(self, **kwargs)
        self.video_processor = None

    return type("_DropVideoProcessor", (ProcessorMixin,), {"__init__": __init__})


def no_video_subclass(processor_class: type) -> type:
    """``processor_class`` without its video processor: a subclass whose ``__init__`` takes every other argument and
    passes ``video_processor=None`` (the class itself where it takes no video processor). One class per base, so
    the adapter and the random-type zoo build and register the same one."""
    params = inspect.signature(processor_class.__init__).parameters
    if "video_processor" not in params:
        return processor_class
    if processor_class not in _NO_VIDEO:
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        names = [n for n, p in params.items() if n not in ("self", "video_processor") and p.kind in kinds]
        defaults = {n: None if params[n].default is inspect.Parameter.empty else params[n].default for n in names}
        # ``ProcessorMixin`` reads an ``__init__``'s argument names from its code object, so they are spelled out in a
        # compiled function (its source is made of the base class's parameter names alone).
        source = (
            f"def __init__(self, {''.join(f'{n}=_defaults[{n!r}], ' for n in names)}**kwargs):\n"
            f"    _base.__init__(self, {''.join(f'{n}={n}, ' for n in names)}video_processor=None, **kwargs)\n"
        )
        namespace = {"_defaults": defaults, "_base": processor_class}
        exec(source, namespace)  # noqa: S102 - built from a transformers class's parameter names
        bases = (processor_class, _drop_video_shim(processor_class))
        _NO_VIDEO[processor_class] = type(
            f"NoVideo{processor_class.__name__}", bases, {"__init__": namespace["__init__"]}
        )
    return _NO_VIDEO[processor_class]


def no_video_processor(model_type: str, processor_class: str | None = None) -> type | None:
    """The no-video subclass of ``model_type``'s transformers processor (``processor_class``, a transformers name,
    where given), registered with ``AutoProcessor`` (so that folders saved with it load through the Auto classes;
    without, ``AutoProcessor`` quietly returns the bare tokenizer). None where that processor takes no video
    processor, or where it or the type's config is not importable here (a processor module needing torchvision)."""
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    name = processor_class or PROCESSOR_MAPPING_NAMES.get(model_type)
    if not name or model_type not in CONFIG_MAPPING:
        return None
    try:
        base = getattr(transformers, name)
    except (ImportError, AttributeError):
        return None
    if not isinstance(base, type):
        return None
    cls = no_video_subclass(base)
    if cls is base:
        return None
    AutoProcessor.register(CONFIG_MAPPING[model_type], cls, exist_ok=True)
    return cls
