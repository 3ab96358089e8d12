"""Tests of the offline task suite (against the raw data read independently) and the prompt builders."""

from __future__ import annotations

import gzip
import sys
from collections import Counter
from pathlib import Path

import easy_vqa
import numpy as np
import pytest
from PIL import Image

from savs.data import TASKS, load_task, offline
from savs.data.prompts import YES_NO_LABELS, classification_prompt, yes_no_prompt
from savs.examples import Task

N_TRAIN, N_TEST = 30, 12
IMAGE_SIZES = {
    "fashion_mnist": (28, 28),
    "easy_vqa_yesno": (64, 64),
    "easy_vqa_shape": (64, 64),
    "easy_vqa_color": (64, 64),
    "digits": (32, 32),
}


@pytest.fixture(scope="module", params=sorted(offline.OFFLINE_TASKS))
def small(request: pytest.FixtureRequest) -> Task:
    """Every offline task, loaded small with seed 0."""
    return load_task(request.param, n_train=N_TRAIN, n_test=N_TEST, seed=0)


def _index(uid: str) -> int:
    """The original-split index at the end of a uid."""
    return int(uid.rsplit("/", 1)[1])


def test_every_task_is_registered() -> None:
    assert set(IMAGE_SIZES) == set(offline.OFFLINE_TASKS) <= set(TASKS)


def test_small_task_shape_and_balance(small: Task) -> None:
    assert len(small.train) == N_TRAIN and len(small.test) == N_TEST
    assert small.description.count("\n") == 0 and "licence" in small.description
    for split, items in (("train", small.train), ("test", small.test)):
        counts = Counter(e.label for e in items)
        assert set(counts) <= set(small.labels)
        assert max(counts.values()) - min(counts.values()) <= 1
        if len(items) >= len(small.labels):
            assert set(counts) == set(small.labels)
        for e in items:
            assert e.uid.startswith(f"{small.name}/{split}/")
            assert len(e.images) == 1
            assert e.images[0].mode == "RGB" and e.images[0].size == IMAGE_SIZES[small.name]
            assert e.text.endswith(("Answer with the class name.", "Answer with Yes or No."))


def test_prompt_lists_the_task_labels_in_order(small: Task) -> None:
    text = small.train[0].text
    if small.labels == YES_NO_LABELS:
        assert text.endswith(" Answer with Yes or No.") and "Options" not in text
    else:
        assert f"Options: {', '.join(small.labels)}. Answer with the class name." in text


def test_train_and_test_are_disjoint(small: Task) -> None:
    assert not {e.uid for e in small.train} & {e.uid for e in small.test}
    assert len({e.uid for e in small.train}) == len(small.train)


def test_seed_determinism(small: Task) -> None:
    again = load_task(small.name, n_train=N_TRAIN, n_test=N_TEST, seed=0)
    other = load_task(small.name, n_train=N_TRAIN, n_test=N_TEST, seed=1)
    assert [e.uid for e in again.train] == [e.uid for e in small.train]
    assert [e.fingerprint() for e in again.test] == [e.fingerprint() for e in small.test]
    assert {e.uid for e in other.train} != {e.uid for e in small.train}
    assert {e.uid for e in other.test} != {e.uid for e in small.test}


def test_fashion_mnist_matches_the_raw_idx_bytes() -> None:
    root = offline.FASHION_MNIST_DIR
    labels = gzip.open(root / "train-labels-idx1-ubyte.gz").read()
    images = gzip.open(root / "train-images-idx3-ubyte.gz").read()
    assert labels[8] == 9  # the first training item is an ankle boot
    task = load_task("fashion_mnist", n_train=50, n_test=0, seed=3)
    assert task.test == []
    for e in task.train:
        i = _index(e.uid)
        assert e.label == offline.FASHION_MNIST_LABELS[labels[8 + i]]
        raw = np.frombuffer(images, np.uint8, count=784, offset=16 + 784 * i).reshape(28, 28)
        pixels = np.asarray(e.images[0])
        assert (pixels == raw[:, :, None]).all()


def test_fashion_mnist_full_split_by_default() -> None:
    task = load_task("fashion_mnist", n_train=5, n_test=None)
    assert len(task.test) == 10_000 and len({e.uid for e in task.test}) == 10_000
    assert Counter(e.label for e in task.test) == dict.fromkeys(task.labels, 1000)


def _write_idx(path: Path, array: np.ndarray) -> None:
    """A gzipped IDX file of uint8 ``array``."""
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_fashion_mnist_env_var_and_corrupt_idx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 8), ("t10k", 4)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    monkeypatch.setenv(offline.FASHION_MNIST_ENV, str(tmp_path))
    task = load_task("fashion_mnist")
    assert [e.label for e in task.test] == ["T-shirt/top", "Trouser", "Pullover", "Dress"]
    assert len(task.train) == 8
    labels_file = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(labels_file.read_bytes())
    labels_file.write_bytes(gzip.compress(raw[:-1] + bytes([17])))  # a label byte that is no class
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte.gz: label byte 17 at index 3 is not a class"):
        load_task("fashion_mnist")
    labels_file.write_bytes(gzip.compress(raw[:-1]))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz: header says shape"):
        load_task("fashion_mnist")


def test_fashion_mnist_missing_gives_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(offline.FASHION_MNIST_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as err:
        load_task("fashion_mnist", n_train=2, n_test=2)
    assert "nowhere" in str(err.value) and offline.FASHION_MNIST_ENV in str(err.value)


@pytest.mark.parametrize("kind", ["yesno", "shape", "color"])
def test_easy_vqa_matches_the_raw_questions(kind: str) -> None:
    texts, answers, image_ids = easy_vqa.get_train_questions()
    paths = easy_vqa.get_train_image_paths()
    task = load_task(f"easy_vqa_{kind}", n_train=40, n_test=3, seed=5)
    for e in task.train:
        i = _index(e.uid)
        assert answers[i] == e.label.lower()
        assert e.text.lower().startswith(texts[i])
        expected = np.asarray(Image.open(paths[image_ids[i]]).convert("RGB"))
        assert (np.asarray(e.images[0]) == expected).all()
    shapes = {"circle", "rectangle", "triangle"}
    expected = {
        "yesno": {"yes", "no"},
        "shape": shapes,
        "color": set(easy_vqa.get_answers()) - shapes - {"yes", "no"},
    }
    assert {lab.lower() for lab in task.labels} == expected[kind]
    assert {answers[_index(e.uid)] for e in task.train} == expected[kind]


def test_easy_vqa_uses_the_test_split_for_test() -> None:
    _, answers, _ = easy_vqa.get_test_questions()
    task = load_task("easy_vqa_yesno", n_train=2, n_test=20, seed=0)
    assert all(answers[_index(e.uid)] == e.label.lower() for e in task.test)
    assert task.labels == ("Yes", "No") and {e.label for e in task.test} == {"Yes", "No"}


def test_easy_vqa_missing_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "easy_vqa", None)
    with pytest.raises(ModuleNotFoundError, match="pip install easy-vqa"):
        load_task("easy_vqa_shape", n_train=2, n_test=2)


def test_corrupt_image_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match="garbage.png"):
        offline._read_image(garbage)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(Path(easy_vqa.get_train_image_paths()[0]).read_bytes()[:120])
    with pytest.raises(ValueError, match="truncated.png"):
        offline._read_image(truncated)
    with pytest.raises(FileNotFoundError):
        offline._read_image(tmp_path / "absent.png")
    monkeypatch.setattr(easy_vqa, "get_train_image_paths", lambda: dict.fromkeys(range(4000), str(garbage)))
    with pytest.raises(ValueError, match="cannot read image .*garbage.png"):
        load_task("easy_vqa_color", n_train=2, n_test=2)


def test_digits_fixed_split_and_pixels() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    task = load_task("digits")
    train = {_index(e.uid) for e in task.train}
    test = {_index(e.uid) for e in task.test}
    assert (len(train), len(test)) == (898, 899)
    assert not train & test and train | test == set(range(1797))
    assert [e.uid for e in load_task("digits", seed=7).train] == [e.uid for e in task.train]
    for e in task.train[:50] + task.test[:50]:
        i = _index(e.uid)
        assert e.label == str(digits.target[i])
        pixels = np.asarray(e.images[0])
        assert (pixels[::4, ::4, 0] == np.round(digits.images[i] * 255 / 16)).all()
        assert (pixels[1::4, 3::4, 2] == pixels[::4, ::4, 0]).all()  # NEAREST: 4x4 blocks of one value


def test_subset_is_balanced_when_a_class_runs_short() -> None:
    labels = ["a"] * 2 + ["b"] * 10 + ["c"] * 10
    picked = offline._subset(labels, 8, seed=0)
    assert picked == sorted(picked)
    assert Counter(labels[i] for i in picked) == {"a": 2, "b": 3, "c": 3}
    assert offline._subset(labels, None, 0) == list(range(22)) == offline._subset(labels, 100, 0)
    with pytest.raises(ValueError, match=">= 0"):
        offline._subset(labels, -1, 0)


def test_prompts() -> None:
    assert (
        classification_prompt("What is it?", ["Bag", "Coat", "Ankle boot"])
        == "What is it? Options: Bag, Coat, Ankle boot. Answer with the class name."
    )
    assert yes_no_prompt("Is it red?") == "Is it red? Answer with Yes or No."


def test_load_task_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown task 'nope'.*digits.*fashion_mnist"):
        load_task("nope")
