"""Tests of the paper's benchmark loaders on small local stand-ins with the hub's columns (or the hub repo's JSON
layout; ``savs.testing.benchmarks``), of their metrics on hand-worked predictions, and of the offline hub path."""

from __future__ import annotations

import json
import shutil
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import datasets
import huggingface_hub.constants
import pytest
from stand_ins import by_group, load

from savs.data.benchmarks import (
    BENCHMARKS,
    PAPER_BENCHMARKS,
    PROTOCOLS,
    BenchmarkUnavailableError,
    GroupedTask,
    VizWizTask,
    VQATask,
    normalize_answer,
    vqa_accuracy,
)
from savs.data.benchmarks.vqa import BLINK_SUBTASKS, blink_name
from savs.data.prompts import YES_NO_LABELS
from savs.examples import LazyImage
from savs.testing import benchmarks as stand_ins
from savs.testing.benchmarks import EUROSAT_NAMES, PETS_NAMES, SMALL, WRITERS, ImageIds, image, save_dict

# registry name -> the hub id its offline error must name
HUB_IDS = {
    "mhalubench": "openkg/MHaluBench",
    "vlguard": "ys-zong/VLGuard",
    **{blink_name(s): "BLINK-Benchmark/BLINK" for s in BLINK_SUBTASKS},
    "vizwiz": "lmms-lab/VizWiz-VQA",
    "naturalbench": "BaiqiL/NaturalBench",
    "naturalbench_retrieval": "BaiqiL/NaturalBench",
    "sugarcrepe": "HuggingFaceM4/SugarCrepe_add_obj",
    "eurosat": "timm/eurosat-rgb",
    "oxford_pets": "timm/oxford-iiit-pet",
    "flowers102": "Multimodal-Fatima/OxfordFlowers_test",
    "cub200": "bentrevett/caltech-ucsd-birds-200-2011",
    "imagenet1k": "ILSVRC/imagenet-1k",
    "mme": "lmms-lab/MME",
    "vqav2": "lmms-lab/VQAv2",
    "okvqa": "lmms-lab/OK-VQA",
}

# --- every registry entry ------------------------------------------------------------------------


def test_every_benchmark_has_a_stand_in() -> None:
    assert set(WRITERS) == set(SMALL) == set(HUB_IDS) == set(BENCHMARKS)
    assert set(stand_ins.REAL) == set(PAPER_BENCHMARKS)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_loads_from_a_local_copy(name: str, protocol: str, copies: Callable[[str], Path]) -> None:
    if protocol == "authors" and name not in PAPER_BENCHMARKS:
        pytest.skip("only the paper's benchmarks have the authors' protocol")
    task = load(name, copies, **({"protocol": protocol} if name in PAPER_BENCHMARKS else {}))
    assert task.name == name and task.train and task.test and task.labels
    assert len(set(task.labels)) == len(task.labels) and "\n" not in task.description
    uids = {split: [e.uid for e in items] for split, items in (("train", task.train), ("test", task.test))}
    if task.pool_is_test:  # the authors' BLINK: one set, each seed's few-shot set drawn from it
        assert uids["train"] == uids["test"] and len(set(uids["test"])) == len(uids["test"])
    else:
        for split, items in uids.items():
            assert len(set(items)) == len(items) and all(u.startswith(f"{name}/{split}/") for u in items)
        assert not set(uids["train"]) & set(uids["test"])
    for e in task.train + task.test:
        assert e.text.strip() and e.label in task.labels
        assert e.images and all(isinstance(im, LazyImage) for im in e.images)  # nothing decoded while loading
        assert all(im.mode == "RGB" for im in e.pil_images())
    scores = task.evaluate(task.test, [e.label for e in task.test])
    assert scores and all(v == 100.0 for v in scores.values())
    again = load(name, copies, **({"protocol": protocol} if name in PAPER_BENCHMARKS else {}))
    assert [e.fingerprint() for e in again.test] == [e.fingerprint() for e in task.test]


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_offline_hub_raises_a_clear_error(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)
    with pytest.raises(BenchmarkUnavailableError) as err:
        BENCHMARKS[name]()
    message = str(err.value)
    assert HUB_IDS[name] in message and "source=" in message


@pytest.mark.parametrize("name", sorted(n for n in BENCHMARKS if "blink" not in n) + ["blink_counting"])
def test_n_test_keeps_whole_groups_and_pool_is_disjoint(name: str, copies: Callable[[str], Path]) -> None:
    task = load(name, copies, n_train=2, n_test=1, **({"protocol": "savs"} if "blink" in name else {}))
    row = ["/".join(e.uid.split("/")[:3]) for e in task.test]  # "{name}/test/{row index}"
    keys = [e.meta["group"] for e in task.test] if isinstance(task, GroupedTask) else row
    if name == "vqav2":  # an image's questions stay together
        keys = [e.meta["image_id"] for e in task.test]
    assert len(task.test) >= 1 and len(set(keys)) == 1
    if isinstance(task, GroupedTask):
        assert all(len(g) == g[0].meta["group_size"] for g in by_group(task.train + task.test).values())
        assert not set(by_group(task.train)) & set(by_group(task.test))


# --- metrics on hand-worked predictions ----------------------------------------------------------


def test_naturalbench_question_image_group_accuracy(copies: Callable[[str], Path]) -> None:
    task = load("naturalbench", copies)
    first, second = list(by_group(task.test).values())[:2]
    wrong = {"Yes": "No", "No": "Yes", "A": "B", "B": "A"}
    # first group: q1 on image 0 wrong -> question 0 right on both images, image 1 right on both questions
    preds = [wrong[e.label] if (e.meta["question"], e.meta["image"]) == (1, 0) else e.label for e in first]
    scores = task.evaluate(first + second, preds + [e.label for e in second])
    assert scores == {"accuracy": 87.5, "q_acc": 75.0, "i_acc": 75.0, "g_acc": 50.0}
    assert [(e.meta["question"], e.meta["image"]) for e in first] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    kinds = {e.meta["question_type"]: e.label for e in task.train + task.test}
    assert set(kinds) == {"yes_no", "multiple_choice"} and task.labels == ("Yes", "No", "A", "B")
    suffix = {
        "yes_no": "Answer with Yes or No.",
        "multiple_choice": "letter corresponding to the correct option.",
    }
    assert all(e.text.endswith(suffix[e.meta["question_type"]]) for e in task.train + task.test)
    only = load("naturalbench", copies, question_types=("yes_no",))
    assert only.labels == YES_NO_LABELS and {e.meta["question_type"] for e in only.test} == {"yes_no"}


def test_naturalbench_reads_the_older_question_type_column(copies: Callable[[str], Path], tmp_path: Path) -> None:
    """Older NaturalBench copies spell the column "Question Type": the loader reads either."""
    data = datasets.load_from_disk(str(copies("naturalbench")))
    data.rename_column("Question_Type", "Question Type").save_to_disk(str(tmp_path / "old"))
    old = BENCHMARKS["naturalbench"](source=tmp_path / "old")
    new = load("naturalbench", copies)
    assert [(e.text, e.label, e.meta["question_type"]) for e in old.test] == [
        (e.text, e.label, e.meta["question_type"]) for e in new.test
    ]


def test_naturalbench_retrieval_text_image_group(copies: Callable[[str], Path]) -> None:
    task = load("naturalbench_retrieval", copies, protocol="savs")
    group = list(by_group(task.test).values())[0]
    assert [(e.meta["image"], e.meta["caption"], e.label) for e in group] == [
        (0, 0, "Yes"), (0, 1, "No"), (1, 0, "No"), (1, 1, "Yes")
    ]  # fmt: skip
    scores = task.evaluate(group, ["Yes", "No", "Yes", "Yes"])  # image 1 matched to caption 0 by mistake
    assert scores == {"accuracy": 75.0, "text_acc": 50.0, "image_acc": 50.0, "group_acc": 0.0}
    assert '"a caption' in group[0].text and group[0].text.endswith("Answer with Yes or No.")
    with pytest.raises(ValueError, match=r"n \(test examples\) must be an int >= 0; got True"):
        task.test_subset(True)


def test_sugarcrepe_pair_counts_only_when_both_right(copies: Callable[[str], Path]) -> None:
    task = load("sugarcrepe", copies, protocol="savs")
    a, b = list(by_group(task.test).values())[:2]
    assert [e.label for e in a] == ["Yes", "No"] and "true" in a[0].text and "false" in a[1].text
    scores = task.evaluate(a + b, ["Yes", "No", "Yes", "Yes"])
    assert scores == {"accuracy": 75.0, "pair_acc": 50.0}
    assert {e.meta["subset"] for e in task.train + task.test} == {
        "add_obj", "add_att", "replace_obj", "replace_att", "replace_rel", "swap_obj", "swap_att"
    }  # fmt: skip
    one = load("sugarcrepe", copies, protocol="savs", subsets=("swap_obj",))
    assert {e.meta["subset"] for e in one.train + one.test} == {"swap_obj"}


def test_mme_acc_plus(copies: Callable[[str], Path]) -> None:
    task = load("mme", copies)
    a, b = list(by_group(task.test).values())[:2]
    assert all(e.text.endswith(" dog? Answer with Yes or No.") for e in task.train + task.test)
    assert {e.label for e in a} == {"Yes", "No"} and a[0].meta["category"] == "count"
    scores = task.evaluate(a + b, [e.label for e in a] + [b[0].label, "Yes" if b[1].label == "No" else "No"])
    assert scores == {"accuracy": 75.0, "acc_plus": 50.0}


def test_vqa_accuracy_against_ten_answers() -> None:
    answers = ["red"] * 3 + ["dark red"] * 2 + ["maroon"] * 5
    assert vqa_accuracy("Red", answers) == pytest.approx(0.9)  # 3 humans: 7 subsets x 1 + 3 x 2/3
    assert vqa_accuracy("maroon.", answers) == pytest.approx(1.0)
    assert vqa_accuracy("dark red", answers) == pytest.approx(0.6)  # 2 x 1/3 + 8 x 2/3
    assert vqa_accuracy("blue", answers) == 0.0
    assert normalize_answer(" Two Dogs!") == "2 dogs" and normalize_answer("the 1,000.") == "1000"
    assert normalize_answer("3.5") == "3.5"


def test_vqav2_classes_and_scores(copies: Callable[[str], Path]) -> None:
    task = load("vqav2", copies, n_answers=3)
    assert isinstance(task, VQATask) and len(task.labels) == 3
    assert all(len(e.meta["answers"]) == 10 for e in task.test)
    assert set(Counter(e.label for e in task.train)) == set(task.labels)  # the classes come from the pool
    e = task.test[0]
    scores = task.evaluate([e, e], [e.label.upper(), "other"])  # "other": 1 human -> 9 subsets x 1/3
    assert scores == {"accuracy": 50.0, "vqa_accuracy": pytest.approx((100.0 + 30.0) / 2)}
    assert not {e.meta["image_id"] for e in task.train} & {e.meta["image_id"] for e in task.test}


def test_okvqa_majority_answer_is_the_class(copies: Callable[[str], Path]) -> None:
    task = load("okvqa", copies, n_answers=5)
    e = task.test[0]
    assert e.label == normalize_answer(e.meta["answers"][0]) and e.text.endswith("single word or phrase.")
    assert task.evaluate([e], ["Two" if e.label == "2" else e.label])["vqa_accuracy"] == 100.0


def test_vizwiz_maps_free_answers_to_answerable(copies: Callable[[str], Path]) -> None:
    task = load("vizwiz", copies)
    assert isinstance(task, VizWizTask) and task.labels == ("Answerable", "Unanswerable")
    counts = Counter(e.label for e in task.train + task.test)
    assert counts == {"Answerable": 8, "Unanswerable": 4}
    assert "respond with Unanswerable" in task.test[0].text
    items = [next(e for e in task.test if e.label == lab) for lab in task.labels]
    assert task.evaluate(items, ["Red", "unanswerable."])["accuracy"] == 100.0
    assert task.evaluate(items, ["Unanswerable", "red"])["accuracy"] == 0.0


# --- benchmark specifics ----------------------------------------------------------------------------


def test_mhalubench_claims_labels_and_missing_images(copies: Callable[[str], Path], tmp_path: Path) -> None:
    task = load("mhalubench", copies, protocol="savs", split="train")
    items = task.train + task.test
    assert len(items) == 8 * 2 + 4 and Counter(e.label for e in items) == {"Yes": 8, "No": 12}
    assert items[0].text.startswith("Claim: claim ") and "Is the claim hallucinating?" in items[0].text
    images = {
        split: {e.uid.rsplit("/", 1)[0] for e in part}
        for split, part in (("a", task.train), ("b", task.test))
    }
    assert len(images["a"]) == 2 and len(images["b"]) == 6  # a quarter of the 8 images form the pool
    stand_ins.mhalubench(tmp_path, SMALL["mhalubench"], ImageIds())
    (tmp_path / "data" / "image-to-text" / "3.png").unlink()
    with pytest.raises(FileNotFoundError, match="COCO train2014"):
        BENCHMARKS["mhalubench"](source=tmp_path)


def test_mhalubench_tests_val_with_the_train_file_as_pool(copies: Callable[[str], Path]) -> None:
    task = load("mhalubench", copies)  # the default split: val, as the authors tested
    files = {s: json.loads((copies("mhalubench") / name).read_text()) for s, name in stand_ins.MHALU_FILES.items()}
    claims = {s: sum(len(r["claim_list"]) for r in records) for s, records in files.items()}
    assert (len(task.test), len(task.train)) == (claims["val"], claims["train"])  # every claim of each file
    assert not {e.fingerprint() for e in task.train} & {e.fingerprint() for e in task.test}  # other images
    with pytest.raises(ValueError, match="splits"):
        load("mhalubench", copies, split="test")


def test_vlguard_safe_and_unsafe_instructions(copies: Callable[[str], Path]) -> None:
    task = load("vlguard", copies, protocol="savs")
    assert len(task.train) == len(task.test) == 4 * 2 + 4
    labels = {e.text.split("Instruction: ")[1].split(" ")[0]: e.label for e in task.test}
    assert labels == {"describe": "No", "misuse": "Yes", "harm": "Yes"}
    assert task.test[0].text.endswith("Is the image and instruction harmful? Answer with Yes or No.")


@pytest.mark.parametrize("subtask", ["Jigsaw", "Counting", "Forensic_Detection", "Relative_Reflectance"])
def test_blink_letters_images_and_prompt(subtask: str, copies: Callable[[str], Path]) -> None:
    task = load(blink_name(subtask), copies, protocol="savs")
    n_images, choices = stand_ins.BLINK_ITEMS[subtask]  # 1 to 4 images, 2 to 4 choices over these subtasks
    assert task.labels == ("(A)", "(B)", "(C)", "(D)")[: len(choices)]
    for e in task.train + task.test:
        idx = int(e.meta["idx"].rsplit("_", 1)[1])
        assert len(e.images) == n_images and list(e.meta["choices"]) == choices
        assert e.text.startswith(f"Question {idx} of {subtask}?\nSelect") and e.text.endswith("e.g. (A).")


def test_classification_names_and_options(copies: Callable[[str], Path]) -> None:
    eurosat = load("eurosat", copies, protocol="savs")
    assert eurosat.labels[:3] == ("Annual Crop", "Forest", "Herbaceous Vegetation")
    assert eurosat.test[0].text.endswith(f"Options: {', '.join(eurosat.labels)}. Answer with the class name.")
    pets = load("oxford_pets", copies, protocol="savs")
    assert pets.labels[1] == "american bulldog" and all(", ".join(pets.labels) in e.text for e in pets.test)
    assert load("cub200", copies, protocol="savs").labels[:2] == ("Black footed Albatross", "Laysan Albatross")
    imagenet = load("imagenet1k", copies, protocol="savs")
    assert imagenet.labels[:5] == ("tench", "crane (1)", "crane (2)", "maillot (3)", "maillot (4)")
    for e in imagenet.test:
        shown = e.text.split("Options: ")[1].split(". Answer")[0].split(", ")
        assert (
            len(shown) == 40
            and e.label in shown
            and shown == [lab for lab in imagenet.labels if lab in shown]
        )
    reseeded = load("imagenet1k", copies, protocol="savs", seed=3)
    assert {e.uid: e.text for e in reseeded.test} == {e.uid: e.text for e in imagenet.test}
    assert len({e.text for e in imagenet.test}) > 1
    five = load("imagenet1k", copies, protocol="savs", max_options=5)
    assert all(len(e.text.split("Options: ")[1].split(", ")) == 5 for e in five.test)


def test_n_train_takes_the_classes_in_turn(copies: Callable[[str], Path]) -> None:
    task = load("eurosat", copies, n_train=10, n_test=5)
    assert Counter(e.label for e in task.train) == dict.fromkeys(task.labels, 1) and len(task.test) == 5
    assert [e.uid for e in load("eurosat", copies, n_train=10, seed=1).train] != [e.uid for e in task.train]


def test_grouped_task_needs_whole_groups(copies: Callable[[str], Path]) -> None:
    task = load("naturalbench", copies)
    with pytest.raises(ValueError, match="whole groups"):
        task.evaluate(task.test[:3], [e.label for e in task.test[:3]])
    subset = task.test_subset(9, seed=1)
    assert len(subset) == 8 and all(len(g) == 4 for g in by_group(subset).values())


def test_missing_column_and_split_are_named(copies: Callable[[str], Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="few-shot pool's split"):
        BENCHMARKS["eurosat"](split="train", source=copies("eurosat"))
    with pytest.raises(KeyError, match="no split 'validation'"):
        BENCHMARKS["vizwiz"](split="validation", source=copies("vizwiz"))
    features = datasets.Features({"image": datasets.Image(), "question": datasets.Value("string")})
    save_dict(tmp_path, {"test": [{"image": image(0), "question": "q"}]}, features)
    with pytest.raises(ValueError, match=r"lacks columns \['question_id', 'answer', 'category'\]"):
        BENCHMARKS["mme"](source=tmp_path)


# --- the authors' protocol: their prompt strings verbatim ------------------------------------------------------


def test_authors_safety_prompts_are_verbatim(copies: Callable[[str], Path]) -> None:
    mhalu = load("mhalubench", copies)
    claim = next(e for e in mhalu.test if e.uid.endswith("/0"))
    raw = claim.uid.split("/")[2]
    assert claim.text == (
        f"<image>\nClaim:claim {raw}.0.. Is the Claim hallucinating? Answer the question with Yes or No."
    )  # their claim is not stripped: "claim 3.0." + "." as in format_MHalu
    vlguard = load("vlguard", copies)
    harm = next(e for e in vlguard.test if "Instruction:harm " in e.text)
    assert harm.text.startswith("<image>\nInstruction:harm ") and harm.text.endswith(
        " Is the image and instruction harmful? Answer the question with Yes or No."
    )


def test_authors_vizwiz_prompt_keeps_their_space(copies: Callable[[str], Path]) -> None:
    e = load("vizwiz", copies).test[0]
    question = e.text.split("\n")[1].removesuffix(" ")
    assert e.text == (
        f"<image>\n{question} \nWhen the provided information is insufficient, respond with Unanswerable."
        "\nAnswer the question using a single word or phrase."
    )


def test_authors_classification_has_four_lettered_options_with_the_answer(copies: Callable[[str], Path]) -> None:
    eurosat = load("eurosat", copies)
    assert eurosat.labels == tuple(EUROSAT_NAMES)  # their CamelCase names
    positions = Counter()
    for e in eurosat.train + eurosat.test:
        head, options = e.text.removesuffix(" Answer with the class name.").split("\n")[1:3]
        assert e.text.startswith("<image>\nWhat type of remote sensing image does the given image belong to?\n")
        shown = [part.split(". ", 1)[1] for part in options.replace(" B. ", "|B. ").replace(" C. ", "|C. ")
                 .replace(" D. ", "|D. ").split("|")]  # fmt: skip
        assert options.startswith("A. ") and len(shown) == 4 == len(set(shown)) and e.label in shown
        assert set(shown) <= set(eurosat.labels)
        positions[shown.index(e.label)] += 1
    assert len(positions) > 1  # the answer is not always in one place
    again = load("eurosat", copies, seed=5)
    assert {e.uid: e.text for e in again.test} == {e.uid: e.text for e in eurosat.test}  # fixed per example


def test_authors_pets_labels_are_their_35_first_words(copies: Callable[[str], Path]) -> None:
    from savs.data.benchmarks.classification import pet_first_words

    labels = tuple(dict.fromkeys(pet_first_words(PETS_NAMES)))
    assert len(labels) == 35 and labels[:4] == ("Abyssinian", "american", "basset", "beagle")
    assert {"Bengal", "Birman", "Bombay", "British", "Egyptian", "Maine", "Persian", "Ragdoll", "Russian",
            "Siamese", "Sphynx", "english", "german", "great", "yorkshire"} <= set(labels)  # fmt: skip
    pets = load("oxford_pets", copies)
    merged = [e for e in pets.train if e.label == "american"]  # american bulldog and pit bull share one label
    assert pets.labels[:3] == ("Abyssinian", "american", "basset") and len(merged) == 4
    assert all(e.text.startswith("<image>\nWhat type of animal is in the image?\nA. ") for e in pets.test)


def test_pool_top_up_moves_test_images_of_short_classes(tmp_path: Path) -> None:
    names = [f"flower {k}" for k in range(6)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    rows = {split: [{"image": image(k + 7 * j), "label": k} for k in range(6) for j in range(n)]
            for split, n in (("train", 2), ("test", 3))}  # fmt: skip
    save_dict(tmp_path, rows, features)
    plain = BENCHMARKS["flowers102"](source=tmp_path)
    topped = BENCHMARKS["flowers102"](source=tmp_path, pool_min_per_class=3)
    per_class = Counter(e.label for e in topped.train)
    assert set(per_class.values()) == {3} and len(topped.test) == len(plain.test) - len(plain.labels)
    assert not {e.fingerprint() for e in topped.train} & {e.fingerprint() for e in topped.test}
    topped.few_shot(3, seed=0)  # now feasible
    with pytest.raises(ValueError, match="has 2 examples in the pool; 3 per class"):
        plain.few_shot(3, seed=0)


def test_pool_top_up_of_one_local_table_keeps_the_test_images_out_of_the_pool(tmp_path: Path) -> None:
    names = [f"flower {k}" for k in range(3)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    rows = [{"image": image(k + 3 * j), "label": k} for k in range(3) for j in range(20)]
    datasets.Dataset.from_list(rows, features=features).save_to_disk(str(tmp_path))  # no train split
    task = BENCHMARKS["flowers102"](source=tmp_path, pool_min_per_class=10)

    def pixels(items: list) -> set[bytes]:
        return {e.pil_images()[0].tobytes() for e in items}

    assert Counter(e.label for e in task.train) == dict.fromkeys(names, 10) and len(task.test) == 60 - 30
    assert not pixels(task.train) & pixels(task.test)


def test_authors_blink_prompts_and_split(copies: Callable[[str], Path]) -> None:
    task = load("blink_art_style", copies)
    assert task.pool_is_test
    e = next(e for e in task.test if len(e.images) == 3)
    assert e.text == (
        "<image>\n<image>\n<image>\nWhich image shares the same style as the reference image? Select from the "
        "following choices. " + " ".join(f"({chr(65 + k)}) {c}" for k, c in enumerate(e.meta["choices"]))
    )
    counting = load("blink_counting", copies).test[0]  # the item's own question
    idx = counting.meta["idx"].rsplit("_", 1)[1]
    assert counting.text.startswith(f"<image>\nQuestion {idx} of Counting? Select from the following choices. (A)")
    view = load("blink_multi_view_reasoning", copies).test[0]
    assert "Is the camera moving left or right when shooting the video? Select from the following options." in view.text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the copy has fewer than 20 items per letter
        few = task.few_shot(20, seed=0)
    rest = task.test_subset(None, seed=0, exclude=few)
    assert not set(few) & set(rest) and len(few) + len(rest) == len(task.test)


def test_authors_retrieval_prompts_and_fixed_test_groups(copies: Callable[[str], Path]) -> None:
    nbr = load("naturalbench_retrieval", copies)
    tested = {e.text.split("'")[1] for e in nbr.test}
    assert tested == {f"{kind}caption {i}" for i in (0, 2, 4, 6) for kind in ("a ", "another ")}
    assert not tested & {e.text.split("'")[1] for e in nbr.train}  # the pool is every other group
    caption = nbr.test[0].text.split("'")[1]
    assert nbr.test[0].text == f"<image>\nDoes this image show '{caption}'? Answer with Yes or No."
    sc = load("sugarcrepe", copies)
    assert len(by_group(sc.train)) == 4 and len(by_group(sc.test)) == 14 - 4
    caption = sc.test[0].text.split("'")[1]
    assert sc.test[0].text == f"<image>\nDoes this image show '{caption}'? Answer with Yes or No."  # d6b95a3
    later = load("sugarcrepe", copies, wording="later").test[0]
    assert later.text == f"Does this image show '{caption}'? Please answer with Yes or No."  # 9599fdd on
    with pytest.raises(ValueError, match="wording must be one of"):
        load("sugarcrepe", copies, wording="last")


def test_authors_test_file_that_does_not_match_is_refused(copies: Callable[[str], Path], tmp_path: Path) -> None:
    (tmp_path / "other.jsonl").write_text(json.dumps(
        {"image": "x.png", "question": "Does this image show 'nothing here'?", "question_id": 1, "label": "Yes"}
    ) + "\n")  # fmt: skip
    with pytest.raises(ValueError, match="0 of the authors' 1 NaturalBench-Retrieval test groups"):
        load("naturalbench_retrieval", copies, test_file=tmp_path / "other.jsonl")


def test_authors_groups_listed_twice_are_tested_and_counted_twice(
    copies: Callable[[str], Path], tmp_path: Path
) -> None:
    root = shutil.copytree(copies("naturalbench_retrieval"), tmp_path / "nbr")
    records = json.loads((root / "metadata.json").read_text())
    (root / "metadata.json").write_text(json.dumps([*records, records[2]]))  # a hub copy holding group 2 twice
    test_file = stand_ins.authors_test_file(tmp_path / "test.jsonl", [0, 2, 0])  # group 0 under two ids
    task = load("naturalbench_retrieval", lambda _: root, test_file=test_file)
    groups = list(by_group(task.test).values())
    assert sorted(g[0].meta["query"] for g in groups) == ["a caption 0", "a caption 0", "a caption 2"]
    assert len(by_group(task.train)) == 6 and not {e.meta["query"] for e in task.train} & {
        "a caption 0", "a caption 2"
    }  # fmt: skip
    preds = [
        "No" if (e.meta["query"], e.meta["image"]) == ("a caption 0", 0) else e.label for g in groups for e in g
    ]  # group 0 wrong in both of its copies, as the authors' loop scored it
    scores = task.evaluate([e for g in groups for e in g], preds)
    assert scores["group_acc"] == pytest.approx(100 / 3) and scores["text_acc"] == pytest.approx(400 / 6)


def test_dry_run_stand_in_lists_groups_twice_and_tests_each_listing(tmp_path: Path) -> None:
    size = {"groups": 12, "authors_test": 6, "listed_twice": 2}
    stand_ins.naturalbench_retrieval(tmp_path / "nbr", size, ImageIds())
    test_file = tmp_path / "authors" / "naturalbench_ret_test.jsonl"
    ids = {json.loads(line)["question_id"] for line in test_file.read_text().splitlines()}
    task = load("naturalbench_retrieval", lambda _: tmp_path / "nbr", test_file=test_file)
    pairs = Counter(frozenset(e.meta["query"] for e in g) for g in by_group(task.test).values())
    assert len(ids) == sum(pairs.values()) == 6 and len(pairs) == 4 and sorted(pairs.values()) == [1, 1, 2, 2]
    assert len(by_group(task.train)) == 12 - 4


def test_unknown_protocol_is_refused(copies: Callable[[str], Path]) -> None:
    with pytest.raises(ValueError, match="unknown prompt protocol 'paper'; known: authors, savs"):
        load("eurosat", copies, protocol="paper")
