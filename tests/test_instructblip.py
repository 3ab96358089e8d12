"""InstructBLIP, a generation-only family (no chat template, so no ICL / MTV): a tiny random model through the
users' path (``load_model`` of a saved directory), zero-shot generation and head extraction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_examples

from savs.baselines import match_answer, zero_shot
from savs.capture import capture_features
from savs.examples import Example, side_by_side
from savs.extract import extract_heads
from savs.models import MODELS, load_model
from savs.models.instructblip import InstructBlipAdapter
from savs.testing.random_models import INSTRUCTBLIP_QUERIES, build_random_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    torch.manual_seed(0)
    return load_model(str(build_random_model("instructblip", tmp_path_factory.mktemp("instructblip"))), device="cpu")


def test_loads_as_its_family_with_the_decoders_geometry(adapter):
    assert isinstance(adapter, InstructBlipAdapter) and adapter.family == "instructblip"
    cfg = adapter.text_config
    assert adapter.n_layers == cfg.num_hidden_layers and adapter.n_heads == cfg.num_attention_heads
    assert adapter.n_heads * adapter.head_dim == adapter.o_proj(0).in_features
    assert MODELS["instructblip-7b"].hub_id == "Salesforce/instructblip-vicuna-7b"


def test_prompt_is_the_text_after_the_query_tokens(adapter):
    example = make_examples(1, with_images=True)[0]
    marked = type(example)(text="<image>\n" + example.text, label="0", images=example.images)
    assert adapter.render(marked) == example.text  # the authors' marker dropped, no template
    batch = adapter.encode([marked])
    ids = batch["input_ids"][0].tolist()
    image = adapter.model.config.image_token_id
    assert ids[:INSTRUCTBLIP_QUERIES] == [image] * INSTRUCTBLIP_QUERIES and image not in ids[INSTRUCTBLIP_QUERIES:]
    assert ids[INSTRUCTBLIP_QUERIES] == adapter.tokenizer.bos_token_id  # the tokenizer's own BOS, as Vicuna's
    assert adapter.tokenizer.decode(ids[INSTRUCTBLIP_QUERIES + 1 :]) == example.text
    assert "qformer_input_ids" in batch and batch["pixel_values"].shape[0] == 1
    with pytest.raises(ValueError, match="needs an image"):
        adapter.encode(make_examples(1, with_images=False))


def test_several_images_are_shown_side_by_side(adapter):
    """A BLINK-style example with 3 images (3 markers) is the one-image example of those images joined."""
    a, b, c = (e.images[0] for e in make_examples(3, with_images=True, seed=4))
    several = Example(text="<image>\n" * 3 + "Which one?", label="0", images=(a, b, c))
    one = Example(text="<image>\nWhich one?", label="0", images=(side_by_side([a, b, c]),))
    assert adapter.render(several) == adapter.render(one) == "Which one?"
    got, want = adapter.encode([several]), adapter.encode([one])
    assert got.keys() == want.keys()
    for key in got:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)
    assert adapter.identity.extra.endswith("+side-by-side")


def test_zero_shot_batched_equals_one_at_a_time(adapter):
    examples = make_examples(4, with_images=True)
    raw = adapter.generate(examples, max_new_tokens=5)
    assert raw == [adapter.generate([e], max_new_tokens=5)[0] for e in examples]
    assert any(raw), "every answer empty: the test would prove nothing"
    mapped = zero_shot(adapter, examples, ["0", "1"], max_new_tokens=5, batch_size=2, progress=False)
    assert mapped == [match_answer(t, ["0", "1"]) or "" for t in raw]


def test_heads_batched_equal_one_at_a_time_and_reproduce_attention(adapter):
    examples = make_examples(4, with_images=True)
    batched = extract_heads(adapter, examples, batch_size=4, progress=False)
    single = np.concatenate([extract_heads(adapter, [e], progress=False) for e in examples])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert np.abs(single).max() > 1e-3
    # o_proj of the captured heads is the attention output at the last token
    batch = adapter.encode(examples[:2])
    out = {}
    handles = [
        layer.self_attn.register_forward_hook(lambda m, a, o, i=i: out.__setitem__(i, o[0][:, -1].clone()))
        for i, layer in enumerate(adapter.layers())
    ]
    try:
        with capture_features(adapter, range(adapter.n_layers), stop_early=False) as cap, torch.inference_mode():
            heads = cap.run(lambda: adapter.forward(batch), torch.full((2,), batch["input_ids"].shape[1] - 1))["heads"]
    finally:
        for h in handles:
            h.remove()
    for layer in range(adapter.n_layers):
        with torch.inference_mode():
            torch.testing.assert_close(adapter.o_proj(layer)(heads[:, layer].reshape(2, -1)), out[layer])
