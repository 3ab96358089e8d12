"""Tiny local copies of every benchmark with the hub's columns (or the hub repo's JSON layout), for the loader and
golden-prompt tests: ``FIXTURES`` maps a task to its builder; the ``copies`` fixture (conftest) builds each once."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import datasets
from PIL import Image

from savs.data.benchmarks import (
    BENCHMARKS,
    BLINK_SUBTASKS,
)
from savs.data.benchmarks.vqa import blink_name
from savs.examples import Example, Task

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
    """The repo layout: MHaluBench_train.json and MHaluBench_val-v0.2.json, 8 images each, and data/image-to-text
    images (one of each file named by a COCO path, placed as savs.data.mhalu_images places it)."""
    for split, prefix in (("train", "train_"), ("val-v0.2", "")):
        records = []
        for i in range(8):
            name = f"COCO_{prefix}{i}.jpg" if i == 0 else f"{prefix}{i}.png"
            path = f"/home/x/coco2014_2024-02-22_2010/{name}" if i == 0 else f"data/image-to-text/{name}"
            write_png(root / "data" / "image-to-text" / name, i + 10 * (prefix == ""), "L" if i % 3 else "RGB")
            labels = ["hallucination", "non-hallucination", "Non-Hallucination"][: 2 + i % 2]
            records.append({"image_path": path, "claim_list": [f"claim {i}.{j}." for j in range(len(labels))],
                            "ref_claim_label": labels, "ref_reason": [], "ref_prompt": "describe"})  # fmt: skip
        (root / f"MHaluBench_{split}.json").write_text(json.dumps(records))
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
    naturalbench_retrieval_test_file(root / "authors_test.jsonl", [0, 2, 4, 6])
    return root


def naturalbench_retrieval_test_file(path: Path, groups: list[int]) -> Path:
    """A stand-in for the authors' fixed test file (their format, our content) listing the copy's ``groups`` in
    order, one ``question_id`` each (a group listed twice gets two)."""
    rows = [
        {"image": f"/data/naturalbench/{i}_{k}.png", "question": f"Does this image show '{cap}'?",
         "question_id": q + 1, "label": "Yes" if k == c else "No"}
        for q, i in enumerate(groups) for c, cap in enumerate((f"a caption {i}", f"another caption {i}"))
        for k in (0, 1)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


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


