"""The shared-prefix KV cache (savs.kvcache) and the adapter's prefill and decode, checked against plain full-prompt
passes and transformers' ``generate`` on tiny random models."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from conftest import make_examples

from savs.capture import capture_features
from savs.kvcache import (
    Memo,
    after_prefix,
    empty_cache,
    expanded,
    left_aligned_suffix,
    shared_prefix_length,
    stacked,
    suffix,
)

pytestmark = pytest.mark.usefixtures("one_thread")
ATOL = 1e-4


@torch.inference_mode()
def _prefix(adapter, ids: torch.Tensor, mask: torch.Tensor | None = None):
    """The keys and values of row 0 of ``ids`` (all its columns), prefilled."""
    mask = torch.ones_like(ids) if mask is None else mask
    return adapter.prefill({"input_ids": ids[:1], "attention_mask": mask[:1]}).kv


def _shared_prefix_batch(adapter, family: str):
    """Three examples sharing a long text prefix, encoded right-padded; and that prefix's length."""
    examples = [replace(e, text="Look closely. " * 3 + e.text) for e in make_examples(3, family != "llama")]
    batch = dict(adapter.encode(examples, padding_side="right"))
    n = shared_prefix_length(batch["input_ids"], batch["attention_mask"], adapter.prefix_barrier_ids())
    assert n > 5
    return examples, batch, n


def test_shared_prefix_stops_before_image_tokens():
    ids = torch.tensor([[1, 2, 9, 9, 5, 0], [1, 2, 9, 9, 6, 7]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    assert shared_prefix_length(ids, mask, barrier=set()) == 4
    assert shared_prefix_length(ids, mask, barrier={9}) == 2
    same = torch.tensor([[1, 2, 3], [1, 2, 3]])
    assert shared_prefix_length(same, torch.ones_like(same), barrier=set()) == 2  # one token left per row


def test_suffix_shortens_the_tokens_only_and_after_prefix_widens_the_mask():
    batch = {
        "input_ids": torch.arange(10).view(2, 5),
        "attention_mask": torch.ones(2, 5),
        "pixel_values": torch.ones(3),
    }
    cut = suffix(batch, 2)
    assert cut["input_ids"].tolist() == [[2, 3, 4], [7, 8, 9]]
    assert cut["attention_mask"] is batch["attention_mask"] and cut["pixel_values"] is batch["pixel_values"]
    widened = after_prefix({"input_ids": torch.ones(2, 3), "attention_mask": torch.tensor([[0, 1, 1], [1, 1, 1]])}, 2)
    assert widened["attention_mask"].tolist() == [[1, 1, 0, 1, 1], [1, 1, 1, 1, 1]]


def test_left_aligned_suffix_moves_each_rows_padding_to_the_front():
    ids = torch.tensor([[7, 7, 1, 2, 0, 0], [7, 7, 3, 4, 5, 6]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    out = left_aligned_suffix({"input_ids": ids, "attention_mask": mask}, 2)
    assert out["input_ids"].tolist() == [[0, 0, 1, 2], [3, 4, 5, 6]]
    assert out["attention_mask"].tolist() == [[1, 1, 0, 0, 1, 1], [1, 1, 1, 1, 1, 1]]


@pytest.mark.parametrize("family", ["llama", "llava"])
def test_expanded_prefix_continues_like_the_full_prompt(tiny_adapter, family):
    """A prefix run once and expanded to every row, then each row's suffix: the plain pass's logits."""
    adapter = tiny_adapter(family)
    examples, batch, n = _shared_prefix_batch(adapter, family)
    kv = _prefix(adapter, batch["input_ids"][:, :n])
    rows, last = torch.arange(len(examples)), batch["attention_mask"].sum(1) - 1  # right padding: last real tokens
    with torch.inference_mode():
        plain = adapter.forward(batch).logits[rows, last]  # (B, V)
        cached = adapter.forward(suffix(batch, n), cache=expanded(kv, len(examples)), use_cache=True).logits
    torch.testing.assert_close(cached[rows, last - n], plain, atol=ATOL, rtol=1e-4)
    assert kv[0][0].shape == (1, kv[0][0].shape[1], n, kv[0][0].shape[3]), "the pass extended the prefix's own cache"


def test_stacked_prefixes_of_different_lengths_continue_like_each_full_prompt(tiny_adapter):
    """Rows whose prefixes differ, left-padded into one cache: each row's logits as if it ran alone."""
    adapter = tiny_adapter("llama")
    tok = adapter.tokenizer
    prefixes = [tok(t, add_special_tokens=False)["input_ids"] for t in ("A short one.", "A rather longer prefix here.")]
    suffixes = [tok(t, add_special_tokens=False)["input_ids"] for t in (" Then this", " And")]
    with torch.inference_mode():
        cache, prefix_mask = stacked([_prefix(adapter, torch.tensor([p])) for p in prefixes])
        width = max(map(len, suffixes))
        ids = torch.tensor([s + [tok.pad_token_id] * (width - len(s)) for s in suffixes])  # (B, S), right-padded
        mask = torch.cat([prefix_mask, torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in suffixes])], 1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -width:]  # a left-padded prefix shifts no row's positions
        logits = adapter.forward(
            {"input_ids": ids, "attention_mask": mask, "position_ids": positions}, cache, True
        ).logits
        for row, (p, s) in enumerate(zip(prefixes, suffixes, strict=True)):
            alone = torch.tensor([p + s])
            expected = adapter.forward({"input_ids": alone, "attention_mask": torch.ones_like(alone)}).logits[0, -1]
            torch.testing.assert_close(logits[row, len(s) - 1], expected, atol=ATOL, rtol=1e-4)
    assert prefix_mask.tolist()[0][:2] == [0, 0] and prefix_mask.sum(1).tolist() == list(map(len, prefixes))


@pytest.mark.parametrize("family", ["llama", "llava"])
def test_decode_answers_like_generate(tiny_adapter, family):
    """The argmax loop of ``decode`` answers as transformers' greedy ``generate`` does, from a full left-padded prompt
    (an empty cache) and from a shared prefix's cache; without a cache ``decode`` is the model's own ``generate``."""
    adapter = tiny_adapter(family)
    examples, batch, n = _shared_prefix_batch(adapter, family)
    left = adapter.encode(examples, padding_side="left")
    with torch.inference_mode():
        out = adapter.model.generate(**left, max_new_tokens=6, do_sample=False)[:, left["input_ids"].shape[1] :]
    expected = [t.strip() for t in adapter.tokenizer.batch_decode(out, skip_special_tokens=True)]
    assert any(expected), "nothing was generated: the comparison would prove nothing"
    assert adapter.generate(examples, max_new_tokens=6) == adapter.decode(left, max_new_tokens=6) == expected
    assert adapter.decode(left, empty_cache(), max_new_tokens=6) == expected
    cache = expanded(_prefix(adapter, batch["input_ids"][:, :n]), len(examples))
    assert adapter.decode(left_aligned_suffix(batch, n), cache, max_new_tokens=6) == expected
    shared = adapter.shared_prefix_cache(batch["input_ids"], batch["attention_mask"], n)
    assert adapter.decode(left_aligned_suffix(batch, n), shared, max_new_tokens=6) == expected


def test_decode_stops_each_row_at_its_end_token(tiny_adapter, monkeypatch):
    """A row that emits an end token is padded from then on (padding is stripped from its answer), and decoding stops
    once every row has ended."""
    adapter = tiny_adapter("llama")
    examples = make_examples(5, False)
    with torch.inference_mode():
        firsts = [int(adapter.forward(adapter.encode([e])).logits[0, -1].argmax()) for e in examples]
    i, j = next((i, j) for i in range(5) for j in range(i + 1, 5) if firsts[i] != firsts[j])
    left = adapter.encode([examples[i], examples[j]], padding_side="left")
    text = [adapter.tokenizer.decode([firsts[k]], skip_special_tokens=True).strip() for k in (i, j)]
    calls = []
    real = type(adapter).prefill
    monkeypatch.setattr(type(adapter), "prefill", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    monkeypatch.setattr(type(adapter), "_eos_ids", lambda self: [firsts[i], firsts[j]])
    assert adapter.decode(left, empty_cache(), max_new_tokens=5) == text
    assert len(calls) == 1, "both rows ended after one token, yet decoding went on"
    monkeypatch.setattr(type(adapter), "_eos_ids", lambda self: [firsts[i]])
    calls.clear()
    ended, going = adapter.decode(left, empty_cache(), max_new_tokens=5)
    assert ended == text[0] and going.startswith(text[1]) and len(calls) > 1


@pytest.mark.parametrize("family", ["llama", "llava"])
def test_prefill_returns_the_cache_logits_and_captured_heads_of_one_pass(tiny_adapter, family, count_forwards):
    """One pass: its keys and values continue the prompt as the full pass would, its logits are the last column's,
    and under a capture its heads are the capture's own reading."""
    adapter = tiny_adapter(family)
    examples = _shared_prefix_batch(adapter, family)[0]
    left = adapter.encode(examples, padding_side="left")
    with torch.inference_mode():
        full = adapter.forward(left).logits[:, -1]  # (B, V)
        calls = count_forwards(adapter)
        done = adapter.prefill(left)
        assert len(calls) == 1
        torch.testing.assert_close(done.logits, full, atol=0, rtol=0)
        assert done.features is None and len(done.kv) == adapter.n_layers
        assert done.kv[0][0].shape[2] == left["input_ids"].shape[1]
        with pytest.raises(ValueError, match="without a cache"):
            _ = adapter.prefill(left, use_cache=False).kv
        with capture_features(adapter, [0, 1]) as capture:
            index = torch.full((len(examples),), -1)  # the last column
            expected = capture.run(lambda: adapter.forward(left), index)["heads"]
            got = adapter.prefill(left, use_cache=False, capture=capture, index=index)
        torch.testing.assert_close(got.features["heads"], expected, atol=0, rtol=0)
        assert got.logits is None, "the capture stops the pass before the LM head"


def test_memo_computes_each_key_once_and_keeps_the_latest():
    computed = []

    def compute(key):
        return lambda: computed.append(key) or f"value {key}"

    latest = Memo()
    assert [latest.get(k, compute(k)) for k in (1, 1, 2, 1)] == ["value 1", "value 1", "value 2", "value 1"]
    assert computed == [1, 2, 1], "one entry kept: 1 was dropped for 2 and computed again"
    computed.clear()
    two = Memo(size=2)
    for k in (1, 2, 1, 3, 2, 1):
        two.get(k, compute(k))
    assert computed == [1, 2, 3, 1], "the oldest entry goes first"
    computed.clear()
    every = Memo(size=None)
    for k in (1, 2, 3, 1, 2, 3):
        every.get(k, compute(k))
    assert computed == [1, 2, 3]
    every.clear()
    assert every.get(1, compute(1)) == "value 1" and computed == [1, 2, 3, 1]
    with pytest.raises(ValueError, match="at least one"):
        Memo(size=0)
