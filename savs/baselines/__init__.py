"""Baselines that the SAV classifier is compared against, all on the same few-shot sets and prompts.

From the paper's main table: zero-shot generation (``zero_shot``), 4-shot in-context learning
(``in_context``), a LoRA fine-tune on the few-shot set (``lora_finetune`` / ``lora_predict``), Multimodal Task
Vectors (``mtv_predict``: mean many-shot ICL head activations patched into REINFORCE-chosen heads,
``savs.baselines.mtv``) and the CLIP / SigLIP zero-shot rows (``load_contrastive`` + ``contrastive_predict``,
``savs.baselines.contrastive``). Added here: linear-probe and k-NN on a decoder layer's last-token hidden state
(``extract_hidden`` + ``probe_predict``), the same linear probe on every head's vector concatenated (the cached
head vectors, ``savs.methods``' "linear probe, all heads"), the blind control (``blank_images``: same prompts,
images blanked) and a linear probe on the vision encoder's own features (``vision_features``). Generated answers
are scored with ``match_answer``.

Given a ``cache_dir``, the functions that run the LMM keep what they compute in the activation cache, so a rerun
recomputes only what is missing: ``zero_shot`` and ``in_context`` their answers, ``lora_finetune`` its weights
(``lora_predict`` those and its answers), ``mtv_predict`` its fit and answers, ``extract_hidden`` and
``vision_features`` their features. ``contrastive_predict`` and ``probe_predict`` keep nothing.
"""

from savs.baselines.answers import match_answer
from savs.baselines.contrastive import (
    CONTRASTIVE_MODELS,
    ContrastiveModel,
    contrastive_predict,
    load_contrastive,
    winoground_scores,
)
from savs.baselines.features import blank_images, extract_hidden, probe_predict, vision_features
from savs.baselines.generation import icl_prompt, in_context, pick_demos, zero_shot
from savs.baselines.lora import lora_finetune, lora_predict
from savs.baselines.mtv import MTV, mean_head_activations, mtv_fit, mtv_generate, mtv_predict, patch_heads

__all__ = [
    "CONTRASTIVE_MODELS",
    "MTV",
    "ContrastiveModel",
    "blank_images",
    "contrastive_predict",
    "extract_hidden",
    "icl_prompt",
    "in_context",
    "load_contrastive",
    "lora_finetune",
    "lora_predict",
    "match_answer",
    "mean_head_activations",
    "mtv_fit",
    "mtv_generate",
    "mtv_predict",
    "patch_heads",
    "pick_demos",
    "probe_predict",
    "vision_features",
    "winoground_scores",
    "zero_shot",
]
