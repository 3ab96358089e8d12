"""Random-weight stand-ins of every supported family, small and saved to disk for offline tests (``random:<family>``
in ``load_model``; nothing here is trained, unlike savs-mini).

`build_random_model(family, out_dir)` writes a directory that the stock `from_pretrained` path loads back:
`AutoConfig`, `AutoModelForImageTextToText` (`AutoModelForCausalLM` for `"llama"`) and `AutoProcessor`
(`AutoTokenizer` for `"llama"`). The tokenizer is a byte-level BPE trained offline on a small built-in corpus;
it holds the family's real special tokens and a chat template mimicking the real one.

Qwen2-VL, Qwen2.5-VL and LLaVA-OneVision are saved with the `NoVideo*Processor` classes of
`savs.models.processors` (the stock ones want torchvision), which `import savs.models` registers with
`AutoProcessor`. SmolVLM is saved with the stock
`Idefics3Processor`, as the SmolVLM-256M/500M checkpoints are, since `SmolVLMProcessor` needs `num2words`
and a video processor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    BlipImageProcessorPil,
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPModel,
    CLIPProcessor,
    CLIPVisionConfig,
    GenerationConfig,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
    InstructBlipProcessor,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaImageProcessorPil,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessorPil,
    LlavaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    ProcessorMixin,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
    SiglipConfig,
    SiglipImageProcessorPil,
    SiglipModel,
    SiglipProcessor,
    SiglipVisionConfig,
    SmolVLMConfig,
    SmolVLMForConditionalGeneration,
)

from savs.models.processors import (
    NoVideoLlavaOnevisionProcessor,
    NoVideoQwen2_5_VLProcessor,
    NoVideoQwen2VLProcessor,
)

PATCH = 14  # vision patch size of every family
IMAGE = 28  # LLaVA / LLaVA-OV tower input: 2x2 patches; LLaVA-OV anyres adds up to 2x2 crops of it
IDEFICS_IMAGE = 56  # Idefics3 / SmolVLM tower input: 4x4 patches, pixel-shuffled (x2) to 4 tokens
QWEN_MAX_PIXELS = 56 * 56  # Qwen images are resized to at most 4x4 patches, merged (2x2) to 4 tokens
TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "head_dim": 16,
    "max_position_embeddings": 1024,
}
VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
VOCAB = 400  # BPE vocabulary size, special tokens included

_CORPUS = """
The quick brown fox jumps over the lazy dog. Is there a red circle in the image? Answer with Yes or No.
Yes. No. yes no true false A B C D E F G H I J K L M N O P Q R S T U V W X Y Z
What is the color of the shape? What shape is in the picture? Which animal is shown in this photo?
red green blue yellow black white gray orange purple pink brown circle square triangle rectangle
How many objects are there? one two three four five six seven eight nine ten 0 1 2 3 4 5 6 7 8 9 10
cat dog bird car truck airplane ship horse deer frog shirt shoe bag dress coat trouser sandal sneaker
Describe the image in one word. Options: a, b, c. Answer with the class name. The answer is: (a) (b)
You are a helpful assistant. Hello, how are you? I am fine, thank you! user assistant system
left right top bottom above below inside outside near far small large big tiny number digit letter
a an the of in on at to for with from by and or not is are was were be this that these those it
Question: Answer: Label: Category: Class: hello? hello! "quoted" 'single' [list] {set} x-y a/b 50% $5 #1
"""

# ChatML (Qwen2-VL, LLaVA-OV's qwen template, SmolLM2, and `savs.testing.random_types`' generic one); SYSTEM and
# IMAGE are substituted by `chatml`.
_DEFAULT_SYSTEM = (
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nSYSTEM<|im_end|>\\n' }}{% endif %}"
)
_CHATML = (
    "{% for message in messages %}"
    "DEFAULT_SYSTEM"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{{ 'IMAGE' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# llava-hf/llava-1.5: images first, then the text, `USER: <image>\n... ASSISTANT:`.
_LLAVA = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] + ' ' }}"
    "{% else %}{% for item in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\\n' }}{% endfor %}"
    "{% for item in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ item['text'] + ' ' }}{% endfor %}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# Idefics3 / SmolVLM: `BOS User:<image>...<end_of_utterance>\nAssistant:`; BOS is substituted by `_idefics`.
_IDEFICS = (
    "{{ 'BOS' }}{% for message in messages %}"
    "{{ message['role'].capitalize() }}"
    "{% if message['content'] is string %}{{ ': ' + message['content'] }}"
    "{% else %}{{ ':' if message['content'][0]['type'] == 'image' else ': ' }}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{{ '<image>' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<end_of_utterance>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

CHATML_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_VL_TOKENS = [*CHATML_TOKENS, "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
IDEFICS_TOKENS = [
    "<fake_token_around_image>",
    "<image>",
    "<end_of_utterance>",
    "<global-img>",
    *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)),
]

Built = tuple[PreTrainedModel, ProcessorMixin | PreTrainedTokenizerFast]

# Public settings of the paper's checkpoints (chat template, image processor, processor, the config values that set
# the image tokens): stand-ins built "like" one of them prompt and tokenise exactly as the real checkpoint does.
CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"




def chatml(system: str | None, image: str = "") -> str:
    """ChatML template with a default system prompt (None: no system turn unless the messages hold one) and the
    text each image item renders as."""
    default = "" if system is None else _DEFAULT_SYSTEM.replace("SYSTEM", system)
    return _CHATML.replace("IMAGE", image).replace("DEFAULT_SYSTEM", default)


def train_tokenizer(tokens: list[str], chat_template: str, **roles: str) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on the built-in corpus; `roles` (bos_token=...) and `tokens` are special."""
    specials = list(dict.fromkeys([*roles.values(), *tokens]))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_CORPUS], trainer)
    extra = [t for t in specials if t not in roles.values()]
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, extra_special_tokens=extra, chat_template=chat_template, **roles
    )


def _text_config(tok: PreTrainedTokenizerFast, **overrides: object) -> dict:
    """Random-weight decoder config sized to the tokenizer, with its bos/eos/pad ids."""
    ids = {
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    return {**TEXT, "vocab_size": len(tok), **ids, **overrides}


def _qwen_vl(config_cls: type, model_cls: type, processor_cls: type, vision: dict) -> Built:
    """Qwen2-VL-style model (M-RoPE, 2x2-merged patches, GQA) with its ChatML processor."""
    image = "<|vision_start|><|image_pad|><|vision_end|>"
    tok = train_tokenizer(
        QWEN_VL_TOKENS,
        chatml("You are a helpful assistant.", image),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    # mrope_section splits head_dim / 2 = 8 rotary frequencies among (time, height, width)
    rope = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}
    config = config_cls(
        text_config=_text_config(tok, num_key_value_heads=2, rope_parameters=rope),
        vision_config={"depth": 2, "num_heads": 2, "patch_size": PATCH, **vision},
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"),
    )
    images = Qwen2VLImageProcessorPil(
        size={"shortest_edge": (2 * PATCH) ** 2, "longest_edge": QWEN_MAX_PIXELS}, patch_size=PATCH
    )
    return model_cls(config), processor_cls(images, tok, chat_template=tok.chat_template)


def _qwen2_vl() -> Built:
    """Random-weight Qwen2-VL."""
    vision = {"embed_dim": 32, "mlp_ratio": 2, "hidden_size": TEXT["hidden_size"]}
    return _qwen_vl(Qwen2VLConfig, Qwen2VLForConditionalGeneration, NoVideoQwen2VLProcessor, vision)


def _qwen2_5_vl() -> Built:
    """Random-weight Qwen2.5-VL (vision layer 0 attends within 28-px windows, layer 1 globally)."""
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "out_hidden_size": TEXT["hidden_size"],
        "window_size": 2 * PATCH,
        "fullatt_block_indexes": [1],
    }
    return _qwen_vl(Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, NoVideoQwen2_5_VLProcessor, vision)


def _llava() -> Built:
    """Random-weight LLaVA-1.5 (CLIP tower, CLS dropped, Llama text)."""
    tok = train_tokenizer(
        ["<image>"], _LLAVA, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    config = LlavaConfig(
        text_config={"model_type": "llama", **_text_config(tok)},
        vision_config=CLIPVisionConfig(**VISION, image_size=IMAGE, patch_size=PATCH, projection_dim=32),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_seq_length=(IMAGE // PATCH) ** 2,
    )
    images = LlavaImageProcessorPil(
        size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE}
    )
    processor = LlavaProcessor(
        images,
        tok,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=tok.chat_template,
    )
    return LlavaForConditionalGeneration(config), processor


def _llava_onevision() -> Built:
    """Random-weight LLaVA-OneVision (SigLIP tower, Qwen2 text with GQA, anyres grid of at most 2x2 crops)."""
    tok = train_tokenizer(
        [*CHATML_TOKENS, "<image>", "<video>"],
        chatml("You are a helpful assistant.", "<image>\n"),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    pinpoints = [[IMAGE * rows, IMAGE * cols] for rows in (1, 2) for cols in (1, 2)]
    config = LlavaOnevisionConfig(
        text_config={"model_type": "qwen2", **_text_config(tok, num_key_value_heads=2)},
        vision_config=SiglipVisionConfig(**VISION, image_size=IMAGE, patch_size=PATCH),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=pinpoints,
    )
    images = LlavaOnevisionImageProcessorPil(
        size={"height": IMAGE, "width": IMAGE}, image_grid_pinpoints=pinpoints
    )
    processor = NoVideoLlavaOnevisionProcessor(
        images,
        tok,
        num_image_tokens=(IMAGE // PATCH) ** 2,
        vision_feature_select_strategy="full",
        chat_template=tok.chat_template,
    )
    return LlavaOnevisionForConditionalGeneration(config), processor


def checkpoint(name: str) -> tuple[str, dict]:
    """A paper checkpoint's chat template and settings (``savs/testing/checkpoints/<name>/``)."""
    folder = CHECKPOINTS / name
    if not folder.is_dir():
        known = ", ".join(sorted(p.name for p in CHECKPOINTS.iterdir() if p.is_dir()))
        raise ValueError(f"no checkpoint settings for {name!r}; known: {known}")
    return (folder / "chat_template.jinja").read_text(), json.loads((folder / "settings.json").read_text())


def _llava_ov_7b() -> Built:
    """Random-weight LLaVA-OneVision with llava-ov-7b's chat template, image processing (384 px SigLIP crops,
    anyres_max_9) and image-token settings: its prompts and image-token counts are the real checkpoint's."""
    template, cfg = checkpoint("llava-ov-7b")
    tok = train_tokenizer(cfg["special_tokens"], template, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    m = cfg["model"]
    config = LlavaOnevisionConfig(
        text_config={
            "model_type": "qwen2",
            **_text_config(tok, num_key_value_heads=2, max_position_embeddings=m["max_position_embeddings"]),
        },
        vision_config=SiglipVisionConfig(**VISION, image_size=m["vision_image_size"], patch_size=m["patch_size"]),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=m["image_grid_pinpoints"],
        vision_feature_select_strategy=m["vision_feature_select_strategy"],
        vision_aspect_ratio=m["vision_aspect_ratio"],
    )
    images = LlavaOnevisionImageProcessorPil(**cfg["image_processor"])
    processor = NoVideoLlavaOnevisionProcessor(images, tok, chat_template=template, **cfg["processor"])
    return LlavaOnevisionForConditionalGeneration(config), processor


def _qwen2_vl_7b() -> Built:
    """Random-weight Qwen2-VL with Qwen2-VL-7B-Instruct's chat template and image processing (min/max pixels, 14 px
    patches merged 2x2): its prompts and image-token counts are the real checkpoint's."""
    template, cfg = checkpoint("qwen2-vl-7b")
    tok = train_tokenizer(cfg["special_tokens"], template, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    m, ip = cfg["model"], dict(cfg["image_processor"])
    rope = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}
    config = Qwen2VLConfig(
        text_config=_text_config(
            tok, num_key_value_heads=2, rope_parameters=rope, max_position_embeddings=m["max_position_embeddings"]
        ),
        vision_config={"depth": 2, "num_heads": 2, "embed_dim": 32, "mlp_ratio": 2, "hidden_size": TEXT["hidden_size"],
                       "patch_size": m["patch_size"], "spatial_merge_size": m["spatial_merge_size"],
                       "temporal_patch_size": m["temporal_patch_size"]},  # fmt: skip
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"),
    )
    size = {"shortest_edge": ip.pop("min_pixels"), "longest_edge": ip.pop("max_pixels")}
    images = Qwen2VLImageProcessorPil(size=size, **ip)
    processor = NoVideoQwen2VLProcessor(images, tok, chat_template=template, **cfg["processor"])
    return Qwen2VLForConditionalGeneration(config), processor


def _idefics_style(config_cls: type, model_cls: type, **roles: str) -> Built:
    """Idefics3-style model (pixel-shuffle connector, Llama text) with the stock Idefics3 processor."""
    template = _IDEFICS.replace("BOS", roles["bos_token"])
    tok = train_tokenizer(IDEFICS_TOKENS, template, **roles)
    config = config_cls(
        text_config={"model_type": "llama", **_text_config(tok)},
        vision_config={**VISION, "image_size": IDEFICS_IMAGE, "patch_size": PATCH},
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=2,
    )
    images = Idefics3ImageProcessorPil(
        size={"longest_edge": IDEFICS_IMAGE},
        max_image_size={"longest_edge": IDEFICS_IMAGE},
        do_image_splitting=False,
    )
    processor = Idefics3Processor(
        images, tok, image_seq_len=(IDEFICS_IMAGE // PATCH // 2) ** 2, chat_template=tok.chat_template
    )
    return model_cls(config), processor


def _idefics3() -> Built:
    """Random-weight Idefics3 (Llama-3 special tokens)."""
    return _idefics_style(
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        bos_token="<|begin_of_text|>",
        eos_token="<end_of_utterance>",
        pad_token="<|end_of_text|>",
    )


def _smolvlm() -> Built:
    """Random-weight SmolVLM (SmolLM2 special tokens)."""
    return _idefics_style(
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )


def _llama() -> Built:
    """Random-weight text-only Llama (GQA) with a SmolLM2-style ChatML template."""
    tok = train_tokenizer(
        CHATML_TOKENS,
        chatml("You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    return LlamaForCausalLM(LlamaConfig(**_text_config(tok, num_key_value_heads=2))), tok


def _instructblip() -> Built:
    """Random-weight InstructBLIP (ViT, instruction-aware Q-Former with 4 query tokens, Llama text as Vicuna's); no chat
    template, a BOS before every text as Vicuna's tokenizer adds, a second BPE standing in for the Q-Former's BERT
    tokenizer."""
    tok = train_tokenizer(["<image>"], "", bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>")
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.bos_token_id)]
    )
    qformer_tok = train_tokenizer([], "", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]")
    qformer = {**VISION, "vocab_size": len(qformer_tok), "encoder_hidden_size": VISION["hidden_size"],
               "pad_token_id": qformer_tok.pad_token_id, "max_position_embeddings": 128}  # fmt: skip
    config = InstructBlipConfig(
        vision_config={**VISION, "image_size": IMAGE, "patch_size": PATCH},
        qformer_config=qformer,
        text_config={"model_type": "llama", **_text_config(tok)},
        num_query_tokens=INSTRUCTBLIP_QUERIES,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
    )
    images = BlipImageProcessorPil(size={"height": IMAGE, "width": IMAGE})
    processor = InstructBlipProcessor(images, tok, qformer_tok, num_query_tokens=INSTRUCTBLIP_QUERIES)
    return InstructBlipForConditionalGeneration(config), processor


INSTRUCTBLIP_QUERIES = 4  # Q-Former query tokens (the real model: 32)
_BUILDERS: dict[str, Callable[[], Built]] = {
    "qwen2_vl": _qwen2_vl,
    "qwen2_5_vl": _qwen2_5_vl,
    "llava": _llava,
    "llava_onevision": _llava_onevision,
    "idefics3": _idefics3,
    "smolvlm": _smolvlm,
    "llama": _llama,
}
FAMILIES: tuple[str, ...] = tuple(_BUILDERS)
# Stand-ins of the paper's checkpoints (registry names), with their real templates and processor settings.
_BUILDERS.update({"llava-ov-7b": _llava_ov_7b, "qwen2-vl-7b": _qwen2_vl_7b})
LIKE_CHECKPOINTS: tuple[str, ...] = ("llava-ov-7b", "qwen2-vl-7b")
# Families run for zero-shot generation (and SAVs) only, not through every family test: no chat template, so no ICL.
_BUILDERS.update({"instructblip": _instructblip})
GENERATION_FAMILIES: tuple[str, ...] = ("instructblip",)


def build_random_model(family: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Build a random-weight `family` model seeded by `seed`; save it and its processor to `out_dir`.

    `family` is one of `FAMILIES` or `GENERATION_FAMILIES`, or one of `LIKE_CHECKPOINTS` for a stand-in of that paper
    checkpoint, or one of `CONTRASTIVE_KINDS` (a CLIP / SigLIP: `build_random_contrastive`).
    """
    if family in CONTRASTIVE_KINDS:
        return build_random_contrastive(family, out_dir, seed)
    if family not in _BUILDERS:
        known = FAMILIES + GENERATION_FAMILIES + LIKE_CHECKPOINTS
        raise ValueError(f"unknown family {family!r}; expected one of {known}")
    torch.manual_seed(seed)
    model, processor = _BUILDERS[family]()
    tok = getattr(processor, "tokenizer", processor)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    out = Path(out_dir)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


# ----- contrastive image-text models (the CLIP / SigLIP zero-shot rows) ----------------------------------------------
CONTRASTIVE_KINDS: tuple[str, ...] = ("clip", "siglip")
CONTRASTIVE_TEXT_LENGTH = 16  # tokens: SigLIP pads every text to this many, as the real one pads to 64


def _contrastive_tokenizer() -> PreTrainedTokenizerFast:
    """The built-in BPE with CLIP's start / end tokens wrapped around every text (the end token is what CLIP pools)."""
    tok = train_tokenizer([], "", bos_token="<|startoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    bos, eos = tok.bos_token, tok.eos_token
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, tok.bos_token_id), (eos, tok.eos_token_id)]
    )
    tok.model_max_length = CONTRASTIVE_TEXT_LENGTH
    return tok


def _contrastive(kind: str) -> Built:
    """Random-weight CLIP or SigLIP (two-layer towers, 28-px images) with its processor."""
    tok = _contrastive_tokenizer()
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    text = {**VISION, "vocab_size": len(tok), "max_position_embeddings": CONTRASTIVE_TEXT_LENGTH, **ids}
    vision = {**VISION, "image_size": IMAGE, "patch_size": PATCH}
    if kind == "clip":
        images = CLIPImageProcessorPil(size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE})
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
        return model, CLIPProcessor(images, tok)
    images = SiglipImageProcessorPil(size={"height": IMAGE, "width": IMAGE})
    tok.model_input_names = ["input_ids"]  # as SigLIP's tokenizer: no attention mask, padding attended to
    return SiglipModel(SiglipConfig(text_config=text, vision_config=vision)), SiglipProcessor(images, tok)


def build_random_contrastive(kind: str, out_dir: str | Path, seed: int = 0) -> Path:
    """A random-weight CLIP or SigLIP (``kind``) and its processor, saved to ``out_dir`` for
    ``AutoModel`` / ``AutoProcessor`` (``savs.baselines.contrastive.load_contrastive``)."""
    if kind not in CONTRASTIVE_KINDS:
        raise ValueError(f"unknown contrastive model kind {kind!r}; expected one of {CONTRASTIVE_KINDS}")
    torch.manual_seed(seed)
    model, processor = _contrastive(kind)
    out = Path(out_dir)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
