"""Tests of savs-mini: the LMM and its adapter on a tiny random LM (fast), and on the real weights.

The real-weights tests share one session-scoped load of savs-mini from the converted cache (on a machine that
never converted the GGUF, the first load converts it once).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F
from transformers import AutoTokenizer, LlamaForCausalLM

from savs import kvcache
from savs.baselines import match_answer
from savs.capture import capture_features
from savs.data import load_task
from savs.data.offline import EASY_VQA_LABELS
from savs.examples import Example
from savs.extract import extract_heads, last_token_index
from savs.mini import convert as convert_mod
from savs.mini.adapter import MiniAdapter
from savs.mini.model import IMAGE_TOKEN, MiniLMM, Projector, add_image_token, load_projector
from savs.mini.train import Batcher, norm_matched_projector
from savs.mini.vision import FEATURE_DIM, VisionEncoder, preprocess
from savs.testing.random_models import build_random_model

QUESTION = "Is there a red circle in the image? Answer with Yes or No."


def _image(seed: int, size: int = 64) -> Image.Image:
    """A seeded random RGB image."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def _examples(n: int, text: str = QUESTION) -> list[Example]:
    return [Example(text, "Yes", (_image(i),), f"t/{i}") for i in range(n)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> MiniAdapter:
    """savs-mini's wiring around a tiny random Llama (ChatML template) and the real, frozen vision encoder."""
    path = build_random_model("llama", tmp_path_factory.mktemp("tiny-llama"))
    lm = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    model = MiniLMM(VisionEncoder(), Projector(FEATURE_DIM, lm.config.hidden_size), lm, add_image_token(tok))
    return MiniAdapter(model.eval(), tok, "savs-mini-tiny", "untrained")


@pytest.fixture(scope="session")
def real() -> MiniAdapter:
    """The real savs-mini (aligned projector), loaded once per session."""
    return MiniAdapter.from_pretrained("savs-mini")


# ----- prompts and batches -----------------------------------------------------------------------
def test_prompt_puts_question_first_then_image_tokens(tiny: MiniAdapter) -> None:
    prompt = tiny.render(_examples(1)[0])
    assert prompt.index(QUESTION) < prompt.index(IMAGE_TOKEN)
    assert prompt.endswith("<|im_start|>assistant\n")
    batch = tiny.encode(_examples(3), padding_side="left")
    n_image = (batch["input_ids"] == tiny.model.image_token_id).sum(1)
    assert n_image.tolist() == [9, 9, 9]
    assert batch["pixel_values"].shape == (3, 3, 224, 224)


def test_mixed_image_counts_are_refused(tiny: MiniAdapter) -> None:
    with pytest.raises(ValueError, match="numbers of images"):
        tiny.encode([*_examples(1), Example("text only", "Yes")])


def test_image_token_count_must_match_images(tiny: MiniAdapter) -> None:
    batch = tiny.encode(_examples(2))
    with pytest.raises(ValueError, match="<image> tokens"):
        tiny.model.embed(batch["input_ids"], batch["pixel_values"][:1])


def test_preprocess_range_and_shape() -> None:
    x = preprocess([_image(0, 28), _image(1, 64).convert("L")])
    assert x.shape == (2, 3, 224, 224)
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0


# ----- extraction --------------------------------------------------------------------------------
def test_hooks_reproduce_attention_output(tiny: MiniAdapter) -> None:
    """o_proj applied to the captured per-head vectors gives the attention module's output at the last token."""
    batch = tiny.encode(_examples(2), padding_side="left")
    outputs: dict[int, torch.Tensor] = {}
    handles = [
        layer.self_attn.register_forward_hook(lambda m, a, out, i=i: outputs.__setitem__(i, out[0]))
        for i, layer in enumerate(tiny.layers())
    ]
    try:
        with capture_features(tiny, range(tiny.n_layers), stop_early=False) as capture, torch.inference_mode():
            heads = capture.run(lambda: tiny.forward(batch), last_token_index(batch["attention_mask"]))["heads"]
    finally:
        for h in handles:
            h.remove()
    last = last_token_index(batch["attention_mask"])
    for i in range(tiny.n_layers):
        flat = heads[:, i].reshape(2, tiny.n_heads * tiny.head_dim)  # (B, H*d)
        expected = outputs[i][torch.arange(2), last]  # (B, D)
        torch.testing.assert_close(tiny.o_proj(i)(flat), expected, atol=1e-5, rtol=1e-4)


def test_prefix_cache_matches_full_pass(tiny: MiniAdapter) -> None:
    examples = _examples(4)
    with_prefix = extract_heads(tiny, examples, batch_size=4, progress=False)
    without = extract_heads(tiny, examples, batch_size=4, prefix_cache=False, progress=False)
    np.testing.assert_allclose(with_prefix, without, atol=1e-4)


def test_batched_matches_one_by_one(tiny: MiniAdapter) -> None:
    examples = [*_examples(2), Example("Which shape is this?", "circle", (_image(9),))]
    batched = extract_heads(tiny, examples, batch_size=3, progress=False)
    single = extract_heads(tiny, examples, batch_size=1, progress=False)
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_vision_runs_once_per_example(tiny: MiniAdapter) -> None:
    calls: list[int] = []
    handle = tiny.model.vision.register_forward_hook(lambda m, a, out: calls.append(out.shape[0]))
    try:
        extract_heads(tiny, _examples(3), batch_size=3, progress=False)
        tiny.generate(_examples(2), max_new_tokens=3)
    finally:
        handle.remove()
    assert calls == [3, 2]


def test_generate_runs_a_shared_prefix_apart_only_where_it_pays(tiny: MiniAdapter, count_forwards, monkeypatch) -> None:
    """One greedy step is one pass, plus one for the shared prefix when it is at least MIN_SHARED_PREFIX tokens (the
    rule extraction follows)."""
    calls = count_forwards(tiny)
    tiny.generate(_examples(2), max_new_tokens=1)
    assert len(calls) == 2
    monkeypatch.setattr(kvcache, "MIN_SHARED_PREFIX", 10**6)
    tiny.generate(_examples(2), max_new_tokens=1)
    assert len(calls) == 3


def test_generate_is_the_argmax_of_the_models_own_forward(tiny: MiniAdapter) -> None:
    """Greedy answers, batched with a shared prefix run apart and a padded suffix, equal an argmax loop over full
    forward passes of each example alone (no padding, no prefix, no KV cache), stopped at EOS.

    On a copy whose queries and keys are scaled 10x: at random init attention is near uniform and every prompt gets
    the same answer, so a decoder that dropped the shared prefix or ignored padding would pass unseen; sharpened, the
    answers depend on the prompt (both faults then change them)."""
    sharp = copy.deepcopy(tiny)
    with torch.no_grad():
        for layer in sharp.model.lm.model.layers:
            layer.self_attn.q_proj.weight.mul_(10.0)
            layer.self_attn.k_proj.weight.mul_(10.0)
    examples = [*_examples(2), Example("What colour is the shape? Answer with one word.", "red", (_image(5),), "t/5")]
    eos = sharp.tokenizer.eos_token_id
    expected = []
    for example in examples:
        batch = sharp.encode([example])
        ids = batch["input_ids"]  # (1, T)
        for _ in range(4):
            with torch.no_grad():
                logits = sharp.model(ids, torch.ones_like(ids), batch["pixel_values"]).logits[0, -1]  # (V,)
            if logits.argmax() == eos:
                break
            ids = torch.cat([ids, logits.argmax().view(1, 1)], dim=1)  # (1, T + 1)
        expected.append(sharp.tokenizer.decode(ids[0, batch["input_ids"].shape[1] :], skip_special_tokens=True).strip())
    assert sharp.generate(examples, max_new_tokens=4) == expected
    assert len(set(expected)) > 1 and all(expected)  # the prompts' answers differ, so the comparison can tell


# ----- alignment recipe --------------------------------------------------------------------------
def test_training_loss_matches_full_forward(tiny: MiniAdapter) -> None:
    """The prefix-KV training loss equals the loss of plain full-sequence passes; only the projector learns."""
    examples = [
        Example("Describe the image briefly.", "A red circle.", (_image(0),), meta={"image_id": 0}),
        Example("What color is the shape? Answer with one word.", "Blue", (_image(1),), meta={"image_id": 1}),
        Example(QUESTION, "No", (_image(2),), meta={"image_id": 2}),
    ]
    model = tiny.model
    features = model.image_features(preprocess([e.images[0] for e in examples]))  # (3, 9, 1280)
    batcher = Batcher(tiny)
    model.projector.requires_grad_(True)
    try:
        loss = batcher.loss(examples, features)
        loss.backward()
        assert all(p.grad is not None for p in model.projector.parameters())
        assert all(p.grad is None for p in model.lm.parameters())
    finally:
        model.projector.requires_grad_(False)
        model.projector.zero_grad(set_to_none=True)
    total, count = 0.0, 0
    with torch.no_grad():
        for e, f in zip(examples, features, strict=True):
            prefix, suffix, start = batcher.split(e)
            ids = torch.tensor([[*prefix, *suffix]])
            logits = model(ids, torch.ones_like(ids), image_features=f[None]).logits[0]
            answer = len(prefix) + start
            total += torch.nn.functional.cross_entropy(logits[answer - 1 : -1], ids[0, answer:], reduction="sum")
            count += ids.shape[1] - answer
    torch.testing.assert_close(loss.detach(), total / count, atol=1e-5, rtol=1e-5)


def test_norm_matched_projector(tiny: MiniAdapter) -> None:
    features = torch.rand(4, 9, FEATURE_DIM) * 3
    proj = norm_matched_projector(tiny.model, features, seed=0)
    target = tiny.model.get_input_embeddings().weight.norm(dim=-1).mean()
    torch.testing.assert_close(proj(features).norm(dim=-1).mean(), target, rtol=1e-4, atol=1e-4)
    again = norm_matched_projector(tiny.model, features, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(proj.state_dict().values(), again.state_dict().values(), strict=True))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes", "Yes"),
        ("no.", "No"),
        ("The shape is a circle.", "circle"),
        ("Red or blue", "red"),
        ("This is a T-shirt.", "T-shirt/top"),
        ("Dunno", None),
    ],
)
def test_match_answer_on_mini_labels(text: str, expected: str | None) -> None:
    labels = ("Yes", "No", "circle", "blue", "red", "T-shirt/top")
    assert match_answer(text, labels) == expected


# ----- conversion cache --------------------------------------------------------------------------
def _fake_gguf_loaders(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Make ``convert`` read a tiny Llama instead of dequantising the real GGUF."""
    path = build_random_model("llama", tmp_path / "fake-gguf")
    tokenizer = AutoTokenizer.from_pretrained(path)

    def model(*args, **kwargs) -> LlamaForCausalLM:
        m = LlamaForCausalLM.from_pretrained(path)
        m.config.quantization_config = {"quant_method": "gguf"}
        return m

    monkeypatch.setattr(convert_mod.AutoModelForCausalLM, "from_pretrained", model)
    monkeypatch.setattr(convert_mod.AutoTokenizer, "from_pretrained", lambda *a, **k: tokenizer)


def test_conversion_is_atomic_and_reused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_gguf_loaders(monkeypatch, tmp_path)
    cache = tmp_path / "cache"

    def broken(self, *args, **kwargs):
        raise RuntimeError("killed mid-write")

    with monkeypatch.context() as m:
        m.setattr(convert_mod.PreTrainedTokenizerBase, "save_pretrained", broken)
        with pytest.raises(RuntimeError, match="mid-write"):
            convert_mod.convert(cache)
    models = cache / "models"
    assert list(models.iterdir()) == []  # neither a half-written model nor a temporary folder is left
    out = convert_mod.convert(cache)
    assert out == convert_mod.converted_dir(cache)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert [p.name for p in models.iterdir()] == [out.name]
    monkeypatch.setattr(convert_mod.AutoModelForCausalLM, "from_pretrained", broken)
    assert convert_mod.convert(cache) == out  # reused: the GGUF is not read again


# ----- real weights ------------------------------------------------------------------------------
def test_real_geometry_and_extraction_shape(real: MiniAdapter) -> None:
    assert (real.n_layers, real.n_heads, real.head_dim) == (30, 9, 64)
    task = load_task("easy_vqa_shape", n_train=0, n_test=2, seed=0)
    heads = extract_heads(real, task.test, progress=False)
    assert heads.shape == (2, 30, 9, 64) and np.isfinite(heads).all()


def test_real_load_is_fast_once_converted(real: MiniAdapter) -> None:
    start = time.perf_counter()
    convert_mod.load_lm()
    assert time.perf_counter() - start < 15  # ~1 s on an idle 2-core machine; generous for a busy one


def test_projector_variants_have_different_fingerprints(real: MiniAdapter) -> None:
    model = real.model
    untrained = MiniLMM(model.vision, load_projector("untrained"), model.lm, model.image_token_id)
    other = MiniAdapter(untrained, real.processor, "savs-mini-untrained", "untrained", source=real.source)
    assert other.identity.namespace != real.identity.namespace
    renamed = MiniAdapter(untrained, real.processor, "savs-mini", "aligned", source=real.source)  # other weights
    assert renamed.identity.namespace != real.identity.namespace


def test_unknown_projector_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown projector variant"):
        MiniAdapter.from_pretrained("savs-mini", projector="finetuned")


@pytest.mark.slow
def test_real_answers_held_out_easy_vqa_questions(real: MiniAdapter) -> None:
    """Aligned savs-mini names the shape and colour of held-out (test split) easy-VQA images."""
    examples = [
        e for kind in ("shape", "color") for e in load_task(f"easy_vqa_{kind}", n_train=0, n_test=6, seed=0).test
    ]
    answers = real.generate(examples, max_new_tokens=8)
    labels = EASY_VQA_LABELS["shape"] + EASY_VQA_LABELS["color"]
    assert all(match_answer(a, labels) for a in answers), answers  # sensible: names a shape or a colour
    correct = sum(match_answer(a, labels) == e.label for a, e in zip(answers, examples, strict=True))
    assert correct >= len(examples) // 2, list(zip(answers, [e.label for e in examples], strict=True))


@pytest.mark.slow
def test_real_gguf_conversion(tmp_path: Path) -> None:
    """The real GGUF converts into a fresh cache dir, loads back, and the second conversion is a no-op."""
    out = convert_mod.convert(tmp_path)
    assert [p.name for p in (tmp_path / "models").iterdir()] == [out.name]
    start = time.perf_counter()
    assert convert_mod.convert(tmp_path) == out
    assert time.perf_counter() - start < 1
    lm, tok = convert_mod.load_lm(tmp_path)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out_ids = lm.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out_ids[0, ids["input_ids"].shape[1] :])


def test_vision_memo_gives_a_fresh_pass_features_shared_and_bounded(tiny: MiniAdapter, monkeypatch) -> None:
    """Features of images seen before come from the memo, equal to an independent pass of the network; a second
    encoder (the other projector variant's) shares them; the memo keeps at most MEMO_SIZE images."""
    from savs.mini import vision

    encoder = tiny.model.vision
    pixels = preprocess([_image(s) for s in (101, 102, 103)])  # (3, 3, 224, 224)
    with torch.no_grad():
        fmap = encoder.net.extract_features(pixels)  # the independent pass
    expected = F.adaptive_avg_pool2d(fmap, 3).flatten(2).transpose(1, 2)  # (3, 9, 1280)
    torch.testing.assert_close(encoder(pixels), expected, rtol=1e-5, atol=1e-5)
    runs = []
    real_pass = encoder.net.extract_features
    monkeypatch.setattr(encoder.net, "extract_features", lambda x: runs.append(len(x)) or real_pass(x))
    again = encoder(torch.cat([pixels[1:], preprocess([_image(104)])]))
    assert runs == [1]  # only the new image ran
    torch.testing.assert_close(again[:2], expected[1:], rtol=0, atol=0)
    other = VisionEncoder()
    monkeypatch.setattr(other.net, "extract_features", lambda x: runs.append(len(x)) or real_pass(x))
    other(pixels)
    assert runs == [1]  # shared across encoders
    monkeypatch.setattr(vision, "MEMO_SIZE", 2)
    encoder(preprocess([_image(s) for s in (105, 106, 107)]))
    assert len(vision._MEMO) == 2


def test_bf16_savs_mini_extracts_with_its_own_vision_features(tiny: MiniAdapter) -> None:
    """A bf16 savs-mini (``DTYPE=bfloat16``) runs its vision encoder in bf16 and extracts, also after an fp32 one
    saw the same images in this process: the memo keeps the two dtypes' features apart."""
    from savs.mini import vision

    half = MiniAdapter(copy.deepcopy(tiny.model).to(torch.bfloat16), tiny.processor, "savs-mini-tiny-bf16", "untrained")
    pixels = preprocess([_image(s) for s in (121, 122)])  # (2, 3, 224, 224) float32
    before = len(vision._MEMO)
    assert tiny.model.image_features(pixels).dtype == torch.float32
    assert half.model.image_features(pixels).dtype == torch.bfloat16  # computed, not the fp32 entries
    assert len(vision._MEMO) == before + 4
    assert half.vision_encoder_features([_image(123)]).shape == (1, FEATURE_DIM)
    heads = extract_heads(half, _examples(2), progress=False)
    assert heads.shape == (2, half.n_layers, half.n_heads, half.head_dim) and np.isfinite(heads).all()


def test_vision_memo_entries_do_not_hold_their_batch(tiny: MiniAdapter) -> None:
    """Each memo entry owns its features' memory: a view into the batch's output would keep the whole batch alive."""
    from savs.mini import vision

    tiny.model.vision(preprocess([_image(s) for s in (131, 132, 133)]))
    for entry in list(vision._MEMO.values())[-3:]:
        assert entry.untyped_storage().nbytes() == entry.numel() * entry.element_size()


def _tiny_mini(tiny: MiniAdapter, seed: int) -> MiniAdapter:
    """``tiny``'s wiring around another tiny random LM (``seed``), with the projector ``tiny`` has."""
    torch.manual_seed(seed)
    lm = LlamaForCausalLM(tiny.model.lm.config).eval()
    model = MiniLMM(tiny.model.vision, copy.deepcopy(tiny.model.projector), lm, tiny.model.image_token_id)
    return MiniAdapter(model.eval(), tiny.processor, "savs-mini-tiny", "untrained")


def test_an_lm_passed_in_is_identified_by_its_weights_not_as_smollm2(tiny: MiniAdapter) -> None:
    """Only ``from_pretrained`` claims the SmolLM2 source; a savs-mini built around another LM digests its weights,
    so two such LMs never share a cache namespace."""
    assert tiny.identity.source.startswith("weights:")
    a, b = _tiny_mini(tiny, 1), _tiny_mini(tiny, 2)
    assert a.identity.source != b.identity.source and a.identity.namespace != b.identity.namespace


def test_projector_trained_in_place_after_building_the_adapter_changes_the_identity(tiny: MiniAdapter) -> None:
    """``savs.mini.train`` builds its adapter around the untrained projector, then trains it in place."""
    before = _tiny_mini(tiny, 1).identity
    trained = _tiny_mini(tiny, 1)
    with torch.no_grad():
        trained.model.projector.fc2.bias.add_(0.1)  # a training step
    assert trained.identity.extra != before.extra and trained.identity.namespace != before.namespace
