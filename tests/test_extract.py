"""Extraction is checked against independent computations, for every model family."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import make_examples

from savs import extract, kvcache
from savs.cache import ActivationCache
from savs.capture import capture_features
from savs.extract import extract_features, extract_heads
from savs.kvcache import shared_prefix_length
from savs.models import adapter_class, load_model
from savs.models.registry import family_adapter

ATOL = 1e-4


def examples_for(adapter, n: int = 6, seed: int = 0):
    return make_examples(n, with_images=adapter.family != "text", seed=seed)


def test_geometry_comes_from_the_config(family, tiny_adapter):
    adapter = tiny_adapter(family)
    cfg = adapter.text_config
    assert adapter.n_layers == cfg.num_hidden_layers
    assert adapter.n_heads * adapter.head_dim == adapter.o_proj(0).in_features


def test_o_proj_of_captured_heads_reproduces_attention_output(family, tiny_adapter):
    """Hook correctness: o_proj(concat of captured heads) == what the attention module returned."""
    adapter = tiny_adapter(family)
    batch = adapter.encode(examples_for(adapter, 3), padding_side="left")
    attn_out = {}

    def keep(layer):
        def hook(module, args, output):
            attn_out[layer] = output[0][:, -1].detach().clone()  # (B, hidden): last prompt token

        return hook

    handles = [layer.self_attn.register_forward_hook(keep(i)) for i, layer in enumerate(adapter.layers())]
    try:
        with capture_features(adapter, range(adapter.n_layers), stop_early=False) as capture, torch.inference_mode():
            last = torch.full((3,), batch["input_ids"].shape[1] - 1)
            heads = capture.run(lambda: adapter.forward(batch), last)["heads"]  # (B, L, H, d)
    finally:
        for h in handles:
            h.remove()
    assert heads.shape == (3, adapter.n_layers, adapter.n_heads, adapter.head_dim)
    for layer in range(adapter.n_layers):
        with torch.inference_mode():
            projected = adapter.o_proj(layer)(heads[:, layer].reshape(3, -1))
        torch.testing.assert_close(projected, attn_out[layer], atol=ATOL, rtol=1e-4)
    assert not any(m._forward_pre_hooks for m in adapter.model.modules()), "a hook was left behind"


def test_batched_with_left_padding_equals_one_at_a_time(family, tiny_adapter):
    adapter = tiny_adapter(family)
    examples = examples_for(adapter, 6)
    batched = extract_heads(adapter, examples, batch_size=6, prefix_cache=False, progress=False)
    single = np.concatenate([extract_heads(adapter, [e], progress=False) for e in examples])
    assert batched.shape == (6, adapter.n_layers, adapter.n_heads, adapter.head_dim)
    assert batched.dtype == np.float32
    np.testing.assert_allclose(batched, single, atol=ATOL)
    assert np.abs(single).max() > 1e-3, "vectors are all ~0: the test would prove nothing"


def test_shared_prefix_cache_equals_plain_forward(family, tiny_adapter):
    adapter = tiny_adapter(family)
    examples = [replace(e, text="Look closely. " * 3 + e.text) for e in examples_for(adapter, 5)]
    plain = extract_heads(adapter, examples, batch_size=5, prefix_cache=False, progress=False)
    cached = extract_heads(adapter, examples, batch_size=5, prefix_cache=True, progress=False)
    np.testing.assert_allclose(cached, plain, atol=ATOL)


def test_prefix_path_is_taken_where_supported(tiny_adapter, monkeypatch):
    """The shared-prefix path really runs (a prefix pass happens) for a family that supports it."""
    adapter = tiny_adapter("llama")
    calls = []
    original = extract.prefix_pass
    monkeypatch.setattr(extract, "prefix_pass", lambda a, c, b, n, p: calls.append(n) or original(a, c, b, n, p))
    extract_heads(adapter, examples_for(adapter, 4), batch_size=4, prefix_cache=True, progress=False)
    assert calls and calls[0] > 5


def test_a_prefix_shared_by_consecutive_batches_is_prefilled_once(tiny_adapter, count_forwards):
    """Batches of one task share their prefix: it is prefilled for the first and read from the memo for the next (one
    pass per batch after the first), with the vectors of batches that each run it."""
    adapter = tiny_adapter("llama")
    examples = [replace(e, text="Look closely at the picture. " * 2 + e.text) for e in examples_for(adapter, 6)]
    calls = count_forwards(adapter)
    memoised = extract_heads(adapter, examples, batch_size=3, progress=False)
    assert len(calls) == 1 + 2, "the shared prefix was prefilled more than once"
    order = sorted(range(6), key=lambda i: (len(examples[i].text), examples[i].text))  # extraction's batches
    batches = [[examples[i] for i in order[k : k + 3]] for k in (0, 3)]
    alone = np.concatenate([extract_heads(adapter, batch, batch_size=3, progress=False) for batch in batches])
    assert len(calls) == 3 + 2 * 2, "each batch on its own: a prefix pass and a suffix pass"
    np.testing.assert_array_equal(memoised[order], alone)


def test_early_stop_gives_the_same_vectors_and_skips_deeper_layers(family, tiny_adapter):
    adapter = tiny_adapter(family)
    examples = examples_for(adapter, 4)
    full = extract_heads(adapter, examples, progress=False)
    ran = []
    last_layer = adapter.layers()[-1]
    handle = last_layer.register_forward_pre_hook(lambda m, a, k: ran.append(1), with_kwargs=True)
    try:
        partial = extract_heads(adapter, examples, layers=[0], progress=False)
    finally:
        handle.remove()
    np.testing.assert_allclose(partial, full[:, [0]], atol=ATOL)
    assert not ran, "the last layer ran although only layer 0 was asked for"


def test_cache_resumes_after_an_interruption(tiny_adapter, tmp_path, monkeypatch):
    adapter = tiny_adapter("llama")
    examples = make_examples(10, with_images=False)
    expected = extract_heads(adapter, examples, batch_size=2, progress=False)

    real_run = extract._run_batch
    done = []

    def dying(*args):
        if len(done) == 3:
            raise KeyboardInterrupt  # killed mid-run, after three batches were written
        done.append(1)
        return real_run(*args)

    monkeypatch.setattr(extract, "_run_batch", dying)
    with pytest.raises(KeyboardInterrupt):
        extract_heads(adapter, examples, batch_size=2, cache_dir=tmp_path, progress=False)
    (ActivationCache(tmp_path, adapter.identity.namespace).dir / ".junk.tmp").write_bytes(b"half a shard")

    seen = []
    monkeypatch.setattr(extract, "_run_batch", lambda *a: seen.append(len(a[-1])) or real_run(*a))
    resumed = extract_heads(adapter, examples, batch_size=2, cache_dir=tmp_path, progress=False)
    assert sum(seen) == 4, "only the examples missing from the cache should run again"
    np.testing.assert_array_equal(resumed, expected)
    again = extract_heads(adapter, examples, batch_size=2, cache_dir=tmp_path, progress=False)
    assert sum(seen) == 4
    np.testing.assert_array_equal(again, expected)


def test_cache_keys_separate_layers_and_prompts(tiny_adapter, tmp_path):
    adapter = tiny_adapter("llama")
    examples = make_examples(3, with_images=False)
    sub = extract_heads(adapter, examples, layers=[1], cache_dir=tmp_path, progress=False)
    full = extract_heads(adapter, examples, cache_dir=tmp_path, progress=False)
    assert sub.shape[1] == 1 and full.shape[1] == adapter.n_layers, "one layer's entry never answers for all"
    np.testing.assert_allclose(sub, full[:, [1]], atol=ATOL)


def test_a_layer_subset_is_sliced_from_cached_all_layer_vectors(tiny_adapter, tmp_path, monkeypatch):
    adapter = tiny_adapter("llama")
    examples = make_examples(4, with_images=False)
    full = extract_heads(adapter, examples, cache_dir=tmp_path, progress=False)  # (n, L, H, d), every layer
    passes = []
    real_forward = adapter.forward
    monkeypatch.setattr(adapter, "forward", lambda *a, **k: passes.append(1) or real_forward(*a, **k))
    for layers in ([1], [0], [1, 0]):
        subset = extract_heads(adapter, examples, layers=layers, cache_dir=tmp_path, progress=False)
        np.testing.assert_array_equal(subset, full[:, layers])
    assert not passes, "a layer subset ran the model although every layer was cached"
    assert len(ActivationCache(tmp_path, adapter.identity.namespace)) == len(examples), "slices are not stored"
    extract_heads(adapter, make_examples(5, with_images=False), layers=[1], cache_dir=tmp_path, progress=False)
    assert passes, "an example without an all-layers entry still runs"


def test_unknown_models_get_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="supported families: .*qwen2_vl.*llava"):
        adapter_class("gpt_bigcode")
    with pytest.raises(ValueError, match="cannot load model 'no-such-model'.*Registry names"):
        load_model("no-such-model")


def test_text_model_refuses_images(tiny_adapter):
    adapter = tiny_adapter("llama")
    with pytest.raises(ValueError, match="text-only"):
        adapter.encode(make_examples(2, with_images=True))


def test_empty_and_bad_layers(tiny_adapter):
    adapter = tiny_adapter("llama")
    with pytest.raises(ValueError, match="no examples"):
        extract_heads(adapter, [])
    with pytest.raises(ValueError, match="outside"):
        extract_heads(adapter, make_examples(1, with_images=False), layers=[99])


def test_every_registered_model_has_an_adapter_tested_on_a_tiny_stand_in():
    """Each named model's family is one whose tiny random model the tests above run through."""
    from savs.models import MODELS
    from savs.testing.random_models import FAMILIES, GENERATION_FAMILIES

    # savs-mini: tests/test_mini.py; the generation-only families (InstructBLIP): tests/test_instructblip.py
    tested = {adapter_class(t).family for t in FAMILIES + GENERATION_FAMILIES} | {"savs_mini"}
    untested = {name: spec.family for name, spec in MODELS.items() if spec.family not in tested}
    assert not untested
    assert all(family_adapter(spec.family).family == spec.family for spec in MODELS.values())
    with pytest.raises(ValueError, match="unknown family 'gpt'"):
        family_adapter("gpt")


def test_attention_defaults_to_sdpa_on_cpu():
    from savs.models.base import default_attention

    assert default_attention(torch.device("cpu")) == "sdpa"


@pytest.mark.parametrize(("feature", "bad"), [("heads", np.nan), ("hidden", np.inf)])
def test_non_finite_vectors_are_refused_not_cached(feature, bad, tiny_adapter, tmp_path, monkeypatch):
    adapter = tiny_adapter("llama")
    examples = make_examples(4, with_images=False)
    real_run = extract._run_batch
    poisoned = []

    def run_poisoned(*args):
        features = real_run(*args)
        features[feature][1, ..., 0] = bad  # one example's vector goes bad, as an fp16 overflow would
        poisoned.append(args[-1][1].uid)
        return features

    monkeypatch.setattr(extract, "_run_batch", run_poisoned)
    with pytest.raises(ValueError, match=f"NaN or inf {feature} vectors for 1 examples") as error:
        extract_features(adapter, examples, heads=[0], hidden=-1, batch_size=4, cache_dir=tmp_path, progress=False)
    assert f"({poisoned[0]})" in str(error.value), "the message names the example that went bad"
    assert len(ActivationCache(tmp_path, adapter.identity.namespace)) == 0, "nothing of the batch was cached"


def test_layers_come_back_in_the_order_asked(tiny_adapter, tmp_path):
    adapter = tiny_adapter("llama")
    examples = make_examples(3, with_images=False)
    full = extract_heads(adapter, examples, progress=False)  # (n, L, H, d), layers 0, 1
    assert not np.array_equal(full[:, 0], full[:, 1]), "the layers must differ for the order to be seen"
    np.testing.assert_array_equal(extract_heads(adapter, examples, layers=[1, 0], progress=False), full[:, [1, 0]])
    cached = extract_heads(adapter, examples, layers=[1, 0], cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(cached, full[:, [1, 0]])
    with pytest.raises(ValueError, match=r"layers \[1\] asked for more than once"):
        extract_heads(adapter, examples, layers=[1, 0, 1], progress=False)


@pytest.mark.parametrize("batch_size", [0, -2, 2.5, "8", True, None])
def test_a_bad_batch_size_is_refused_by_name(batch_size, tiny_adapter):
    with pytest.raises(ValueError, match=rf"batch_size must be an int >= 1, got {re.escape(repr(batch_size))}"):
        extract_heads(tiny_adapter("llama"), make_examples(2, with_images=False), batch_size=batch_size)


def test_examples_that_are_not_examples_are_refused_by_position(tiny_adapter):
    adapter = tiny_adapter("llama")
    examples = make_examples(3, with_images=False)
    with pytest.raises(TypeError, match=r"examples\[2\] is a str, not a savs.examples.Example"):
        extract_heads(adapter, [*examples[:2], "a prompt", examples[2]])
    with pytest.raises(TypeError, match=r"examples\[0\] is a dict"):
        extract_heads(adapter, [{"text": "a prompt"}])
    with pytest.raises(TypeError, match="sequence of savs.examples.Example, got a generator"):
        extract_heads(adapter, (e for e in examples))
    np.testing.assert_array_equal(  # a tuple is a sequence too
        extract_heads(adapter, tuple(examples), progress=False), extract_heads(adapter, examples, progress=False)
    )


def test_a_prompt_longer_than_the_context_is_refused_before_the_forward_pass(tiny_adapter, monkeypatch):
    adapter = tiny_adapter("llama")
    limit = adapter.text_config.max_position_embeddings
    examples = make_examples(3, with_images=False)
    examples[1] = replace(examples[1], text="cat dog " * 700, uid="long/1")
    n_tokens = len(adapter.tokenizer(adapter.render(examples[1]), add_special_tokens=False)["input_ids"])
    assert n_tokens > limit
    monkeypatch.setattr(adapter, "forward", lambda *a, **k: pytest.fail("the model ran on a prompt too long for it"))
    for prefix_cache in (False, True):
        with pytest.raises(ValueError, match=f"example long/1 is {n_tokens} tokens long, more than the {limit}"):
            extract_heads(adapter, examples, prefix_cache=prefix_cache, progress=False)


def test_prefix_path_is_skipped_where_it_cannot_pay(tiny_adapter, monkeypatch):
    """A lone example, and a shared prefix shorter than kvcache.MIN_SHARED_PREFIX, take the plain path, with equal
    results."""
    adapter = tiny_adapter("llama")
    examples = examples_for(adapter, 4)
    plain = extract_heads(adapter, examples, batch_size=4, prefix_cache=False, progress=False)
    batch = adapter.encode(examples, padding_side="right")
    shared = shared_prefix_length(batch["input_ids"], batch["attention_mask"], adapter.prefix_barrier_ids())
    calls = []
    original = extract.prefix_pass
    monkeypatch.setattr(extract, "prefix_pass", lambda a, c, b, n, p: calls.append(n) or original(a, c, b, n, p))

    one_at_a_time = extract_heads(adapter, examples, batch_size=1, prefix_cache=True, progress=False)
    assert not calls, "a batch of one ran a prefix pass"
    np.testing.assert_allclose(one_at_a_time, plain, atol=ATOL)

    monkeypatch.setattr(kvcache, "MIN_SHARED_PREFIX", shared + 1)
    short = extract_heads(adapter, examples, batch_size=4, prefix_cache=True, progress=False)
    assert not calls, "a prefix shorter than the threshold ran a pass of its own"
    np.testing.assert_allclose(short, plain, atol=ATOL)

    monkeypatch.setattr(kvcache, "MIN_SHARED_PREFIX", shared)
    at_threshold = extract_heads(adapter, examples, batch_size=4, prefix_cache=True, progress=False)
    assert calls == [shared]
    np.testing.assert_allclose(at_threshold, plain, atol=ATOL)
