"""Random-weight models of every image-text-to-text model type in transformers, built generically (the
architecture sweep, ``savs.testing.architectures``).

`build_random_type(model_type, out_dir)` takes the type's config class at its defaults, shrinks every size it finds
(widths, heads, layers, experts, vocabulary, vision image and patch sizes) while keeping the layer-type pattern of
hybrid decoders (one layer of each kind), trains an offline byte-level BPE (`random_models.train_tokenizer`) that
carries the special tokens the type's processor reads, builds the real processor class (the image processor's Pil
variant, no video processor), checks that one image and a prompt run through processor and model, and saves the lot for
`AutoConfig` / `AutoModelForImageTextToText` / `AutoProcessor`. A type that cannot be built offline raises
`RandomBuildError` with the reason.

Chat templates: the real checkpoints' templates are not reachable offline; a type whose processor ships one gets a
generic ChatML template (`random_models.chatml`, no default system turn) whose image item renders the placeholder
the processor expands (e.g. ``<|vision_start|><|image_pad|><|vision_end|>`` for Qwen-VL, the begin-of-image token
for Gemma 3), so prompts go through the processor as the real ones do. Types whose real processor has no template
(PaliGemma, BLIP, ...) get none.

Processors that take a video processor are saved as ``NoVideo<Name>`` subclasses
(`savs.models.processors.no_video_subclass`, the generic adapter's too), and Llama 4 / LFM2-VL with Pil stand-ins
of their torchvision-only image processors (`savs.testing.pil_processors`): call `register_no_video_processors()`
before ``AutoProcessor`` loads such a folder (without it ``AutoProcessor`` quietly returns the bare tokenizer).

`python -m savs.testing.random_types --out DIR [TYPE ...]` builds every type (or the given ones) into
``DIR/<model_type>/`` and writes ``DIR/status.json`` (``{model_type: {"built": bool, "reason": str}}``).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import inspect
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from PIL import Image
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    GenerationConfig,
    PreTrainedTokenizerFast,
)
from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

from savs.models.processors import no_video_processor, no_video_subclass
from savs.testing.pil_processors import PIL_IMAGE_PROCESSORS, register_pil_image_processors
from savs.testing.random_models import chatml, train_tokenizer
from savs.testing.random_type_specs import NO_TEMPLATE, SPECS

MODEL_TYPES: tuple[str, ...] = tuple(sorted(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES))
SEED = 0

# Config keys by what they size; any integer above the cap is brought down to it (in every sub-config).
_CAPS: dict[int, frozenset[str]] = {
    64: frozenset({"hidden_size", "embed_dim", "d_model", "n_embd", "hidden_dim", "out_hidden_size",
                   "projection_dim", "vision_output_dim", "text_hidden_size", "projector_hidden_size",
                   "encoder_hidden_size", "kv_lora_rank", "q_lora_rank", "word_embed_proj_dim"}),
    4: frozenset({"num_attention_heads", "attention_heads", "num_heads", "n_head", "encoder_attention_heads",
                  "decoder_attention_heads", "n_heads", "num_experts", "n_routed_experts", "num_local_experts",
                  "moe_num_experts"}),
    2: frozenset({"num_key_value_heads", "n_kv_heads", "num_kv_heads", "num_hidden_layers", "depth", "layers",
                  "num_layers", "n_layer", "encoder_layers", "decoder_layers", "n_layers", "num_decoder_layers",
                  "num_experts_per_tok", "moe_k", "num_experts_per_token"}),
    128: frozenset({"intermediate_size", "ffn_dim", "encoder_ffn_dim", "decoder_ffn_dim", "d_ff", "mlp_dim",
                    "ffn_hidden_size", "moe_intermediate_size", "shared_expert_intermediate_size",
                    "text_intermediate_size"}),
    16: frozenset({"head_dim", "d_kv", "attention_head_dim", "qk_nope_head_dim", "v_head_dim", "qk_rope_head_dim"}),
}  # fmt: skip
_CAP = {key: cap for cap, keys in _CAPS.items() for key in keys}
_ROLE_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
_TOKEN_LITERAL = re.compile(r"""["'](<\|?[A-Za-z_][\w.-]{0,40}\|?>|\[[A-Z][A-Z_]{1,30}\])["']""")
_TOKEN_ATTR = re.compile(r"tokenizer\.([a-z][a-z_]*_token)\b(?!_id)")


class RandomBuildError(RuntimeError):
    """A model type that cannot be built offline; `reason` is one line saying why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _shrink(d: dict) -> dict:
    """A config dict with every size capped (recursing into sub-configs) and hybrid layer patterns kept."""
    out: dict = {}
    for key, value in d.items():
        if isinstance(value, dict) and "model_type" in value:
            out[key] = _shrink(value)
        elif isinstance(value, int) and not isinstance(value, bool) and key in _CAP:
            out[key] = min(value, _CAP[key])
        else:
            out[key] = value
    rope = out.get("rope_parameters")
    if isinstance(rope, dict) and isinstance(rope.get("mrope_section"), list):
        heads = out.get("num_attention_heads") or 1
        head_dim = out.get("qk_rope_head_dim") or out.get("head_dim") or out.get("hidden_size", 64) // heads
        out["rope_parameters"] = {**rope, "mrope_section": _rescale(rope["mrope_section"], head_dim // 2)}
    for key in ("layer_types", "layers_block_type"):
        types = d.get(key)
        if isinstance(types, list) and types and all(isinstance(t, str) for t in types):
            kinds = list(dict.fromkeys(types))  # one layer of each kind, in order of first appearance
            out[key] = kinds if len(kinds) > 1 else kinds * 2
            out["num_hidden_layers"] = len(out[key])
            per_layer = d.get("per_layer_config")
            if isinstance(per_layer, dict):  # settings of some layers, by number: kept for the new layer of that kind
                out["per_layer_config"] = {}
                for layer, setting in per_layer.items():
                    out["per_layer_config"].setdefault(str(kinds.index(types[int(layer)])), setting)
    return out


def _rescale(sections: list[int], total: int) -> list[int]:
    """`sections` scaled to sum to `total` (each at least 1), the largest absorbing the rounding."""
    scaled = [max(1, round(v * total / sum(sections))) for v in sections]
    scaled[scaled.index(max(scaled))] += total - sum(scaled)
    return scaled


def _set(d: dict, dotted: str, value: Any) -> None:
    """Set ``d["a"]["b"] = value`` for ``dotted == "a.b"``; a missing sub-dict is an error in the spec."""
    *path, last = dotted.split(".")
    for part in path:
        d = d[part]
    d[last] = value


def _sub_dicts(d: dict) -> list[dict]:
    """Every sub-config dict of `d` (depth first), `d` itself first."""
    found = [d]
    for value in d.values():
        if isinstance(value, dict) and "model_type" in value:
            found += _sub_dicts(value)
    return found


def _image_processor(model_type: str, spec: dict, cfg: dict, side: int) -> Any:
    """The type's Pil image processor, sized so that an image becomes a few patches of `side` pixels."""
    names = IMAGE_PROCESSOR_MAPPING_NAMES.get(model_type) or {}
    name = spec.get("image_processor_class") or names.get("pil")
    if name is None and model_type not in PIL_IMAGE_PROCESSORS:
        raise RandomBuildError(
            f"image processor {names.get('torchvision', '(none registered)')} has no Pil variant and needs torchvision"
        )
    cls = getattr(transformers, name) if name else PIL_IMAGE_PROCESSORS[model_type]
    default = cls()
    kwargs: dict[str, Any] = {}
    settings = default.to_dict()
    size = settings.get("size")
    if isinstance(size, dict):
        if any(v > 10_000 for v in size.values() if isinstance(v, int)):  # pixel counts (Qwen-VL style)
            kwargs["size"] = {k: side * side for k in size}
        else:
            kwargs["size"] = {k: side for k in size}
    crop = settings.get("crop_size")
    if isinstance(crop, dict):
        kwargs["crop_size"] = {k: side for k in crop}
    vision = next((d for d in _sub_dicts(cfg) if isinstance(d.get("patch_size"), int)), {})
    for key, config_key in (("patch_size", "patch_size"), ("merge_size", "spatial_merge_size"),
                            ("temporal_patch_size", "temporal_patch_size")):  # fmt: skip
        if key in settings and config_key in vision:
            value = vision[config_key]
            kwargs[key] = {k: value for k in settings[key]} if isinstance(settings[key], dict) else value
    kwargs.update(spec.get("image", {}))
    return cls(**kwargs)


def _processor_tokens(processor_cls: type, spec: dict) -> tuple[dict[str, str], list[str]]:
    """Named tokens the processor reads off the tokenizer (``tokenizer.image_token`` -> ``{"image_token": ...}``)
    and every token-looking string literal in its module (``"<|image_pad|>"``, ``"[IMG]"``)."""
    source = inspect.getsource(importlib.import_module(processor_cls.__module__))
    literals = list(dict.fromkeys(_TOKEN_LITERAL.findall(source)))
    named = {}
    for attr in dict.fromkeys(_TOKEN_ATTR.findall(source)):
        if attr in _ROLE_TOKENS or attr in ("cls_token", "sep_token", "mask_token") or attr.startswith("add_"):
            continue
        if re.search(rf"""(hasattr|getattr)\(tokenizer,\s*["']{attr}["']""", source):
            continue  # optional on the tokenizer: the processor's own default literal (in `literals`) is used
        named[attr] = f"<|{attr.removesuffix('_token')}|>"
    named.update(spec.get("named_tokens", {}))
    return named, [t for t in literals + spec.get("tokens", []) if t not in named.values()]


def _build_tokenizer(named: dict[str, str], tokens: list[str], template: str | None) -> PreTrainedTokenizerFast:
    """`random_models.train_tokenizer`'s offline BPE holding the processor's tokens; the named ones are also
    tokenizer attributes (``tok.image_token``, ``tok.image_token_id``), as the real checkpoints' tokenizers declare
    them."""
    specials = list(dict.fromkeys([*CHAT_TOKENS, *named.values(), *tokens]))
    trained = train_tokenizer(specials, "", **_ROLE_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=trained.backend_tokenizer,
        extra_special_tokens=dict(named),
        chat_template=template,
        **_ROLE_TOKENS,
    )


CHAT_TOKENS = ["<|im_start|>", "<|im_end|>"]


def register_no_video_processors() -> None:
    """Register with `AutoProcessor` the Pil image-processor stand-ins and the no-video subclass of every
    image-text-to-text type's processor that has a video processor (the spec's processor class where it names one),
    so that folders saved with them load back (without, `AutoProcessor` quietly returns the bare tokenizer)."""
    register_pil_image_processors()
    for model_type in MODEL_TYPES:
        no_video_processor(model_type, SPECS.get(model_type, {}).get("processor_class"))


def _vision_side(cfg: dict, spec: dict) -> int:
    """Image side in pixels: `spec["patches"]` (default 4) patches of the vision tower's patch size."""
    if "side" in spec:
        return spec["side"]
    patches = [d["patch_size"] for d in _sub_dicts(cfg) if isinstance(d.get("patch_size"), int)]
    return (patches[0] if patches else 14) * spec.get("patches", 4)


def _config_dict(model_type: str, spec: dict) -> dict:
    """The type's default config, shrunk, vision image sizes set, then the spec's dotted overrides."""
    try:
        base = AutoConfig.for_model(model_type)
    except Exception as err:  # a config class that needs what is not installed
        raise RandomBuildError(f"config does not build: {err}".splitlines()[0]) from err
    cfg = _shrink(base.to_dict())
    side = _vision_side(cfg, spec)
    for sub in _sub_dicts(cfg)[1:]:
        if isinstance(sub.get("image_size"), int) and sub.get("patch_size"):
            sub["image_size"] = side
    _fix_mrope(model_type, cfg)
    for dotted, value in spec.get("config", {}).items():
        _set(cfg, dotted, copy.deepcopy(value))
    return cfg


def _fix_mrope(model_type: str, cfg: dict) -> None:
    """Give multimodal-RoPE text configs an explicit `mrope_section` summing to half the (shrunk) head size: the
    modeling code's default is sized for the real head size."""
    module = MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES[model_type]
    if "mrope" not in inspect.getsource(sys.modules[getattr(transformers, module).__module__]):
        return
    for sub in _sub_dicts(cfg):
        rope = sub.get("rope_parameters")
        if isinstance(rope, dict) and "mrope_section" not in rope:
            heads = sub.get("num_attention_heads") or 1
            head_dim = sub.get("qk_rope_head_dim") or sub.get("head_dim") or sub.get("hidden_size", 64) // heads
            rotary = head_dim * (sub.get("partial_rotary_factor") or rope.get("partial_rotary_factor") or 1)
            rope["mrope_section"] = _rescale([16, 24, 24], int(rotary) // 2)


def _text_dicts(cfg: dict) -> list[dict]:
    """The config dicts that carry the text vocabulary and token ids: the top level and the text config(s)."""
    return [cfg, *(v for k, v in cfg.items() if isinstance(v, dict) and k in ("text_config", "decoder"))]


def _fix_ids(cfg: dict, tok: PreTrainedTokenizerFast, processor: Any, spec: dict) -> None:
    """Vocabulary size, role ids and every ``*_token_id`` / ``*_token_index`` set to the new tokenizer's ids."""
    for d in _text_dicts(cfg):
        if "vocab_size" in d:
            d["vocab_size"] = len(tok)
        for role in ("bos", "eos", "pad"):
            if f"{role}_token_id" in d:
                d[f"{role}_token_id"] = getattr(tok, f"{role}_token_id")
        for key in list(d):
            m = re.fullmatch(r"(\w+)_token_(?:id|index)", key)
            if not m or m.group(1) in ("bos", "eos", "pad", "decoder_start"):
                continue
            attr = f"{m.group(1)}_token"
            processor_id = getattr(processor, f"{attr}_id", None)
            if isinstance(getattr(tok, attr, None), str):  # the tokenizer names it, as the real checkpoints' do
                d[key] = tok.convert_tokens_to_ids(getattr(tok, attr))
            elif isinstance(processor_id, int) and not isinstance(processor_id, bool):
                d[key] = processor_id
            elif str(getattr(processor, attr, None)) in tok.get_vocab():  # a str or an AddedToken
                d[key] = tok.convert_tokens_to_ids(str(getattr(processor, attr)))
    for key, token in spec.get("ids", {}).items():
        _set(cfg, key, tok.convert_tokens_to_ids(token))


def _processor(model_type: str, spec: dict, cfg: dict, side: int) -> tuple[Any, PreTrainedTokenizerFast]:
    """The type's real processor class around the new tokenizer and Pil image processor, no video processor."""
    name = spec.get("processor_class") or PROCESSOR_MAPPING_NAMES.get(model_type)
    if name is None:
        raise RandomBuildError("no processor class registered for the type")
    base = getattr(transformers, name)
    cls = no_video_subclass(base)
    named, tokens = _processor_tokens(base, spec)
    template = None if model_type in NO_TEMPLATE else chatml(None, spec.get("placeholder", ""))
    tok = _build_tokenizer(named, tokens, template)
    args: dict[str, Any] = {}
    for param in list(inspect.signature(cls.__init__).parameters)[1:]:
        if param == "image_processor":
            args[param] = _image_processor(model_type, spec, cfg, side)
        elif param == "tokenizer":
            args[param] = tok
        elif param == "video_processor":
            args[param] = None
        elif param == "qformer_tokenizer":
            args[param] = _build_tokenizer({}, [], None)
        elif param in ("feature_extractor", "audio_processor", "audio_tokenizer"):
            args[param] = _audio_feature_extractor(model_type, name, param, spec)
        elif param == "patch_size":
            args[param] = next(d["patch_size"] for d in _sub_dicts(cfg) if "patch_size" in d)
    for key, value in spec.get("processor", {}).items():
        args[key] = value(cfg) if callable(value) else value
    processor = cls(**args, chat_template=template) if "chat_template" in args or template else cls(**args)
    if template and "placeholder" not in spec:  # the token the processor expands, as the user writes it
        placeholder = getattr(processor, "image_token", None) or ""
        processor.chat_template = tok.chat_template = chatml(None, placeholder)
    return processor, processor.tokenizer if hasattr(processor, "tokenizer") else tok


def _audio_feature_extractor(model_type: str, processor_name: str, param: str, spec: dict) -> Any:
    """The type's audio feature extractor at its defaults (numpy only), or why it cannot be had."""
    from transformers.models.auto.feature_extraction_auto import FEATURE_EXTRACTOR_MAPPING_NAMES

    name = spec.get("feature_extractor_class") or FEATURE_EXTRACTOR_MAPPING_NAMES.get(model_type)
    if param != "feature_extractor" or name is None:
        raise RandomBuildError(f"processor {processor_name} needs an audio {param}")
    try:
        return getattr(transformers, name)()
    except Exception as err:
        raise RandomBuildError(f"audio feature extractor {name} does not build: {err}".splitlines()[0]) from err


def sample_inputs(processor: Any, side: int, seed: int = SEED) -> dict:
    """One seeded random image and a one-question prompt through the processor (its chat template if any)."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (side + 6, side + 10, 3), dtype=np.uint8))
    question = "What color is the shape?"
    if getattr(processor, "chat_template", None):
        content = [{"type": "image"}, {"type": "text", "text": question}]
        text = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    else:  # the plain default: the question (processors without a template place the image themselves)
        text = question
    return dict(processor(images=[image], text=[text], return_tensors="pt"))


def build_random_type(model_type: str, out_dir: str | Path, seed: int = SEED) -> Path:
    """Build the random-weight `model_type` model (seeded) and its processor, check that an image and a
    prompt run through both and survive a save/reload, and save them to `out_dir`.

    Raises `RandomBuildError` with a one-line reason when the type cannot be built offline (any failure on the way
    is reported as one, its exception type and first message line the reason).
    """
    if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        raise ValueError(f"{model_type!r} is not an image-text-to-text model type of transformers")
    try:
        return _build(model_type, Path(out_dir), seed)
    except RandomBuildError:
        raise
    except Exception as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()][:2]  # validators: cause on line 2
        raise RandomBuildError(f"{type(err).__name__}: {' '.join(lines)}"[:300]) from err


def _build(model_type: str, out: Path, seed: int) -> Path:
    """`build_random_type`'s work."""
    spec = SPECS.get(model_type, {})
    if "refuse" in spec:
        raise RandomBuildError(spec["refuse"])
    cfg = _config_dict(model_type, spec)
    side = _vision_side(cfg, spec)
    processor, tok = _processor(model_type, spec, cfg, side)
    _fix_ids(cfg, tok, processor, spec)
    config_cls = type(AutoConfig.for_model(model_type))
    try:
        config = config_cls.from_dict(cfg)
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config).eval()
    except ImportError as err:
        lines = [line for line in str(err).splitlines() if line.strip()]
        raise RandomBuildError(f"model needs a package not installed: {lines[0] if lines else err!r}") from err
    inputs = sample_inputs(processor, side, seed)
    try:
        logits = _logits(model, inputs)
    except Exception as err:  # e.g. Llama 4's in 5.24, or a shrunk size the generic rules got wrong
        lines = [line.strip() for line in str(err).splitlines() if line.strip()][:2]
        reason = f"the forward on the processor's inputs fails: {type(err).__name__}: {' '.join(lines)}"
        raise RandomBuildError(reason[:300]) from err
    if not torch.isfinite(logits).all():
        raise RandomBuildError("the model's logits are not finite")
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    _check_reload(out, processor, inputs, logits)
    return out


def _logits(model: torch.nn.Module, inputs: dict) -> torch.Tensor:
    """The model's logits on `inputs`."""
    with torch.no_grad():
        return model(**inputs).logits


def _check_reload(out: Path, processor: Any, inputs: dict, logits: torch.Tensor) -> None:
    """The saved folder loads through the Auto classes and gives the same logits."""
    register_no_video_processors()
    loaded = transformers.AutoProcessor.from_pretrained(out)
    if type(loaded) is not type(processor):
        raise RandomBuildError(f"AutoProcessor loads a {type(loaded).__name__}, not the {type(processor).__name__}")
    if getattr(loaded, "chat_template", None) != getattr(processor, "chat_template", None):
        raise RandomBuildError("the saved processor reloads with a different chat template")
    again = _logits(AutoModelForImageTextToText.from_pretrained(out).eval(), inputs)
    diff = float((again - logits).abs().max() / logits.abs().max().clamp_min(1e-30))
    if diff > 1e-5:  # more than float noise: weights that do not survive saving
        raise RandomBuildError(f"the saved model reloads with different logits ({diff:.1e} relative)")


def build_zoo(out: Path, types: tuple[str, ...] = MODEL_TYPES, seed: int = SEED) -> dict[str, dict]:
    """Build every type into ``out/<type>/`` and write ``out/status.json``; a failed type leaves no folder."""
    out.mkdir(parents=True, exist_ok=True)
    status_file = out / "status.json"
    status = json.loads(status_file.read_text()) if status_file.exists() else {}
    for model_type in types:
        target = out / model_type
        shutil.rmtree(target, ignore_errors=True)
        try:
            with tempfile.TemporaryDirectory(dir=out) as tmp:
                build_random_type(model_type, tmp, seed)
                shutil.copytree(tmp, target)
            status[model_type] = {"built": True, "reason": ""}
        except RandomBuildError as err:
            status[model_type] = {"built": False, "reason": err.reason}
        print(f"{model_type}: {'built' if status[model_type]['built'] else status[model_type]['reason']}", flush=True)
    status_file.write_text(json.dumps(dict(sorted(status.items())), indent=1) + "\n")
    return status


def main(argv: list[str] | None = None) -> None:
    """``python -m savs.testing.random_types --out DIR [TYPE ...]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("types", nargs="*", default=list(MODEL_TYPES))
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    build_zoo(args.out, tuple(args.types), args.seed)


if __name__ == "__main__":
    main()
