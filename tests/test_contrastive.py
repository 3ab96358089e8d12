"""CLIP / SigLIP zero-shot scoring (``savs.baselines.contrastive``): tiny random models and hand-worked matrices."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from stand_ins import load
from transformers import AutoModel, AutoProcessor

from savs.baselines.contrastive import (
    CONTRASTIVE_MODELS,
    answer_statements,
    below_threshold,
    contrastive_predict,
    fit_threshold,
    load_contrastive,
    mutual_best,
    paired_scores,
    readable,
    similarity,
    winoground_scores,
)
from savs.examples import Example, Task
from savs.testing.random_models import CONTRASTIVE_KINDS, build_random_contrastive

pytestmark = pytest.mark.usefixtures("one_thread")
LABELS = ("cat", "dog", "bird", "car", "ship")


@pytest.fixture(scope="module")
def tiny_contrastive(tmp_path_factory):
    """Each kind's tiny model saved once, loaded through ``load_contrastive``; with its independent reference (the
    stock ``AutoModel`` / ``AutoProcessor`` forward)."""
    out = {}
    for kind in CONTRASTIVE_KINDS:
        path = build_random_contrastive(kind, tmp_path_factory.mktemp(kind))
        reference = AutoModel.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)
        out[kind] = load_contrastive(str(path), device="cpu"), reference
    return out


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 255, (int(rng.integers(20, 60)), int(rng.integers(20, 60)), 3), dtype=np.uint8))
        for _ in range(n)
    ]


def _reference_logits(reference, images, texts) -> np.ndarray:
    """``logits_per_image`` of the stock forward, texts tokenized as each model was trained (SigLIP: fixed length)."""
    model, processor = reference
    siglip = model.config.model_type == "siglip"
    inputs = processor(
        text=list(texts),
        images=list(images),
        padding="max_length" if siglip else True,
        truncation=True,
        max_length=model.config.text_config.max_position_embeddings,
        return_tensors="pt",
    )
    with torch.inference_mode():
        return model(**inputs).logits_per_image.numpy()


@pytest.mark.parametrize("kind", CONTRASTIVE_KINDS)
def test_similarity_is_the_models_own_logits(tiny_contrastive, kind):
    model, reference = tiny_contrastive[kind]
    assert model.kind == kind
    images = _images(3)
    examples = [Example(text="q", label="cat", images=(im,), uid=f"e{i}") for i, im in enumerate(images)]
    texts = ["a photo of a cat.", "a dog", "a red circle on a blue square"]
    got = similarity(model, examples, texts, batch_size=2, progress=False)
    np.testing.assert_allclose(got, _reference_logits(reference, images, texts), rtol=1e-4, atol=1e-4)
    shared = [examples[0], Example(text="r", label="dog", images=examples[0].images, uid="again")]
    assert np.allclose(*similarity(model, shared, texts, progress=False))  # one image, embedded once


@pytest.mark.parametrize("kind", CONTRASTIVE_KINDS)
def test_paired_scores_are_the_similarity_matrix_diagonal_without_the_matrix(tiny_contrastive, kind, monkeypatch):
    """Each pair's logit, as the images x texts matrix has it, images shared and texts repeated included; scored pair
    by pair (the full matrix of a benchmark of distinct captions would grow with the square of its size)."""
    model, _ = tiny_contrastive[kind]
    images = _images(3, seed=2)
    examples = [Example(text="q", label="Yes", images=(images[i],), uid=f"p{j}") for j, i in enumerate([0, 1, 1, 2])]
    texts = ["a dog", "a cat on a mat", "a dog", "two red ships"]
    full = similarity(model, examples, texts, progress=False)[np.arange(4), np.arange(4)]
    monkeypatch.setattr(type(model), "logits", lambda *a: pytest.fail("the images x texts matrix was built"))
    np.testing.assert_allclose(paired_scores(model, examples, texts, batch_size=2, progress=False), full, rtol=1e-5)


@pytest.mark.parametrize("kind", CONTRASTIVE_KINDS)
def test_classification_is_the_argmax_of_the_similarity_matrix(tiny_contrastive, kind):
    model, reference = tiny_contrastive[kind]
    images = _images(6, seed=1)
    options = [["dog", "cat", "ship", "car"], None, ["bird", "car", "cat", "dog"], None, ["ship", "cat"], None]
    examples = [
        Example(text="What is it?", label="cat", images=(im,), uid=f"c{i}", meta={"options": o} if o else {})
        for i, (im, o) in enumerate(zip(images, options, strict=True))
    ]
    task = Task("toy_classes", LABELS, [], examples)
    got = contrastive_predict(model, task, examples, template="a photo of a {}.", progress=False)
    texts = [f"a photo of a {c}." for c in LABELS]  # already readable (lower-case words)
    sims = _reference_logits(reference, images, texts)  # (6 images, 5 labels)
    expected = []
    for row, shown in zip(sims, options, strict=True):
        shown = shown or list(LABELS)
        expected.append(shown[int(np.argmax([row[LABELS.index(c)] for c in shown]))])
    assert got == expected


def test_mutual_best_on_hand_worked_groups():
    def nbr(g, scores):  # a 2 x 2 NaturalBench-Retrieval group, image-major; caption k belongs to image k
        return [
            Example(
                text="", label="Yes" if i == c else "No", uid=f"{g}/{i}{c}", meta={"group": g, "image": i, "caption": c}
            )
            for i in (0, 1)
            for c in (0, 1)
        ], scores

    # s[i][c]: image 0 prefers caption 0 and caption 0 prefers image 0; image 1 prefers caption 0 too
    examples, scores = nbr("g", [0.9, 0.2, 0.5, 0.4])
    assert mutual_best(examples, scores) == ["Yes", "No", "No", "No"]
    examples, scores = nbr("h", [0.9, 0.2, 0.1, 0.4])  # both diagonal pairs mutual best: all four right
    assert mutual_best(examples, scores) == ["Yes", "No", "No", "Yes"]
    # SugarCrepe: one image, its caption and a hard negative; a tie is no win
    pair = [Example(text="", label=lab, uid=f"p/{lab}", meta={"group": "p"}) for lab in ("Yes", "No")]
    assert mutual_best(pair, [0.3, 0.1]) == ["Yes", "No"]
    assert mutual_best(pair, [0.1, 0.3]) == ["No", "Yes"]
    assert mutual_best(pair, [0.2, 0.2]) == ["No", "No"]
    # groups never mix
    a, sa = nbr("a", [0.9, 0.2, 0.1, 0.4])
    b, sb = nbr("b", [0.0, 0.5, 0.6, 0.1])  # everything swapped
    assert mutual_best(a + b, sa + sb) == ["Yes", "No", "No", "Yes", "No", "Yes", "Yes", "No"]


def test_winoground_scores_on_hand_worked_groups():
    def group(g, s):
        return [
            Example(text="", label="", uid=f"{g}{i}{c}", meta={"group": g, "image": i, "caption": c})
            for i in (0, 1)
            for c in (0, 1)
        ], s

    # scores image-major: s00, s01, s10, s11. x: every comparison right (0.9 > 0.2, 0.4 > 0.3; 0.9 > 0.3, 0.4 > 0.2).
    e1, s1 = group("x", [0.9, 0.2, 0.3, 0.4])
    # y: text: image 0 right (0.5 > 0.4), image 1 wrong (0.8 > 0.1 for the other caption);
    # image: caption 0 wrong (image 1's 0.8 > 0.5), caption 1 wrong (image 0's 0.4 > 0.1)
    e2, s2 = group("y", [0.5, 0.4, 0.8, 0.1])
    scores = winoground_scores(e1 + e2, s1 + s2)
    assert scores == {"text_acc": 75.0, "image_acc": 50.0, "group_acc": 50.0}
    with pytest.raises(ValueError, match="2 x 2"):
        winoground_scores(e1[:3], s1[:3])


def test_threshold_rules_on_hand_worked_scores():
    # Yes (hallucinated) claims score low: the best cut separates them
    assert fit_threshold([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == pytest.approx(0.5)
    assert below_threshold([0.1, 0.5, 0.6], 0.55) == ["Yes", "Yes", "No"]
    # one mistake at best: the lowest of the equally good cuts
    assert fit_threshold([0.1, 0.3, 0.2, 0.9], [True, False, True, False]) == pytest.approx(0.25)
    assert fit_threshold([0.1, 0.9], [False, True], yes_below=False) == pytest.approx(0.5)
    assert fit_threshold([0.4, 0.4], [True, True]) == pytest.approx(1.4)  # all Yes: cut above every score


def test_readable_class_names():
    assert readable("AnnualCrop") == "annual crop"
    assert readable("HerbaceousVegetation") == "herbaceous vegetation"
    assert readable("american_bulldog") == "american bulldog"
    assert readable("Abyssinian") == "abyssinian"


def test_answer_statements():
    assert answer_statements("Is the cat black?", ["Yes", "No"]) == ["Is the cat black? Yes", "Is the cat black? No"]
    assert answer_statements("What colour is the car? A. red B. dark blue", ["A", "B"]) == [
        "What colour is the car? red",
        "What colour is the car? dark blue",
    ]
    assert answer_statements("Which side? (A) left (B) right", ["A", "B"]) == ["Which side? left", "Which side? right"]
    assert answer_statements("Pick A or B", ["A", "B"]) == ["Pick A or B A", "Pick A or B B"]


@pytest.mark.parametrize("kind", CONTRASTIVE_KINDS)
def test_benchmark_rules_through_the_loaders(tiny_contrastive, kind, copies: Callable[[str], Path]):
    model, reference = tiny_contrastive[kind]

    def independent(examples, texts):
        return np.array(
            [_reference_logits(reference, e.pil_images(), [t])[0, 0] for e, t in zip(examples, texts, strict=True)]
        )

    for name in ("naturalbench_retrieval", "sugarcrepe"):
        task = load(name, copies)
        test = task.test_subset(8)
        assert all(e.meta["query"] and e.meta["query"] in e.text for e in test)
        scores = independent(test, [e.meta["query"] for e in test])
        np.testing.assert_allclose(
            paired_scores(model, test, [e.meta["query"] for e in test], progress=False), scores, rtol=1e-4, atol=1e-4
        )
        assert contrastive_predict(model, task, test, progress=False) == mutual_best(test, scores)

    halu = load("mhalubench", copies)
    few, test = halu.train, halu.test
    assert all(e.meta["query"] in e.text for e in test)
    cut = fit_threshold(independent(few, [e.meta["query"] for e in few]), [e.label == "Yes" for e in few])
    expected = below_threshold(independent(test, [e.meta["query"] for e in test]), cut)
    assert contrastive_predict(model, halu, test, calibration=few, progress=False) == expected
    assert contrastive_predict(model, halu, test, threshold=1e9, progress=False) == ["Yes"] * len(test)
    with pytest.raises(ValueError, match="calibration"):
        contrastive_predict(model, halu, test, progress=False)

    vqa = load("naturalbench", copies)
    test = vqa.test_subset(8)
    got = contrastive_predict(model, vqa, test, progress=False)
    for e, answer in zip(test, got, strict=True):
        answers = ["Yes", "No"] if e.meta["question_type"] == "yes_no" else ["A", "B"]
        assert e.meta["query"] in e.text
        row = _reference_logits(reference, e.pil_images(), answer_statements(e.meta["query"], answers))[0]
        assert answer == answers[int(np.argmax(row))]

    pets = load("oxford_pets", copies)
    test = pets.test_subset(4)
    assert all(len(e.meta["options"]) == 4 and e.label in e.meta["options"] for e in test)
    with pytest.raises(ValueError, match="no contrastive scoring rule"):
        contrastive_predict(model, load("vlguard", copies), load("vlguard", copies).test[:2], progress=False)


def test_tiny_stand_ins_load_by_name(tmp_path):
    for kind in CONTRASTIVE_KINDS:
        model = load_contrastive(f"random:{kind}", device="cpu", cache_dir=tmp_path)
        assert model.kind == kind and (tmp_path / "random" / kind / "config.json").is_file()


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_a_short_name_the_paper_run_and_the_docs_are_one_checkpoint(kind, monkeypatch):
    """``load_contrastive("clip")`` asks for ``CONTRASTIVE_MODELS["clip"]``, the paper profile's CLIP row runs that
    same checkpoint, and the module docstring and the README name it: a row reports the model that ran."""
    from savs.baselines import contrastive
    from savs.models import registry
    from savs.profiles import load_profile

    hub_id = CONTRASTIVE_MODELS[kind]
    asked = []

    class Config:  # stands in for the hub: records the checkpoint asked for, then fails as offline
        @staticmethod
        def from_pretrained(path, *args, **kwargs):
            asked.append(path)
            raise OSError("offline")

    monkeypatch.setattr(contrastive, "AutoConfig", Config)
    monkeypatch.setattr(registry, "hub_reachable", lambda: False)
    with pytest.raises(OSError, match="offline"):
        load_contrastive(kind, device="cpu")
    assert asked == [hub_id]
    assert load_profile("paper").baselines[kind].options["model"] == hub_id
    assert f"``{hub_id}``" in contrastive.__doc__
    assert f"`{hub_id}`" in (Path(__file__).resolve().parents[1] / "README.md").read_text()
