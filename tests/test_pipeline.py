"""The one-call API: fit on few-shot examples, classify new ones end to end, save and load without pickle."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_examples

from savs import SAVClassifier, SAVPipeline, extract_heads, fit_sav


@pytest.fixture
def shots():
    return make_examples(12, with_images=True, seed=1)


def test_pipeline_predicts_like_the_full_classifier(tiny_adapter, shots):
    adapter = tiny_adapter("llava")
    queries = make_examples(6, with_images=True, seed=2)
    pipe = fit_sav(adapter, shots, n_heads=5)
    X_train = extract_heads(adapter, shots, progress=False)
    X_test = extract_heads(adapter, queries, progress=False)
    full = SAVClassifier(n_heads=5).fit(X_train, [e.label for e in shots])
    np.testing.assert_array_equal(pipe.heads, full.heads_)
    np.testing.assert_array_equal(pipe.predict(queries, progress=False), full.predict(X_test))


def test_prediction_runs_only_to_the_deepest_selected_layer(tiny_adapter, shots):
    adapter = tiny_adapter("llava")
    pipe = fit_sav(adapter, shots, n_heads=1)
    pipe.heads = np.array([[0, 1]])  # pretend the best head sits in layer 0
    ran = []
    handle = adapter.layers()[1].register_forward_pre_hook(lambda *a: ran.append(1))
    try:
        pipe.features(make_examples(2, with_images=True), progress=False)
    finally:
        handle.remove()
    assert not ran


def test_save_and_load_round_trip(tiny_adapter, shots, tmp_path):
    adapter = tiny_adapter("llava")
    queries = make_examples(6, with_images=True, seed=3)
    pipe = fit_sav(adapter, shots, n_heads=4, metric="euclidean")
    pipe.save(tmp_path / "sav")
    assert json.loads((tmp_path / "sav" / "sav.json").read_text())["metric"] == "euclidean"
    assert not list((tmp_path / "sav").glob("*.pkl"))
    loaded = SAVPipeline.load(tmp_path / "sav", adapter=adapter)
    np.testing.assert_array_equal(loaded.heads, pipe.heads)
    np.testing.assert_array_equal(loaded.predict(queries, progress=False), pipe.predict(queries, progress=False))
    assert list(loaded.classes_) == list(pipe.classes_)


def test_load_by_model_name(tiny_dir, tiny_adapter, tmp_path):
    """A saved pipeline remembers its model and loads it again by that name (here a local directory)."""
    path = tiny_dir("llama")
    adapter = tiny_adapter("llama")
    assert adapter.name == path
    fit_sav(adapter, make_examples(8, with_images=False), n_heads=3).save(tmp_path / "p")
    loaded = SAVPipeline.load(tmp_path / "p", device="cpu")
    assert loaded.adapter.name == path
    assert loaded.predict(make_examples(2, with_images=False), progress=False).shape == (2,)
