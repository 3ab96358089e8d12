"""The one-call API: fit on few-shot examples, classify new ones end to end, save and load without pickle.

A saved SAV holds its model's identity and geometry and is checked field by field on load; saving swaps a whole
directory in at once.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
import torch
from conftest import make_examples

import savs.pipeline
from savs import SAVClassifier, SAVPipeline, extract_heads, fit_sav
from savs.identity import digest, json_digest
from savs.models import load_model
from savs.pipeline import ModelMismatchError, SavedSAVError, read_saved
from savs.testing.random_models import build_random_model

pytestmark = pytest.mark.usefixtures("one_thread")


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
    meta = json.loads((tmp_path / "sav" / "sav.json").read_text())
    assert meta["metric"] == "euclidean"
    assert meta["identity"] == adapter.identity.to_dict()
    assert meta["geometry"] == {"n_layers": 2, "n_heads": 4, "head_dim": 16}
    assert sorted(p.name for p in (tmp_path / "sav").iterdir()) == ["sav.json", "sav.safetensors"]
    assert meta["format"] == 5 and meta["task"] is None
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


# ----- a saved SAV and the model it is given ------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tiny_adapter, tmp_path_factory) -> Path:
    """A SAV of tiny LLaVA over three classes, saved once; tests copy it before changing it."""
    shots = [replace(e, label=f"c{i % 3}") for i, e in enumerate(make_examples(12, with_images=True, seed=4))]
    path = tmp_path_factory.mktemp("saved") / "sav"
    fit_sav(tiny_adapter("llava"), shots, n_heads=4).save(path)
    return path


@pytest.fixture
def copy(saved, tmp_path) -> Path:
    return Path(shutil.copytree(saved, tmp_path / "sav"))


def test_load_refuses_another_checkpoint_of_the_same_geometry(saved, tiny_dir, tmp_path):
    other = load_model(str(build_random_model("llava", tmp_path / "seed1", seed=1)), device="cpu")
    names = f"fitted on model '{tiny_dir('llava')}'; the given model '{tmp_path / 'seed1'}' differs in source: "
    with pytest.raises(ModelMismatchError, match=f"{saved}.*{names}.*allow_model_mismatch=True") as err:
        SAVPipeline.load(saved, adapter=other)
    assert "dtype" not in str(err.value)  # only the fields that differ
    with pytest.warns(UserWarning, match=names):
        pipe = SAVPipeline.load(saved, adapter=other, allow_model_mismatch=True)
    assert pipe.predict(make_examples(2, with_images=True), progress=False).shape == (2,)


def test_load_by_name_refuses_the_model_in_another_dtype(saved):
    with pytest.raises(ModelMismatchError, match="dtype: 'float32' != 'bfloat16'"):
        SAVPipeline.load(saved, device="cpu", dtype=torch.bfloat16)


def test_load_refuses_another_geometry_even_when_allowed(saved, tiny_dir, tmp_path):
    shallow = Path(shutil.copytree(tiny_dir("llama"), tmp_path / "shallow"))
    config = json.loads((shallow / "config.json").read_text())
    (shallow / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 1}))
    adapter = load_model(str(shallow), device="cpu")
    for allow in (False, True):
        with pytest.raises(ModelMismatchError, match=f"'{tiny_dir('llava')}'.*'{shallow}'.*n_layers: 2 != 1"):
            SAVPipeline.load(saved, adapter=adapter, allow_model_mismatch=allow)


# ----- validating what load reads -----------------------------------------------------------------------------
@pytest.mark.parametrize("options", [{"voting": "reliability"}, {"scoring": "leave_one_out", "selection": "pursuit"}])
def test_the_later_head_rules_survive_fit_sav_save_and_load(tiny_adapter, tmp_path, options):
    adapter = tiny_adapter("llava")
    shots = make_examples(24, with_images=True, seed=4)
    queries = make_examples(8, with_images=True, seed=5)
    pipe = fit_sav(adapter, shots, n_heads=3, **options)
    X = extract_heads(adapter, shots, progress=False)
    full = SAVClassifier(n_heads=3, **options).fit(X, [e.label for e in shots])
    X_test = extract_heads(adapter, queries, progress=False)
    np.testing.assert_array_equal(pipe.heads, full.heads_)
    np.testing.assert_array_equal(pipe.predict(queries, progress=False), full.predict(X_test))
    np.testing.assert_allclose(pipe.predict_proba(queries, progress=False), full.predict_proba(X_test))
    pipe.save(tmp_path / "sav", task={"who": "test", "shots": [1, 2.5, None]})
    loaded = SAVPipeline.load(tmp_path / "sav", adapter=adapter)
    assert loaded.classifier.voting == full.voting and loaded.task == {"who": "test", "shots": [1, 2.5, None]}
    np.testing.assert_allclose(loaded.predict_proba(queries, progress=False), full.predict_proba(X_test))
    loaded.save(tmp_path / "again")  # a loaded pipeline saves its task again
    assert SAVPipeline.load(tmp_path / "again", adapter=adapter).task == loaded.task


def rewrite(path: Path, meta: Callable[[dict], None] | None = None, arrays: Callable[[dict], None] | None = None):
    """Change a saved SAV's JSON and/or arrays in place, keeping the checksums true to them (so that each field's own
    check is what is tested; edits that leave the checksum: ``test_an_edited_sav_json_or_task_is_refused``)."""
    meta_file, arrays_file = path / "sav.json", path / "sav.safetensors"
    m = json.loads(meta_file.read_text())
    if arrays is not None:
        a = safetensors.numpy.load(arrays_file.read_bytes())
        arrays(a)
        data = safetensors.numpy.save(a)
        arrays_file.write_bytes(data)
        m["arrays_sha256"] = digest(data)
    if meta is not None:
        meta(m)
    m["json_sha256"] = json_digest({k: v for k, v in m.items() if k != "json_sha256"})
    meta_file.write_text(json.dumps(m))


def set_means_nan(a):
    a["class_means"][1, 2, 3] = np.nan


def set_head(row: int, value: list[int]):
    return lambda a: a["heads"].__setitem__(row, value)


BAD_SAVES = {
    "unknown metric": (lambda m: m.update(metric="manhattan"), None, "sav.json: metric: 'manhattan' is not one of"),
    "more classes than means": (lambda m: m["classes"].append("c9"), None, "sav.safetensors: class_means: shape"),
    "fewer classes than means": (lambda m: m["classes"].pop(), None, "sav.json lists 2 classes"),
    "duplicate classes": (lambda m: m.update(classes=["c0", "c0", "c2"]), None, "sav.json: classes: duplicate"),
    "NaN mean": (None, set_means_nan, "sav.safetensors: class_means: 1 values are NaN or infinite"),
    "head outside the model": (None, set_head(0, [2, 0]), r"sav.safetensors: heads: \[\[2, 0\]\] outside"),
    "duplicate heads": (None, lambda a: a["heads"].__setitem__(1, a["heads"][0]), "heads: duplicate"),
    "head_dim disagreeing with the means": (
        lambda m: m["geometry"].update(head_dim=8),
        None,
        r"class_means: shape \(3, 4, 16\)",
    ),
    "geometry not positive": (lambda m: m["geometry"].update(n_heads=0), None, "sav.json: geometry: expected pos"),
    "unknown format": (lambda m: m.update(format=99), None, "sav.json: format: unknown format 99"),
    "task not an object": (lambda m: m.update(task=["labels"]), None, "sav.json: task: expected dict, got list"),
    "no task field": (lambda m: m.pop("task"), None, "sav.json: task: missing"),
    "save from before formats": (lambda m: m.pop("format"), None, "sav.json: format: missing: written by an older"),
    "no identity": (lambda m: m.pop("identity"), None, "sav.json: identity: missing"),
    "identity field missing": (lambda m: m["identity"].pop("dtype"), None, r"identity: .*missing fields \['dtype'\]"),
    "metric not a string": (lambda m: m.update(metric=1), None, "sav.json: metric: expected str, got int"),
    "unknown voting": (lambda m: m.update(voting="plurality"), None, "sav.json: voting: 'plurality' is not one of"),
    "temperature not positive": (lambda m: m.update(temperature=-0.5), None, "sav.json: temperature: expected a fin"),
    "weights of another shape": (None, lambda a: a.update(head_weights=a["head_weights"][:2]), "head_weights: shape"),
    "negative weight": (None, lambda a: a["head_weights"].__setitem__((0, 0), -1.0), "head_weights: expected finite"),
}


@pytest.fixture
def no_model_loading(monkeypatch):
    """Validation must finish before the (possibly 7B) model is loaded by name."""
    monkeypatch.setattr(savs.pipeline, "load_model", lambda *a, **k: pytest.fail("loaded the model first"))


@pytest.mark.parametrize("case", BAD_SAVES, ids=list(BAD_SAVES))
def test_load_refuses_a_bad_save_naming_file_and_field(case, copy, no_model_loading):
    meta, arrays, message = BAD_SAVES[case]
    rewrite(copy, meta, arrays)
    with pytest.raises(SavedSAVError, match=message):
        SAVPipeline.load(copy)


def test_load_refuses_arrays_from_another_save(copy, no_model_loading):
    """The checksum in sav.json ties it to its arrays: new means with old labels are caught."""
    arrays = safetensors.numpy.load((copy / "sav.safetensors").read_bytes())
    arrays["class_means"] = arrays["class_means"] + 1
    (copy / "sav.safetensors").write_bytes(safetensors.numpy.save(arrays))
    with pytest.raises(SavedSAVError, match="sav.safetensors: arrays_sha256: content does not match"):
        SAVPipeline.load(copy)


EDITS = {
    "classes permuted": lambda m: m.update(classes=m["classes"][::-1]),
    "metric changed": lambda m: m.update(metric="euclidean"),
    "voting changed": lambda m: m.update(voting="reliability"),
    "temperature changed": lambda m: m.update(temperature=2 * m["temperature"]),
    "model renamed": lambda m: m.update(model=m["model"] + "-other"),
    "task's prompt edited": lambda m: m["task"].update(prompt="Which animal?"),
    "task's labels permuted": lambda m: m["task"].update(labels=m["task"]["labels"][::-1]),
    "checksum dropped": lambda m: m.pop("json_sha256"),
}


@pytest.mark.parametrize("case", EDITS, ids=list(EDITS))
def test_an_edited_sav_json_or_task_is_refused(case, saved, tiny_adapter, tmp_path, no_model_loading):
    """sav.json's checksum covers every field that decides a prediction (it covered the arrays only: permuted classes
    loaded and flipped every answer), the task record saved with it included (the command line's prompt)."""
    pipe = SAVPipeline.load(saved, adapter=tiny_adapter("llava"))
    path = tmp_path / "sav"
    pipe.save(path, task={"prompt": "What is it?", "labels": ["c0", "c1", "c2"]})
    meta = json.loads((path / "sav.json").read_text())
    EDITS[case](meta)
    (path / "sav.json").write_text(json.dumps(meta, indent=2))
    match = "json_sha256: missing" if case == "checksum dropped" else "sav.json: json_sha256: the fields do not match"
    with pytest.raises(SavedSAVError, match=match):
        SAVPipeline.load(path)


def test_the_task_is_saved_in_sav_json_and_what_json_cannot_hold_is_refused(saved, tiny_adapter, tmp_path):
    pipe = SAVPipeline.load(saved, adapter=tiny_adapter("llava"))
    pipe.save(tmp_path / "sav", task={"prompt": "What is it?"})
    assert sorted(p.name for p in (tmp_path / "sav").iterdir()) == ["sav.json", "sav.safetensors"]
    assert json.loads((tmp_path / "sav" / "sav.json").read_text())["task"] == {"prompt": "What is it?"}
    assert read_saved(tmp_path / "sav").task == {"prompt": "What is it?"}
    for bad in ({"shots": np.int64(3)}, {"score": float("nan")}, ["a list"]):
        with pytest.raises(TypeError, match="task must"):
            pipe.save(tmp_path / "bad", task=bad)
    assert not (tmp_path / "bad").exists()


def format_4(path: Path) -> None:
    """Turn a saved SAV into what savs wrote before format 5: the task in a task.json of its own beside sav.json."""
    meta = json.loads((path / "sav.json").read_text())
    (path / "task.json").write_text(json.dumps({"format": 1, "prompt": "What is it?"}))
    meta = {**meta, "format": 4, "files_sha256": {"task.json": digest((path / "task.json").read_bytes())}}
    meta.pop("task")
    meta["json_sha256"] = json_digest({k: v for k, v in meta.items() if k != "json_sha256"})
    (path / "sav.json").write_text(json.dumps(meta))


def test_a_format_4_save_or_a_task_json_beside_sav_json_is_refused(copy, other_pipeline, no_model_loading):
    """Format 4 kept the command line's task in task.json: refused with what to do, never read in half; a save
    replaces such a folder whole."""
    format_4(copy)
    with pytest.raises(SavedSAVError, match="sav.json: format: format 4, .* task.json .* fit again"):
        SAVPipeline.load(copy)
    other_pipeline.save(copy)  # refitting over it: task.json goes with the old save
    assert sorted(p.name for p in copy.iterdir()) == ["sav.json", "sav.safetensors"]
    (copy / "task.json").write_text("{}")  # a task.json beside a format-5 sav.json: not this savs's, not read
    with pytest.raises(SavedSAVError, match="task.json: file: an older savs's task record"):
        SAVPipeline.load(copy)


def test_a_format_3_save_is_refused_with_what_to_do(copy, no_model_loading):
    meta = json.loads((copy / "sav.json").read_text())
    for key in ("json_sha256", "task"):
        meta.pop(key)
    (copy / "sav.json").write_text(json.dumps({**meta, "format": 3}))
    with pytest.raises(SavedSAVError, match="format: format 3, written by an older savs .* fit again"):
        SAVPipeline.load(copy)


def test_load_refuses_missing_files_and_broken_json(copy, no_model_loading):
    (copy / "sav.json").write_text("{")
    with pytest.raises(SavedSAVError, match="sav.json: content: not valid JSON"):
        SAVPipeline.load(copy)
    (copy / "sav.safetensors").unlink()
    with pytest.raises(SavedSAVError, match="sav.safetensors: file: missing"):
        SAVPipeline.load(copy)
    with pytest.raises(SavedSAVError, match="directory: no saved SAV here"):
        SAVPipeline.load(copy.parent / "nothing")


# ----- saving a directory at once -----------------------------------------------------------------------------
@pytest.fixture
def other_pipeline(tiny_adapter, shots):
    """A pipeline unlike the ``saved`` one (two classes, two heads, euclidean)."""
    return fit_sav(tiny_adapter("llava"), shots, n_heads=2, metric="euclidean")


def assert_holds(path: Path, pipe_or_saved: SAVPipeline | Path, tiny_adapter) -> None:
    """``path`` loads with the heads, means, classes and metric of the given pipeline or save; nothing lies beside."""
    expected = pipe_or_saved
    if isinstance(expected, Path):
        expected = SAVPipeline.load(expected, adapter=tiny_adapter("llava"))
    loaded = SAVPipeline.load(path, adapter=tiny_adapter("llava"))
    np.testing.assert_array_equal(loaded.heads, expected.heads)
    np.testing.assert_array_equal(loaded.classifier.class_means_, expected.classifier.class_means_)
    assert (list(loaded.classes_), loaded.classifier.metric) == (list(expected.classes_), expected.classifier.metric)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_save_replaces_an_old_save_whole(copy, other_pipeline, tiny_adapter):
    other_pipeline.save(copy)
    assert_holds(copy, other_pipeline, tiny_adapter)


def test_a_save_failing_midway_leaves_the_old_one(copy, saved, other_pipeline, tiny_adapter, monkeypatch):
    real_open = Path.open

    def full_disk(self, mode="r", *args, **kwargs):
        if self.name == "sav.json" and "w" in mode:
            raise OSError("No space left on device")
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", full_disk)
    with pytest.raises(OSError, match="No space left"):
        other_pipeline.save(copy)
    monkeypatch.undo()
    assert_holds(copy, saved, tiny_adapter)


def test_a_failed_swap_puts_the_old_save_back(copy, saved, other_pipeline, tiny_adapter, monkeypatch):
    real_rename = os.rename

    def rename(src, dst):
        if Path(src).name.startswith(".sav.") and Path(src).name.endswith(".tmp"):  # the new save's rename
            raise OSError("Input/output error")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="Input/output error"):
        other_pipeline.save(copy)
    monkeypatch.undo()
    assert_holds(copy, saved, tiny_adapter)


def test_load_names_a_save_left_aside_by_a_killed_swap(copy):
    aside = copy.with_name(".sav.replaced-0123abcd")
    copy.rename(aside)  # what a kill between the swap's two renames leaves
    with pytest.raises(SavedSAVError, match=f"left the previous one at {aside}"):
        SAVPipeline.load(copy)


def test_save_refuses_to_replace_what_is_not_a_save(other_pipeline, tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"holding \['notes.txt'\], not a saved SAV"):
        other_pipeline.save(tmp_path / "results")
    assert (tmp_path / "results" / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]
