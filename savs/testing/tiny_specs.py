"""Per-type settings for `savs.testing.tiny_models`: what the generic shrinking cannot guess.

Keys of a spec: ``config`` (dotted config keys -> value, applied after shrinking), ``patches`` (image side in
patches, default 4) or ``side`` (pixels), ``image`` (image processor kwargs), ``processor`` (processor kwargs; a
callable gets the config dict), ``processor_class`` / ``image_processor_class`` (instead of the mapping's),
``placeholder`` (what the chat template's image item renders; default the processor's ``image_token``),
``named_tokens`` / ``tokens`` (extra tokenizer tokens), ``ids`` (dotted config key -> token whose id it takes),
``refuse`` (the reason the type cannot be built offline).
"""

from __future__ import annotations

from typing import Any

# Types whose real processor ships no chat template: prompts are plain text.
NO_TEMPLATE = frozenset({"blip", "blip-2", "instructblip", "instructblipvideo", "paligemma", "git", "kosmos-2",
                         "florence2", "pix2struct", "udop", "fuyu", "pi0", "kosmos-2.5", "pp_formulanet"})  # fmt: skip

_QWEN_VL = {"placeholder": "<|vision_start|><|image_pad|><|vision_end|>"}
_IDEFICS3 = {
    "config": {"scale_factor": 2, "vision_config.patch_size": 14, "vision_config.image_size": 56},
    "image": {"do_image_splitting": False, "max_image_size": {"longest_edge": 56}, "size": {"longest_edge": 56}},
    "processor": {"image_seq_len": 4},
    "side": 56,
}
_PINPOINTS = [[56 * r, 56 * c] for r in (1, 2) for c in (1, 2)]

SPECS: dict[str, dict[str, Any]] = {
    "qwen2_vl": _QWEN_VL,
    "qwen2_5_vl": _QWEN_VL,
    "qwen3_vl": _QWEN_VL,
    "qwen3_5": _QWEN_VL,
    "qwen3_5_moe": _QWEN_VL,
    "idefics3": _IDEFICS3,
    "smolvlm": {**_IDEFICS3, "processor_class": "Idefics3Processor"},  # as SmolVLM-256M/500M ship (no num2words)
    "gemma3": {"config": {"mm_tokens_per_image": 4}, "processor": {"image_seq_length": 4}},
    "shieldgemma2": {"config": {"mm_tokens_per_image": 4}, "processor": {"image_seq_length": 4}},
    "internvl": {"config": {"image_seq_length": 4}, "processor": {"image_seq_length": 4}},
    "llava_onevision": {
        "config": {"image_grid_pinpoints": _PINPOINTS},
        "image": {"image_grid_pinpoints": _PINPOINTS},
        "processor": {"num_image_tokens": 16, "vision_feature_select_strategy": "full"},
    },
    "mllama": {
        "config": {
            "vision_config.intermediate_layers_indices": [0, 1],
            "vision_config.num_global_layers": 1,
            "text_config.cross_attention_layers": [1],
        },
        "image": {"max_image_tiles": 1},
    },  # fmt: skip
    "aya_vision": {"processor": {"img_size": 56, "patch_size": 28}},
    "paligemma": {"image": {"image_seq_length": 16}, "config": {"text_config.num_image_tokens": 16}},
    "mistral3": {"processor_class": "LightOnOcrProcessor"},  # PixtralProcessor imports torchvision
    "mistral_large4": {"processor_class": "LightOnOcrProcessor"},
}
