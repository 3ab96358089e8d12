"""Per-type settings for `savs.testing.random_types`: what the generic shrinking cannot guess.

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
NO_TEMPLATE = frozenset(
    "blip blip-2 instructblip instructblipvideo paligemma git kosmos-2 idefics florence2 pix2struct udop fuyu pi0 "
    "kosmos-2.5 pp_formulanet".split()
)

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
            "vision_config.vision_output_dim": 192,  # the last hidden state and 2 intermediate layers, concatenated
        },
    },  # fmt: skip
    "aya_vision": {"processor": {"img_size": 56, "patch_size": 28}},
    "paligemma": {"image": {"image_seq_length": 16}, "config": {"text_config.num_image_tokens": 16}},
    "qwen3_vl_moe": {**_QWEN_VL, "image_processor_class": "Qwen2VLImageProcessorPil"},
    "cosmos3_omni": {**_QWEN_VL, "processor_class": "Qwen3VLProcessor"},  # no processor registered for the type
    "glm4v_moe": {"image_processor_class": "Glm4vImageProcessorPil"},
    "glm_ocr": {"processor_class": "Glm4vProcessor", "image_processor_class": "Glm4vImageProcessorPil"},
    "glmga": {"processor_class": "Glm46VProcessor"},
    "kosmos-2": {"processor_class": "Kosmos2Processor"},
    "kosmos-2.5": {  # 2048 latent queries and 4096 flattened patches by default
        "processor_class": "Kosmos2_5Processor",
        "config": {"latent_query_num": 4},
        "image": {"max_patches": 16},
        "processor": {"num_image_tokens": 4},
    },
    "qwen2_5_omni_thinker": {
        "processor_class": "Qwen2_5OmniProcessor",
        "placeholder": "<|vision_bos|><|image|><|vision_eos|>",
        "ids": {"vision_start_token_id": "<|vision_bos|>"},
        "feature_extractor_class": "WhisperFeatureExtractor",
        "image_processor_class": "Qwen2VLImageProcessorPil",
    },
    "qwen3_omni_moe_thinker": {
        "processor_class": "Qwen3OmniMoeProcessor",
        "placeholder": "<|vision_bos|><|image|><|vision_eos|>",
        "ids": {"vision_start_token_id": "<|vision_bos|>"},
        "feature_extractor_class": "WhisperFeatureExtractor",
        "image_processor_class": "Qwen2VLImageProcessorPil",
    },
    "instructblip": {"processor": {"num_query_tokens": lambda c: c["num_query_tokens"]}},
    "instructblipvideo": {"processor": {"num_query_tokens": lambda c: c["num_query_tokens"]}},
    "blip-2": {"processor": {"num_query_tokens": lambda c: c["num_query_tokens"]}},
    "fuyu": {"tokens": ["|SPEAKER|", "|NEWLINE|"]},
    "llama4": {  # the pixel-shuffle MLP reads 4 x the vision width (ratio 0.5) through `intermediate_size`
        "config": {
            "vision_config.intermediate_size": 256,
            "vision_config.projector_input_dim": 64,
            "vision_config.projector_output_dim": 64,
            "vision_config.vision_output_dim": 64,
        },
        "ids": {"image_token_index": "<|patch|>"},  # the token the processor repeats per image feature
    },
    # The default LFM2 config has attention in every layer; LFM2-VL checkpoints mix convolution layers in.
    "lfm2_vl": {"config": {"text_config.layer_types": ["conv", "full_attention"], "text_config.full_attn_idxs": [1]}},
    "vipllava": {"config": {"vision_feature_layers": [-2, -1]}},
    "qianfan_ocr": {"placeholder": "<image>", "processor": {"image_seq_length": 4}},
    "ovis2": {"processor": {"image_seq_length": 16}},
    "got_ocr2": {"processor": {"num_image_tokens": 1}},
    "pp_chart2table": {"processor": {"num_image_tokens": 1}},
    "granite_docling": {"processor": {"image_seq_len": 1}},
    "deepseek_vl": {"processor": {"num_image_tokens": 16}},
    "janus": {"processor": {"num_image_tokens": 16}},
    "mistral3": {"processor_class": "LightOnOcrProcessor"},  # PixtralProcessor imports torchvision
    "mistral_large4": {"processor_class": "LightOnOcrProcessor"},
}
