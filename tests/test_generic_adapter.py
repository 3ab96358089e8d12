"""The generic adapter: heads found on the loaded model (hybrid decoders keep their real layer numbers), refusals with
a reason, and extraction's shortcuts taken only where a probe shows they change nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import make_examples
from transformers import AutoConfig, AutoModelForCausalLM

from savs import extract
from savs.examples import Example
from savs.extract import extract_features, extract_heads
from savs.models import load_model
from savs.models.discovery import UnsupportedModelError
from savs.models.evidence import decide, measure, shortcut_evidence
from savs.models.qwen2_vl import Qwen2VLAdapter
from savs.models.registry import refusal
from savs.pipeline import SAVPipeline, fit_sav
from savs.testing.random_models import CHATML_TOKENS, chatml, train_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 16, "max_position_embeddings": 512, "num_hidden_layers": 4}  # fmt: skip
# Hybrid decoders: attention at layers 1 and 3 only, the others linear attention, convolution or Mamba.
HYBRIDS = {
    "qwen3_5_text": {
        "layer_types": ["linear_attention", "full_attention", "linear_attention", "full_attention"],
        "linear_num_key_heads": 2, "linear_num_value_heads": 4, "linear_key_head_dim": 16, "linear_value_head_dim": 16,
    },
    "lfm2": {"layer_types": ["conv", "full_attention", "conv", "full_attention"]},
    "nemotron_h": {
        "layers_block_type": ["mamba", "attention", "mlp", "attention"],
        "mamba_num_heads": 4, "mamba_head_dim": 16, "n_groups": 1, "ssm_state_size": 16,
    },
}  # fmt: skip


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Evidence memos go to a fresh cache per test: each test sees the probe run, not an earlier test's memo."""
    monkeypatch.setenv("SAVS_CACHE", str(tmp_path / "cache"))


def _save_text_model(model_type: str, out, **config) -> str:
    """A tiny random causal LM of ``model_type`` with the built-in ChatML tokenizer, saved to ``out``."""
    tok = train_tokenizer(CHATML_TOKENS, chatml("You are a helpful assistant."), eos_token="<|im_end|>",
                     pad_token="<|endoftext|>")  # fmt: skip
    ids = {"pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id, "vocab_size": len(tok)}
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **{**SIZE, **ids, **config}))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def hybrid_dir(tmp_path_factory):
    built = {}

    def get(model_type: str) -> str:
        if model_type not in built:
            built[model_type] = _save_text_model(model_type, tmp_path_factory.mktemp(model_type), **HYBRIDS[model_type])
        return built[model_type]

    return get


ENDS = ("self_attn.o_proj", "self_attn.out_proj", "mixer.o_proj")  # each hybrid's attention projection, by name


def _text_examples(n: int) -> list[Example]:
    return make_examples(n, with_images=False)


@pytest.mark.parametrize("model_type", list(HYBRIDS))
def test_hybrid_decoders_have_heads_only_in_attention_layers_under_their_real_numbers(hybrid_dir, model_type):
    adapter = load_model(hybrid_dir(model_type), device="cpu")
    assert adapter.n_layers == 4 and adapter.head_layers == (1, 3)
    assert (adapter.n_heads, adapter.head_dim) == (4, 16)
    with pytest.raises(ValueError, match="no softmax-attention heads"):
        adapter.o_proj(0)
    # the hook reference: each attention layer's output projection found by module name, fed the last token
    names = {name: m for name, m in adapter.model.named_modules()}
    prefix = "model.layers" if "model.layers.1" in names else "backbone.layers"
    attn = {layer: next(m for n, m in names.items() if n.startswith(f"{prefix}.{layer}.") and n.endswith(ENDS))
            for layer in (1, 3)}  # fmt: skip
    assert all(adapter.o_proj(layer) is attn[layer] for layer in (1, 3))
    examples = _text_examples(3)
    heads = extract_heads(adapter, examples, progress=False)  # (n, 2, H, d): layers 1 and 3
    assert heads.shape == (3, 2, 4, 16)
    kept: dict[int, torch.Tensor] = {}
    for i, e in enumerate(examples):
        kept.clear()
        hooks = [attn[layer].register_forward_pre_hook(lambda m, a, layer=layer: kept.update({layer: a[0][0, -1]}))
                 for layer in (1, 3)]  # fmt: skip
        try:
            with torch.inference_mode():
                adapter.model(**adapter.encode([e]))
        finally:
            for h in hooks:
                h.remove()
        for column, layer in enumerate((1, 3)):
            np.testing.assert_allclose(heads[i, column].reshape(-1), kept[layer].numpy(), rtol=1e-5, atol=1e-6)
    features = extract_features(adapter, examples[:1], heads=adapter.head_layers, hidden=-1, progress=False)
    with torch.inference_mode():
        states = adapter.model(**adapter.encode(examples[:1]), output_hidden_states=True).hidden_states
    np.testing.assert_allclose(features["hidden"][0], states[-1][0, -1].numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"layers \[2\] .* no softmax-attention heads"):
        extract_heads(adapter, examples, layers=[2], progress=False)
    np.testing.assert_array_equal(extract_heads(adapter, examples, layers=[3], progress=False)[:, 0], heads[:, 1])


def test_fit_sav_on_a_hybrid_votes_with_real_layer_numbers_and_round_trips(hybrid_dir, tmp_path):
    adapter = load_model(hybrid_dir("qwen3_5_text"), device="cpu")
    examples = [Example(text=f"{word} {i}", label=word, uid=f"h/{i}") for i in range(6) for word in ("red", "blue")]
    sav = fit_sav(adapter, examples, n_heads=3, batch_size=4)
    X = extract_heads(adapter, examples, progress=False)  # (n, 2, H, d) over head_layers
    assert set(sav.heads[:, 0].tolist()) <= {1, 3}
    rows = [adapter.head_layers.index(layer) for layer in sav.heads[:, 0]]
    features = sav.features(examples, progress=False)[:, :, 0]  # (n, k, d)
    np.testing.assert_allclose(features, X[:, rows, sav.heads[:, 1]], rtol=1e-5, atol=1e-6)
    sav.save(tmp_path / "sav")
    loaded = SAVPipeline.load(tmp_path / "sav", adapter=adapter)
    np.testing.assert_array_equal(loaded.heads, sav.heads)
    np.testing.assert_array_equal(loaded.predict(examples, progress=False), sav.predict(examples, progress=False))


def test_heads_equal_a_hand_computed_attention(tiny_adapter):
    """Layer 1's per-head outputs at the last token, from the layer's input by the textbook formula (RMSNorm, Q/K/V,
    rotary positions, causal softmax over the prompt, grouped KV heads): what extraction keeps."""
    adapter = tiny_adapter("llama")
    cfg = adapter.text_config
    [example] = _text_examples(1)
    batch = adapter.encode([example])
    layer = adapter.layers()[1]
    inputs = {}
    hook = layer.register_forward_pre_hook(
        lambda m, a, k: inputs.update(x=(a[0] if a else k["hidden_states"])[0]), with_kwargs=True
    )
    try:
        with torch.inference_mode():
            adapter.model(**batch)
    finally:
        hook.remove()
    with torch.no_grad():  # the formula reads the weights: no graph
        x = inputs["x"].double()  # (T, D)
        norm = layer.input_layernorm
        h = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon) * norm.weight.double()
        attn = layer.self_attn
        H, KV, d = cfg.num_attention_heads, cfg.num_key_value_heads, adapter.head_dim
        q = (h @ attn.q_proj.weight.double().T).view(-1, H, d)  # (T, H, d)
        k = (h @ attn.k_proj.weight.double().T).view(-1, KV, d)  # (T, KV, d)
        v = (h @ attn.v_proj.weight.double().T).view(-1, KV, d)  # (T, KV, d)
        theta = cfg.rope_parameters["rope_theta"]
        inv_freq = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
        angles = torch.arange(len(x), dtype=torch.float64)[:, None] * inv_freq  # (T, d/2)
        cos, sin = torch.cat([angles, angles], -1).cos()[:, None], torch.cat([angles, angles], -1).sin()[:, None]

        def rotate(t):
            return t * cos + torch.cat([-t[..., d // 2 :], t[..., : d // 2]], -1) * sin

        q, k = rotate(q), rotate(k)
        k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)  # (T, H, d)
        scores = torch.einsum("hd,thd->ht", q[-1], k) / math.sqrt(d)  # (H, T): the last token attends to all
        expected = torch.einsum("ht,thd->hd", scores.softmax(-1), v)  # (H, d)
    got = extract_heads(adapter, [example], layers=[1], progress=False)[0, 0]  # (H, d)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-5)


# ----- refusals ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model_type", "reason"),
    [
        ("pix2struct", "encoder-decoder"),
        ("florence2", "encoder-decoder"),
        ("clip", "neither an image-text-to-text nor a causal language model"),
        ("mamba", "no softmax-attention output projection"),
    ],
)
def test_refusals_say_why(model_type, reason):
    config = AutoConfig.for_model(model_type)
    assert reason in refusal(config)


@pytest.mark.parametrize("model_type", ["gemma3", "qwen3_vl", "qwen3_5", "llava_next", "paligemma", "lfm2_vl"])
def test_current_architectures_are_not_refused(model_type):
    assert refusal(AutoConfig.for_model(model_type)) is None


def test_load_model_raises_the_refusal(tmp_path):
    path = _save_text_model("mamba", tmp_path, hidden_size=64, num_hidden_layers=2, state_size=8)
    reason = refusal(AutoConfig.from_pretrained(path))
    with pytest.raises(UnsupportedModelError, match="no softmax-attention output projection") as err:
        load_model(path, device="cpu")
    assert reason in str(err.value) and "\n" not in str(err.value)


# ----- evidence ------------------------------------------------------------------------------------------------------
def test_decide_needs_every_shortcut_within_tolerance():
    f32 = torch.float32
    assert decide({"padding": 1e-7, "prefix_cache": 2e-7, "early_stop": 0.0}, f32) == dict.fromkeys(
        ("padding", "prefix_cache", "early_stop"), True
    )
    assert decide({"padding": 1e-7, "prefix_cache": 3e-3, "early_stop": "RuntimeError: x"}, f32) == {
        "padding": True, "prefix_cache": False, "early_stop": False}  # fmt: skip
    # a prefix pass runs right-padded batches: no padding, no prefix cache
    assert not decide({"padding": 0.5, "prefix_cache": 0.0, "early_stop": 0.0}, f32)["prefix_cache"]
    assert decide({"padding": 3e-3, "prefix_cache": 3e-3, "early_stop": 0.0}, torch.bfloat16)["prefix_cache"]


def test_a_model_whose_cached_prefix_disagrees_falls_back(tiny_dir, tmp_path, monkeypatch):
    adapter = load_model(tiny_dir("llama"), device="cpu")
    assert adapter.prefix_cache_ok, "a plain Llama's cached prefix gives the full pass's vectors"
    forward = adapter.forward

    def skewed(batch, cache=None, use_cache=False):  # continuing a cache sees positions shifted by one
        if cache is not None and cache.get_seq_length() > 0:
            mask = batch["attention_mask"]
            batch = {**batch, "position_ids": mask.long().cumsum(-1)[:, -batch["input_ids"].shape[1] :]}
        return forward(batch, cache=cache, use_cache=use_cache)

    monkeypatch.setattr(adapter, "forward", skewed)
    measured = measure(adapter)
    assert isinstance(measured["prefix_cache"], float) and measured["prefix_cache"] > 1e-3
    assert measured["padding"] < 1e-5 and measured["early_stop"] == 0.0
    del adapter.evidence  # decide again for the skewed model, in a cache without the plain model's memo
    monkeypatch.setenv("SAVS_CACHE", str(tmp_path / "other"))
    assert not adapter.prefix_cache_ok and adapter.padding_ok and adapter.early_stop_ok
    calls = []
    monkeypatch.setattr(extract, "prefix_pass", lambda *a: calls.append(1) or pytest.fail("prefix cached"))
    examples = [Example(text=f"Is there a red circle? Answer with Yes or No. ({i})", label="a") for i in range(4)]
    extract_heads(adapter, examples, batch_size=4, progress=False)
    assert not calls


def test_multimodal_rope_falls_back_by_itself(tiny_dir):
    """Qwen2-VL declares no prefix cache; a subclass claiming one still gets none, on the probe's evidence."""

    class Claims(Qwen2VLAdapter):
        supports_prefix_cache = True

    adapter = Claims.from_pretrained(tiny_dir("qwen2_vl"), device="cpu")
    assert not adapter.prefix_cache_ok and not adapter.evidence["prefix_cache"]
    assert adapter.padding_ok and adapter.early_stop_ok


def test_evidence_is_memoised_per_model_identity(tiny_dir, count_forwards):
    adapter = load_model(tiny_dir("llava"), device="cpu")
    again = load_model(tiny_dir("llava"), device="cpu")
    calls = count_forwards(again)
    assert shortcut_evidence(again) == adapter.evidence and not calls


def test_unpadded_models_run_one_example_per_pass(tiny_dir, monkeypatch):
    adapter = load_model(tiny_dir("llama"), device="cpu")
    adapter.evidence = {**adapter.evidence, "padding": False, "prefix_cache": False}
    sizes = []
    real_run = extract._run_batch
    monkeypatch.setattr(extract, "_run_batch", lambda *a: sizes.append(len(a[-1])) or real_run(*a))
    examples = _text_examples(5)
    X = extract_heads(adapter, examples, batch_size=4, progress=False)
    assert sizes == [1] * 5
    reference = np.concatenate([extract_heads(adapter, [e], progress=False) for e in examples])
    np.testing.assert_allclose(X, reference, rtol=1e-5, atol=1e-6)


def test_family_options_are_checked_and_enter_the_identity(tiny_dir):
    from savs.models.llava import LlavaAdapter

    class WithOption(LlavaAdapter):
        default_options = {**LlavaAdapter.default_options, "crops_per_image": False}

    adapter = WithOption.from_pretrained(tiny_dir("llava"), device="cpu")
    plain = adapter.identity.namespace
    assert adapter.identity == load_model(tiny_dir("llava"), device="cpu").identity, "defaults change nothing"
    adapter.set_options({"crops_per_image": True})
    assert adapter.options["crops_per_image"] is True and adapter.identity.namespace != plain
    with pytest.raises(ValueError, match="unknown options \\['crop'\\] .* crops_per_image"):
        adapter.set_options({"crop": True})


def test_savs_heads_names_a_hybrids_heads_by_real_layer(hybrid_dir, tmp_path, capsys):
    from savs.classifier import SAVClassifier
    from savs.cli import main

    adapter = load_model(hybrid_dir("lfm2"), device="cpu")
    examples = [Example(text=f"{word} {i}", label=word, uid=f"h/{i}") for i in range(4) for word in ("red", "blue")]
    X = extract_heads(adapter, examples, progress=False)  # (n, 2, H, d): layers 1 and 3
    full = SAVClassifier(n_heads=3).fit(X, [e.label for e in examples])
    sav = SAVPipeline.from_classifier(adapter, full)
    scores = full.head_scores_  # (2, H)
    meta = {"model": adapter.name, "data": "d", "labels": ["blue", "red"], "shots": 4, "seed": 0,
            "scoring": "in_sample", "selection": "top_k", "head_scores": scores.tolist(),
            "head_layers": list(adapter.head_layers)}  # fmt: skip
    sav.save(tmp_path / "sav", task=meta)
    assert main(["heads", str(tmp_path / "sav"), "--all"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()[2:]]
    assert len(rows) == scores.size and {int(r[1]) for r in rows} == {1, 3}
    for _, layer, head, score, vote in rows:
        row = adapter.head_layers.index(int(layer))
        assert float(score) == pytest.approx(scores[row, int(head)], abs=1e-4)
        assert (vote == "yes") == ([int(layer), int(head)] in sav.heads.tolist())


def test_no_video_processors_build_save_and_load_without_torchvision(tiny_dir, tmp_path):
    from transformers import AutoProcessor, Qwen3VLProcessor

    from savs.models.processors import no_video_processor, no_video_subclass

    cls = no_video_processor("qwen3_vl")
    assert cls is no_video_subclass(Qwen3VLProcessor) and issubclass(cls, Qwen3VLProcessor)
    assert "video_processor" not in cls.get_attributes() and no_video_processor("paligemma") is None
    source = AutoProcessor.from_pretrained(tiny_dir("qwen2_vl"))  # its image processor and tokenizer serve
    processor = cls(source.image_processor, source.tokenizer, chat_template=source.chat_template)
    processor.save_pretrained(tmp_path)
    again = AutoProcessor.from_pretrained(tmp_path)  # registered: not the bare tokenizer
    assert type(again) is cls and again.to_dict() == processor.to_dict()


def test_no_video_processor_is_the_zoos_and_drops_a_video_processor_passed_first(tiny_dir, tmp_path):
    """LLaVA-NeXT-Video hands ProcessorMixin its video processor first, positionally: the no-video class still gets
    its image processor and tokenizer right, and the adapter's class is the one the tiny-model zoo registers."""
    from transformers import AutoProcessor, LlavaNextVideoProcessor

    from savs.models.processors import no_video_processor
    from savs.testing.random_types import register_no_video_processors

    cls = no_video_processor("llava_next_video")
    source = AutoProcessor.from_pretrained(tiny_dir("llava"))
    processor = cls(source.image_processor, source.tokenizer, chat_template=source.chat_template)
    assert isinstance(processor, LlavaNextVideoProcessor) and processor.video_processor is None
    assert processor.image_processor is source.image_processor and processor.tokenizer is source.tokenizer
    processor.save_pretrained(tmp_path)
    register_no_video_processors()  # the zoo's registration: the same class, not a second one of the same name
    assert type(AutoProcessor.from_pretrained(tmp_path)) is cls
