"""Random-weight stand-ins of every family: build, reload through the Auto classes, run padded batches.

`tiny_dir` (build once per session) and `family` (every family) come from conftest.py.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from conftest import make_examples
from PIL import Image
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    ProcessorMixin,
)

from savs.examples import Example
from savs.testing.random_models import FAMILIES, build_random_model

MULTIMODAL = tuple(f for f in FAMILIES if f != "llama")
QUESTIONS = ("hello?", "Is there a red circle in the image? Answer with Yes or No.")
IMAGES = (Image.new("RGB", (28, 28), (255, 0, 0)), Image.new("RGB", (64, 48), (0, 0, 255)))
QWEN_SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
SMOL_SYSTEM = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
)
ASSISTANT = "<|im_end|>\n<|im_start|>assistant\n"
QWEN_IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
RENDERED = {  # one image + "hello?", with the generation prompt
    "qwen2_vl": f"{QWEN_SYSTEM}<|im_start|>user\n{QWEN_IMAGE}hello?{ASSISTANT}",
    "llava": "USER: <image>\nhello? ASSISTANT:",
    "llava_onevision": f"{QWEN_SYSTEM}<|im_start|>user\n<image>\nhello?{ASSISTANT}",
    "idefics3": "<|begin_of_text|>User:<image>hello?<end_of_utterance>\nAssistant:",
    "smolvlm": "<|im_start|>User:<image>hello?<end_of_utterance>\nAssistant:",
    "llama": f"{SMOL_SYSTEM}<|im_start|>user\nhello?{ASSISTANT}",
}
RENDERED["qwen2_5_vl"] = RENDERED["qwen2_vl"]
LAYERS = {
    "idefics3": "model.text_model.layers",
    "smolvlm": "model.text_model.layers",
    "llama": "model.layers",
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _load(path: str, family: str, attn: str = "sdpa"):
    """Model and processor (tokenizer for text-only families) through the Auto classes."""
    text_only = family == "llama"
    model = (AutoModelForCausalLM if text_only else AutoModelForImageTextToText).from_pretrained(
        path, attn_implementation=attn
    )
    return model, (AutoTokenizer if text_only else AutoProcessor).from_pretrained(path)


def _prompt(processor, family: str, question: str, n_images: int = 1) -> str:
    """The chat-templated user turn with `n_images` images before the question."""
    content = (
        question
        if family == "llama"
        else [{"type": "image"}] * n_images + [{"type": "text", "text": question}]
    )
    return processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )


def _inputs(processor, family: str, prompts: list[str], images: list[list[Image.Image]], side: str = "left"):
    """Padded batch: nested image lists, one list per prompt."""
    kwargs = {} if family == "llama" else {"images": images}
    return processor(text=prompts, padding=True, padding_side=side, return_tensors="pt", **kwargs)


def test_unknown_family_lists_families(tmp_path: Path):
    with pytest.raises(ValueError, match="qwen2_vl.*llama"):
        build_random_model("gpt5", tmp_path)


def test_random_scheme_builds_into_the_cache_and_the_old_name_says_the_new_one(tmp_path: Path):
    from savs.models import load_model

    adapter = load_model("random:llama", cache_dir=tmp_path, device="cpu")
    assert adapter.name == "random:llama" and (tmp_path / "random" / "llama" / "config.json").is_file()
    with pytest.raises(ValueError, match="now named random:<family>"):
        load_model("tiny:llama", cache_dir=tmp_path)


def test_reload_layout_and_template(tiny_dir, family: str):
    path = tiny_dir(family)
    config = AutoConfig.from_pretrained(path)
    model, processor = _load(path, family)
    layers = model.get_submodule(LAYERS.get(family, "model.language_model.layers"))
    text = config.get_text_config()
    assert len(layers) == text.num_hidden_layers
    assert all(
        layer.self_attn.o_proj.in_features == text.num_attention_heads * text.head_dim for layer in layers
    )
    assert _prompt(processor, family, "hello?") == RENDERED[family]
    if family != "llama":
        assert isinstance(processor, ProcessorMixin)
        image_token_id = getattr(config, "image_token_id", None) or config.image_token_index
        assert processor.image_token_id == image_token_id


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_batch_matches_single(tiny_dir, family: str, side: str, attn: str):
    model, processor = _load(tiny_dir(family), family, attn)
    prompts = [_prompt(processor, family, q) for q in QUESTIONS]
    batch = _inputs(processor, family, prompts, [[IMAGES[0]], [IMAGES[1]]], side)
    single = _inputs(processor, family, prompts[:1], [[IMAGES[0]]])
    with torch.no_grad():
        logits = model(**batch).logits
        alone = model(**single).logits[0, -1]
    assert logits.shape == (*batch["input_ids"].shape, model.config.get_text_config().vocab_size)
    assert not logits.isnan().any()
    last = batch["attention_mask"][0].nonzero().max()
    torch.testing.assert_close(logits[0, last], alone, atol=1e-5, rtol=1e-5)


def test_generate(tiny_dir, family: str):
    """The family's own greedy ``generate`` (a left-padded batch, KV-cached) gives, token for token, an argmax loop
    over full forward passes of each prompt alone (no padding, no cache): a stand-in whose padding, positions or
    cache went wrong decodes differently. Special and added tokens (EOS, image placeholders: a random model emits
    them, and a re-read image token would ask for an image) are barred in both."""
    model, processor = _load(tiny_dir(family), family)
    tokenizer = getattr(processor, "tokenizer", processor)
    barred = sorted({*tokenizer.all_special_ids, *tokenizer.added_tokens_decoder})
    prompts = [_prompt(processor, family, q) for q in QUESTIONS]
    images = [[IMAGES[0]], [IMAGES[1]]]
    batch = _inputs(processor, family, prompts, images)
    out = model.generate(**batch, max_new_tokens=3, do_sample=False, suppress_tokens=barred)  # (2, T + 3)
    for row, prompt in enumerate(prompts):
        inputs = dict(_inputs(processor, family, [prompt], images[row : row + 1]))
        n_prompt = inputs["input_ids"].shape[1]
        for _ in range(3):
            with torch.no_grad():
                logits = model(**inputs).logits[0, -1]  # (V,)
            logits[barred] = -torch.inf
            ids = torch.cat([inputs["input_ids"], logits.argmax().view(1, 1)], dim=1)  # (1, T + 1)
            # per-token inputs (attention mask, token types) grow with the ids: the new token is unpadded text
            grown = {k: torch.cat([v, v.new_zeros(1, 1) + (k == "attention_mask")], dim=1)
                     for k, v in inputs.items() if torch.is_tensor(v) and v.shape == inputs["input_ids"].shape}
            inputs = {**inputs, **grown, "input_ids": ids}
        assert out[row, -3:].tolist() == inputs["input_ids"][0, n_prompt:].tolist(), (family, row)


@pytest.mark.parametrize("family", MULTIMODAL)
def test_two_images_in_one_prompt(tiny_dir, family: str):
    model, processor = _load(tiny_dir(family), family)
    prompts = [_prompt(processor, family, QUESTIONS[0], n_images=2), _prompt(processor, family, QUESTIONS[1])]
    batch = _inputs(processor, family, prompts, [list(IMAGES), [IMAGES[1]]])
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape
    assert logits.isfinite().all()


def test_seed_sets_weights(tmp_path: Path):
    weights = [
        AutoModelForCausalLM.from_pretrained(
            build_random_model("llama", tmp_path / str(i), seed=seed)
        ).lm_head.weight
        for i, seed in enumerate((0, 0, 1))
    ]
    assert torch.equal(weights[0], weights[1])
    assert not torch.equal(weights[0], weights[2])


def test_a_single_image_checkpoint_sees_several_images_side_by_side(tiny_adapter):
    """LLaVA-1.5 (``single_image`` in the registry) is shown BLINK-style examples as one joined image; a multi-image
    LLaVA model sees them as they are."""
    from dataclasses import replace as replaced

    from savs.examples import joined_image
    from savs.models import MODELS

    assert MODELS["llava-1.5-7b"].single_image and not MODELS["llava-ov-7b"].single_image
    adapter = tiny_adapter("llava")
    a, b = (e.images[0] for e in make_examples(2, with_images=True, seed=5))
    several = Example(text="<image>\n<image>\nSame?", label="Yes", images=(a, b))
    assert adapter.shown(several) is several
    single = copy.copy(adapter)
    single.single_image = True
    shown = single.shown(several)
    assert shown.text == "<image>\nSame?" and len(shown.images) == 1
    assert shown.images[0].read() == joined_image([a, b]).read()
    assert single.render(several) == adapter.render(replaced(several, text=shown.text, images=shown.images))
