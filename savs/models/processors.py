"""Processors for the families whose stock transformers processor insists on a video processor.

Qwen2-VL, Qwen2.5-VL and LLaVA-OneVision processors refuse to construct without a video processor, and
those need torchvision, which has no build beside the pinned CPU torch. SAVs never feeds video, so these
subclasses pass none. The adapters load them directly (they read the stock checkpoints' files too), and
registering them with ``AutoProcessor`` lets directories saved with them load through the Auto classes.
"""

from transformers import (
    AutoProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionProcessor,
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
