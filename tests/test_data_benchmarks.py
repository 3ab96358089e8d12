"""Tests of the paper's benchmark loaders on tiny local copies built here with the hub's columns (or the hub
repo's JSON layout), of their metrics on hand-worked predictions, and of the offline hub path."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import datasets
import huggingface_hub.constants
import pytest
from PIL import Image

from savs.data.benchmarks import (
    BENCHMARKS,
    BLINK_SUBTASKS,
    PAPER_BENCHMARKS,
    PROTOCOLS,
    BenchmarkUnavailableError,
    GroupedTask,
    VizWizTask,
    VQATask,
    normalize_answer,
    vqa_accuracy,
)
from savs.data.benchmarks.vqa import blink_name
from savs.data.prompts import YES_NO_LABELS
from savs.examples import Example, LazyImage, Task

datasets.disable_progress_bars()

EUROSAT_NAMES = [
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
    "Pasture", "PermanentCrop", "Residential", "River", "SeaLake",
]  # fmt: skip
PETS_NAMES = (
    "abyssinian american_bulldog american_pit_bull_terrier basset_hound beagle bengal birman bombay boxer "
    "british_shorthair chihuahua egyptian_mau english_cocker_spaniel english_setter german_shorthaired "
    "great_pyrenees havanese japanese_chin keeshond leonberger maine_coon miniature_pinscher newfoundland "
    "persian "
    "pomeranian pug ragdoll russian_blue saint_bernard samoyed scottish_terrier shiba_inu siamese sphynx "
    "staffordshire_bull_terrier wheaten_terrier yorkshire_terrier"
).split()
IMAGENET_NAMES = ["tench, Tinca tinca", "crane", "crane, lifting device", "maillot", "maillot, tank suit"] + [
    f"class {k}, synonym" for k in range(45)
]


def image(k: int, mode: str = "RGB") -> Image.Image:
    """A tiny image whose pixels depend on ``k`` (so fingerprints differ)."""
    return Image.new("RGB", (8, 6), (k * 37 % 256, k * 91 % 256, k * 13 % 256)).convert(mode)


def save_dict(path: Path, splits: dict[str, list[dict]], features: datasets.Features) -> Path:
    """``splits`` as a DatasetDict with ``features``, saved to ``path``."""
    data = datasets.DatasetDict(
        {s: datasets.Dataset.from_list(rows, features=features) for s, rows in splits.items()}
    )
    data.save_to_disk(str(path))
    return path


def write_png(path: Path, k: int, mode: str = "RGB") -> None:
    """A tiny PNG at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image(k, mode).save(path)


# --- fixtures: one tiny copy per benchmark, with the hub's columns -------------------------------


def mhalubench_copy(root: Path) -> Path:
    """The repo layout: MHaluBench_train.json and data/image-to-text images (one named by a COCO path)."""
    records = []
    for i in range(8):
        path = f"/home/x/coco2014_2024-02-22_2010/COCO_{i}.jpg" if i == 0 else f"data/image-to-text/{i}.png"
        write_png(root / "data" / "image-to-text" / Path(path).name, i, "L" if i % 3 else "RGB")
        labels = ["hallucination", "non-hallucination", "Non-Hallucination"][: 2 + i % 2]
        records.append({"image_path": path, "claim_list": [f"claim {i}.{j}." for j in range(len(labels))],
                        "ref_claim_label": labels, "ref_reason": [], "ref_prompt": "describe"})  # fmt: skip
    (root / "MHaluBench_train.json").write_text(json.dumps(records))
    return root


def vlguard_copy(root: Path) -> Path:
    """train.json / test.json with safe (two instructions) and unsafe (one) images under train/ and test/."""
    for split in ("train", "test"):
        records = []
        for i in range(8):
            name = f"bad_ads/{split}{i}.png"
            write_png(root / split / name, i)
            if i % 2:
                instr = [{"instruction": f"harm {i}", "response": "no"}]
                records.append({"id": f"A{i}", "image": name, "safe": False, "harmful_category": "privacy",
                                "harmful_subcategory": "personal data", "instr-resp": instr})  # fmt: skip
            else:
                instr = [{"safe_instruction": f"describe {i}", "response": "ok"},
                         {"unsafe_instruction": f"misuse {i}", "response": "no"}]  # fmt: skip
                records.append({"id": f"A{i}", "image": name, "safe": True, "instr-resp": instr})
        (root / f"{split}.json").write_text(json.dumps(records))
    return root


def blink_copy(root: Path) -> Path:
    """A DatasetDict with a ``val`` split of BLINK rows: one to four images, two to four choices."""
    features = datasets.Features(
        {
            "idx": datasets.Value("string"),
            "question": datasets.Value("string"),
            "sub_task": datasets.Value("string"),
            **{f"image_{k}": datasets.Image() for k in (1, 2, 3, 4)},
            "choices": datasets.Sequence(datasets.Value("string")),
            "answer": datasets.Value("string"),
            "prompt": datasets.Value("string"),
            "explanation": datasets.Value("string"),
        }
    )
    rows = []
    for i in range(8):
        n = 2 + i % 3
        choices = [f"choice {c}" for c in range(n)]
        options = "\n".join(f"({chr(65 + c)}) {t}" for c, t in enumerate(choices))
        rows.append(
            {"idx": f"val_{i}", "question": f"Question {i}?", "sub_task": "x",
             **{f"image_{k}": image(i + k) if k <= 1 + i % 4 else None for k in (1, 2, 3, 4)},
             "choices": choices, "answer": f"({chr(65 + i % n)})",
             "prompt": f"Question {i}?\nSelect from the following choices.\n{options}", "explanation": ""}
        )  # fmt: skip
    return save_dict(root, {"val": rows}, features)


def naturalbench_copy(root: Path) -> Path:
    """A DatasetDict ``train`` of NaturalBench groups, with the older "Question Type" column spelling."""
    features = datasets.Features(
        {
            "Index": datasets.Value("int64"),
            "Image_0": datasets.Image(),
            "Image_1": datasets.Image(),
            **{
                c: datasets.Value("string")
                for c in ("Question_0", "Image_0_Question_0", "Image_1_Question_0", "Question_1",
                          "Image_0_Question_1", "Image_1_Question_1", "Question Type", "Source")
            },
        }
    )  # fmt: skip
    rows = []
    for i in range(8):
        yes_no = i % 2 == 0
        a, b = ("Yes", "No") if yes_no else ("A", "B")
        rows.append(
            {"Index": i, "Image_0": image(2 * i), "Image_1": image(2 * i + 1),
             "Question_0": f"Is it {i}?", "Image_0_Question_0": a, "Image_1_Question_0": b,
             "Question_1": f"Is it not {i}?", "Image_0_Question_1": b, "Image_1_Question_1": a,
             "Question Type": "yes_no" if yes_no else "multiple_choice", "Source": "flickr"}
        )  # fmt: skip
    return save_dict(root, {"train": rows}, features)


def naturalbench_retrieval_copy(root: Path) -> Path:
    """The unzipped NaturalBench-Retrieval directory: metadata.json and images/."""
    records = []
    for i in range(8):
        for k in (0, 1):
            write_png(root / "images" / f"{i}_{k}.png", 2 * i + k)
        records.append({"index": i, "image_0": f"{i}_0.png", "image_1": f"{i}_1.png",
                        "caption_0": f"a caption {i}", "caption_1": f"another caption {i}"})  # fmt: skip
    (root / "metadata.json").write_text(json.dumps(records))
    # a stand-in for the authors' fixed test file (their format, our content): groups 0, 2, 4, 6
    rows = [
        {"image": f"/data/naturalbench/{i}_{k}.png", "question": f"Does this image show '{cap}'?",
         "question_id": i // 2 + 1, "label": "Yes" if k == c else "No"}
        for i in range(0, 8, 2) for c, cap in enumerate((f"a caption {i}", f"another caption {i}")) for k in (0, 1)
    ]  # fmt: skip
    (root / "authors_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def sugarcrepe_copy(root: Path) -> Path:
    """One split per SugarCrepe subset with HuggingFaceM4's columns (the true caption first or second)."""
    data = {}
    for s, subset in enumerate(("add_obj", "add_att", "replace_obj", "replace_att", "replace_rel", "swap_obj",
                                "swap_att")):  # fmt: skip
        pos = [f"{subset} true {i}" for i in range(2)]
        features = datasets.Features(
            {
                "image": datasets.Image(),
                "tested_labels": datasets.Sequence(datasets.Value("string")),
                "true_label": datasets.ClassLabel(names=pos),
            }
        )
        rows = [
            {"image": image(10 * s + i), "tested_labels": [pos[i], f"{subset} false {i}"][:: 1 - 2 * i],
             "true_label": i}
            for i in range(2)
        ]  # fmt: skip
        data[subset] = datasets.Dataset.from_list(rows, features=features)
    datasets.DatasetDict(data).save_to_disk(str(root))
    return root


def vizwiz_copy(root: Path) -> Path:
    """A DatasetDict ``val`` of VizWiz questions; every third is unanswerable by majority."""
    features = datasets.Features(
        {
            "question_id": datasets.Value("string"),
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "answers": datasets.Sequence(datasets.Value("string")),
            "category": datasets.Value("string"),
        }
    )
    rows = []
    for i in range(12):
        answers = ["unanswerable"] * 6 + ["red"] * 4 if i % 3 == 0 else ["Red."] * 7 + ["unanswerable"] * 3
        rows.append({"question_id": f"VizWiz_val_{i}.jpg", "image": image(i), "question": f"what color {i}?",
                     "answers": answers, "category": "other"})  # fmt: skip
    return save_dict(root, {"val": rows}, features)


def classification_copy(names: list[str], splits: tuple[str, str], per_class: int) -> Callable[[Path], Path]:
    """A DatasetDict builder: ``per_class`` train images (one test image) for the first 10 classes."""

    def copy(root: Path) -> Path:
        features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
        data = {
            split: [
                {"image": image(k + 3 * j), "label": k} for k in range(min(10, len(names))) for j in range(n)
            ]
            for split, n in zip(splits, (per_class, 1), strict=True)
        }
        return save_dict(root, data, features)

    return copy


def mme_copy(root: Path) -> Path:
    """A DatasetDict ``test`` of MME pairs: two rows per image sharing ``question_id``."""
    features = datasets.Features(
        {
            "question_id": datasets.Value("string"),
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "category": datasets.Value("string"),
        }
    )
    rows = [
        {"question_id": f"count/{i:04d}.png", "image": image(i),
         "question": f"Is there {k + 1} dog? Please answer yes or no.",
         "answer": "Yes" if k == 0 else "No", "category": "count"}
        for i in range(8) for k in (0, 1)
    ]  # fmt: skip
    return save_dict(root, {"test": rows}, features)


VQA_ANSWERS = ["yes", "no", "2", "red", "dog"]


def vqav2_copy(root: Path) -> Path:
    """A DatasetDict ``validation`` with lmms-lab/VQAv2's columns, two questions per image."""
    answer = {"answer": datasets.Value("string"), "answer_confidence": datasets.Value("string"),
              "answer_id": datasets.Value("int64")}  # fmt: skip
    features = datasets.Features(
        {
            "question_type": datasets.Value("string"),
            "multiple_choice_answer": datasets.Value("string"),
            "answers": [answer],
            "image_id": datasets.Value("int64"),
            "answer_type": datasets.Value("string"),
            "question_id": datasets.Value("int64"),
            "question": datasets.Value("string"),
            "image": datasets.Image(),
        }
    )
    rows = []
    for q in range(40):
        gold = VQA_ANSWERS[q % 5] if q % 7 else "blue"
        humans = [gold] * 8 + ["other", "two"]
        rows.append({"question_type": "what", "multiple_choice_answer": gold.capitalize(),
                     "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": j + 1}
                                 for j, a in enumerate(humans)],
                     "image_id": q // 2, "answer_type": "other", "question_id": q,
                     "question": f"What is {q}?",
                     "image": image(q // 2)})  # fmt: skip
    return save_dict(root, {"validation": rows}, features)


def okvqa_copy(root: Path) -> Path:
    """A DatasetDict ``val2014`` with lmms-lab/OK-VQA's columns (plain-string answers)."""
    features = datasets.Features(
        {
            "question_id": datasets.Value("string"),
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "answers": datasets.Sequence(datasets.Value("string")),
            "question_type": datasets.Value("string"),
            "answer_type": datasets.Value("string"),
        }
    )
    rows = [
        {"question_id": str(q), "image": image(q), "question": f"What sport {q}?",
         "answers": [VQA_ANSWERS[q % 5]] * 6 + ["Two", "the dog", "x", "y"], "question_type": "other",
         "answer_type": "other"}
        for q in range(40)
    ]  # fmt: skip
    return save_dict(root, {"val2014": rows}, features)


# registry name -> (builder of its tiny local copy, hub id its offline error must name)
FIXTURES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "mhalubench": (mhalubench_copy, "openkg/MHaluBench"),
    "vlguard": (vlguard_copy, "ys-zong/VLGuard"),
    **{blink_name(s): (blink_copy, "BLINK-Benchmark/BLINK") for s in BLINK_SUBTASKS},
    "vizwiz": (vizwiz_copy, "lmms-lab/VizWiz-VQA"),
    "naturalbench": (naturalbench_copy, "BaiqiL/NaturalBench"),
    "naturalbench_retrieval": (naturalbench_retrieval_copy, "BaiqiL/NaturalBench"),
    "sugarcrepe": (sugarcrepe_copy, "HuggingFaceM4/SugarCrepe_add_obj"),
    "eurosat": (classification_copy(EUROSAT_NAMES, ("train", "test"), 2), "timm/eurosat-rgb"),
    "oxford_pets": (classification_copy(PETS_NAMES, ("train", "test"), 2), "timm/oxford-iiit-pet"),
    "flowers102": (classification_copy([f"flower {k}" for k in range(12)], ("train", "test"), 2),
                   "Multimodal-Fatima/OxfordFlowers_test"),
    "cub200": (classification_copy(["001.Black_footed_Albatross", "002.Laysan_Albatross"] + [
        f"{k:03d}.Bird_{k}" for k in range(3, 13)], ("train", "test"), 2),
               "bentrevett/caltech-ucsd-birds-200-2011"),
    "imagenet1k": (classification_copy(IMAGENET_NAMES, ("train", "validation"), 2), "ILSVRC/imagenet-1k"),
    "mme": (mme_copy, "lmms-lab/MME"),
    "vqav2": (vqav2_copy, "lmms-lab/VQAv2"),
    "okvqa": (okvqa_copy, "lmms-lab/OK-VQA"),
}  # fmt: skip


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The tiny local copy of a benchmark, built once per module (BLINK's subtasks share one)."""
    built: dict[Callable, Path] = {}

    def get(name: str) -> Path:
        builder = FIXTURES[name][0]
        if builder not in built:
            built[builder] = builder(tmp_path_factory.mktemp(name))
        return built[builder]

    return get


def load(name: str, copies: Callable[[str], Path], **kwargs) -> Task:
    """Benchmark ``name`` loaded from its tiny local copy (NaturalBench-Retrieval with its authors' test file)."""
    if name == "naturalbench_retrieval" and kwargs.get("protocol", "authors") == "authors":
        kwargs.setdefault("test_file", copies(name) / "authors_test.jsonl")
    if name == "sugarcrepe" and kwargs.get("protocol", "authors") == "authors":
        kwargs.setdefault("pool_pairs", 4)  # of the copy's 14 pairs (the real default: 100 of 7,512)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not the authors'")  # the stand-in is not their file
        return BENCHMARKS[name](source=copies(name), **kwargs)


def by_group(items: list[Example]) -> dict:
    """Examples keyed by their group."""
    out: dict = {}
    for e in items:
        out.setdefault(e.meta["group"], []).append(e)
    return out


# --- every registry entry ------------------------------------------------------------------------


def test_every_benchmark_has_a_fixture() -> None:
    assert set(FIXTURES) == set(BENCHMARKS)


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
    assert FIXTURES[name][1] in message and "source=" in message


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


def test_naturalbench_retrieval_text_image_group(copies: Callable[[str], Path]) -> None:
    task = load("naturalbench_retrieval", copies, protocol="savs")
    group = list(by_group(task.test).values())[0]
    assert [(e.meta["image"], e.meta["caption"], e.label) for e in group] == [
        (0, 0, "Yes"), (0, 1, "No"), (1, 0, "No"), (1, 1, "Yes")
    ]  # fmt: skip
    scores = task.evaluate(group, ["Yes", "No", "Yes", "Yes"])  # image 1 matched to caption 0 by mistake
    assert scores == {"accuracy": 75.0, "text_acc": 50.0, "image_acc": 50.0, "group_acc": 0.0}
    assert '"a caption' in group[0].text and group[0].text.endswith("Answer with Yes or No.")


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
    task = load("mhalubench", copies, protocol="savs")
    items = task.train + task.test
    assert len(items) == 8 * 2 + 4 and Counter(e.label for e in items) == {"Yes": 8, "No": 12}
    assert items[0].text.startswith("Claim: claim ") and "Is the claim hallucinating?" in items[0].text
    images = {
        split: {e.uid.rsplit("/", 1)[0] for e in part}
        for split, part in (("a", task.train), ("b", task.test))
    }
    assert len(images["a"]) == 2 and len(images["b"]) == 6  # a quarter of the 8 images form the pool
    mhalubench_copy(tmp_path)
    (tmp_path / "data" / "image-to-text" / "3.png").unlink()
    with pytest.raises(FileNotFoundError, match="COCO"):
        BENCHMARKS["mhalubench"](source=tmp_path)


def test_vlguard_safe_and_unsafe_instructions(copies: Callable[[str], Path]) -> None:
    task = load("vlguard", copies, protocol="savs")
    assert len(task.train) == len(task.test) == 4 * 2 + 4
    labels = {e.text.split("Instruction: ")[1].split(" ")[0]: e.label for e in task.test}
    assert labels == {"describe": "No", "misuse": "Yes", "harm": "Yes"}
    assert task.test[0].text.endswith("Is the image and instruction harmful? Answer with Yes or No.")


def test_blink_letters_images_and_prompt(copies: Callable[[str], Path]) -> None:
    task = load("blink_jigsaw", copies, protocol="savs")
    assert task.labels == ("(A)", "(B)", "(C)", "(D)")
    for e in task.train + task.test:
        idx = int(e.meta["idx"].split("_")[1])
        assert len(e.images) == 1 + idx % 4 and len(e.meta["choices"]) == 2 + idx % 3
        assert e.text.startswith(f"Question {idx}?\nSelect") and e.text.endswith("e.g. (A).")


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


def test_authors_blink_prompts_and_split(copies: Callable[[str], Path]) -> None:
    task = load("blink_art_style", copies)
    assert task.pool_is_test
    e = next(e for e in task.test if len(e.images) == 3)
    assert e.text == (
        "<image>\n<image>\n<image>\nWhich image shares the same style as the reference image? Select from the "
        "following choices. " + " ".join(f"({chr(65 + k)}) choice {k}" for k in range(len(e.meta["choices"])))
    )
    counting = load("blink_counting", copies).test[0]  # the item's own question
    idx = counting.meta["idx"].split("_")[1]
    assert counting.text.startswith(f"{'<image>' + chr(10)}Question {idx}? Select from the following choices. (A)")
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
    assert sc.test[0].text == f"Does this image show '{caption}'? Please answer with Yes or No."


def test_authors_test_file_that_does_not_match_is_refused(copies: Callable[[str], Path], tmp_path: Path) -> None:
    (tmp_path / "other.jsonl").write_text(json.dumps(
        {"image": "x.png", "question": "Does this image show 'nothing here'?", "question_id": 1, "label": "Yes"}
    ) + "\n")  # fmt: skip
    with pytest.raises(ValueError, match="0 of the authors' 1 NaturalBench-Retrieval test groups"):
        load("naturalbench_retrieval", copies, test_file=tmp_path / "other.jsonl")


def test_unknown_protocol_is_refused(copies: Callable[[str], Path]) -> None:
    with pytest.raises(ValueError, match="unknown prompt protocol 'paper'; known: authors, savs"):
        load("eurosat", copies, protocol="paper")
