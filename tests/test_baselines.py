"""Baselines, checked on tiny random models: answer mapping, ICL prompts and prefix cache, LoRA, probes, features."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import make_examples
from PIL import Image
from transformers import AutoTokenizer, LlamaForCausalLM

from savs import extract
from savs.baselines import (
    blank_images,
    extract_hidden,
    generation,
    icl_prompt,
    in_context,
    lora,
    lora_finetune,
    lora_predict,
    match_answer,
    pick_demos,
    probe_predict,
    vision_features,
    zero_shot,
)
from savs.cache import ActivationCache, CacheMissError, CacheWarning
from savs.examples import Example
from savs.extract import extract_features, extract_heads

ATOL = 1e-4
LABELS = ["0", "1"]


def examples_for(adapter, n: int, seed: int = 0) -> list[Example]:
    return make_examples(n, with_images=adapter.family != "text", seed=seed)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def adapter_of(tiny_adapter, tmp_path_factory):
    """``family -> adapter``: the tiny models, plus "mini": savs-mini's wiring (real EfficientNet-Lite0,
    random projector) around a tiny random Llama, built on first use."""
    built = {}

    def get(family: str):
        if family != "mini":
            return tiny_adapter(family)
        if "mini" not in built:
            pytest.importorskip("efficientnet_lite_pytorch")
            from savs.mini.adapter import MiniAdapter
            from savs.mini.model import MiniLMM, Projector, add_image_token
            from savs.mini.vision import FEATURE_DIM, VisionEncoder
            from savs.testing.random_models import build_random_model

            path = build_random_model("llama", tmp_path_factory.mktemp("mini-llama"))
            lm = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
            tok = AutoTokenizer.from_pretrained(path)
            torch.manual_seed(0)
            model = MiniLMM(VisionEncoder(), Projector(FEATURE_DIM, lm.config.hidden_size), lm, add_image_token(tok))
            built["mini"] = MiniAdapter(model.eval(), tok, "savs-mini-tiny", "untrained")
        return built["mini"]

    return get


@pytest.fixture
def raw_answers(monkeypatch):
    """The generation baselines return the generated text itself, not its label (random tiny models rarely name one)."""
    monkeypatch.setattr(generation, "match_answer", lambda text, labels: text)


# ----- answers -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes", "Yes"),
        (" yes.", "Yes"),
        ('"NO"', "No"),
        ("No, there is not.", "No"),
        ("I think yes, not no", "Yes"),
        ("I know nothing", None),  # "no" only inside words
        ("", None),
    ],
)
def test_match_answer_yes_no(text, expected):
    assert match_answer(text, ["Yes", "No"]) == expected


def test_match_answer_prefers_the_earliest_then_the_longest_label():
    labels = ["boot", "ankle boot", "shirt", "t-shirt", "cat"]
    assert match_answer("It is an ankle boot.", labels) == "ankle boot"
    assert match_answer("a T-shirt, not a boot", labels) == "t-shirt"
    assert match_answer("shirt or boot", labels) == "shirt"
    assert match_answer("category: dog", labels) is None
    assert match_answer("Cat", labels) == "cat"


# ----- zero-shot -----------------------------------------------------------------------------------
def test_zero_shot_maps_batched_generations_in_order(tiny_adapter, monkeypatch):
    adapter = tiny_adapter("llava")
    examples = examples_for(adapter, 5)
    alone = [adapter.generate([e], max_new_tokens=6)[0] for e in examples]
    first = zero_shot(adapter, examples, LABELS, max_new_tokens=6, batch_size=3, progress=False)
    assert first == [match_answer(t, LABELS) or "" for t in alone]
    assert set(first) <= {*LABELS, ""}
    assert zero_shot(adapter, examples, LABELS, max_new_tokens=6, batch_size=2, progress=False) == first
    monkeypatch.setattr(type(adapter), "generate", lambda self, batch, max_new_tokens: ["It is 1."] * len(batch))
    assert zero_shot(adapter, examples, LABELS, progress=False) == ["1"] * 5


def test_zero_shot_answers_are_cached_as_generated_text(
    tiny_adapter, raw_answers, count_forwards, tmp_path, monkeypatch
):
    adapter = tiny_adapter("llava")
    examples = examples_for(adapter, 4)
    kwargs = {"max_new_tokens": 4, "batch_size": 2, "progress": False}
    plain = zero_shot(adapter, examples, LABELS, **kwargs)
    assert any(plain), "nothing was generated: the comparisons would prove nothing"
    assert zero_shot(adapter, examples, LABELS, cache_dir=tmp_path, **kwargs) == plain
    forwards = count_forwards(adapter)
    assert zero_shot(adapter, examples, LABELS, cache_dir=tmp_path, **kwargs) == plain
    assert not forwards, "cached answers were generated again"
    monkeypatch.setattr(generation, "match_answer", lambda text, labels: text.upper())
    assert zero_shot(adapter, examples, LABELS, cache_dir=tmp_path, **kwargs) == [t.upper() for t in plain]
    assert not forwards, "the raw text is cached: a new mapping onto labels needs no generation"

    zero_shot(adapter, examples[:1], LABELS, cache_dir=tmp_path, **{**kwargs, "max_new_tokens": 3})
    assert forwards, "another max_new_tokens reused the answers"
    forwards.clear()
    monkeypatch.setenv("SAVS_CACHE_ONLY", "1")
    with pytest.raises(CacheMissError, match="1 of 5 zero-shot answers are not in the cache"):
        zero_shot(adapter, [*examples, examples_for(adapter, 5, seed=3)[4]], LABELS, cache_dir=tmp_path, **kwargs)
    assert not forwards


def test_a_damaged_shard_of_answers_is_set_aside_and_generated_again(tiny_adapter, count_forwards, tmp_path):
    adapter = tiny_adapter("llama")
    examples = examples_for(adapter, 4)
    kwargs = {"max_new_tokens": 4, "batch_size": 2, "progress": False}
    first = generation.generate_all(adapter, examples, cache_dir=tmp_path, **kwargs)
    store = ActivationCache(tmp_path, adapter.identity.namespace)
    victim = sorted(store.dir.glob("[!.]*.safetensors"))[0]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF  # the last answer's last byte (or, were both answers empty, the header's)
    victim.write_bytes(bytes(data))
    forwards = count_forwards(adapter)
    with pytest.warns(CacheWarning, match=victim.name):
        assert generation.generate_all(adapter, examples, cache_dir=tmp_path, **kwargs) == first
    assert forwards, "the damaged shard's answers were not generated again"
    assert len(list(store.dir.glob(f".corrupt-{victim.name}-*"))) == 1


# ----- in-context learning -------------------------------------------------------------------------
def test_pick_demos_is_seeded_and_balanced():
    pool = [Example(f"q{i}", lab) for i, lab in enumerate(["a"] * 10 + ["b"] * 10 + ["c"])]
    picked = pick_demos(pool, 4, seed=0)
    assert picked == pick_demos(pool, 4, seed=0)
    assert len(picked) == 4 == len(set(picked))
    counts = {lab: sum(d.label == lab for d in picked) for lab in "abc"}
    assert sorted(counts.values()) == [1, 1, 2]
    assert any(pick_demos(pool, 4, seed=s) != picked for s in range(1, 5))
    with pytest.raises(ValueError, match="holds only"):
        pick_demos(pool[:3], 4)


@pytest.mark.parametrize("family", ["llama", "llava"])
def test_icl_prompt_holds_the_demos_then_the_query(tiny_adapter, family):
    adapter = tiny_adapter(family)
    pool = examples_for(adapter, 8, seed=1)
    shots = pick_demos(pool, 4, seed=0)
    query = examples_for(adapter, 1, seed=2)[0]
    prompt = icl_prompt(adapter, shots, query)
    user, assistant = ("<|im_start|>user", "<|im_start|>assistant") if family == "llama" else ("USER:", "ASSISTANT:")
    assert prompt.count(user) == 5 and prompt.count(assistant) == 5
    assert prompt.count("<image>") == (0 if family == "llama" else 5)
    at = 0
    for shot in shots:  # each demo's question, then its answer, in order
        at = prompt.index(shot.text, at)
        assert prompt[at + len(shot.text) :].split(assistant, 1)[1].lstrip(": \n").startswith(shot.label)
    assert prompt.rindex(query.text) > at
    assert prompt.endswith(adapter.render(query)[-len(assistant) - 1 :])  # the generation prompt closes it


@pytest.mark.parametrize("prefix_cache", [False, True])
def test_in_context_runs_that_prompt(tiny_adapter, monkeypatch, prefix_cache):
    adapter = tiny_adapter("llama")
    pool, queries = examples_for(adapter, 6, seed=1), examples_for(adapter, 3, seed=2)
    rendered = []
    real_encode = type(adapter).encode
    monkeypatch.setattr(
        type(adapter),
        "encode",
        lambda self, ex, padding_side="left": (
            rendered.extend(map(self.render, ex)) or real_encode(self, ex, padding_side)
        ),
    )
    in_context(
        adapter, pool, queries, LABELS, n_demos=4, seed=3, max_new_tokens=2, prefix_cache=prefix_cache, progress=False
    )
    expected = {icl_prompt(adapter, pick_demos(pool, 4, seed=3), q) for q in queries}
    if prefix_cache:  # the demos' part once, then the queries' remainders
        assert {rendered[0] + suffix for suffix in rendered[-len(queries) :]} == expected
    else:
        assert set(rendered) == expected


@pytest.mark.parametrize("family", ["llama", "llava", "smolvlm", "mini"])
def test_prefix_cached_icl_generates_like_the_plain_path(adapter_of, raw_answers, monkeypatch, family):
    adapter = adapter_of(family)
    pool, queries = examples_for(adapter, 6, seed=1), examples_for(adapter, 4, seed=2)
    cached_runs = []
    real_expanded = generation.expanded  # the demonstrations' cache, given to a batch of queries
    monkeypatch.setattr(generation, "expanded", lambda *a: cached_runs.append(1) or real_expanded(*a))
    kwargs = {"n_demos": 4, "batch_size": 2, "max_new_tokens": 6, "progress": False}
    plain = in_context(adapter, pool, queries, LABELS, prefix_cache=False, **kwargs)
    assert not cached_runs
    cached = in_context(adapter, pool, queries, LABELS, prefix_cache=True, **kwargs)
    assert cached_runs, "the prefix-cache path was not taken"
    assert cached == plain
    assert any(plain), "nothing was generated: the comparison would prove nothing"


def test_icl_without_prefix_cache_support_uses_the_plain_path(tiny_adapter, raw_answers, monkeypatch):
    adapter = tiny_adapter("qwen2_vl")
    monkeypatch.setattr(generation, "expanded", lambda *a: pytest.fail("Qwen2-VL must not use a cached prefix"))
    out = in_context(
        adapter, examples_for(adapter, 4), examples_for(adapter, 2, seed=1), LABELS, max_new_tokens=3, progress=False
    )
    assert len(out) == 2


def test_icl_answers_are_cached_per_demonstrations_and_decoding(tiny_adapter, raw_answers, count_forwards, tmp_path):
    adapter = tiny_adapter("llava")
    pool, queries = examples_for(adapter, 6, seed=1), examples_for(adapter, 3, seed=2)
    kwargs = {"n_demos": 2, "batch_size": 2, "max_new_tokens": 4, "progress": False}
    plain = in_context(adapter, pool, queries, LABELS, **kwargs)
    assert any(plain), "nothing was generated: the comparisons would prove nothing"
    assert in_context(adapter, pool, queries, LABELS, cache_dir=tmp_path, **kwargs) == plain
    forwards = count_forwards(adapter)
    assert in_context(adapter, pool, queries, LABELS, cache_dir=tmp_path, **kwargs) == plain
    assert not forwards, "cached answers were generated again"
    assert pick_demos(pool, 2, seed=1) != pick_demos(pool, 2, seed=0)
    blanked = blank_images(pool)  # the same demonstrations' text and labels, other images: the same prompt string
    assert icl_prompt(adapter, pick_demos(blanked, 2), queries[0]) == icl_prompt(
        adapter, pick_demos(pool, 2), queries[0]
    )
    for demos, changed in [
        (pool, {"seed": 1}),
        (blanked, {}),
        (pool, {"max_new_tokens": 3}),
        (pool, {"prefix_cache": False}),
    ]:
        forwards.clear()
        in_context(adapter, demos, queries[:1], LABELS, cache_dir=tmp_path, **{**kwargs, **changed})
        assert forwards, f"{changed or 'other demonstration images'} reused the answers"


# ----- LoRA ----------------------------------------------------------------------------------------
def _logits(adapter, examples):
    with torch.inference_mode():
        return adapter.forward(adapter.encode(examples)).logits[:, -1]


@pytest.mark.parametrize("family", ["llava", "mini"])
def test_lora_changes_outputs_only_while_active(adapter_of, family):
    adapter = adapter_of(family)
    train = examples_for(adapter, 4)
    model = adapter.model
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = {k: p.requires_grad for k, p in model.named_parameters()}
    before = _logits(adapter, train)
    with lora_finetune(adapter, train, epochs=2, lr=1e-2, batch_size=2, progress=False) as tuned:
        assert tuned.identity.namespace != adapter.identity.namespace  # its activations never share a cache namespace
        assert not torch.allclose(_logits(tuned, train), before, atol=1e-4)
        lora = [n for n, _ in model.named_modules() if n.endswith("lora_A")]
        assert lora and all(n.startswith(f"{adapter.layers_path}.") for n in lora)  # never the vision tower
        assert {n.split(".")[-2] for n in lora} == {"q_proj", "v_proj"}
    assert adapter.model is model and not model.training
    assert not [n for n, _ in model.named_modules() if "lora" in n]
    state = model.state_dict()
    assert state.keys() == weights.keys() and all(torch.equal(state[k], weights[k]) for k in weights)
    assert {k: p.requires_grad for k, p in model.named_parameters()} == trainable
    torch.testing.assert_close(_logits(adapter, train), before, rtol=0, atol=0)


@pytest.mark.parametrize("family", ["llava", "mini"])
def test_lora_shared_prefix_trains_like_the_plain_pass(adapter_of, monkeypatch, family):
    """Running a batch's shared prompt prefix once (and back-propagating through its KV cache) changes nothing."""
    adapter = adapter_of(family)
    train = [replace(e, text="Look closely at the picture. " + e.text) for e in examples_for(adapter, 4)]
    prefixes = []
    real = lora.cached_prefix_length
    monkeypatch.setattr(lora, "cached_prefix_length", lambda *a: prefixes.append(real(*a)) or prefixes[-1])
    tuned_logits = []
    for prefix_cache in (False, True):
        with lora_finetune(
            adapter, train, epochs=2, lr=1e-2, batch_size=4, prefix_cache=prefix_cache, progress=False
        ) as tuned:
            tuned_logits.append(_logits(tuned, train))
    assert len(prefixes) == 2 and min(prefixes) > 5, "the shared-prefix path was not taken"
    torch.testing.assert_close(tuned_logits[1], tuned_logits[0], atol=1e-5, rtol=1e-4)


def test_lora_overfits_a_two_class_toy_set(tiny_adapter):
    adapter = tiny_adapter("llama")
    train = [Example(f"What colour is it? It is {c}. ({i})", c) for i, c in enumerate(["red", "blue"] * 2)]
    labels = ["red", "blue"]
    assert zero_shot(adapter, train, labels, max_new_tokens=3, progress=False) != [e.label for e in train]
    with lora_finetune(adapter, train, epochs=80, lr=3e-2, batch_size=4, progress=False) as tuned:
        assert zero_shot(tuned, train, labels, max_new_tokens=3, progress=False) == [e.label for e in train]


def test_lora_name_covers_what_decides_the_weights(tiny_adapter):
    train = examples_for(tiny_adapter("llama"), 4)
    name = lora.LoraRecipe().name(train)
    assert lora.LoraRecipe(prefix_cache=False).name(train) == name, "how the loss is computed is not in the name"
    changed = [{"epochs": 3}, {"lr": 1e-2}, {"r": 4}, {"seed": 1}, {"target_modules": ("q_proj",)}, {"batch_size": 4}]
    assert len({name, *(lora.LoraRecipe(**c).name(train) for c in changed)}) == 1 + len(changed)
    assert lora.LoraRecipe().name(train[::-1]) != name
    assert lora.LoraRecipe().name([replace(train[0], label="1"), *train[1:]]) != name


def _token_ids(adapter, text: str) -> list[int]:
    return adapter.tokenizer(text, add_special_tokens=False)["input_ids"]


def _assistant_continuation(adapter, example) -> list[int]:
    """The tokens the chat template writes after the prompt when an assistant turn answers it with the label."""
    messages = adapter.messages(example)
    plain = isinstance(messages[-1]["content"], str)  # a plain-text template (savs-mini's SmolLM2) takes no item lists
    answer = {"role": "assistant", "content": example.label if plain else [{"type": "text", "text": example.label}]}
    full = _token_ids(adapter, adapter.processor.apply_chat_template([*messages, answer], tokenize=False))
    prompt = _token_ids(adapter, adapter.render(example))
    assert full[: len(prompt)] == prompt
    return full[len(prompt) :]


@pytest.mark.parametrize("family", ["idefics3", "smolvlm"])
def test_lora_targets_the_answer_as_the_template_writes_it(adapter_of, family):
    """Idefics3's template writes an assistant turn as ``Assistant: 0``: LoRA's targets are the tokens that follow
    the prompt in that turn, the space's included, up to its end of utterance (the tokenizer's EOS)."""
    adapter = adapter_of(family)
    example = examples_for(adapter, 1)[0]
    continuation = _assistant_continuation(adapter, example)
    assert adapter.tokenizer.decode(continuation).startswith(f" {example.label}")
    _, targets = lora.answer_batch(adapter, [example])
    assert targets[targets != -100].tolist() == continuation[: continuation.index(adapter.tokenizer.eos_token_id) + 1]


@pytest.mark.parametrize("family", ["llama", "qwen2_vl", "mini"])
def test_lora_targets_stay_the_label_where_the_template_puts_nothing_before_it(adapter_of, family):
    """ChatML opens the assistant turn with a newline, which the prompt already ends in: the targets are the label's
    own tokens and EOS, as before."""
    adapter = adapter_of(family)
    example = examples_for(adapter, 1)[0]
    _, targets = lora.answer_batch(adapter, [example])
    eos = adapter.tokenizer.eos_token
    assert targets[targets != -100].tolist() == _token_ids(adapter, example.label + eos)
    assert _assistant_continuation(adapter, example)[0] == _token_ids(adapter, example.label)[0]


def test_lora_name_changes_with_the_way_answer_tokens_are_made(tiny_adapter, monkeypatch):
    """Weights trained on the answer tokens of an older ``answer_ids`` are never served for the current ones."""
    train = examples_for(tiny_adapter("llama"), 4)
    name = lora.LoraRecipe().name(train)
    monkeypatch.setattr(lora, "ANSWER_IDS_VERSION", lora.ANSWER_IDS_VERSION - 1)
    assert lora.LoraRecipe().name(train) != name


def test_cached_lora_weights_reproduce_the_trained_adapter(tiny_adapter, tmp_path, monkeypatch):
    adapter = tiny_adapter("llava")
    train = examples_for(adapter, 4)
    kwargs = {"epochs": 2, "lr": 1e-2, "batch_size": 2, "progress": False}
    with lora_finetune(adapter, train, cache_dir=tmp_path, **kwargs) as tuned:
        trained = _logits(tuned, train)
        namespace = tuned.identity.namespace
    assert not torch.allclose(trained, _logits(adapter, train), atol=1e-4), "LoRA changed nothing"
    assert len(ActivationCache(tmp_path, namespace)), "the weights were not cached under the tuned model's namespace"
    monkeypatch.setattr(lora, "_train", lambda *a: pytest.fail("cached LoRA weights were trained again"))
    with lora_finetune(adapter, train, cache_dir=tmp_path, **kwargs) as tuned:
        torch.testing.assert_close(_logits(tuned, train), trained, rtol=0, atol=0)
    monkeypatch.setenv("SAVS_CACHE_ONLY", "1")
    with pytest.raises(CacheMissError, match="LoRA weights"), lora_finetune(adapter, train, cache_dir=tmp_path, seed=1):
        pass
    assert not [n for n, _ in adapter.model.named_modules() if "lora" in n], "the model was not restored"


def test_lora_predict_trains_only_what_the_cache_lacks(
    tiny_adapter, raw_answers, count_forwards, tmp_path, monkeypatch
):
    adapter = tiny_adapter("llava")
    train = examples_for(adapter, 4)
    test = [replace(e, text=f"Once more: {e.text}") for e in examples_for(adapter, 4)]
    kwargs = {"epochs": 2, "lr": 1e-3, "batch_size": 2, "max_new_tokens": 4, "progress": False}
    plain = lora_predict(adapter, train, test, LABELS, **kwargs)
    untuned = zero_shot(adapter, test, LABELS, max_new_tokens=4, progress=False)
    assert any(plain) and plain != untuned, "LoRA changed no answer: the comparisons would prove nothing"
    assert lora_predict(adapter, train, test[:2], LABELS, cache_dir=tmp_path, **kwargs) == plain[:2]
    trained = []
    real_train = lora._train
    monkeypatch.setattr(lora, "_train", lambda *a: trained.append(1) or real_train(*a))
    forwards = count_forwards(adapter)
    assert lora_predict(adapter, train, test[:2], LABELS, cache_dir=tmp_path, **kwargs) == plain[:2]
    assert not forwards and not trained, "every answer was cached, yet the model ran"
    assert lora_predict(adapter, train, test, LABELS, cache_dir=tmp_path, **kwargs) == plain
    assert forwards and not trained, "the new answers come from the cached weights, not a new training run"
    lora_predict(adapter, train, test[:1], LABELS, cache_dir=tmp_path, **{**kwargs, "seed": 1})
    assert trained, "another seed reused another run's adapter"
    monkeypatch.setenv("SAVS_CACHE_ONLY", "1")
    with pytest.raises(CacheMissError, match="1 of 1 LoRA answers"):
        lora_predict(adapter, train, examples_for(adapter, 1), LABELS, cache_dir=tmp_path, **kwargs)


@pytest.mark.filterwarnings("ignore:ICL. the prompt.s tokens change:UserWarning")  # LLaVA-OV: plain path, known
def test_the_notebooks_generation_baselines_keep_their_answers_in_the_session_cache(
    tmp_path, monkeypatch, count_forwards
):
    from savs.experiments import Session, evaluate
    from savs.profiles import load_profile

    run = Session(load_profile("smoke"), tmp_path).run("random:llava_onevision", "easy_vqa_shape")
    monkeypatch.setenv("SAVS_CACHE_ONLY", "1")  # as the notebooks run; answers are not in savs.plan: generated
    methods = ("zero-shot", "ICL", "LoRA")
    first = [evaluate(run, method, 2, [0]) for method in methods]
    forwards = count_forwards(run.adapter)
    assert [evaluate(run, method, 2, [0]) for method in methods] == first
    assert not forwards, "a warm rerun generated or trained"


# ----- hidden states -------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["llama", "llava", "qwen2_vl", "smolvlm", "mini"])
def test_extract_hidden_matches_hidden_states(adapter_of, family):
    adapter = adapter_of(family)
    examples = examples_for(adapter, 5)
    for layer in (0, 1, -1):
        batched = extract_hidden(adapter, examples, layer=layer, batch_size=5, progress=False)
        with torch.inference_mode():
            reference = [
                adapter.model(**adapter.encode([e]), output_hidden_states=True).hidden_states[layer][0, -1]
                for e in examples
            ]
        assert batched.shape == (5, adapter.text_config.hidden_size) and batched.dtype == np.float32
        np.testing.assert_allclose(batched, torch.stack(reference).numpy(), atol=ATOL)
        single = np.concatenate([extract_hidden(adapter, [e], layer=layer, progress=False) for e in examples])
        np.testing.assert_allclose(batched, single, atol=ATOL)


def test_extract_hidden_stops_early(tiny_adapter):
    adapter = tiny_adapter("llava")
    ran = []
    handles = [
        adapter.layers()[1].register_forward_pre_hook(lambda *a: ran.append("layer 1")),
        adapter.model.get_output_embeddings().register_forward_pre_hook(lambda *a: ran.append("lm head")),
    ]
    try:
        extract_hidden(adapter, examples_for(adapter, 2), layer=1, progress=False)
        assert not ran
        extract_hidden(adapter, examples_for(adapter, 2), layer=-1, progress=False)
        assert "layer 1" in ran and "lm head" not in ran
    finally:
        for h in handles:
            h.remove()
    with pytest.raises(ValueError, match="outside"):
        extract_hidden(adapter, examples_for(adapter, 1), layer=adapter.n_layers + 1)


def test_extract_hidden_cache_is_reused_and_kept_apart_from_heads(tiny_adapter, tmp_path, monkeypatch):
    adapter = tiny_adapter("llama")
    examples = examples_for(adapter, 4)
    first = extract_hidden(adapter, examples, cache_dir=tmp_path, progress=False)
    extract_heads(adapter, examples, cache_dir=tmp_path, progress=False)
    assert len(ActivationCache(tmp_path, adapter.identity.namespace)) == 8  # 4 hidden + 4 head entries
    monkeypatch.setattr(extract, "_run_batch", lambda *a: pytest.fail("cached examples ran again"))
    np.testing.assert_array_equal(extract_hidden(adapter, examples, cache_dir=tmp_path, progress=False), first)


def test_extract_hidden_in_cache_only_mode_reads_the_cache_alone(tiny_adapter, tmp_path, count_forwards):
    adapter = tiny_adapter("llama")
    examples = examples_for(adapter, 3)
    first = extract_hidden(adapter, examples[:2], cache_dir=tmp_path, progress=False)
    forwards = count_forwards(adapter)
    kw = {"cache_dir": tmp_path, "progress": False, "cache_only": True}
    np.testing.assert_array_equal(extract_hidden(adapter, examples[:2], **kw), first)
    with pytest.raises(CacheMissError):
        extract_hidden(adapter, examples, **kw)
    assert not forwards


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "mini"])
def test_heads_and_hidden_from_one_pass_equal_separate_passes(adapter_of, family, tmp_path, monkeypatch):
    adapter = adapter_of(family)
    examples = [replace(e, text="Look closely. " * 3 + e.text) for e in examples_for(adapter, 5)]  # a shared prefix
    heads = extract_heads(adapter, examples, batch_size=5, progress=False)
    hidden = {layer: extract_hidden(adapter, examples, layer=layer, batch_size=5, progress=False) for layer in (1, -1)}
    passes = []
    real_run = extract._run_batch
    monkeypatch.setattr(extract, "_run_batch", lambda *a: passes.append(1) or real_run(*a))
    for layer in (1, -1):
        both = extract_features(
            adapter,
            examples,
            heads=range(adapter.n_layers),
            hidden=layer,
            batch_size=5,
            cache_dir=tmp_path,
            progress=False,
        )
        assert set(both) == {"heads", "hidden"}
        np.testing.assert_allclose(both["heads"], heads, atol=ATOL)
        np.testing.assert_allclose(both["hidden"], hidden[layer], atol=ATOL)
    assert len(passes) == 2, "one batch of 5 per call: heads and hidden come from the same pass"
    # each feature is cached under its own key: the separate extractors now read the cache
    monkeypatch.setattr(extract, "_run_batch", lambda *a: pytest.fail("cached examples ran again"))
    np.testing.assert_array_equal(extract_heads(adapter, examples, cache_dir=tmp_path, progress=False), both["heads"])
    cached_hidden = extract_hidden(adapter, examples, layer=-1, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(cached_hidden, both["hidden"])


def test_extract_features_needs_something_to_capture(tiny_adapter):
    adapter = tiny_adapter("llama")
    with pytest.raises(ValueError, match="nothing to capture"):
        extract_features(adapter, make_examples(1, with_images=False))


# ----- probes --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["linear", "knn"])
def test_probe_predict_separates_separable_data(kind):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 5
    y = np.repeat(["a", "b", "c"], 10)
    X = centres[np.repeat(np.arange(3), 10)] + rng.normal(size=(30, 16))
    pred = probe_predict(X[::2], y[::2], X[1::2], kind=kind)
    assert (pred == y[1::2]).all()
    np.testing.assert_array_equal(probe_predict(X[::2], y[::2], X[1::2], kind=kind), pred)


def test_probe_predict_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="unknown probe"):
        probe_predict(np.zeros((2, 2)), ["a", "b"], np.zeros((1, 2)), kind="svm")


# ----- blind control -------------------------------------------------------------------------------
def test_blank_images_keeps_prompts_labels_and_sizes():
    examples = make_examples(3, with_images=True)
    blank = blank_images(examples, fill=(10, 20, 30))
    for e, b in zip(examples, blank, strict=True):
        assert (b.text, b.label, b.uid) == (e.text, e.label, f"{e.uid}+blank")
        assert [im.size for im in b.images] == [im.size for im in e.images]
        assert all(np.all(np.asarray(im) == [10, 20, 30]) for im in b.pil_images())
        assert b.fingerprint() != e.fingerprint() and len(set(np.asarray(e.images[0]).ravel())) > 3


# ----- vision features -----------------------------------------------------------------------------
@pytest.mark.parametrize(("family", "dim"), [("llava", 64), ("qwen2_vl", 64), ("smolvlm", 64), ("mini", 1280)])
def test_vision_features(adapter_of, family, dim):
    adapter = adapter_of(family)
    examples = make_examples(4, with_images=True)
    feats = vision_features(adapter, examples, batch_size=3, progress=False)
    assert feats.shape == (4, dim) and feats.dtype == np.float32
    single = np.concatenate([vision_features(adapter, [e], progress=False) for e in examples])
    np.testing.assert_allclose(feats, single, atol=ATOL)
    assert np.abs(feats[0] - feats[1]).max() > 1e-4, "different images, same features"
    two = Example("two images", "0", (examples[0].images[0], examples[1].images[0]))
    np.testing.assert_allclose(vision_features(adapter, [two], progress=False)[0], feats[:2].mean(0), atol=ATOL)


def test_vision_features_refuse_text_models_and_imageless_examples(tiny_adapter):
    with pytest.raises(NotImplementedError, match="'text'"):
        vision_features(tiny_adapter("llama"), [Example("q", "0", (Image.new("RGB", (8, 8)),))], progress=False)
    with pytest.raises(ValueError, match="needs images"):
        vision_features(tiny_adapter("llava"), [Example("q", "0")], progress=False)


@pytest.mark.slow
def test_vision_features_of_real_savs_mini():
    from savs.mini.adapter import MiniAdapter

    adapter = MiniAdapter.from_pretrained("savs-mini")
    feats = vision_features(adapter, make_examples(3, with_images=True), progress=False)
    assert feats.shape == (3, 1280) and np.isfinite(feats).all()
