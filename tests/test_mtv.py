"""MTV (``savs.baselines.mtv``) on tiny random models and a synthetic search problem."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from conftest import make_examples

from savs.baselines import mtv as mtv_module
from savs.baselines.generation import _prerendered, _prompted, icl_prompt
from savs.baselines.mtv import (
    MTV,
    _QueryLosses,
    answer_token,
    icl_trials,
    mean_head_activations,
    mtv_fit,
    mtv_generate,
    mtv_identity,
    mtv_predict,
    patch_heads,
    pick_heads,
    reinforce_heads,
    validation_loss,
)
from savs.cache import CacheMissError
from savs.identity import ModelIdentity
from savs.kvcache import cached_prefix_length

pytestmark = pytest.mark.usefixtures("one_thread")

# llava: a plain decoder (prefix-cached search path); qwen2_vl: multimodal RoPE (full-pass path); llama: text only.
FAMILIES = ("llava", "qwen2_vl", "llama")
TINY = {"n_shots": 2, "n_trials": 3, "steps": 3, "n_samples": 4, "n_candidates": 2, "n_validation": 3}


def _examples(family: str, n: int, seed: int = 0):
    return make_examples(n, with_images=family != "llama", seed=seed)


class _Recorder:
    """Forward hooks on every layer's ``o_proj``: the input it actually received and its output, per call."""

    def __init__(self, adapter):
        self.inputs: dict[int, list[torch.Tensor]] = {}
        self.outputs: dict[int, list[torch.Tensor]] = {}
        self.handles = [
            adapter.o_proj(layer).register_forward_hook(lambda m, a, out, layer=layer: self._keep(layer, a[0], out))
            for layer in range(adapter.n_layers)
        ]

    def _keep(self, layer, x, out):
        self.inputs.setdefault(layer, []).append(x.detach().clone())
        self.outputs.setdefault(layer, []).append(out.detach().clone())

    def close(self):
        for handle in self.handles:
            handle.remove()


def _run(adapter, batch, means=None, mask=None):
    """One forward pass; the o_proj inputs / outputs per layer, and the logits."""
    recorder = _Recorder(adapter)
    try:
        with torch.inference_mode():
            if mask is None:
                logits = adapter.forward(dict(batch)).logits
            else:
                with patch_heads(adapter, means, mask):
                    logits = adapter.forward(dict(batch)).logits
    finally:
        recorder.close()
    return (
        {layer: xs[0] for layer, xs in recorder.inputs.items()},
        {layer: ys[0] for layer, ys in recorder.outputs.items()},
        logits,
    )


class _Stub:
    """An adapter as ``mtv_identity`` reads it: its identity alone."""

    identity = ModelIdentity(family="llava", source="dir:x", dtype="float32", attention="eager", template="t",
                             processor="p")  # fmt: skip


def _heads(x, adapter):
    """``(B, T, H * d)`` -> ``(B, T, H, d)``."""
    return x.view(*x.shape[:2], adapter.n_heads, adapter.head_dim)


@pytest.mark.parametrize("family", FAMILIES)
def test_patch_changes_exactly_the_chosen_heads_at_the_last_position(tiny_adapter, family):
    adapter = tiny_adapter(family)
    L, H, d = adapter.n_layers, adapter.n_heads, adapter.head_dim
    batch = adapter.encode(_examples(family, 2))
    means = torch.randn(L, H, d, generator=torch.Generator().manual_seed(1)) * 3
    mask = torch.zeros(L, H, dtype=torch.bool)
    mask[0, [1, 3]] = True
    mask[L - 1, 0] = True
    clean_in, clean_out, clean_logits = _run(adapter, batch)
    patched_in, patched_out, patched_logits = _run(adapter, batch, means, mask)
    for layer in range(L):
        before, after = _heads(clean_in[layer], adapter), _heads(patched_in[layer], adapter)
        # every earlier position, every head: untouched (causal attention; the patch is at the last position only)
        torch.testing.assert_close(after[:, :-1], before[:, :-1])
        chosen = mask[layer].nonzero().flatten().tolist()
        for head in chosen:  # the chosen heads hold the means, in every row
            torch.testing.assert_close(after[:, -1, head], means[layer, head].expand(after.shape[0], d))
        # o_proj's output is its weight applied to the patched heads (an independent check of what it received)
        weight, bias = adapter.o_proj(layer).weight, adapter.o_proj(layer).bias
        expected_in = before.clone()
        expected_in[:, -1, chosen] = means[layer, chosen]
        if layer == 0:  # nothing upstream changed: the other heads are exactly the unpatched ones
            torch.testing.assert_close(after, expected_in)
            torch.testing.assert_close(
                patched_out[layer], torch.nn.functional.linear(expected_in.flatten(2), weight, bias)
            )
    torch.testing.assert_close(patched_logits[:, :-1], clean_logits[:, :-1])
    assert not torch.allclose(patched_logits[:, -1], clean_logits[:, -1])


def test_per_row_masks_patch_each_row_alone(tiny_adapter):
    adapter = tiny_adapter("llava")
    L, H, d = adapter.n_layers, adapter.n_heads, adapter.head_dim
    batch = adapter.encode(_examples("llava", 2))
    means = torch.randn(L, H, d, generator=torch.Generator().manual_seed(2)) * 3
    masks = torch.zeros(2, L, H, dtype=torch.bool)
    masks[0, 0, 2] = True  # row 0 patched, row 1 not
    clean_in, _, clean_logits = _run(adapter, batch)
    patched_in, _, patched_logits = _run(adapter, batch, means, masks)
    torch.testing.assert_close(patched_logits[1], clean_logits[1])
    torch.testing.assert_close(_heads(patched_in[0], adapter)[0, -1, 2], means[0, 2])
    assert not torch.allclose(patched_logits[0, -1], clean_logits[0, -1])
    with pytest.raises(ValueError, match="mask shape"):
        with patch_heads(adapter, means, torch.zeros(L + 1, H, dtype=torch.bool)):
            pass


def test_hooks_are_removed_after_the_block(tiny_adapter):
    adapter = tiny_adapter("llama")
    means = torch.zeros(adapter.n_layers, adapter.n_heads, adapter.head_dim)
    with patch_heads(adapter, means, torch.ones(adapter.n_layers, adapter.n_heads, dtype=torch.bool)):
        assert all(adapter.o_proj(layer)._forward_pre_hooks for layer in range(adapter.n_layers))
    assert not any(adapter.o_proj(layer)._forward_pre_hooks for layer in range(adapter.n_layers))


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_generation_patches_the_prompt_or_every_new_token(tiny_adapter, family):
    adapter = tiny_adapter(family)
    L, H, d = adapter.n_layers, adapter.n_heads, adapter.head_dim
    examples = _examples(family, 2)
    means = torch.randn(L, H, d, generator=torch.Generator().manual_seed(3))
    heads = torch.zeros(L, H, dtype=torch.bool)
    heads[1, 2] = True
    fitted = MTV(means=means, heads=heads, logits=torch.zeros(L, H))
    recorder = _Recorder(adapter)
    try:
        mtv_generate(adapter, fitted, examples, max_new_tokens=4, batch_size=2, every_token=True, progress=False)
    finally:
        recorder.close()
    calls = recorder.inputs[1]
    assert len(calls) >= 2  # the prompt, then at least one generated token
    for x in calls:
        torch.testing.assert_close(_heads(x, adapter)[:, -1, 2], means[1, 2].expand(x.shape[0], d))
    # the default: the prompt's last token only; later passes run unpatched
    recorder = _Recorder(adapter)
    try:
        mtv_generate(adapter, fitted, examples, max_new_tokens=4, batch_size=2, progress=False)
    finally:
        recorder.close()
    first, *later = recorder.inputs[1]
    torch.testing.assert_close(_heads(first, adapter)[:, -1, 2], means[1, 2].expand(first.shape[0], d))
    assert later and not any(torch.allclose(_heads(x, adapter)[:, -1, 2], means[1, 2]) for x in later)


@pytest.fixture(scope="module")
def mini(tiny_dir):
    """savs-mini's wiring (real EfficientNet-Lite0, random projector) around a tiny random Llama."""
    pytest.importorskip("efficientnet_lite_pytorch")
    from transformers import AutoTokenizer, LlamaForCausalLM

    from savs.mini.adapter import MiniAdapter
    from savs.mini.model import MiniLMM, Projector, add_image_token
    from savs.mini.vision import FEATURE_DIM, VisionEncoder

    path = tiny_dir("llama")
    lm = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    model = MiniLMM(VisionEncoder(), Projector(FEATURE_DIM, lm.config.hidden_size), lm, add_image_token(tok))
    return MiniAdapter(model.eval(), tok, "savs-mini-tiny", "untrained")


def test_savs_mini_is_patched_on_a_pass_over_the_whole_prompt(mini):
    """savs-mini's ``generate`` prefills a batch's shared prefix in a pass of its own; MTV patches the prompt's last
    token, not that pass's last position, so its first pass runs the whole prompt."""
    examples = [replace(e, text="Look closely at the picture. " * 2 + e.text) for e in _examples("mini", 2)]
    right = mini.encode(examples, padding_side="right")
    assert cached_prefix_length(right["input_ids"], right["attention_mask"], mini.prefix_barrier_ids()) > 0
    L, H, d = mini.n_layers, mini.n_heads, mini.head_dim
    means = torch.randn(L, H, d, generator=torch.Generator().manual_seed(3))
    heads = torch.zeros(L, H, dtype=torch.bool)
    heads[L - 1, 1] = True
    recorder = _Recorder(mini)
    try:
        answers = mtv_generate(mini, MTV(means, heads, torch.zeros(L, H)), examples, max_new_tokens=3, progress=False)
    finally:
        recorder.close()
    first, *later = recorder.inputs[L - 1]
    assert first.shape[1] == mini.encode(examples)["input_ids"].shape[1], "the first pass is not the whole prompt"
    torch.testing.assert_close(_heads(first, mini)[:, -1, 1], means[L - 1, 1].expand(2, d))
    assert later and len(answers) == 2


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "llama"])
def test_no_heads_generates_the_zero_shot_answers(tiny_adapter, family):
    adapter = tiny_adapter(family)
    L, H, d = adapter.n_layers, adapter.n_heads, adapter.head_dim
    examples = _examples(family, 3)
    empty = MTV(means=torch.zeros(L, H, d), heads=torch.zeros(L, H, dtype=torch.bool), logits=torch.zeros(L, H))
    got = mtv_generate(adapter, empty, examples, max_new_tokens=5, batch_size=3, progress=False)
    assert got == adapter.generate(examples, max_new_tokens=5)


@pytest.mark.parametrize("family", ["llava", "llama"])
def test_cached_query_losses_equal_full_passes(tiny_adapter, family):
    adapter = tiny_adapter(family)
    L, H, d = adapter.n_layers, adapter.n_heads, adapter.head_dim
    query = _examples(family, 1)[0]
    means = torch.randn(L, H, d, generator=torch.Generator().manual_seed(4)) * 2
    masks = torch.rand(5, L, H, generator=torch.Generator().manual_seed(5)) < 0.5
    cached = _QueryLosses(adapter, query, means, chunk=2)
    assert cached.kv is not None
    full = _QueryLosses(adapter, query, means, chunk=3)
    full.kv = None  # force repeated full passes
    torch.testing.assert_close(cached(masks), full(masks), rtol=1e-4, atol=1e-4)
    # and each equals the plain patched pass's loss on that one query
    for mask, loss in zip(masks, cached(masks), strict=True):
        assert validation_loss(adapter, means, mask, [query]) == pytest.approx(float(loss), rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("family", ["idefics3", "llava", "llama"])
def test_answer_token_is_the_first_token_of_the_templates_answer(tiny_adapter, family):
    """The token the ICL demonstrations show after the prompt: Idefics3 and LLaVA-1.5 write ``Assistant: 0`` (the
    space's token first), ChatML the label right after the turn's opening line."""
    adapter = tiny_adapter(family)
    example = _examples(family, 1)[0]
    tok = adapter.tokenizer
    messages = adapter.messages(example)
    plain = isinstance(messages[-1]["content"], str)  # a text-only family's template takes no item lists
    answer = {"role": "assistant", "content": example.label if plain else [{"type": "text", "text": example.label}]}
    full = adapter.processor.apply_chat_template([*messages, answer], tokenize=False)
    prompt = tok(adapter.render(example), add_special_tokens=False)["input_ids"]
    assert answer_token(adapter, example) == tok(full, add_special_tokens=False)["input_ids"][len(prompt)]


def test_mtv_identity_changes_with_the_way_answer_tokens_are_made(monkeypatch):
    """A fit scored on the answer tokens of an older ``answer_ids`` is never served for the current ones."""
    demos = _examples("llava", 4)
    base = mtv_identity(_Stub, demos, 0, {}).namespace
    monkeypatch.setattr(mtv_module, "ANSWER_IDS_VERSION", mtv_module.ANSWER_IDS_VERSION - 1)
    assert mtv_identity(_Stub, demos, 0, {}).namespace != base


@pytest.mark.parametrize("side", ["left", "right"])
def test_mean_activations_are_the_per_prompt_last_token_heads_averaged(tiny_adapter, monkeypatch, side):
    """Each prompt's heads at its last real token, whichever side its batch is padded on."""
    adapter = tiny_adapter("llava")
    pool = _examples("llava", 6)
    view = _prerendered(adapter)
    expected = []
    for shots, query in icl_trials(pool, 2, 3, 7):  # one prompt at a time, no padding
        prompt = _prompted(
            icl_prompt(adapter, shots, query), tuple(i for e in (*shots, query) for i in e.images), query
        )
        inputs, _, _ = _run(adapter, view.encode([prompt]))
        expected.append(torch.stack([_heads(inputs[layer], adapter)[0, -1] for layer in range(adapter.n_layers)]))
    encode = type(adapter).encode
    monkeypatch.setattr(type(adapter), "encode", lambda self, batch, padding_side="left": encode(self, batch, side))
    got = mean_head_activations(adapter, pool, n_shots=2, n_trials=3, seed=7, batch_size=2, progress=False)
    torch.testing.assert_close(got, torch.stack(expected).mean(0), rtol=1e-4, atol=1e-5)
    assert got.shape == (adapter.n_layers, adapter.n_heads, adapter.head_dim)
    with pytest.raises(ValueError, match="at least 3"):
        icl_trials(pool[:2], 2, 1, 0)


# ----- the search on a synthetic problem ---------------------------------------------------------------------------
PLANTED = [(0, 1), (2, 3), (3, 0)]
SHAPE = (4, 5)


def _planted_loss(masks: torch.Tensor) -> torch.Tensor:
    """Lower with every planted head on and every other head off; noisy, like a model's loss on one query."""
    planted = torch.zeros(SHAPE, dtype=torch.bool)
    for ij in PLANTED:
        planted[ij] = True
    masks = masks.reshape(-1, *SHAPE)
    missing = (planted & ~masks).sum(dim=(1, 2)).float()
    extra = (~planted & masks).sum(dim=(1, 2)).float()
    return missing + 0.3 * extra


def test_reinforce_finds_planted_heads():
    noise = torch.Generator().manual_seed(11)
    logits = reinforce_heads(
        lambda masks, step: _planted_loss(masks) + 0.2 * torch.randn(masks.shape[0], generator=noise),
        SHAPE,
        steps=150,
        n_samples=32,
        seed=0,
        progress=False,
    )
    probs = torch.sigmoid(logits)
    planted = torch.zeros(SHAPE, dtype=torch.bool)
    for ij in PLANTED:
        planted[ij] = True
    assert probs[planted].min() > 0.9 and probs[~planted].max() < 0.1
    best = pick_heads(logits, lambda m: float(_planted_loss(m)), n_candidates=10, seed=0, progress=False)
    assert best.equal(planted)


def test_reinforce_starts_from_the_authors_init_and_moves_only_with_signal():
    # constant losses: zero advantage, so the logits stay at the initial -1 (sigmoid 0.27: MTV's starting point)
    logits = reinforce_heads(lambda masks, step: torch.ones(masks.shape[0]), SHAPE, steps=5, progress=False)
    torch.testing.assert_close(logits, torch.full(SHAPE, -1.0))
    with pytest.raises(ValueError, match="losses for 4 masks"):
        reinforce_heads(lambda masks, step: torch.ones(3), SHAPE, steps=1, n_samples=4, progress=False)


def test_one_mask_per_step_is_refused_before_any_forward_pass(tiny_adapter, count_forwards):
    """One mask's losses have no standard deviation (NaN weights, then no candidate): refused up front."""
    with pytest.raises(ValueError, match="n_samples >= 2"):
        reinforce_heads(lambda masks, step: _planted_loss(masks), SHAPE, steps=1, n_samples=1, progress=False)
    adapter = tiny_adapter("llama")
    forwards = count_forwards(adapter)
    with pytest.raises(ValueError, match="n_samples >= 2"):
        mtv_fit(adapter, _examples("llama", 6), progress=False, **{**TINY, "n_samples": 1})
    assert not forwards


def test_search_is_seeded():
    def run(seed):
        noise = torch.Generator().manual_seed(seed)
        return reinforce_heads(
            lambda masks, step: _planted_loss(masks) + torch.randn(masks.shape[0], generator=noise),
            SHAPE,
            steps=20,
            seed=seed,
            progress=False,
        )

    assert run(3).equal(run(3))
    assert not run(3).equal(run(4))
    logits = run(3)
    assert pick_heads(logits, lambda m: float(m.sum()), seed=1, progress=False).equal(
        pick_heads(logits, lambda m: float(m.sum()), seed=1, progress=False)
    )


# ----- end to end ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_mtv_predict_is_seeded_and_answers_with_labels(tiny_adapter, family):
    adapter = tiny_adapter(family)
    demos, tests = _examples(family, 6, seed=1), _examples(family, 3, seed=2)
    labels = ["0", "1"]
    first = mtv_predict(adapter, demos, tests, labels, seed=0, max_new_tokens=3, progress=False, **TINY)
    once = mtv_predict(
        adapter, demos, tests, labels, seed=0, max_new_tokens=3, every_token=True, progress=False, **TINY
    )
    assert len(once) == len(tests) and set(once) <= {"", *labels}
    assert first == mtv_predict(adapter, demos, tests, labels, seed=0, max_new_tokens=3, progress=False, **TINY)
    assert len(first) == len(tests) and set(first) <= {"", *labels}
    fitted = mtv_fit(adapter, demos, seed=0, progress=False, **TINY)
    again = mtv_fit(adapter, demos, seed=0, progress=False, **TINY)
    assert fitted.heads.equal(again.heads) and fitted.logits.equal(again.logits)
    torch.testing.assert_close(fitted.means, again.means)
    assert fitted.heads.shape == (adapter.n_layers, adapter.n_heads) and fitted.heads.dtype == torch.bool
    assert fitted.locations == [tuple(ij) for ij in fitted.heads.nonzero().tolist()]
    assert mtv_predict(adapter, demos, [], labels, progress=False) == []


def test_mtv_predict_fits_with_its_batch_size(tiny_adapter, monkeypatch):
    """The profile's batch size (``mtv_predict``'s) batches the fit too, not only generation."""
    adapter = tiny_adapter("llava")
    demos, tests = _examples("llava", 6, seed=1), _examples("llava", 1, seed=2)
    seen = []
    real = mtv_module.mtv_fit
    monkeypatch.setattr(mtv_module, "mtv_fit", lambda *a, **k: seen.append(k.get("batch_size")) or real(*a, **k))
    mtv_predict(adapter, demos, tests, ["0", "1"], max_new_tokens=1, batch_size=3, progress=False, **TINY)
    assert seen == [3]


def test_mtv_fit_runs_with_the_settings_its_docstring_cites_from_the_authors(monkeypatch):
    """Called without settings, ``mtv_fit`` hands each stage the values the module docstring attributes to the
    authors' scripts (parsed from it, not restated here): a constant changed away from the cited value, or a
    stage not given its setting, fails. The stages are stubbed: only what they receive is looked at."""
    import re
    from types import SimpleNamespace

    doc = mtv_module.__doc__.split("Where the defaults come from", 1)[1]
    cited = {name: float(value) for name, value in re.findall(r"``(\w+)=(-?\d[\d.e-]*)``", doc)}
    cited["init_logit"] = float(re.search(r"logits initialised to ``(-?[\d.]+)``", doc)[1])
    cited["reinforce_pool"] = float(re.search(r"``reinforce_pool`` of it, default (\d+)", doc)[1])
    assert set(cited) == {"n_shots", "n_trials", "steps", "lr", "n_samples", "init_logit", "eps", "reinforce_pool",
                          "n_candidates", "n_validation"}, cited  # fmt: skip
    got: dict[str, float] = {}
    queries: set[int] = set()

    def means(adapter, demos, *, n_shots, n_trials, **_):
        got.update(n_shots=n_shots, n_trials=n_trials)
        return torch.zeros(1)

    def reinforce(loss_fn, shape, *, steps, lr, n_samples, init_logit, eps, **_):
        got.update(steps=steps, lr=lr, n_samples=n_samples, init_logit=init_logit, eps=eps)
        for step in range(steps):  # every step's query, drawn from the REINFORCE pool
            loss_fn(torch.zeros(1, *shape), step)
        return torch.zeros(shape)

    def pick(logits, loss_fn, *, n_candidates, **_):
        got["n_candidates"] = n_candidates
        loss_fn(torch.zeros_like(logits, dtype=torch.bool))
        return torch.zeros_like(logits, dtype=torch.bool)

    monkeypatch.setattr(mtv_module, "mean_head_activations", means)
    monkeypatch.setattr(mtv_module, "reinforce_heads", reinforce)
    monkeypatch.setattr(mtv_module, "pick_heads", pick)
    monkeypatch.setattr(mtv_module, "_QueryLosses", lambda adapter, query, *_: queries.add(query.uid) or (lambda m: 0))
    monkeypatch.setattr(mtv_module, "validation_loss", lambda a, m, mask, held, b: got.update(n_validation=len(held)))
    demos = [SimpleNamespace(uid=i) for i in range(4 * int(cited["reinforce_pool"]))]  # more than any pool or set
    mtv_fit(SimpleNamespace(n_layers=2, n_heads=3), demos, progress=False)
    got["reinforce_pool"] = len(queries)  # distinct queries of ``steps`` draws from the pool: at most its size
    assert got["reinforce_pool"] <= cited["reinforce_pool"] < 1.1 * got["reinforce_pool"]
    assert {k: float(v) for k, v in got.items() if k != "reinforce_pool"} == {
        k: v for k, v in cited.items() if k != "reinforce_pool"
    }


def test_search_queries_and_held_out_examples_are_drawn_across_labels(tiny_adapter, monkeypatch):
    """Few-shot sets come in label order: the REINFORCE queries and the candidates' held-out examples are seeded
    draws from the whole set, not its first examples."""
    adapter = tiny_adapter("llama")
    demos = [type(e)(text=e.text, label=str(i // 4), uid=f"d{i}") for i, e in enumerate(_examples("llama", 12))]
    seen: dict[str, list] = {"held": [], "queries": []}
    monkeypatch.setattr(mtv_module, "validation_loss", lambda a, m, mask, held, b: seen["held"].append(held) or 0.0)
    real = mtv_module._QueryLosses

    def spy(adapter, query, means, chunk):
        seen["queries"].append(query.label)
        return real(adapter, query, means, chunk)

    monkeypatch.setattr(mtv_module, "_QueryLosses", spy)
    mtv_fit(adapter, demos, seed=0, progress=False, **{**TINY, "steps": 6, "n_validation": 4})
    assert {e.label for e in seen["held"][0]} != {"0"} and len(seen["held"][0]) == 4
    assert len(set(seen["queries"])) > 1


def test_inference_patches_the_prompt_only_by_default():
    import inspect

    for fn in (mtv_generate, mtv_predict):
        assert inspect.signature(fn).parameters["every_token"].default is False


# ----- caching ------------------------------------------------------------------------------------------------------
def test_fit_and_answers_are_cached(tiny_adapter, tmp_path, monkeypatch, count_forwards):
    """A rerun neither fits nor runs the model; new queries reuse the cached fit; another seed refits; cache-only
    misses raise before any forward pass."""
    adapter = tiny_adapter("llava")
    monkeypatch.setattr(mtv_module, "labelled", lambda texts, labels: list(texts))  # raw answers (tiny models ramble)
    fits = []
    real_fit = mtv_module.mtv_fit
    monkeypatch.setattr(mtv_module, "mtv_fit", lambda *a, **k: fits.append(1) or real_fit(*a, **k))
    demos, tests, more = _examples("llava", 6, seed=1), _examples("llava", 3, seed=2), _examples("llava", 2, seed=3)
    kw = {"seed": 0, "max_new_tokens": 3, "progress": False, "cache_dir": tmp_path, **TINY}

    first = mtv_predict(adapter, demos, tests, ["0", "1"], **kw)
    assert len(fits) == 1
    calls = count_forwards(adapter)
    assert mtv_predict(adapter, demos, tests, ["0", "1"], **kw) == first
    assert calls == [] and len(fits) == 1

    extended = mtv_predict(adapter, demos, tests + more, ["0", "1"], **kw)
    assert len(fits) == 1 and len(calls) > 0  # new queries answered, from the cached fit
    assert extended == mtv_predict(adapter, demos, tests + more, ["0", "1"], **{**kw, "cache_dir": None})
    assert extended[:3] == first and len(fits) == 2  # the uncached run fitted afresh and agreed

    mtv_predict(adapter, demos, tests, ["0", "1"], **{**kw, "every_token": True})
    assert len(fits) == 2  # another decoding: new answers, same fit
    calls.clear()
    with pytest.raises(CacheMissError, match="MTV answers"):
        mtv_predict(adapter, demos, tests, ["0", "1"], **{**kw, "seed": 1, "cache_only": True})
    assert calls == [] and len(fits) == 2
    mtv_predict(adapter, demos, tests, ["0", "1"], **{**kw, "seed": 1})
    assert len(fits) == 3


def test_answers_of_finished_batches_are_cached_when_a_later_batch_fails(tiny_adapter, tmp_path, monkeypatch):
    """A run killed mid-generation keeps the answers it finished: each batch is stored as it comes."""
    adapter = tiny_adapter("llava")
    demos, tests = _examples("llava", 6, seed=1), _examples("llava", 3, seed=2)
    kw = {"seed": 0, "max_new_tokens": 2, "batch_size": 1, "progress": False, "cache_dir": tmp_path, **TINY}
    real, calls = adapter.decode, []

    def killed_at_the_second_batch(batch, cache=None, max_new_tokens=16):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(batch, cache, max_new_tokens=max_new_tokens)

    monkeypatch.setattr(adapter, "decode", killed_at_the_second_batch)
    with pytest.raises(RuntimeError, match="killed"):
        mtv_predict(adapter, demos, tests, ["0", "1"], **kw)
    with pytest.raises(CacheMissError, match="2 of 3 MTV answers"):
        mtv_predict(adapter, demos, tests, ["0", "1"], **{**kw, "cache_only": True})


def test_identity_names_the_fit():
    """Defaults spelled out name the same fit; the few-shot set's labels, order, the seed and a setting change it."""
    from dataclasses import replace

    demos = _examples("llava", 4)
    base = mtv_identity(_Stub, demos, 0, {}).namespace
    assert base == mtv_identity(_Stub, demos, 0, {"steps": mtv_module.STEPS, "progress": False}).namespace
    relabelled = [replace(demos[0], label="other"), *demos[1:]]
    for other in (
        mtv_identity(_Stub, demos[::-1], 0, {}),
        mtv_identity(_Stub, relabelled, 0, {}),
        mtv_identity(_Stub, demos, 1, {}),
        mtv_identity(_Stub, demos, 0, {"steps": 5}),
    ):
        assert other.namespace != base
    with pytest.raises(TypeError, match="no option"):
        mtv_identity(_Stub, demos, 0, {"stepz": 5})
