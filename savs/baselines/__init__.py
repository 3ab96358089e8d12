"""Baselines that the SAV classifier is compared against, all on the same few-shot sets and prompts.

From the paper's main table: zero-shot generation (``zero_shot``), 4-shot in-context learning
(``in_context``) and a LoRA fine-tune on the few-shot set (``lora_finetune`` / ``lora_predict``). Added
here: linear-probe and k-NN on a decoder layer's last-token hidden state (``extract_hidden`` +
``probe_predict``), the blind control (``blank_images``: same prompts, images blanked) and a linear probe
on the vision encoder's own features (``vision_features``). Generated answers are scored with
``match_answer``. Given a ``cache_dir``, each keeps what it computes (features, generated answers, LoRA weights)
in the activation cache, so a rerun recomputes only what is missing.
"""

from savs.baselines.answers import match_answer
from savs.baselines.features import blank_images, extract_hidden, probe_predict, vision_features
from savs.baselines.generation import icl_prompt, in_context, pick_demos, zero_shot
from savs.baselines.lora import lora_finetune, lora_predict

__all__ = [
    "blank_images",
    "extract_hidden",
    "icl_prompt",
    "in_context",
    "lora_finetune",
    "lora_predict",
    "match_answer",
    "pick_demos",
    "probe_predict",
    "vision_features",
    "zero_shot",
]
